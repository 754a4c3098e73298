//! The errors a call into a guest can end with.
//!
//! Two kinds are kept apart on purpose: a [`GuestError`] is what the guest
//! chose to return through the contract's `error` variant (the job queue
//! retries or fails on it); a [`CallError`] other than `Guest` means the host
//! killed or refused the call (deadline, memory, trap, invalid output), and
//! names the limit that was hit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The contract's `error` variant, as the guest returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GuestError {
    #[error("retryable after {after_seconds} s: {message}")]
    Retryable { after_seconds: u32, message: String },
    #[error("rate limited for {reset_seconds} s: {message}")]
    RateLimited { reset_seconds: u32, message: String },
    #[error("permanent: {message}")]
    Permanent { message: String },
    #[error("not found: {message}")]
    NotFound { message: String },
    #[error("configuration: {message}")]
    Config { message: String },
    #[error("nothing to do: {message}")]
    NothingToDo { message: String },
}

impl GuestError {
    /// The variant's name as the contract spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestError::Retryable { .. } => "retryable",
            GuestError::RateLimited { .. } => "rate-limited",
            GuestError::Permanent { .. } => "permanent",
            GuestError::NotFound { .. } => "not-found",
            GuestError::Config { .. } => "config",
            GuestError::NothingToDo { .. } => "nothing-to-do",
        }
    }

    /// How long the guest asked to wait before the next try, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GuestError::Retryable { after_seconds, .. } => {
                Some(Duration::from_secs(u64::from(*after_seconds)))
            }
            GuestError::RateLimited { reset_seconds, .. } => {
                Some(Duration::from_secs(u64::from(*reset_seconds)))
            }
            _ => None,
        }
    }
}

/// Why a call did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The guest returned its own error; the call itself ran fine.
    #[error("{export} returned an error: {0}", export = .1)]
    Guest(GuestError, &'static str),
    #[error("{export} exceeded its deadline of {} ms and was stopped", limit.as_millis())]
    Deadline {
        export: &'static str,
        limit: Duration,
    },
    #[error("{export} used up its fuel budget of {budget} units and was stopped")]
    Fuel { export: &'static str, budget: u64 },
    #[error("{export} tried to grow its memory past the limit of {limit} bytes and was stopped")]
    Memory { export: &'static str, limit: usize },
    #[error("{export} tried to grow a table past the limit of {limit} elements and was stopped")]
    Table { export: &'static str, limit: usize },
    #[error("{export} overflowed its stack (deep recursion) and was stopped")]
    StackOverflow { export: &'static str },
    #[error(
        "{export} held more than {limit} host resources at once (wasi:http header maps, requests, \
         bodies, streams) and was stopped; drop what it no longer needs (limits.max_host_resources)"
    )]
    HostResources { export: &'static str, limit: usize },
    #[error(
        "{export} built a wasi:http header map over {limit} bytes and was stopped \
         (limits.max_header_bytes)"
    )]
    HeaderSize { export: &'static str, limit: usize },
    #[error("{export} trapped: {message}")]
    Trap {
        export: &'static str,
        message: String,
    },
    #[error("{export} returned invalid output: {reason}")]
    InvalidOutput {
        export: &'static str,
        reason: String,
    },
    #[error("{export} returned {size} bytes of output, over the limit of {limit} bytes")]
    OutputTooLarge {
        export: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("{export} could not start: {message}")]
    Instantiate {
        export: &'static str,
        message: String,
    },
    #[error("{export} is not exported by this component ({world})")]
    MissingExport { export: &'static str, world: String },
    #[error("{export} failed in the host's {capability} capability: {message}")]
    Host {
        export: &'static str,
        capability: &'static str,
        message: String,
    },
}

impl CallError {
    /// A short stable name for metrics and job records.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Guest(e, _) => e.kind(),
            CallError::Deadline { .. } => "deadline",
            CallError::Fuel { .. } => "fuel",
            CallError::Memory { .. } => "memory",
            CallError::Table { .. } => "table",
            CallError::StackOverflow { .. } => "stack-overflow",
            CallError::HostResources { .. } => "host-resources",
            CallError::HeaderSize { .. } => "header-size",
            CallError::Trap { .. } => "trap",
            CallError::InvalidOutput { .. } => "invalid-output",
            CallError::OutputTooLarge { .. } => "output-too-large",
            CallError::Instantiate { .. } => "instantiate",
            CallError::MissingExport { .. } => "missing-export",
            CallError::Host { .. } => "host",
        }
    }

    /// The guest's own error, when that is what ended the call.
    pub fn guest(&self) -> Option<&GuestError> {
        match self {
            CallError::Guest(e, _) => Some(e),
            _ => None,
        }
    }

    /// Whether the host stopped the call for breaking a sandbox limit.
    pub fn is_limit_breach(&self) -> bool {
        matches!(
            self,
            CallError::Deadline { .. }
                | CallError::Fuel { .. }
                | CallError::Memory { .. }
                | CallError::Table { .. }
                | CallError::StackOverflow { .. }
                | CallError::OutputTooLarge { .. }
        )
    }
}
