//! The admin API's one error type. Every failure answers with the same
//! JSON shape, `{"error": {"code": "...", "message": "..."}}`: `code` is a
//! stable machine name, `message` tells a person what failed and what to
//! do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::{ErrorBody, ErrorDetail};
use crate::queue::QueueError;
use crate::storage::StorageError;
use crate::sync::SyncError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "admin API request failed");
        }
        (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_string(),
                    message: self.message,
                },
            }),
        )
            .into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NoSuchJob(_) => ApiError::not_found(e.to_string()),
            StorageError::WrongState { .. } => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
            }
            StorageError::BackendBusy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "backend_busy", e.to_string())
            }
            StorageError::VersionConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version_conflict", e.to_string())
            }
            StorageError::Rejected(_) | StorageError::MissingParent { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", e.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                other.to_string(),
            ),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Storage(s) => s.into(),
            QueueError::Unfiltered(_) => ApiError::bad_request(e.to_string()),
            other => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_job",
                other.to_string(),
            ),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Storage(s) => s.into(),
            SyncError::NotFound(_) | SyncError::UnknownBackend(_) => {
                ApiError::not_found(e.to_string())
            }
            SyncError::Refused { .. } => {
                ApiError::new(StatusCode::CONFLICT, "refused", e.to_string())
            }
            SyncError::NeedsApproval { .. } => {
                ApiError::new(StatusCode::CONFLICT, "needs_approval", e.to_string())
            }
            SyncError::Registry(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unresolved",
                e.to_string(),
            ),
            SyncError::Load(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_a_connector",
                e.to_string(),
            ),
            SyncError::Backend(_) | SyncError::StoredBackend { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_backend",
                e.to_string(),
            ),
            SyncError::Connector { .. } | SyncError::Schedule { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "connector", e.to_string())
            }
        }
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
