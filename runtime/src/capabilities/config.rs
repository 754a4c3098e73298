//! Capability: `junction:connector/config`. The backend's identity and its
//! non-secret settings; secrets stay in the egress policy and never reach
//! the guest.

use super::bindings::config::{BackendInfo, Host};
use super::store::CallState;

impl Host for CallState {
    async fn backend(&mut self) -> wasmtime::Result<BackendInfo> {
        let b = &self.ctx.backend;
        Ok(BackendInfo {
            name: b.name.clone(),
            kind: b.kind.clone(),
            version: b.version.clone(),
            base_url: b.base_url.clone(),
        })
    }

    async fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.settings.clone())
    }
}
