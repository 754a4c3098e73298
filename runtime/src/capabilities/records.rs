//! Capability: `junction:connector/records`. Read access to local records
//! of the models granted to the call's backend; any other model traps the
//! call with a message naming the grant (the import has no error channel).

use super::bindings::records::Host;
use super::bindings::types::LocalRecord;
use super::store::CallState;
use super::{grant_failure, host_failure};

impl Host for CallState {
    async fn get(&mut self, model: String, id: String) -> wasmtime::Result<Option<LocalRecord>> {
        self.ctx
            .grants
            .model("records.get", &model)
            .map_err(|e| grant_failure("records", e))?;
        let record = self
            .ctx
            .services
            .records
            .get(&model, &id)
            .await
            .map_err(|e| host_failure("records", e))?;
        Ok(record.map(|r| LocalRecord {
            model: r.model,
            id: r.id,
            data: r.data,
            version: r.version,
            updated_at: r.updated_at,
        }))
    }
}
