//! Capability: outbound HTTP (`wasi:http/outgoing-handler`), filtered.
//!
//! Lifecycle, like every capability in this folder:
//! - *link*: `wasmtime_wasi_http` adds `wasi:http` to the engine's linker
//!   once (see `host::engine`);
//! - *configure*: the operator's backend settings become an [`EgressPolicy`]
//!   (allowlist, internal-address exceptions, credentials, limits), built
//!   once per backend and shared by all its calls;
//! - *prepare*: each call gets [`EgressHooks`] holding the policy and the
//!   call's [`AuditLog`];
//! - *collect*: after the call the audit entries go into its report.
//!
//! Every request is checked against the allowlist; the name is resolved by
//! the host and every resolved address is checked again before connecting,
//! to the very address that was checked (no second lookup, so DNS rebinding
//! cannot swap it). Redirects are never followed on the guest's behalf.
//! Connections are kept per backend and reused only for a request whose
//! checks led to the same checked address (see `pool`); TLS trusts what
//! the backend's `tls` settings say (see [`crate::tls`]).

use crate::allowlist;
mod audit;
mod dns;
mod ipclass;
mod pool;
mod send;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::Instrument;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

pub use crate::secrets::{Secret, SecretRef};
pub use crate::tls::{TlsError, TlsSettings};
pub use allowlist::{
    AllowRule, Allowlist, AllowlistError, Host, Scheme, Target, TargetError, parse_host_port,
    parse_target,
};
pub use audit::{AuditEntry, AuditLog};
pub use dns::{Resolve, SystemResolver};
pub use ipclass::internal_class;
pub use pool::{PoolStats, Pools};

use crate::limits::EgressLimits;

/// Credentials the host adds to every allowed request of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Auth {
    Bearer { token: Secret },
    Basic { username: String, password: Secret },
    Header { name: String, value: Secret },
}

impl Auth {
    /// The secret part of the credential.
    fn secret(&self) -> &Secret {
        match self {
            Auth::Bearer { token } => token,
            Auth::Basic { password, .. } => password,
            Auth::Header { value, .. } => value,
        }
    }

    fn with_secret(&self, secret: Secret) -> Auth {
        let mut out = self.clone();
        match &mut out {
            Auth::Bearer { token } => *token = secret,
            Auth::Basic { password, .. } => *password = secret,
            Auth::Header { value, .. } => *value = secret,
        }
        out
    }

    /// Whether the secret is the `***` the API shows in its place (a
    /// configuration read back and sent again unchanged).
    pub fn is_redacted_placeholder(&self) -> bool {
        matches!(self.secret(), Secret::Inline(v) if v == "***")
    }

    /// The credential as stored: an inline secret sealed with `key`.
    pub fn sealed(&self, key: &crate::secrets::SecretKey) -> Auth {
        self.with_secret(self.secret().sealed(key))
    }

    /// The credential as read back: a sealed secret opened with `key`.
    pub fn opened(
        &self,
        key: &crate::secrets::SecretKey,
    ) -> Result<Auth, crate::secrets::SecretError> {
        Ok(self.with_secret(self.secret().opened(key)?))
    }

