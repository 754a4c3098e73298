//! `junction serve --config junction.toml`: a node with the admin API and
//! the dashboard. The config's backends are stored at start and on every
//! reload (SIGHUP or `POST /api/v1/reload`); channels are reloaded too.
//! Backends added through the API and absent from the file are kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;

use junction_runtime::api::{ApiState, Reload, Reloaded, app};
use junction_runtime::config::ServiceConfig;
use junction_runtime::host::HostConfig;
use junction_runtime::node::{Node, NodeConfig};
use junction_runtime::queue::Queue;
use junction_runtime::sync::Synchronizer;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// How long running jobs may take to finish on shutdown, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub grace_ms: u64,
}

/// Store the config's backends; returns one line per backend.
async fn apply_backends(
    sync: &Synchronizer,
    config: &ServiceConfig,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for b in &config.backends {
        let waiting = sync
            .store_backend(b)
            .await
            .with_context(|| format!("storing backend {:?}", b.name))?;
        lines.push(match waiting {
            None => format!("backend {} ready", b.name),
            Some(e) => format!("backend {} stored, not ready yet: {e}", b.name),
        });
    }
    Ok(lines)
}

struct FileReload {
    path: PathBuf,
    queue: Arc<Queue>,
    sync: Arc<Synchronizer>,
    /// What only a restart changes.
    started: ServiceConfig,
    /// The admin token in force, so a rotation is reported once.
    token: std::sync::Mutex<String>,
}

#[async_trait]
impl Reload for FileReload {
    fn declares_backend(&self, name: &str) -> Option<String> {
        // Read now: the file may have changed since the last reload.
        let config = ServiceConfig::load(&self.path).ok()?;
        config
            .backends
            .iter()
            .any(|b| b.name == name)
            .then(|| self.path.display().to_string())
    }

    async fn reload(&self) -> Result<Reloaded, String> {
        let config = ServiceConfig::load(&self.path).map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        if let Some(channels) = &config.channels {
            self.queue.set_channels(channels.clone());
            lines.push("channels reloaded".to_string());
        }
        self.queue
            .set_retry_policies(config.default_retry.clone(), config.retry.clone());
        self.queue.set_retention(config.retention.clone());
        self.queue.notify.set(
            junction_runtime::queue::notify::GLOBAL,
            config.notify.clone(),
        );
        lines.push("retry policies reloaded".to_string());
        lines.push(format!(
            "webhook intake {}",
            if config.webhooks.enabled { "on" } else { "off" }
        ));
        lines.extend(
            apply_backends(&self.sync, &config)
                .await
                .map_err(|e| format!("{e:#}"))?,
        );
        let s = &self.started;
        for (changed, key) in [
            (config.listen != s.listen, "listen"),
            (config.database != s.database, "data_dir/database"),
            (config.workers != s.workers, "workers"),
            (config.backend_share != s.backend_share, "backend_share"),
            (config.job_lease != s.job_lease, "job_lease"),
            (config.node != s.node, "node"),
            (config.watch_dir != s.watch_dir, "watch_dir"),
            (config.cache_dir != s.cache_dir, "cache_dir"),
            (config.warm_instances != s.warm_instances, "warm_instances"),
            (
                config.max_invocations != s.max_invocations,
                "max_invocations",
            ),
            (
                config.max_component_bytes != s.max_component_bytes,
                "max_component_bytes",
            ),
            (
                config.compile_memory_bytes != s.compile_memory_bytes
                    || config.compile_timeout != s.compile_timeout,
                "compile_memory_bytes/compile_timeout",
            ),
            (
                config.secret_key_file != s.secret_key_file,
                "secret_key_file",
            ),
        ] {
            if changed {
                lines.push(format!("{key} changed; that takes a restart"));
            }
        }
        let mut token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if config.admin_token != *token {
            lines.push("admin token rotated".to_string());
            token.clone_from(&config.admin_token);
        }
        drop(token);
        Ok(Reloaded {
            summary: lines.join("; "),
            admin_token: config.admin_token,
            webhooks: config.webhooks,
        })
    }
}

