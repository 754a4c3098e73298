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
        }
    })
}