    /// The header this credential becomes.
    fn header(&self) -> Result<(http::HeaderName, http::HeaderValue), String> {
        let secret = self.secret().resolve()?;
        let (name, value) = match self {
            Auth::Bearer { .. } => (http::header::AUTHORIZATION, format!("Bearer {secret}")),
            Auth::Basic { username, .. } => (
                http::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64(format!("{username}:{secret}").as_bytes())
                ),
            ),
            Auth::Header { name, .. } => (
                http::HeaderName::try_from(name.as_str())
                    .map_err(|_| format!("auth header name {name:?} is not a valid header name"))?,
                secret,
            ),
        };
        let mut value = http::HeaderValue::try_from(value)
            .map_err(|_| "auth value contains characters not allowed in a header".to_string())?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Everything that decides where a backend's guest may send requests.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    allowlist: Allowlist,
    /// Exact `host:port` pairs that may resolve to internal addresses.
    allow_internal: HashSet<(Host, u16)>,
    auth: Option<(http::HeaderName, http::HeaderValue)>,
    /// Where the credential goes: only these exact origins (none until
    /// [`EgressPolicy::credential_origins`] names them), never another
    /// allowed host.
    auth_origins: Allowlist,
    /// What the connector's manifests request (with the base URL's
    /// origin): a request must match this as well as the allowlist.
    requested: Option<Allowlist>,
    limits: EgressLimits,
    permits: Arc<Semaphore>,
    /// Sent as `Idempotency-Key` with the state-changing requests of one
    /// call (a create the host may have to repeat; see
    /// [`EgressPolicy::with_idempotency_key`]).
    idempotency_key: Option<http::HeaderValue>,
    /// The backend's TLS client configuration (trust, client certificate,
    /// ALPN, session cache), and the fingerprint of what made it.
    tls: Arc<rustls::ClientConfig>,
    tls_fingerprint: u64,
    /// The backend's kept connections, shared by every clone of the policy
    /// (the per-call ones with an idempotency key too).
    pool: Arc<pool::Pool>,
    resolver: Resolver,
}

fn pool_settings(limits: &EgressLimits) -> pool::PoolSettings {
    pool::PoolSettings {
        enabled: limits.keep_alive,
        max_idle: limits.max_idle_connections,
        idle_timeout: limits.idle_timeout,
    }
}

