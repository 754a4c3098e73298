//! A backend as the operator configures it — kind, version, base URL,
//! allowlist, credentials, settings, limits — validated, and turned into
//! the [`CallContext`] its calls run with.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::capabilities::egress::{
    Auth, EgressPolicy, PolicyError, Pools, Secret, TlsSettings, parse_target,
};
use crate::capabilities::{BackendInfo, CallContext, Services};
use crate::grants::{GrantConfig, Grants, JobPlacement, Requests};
use crate::limits::{EgressLimits, SandboxLimits};
use crate::queue::breaker::BreakerConfig;
use crate::queue::retry::{RetryConfig, RetryPolicy};
use crate::secrets::{SecretError, SecretKey};

/// One backend of the operator's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The operator's name for it: letters, digits, `-` and `_`.
    pub name: String,
    /// The kind of system, matched against connectors' `backend-kind`.
    pub kind: String,
    /// Its version (semver), matched against connectors' ranges.
    pub version: String,
    /// Where it is, e.g. `https://shop.example.com`. Its origin is allowed
    /// for outbound requests without repeating it in `allow`.
    pub base_url: String,
    /// More outbound targets, as `scheme://host[:port]` entries.
    #[serde(default)]
    pub allow: Vec<String>,
    /// `host:port` pairs that may resolve to internal addresses.
    #[serde(default)]
    pub allow_internal: Vec<String>,
    /// Credentials the host adds to requests for `auth_origins`.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// The exact origins (`scheme://host[:port]`) the credential is sent
    /// to; default: the base URL's origin only. Never another allowed
    /// host, never a redirect target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_origins: Vec<String>,
    /// What the operator grants the connector (narrowing its manifest's
    /// requests): local models and events.
    #[serde(default, skip_serializing_if = "is_default")]
    pub grants: GrantConfig,
    /// Where the connector's own jobs go and how urgent they may be.
    #[serde(default, skip_serializing_if = "is_default")]
    pub jobs: JobPlacement,
    /// Non-secret settings the connector reads (a JSON object).
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub limits: SandboxLimits,
    #[serde(default)]
    pub egress: EgressLimits,
    /// TLS for its `https` requests: a private CA (`ca_file`), the
    /// system's store (`system_roots`), a client certificate (mTLS).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tls: TlsSettings,
    /// Records the host asks for per search (and id-list) page, 1 to
    /// 10,000; the connector may return fewer (a backend's own maximum).
    /// Default: the node's (100). Larger pages mean fewer round trips: at a
    /// distance, an import pays one round trip per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Recurring incremental imports.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    /// How this backend's failed jobs are retried, whatever their function
    /// (else the function's policy, else `[retry] default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// When its jobs stop and wait because it is out of reach.
    #[serde(default, skip_serializing_if = "is_default")]
    pub breaker: BreakerConfig,
    /// Its own failure webhook (else the global `[notify]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<crate::queue::notify::NotifyConfig>,
    /// What a deletion reconciliation (`junction.reconcile`) may do.
    #[serde(default, skip_serializing_if = "is_default")]
    pub reconcile: ReconcileConfig,
    /// Webhook intake (`POST /hooks/<backend>/<name>`): the secret the
    /// backend signs its calls with. None: the backend's hooks are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<BackendWebhooks>,
}

/// A backend's webhook intake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendWebhooks {
    /// The HMAC-SHA256 key of `x-junction-signature` (inline, sealed at
    /// rest, or `{ env = "…" }` / `{ file = "…" }`).
    pub secret: Secret,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// "Import `model` from this backend every `every`": a batch import that
/// never overlaps the previous run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub model: String,
    /// Milliseconds between the starts of two runs.
    #[serde(with = "crate::limits::millis")]
    #[schema(value_type = u64)]
    pub every: std::time::Duration,
    /// What runs: an incremental `import` (the default) or a deletion
    /// `reconcile`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub task: ScheduleTask,
}

/// What a schedule runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleTask {
    /// `junction.import-batch`: records changed since the cursor.
    #[default]
    Import,
    /// `junction.reconcile`: records the backend deleted.
    Reconcile,
}

/// A backend configuration that cannot be used; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendConfigError {
    #[error("backend {backend:?}: {field} is invalid: {reason}")]
    Field {
        backend: String,
        field: &'static str,
        reason: String,
    },
    #[error("backend {backend:?}: {source}")]
    Policy {
        backend: String,
        #[source]
        source: PolicyError,
    },
}

