//! Capability: `junction:connector/state`. Small values per backend, such
//! as a token or a remote cursor; keys and values are bounded, and so are
//! their number and total size per backend (`limits.max_state_keys`,
//! `limits.max_state_bytes`).
//!
//! A guest's keys live under `guest:` in the backend's state, beside the
//! host's own (its import cursors): a connector can neither read nor move
//! the cursor the host keeps for it.

use super::bindings::state::Host;
use super::bindings::types::Error;
use super::store::CallState;
use super::{ServiceError, host_failure};
use crate::storage::StateQuota;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;
/// Where a guest's keys live in its backend's state.
pub const GUEST_PREFIX: &str = "guest:";

impl Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.ctx
            .services
            .state
            .get(&self.ctx.backend.name, &format!("{GUEST_PREFIX}{key}"))
            .await
            .map_err(|e| host_failure("state", e))
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Ok(Err(Error::Permanent(format!(
                "state key must be 1 to {MAX_KEY} bytes, got {}",
                key.len()
            ))));
        }
        if value.len() > MAX_VALUE {
            return Ok(Err(Error::Permanent(format!(
                "state value for {key:?} is {} bytes, over the limit of {MAX_VALUE}",
                value.len()
            ))));
        }
        match self
            .ctx
            .services
            .state
            .set(
                &self.ctx.backend.name,
                &format!("{GUEST_PREFIX}{key}"),
                &value,
                &StateQuota {
                    prefix: GUEST_PREFIX.to_string(),
                    max_keys: self.ctx.limits.max_state_keys,
                    max_bytes: self.ctx.limits.max_state_bytes,
                },
            )
            .await
        {
            Ok(()) => Ok(Ok(())),
            Err(ServiceError::Rejected(m)) => {
                crate::metrics::global().quota(&self.ctx.backend.name, "state");
                Ok(Err(Error::Permanent(m)))
            }
            Err(e) => Err(host_failure("state", e)),
        }
    }
}
