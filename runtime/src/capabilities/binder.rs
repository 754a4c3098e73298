//! Capability: `junction:connector/binder`. External id ↔ local id for the
//! call's backend; a guest can only see and bind ids of its own backend,
//! and only of the models granted to it (lookups of another model trap the
//! call; `bind` answers a permanent error).

use super::bindings::binder::Host;
use super::bindings::types::Error;
use super::store::CallState;
use super::{ServiceError, grant_failure, host_failure};

const NAME: &str = "binder";

impl Host for CallState {
    async fn to_local(
        &mut self,
        model: String,
        external_id: String,
    ) -> wasmtime::Result<Option<String>> {
        self.ctx
            .grants
            .model("binder.to-local", &model)
            .map_err(|e| grant_failure(NAME, e))?;
        self.ctx
            .services
            .binder
            .to_local(&self.ctx.backend.name, &model, &external_id)
            .await
            .map_err(|e| host_failure(NAME, e))
    }

    async fn to_external(
        &mut self,
        model: String,
        local_id: String,
    ) -> wasmtime::Result<Option<String>> {
        self.ctx
            .grants
            .model("binder.to-external", &model)
            .map_err(|e| grant_failure(NAME, e))?;
        self.ctx
            .services
            .binder
            .to_external(&self.ctx.backend.name, &model, &local_id)
            .await
            .map_err(|e| host_failure(NAME, e))
    }

    async fn bind(
        &mut self,
        model: String,
        external_id: String,
        local_id: String,
        sync_date: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        if let Err(e) = self.ctx.grants.model("binder.bind", &model) {
            return Ok(Err(Error::Permanent(e.0)));
        }
        if let Some(date) = &sync_date
            && let Err(reason) = crate::model::parse_timestamp(date)
        {
            return Ok(Err(Error::Permanent(format!("bind: sync-date {reason}"))));
        }
        let result = self
            .ctx
            .services
            .binder
            .bind(
                &self.ctx.backend.name,
                &model,
                &external_id,
                &local_id,
                sync_date.as_deref(),
            )
            .await;
        match result {
            Ok(()) => Ok(Ok(())),
            Err(ServiceError::Rejected(m)) => Ok(Err(Error::Permanent(m))),
            Err(e) => Err(host_failure(NAME, e)),
        }
    }
}