impl BackendConfig {
    fn bad(&self, field: &'static str, reason: impl Into<String>) -> BackendConfigError {
        BackendConfigError::Field {
            backend: self.name.clone(),
            field,
            reason: reason.into(),
        }
    }

    /// The base URL's origin as an allowlist entry.
    fn origin(&self) -> Result<String, BackendConfigError> {
        let uri: http::Uri = self
            .base_url
            .parse()
            .map_err(|e| self.bad("base_url", format!("{:?} is not a URL: {e}", self.base_url)))?;
        let target = parse_target(&uri).map_err(|e| self.bad("base_url", e.reason))?;
        Ok(format!(
            "{}://{}:{}",
            target.scheme, target.host, target.port
        ))
    }

    /// Check everything a call would trip over later.
    pub fn validate(&self) -> Result<(), BackendConfigError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(self.bad("name", "use 1 to 64 letters, digits, '-' or '_'"));
        }
        if self.kind.trim().is_empty() {
            return Err(self.bad("kind", "must not be empty"));
        }
        self.retry_policy()?;
        self.breaker.check().map_err(|e| self.bad("breaker", e))?;
        if let Some(n) = &self.notify {
            n.check().map_err(|e| self.bad("notify", e))?;
        }
        semver::Version::parse(&self.version).map_err(|e| {
            self.bad(
                "version",
                format!(
                    "{:?} is not a semver version such as 2.4.6: {e}",
                    self.version
                ),
            )
        })?;
        self.origin()?;
        if let Some(n) = self.page_size
            && !(1..=10_000).contains(&n)
        {
            return Err(self.bad(
                "page_size",
                format!("{n} records per page is out of range: use 1 to 10000"),
            ));
        }
        if self.limits.deadline.is_zero() {
            return Err(self.bad("limits.deadline", "must be above 0"));
        }
        for (i, s) in self.schedules.iter().enumerate() {
            if s.model.trim().is_empty() {
                return Err(self.bad("schedules", format!("entry {i} has no model")));
            }
            if s.every < std::time::Duration::from_secs(1) {
                return Err(self.bad(
                    "schedules",
                    format!("{}: every must be at least 1000 ms", s.model),
                ));
            }
        }
        if self.reconcile.max_delete_percent > 100 {
            return Err(self.bad(
                "reconcile.max_delete_percent",
                format!(
                    "{} is not a share: use 0 to 100",
                    self.reconcile.max_delete_percent
                ),
            ));
        }
        if self.limits.memory_bytes < 1 << 20 {
            return Err(self.bad("limits.memory_bytes", "must be at least 1 MiB"));
        }
        if let Some(auth) = &self.auth
            && auth.is_redacted_placeholder()
        {
            return Err(self.bad(
                "auth",
                "\"***\" is the placeholder the API shows instead of a credential, not a \
                 credential: send the real value (or an env/file reference)",
            ));
        }
        self.grants.validate().map_err(|e| self.bad("grants", e))?;
        if self.jobs.min_priority > 1_000_000 {
            return Err(self.bad(
                "jobs.min_priority",
                "must be at most 1000000, the lowest priority a job can have",
            ));
        }
        if self.jobs.workers == Some(0) {
            return Err(self.bad(
                "jobs.workers",
                "must be at least 1 (to stop a backend's jobs, pause its channel or remove the backend)",
            ));
        }
        if let Some(channel) = &self.jobs.channel {
            crate::queue::channels::check_name(channel)
                .map_err(|e| self.bad("jobs.channel", format!("{channel:?}: {e}")))?;
            if channel == "root" {
                return Err(self.bad(
                    "jobs.channel",
                    "must be below root (for example root.shop): the backend's jobs get a subtree of their own",
                ));
            }
        }
        self.policy(None).map(|_| ())
    }

    /// The egress policy; with `requests`, also limited to the hosts the
    /// connector asked for (and the base URL's origin).
    fn policy(&self, requests: Option<&Requests>) -> Result<EgressPolicy, BackendConfigError> {
        let origin = self.origin()?;
        let mut allow = vec![origin.clone()];
        allow.extend(self.allow.iter().cloned());
        let credential_origins = if self.auth_origins.is_empty() {
            vec![origin.clone()]
        } else {
            self.auth_origins.clone()
        };
        let policy_error = |source| BackendConfigError::Policy {
            backend: self.name.clone(),
            source,
        };
        // The credential goes only where it is meant to, and only to a
        // connector that asked for a secret.
        let auth = self
            .auth
            .as_ref()
            .filter(|_| requests.is_none_or(|r| !r.secrets.is_empty()));
        if self.auth.is_some() && auth.is_none() {
            // The author's likely mistake: the requests go out bare.
            tracing::warn!(
                backend = %self.name,
                "the backend has credentials, but its connectors' manifests name no secret, so none are added to their requests; \
                 declare the secret in the manifest (`secrets`)"
            );
        }
        let mut policy = EgressPolicy::new(&allow, &self.allow_internal, auth, self.egress.clone())
            .and_then(|p| p.credential_origins(&credential_origins))
            .and_then(|p| p.tls(&self.tls))
            .map_err(policy_error)?;
        if let Some(requests) = requests {
            let mut hosts = vec![origin];
            hosts.extend(requests.hosts.iter().cloned());
            policy = policy.requested_hosts(&hosts).map_err(policy_error)?;
        }
        Ok(policy)
    }

    /// Its own retry policy, if it sets one.
    pub fn retry_policy(&self) -> Result<Option<RetryPolicy>, BackendConfigError> {
        self.retry
            .as_ref()
            .map(|r| r.policy().map_err(|e| self.bad("retry", e)))
            .transpose()
    }

    /// The configuration as stored: its inline credential sealed.
    pub fn sealed(&self, key: &SecretKey) -> BackendConfig {
        BackendConfig {
            auth: self.auth.as_ref().map(|a| a.sealed(key)),
            notify: self
                .notify
                .as_ref()
                .map(|n| crate::queue::notify::NotifyConfig {
                    secret: n.secret.as_ref().map(|s| s.sealed(key)),
                    ..n.clone()
                }),
            webhooks: self.webhooks.as_ref().map(|w| BackendWebhooks {
                secret: w.secret.sealed(key),
            }),
            ..self.clone()
        }
    }

    /// The configuration as read back: its sealed credential opened.
    pub fn opened(&self, key: &SecretKey) -> Result<BackendConfig, SecretError> {
        let notify = match &self.notify {
            Some(n) => Some(crate::queue::notify::NotifyConfig {
                secret: n.secret.as_ref().map(|s| s.opened(key)).transpose()?,
                ..n.clone()
            }),
            None => None,
        };
        let webhooks = match &self.webhooks {
            Some(w) => Some(BackendWebhooks {
                secret: w.secret.opened(key)?,
            }),
            None => None,
        };
        Ok(BackendConfig {
            auth: self.auth.as_ref().map(|a| a.opened(key)).transpose()?,
            notify,
            webhooks,
            ..self.clone()
        })
    }

    /// The configuration with credentials replaced by `***`, for the
    /// admin API and the CLI (a reference to an environment variable or a
    /// file is shown: it is not the secret).
    pub fn redacted(&self) -> BackendConfig {
        fn hide(secret: &mut Secret) {
            if !secret.is_reference() {
                *secret = Secret::new("***");
            }
        }
        let mut c = self.clone();
        match &mut c.auth {
            Some(Auth::Bearer { token }) => hide(token),
            Some(Auth::Basic { password, .. }) => hide(password),
            Some(Auth::Header { value, .. }) => hide(value),
            None => {}
        }
        if let Some(secret) = c.notify.as_mut().and_then(|n| n.secret.as_mut()) {
            hide(secret);
        }
        if let Some(w) = c.webhooks.as_mut() {
            hide(&mut w.secret);
        }
        c
    }

    /// The context this backend's calls run in, on `services`, for a
    /// connector whose manifests request `requests`, keeping its
    /// connections in `pools` (the node's).
    pub fn context(
        &self,
        services: Services,
        requests: &Requests,
        pools: &Pools,
    ) -> Result<Arc<CallContext>, BackendConfigError> {
        self.validate()?;
        Ok(Arc::new(CallContext {
            backend: BackendInfo {
                name: self.name.clone(),
                kind: self.kind.clone(),
                version: self.version.clone(),
                base_url: self.base_url.clone(),
            },
            settings: serde_json::Value::Object(self.settings.clone()).to_string(),
            egress: Arc::new(self.policy(Some(requests))?.pooled_in(pools, &self.name)),
            limits: self.limits.clone(),
            services,
            grants: Arc::new(Grants::new(&self.name, requests, &self.grants, &self.jobs)),
        }))
    }
}

