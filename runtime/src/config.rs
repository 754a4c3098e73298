//! `junction.toml`, the service's configuration: where data lives, where
//! the admin API listens and how it is protected, how many jobs run, the
//! channels, default sandbox limits and the backends. Parsed strictly: an
//! unknown key, a wrong type or an unusable value is an error that names
//! the key, and nothing starts. `junction.example.toml` at the repository
//! root documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::BackendConfig;
use crate::host::HostConfig;
use crate::limits::SandboxLimits;
use crate::queue::channels::ChannelConfig;
use crate::queue::retry::{RetryConfig, RetryPolicy};
use crate::secrets::{SecretError, SecretKey};
use crate::storage::postgres::PgStorage;
use crate::storage::sqlite::SqliteStorage;
use crate::storage::{Storage, StorageError};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} could not be read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {key} is invalid: {reason}")]
    Key {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    database: Option<String>,
    database_schema: Option<String>,
    #[serde(default = "default_listen")]
    listen: String,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    #[serde(default = "default_workers")]
    workers: usize,
    /// The fraction of `workers` one backend may hold while others have
    /// work waiting.
    #[serde(default = "default_backend_share")]
    backend_share: f64,
    /// Milliseconds a started job's lease lasts without a heartbeat.
    #[serde(default = "default_job_lease")]
    job_lease: u64,
    channels: Option<String>,
    node: Option<String>,
    cache_dir: Option<PathBuf>,
    watch_dir: Option<PathBuf>,
    secret_key_file: Option<PathBuf>,
    #[serde(default = "default_max_component_bytes")]
    max_component_bytes: usize,
    /// Address space of the process that compiles a new component.
    #[serde(default = "default_compile_memory_bytes")]
    compile_memory_bytes: u64,
    /// Milliseconds a component's compilation may take.
    #[serde(default = "default_compile_timeout")]
    compile_timeout: u64,
    #[serde(default = "default_warm_instances")]
    warm_instances: u32,
    #[serde(default = "default_max_invocations")]
    max_invocations: u32,
    #[serde(default)]
    limits: Option<toml::Table>,
    /// Retry policies: `default`, and per job function by its name.
    #[serde(default)]
    retry: std::collections::BTreeMap<String, RetryConfig>,
    /// Hours finished jobs are kept: `default`, and per channel subtree.
    #[serde(default)]
    retention_hours: std::collections::BTreeMap<String, crate::queue::retention::Keep>,
    /// The failure webhook of backends without their own.
    notify: Option<crate::queue::notify::NotifyConfig>,
    #[serde(default)]
    webhooks: crate::api::hooks::WebhookSettings,
    /// Span export (`[telemetry]`; off by default).
    #[serde(default)]
    telemetry: crate::telemetry::TelemetryConfig,
    #[serde(default)]
    backends: Vec<toml::Table>,
}

fn default_listen() -> String {
    "127.0.0.1:7171".to_string()
}

fn default_workers() -> usize {
    8
}

fn default_backend_share() -> f64 {
    crate::queue::worker::PoolConfig::default().backend_share
}

fn default_job_lease() -> u64 {
    60_000
}

fn default_compile_memory_bytes() -> u64 {
    HostConfig::default().compile_memory_bytes
}

fn default_compile_timeout() -> u64 {
    HostConfig::default().compile_timeout.as_millis() as u64
}

fn default_max_component_bytes() -> usize {
    HostConfig::default().max_component_bytes
}

fn default_warm_instances() -> u32 {
    HostConfig::default().warm_instances
}

fn default_max_invocations() -> u32 {
    HostConfig::default().max_invocations
}

/// Where the data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, optionally in one schema of it.
    Postgres { url: String, schema: Option<String> },
}

impl Database {
    /// `sqlite://path` (relative to `base`) or `postgres://…`, with an
    /// optional PostgreSQL schema.
    pub fn from_url(url: &str, schema: Option<String>, base: &Path) -> Result<Database, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if schema.is_some() {
                return Err("a schema only applies to a postgres:// database".into());
            }
            Ok(Database::Sqlite(base.join(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres {
                url: url.to_string(),
                schema,
            })
        } else {
            Err(format!(
                "{:?} is not a sqlite:// or postgres:// URL (e.g. sqlite://junction-data/junction.db, postgres://junction@db.internal/junction)",
                url.split('@').next_back().unwrap_or(url)
            ))
        }
    }

