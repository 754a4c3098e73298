//! Capability: `junction:connector/records`. Read access to local records.

use super::host_failure;
use crate::host::bindings::records::Host;
use crate::host::bindings::types::LocalRecord;
use crate::host::store::CallState;

impl Host for CallState {
    async fn get(&mut self, model: String, id: String) -> wasmtime::Result<Option<LocalRecord>> {
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