pub async fn run(
    args: ServeArgs,
    config_path: &Path,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = ServiceConfig::load(config_path).map_err(|e| {
        let hint = if !config_path.exists() {
            format!(
                "; copy {} next to it and edit it",
                Path::new("junction.example.toml").display()
            )
        } else {
            String::new()
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    let storage = config.database.open().await?;
    let secret_key = std::sync::Arc::new(config.secret_key()?);
    let defaults = NodeConfig::default();
    let node = Node::start(
        storage,
        NodeConfig {
            name: config.node.clone().unwrap_or(defaults.name.clone()),
            concurrency: config.workers,
            backend_share: config.backend_share,
            lease: config.job_lease,
            channels: config.channels.clone(),
            host: HostConfig {
                // junction.toml's cache_dir, else --cache-dir, else the
                // data folder's `cache`: on by default.
                cache_dir: Some(
                    config
                        .cache_dir
                        .clone()
                        .or(cache_dir)
                        .unwrap_or_else(|| config.cache_folder()),
                ),
                warm_instances: config.warm_instances,
                max_invocations: config.max_invocations,
                max_component_bytes: config.max_component_bytes,
                // New components compile in a child of this executable,
                // bounded in memory and time.
                compiler: std::env::current_exe().ok(),
                compile_memory_bytes: config.compile_memory_bytes,
                compile_timeout: config.compile_timeout,
                ..HostConfig::default()
            },
            secret_key,
            ..defaults
        },
    )
    .await?;
    node.queue
        .set_retry_policies(config.default_retry.clone(), config.retry.clone());
    node.queue.set_retention(config.retention.clone());
    node.queue.notify.set(
        junction_runtime::queue::notify::GLOBAL,
        config.notify.clone(),
    );
    for line in apply_backends(&node.sync, &config).await? {
        eprintln!("{line}");
    }
    // Aborted when the runtime shuts down with the process.
    let _watch = config.watch_dir.as_ref().map(|dir| {
        eprintln!("watching {} for .wasm components", dir.display());
        super::dropdir::start(
            dir.clone(),
            node.sync.clone(),
            Duration::from_secs(1),
            |line| eprintln!("{line}"),
        )
    });
    let reload = Arc::new(FileReload {
        path: config_path.to_path_buf(),
        queue: node.queue.clone(),
        sync: node.sync.clone(),
        started: config.clone(),
        token: std::sync::Mutex::new(config.admin_token.clone()),
    });
    let state = ApiState::new(&node, &config.admin_token, Some(reload));
    state.set_webhooks(config.webhooks);
    serve_until_stopped(
        node,
        state,
        config.listen,
        &config_path.display().to_string(),
        Duration::from_millis(args.grace_ms),
    )
    .await
}

/// Serve the admin API, the dashboard and /metrics of `node` on `listen`
/// until SIGINT or SIGTERM; SIGHUP reloads the configuration (if the
/// state has a reloader). Then stop the node, giving running jobs `grace`.
pub async fn serve_until_stopped(
    node: Node,
    state: ApiState,
    listen: std::net::SocketAddr,
    config_name: &str,
    grace: Duration,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        eprintln!(
            "warning: the admin API is served over plain HTTP on {listen}; the token crosses the network in clear unless a TLS-terminating proxy is in front"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} (key listen in {config_name})"))?;
    eprintln!(
        "junction {} serving node {} on http://{listen}\n  dashboard: http://{listen}/\n  API:       http://{listen}/api/v1 (OpenAPI at /api/v1/openapi.json)\n  metrics:   http://{listen}/metrics\n  CLI:       junction --config {config_name} jobs list\nreload the config with SIGHUP or `junction reload`; stop with Ctrl-C",
        env!("CARGO_PKG_VERSION"),
        node.name(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match state.reload().await {
                Ok(Some(summary)) => eprintln!("config reloaded: {summary}"),
                Ok(None) => eprintln!("SIGHUP ignored: this node was not started from a config file"),
                Err(e) => eprintln!("config not reloaded, the running one is unchanged: {e}"),
            },
        }
    }
    eprintln!(
        "stopping: running jobs get {} ms to finish",
        grace.as_millis()
    );
    let _ = stop_tx.send(());
    let report = node.stop(grace).await?;
    server.await.context("the API server task")??;
    eprintln!(
        "stopped: {} jobs finished, {} given back to the queue",
        report.finished, report.released
    );
    Ok(())
}
