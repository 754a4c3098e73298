//! [`Services`](super::Services) backed by the database and the job queue:
//! what guests reach in production.

use std::sync::Arc;

use async_trait::async_trait;

use super::{BinderService, JobService, RecordService, ServiceError, ServiceResult, StateService};
use crate::model::LocalRecord;
use crate::queue::{JobSpec, Queue, QueueError, now_ms};
use crate::storage::StorageError;

/// Guest-facing services on a [`Queue`] and its storage.
#[derive(Debug, Clone)]
pub struct StoredServices {
    queue: Arc<Queue>,
}

impl StoredServices {
    pub fn new(queue: Arc<Queue>) -> Self {
        StoredServices { queue }
    }
}

fn service_error(e: StorageError) -> ServiceError {
    match e {
        StorageError::Rejected(m) => ServiceError::Rejected(m),
        StorageError::VersionConflict { .. } | StorageError::WrongState { .. } => {
            ServiceError::Rejected(e.to_string())
        }
        other => ServiceError::Unavailable(other.to_string()),
    }
}

fn parse_time(text: &str) -> ServiceResult<i64> {
    crate::model::parse_timestamp(text).map_err(ServiceError::Rejected)
}

#[async_trait]
impl BinderService for StoredServices {
    async fn to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> ServiceResult<Option<String>> {
        self.queue
            .storage()
            .binding_to_local(backend, model, external_id)
            .await
            .map_err(service_error)
    }

    async fn to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> ServiceResult<Option<String>> {
        self.queue
            .storage()
            .binding_to_external(backend, model, local_id)
            .await
            .map_err(service_error)
    }

    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: Option<&str>,
    ) -> ServiceResult<()> {
        let date = sync_date
            .map(parse_time)
            .transpose()?
            .unwrap_or_else(now_ms);
        self.queue
            .storage()
            .bind(backend, model, external_id, local_id, date, None)
            .await
            .map_err(service_error)
    }
}

#[async_trait]
impl RecordService for StoredServices {
    async fn get(&self, model: &str, id: &str) -> ServiceResult<Option<LocalRecord>> {
        self.queue
            .storage()
            .record(model, id)
            .await
            .map_err(service_error)
    }
}

#[async_trait]
impl JobService for StoredServices {
    async fn enqueue(&self, spec: &JobSpec) -> ServiceResult<String> {
        match self.queue.enqueue(spec.clone()).await {
            Ok(e) => Ok(e.id.to_string()),
            Err(QueueError::Storage(e)) => Err(service_error(e)),
            Err(e) => Err(ServiceError::Rejected(e.to_string())),
        }
    }
}

#[async_trait]
impl StateService for StoredServices {
    async fn get(&self, backend: &str, key: &str) -> ServiceResult<Option<String>> {
        self.queue
            .storage()
            .state_get(backend, key)
            .await
            .map_err(service_error)
    }

    async fn set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        quota: &crate::storage::StateQuota,
    ) -> ServiceResult<()> {
        self.queue
            .storage()
            .state_set(backend, key, value, now_ms(), Some(quota))
            .await
            .map_err(service_error)
    }
}
