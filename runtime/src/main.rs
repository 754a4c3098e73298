//! The `junction` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use junction_runtime::host::{Host, HostConfig};
use junction_runtime::telemetry::Export;

mod cli;

/// Junction: a WebAssembly-sandboxed connector runtime.
///
/// Connectors are WebAssembly components (built for wasm32-wasip2) that
/// implement the junction:connector contract in wit/. Junction runs each
/// call in a sandbox with no filesystem, no environment, CPU and memory
/// limits, and outbound HTTP only to hosts the operator allowed.
///
/// Start the service with `junction serve --config junction.toml` (copy
/// junction.example.toml), then manage it with the other commands, which
/// talk to it over its admin API: they find it and its token through the
/// same config file, or --server and --token.
#[derive(Parser)]
#[command(name = "junction", version, propagate_version = true)]
struct Cli {
    /// Where compiled components are cached between runs.
    #[arg(long, global = true, env = "JUNCTION_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the API's JSON instead of the human view (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    server: cli::client::ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: job workers, event dispatcher, schedules, the admin
    /// API, the web dashboard and /metrics, from junction.toml.
    ///
    /// SIGHUP (or `junction reload`) re-reads the file: channels, backends
    /// and schedules change without a restart. SIGINT/SIGTERM stop it:
    /// running jobs get the grace period, the rest go back to the queue.
    Serve(cli::serve::ServeArgs),
    /// The database: migrate its schema, or copy an installation to
    /// another database (SQLite to PostgreSQL).
    Db {
        #[command(subcommand)]
        command: cli::db::DbCommand,
    },
    /// Ask the running server to re-read its config file.
    Reload,
    /// Print the admin API's OpenAPI 3.1 document (what the server answers
    /// at /api/v1/openapi.json), generated from the handlers' types: feed
    /// it to a client generator.
    Openapi,
    /// The nodes on the server's database: alive, lost (no heartbeat for
    /// 15 s: crashed or cut off) or stopped, and the jobs each holds.
    Nodes,
    /// Connector components: inspect a file, or install, list, activate,
    /// roll back and remove them on the server.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Backends: add one, list them, check one's connection, pause one,
    /// close its breaker, see and reset its import cursors.
    Backend {
        #[command(subcommand)]
        command: cli::admin::BackendAdmin,
    },
    /// Channels: pause and resume them.
    Channel {
        #[command(subcommand)]
        command: cli::admin::ChannelAdmin,
    },
    /// Start imports from, or exports to, a backend and follow them.
    Sync {
        #[command(subcommand)]
        command: cli::admin::SyncAdmin,
    },
    /// The job queue: list, show, requeue, cancel, mark done, one job or
    /// in bulk by filter.
    Jobs {
        #[command(subcommand)]
        command: cli::admin::JobsAdmin,
    },
    /// Dead events: list them, deliver them again, or discard them.
    Events {
        #[command(subcommand)]
        command: cli::repair::EventsAdmin,
    },
    /// Local records.
    Records {
        #[command(subcommand)]
        command: cli::admin::RecordsAdmin,
    },
    /// External id ↔ local id bindings.
    Bindings {
        #[command(subcommand)]
        command: cli::admin::BindingsAdmin,
    },
    /// Work with the job queue.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Watch a full sync: starts a Magento-shaped shop on loopback, installs
    /// the Magento connector, imports everything, exports local changes
    /// back, imports shop-side changes incrementally, and prints a summary.
    Demo(cli::demo::DemoArgs),
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Run a worker pool on a database until stopped (SIGINT or SIGTERM).
    ///
    /// Runs the sync job functions (`junction.import-record`,
    /// `junction.import-batch`, `junction.export-record`,
    /// `junction.delete-remote`, `junction.delete-local`) for the backends
    /// and connectors stored in the database, the event dispatcher, the
    /// backends' schedules, and the built-ins (`junction.noop`,
    /// `junction.sleep`). Several workers may share one database.
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
        /// Channel capacities, e.g. "root:4, root.shop:2, root.shop.orders:1:sequential"
        /// (default: the root channel gets --concurrency).
        #[arg(long)]
        channels: Option<String>,
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
    /// core module; the junction:connector exports (contract 0.1.x); imports the
    /// sandbox provides), calls its `describe` in a sandbox with no network,
    /// and prints the manifest, the hosts it wants to reach, its sha256
    /// digest, size and compile time. Exits with status 1 and the reason
    /// when the file is not a usable connector.
    Inspect {
        /// The .wasm file, e.g. target/wasm32-wasip2/release/my_connector.wasm
        file: PathBuf,
    },
    /// Make a new connector's skeleton: manifest, adapter (search and read
    /// with `updated-since`), mapper, native tests with the SDK's fake host
    /// and scripted transport, a build script and a README. As made, it
    /// builds, passes its tests and imports the reference CRM's companies.
    New {
        /// The connector's name: lowercase letters, digits and dashes.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: cli::new::Lang,
        /// The folder to create it in (as DIR/NAME).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Junction checkout whose guest-sdk/ and wit/ it builds with
        /// (default: the one this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    #[command(flatten)]
    Admin(cli::admin::ConnectorAdmin),
}

/// `junction backend list | head`: output to a reader that went away ends
/// the command quietly, as with any command-line tool, instead of a panic
/// message (Rust ignores SIGPIPE, so `println!` panics on a closed pipe).
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_broken_pipe(text) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// What `print!` panics with when its reader is gone.
fn is_broken_pipe(panic: &str) -> bool {
    panic.starts_with("failed printing to std") && panic.contains("Broken pipe")
}

fn main() -> ExitCode {
    // The compiler child the service starts for each new component (see
    // `host::compile`): no logging, no runtime, just stdin to stdout.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(junction_runtime::host::compile::CHILD_COMMAND) {
        return ExitCode::from(junction_runtime::host::compile::child_main(&args[1..]) as u8);
    }
    exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message may quote a connector's own words (a failed
            // check, a refused job): shown with control characters escaped.
            eprintln!(
                "error: {}",
                junction_runtime::text::clean(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// Log to stderr (one event per line, filter `JUNCTION_LOG`) and, for
/// `serve` with `[telemetry] otlp_endpoint`, export spans too; the export
/// is returned to be flushed at exit. Runs inside the runtime: batches are
/// sent from a task on it.
fn start_logging(cli: &Cli) -> anyhow::Result<Option<Export>> {
    use tracing_subscriber::prelude::*;
    let telemetry = match &cli.command {
        // A config that does not load is reported by `serve` itself.
        Command::Serve(_) => junction_runtime::config::ServiceConfig::load(&cli.server.config)
            .ok()
            .map(|c| c.telemetry),
        _ => None,
    };
    let export = match &telemetry {
        Some(t) => Export::start(t).context("starting the span export")?,
        None => None,
    };
    let exported = export
        .as_ref()
        .zip(telemetry.as_ref())
        .map(|(e, t)| e.layer(t));
    let stderr = tracing_subscriber::fmt::layer()
        // One event, one line: connector text quoted in a field cannot
        // forge a line of the service's log.
        .with_writer(|| junction_runtime::text::InertLines(std::io::stderr()))
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("JUNCTION_LOG")
                // wasmtime-wasi-http warns once per malformed guest
                // request: a guest could flood the service's log with them.
                // The call's audit records every request already.
                .unwrap_or_else(|_| "warn,wasmtime_wasi_http=error".into()),
        );
    tracing_subscriber::registry()
        .with(exported)
        .with(stderr)
        .init();
    Ok(export)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let export = runtime.block_on(async { start_logging(&cli) })?;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Connector {
                command: ConnectorCommand::Inspect { file },
            } => {
                let json = cli.json;
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
            Command::Connector {
                command:
                    ConnectorCommand::New {
                        name,
                        lang,
                        dir,
                        sdk,
                    },
            } => {
                let (out, sdk) = cli::new::run(&name, lang, &dir, sdk.as_deref())?;
                println!("{}", cli::new::next_steps(&out, lang, &sdk));
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
            } => {
                work(
                    database,
                    cli.cache_dir,
                    concurrency,
                    channels.as_deref(),
                    lease_ms,
                    grace_ms,
                    node,
                )
                .await
            }
            Command::Demo(args) => cli::demo::run(args, cli.cache_dir).await,
            Command::Serve(args) => cli::serve::run(args, &cli.server.config, cli.cache_dir).await,
            Command::Reload => {
                cli::admin::reload(&cli::client::Client::new(&cli.server)?, cli.json).await
            }
            Command::Openapi => {
                println!("{}", junction_runtime::api::openapi_json());
                Ok(())
            }
            Command::Db { command } => cli::db::run(command, &cli.server.config, cli.json).await,
            Command::Nodes => {
                cli::admin::nodes(&cli::client::Client::new(&cli.server)?, cli.json).await
            }
            Command::Connector {
                command: ConnectorCommand::Admin(command),
            } => {
                let client = cli::client::Client::new(&cli.server)?;
                cli::admin::connector(&client, command, cli.json).await
            }
            Command::Backend { command } => {
                cli::admin::backend(&cli::client::Client::new(&cli.server)?, command, cli.json)
                    .await
            }
            Command::Channel { command } => {
                cli::admin::channel(&cli::client::Client::new(&cli.server)?, command, cli.json)
                    .await
            }
            Command::Sync { command } => {
                cli::admin::sync(&cli::client::Client::new(&cli.server)?, command, cli.json).await
            }
            Command::Jobs { command } => {
                cli::admin::jobs(&cli::client::Client::new(&cli.server)?, command, cli.json).await
            }
            Command::Events { command } => {
                cli::repair::events(&cli::client::Client::new(&cli.server)?, command, cli.json)
                    .await
            }
            Command::Records { command } => {
                cli::admin::records(&cli::client::Client::new(&cli.server)?, command, cli.json)
                    .await
            }
            Command::Bindings { command } => {
                cli::admin::bindings(&cli::client::Client::new(&cli.server)?, command, cli.json)
                    .await
            }
        }
    });
    // Outside the runtime's `block_on`: the last batch is sent by a task
    // on the runtime's workers while this thread waits for it.
    if let Some(export) = export {
        export.shutdown();
    }
    result
}

