//! The binder a page import gives the mapper: the bindings the page's
//! relations need were read in one query before mapping, so the guest's
//! `binder.to-local` calls for them answer from memory; anything else goes
//! to the real binder.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::capabilities::{BinderService, ServiceResult};

pub struct PrefetchedBinder {
    backend: String,
    /// (model, external id) → local id, as read for this page.
    known: HashMap<(String, String), String>,
    inner: Arc<dyn BinderService>,
}

impl PrefetchedBinder {
    pub fn new(
        backend: &str,
        known: HashMap<(String, String), String>,
        inner: Arc<dyn BinderService>,
    ) -> Self {
        PrefetchedBinder {
            backend: backend.to_string(),
            known,
            inner,
        }
    }
}

#[async_trait]
impl BinderService for PrefetchedBinder {
    async fn to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> ServiceResult<Option<String>> {
        if backend == self.backend
            && let Some(local) = self
                .known
                .get(&(model.to_string(), external_id.to_string()))
        {
            return Ok(Some(local.clone()));
        }
        self.inner.to_local(backend, model, external_id).await
    }

    async fn to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> ServiceResult<Option<String>> {
        self.inner.to_external(backend, model, local_id).await
    }

    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: Option<&str>,
    ) -> ServiceResult<()> {
        self.inner
            .bind(backend, model, external_id, local_id, sync_date)
            .await
    }
}