/// The resolver a policy uses (a newtype so the policy can print itself).
#[derive(Clone)]
struct Resolver(Arc<dyn Resolve>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl std::ops::Deref for Resolver {
    type Target = dyn Resolve;
    fn deref(&self) -> &dyn Resolve {
        &*self.0
    }
}

/// A policy that cannot be built from the operator's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    #[error("backend auth is invalid: {0}")]
    Auth(String),
    #[error("egress limit {name} must be greater than zero")]
    Limit { name: &'static str },
    #[error(
        "credential origin {0:?} must be one exact origin such as https://api.example.com (no wildcard)"
    )]
    CredentialOrigin(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl EgressPolicy {
    /// `allow_internal` lists `host:port` pairs (exactly as requested) that
    /// may resolve to loopback or private addresses, such as a backend on
    /// the operator's own network.
    pub fn new<S: AsRef<str>>(
        allowlist: &[S],
        allow_internal: &[S],
        auth: Option<&Auth>,
        limits: EgressLimits,
    ) -> Result<EgressPolicy, PolicyError> {
        let allowlist = Allowlist::parse(allowlist)?;
        let allow_internal = allow_internal
            .iter()
            .map(|e| parse_host_port(e.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        let auth = auth
            .map(Auth::header)
            .transpose()
            .map_err(PolicyError::Auth)?;
        for (name, zero) in [
            (
                "max_concurrent_requests",
                limits.max_concurrent_requests == 0,
            ),
            ("connect_timeout", limits.connect_timeout.is_zero()),
            ("total_timeout", limits.total_timeout.is_zero()),
            ("idle_timeout", limits.idle_timeout.is_zero()),
        ] {
            if zero {
                return Err(PolicyError::Limit { name });
            }
        }
        let (tls, tls_fingerprint) = TlsSettings::default().client_config(limits.http2)?;
        Ok(EgressPolicy {
            allowlist,
            allow_internal,
            auth,
            auth_origins: Allowlist::parse::<&str>(&[])?,
            requested: None,
            permits: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            tls,
            tls_fingerprint,
            pool: pool::Pool::new(pool_settings(&limits), None),
            resolver: Resolver(dns::system()),
            limits,
            idempotency_key: None,
        })
    }

    /// Trust and present what `settings` say for this backend's `https`
    /// requests (instead of the public roots alone).
    pub fn tls(mut self, settings: &TlsSettings) -> Result<EgressPolicy, PolicyError> {
        (self.tls, self.tls_fingerprint) = settings.client_config(self.limits.http2)?;
        Ok(self)
    }

    /// Keep connections in `backend`'s pool of `pools`: the one an earlier
    /// policy of the backend used, when its connections were made under
    /// the same TLS configuration and pool settings (else a new one).
    /// Call after [`EgressPolicy::tls`].
    pub fn pooled_in(mut self, pools: &Pools, backend: &str) -> EgressPolicy {
        use std::hash::{Hash, Hasher};
        let settings = pool_settings(&self.limits);
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        (self.tls_fingerprint, settings).hash(&mut fingerprint);
        self.pool = pools.get(backend, fingerprint.finish(), settings);
        self
    }

    /// Resolve names with `resolver` instead of the system's (an embedder's
    /// own DNS, or a test's).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> EgressPolicy {
        self.resolver = Resolver(resolver);
        self
    }

    /// What this backend's connection pool has done so far.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// This policy for one call that must happen at most once in the
    /// backend however often it is tried: its POST, PUT and PATCH requests
    /// to the credential's origins (the backend's own) carry
    /// `Idempotency-Key: key` unless the guest set one. The concurrency
    /// cap stays shared with the backend's other calls.
    pub fn with_idempotency_key(&self, key: &str) -> Option<EgressPolicy> {
        let value = http::HeaderValue::from_str(key).ok()?;
        Some(EgressPolicy {
            idempotency_key: Some(value),
            ..self.clone()
        })
    }

    /// The `Idempotency-Key` for a `method` request to `target`, if this
    /// call has one and the request changes state at the backend.
    fn idempotency_for(
        &self,
        method: &http::Method,
        target: &Target,
    ) -> Option<&http::HeaderValue> {
        let changes = matches!(
            *method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        );
        self.idempotency_key
            .as_ref()
            .filter(|_| changes && self.auth_origins.find(target).is_some())
    }

    /// No outbound HTTP at all (for `describe`, `inspect` and mappers).
    pub fn deny_all() -> EgressPolicy {
        EgressPolicy::new::<&str>(&[], &[], None, EgressLimits::default())
            .expect("the empty policy is valid")
    }

    /// Add the credential to requests for these exact origins only.
    pub fn credential_origins<S: AsRef<str>>(
        mut self,
        origins: &[S],
    ) -> Result<EgressPolicy, PolicyError> {
        for o in origins {
            if o.as_ref().contains('*') {
                return Err(PolicyError::CredentialOrigin(o.as_ref().to_string()));
            }
        }
        self.auth_origins = Allowlist::parse(origins)?;
        Ok(self)
    }

    /// Also require every request to match what the connector requested
    /// (its manifests' hosts plus the backend's own origin).
    pub fn requested_hosts<S: AsRef<str>>(
        mut self,
        hosts: &[S],
    ) -> Result<EgressPolicy, PolicyError> {
        self.requested = Some(Allowlist::parse(hosts)?);
        Ok(self)
    }

    /// The credential for a request to `target`, if it goes there.
    fn credential_for(&self, target: &Target) -> Option<&(http::HeaderName, http::HeaderValue)> {
        self.auth
            .as_ref()
            .filter(|_| self.auth_origins.find(target).is_some())
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    pub fn limits(&self) -> &EgressLimits {
        &self.limits
    }

    fn internal_allowed(&self, target: &Target) -> bool {
        self.allow_internal
            .contains(&(target.host.clone(), target.port))
    }
}

/// The `wasi:http` hooks of one call: every request goes through [`send`].
pub struct EgressHooks {
    policy: Arc<EgressPolicy>,
    audit: AuditLog,
}

impl EgressHooks {
    pub fn new(policy: Arc<EgressPolicy>, audit: AuditLog) -> Self {
        EgressHooks { policy, audit }
    }
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        // Created here, while the guest's call is polled, so it nests in
        // that call's span (see `telemetry`). The host asked for and the
        // method only: a path or query may carry what the guest was given.
        let host = request
            .uri()
            .host()
            .map(|h| crate::text::truncate(h, 255))
            .unwrap_or_default();
        let span = tracing::info_span!(
            "http_request",
            http.method = %request.method(),
            server.address = %host,
            http.status = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let sent = send::send(self.policy.clone(), self.audit.clone(), request, options);
        let recorded = span.clone();
        Box::new(
            async move {
                let answer = sent.await;
                match &answer {
                    Ok((response, _)) => {
                        recorded.record("http.status", response.status().as_u16());
                    }
                    Err(e) => {
                        recorded.record("error", tracing::field::debug(e));
                    }
                }
                answer
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn the_idempotency_key_goes_only_with_state_changes_to_the_backends_origin() {
        let policy = EgressPolicy::new(
            &["https://a.example.com", "https://cdn.example.com"],
            &[],
            None,
            EgressLimits::default(),
        )
        .unwrap()
        .credential_origins(&["https://a.example.com"])
        .unwrap();
        let keyed = policy.with_idempotency_key("k-1").unwrap();
        let target = |u: &str| parse_target(&u.parse::<http::Uri>().unwrap()).unwrap();
        let (own, cdn) = (
            target("https://a.example.com/contacts"),
            target("https://cdn.example.com/x"),
        );
        for method in [http::Method::POST, http::Method::PUT, http::Method::PATCH] {
            assert_eq!(keyed.idempotency_for(&method, &own).unwrap(), "k-1");
        }
        assert!(keyed.idempotency_for(&http::Method::GET, &own).is_none());
        assert!(keyed.idempotency_for(&http::Method::DELETE, &own).is_none());
        assert!(keyed.idempotency_for(&http::Method::POST, &cdn).is_none());
        assert!(policy.idempotency_for(&http::Method::POST, &own).is_none());
        assert!(policy.with_idempotency_key("bad\nkey").is_none());
    }

    #[test]
    fn a_backend_resolved_again_keeps_its_pool_unless_its_connections_would_differ() {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        let ca = |name: &str| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().pem()
        };
        std::fs::write(&ca_file, ca("first CA")).unwrap();
        let settings = TlsSettings {
            ca_file: Some(ca_file.clone()),
            ..TlsSettings::default()
        };
        let pools = Pools::default();
        let policy = |backend: &str, limits: EgressLimits| {
            EgressPolicy::new(&["https://erp.example.com"], &[], None, limits)
                .unwrap()
                .tls(&settings)
                .unwrap()
                .pooled_in(&pools, backend)
        };
        let first = policy("erp", EgressLimits::default());
        let again = policy("erp", EgressLimits::default());
        assert!(
            Arc::ptr_eq(&first.pool, &again.pool),
            "same backend, same trust"
        );
        let other = policy("shop", EgressLimits::default());
        assert!(!Arc::ptr_eq(&first.pool, &other.pool), "another backend");
        let fewer = policy(
            "erp",
            EgressLimits {
                max_idle_connections: 2,
                ..EgressLimits::default()
            },
        );
        assert!(
            !Arc::ptr_eq(&again.pool, &fewer.pool),
            "other pool settings"
        );
        // The CA file rewritten in place: connections verified under the
        // old trust are not kept for the new.
        let before = policy("erp", EgressLimits::default());
        std::fs::write(&ca_file, ca("second CA")).unwrap();
        let rotated = policy("erp", EgressLimits::default());
        assert!(!Arc::ptr_eq(&before.pool, &rotated.pool), "new trust");
    }

    #[test]
    fn secrets_do_not_print() {
        let auth = Auth::Bearer {
            token: Secret::new("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let policy = EgressPolicy::new(
            &["https://a.example.com"],
            &[],
            Some(&auth),
            EgressLimits::default(),
        )
        .unwrap();
        assert!(!format!("{policy:?}").contains("hunter2"));
    }

    #[test]
    fn bad_policy_input_is_named() {
        let err = EgressPolicy::new(
            &["https://a.example.com"],
            &["nohost"],
            None,
            EgressLimits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nohost"), "{err}");
        let limits = EgressLimits {
            max_concurrent_requests: 0,
            ..EgressLimits::default()
        };
        let err = EgressPolicy::new::<&str>(&[], &[], None, limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_concurrent_requests"), "{err}");
    }
}