    /// Open (creating and migrating as needed).
    pub async fn open(&self) -> Result<std::sync::Arc<dyn Storage>, StorageError> {
        Ok(match self {
            Database::Sqlite(path) => std::sync::Arc::new(SqliteStorage::open(path).await?),
            Database::Postgres { url, schema } => {
                std::sync::Arc::new(PgStorage::open(url, schema.as_deref()).await?)
            }
        })
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Database::Postgres { url, schema } => {
                // Never a password in messages.
                let shown = crate::storage::postgres::redact(url);
                match schema {
                    Some(s) => write!(f, "{shown} (schema {s})"),
                    None => f.write_str(&shown),
                }
            }
        }
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub path: PathBuf,
    pub database: Database,
    pub listen: SocketAddr,
    /// Required: every admin route but health needs it.
    pub admin_token: String,
    pub workers: usize,
    /// The fraction of `workers` one backend may hold while other
    /// backends' jobs wait (0 < share ≤ 1).
    pub backend_share: f64,
    /// How long a started job's lease lasts without a heartbeat: how soon
    /// a dead node's jobs return to the queue.
    pub job_lease: std::time::Duration,
    pub channels: Option<ChannelConfig>,
    pub node: Option<String>,
    pub cache_dir: Option<PathBuf>,
    /// Components dropped here are installed and activated.
    pub watch_dir: Option<PathBuf>,
    /// The key that seals backend credentials at rest (64 hex digits);
    /// `None`: `JUNCTION_SECRET_KEY`, else `secret.key` in the data folder.
    pub secret_key_file: Option<PathBuf>,
    /// Idle instances kept for the next call of a unit and backend.
    pub warm_instances: u32,
    /// Calls one instance serves before a fresh one replaces it.
    pub max_invocations: u32,
    /// Components larger than this are refused before compilation.
    pub max_component_bytes: usize,
    /// Bounds of the child process that compiles a new component.
    pub compile_memory_bytes: u64,
    pub compile_timeout: std::time::Duration,
    pub limits: SandboxLimits,
    /// The retry policy of jobs that neither their backend nor their
    /// function has one for (`[retry] default`).
    pub default_retry: RetryPolicy,
    /// Retry policies per job function (`[retry."function"]`).
    pub retry: std::collections::HashMap<String, RetryPolicy>,
    /// How long finished jobs are kept (`[retention_hours]`).
    pub retention: crate::queue::retention::Retention,
    /// The global failure webhook (`[notify]`).
    pub notify: Option<crate::queue::notify::NotifyConfig>,
    /// Webhook intake from backends (`[webhooks]`; off by default).
    pub webhooks: crate::api::hooks::WebhookSettings,
    /// Span export over OTLP (`[telemetry]`; off by default).
    pub telemetry: crate::telemetry::TelemetryConfig,
    pub backends: Vec<BackendConfig>,
}

