//! Capability: `junction:connector/state`. Small values per backend, such
//! as a stream's cursor; keys and values are bounded.

use super::{ServiceError, host_failure};
use crate::host::bindings::state::Host;
use crate::host::bindings::types::Error;
use crate::host::store::CallState;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;

impl Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.ctx
            .services
            .state
            .get(&self.ctx.backend.name, &key)
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
            .set(&self.ctx.backend.name, &key, &value)
            .await
        {
            Ok(()) => Ok(Ok(())),
            Err(ServiceError::Rejected(m)) => Ok(Err(Error::Permanent(m))),
            Err(e) => Err(host_failure("state", e)),
        }
    }
}