async fn work(
    database: PathBuf,
    cache_dir: Option<PathBuf>,
    concurrency: usize,
    channels: Option<&str>,
    lease_ms: u64,
    grace_ms: u64,
    node: Option<String>,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Duration;

    use junction_runtime::node::{Node, NodeConfig};
    use junction_runtime::queue::channels::ChannelConfig;
    use junction_runtime::storage::sqlite::SqliteStorage;

    anyhow::ensure!(concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(lease_ms >= 100, "--lease-ms must be at least 100");
    let defaults = NodeConfig::default();
    let config = NodeConfig {
        name: node.unwrap_or(defaults.name.clone()),
        concurrency,
        channels: channels.map(ChannelConfig::parse).transpose()?,
        lease: Duration::from_millis(lease_ms),
        host: HostConfig {
            cache_dir,
            ..HostConfig::default()
        },
        // The key beside the database, as `junction serve` keeps it.
        secret_key: Arc::new(junction_runtime::secrets::SecretKey::load_or_create(
            &database
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("secret.key"),
        )?),
        ..defaults
    };
    let storage = SqliteStorage::open(&database).await?;
    let node = Node::start(Arc::new(storage), config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let report = node.stop(Duration::from_millis(grace_ms)).await?;
    eprintln!(
        "stopped: {} jobs finished, {} given back to the queue",
        report.finished, report.released
    );
    Ok(())
}