impl ServiceConfig {
    /// Read and check `path`; relative paths in it are relative to its
    /// folder.
    pub fn load(path: &Path) -> Result<ServiceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ServiceConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let key = |key: &str, reason: String| ConfigError::Key {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let database = match (&file.database, &file.data_dir) {
            (Some(_), Some(_)) => {
                return Err(key(
                    "database",
                    "give either database or data_dir, not both".into(),
                ));
            }
            (Some(url), None) => Database::from_url(url, file.database_schema.clone(), base)
                .map_err(|reason| key("database", reason))?,
            (None, dir) => Database::Sqlite(
                base.join(dir.clone().unwrap_or_else(|| "junction-data".into()))
                    .join("junction.db"),
            ),
        };
        if file.database_schema.is_some() && !matches!(database, Database::Postgres { .. }) {
            return Err(key(
                "database_schema",
                "only applies to a postgres:// database".into(),
            ));
        }
        let listen: SocketAddr = file.listen.parse().map_err(|e| {
            key(
                "listen",
                format!(
                    "{:?} is not an address such as 127.0.0.1:7171: {e}",
                    file.listen
                ),
            )
        })?;
        let admin_token = match (&file.admin_token, &file.admin_token_file) {
            (Some(_), Some(_)) => {
                return Err(key(
                    "admin_token",
                    "give either admin_token or admin_token_file, not both".into(),
                ));
            }
            (Some(t), None) => t.clone(),
            (None, Some(f)) => {
                let f = base.join(f);
                std::fs::read_to_string(&f)
                    .map_err(|e| {
                        key(
                            "admin_token_file",
                            format!("{} could not be read: {e}", f.display()),
                        )
                    })?
                    .trim()
                    .to_string()
            }
            (None, None) => {
                return Err(key(
                    "admin_token",
                    "missing: set admin_token, or admin_token_file to a file holding it (e.g. `openssl rand -hex 32 > admin.token`)".into(),
                ));
            }
        };
        if admin_token.len() < 16 {
            return Err(key(
                "admin_token",
                "must be at least 16 characters (e.g. `openssl rand -hex 32`)".into(),
            ));
        }
        if file.max_invocations == 0 {
            return Err(key(
                "max_invocations",
                "must be at least 1 (1 gives every call a fresh instance)".into(),
            ));
        }
        if file.workers == 0 {
            return Err(key("workers", "must be at least 1".into()));
        }
        if !(file.backend_share > 0.0 && file.backend_share <= 1.0) {
            return Err(key(
                "backend_share",
                "must be above 0 and at most 1 (the fraction of workers one backend may hold while others wait; 0.5 is the default)".into(),
            ));
        }
        if file.compile_memory_bytes < 256 << 20 {
            return Err(key(
                "compile_memory_bytes",
                "must be at least 268435456 (256 MiB); compiling a Python connector takes about 1 GiB".into(),
            ));
        }
        if file.compile_timeout < 1_000 {
            return Err(key("compile_timeout", "must be at least 1000 (ms)".into()));
        }
        if file.max_component_bytes < 1 << 20 {
            return Err(key(
                "max_component_bytes",
                "must be at least 1048576 (1 MiB); connectors are a few MiB".into(),
            ));
        }
        if file.job_lease < 1_000 {
            return Err(key("job_lease", "must be at least 1000 (ms)".into()));
        }
        let channels = file
            .channels
            .as_deref()
            .map(ChannelConfig::parse)
            .transpose()
            .map_err(|e| key("channels", e.to_string()))?;
        let limits_table = file.limits.clone().unwrap_or_default();
        let limits: SandboxLimits = toml::Value::Table(limits_table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| key("limits", e.to_string().trim_end().to_string()))?;
        let mut default_retry = RetryPolicy::default();
        let mut retry = std::collections::HashMap::new();
        for (name, config) in &file.retry {
            let policy = config
                .policy()
                .map_err(|reason| key(&format!("retry.{name}"), reason))?;
            if name == "default" {
                default_retry = policy;
            } else {
                retry.insert(name.clone(), policy);
            }
        }
        let retention = crate::queue::retention::Retention::parse(&file.retention_hours)
            .map_err(|reason| key("retention_hours", reason))?;
        file.webhooks
            .check()
            .map_err(|reason| key("webhooks", reason))?;
        if let Some(n) = &file.notify {
            n.check().map_err(|reason| key("notify", reason))?;
        }
        file.telemetry
            .validate()
            .map_err(|e| key(&format!("telemetry.{}", e.key), e.reason))?;
        let mut backends = Vec::new();
        for (i, table) in file.backends.iter().enumerate() {
            let name = table.get("name").and_then(|v| v.as_str()).map_or_else(
                || format!("backends[{i}]"),
                |n| format!("backends[{i}] ({n})"),
            );
            let mut table = table.clone();
            // The service's default limits, under what the backend sets.
            let mut merged = limits_table.clone();
            if let Some(own) = table.get("limits").and_then(|v| v.as_table()) {
                merged.extend(own.clone());
            }
            table.insert("limits".into(), toml::Value::Table(merged));
            let config: BackendConfig = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| key(&name, e.to_string().trim_end().to_string()))?;
            config.validate().map_err(|e| key(&name, e.to_string()))?;
            if backends
                .iter()
                .any(|b: &BackendConfig| b.name == config.name)
            {
                return Err(key(&name, "another backend has the same name".into()));
            }
            backends.push(config);
        }
        Ok(ServiceConfig {
            path: path.to_path_buf(),
            database,
            listen,
            admin_token,
            workers: file.workers,
            backend_share: file.backend_share,
            job_lease: std::time::Duration::from_millis(file.job_lease),
            channels,
            node: file.node,
            cache_dir: file.cache_dir.map(|d| base.join(d)),
            watch_dir: file.watch_dir.map(|d| base.join(d)),
            secret_key_file: file.secret_key_file.map(|d| base.join(d)),
            warm_instances: file.warm_instances,
            max_invocations: file.max_invocations,
            max_component_bytes: file.max_component_bytes,
            compile_memory_bytes: file.compile_memory_bytes,
            compile_timeout: std::time::Duration::from_millis(file.compile_timeout),
            limits,
            default_retry,
            retention,
            notify: file.notify.clone(),
            webhooks: file.webhooks,
            telemetry: file.telemetry.clone(),
            retry,
            backends,
        })
    }
}

