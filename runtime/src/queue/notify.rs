//! Failure notifications: a webhook told when jobs fail for good, a
//! circuit breaker opens or an event goes dead.
//!
//! Lifecycle: each such failure is stored as a notification for its
//! target (the backend's own `notify`, else the global `[notify]`; nothing
//! when neither is configured), in the database, so a crash or a webhook
//! that is down loses none. Storing one makes sure a `junction.notify` job
//! for the target is waiting, due one `interval` later (its identity key
//! keeps it to one per target on every node); that job posts everything
//! stored for the target in one batch, then deletes what was sent. A job
//! that finds more after sending, or a webhook that fails, tries again one
//! interval later: never more than one call per interval, whatever fails.
//! At most [`MAX_STORED`] notifications wait per target; past that they are
//! counted, and the next batch says how many were dropped.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::job::Job;
use super::worker::{Handled, Handler, JobFailure};
use super::{JobSpec, Queue, now_ms};
use crate::secrets::Secret;

pub use crate::storage::types::Notification;

/// The job function that posts one target's batch.
pub const NOTIFY: &str = "junction.notify";
/// Notifications kept waiting per target, at most.
pub const MAX_STORED: u64 = 10_000;
/// Notifications one call carries, at most (the rest go one interval on).
pub const MAX_BATCH: u32 = 500;
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

fn default_header() -> String {
    "x-junction-secret".to_string()
}

fn default_interval() -> u64 {
    60_000
}

/// Where and how often to notify (`[notify]`, or a backend's `notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `http://` or `https://` URL the batches are POSTed to.
    pub url: String,
    /// Sent in `header` with every call, so the receiver knows it is us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    #[serde(default = "default_header")]
    pub header: String,
    /// Milliseconds between two calls, at least (1 s to 1 day).
    #[serde(default = "default_interval")]
    pub interval: u64,
}

impl NotifyConfig {
    /// What is wrong with it, said for the operator.
    pub fn check(&self) -> Result<(), String> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("url {:?} is not a URL: {e}", self.url))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "url {:?} must be an http:// or https:// URL with a host",
                self.url
            ));
        }
        http::HeaderName::from_bytes(self.header.as_bytes())
            .map_err(|_| format!("header {:?} is not an HTTP header name", self.header))?;
        if !(1_000..=86_400_000).contains(&self.interval) {
            return Err(format!(
                "interval {} ms is outside 1000 (a second) to 86400000 (a day)",
                self.interval
            ));
        }
        Ok(())
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyKind {
    JobFailed,
    EventDead,
    BreakerOpened,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::JobFailed => "job-failed",
            NotifyKind::EventDead => "event-dead",
            NotifyKind::BreakerOpened => "breaker-opened",
        }
    }
}

impl Notification {
    pub fn new(
        kind: NotifyKind,
        backend: Option<&str>,
        subject: &str,
        message: &str,
        at: i64,
    ) -> Notification {
        Notification {
            id: 0,
            kind: kind.as_str().to_string(),
            backend: backend.map(str::to_string),
            subject: subject.to_string(),
            // Error text may come from a connector: made inert for the
            // receiver's terminals and logs, and bounded.
            message: crate::text::truncate(&crate::text::clean(message), MAX_MESSAGE),
            at,
        }
    }
}

/// Bytes of a notification's message, at most.
pub const MAX_MESSAGE: usize = 1000;

/// The global target's name; a backend's is `backend:<name>`.
pub const GLOBAL: &str = "global";

/// The configured targets, as this node knows them (reloadable).
#[derive(Debug, Default)]
pub struct Targets {
    targets: RwLock<HashMap<String, NotifyConfig>>,
}

impl Targets {
    /// Set (`Some`) or clear (`None`) a target: [`GLOBAL`], or a backend's
    /// `backend:<name>`.
    pub fn set(&self, target: &str, config: Option<NotifyConfig>) {
        let mut all = self.targets.write().unwrap_or_else(|p| p.into_inner());
        match config {
            Some(c) => all.insert(target.to_string(), c),
            None => all.remove(target),
        };
    }

