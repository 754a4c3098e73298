//! Host capabilities a guest can use, each in its own module, like Spin's
//! factors.
//!
//! Lifecycle of a capability:
//! 1. **link** — its `wasi:*` or `junction:connector/*` interface is added to
//!    the engine's linker once (`host::engine`);
//! 2. **configure** — the operator's settings for a backend become its
//!    long-lived part, shared by every call for that backend (the
//!    [`EgressPolicy`], the [`Services`] handle), gathered in a
//!    [`CallContext`];
//! 3. **prepare** — each call's store gets its per-call part (egress hooks
//!    with the call's audit log, the call's log);
//! 4. **collect** — after the call its log lines and audit entries go into
//!    the call's report, whether the call succeeded or was killed.
//!
//! Modules: [`egress`] (HTTP), [`log`], [`config`], [`binder`], [`records`],
//! [`jobs`], [`state`]; [`memory`] is an in-memory implementation of the
//! [`Services`] the binder, records, jobs and state capabilities call.

pub mod binder;
pub(crate) mod bindings;
pub mod config;
pub mod egress;
pub mod jobs;
pub mod log;
pub mod memory;
pub mod records;
pub mod state;
pub(crate) mod stdio;
pub(crate) mod store;
pub mod stored;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::grants::Grants;
use crate::limits::SandboxLimits;
use crate::model::LocalRecord;
use egress::EgressPolicy;

/// The backend a call runs for, as the guest's `config.backend()` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub name: String,
    pub kind: String,
    pub version: String,
    pub base_url: String,
}

/// A host service failed. `Rejected` is the guest's fault and reaches it as
/// a `permanent` error where the function has an error channel;
/// `Unavailable` is the host's and traps the call (it is retried as a job).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Unavailable(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// External id ↔ local id, per backend and model.
#[async_trait]
pub trait BinderService: Send + Sync {
    async fn to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> ServiceResult<Option<String>>;
    async fn to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> ServiceResult<Option<String>>;
    /// Fails with `Rejected` when either id is already bound to another.
    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: Option<&str>,
    ) -> ServiceResult<()>;
}

/// Read access to local records.
#[async_trait]
pub trait RecordService: Send + Sync {
    async fn get(&self, model: &str, id: &str) -> ServiceResult<Option<LocalRecord>>;
}

/// The job queue, as guests see it.
#[async_trait]
pub trait JobService: Send + Sync {
    /// Returns the job's id (an existing one when the identity key matched).
    /// `spec` was admitted for the calling backend
    /// ([`jobs::admit`]).
    async fn enqueue(&self, spec: &crate::queue::JobSpec) -> ServiceResult<String>;
}

/// Small per-backend values such as stream cursors.
#[async_trait]
pub trait StateService: Send + Sync {
    async fn get(&self, backend: &str, key: &str) -> ServiceResult<Option<String>>;
    /// Refused (`Rejected`) when the backend's guest state would go over
    /// `quota`.
    async fn set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        quota: &crate::storage::StateQuota,
    ) -> ServiceResult<()>;
}

/// The services behind the host imports.
#[derive(Clone)]
pub struct Services {
    pub binder: Arc<dyn BinderService>,
    pub records: Arc<dyn RecordService>,
    pub jobs: Arc<dyn JobService>,
    pub state: Arc<dyn StateService>,
}

impl Services {
    /// All four backed by one implementation.
    pub fn from_one<S>(service: Arc<S>) -> Self
    where
        S: BinderService + RecordService + JobService + StateService + 'static,
    {
        Services {
            binder: service.clone(),
            records: service.clone(),
            jobs: service.clone(),
            state: service,
        }
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Services")
    }
}

/// Everything a call needs that outlives it: configured once per backend.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub backend: BackendInfo,
    /// The backend's non-secret settings, a JSON object as text.
    pub settings: String,
    pub egress: Arc<EgressPolicy>,
    pub limits: SandboxLimits,
    pub services: Services,
    /// What the backend's connector may reach of local data and jobs.
    pub grants: Arc<Grants>,
}

impl CallContext {
    /// Whether `other` is this context or one derived from the same
    /// resolved backend (same grants, egress policy, settings and limits;
    /// services may differ, as an import page's prefetched binder does).
    pub fn same_backend(&self, other: &CallContext) -> bool {
        Arc::ptr_eq(&self.grants, &other.grants)
            && Arc::ptr_eq(&self.egress, &other.egress)
            && self.settings == other.settings
            && self.limits == other.limits
    }

    /// A context bound to no backend: no outbound HTTP, empty settings,
    /// in-memory services. For `describe`, `inspect` and mapper tests.
    pub fn detached(limits: SandboxLimits) -> Self {
        CallContext {
            backend: BackendInfo {
                name: String::new(),
                kind: String::new(),
                version: String::new(),
                base_url: String::new(),
            },
            settings: "{}".to_string(),
            egress: Arc::new(EgressPolicy::deny_all()),
            limits,
            services: Services::from_one(Arc::new(memory::MemoryServices::default())),
            grants: Arc::new(Grants::unrestricted("")),
        }
    }
}

/// A host function failed in a way the guest cannot handle: the call traps
/// and the report names the capability.
#[derive(Debug, thiserror::Error)]
#[error("{capability}: {message}")]
pub(crate) struct HostFailure {
    pub capability: &'static str,
    pub message: String,
}

/// A guest reached outside its grant: the call traps with the grant's
/// message (for imports without an error channel).
pub(crate) fn grant_failure(
    capability: &'static str,
    e: crate::grants::GrantError,
) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure {
        capability,
        message: e.0,
    })
}

pub(crate) fn host_failure(capability: &'static str, e: ServiceError) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure {
        capability,
        message: e.to_string(),
    })
}