impl ServiceConfig {
    /// The key that seals backend credentials at rest: from
    /// `JUNCTION_SECRET_KEY`, else `secret_key_file` (which must exist),
    /// else `secret.key` beside the SQLite database (or, on PostgreSQL,
    /// beside this file), generated owner-only on first start.
    /// The folder of the service's own files: the SQLite database's, or
    /// junction.toml's on PostgreSQL.
    pub fn data_folder(&self) -> PathBuf {
        match &self.database {
            Database::Sqlite(file) => file.parent().map(Path::to_path_buf),
            Database::Postgres { .. } => self.path.parent().map(Path::to_path_buf),
        }
        .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Where compiled components are cached: `cache_dir`, else `cache`
    /// in the data folder (a restart then loads Python and JavaScript
    /// connectors in milliseconds instead of compiling them again).
    pub fn cache_folder(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_folder().join("cache"))
    }

    pub fn secret_key(&self) -> Result<SecretKey, SecretError> {
        if let Ok(hex) = std::env::var("JUNCTION_SECRET_KEY") {
            return SecretKey::from_hex(&hex, "JUNCTION_SECRET_KEY");
        }
        if let Some(file) = &self.secret_key_file {
            return SecretKey::load(file);
        }
        SecretKey::load_or_create(&self.data_folder().join("secret.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceConfig, ConfigError> {
        ServiceConfig::parse(Path::new("/etc/junction/junction.toml"), text)
    }

    const TOKEN: &str = "admin_token = \"0123456789abcdef\"\n";

    #[test]
    fn a_minimal_file_gets_defaults() {
        let c = parse(TOKEN).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7171");
        assert_eq!(
            c.database,
            Database::Sqlite("/etc/junction/junction-data/junction.db".into())
        );
        assert_eq!(c.workers, 8);
        // The compiled-component cache is on, in the data folder.
        assert_eq!(
            c.cache_folder(),
            Path::new("/etc/junction/junction-data/cache")
        );
        let pg = parse(&format!("{TOKEN}database = \"postgres://db/j\"\n")).unwrap();
        assert_eq!(pg.cache_folder(), Path::new("/etc/junction/cache"));
        let own = parse(&format!("{TOKEN}cache_dir = \"c\"\n")).unwrap();
        assert_eq!(own.cache_folder(), Path::new("/etc/junction/c"));
        let e = parse(&format!("{TOKEN}backend_share = 0\n")).unwrap_err();
        assert!(e.to_string().contains("backend_share"), "{e}");
        let e = parse(&format!("{TOKEN}compile_memory_bytes = 1000\n")).unwrap_err();
        assert!(e.to_string().contains("compile_memory_bytes"), "{e}");
    }

    #[test]
    fn retention_is_read_per_channel_and_bad_values_name_the_key() {
        let c = parse(&format!(
            "{TOKEN}[retention_hours]\ndefault = 48\n\"root.shop\" = 2\n\"root.audit\" = \"forever\"\n"
        ))
        .unwrap();
        let h = |n: u64| Some(std::time::Duration::from_secs(n * 3600));
        assert_eq!(c.retention.of("root.crm"), h(48));
        assert_eq!(c.retention.of("root.shop.orders"), h(2));
        assert_eq!(c.retention.of("root.audit"), None);
        let e = parse(&format!("{TOKEN}[retention_hours]\n\"root.shop\" = 0\n")).unwrap_err();
        assert!(e.to_string().contains("retention_hours"), "{e}");
        assert!(e.to_string().contains("forever"), "{e}");
        // Without the table: a week for every channel.
        let c = parse(TOKEN).unwrap();
        assert_eq!(c.retention.of("root"), h(168));
    }

    #[test]
    fn the_global_webhook_is_read_and_checked() {
        let c = parse(&format!(
            "{TOKEN}[notify]\nurl = \"https://hooks.example.com/j\"\nsecret = {{ env = \"HOOK\" }}\ninterval = 5000\n"
        ))
        .unwrap();
        let n = c.notify.unwrap();
        assert_eq!(
            (n.url.as_str(), n.interval),
            ("https://hooks.example.com/j", 5000)
        );
        let e = parse(&format!("{TOKEN}[webhooks]\nreplay_window_seconds = 0\n")).unwrap_err();
        assert!(e.to_string().contains("replay_window_seconds"), "{e}");
        let c = parse(&format!("{TOKEN}[webhooks]\nenabled = true\n")).unwrap();
        assert!(c.webhooks.enabled && c.webhooks.max_body_bytes == 1 << 20);
        let e = parse(&format!("{TOKEN}[notify]\nurl = \"hooks\"\n")).unwrap_err();
        assert!(e.to_string().contains("notify is invalid"), "{e}");
        assert!(parse(TOKEN).unwrap().notify.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("admin_token = \"0123456789abcdef\"\nworkerz = 3\n").unwrap_err();
        assert!(e.to_string().contains("workerz"), "{e}");
        let e = parse("listen = \"nowhere\"\nadmin_token = \"0123456789abcdef\"\n").unwrap_err();
        assert!(e.to_string().contains("listen is invalid"), "{e}");
        let e = parse("").unwrap_err();
        assert!(
            e.to_string().contains("admin_token is invalid: missing"),
            "{e}"
        );
        let e = parse(&format!("{TOKEN}channels = \"root:x\"\n")).unwrap_err();
        assert!(e.to_string().contains("channels is invalid"), "{e}");
        let e = parse(&format!(
            "{TOKEN}[[backends]]\nname = \"shop\"\nkind = \"magento\"\nversion = \"two\"\nbase_url = \"https://shop.example.com\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("backends[0] (shop)"), "{e}");
        assert!(e.to_string().contains("version"), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../junction.example.toml")
            .replace("admin_token_file = \"admin.token\"", TOKEN.trim());
        let c = parse(&text).unwrap();
        assert_eq!(c.backends.len(), 1);
        assert_eq!(c.backends[0].limits.deadline.as_millis(), 60_000);
        assert_eq!(c.backends[0].limits.memory_bytes, 64 << 20);
        assert_eq!(c.backends[0].schedules.len(), 3);
        assert_eq!(
            c.backends[0].schedules[2].task,
            crate::backend::ScheduleTask::Reconcile
        );
        assert_eq!(c.backends[0].reconcile.max_delete_percent, 10);
        assert_eq!(c.webhooks, crate::api::hooks::WebhookSettings::default());
        assert!(c.channels.is_some());
    }

    #[test]
    fn backends_inherit_the_default_limits() {
        let c = parse(&format!(
            "{TOKEN}[limits]\ndeadline = 5000\nmemory_bytes = 33554432\n\n[[backends]]\nname = \"shop\"\nkind = \"magento\"\nversion = \"2.4.6\"\nbase_url = \"https://shop.example.com\"\nlimits = {{ deadline = 9000 }}\nschedules = [{{ model = \"product\", every = 300000 }}]\n"
        ))
        .unwrap();
        let b = &c.backends[0];
        assert_eq!(b.limits.deadline.as_millis(), 9000);
        assert_eq!(b.limits.memory_bytes, 32 << 20);
        assert_eq!(b.schedules[0].every.as_secs(), 300);
    }

    #[test]
    fn retry_policies_and_breakers_are_read_and_their_mistakes_named() {
        let c = parse(&format!(
            "{TOKEN}[retry]\ndefault = {{ base = 100, cap = 1000 }}\n\"junction.import-record\" = {{ pattern = {{ \"1\" = 10 }} }}\n\n[[backends]]\nname = \"shop\"\nkind = \"magento\"\nversion = \"2.4.6\"\nbase_url = \"https://shop.example.com\"\nretry = {{ base = 50 }}\nbreaker = {{ failures = 2, cool_down = 1000, max_cool_down = 4000 }}\n"
        ))
        .unwrap();
        assert_eq!(
            c.default_retry,
            RetryPolicy::Exponential {
                base: std::time::Duration::from_millis(100),
                cap: std::time::Duration::from_millis(1000)
            }
        );
        assert!(c.retry.contains_key("junction.import-record"));
        let b = &c.backends[0];
        assert!(b.retry_policy().unwrap().is_some());
        assert_eq!(b.breaker.failures, 2);

        let e = parse(&format!("{TOKEN}[retry]\ndefault = {{ base = 0 }}\n")).unwrap_err();
        assert!(e.to_string().contains("retry.default"), "{e}");
        assert!(e.to_string().contains("at least 1 ms"), "{e}");
        let e = parse(&format!(
            "{TOKEN}[[backends]]\nname = \"shop\"\nkind = \"magento\"\nversion = \"2.4.6\"\nbase_url = \"https://shop.example.com\"\nbreaker = {{ cool_down = 5000, max_cool_down = 10 }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("breaker"), "{e}");
        assert!(e.to_string().contains("shorter than cool_down"), "{e}");
    }
}
