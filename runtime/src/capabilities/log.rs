//! Capability: `junction:connector/log`. Lines go into the call's log
//! (bounded by `SandboxLimits::max_log_bytes`) and to the host's tracing.

use super::bindings::log::{Host, Level};
use super::stdio::{LogLevel, LogSource};
use super::store::CallState;

impl Host for CallState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.shared.log.push(level, LogSource::Guest, &message);
        Ok(())
    }
}
