//! The contract's `error` variant on the guest side, and how HTTP outcomes
//! become one. The export glue turns it into the WIT type.

use std::fmt;

use crate::http::HttpError;

/// What a connector returns when a call cannot succeed. Never panic
/// instead: a panic is a trap, and the host can only report it as such.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Transient; try again after `after_seconds`.
    Retryable { after_seconds: u32, message: String },
    /// The backend throttled us; its limit resets after `reset_seconds`.
    RateLimited { reset_seconds: u32, message: String },
    /// Retrying cannot help.
    Permanent(String),
    /// The record does not exist in the backend.
    NotFound(String),
    /// Settings, credentials or the allowlist are wrong.
    Config(String),
    /// Nothing to do; not a failure.
    NothingToDo(String),
}

/// Delay for transient failures that do not say how long to wait.
pub const DEFAULT_RETRY_SECONDS: u32 = 30;

impl Error {
    pub fn retryable(message: impl Into<String>) -> Self {
        Error::Retryable {
            after_seconds: DEFAULT_RETRY_SECONDS,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Error::Permanent(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retryable {
                after_seconds,
                message,
            } => {
                write!(f, "retryable after {after_seconds} s: {message}")
            }
            Error::RateLimited {
                reset_seconds,
                message,
            } => {
                write!(f, "rate limited for {reset_seconds} s: {message}")
            }
            Error::Permanent(m) => write!(f, "permanent: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::NothingToDo(m) => write!(f, "nothing to do: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        let message = e.to_string();
        match e {
            // The operator must act: allow the host, or fix the URL setting.
            HttpError::Denied { .. } | HttpError::InvalidUrl { .. } => Error::Config(message),
            // The same request will be cut at the same cap.
            HttpError::TooLarge { .. } => Error::Permanent(message),
            HttpError::Transport { .. } => Error::Retryable {
                after_seconds: 5,
                message,
            },
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Permanent(format!("unexpected JSON: {e}"))
    }
}
