//! In-memory [`Services`](super::Services): bindings with both uniqueness
//! rules, records, a job list with identity-key collapsing, and state. Used
//! where no database is attached: `junction connector inspect`, `describe`
//! calls and tests of units.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{BinderService, JobService, RecordService, ServiceError, ServiceResult, StateService};
use crate::model::{JobRequest, LocalRecord};

#[derive(Debug, Default)]
pub struct MemoryServices {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (backend, model, external id) → (local id, sync date)
    by_external: HashMap<(String, String, String), (String, Option<String>)>,
    /// (backend, model, local id) → external id
    by_local: HashMap<(String, String, String), String>,
    records: HashMap<(String, String), LocalRecord>,
    jobs: Vec<(String, String, JobRequest)>,
    state: HashMap<(String, String), String>,
}

impl MemoryServices {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store a local record (what the synchronizer does on import).
    pub fn put_record(&self, record: LocalRecord) {
        self.lock()
            .records
            .insert((record.model.clone(), record.id.clone()), record);
    }

    /// Jobs enqueued so far: (job id, backend, request).
    pub fn jobs(&self) -> Vec<(String, String, JobRequest)> {
        self.lock().jobs.clone()
    }
}

fn key(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

#[async_trait]
impl BinderService for MemoryServices {
    async fn to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> ServiceResult<Option<String>> {
        Ok(self
            .lock()
            .by_external
            .get(&key(backend, model, external_id))
            .map(|(local, _)| local.clone()))
    }

    async fn to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> ServiceResult<Option<String>> {
        Ok(self
            .lock()
            .by_local
            .get(&key(backend, model, local_id))
            .cloned())
    }

    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: Option<&str>,
    ) -> ServiceResult<()> {
        let mut inner = self.lock();
        let ext_key = key(backend, model, external_id);
        let loc_key = key(backend, model, local_id);
        if let Some((other, _)) = inner.by_external.get(&ext_key)
            && other != local_id
        {
            return Err(ServiceError::Rejected(format!(
                "{model} {external_id} on {backend} is already bound to local id {other}"
            )));
        }
        if let Some(other) = inner.by_local.get(&loc_key)
            && other != external_id
        {
            return Err(ServiceError::Rejected(format!(
                "local {model} {local_id} is already bound to {other} on {backend}"
            )));
        }
        inner.by_external.insert(
            ext_key,
            (local_id.to_string(), sync_date.map(str::to_string)),
        );
        inner.by_local.insert(loc_key, external_id.to_string());
        Ok(())
    }
}

#[async_trait]
impl RecordService for MemoryServices {
    async fn get(&self, model: &str, id: &str) -> ServiceResult<Option<LocalRecord>> {
        Ok(self
            .lock()
            .records
            .get(&(model.to_string(), id.to_string()))
            .cloned())
    }
}

#[async_trait]
impl JobService for MemoryServices {
    async fn enqueue(&self, spec: &crate::queue::JobSpec) -> ServiceResult<String> {
        let backend = spec.backend.as_deref().unwrap_or_default();
        let request = &spec.request;
        let mut inner = self.lock();
        if let Some(k) = &request.identity_key
            && let Some((id, _, _)) = inner
                .jobs
                .iter()
                .find(|(_, b, r)| b == backend && r.identity_key.as_ref() == Some(k))
        {
            return Ok(id.clone());
        }
        let id = format!("mem-{}", inner.jobs.len() + 1);
        inner
            .jobs
            .push((id.clone(), backend.to_string(), request.clone()));
        Ok(id)
    }
}

#[async_trait]
impl StateService for MemoryServices {
    async fn get(&self, backend: &str, key: &str) -> ServiceResult<Option<String>> {
        Ok(self
            .lock()
            .state
            .get(&(backend.to_string(), key.to_string()))
            .cloned())
    }

    async fn set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        quota: &crate::storage::StateQuota,
    ) -> ServiceResult<()> {
        let mut inner = self.lock();
        let (mut keys, mut bytes, mut old) = (0u64, 0u64, None);
        for ((b, k), v) in &inner.state {
            if b == backend && k.starts_with(&quota.prefix) {
                keys += 1;
                bytes += (k.len() + v.len()) as u64;
                if k == key {
                    old = Some(v.len() as u64);
                }
            }
        }
        quota
            .check_write(backend, key, value, (keys, bytes), old)
            .map_err(|e| ServiceError::Rejected(e.to_string()))?;
        inner
            .state
            .insert((backend.to_string(), key.to_string()), value.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bindings_are_unique_both_ways() {
        let s = MemoryServices::default();
        s.bind("shop", "product", "e1", "l1", None).await.unwrap();
        s.bind("shop", "product", "e1", "l1", Some("2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert!(s.bind("shop", "product", "e1", "l2", None).await.is_err());
        assert!(s.bind("shop", "product", "e2", "l1", None).await.is_err());
        s.bind("other", "product", "e1", "l2", None).await.unwrap();
        assert_eq!(
            s.to_local("shop", "product", "e1")
                .await
                .unwrap()
                .as_deref(),
            Some("l1")
        );
        assert_eq!(
            s.to_external("shop", "product", "l1")
                .await
                .unwrap()
                .as_deref(),
            Some("e1")
        );
    }

    #[tokio::test]
    async fn identity_keys_collapse() {
        let s = MemoryServices::default();
        let req = JobRequest {
            function: "import-record".into(),
            args: "{}".into(),
            identity_key: Some("k".into()),
            ..JobRequest::default()
        };
        let spec = crate::queue::JobSpec {
            request: req,
            backend: Some("shop".into()),
            ..crate::queue::JobSpec::default()
        };
        let a = s.enqueue(&spec).await.unwrap();
        let b = s.enqueue(&spec).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(s.jobs().len(), 1);
    }
}