/// A backend's reconciliation settings (`reconcile = { delete = true,
/// max_delete_percent = 10 }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// Delete the local records the backend no longer has (each checked
    /// once more first); `false` only reports them.
    pub delete: bool,
    /// Refuse, without `confirm`, a run that would delete more than this
    /// share (0 to 100) of the model's bound records.
    pub max_delete_percent: u32,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            delete: true,
            max_delete_percent: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::egress::{Host, Scheme, Target};
    use crate::capabilities::memory::MemoryServices;

    fn shop() -> BackendConfig {
        serde_json::from_value(serde_json::json!({
            "name": "shop-eu",
            "kind": "magento",
            "version": "2.4.6",
            "base_url": "https://Shop.Example.com/",
            "allow": ["https://cdn.example.com"],
            "auth": {"type": "bearer", "token": "s3cret"},
            "settings": {"store": "default"},
        }))
        .unwrap()
    }

    #[test]
    fn a_page_size_out_of_range_is_refused_by_name() {
        let mut c = shop();
        for bad in [0, 10_001] {
            c.page_size = Some(bad);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("page_size") && e.contains("1 to 10000"), "{e}");
        }
        c.page_size = Some(500);
        c.validate().unwrap();
    }

    #[test]
    fn a_reconcile_share_above_100_is_refused_by_name() {
        let mut c = shop();
        c.reconcile.max_delete_percent = 150;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("reconcile.max_delete_percent") && e.contains("0 to 100"),
            "{e}"
        );
        c.reconcile.max_delete_percent = 100;
        c.validate().unwrap();
    }

    #[test]
    fn redacted_hides_credentials() {
        let v = serde_json::to_value(shop().redacted()).unwrap();
        assert_eq!(v["auth"]["token"], "***");
        assert!(!v.to_string().contains("s3cret"));
        assert_eq!(v["base_url"], "https://Shop.Example.com/");
    }

    #[test]
    fn a_backend_becomes_a_call_context() {
        let requests = Requests {
            hosts: ["https://cdn.example.com".to_string()].into(),
            ..Requests::default()
        };
        let ctx = shop()
            .context(
                Services::from_one(Arc::new(MemoryServices::default())),
                &requests,
                &Pools::default(),
            )
            .unwrap();
        assert_eq!(ctx.backend.name, "shop-eu");
        assert_eq!(ctx.settings, r#"{"store":"default"}"#);
        let allowed = |host: &str| {
            ctx.egress
                .allowlist()
                .find(&Target {
                    scheme: Scheme::Https,
                    host: Host::Name(host.into()),
                    port: 443,
                })
                .is_some()
        };
        assert!(
            allowed("shop.example.com"),
            "the base URL's origin is allowed"
        );
        assert!(allowed("cdn.example.com"));
        assert!(!allowed("evil.example.com"));
        assert!(!format!("{ctx:?}").contains("s3cret"));
    }

    type Change = Box<dyn Fn(&mut BackendConfig)>;

    #[test]
    fn bad_configuration_names_the_field() {
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|b| b.name = "shop eu".into()), "name"),
            (Box::new(|b| b.version = "2.4".into()), "version"),
            (Box::new(|b| b.base_url = "ftp://shop".into()), "base_url"),
            (Box::new(|b| b.base_url = "not a url".into()), "base_url"),
            (
                Box::new(|b| b.allow = vec!["shop.example.com".into()]),
                "allowlist entry",
            ),
            (
                Box::new(|b| b.allow_internal = vec!["nohost".into()]),
                "nohost",
            ),
            (
                Box::new(|b| b.limits.memory_bytes = 10),
                "limits.memory_bytes",
            ),
            (
                Box::new(|b| b.jobs.channel = Some("root".into())),
                "jobs.channel",
            ),
            (
                Box::new(|b| b.jobs.channel = Some("shop.x".into())),
                "jobs.channel",
            ),
            (
                Box::new(|b| b.jobs.min_priority = 2_000_000),
                "min_priority",
            ),
            (
                Box::new(|b| {
                    b.auth = Some(Auth::Bearer {
                        token: crate::capabilities::egress::Secret::new("***"),
                    })
                }),
                "placeholder",
            ),
            (
                Box::new(|b| b.grants.models = Some(vec!["product:steal".into()])),
                "grants",
            ),
            (
                Box::new(|b| b.auth_origins = vec!["https://*.example.com".into()]),
                "credential origin",
            ),
        ];
        for (change, needle) in cases {
            let mut b = shop();
            change(&mut b);
            let err = b.validate().unwrap_err().to_string();
            assert!(
                err.contains("shop") && err.contains(needle),
                "{needle}: {err}"
            );
        }
        let unknown = serde_json::from_value::<BackendConfig>(serde_json::json!({
            "name": "x", "kind": "k", "version": "1.0.0", "base_url": "http://h", "alow": []
        }));
        assert!(unknown.unwrap_err().to_string().contains("alow"));
    }
}
