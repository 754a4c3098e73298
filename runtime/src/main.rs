//! The `junction` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use junction_runtime::host::{Host, HostConfig};

/// Junction: a WebAssembly-sandboxed connector runtime.
///
/// Connectors are WebAssembly components (built for wasm32-wasip2) that
/// implement the junction:connector contract in wit/. Junction runs each
/// call in a sandbox with no filesystem, no environment, CPU and memory
/// limits, and outbound HTTP only to hosts the operator allowed.
#[derive(Parser)]
#[command(name = "junction", version, propagate_version = true)]
struct Cli {
    /// Where compiled components are cached between runs.
    #[arg(long, global = true, env = "JUNCTION_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with connector components.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Work with the job queue.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Run a worker pool on a database until stopped (SIGINT or SIGTERM).
    ///
    /// Runs the built-in job functions (`junction.noop`, `junction.sleep`).
    /// On SIGINT/SIGTERM it stops claiming, lets running jobs finish within
    /// the grace period and gives the rest back to the queue. If the process
    /// is killed instead, its jobs return to the queue when their lease
    /// expires, and the lost try counts.
    Work {
        /// The SQLite database file.
        #[arg(long, default_value = "junction-data/junction.db")]
        database: PathBuf,
        /// Jobs running at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Channel capacities, e.g. "root:4, root.shop:2, root.shop.orders:1:sequential".
        #[arg(long, default_value = "root:4")]
        channels: String,
        /// How long a started job's lease lasts without a heartbeat.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        /// How long running jobs may take to finish on shutdown.
        #[arg(long, default_value_t = 30_000)]
        grace_ms: u64,
        /// This node's name in job records (default: hostname-pid).
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Check that a file is a connector component and print its manifest.
    ///
    /// Loads the file, checks it against the contract (a component, not a
    /// core module; the junction:connector@0.1.0 exports; imports the
    /// sandbox provides), calls its `describe` in a sandbox with no network,
    /// and prints the manifest, the hosts it wants to reach, its sha256
    /// digest, size and compile time. Exits with status 1 and the reason
    /// when the file is not a usable connector.
    Inspect {
        /// The .wasm file, e.g. target/wasm32-wasip2/release/my_connector.wasm
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JUNCTION_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Connector {
                command: ConnectorCommand::Inspect { file, json },
            } => {
                let host = Host::new(HostConfig {
                    cache_dir: cli.cache_dir,
                    max_instances: 8,
                    ..HostConfig::default()
                })?;
                let report = junction_runtime::inspect::inspect(&host, &file).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{report}");
                }
                Ok(())
            }
            Command::Queue {
                command:
                    QueueCommand::Work {
                        database,
                        concurrency,
                        channels,
                        lease_ms,
                        grace_ms,
                        node,
                    },
            } => work(database, concurrency, &channels, lease_ms, grace_ms, node).await,
        }
    })
}

async fn work(
    database: PathBuf,
    concurrency: usize,
    channels: &str,
    lease_ms: u64,
    grace_ms: u64,
    node: Option<String>,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Duration;

    use junction_runtime::queue::channels::ChannelConfig;
    use junction_runtime::queue::worker::{PoolConfig, WorkerPool, default_node_name};
    use junction_runtime::queue::{Queue, QueueConfig};
    use junction_runtime::storage::sqlite::SqliteStorage;

    anyhow::ensure!(concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(lease_ms >= 100, "--lease-ms must be at least 100");
    let channels = ChannelConfig::parse(channels)?;
    let storage = SqliteStorage::open(&database).await?;
    let lease = Duration::from_millis(lease_ms);
    let queue = Queue::new(
        Arc::new(storage),
        QueueConfig {
            channels,
            lease,
            ..QueueConfig::default()
        },
    );
    let pool = WorkerPool::new(
        queue,
        PoolConfig {
            node: node.unwrap_or_else(default_node_name),
            concurrency,
            reap_interval: (lease / 2).max(Duration::from_millis(50)),
            ..PoolConfig::default()
        },
    )
    .with_builtins()
    .start();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let report = pool.shutdown(Duration::from_millis(grace_ms)).await?;
    eprintln!(
        "stopped: {} jobs finished, {} given back to the queue",
        report.finished, report.released
    );
    Ok(())
}
