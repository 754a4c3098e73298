//! `junction db migrate` and `junction db copy`: schema upgrades, and
//! moving an installation from one database to another (embedded SQLite
//! to PostgreSQL when one machine is no longer enough).

use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use junction_runtime::config::{Database, ServiceConfig};
use junction_runtime::queue::now_ms;
use junction_runtime::storage::copy;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Bring a database's schema up to this junction's version.
    ///
    /// Every node also migrates on start (under a lock, so several nodes
    /// starting together migrate once); this command does it ahead of a
    /// rolling upgrade and says where the database stands. A database
    /// newer than this junction is refused: upgrade junction instead.
    Migrate {
        /// The database (default: the config file's).
        #[arg(long)]
        database: Option<String>,
        /// The PostgreSQL schema (default: the config file's).
        #[arg(long)]
        schema: Option<String>,
    },
    /// Copy everything that matters — jobs with their logs, HTTP audit and
    /// dependencies, records, bindings, the outbox, connectors with their
    /// version history, backends, stream cursors — into an empty database.
    ///
    /// Stop the nodes on the source first (a running node is refused
    /// unless --force). The target is written in one transaction: a failed
    /// copy leaves it empty. Then point junction.toml at the target.
    Copy {
        /// e.g. sqlite://junction-data/junction.db
        #[arg(long)]
        from: String,
        /// e.g. postgres://junction@db.internal/junction
        #[arg(long)]
        to: String,
        #[arg(long)]
        from_schema: Option<String>,
        #[arg(long)]
        to_schema: Option<String>,
        /// Copy even though a node on the source looks alive.
        #[arg(long)]
        force: bool,
    },
}

fn database(url: &str, schema: Option<String>) -> anyhow::Result<Database> {
    Database::from_url(url, schema, Path::new(".")).map_err(|e| anyhow::anyhow!(e))
}

pub async fn run(command: DbCommand, config: &Path, as_json: bool) -> anyhow::Result<()> {
    match command {
        DbCommand::Migrate {
            database: url,
            schema,
        } => {
            let db = match url {
                Some(url) => database(&url, schema)?,
                None => {
                    let c = ServiceConfig::load(config).with_context(
                        || "no --database given, so the config file names the database",
                    )?;
                    match (c.database, schema) {
                        (Database::Postgres { url, .. }, Some(s)) => Database::Postgres {
                            url,
                            schema: Some(s),
                        },
                        (db, _) => db,
                    }
                }
            };
            let storage = db.open().await?;
            let version = storage.schema_version().await?;
            if as_json {
                println!(
                    "{}",
                    serde_json::json!({"database": db.to_string(), "schema_version": version})
                );
            } else {
                println!("{db} is at schema version {version}, this junction's latest");
            }
            Ok(())
        }
        DbCommand::Copy {
            from,
            to,
            from_schema,
            to_schema,
            force,
        } => {
            let (from, to) = (database(&from, from_schema)?, database(&to, to_schema)?);
            if from == to {
                bail!("--from and --to are the same database");
            }
            let source = from
                .open()
                .await
                .with_context(|| format!("opening {from}"))?;
            let now = now_ms();
            let alive: Vec<String> = source
                .nodes()
                .await?
                .into_iter()
                .filter(|n| n.stopped_at.is_none() && now - n.heartbeat_at < 15_000)
                .map(|n| n.name)
                .collect();
            if !alive.is_empty() && !force {
                bail!(
                    "node {} is running on {from}; stop it first so that nothing changes during the copy (or pass --force)",
                    alive.join(", ")
                );
            }
            let target = to.open().await.with_context(|| format!("opening {to}"))?;
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
            );
            if as_json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let report = copy::copy(source.as_ref(), target.as_ref(), &|table, n| {
                bar.set_message(format!("{table}: {n} rows"));
                bar.tick();
            })
            .await?;
            bar.finish_and_clear();
            if as_json {
                let tables: serde_json::Map<String, serde_json::Value> = report
                    .iter()
                    .map(|(t, n)| (t.to_string(), serde_json::json!(n)))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"from": from.to_string(), "to": to.to_string(), "rows": tables})
                );
            } else {
                println!("copied {from} → {to}:");
                for (table, n) in &report {
                    println!("  {table:<22} {n:>9}");
                }
                println!("point junction.toml's database at the target and start the nodes");
            }
            Ok(())
        }
    }
}