    /// Every configured target's name.
    pub fn names(&self) -> Vec<String> {
        self.targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub fn get(&self, target: &str) -> Option<NotifyConfig> {
        self.targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .cloned()
    }

    /// Where a failure of `backend` (if any) is told: its own target, else
    /// the global one.
    pub fn target_for(&self, backend: Option<&str>) -> Option<(String, NotifyConfig)> {
        let all = self.targets.read().unwrap_or_else(|p| p.into_inner());
        backend
            .map(|b| format!("backend:{b}"))
            .and_then(|t| all.get(&t).map(|c| (t, c.clone())))
            .or_else(|| all.get(GLOBAL).map(|c| (GLOBAL.to_string(), c.clone())))
    }
}

impl Queue {
    /// Store a notification for its target and make sure a call is
    /// coming; nothing when no target is configured. Failures to store
    /// are logged, never raised: the failure itself is already recorded.
    pub async fn notify(
        &self,
        kind: NotifyKind,
        backend: Option<&str>,
        subject: &str,
        message: &str,
    ) {
        let Some((target, config)) = self.notify.target_for(backend) else {
            return;
        };
        let note = Notification::new(kind, backend, subject, message, now_ms());
        match self.storage.notify_add(&target, &note, MAX_STORED).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%e, target, "storing a notification failed");
                return;
            }
        }
        if let Err(e) = self.schedule_notify(&target, &config).await {
            tracing::warn!(%e, target, "scheduling a notification call failed");
        }
    }

    /// Make sure every configured target with notifications waiting has
    /// its call coming (housekeeping: catches one stored while the last
    /// call was finishing).
    pub async fn sweep_notifications(&self) {
        for target in self.notify.names() {
            let Some(config) = self.notify.get(&target) else {
                continue;
            };
            match self.storage.notify_take(&target, 1).await {
                Ok((waiting, dropped)) if !waiting.is_empty() || dropped > 0 => {
                    if let Err(e) = self.schedule_notify(&target, &config).await {
                        tracing::warn!(%e, target, "scheduling a notification call failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%e, target, "reading notifications failed"),
            }
        }
    }

    /// The target's call, due one interval from now (or the one already
    /// waiting).
    pub(crate) async fn schedule_notify(
        &self,
        target: &str,
        config: &NotifyConfig,
    ) -> Result<(), super::QueueError> {
        let mut spec = JobSpec::new(NOTIFY, json!({"target": target}))
            .identity_key(&format!("notify:{target}"));
        spec.delay = Some(config.interval());
        spec.request.max_retries = Some(0);
        spec.request.description = Some(format!("notify {target}'s webhook"));
        self.enqueue(spec).await.map(drop)
    }
}

/// The body of one call.
fn batch(node: &str, target: &str, notes: &[Notification], dropped: u64) -> serde_json::Value {
    json!({
        "source": "junction",
        "node": node,
        "target": target,
        "notifications": notes,
        "dropped": dropped,
    })
}

/// Runs `junction.notify`.
pub(crate) struct NotifyHandler {
    pub queue: Arc<Queue>,
    pub node: String,
}

#[async_trait]
impl Handler for NotifyHandler {
    async fn run(&self, job: &Job) -> Handled {
        let target = serde_json::from_str::<serde_json::Value>(&job.args)
            .ok()
            .and_then(|v| v["target"].as_str().map(str::to_string));
        let Some(target) = target else {
            return Handled::failed(JobFailure::fail(
                "invalid-args",
                "junction.notify's arguments name the target: {\"target\": \"global\"}",
            ));
        };
        Handled {
            result: Some(self.send(&target).await),
            ..Handled::default()
        }
    }
}

impl NotifyHandler {
    async fn send(&self, target: &str) -> Result<Option<String>, JobFailure> {
        let storage = self.queue.storage();
        let Some(config) = self.queue.notify.get(target) else {
            // Unconfigured since: what waits stays for when it is back.
            return Ok(Some(format!(
                "{target} has no webhook configured now; its notifications wait"
            )));
        };
        let storage_error = |e: crate::storage::StorageError| JobFailure::Retry {
            after: Some(config.interval()),
            count_try: false,
            kind: "storage".into(),
            message: e.to_string(),
        };
        let (notes, dropped) = storage
            .notify_take(target, MAX_BATCH)
            .await
            .map_err(storage_error)?;
        if notes.is_empty() && dropped == 0 {
            return Ok(Some("nothing to send".into()));
        }
        let body = batch(&self.node, target, &notes, dropped);
        let secret = match &config.secret {
            Some(s) => Some(s.resolve().map_err(|e| JobFailure::Retry {
                after: Some(config.interval()),
                count_try: false,
                kind: "config".into(),
                message: format!("{target}'s webhook secret: {e}"),
            })?),
            None => None,
        };
        match post(&config, secret.as_deref(), &body).await {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => {
                return Err(retry_later(
                    &config,
                    format!("{} answered {status}", config.url),
                ));
            }
            Err(e) => return Err(retry_later(&config, format!("{}: {e}", config.url))),
        }
        let ids: Vec<i64> = notes.iter().map(|n| n.id).collect();
        storage
            .notify_done(target, &ids, dropped)
            .await
            .map_err(storage_error)?;
        // More waiting (a full batch, or stored while this one was sent):
        // the same job goes again one interval on.
        let (left, left_dropped) = storage
            .notify_take(target, 1)
            .await
            .map_err(storage_error)?;
        if !left.is_empty() || left_dropped > 0 {
            return Err(JobFailure::Retry {
                after: Some(config.interval()),
                count_try: false,
                kind: "more".into(),
                message: format!("sent {}; more are waiting", notes.len()),
            });
        }
        Ok(Some(format!("sent {} notifications", notes.len())))
    }
}

fn retry_later(config: &NotifyConfig, message: String) -> JobFailure {
    tracing::warn!(%message, "a failure notification could not be delivered");
    JobFailure::Retry {
        after: Some(config.interval()),
        count_try: false,
        kind: "webhook".into(),
        message,
    }
}

/// POST `body` to the webhook; its status.
async fn post(
    config: &NotifyConfig,
    secret: Option<&str>,
    body: &serde_json::Value,
) -> Result<u16, String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = config.url.parse().map_err(|e| format!("{e}"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let call = async {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connecting failed: {e}"))?;
        let io: Box<dyn Io> = if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("invalid TLS server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(crate::tls::default_config())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS failed: {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| format!("HTTP failed: {e}"))?;
        tokio::spawn(conn);
        let mut request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                http::header::HOST,
                uri.authority().map_or(host.as_str(), |a| a.as_str()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "junction-notify");
        if let Some(secret) = secret {
            request = request.header(config.header.as_str(), secret);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .map_err(|e| format!("building the request failed: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP failed: {e}"))?;
        let status = response.status().as_u16();
        // Drained (bounded by the timeout) so the connection ends cleanly.
        let _ = response.into_body().collect().await;
        Ok(status)
    };
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> NotifyConfig {
        NotifyConfig {
            url: url.into(),
            secret: None,
            header: default_header(),
            interval: default_interval(),
        }
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(config("https://hooks.example.com/x").check().is_ok());
        for (c, needle) in [
            (config("ftp://x/"), "http:// or https://"),
            (config("not a url"), "not a URL"),
            (
                NotifyConfig {
                    interval: 10,
                    ..config("http://x/")
                },
                "interval 10 ms",
            ),
            (
                NotifyConfig {
                    header: "bad header".into(),
                    ..config("http://x/")
                },
                "not an HTTP header name",
            ),
        ] {
            let e = c.check().unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn a_connectors_error_text_is_made_inert_and_bounded() {
        let hostile = format!("\u{1b}[2J\rfake line\n{}", "x".repeat(5000));
        let n = Notification::new(NotifyKind::JobFailed, Some("shop"), "job 1", &hostile, 5);
        // The cut is noted after the kept bytes.
        assert!(n.message.len() <= MAX_MESSAGE + 40, "{}", n.message.len());
        assert!(n.message.ends_with("more bytes cut)"), "{}", n.message);
        assert!(!n.message.contains('\u{1b}') && !n.message.contains('\r'));
        assert!(!n.message.contains('\n'), "{}", &n.message[..40]);
    }

    #[test]
    fn a_backends_own_target_wins_over_the_global_one() {
        let t = Targets::default();
        assert!(t.target_for(Some("shop")).is_none());
        t.set(GLOBAL, Some(config("http://global/")));
        assert_eq!(t.target_for(Some("shop")).unwrap().0, GLOBAL);
        assert_eq!(t.target_for(None).unwrap().0, GLOBAL);
        t.set("backend:shop", Some(config("http://shop/")));
        assert_eq!(t.target_for(Some("shop")).unwrap().0, "backend:shop");
        assert_eq!(t.target_for(Some("crm")).unwrap().0, GLOBAL);
    }
}
