//! The operator commands that talk to a running server: connectors,
//! backends, syncs, jobs, records and bindings. Each prints a human view
//! by default and the API's JSON with `--json`; both read the API's own
//! wire types.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use junction_runtime::api::types::{
    BackendRemoved, BackendView, BindingView, BreakerState, CancelledJob, CheckAnswer,
    ConnectorView, ExportRequest, ImportRequest, InstallQuery, JobDetail, JobView, JobsQuery,
    NodeView, Page, PauseAnswer, PauseTarget, ReconcileRequest, RecordView, Relation, ReloadAnswer,
    RemoveBackendQuery, Rollback, Started, TaskRequest, Units,
};
use junction_runtime::queue::job::{JobId, JobState};
use junction_runtime::text::clean;

use super::client::{Client, enc};

#[derive(Debug, Subcommand)]
pub enum ConnectorAdmin {
    /// Upload a component to the server and make it the active version.
    ///
    /// Jobs keep running: calls already started finish on the old version,
    /// new calls use the new one. Refused, with the old version still
    /// active, when the file is not a usable connector, when --sha256 does
    /// not match, or when a configured backend it would serve fails its
    /// `check`, or when it requests more than the active version (models,
    /// events, hosts, secrets) and --approve is not given.
    Install {
        /// The component, e.g. target/wasm32-wasip2/release/my_connector.wasm
        file: PathBuf,
        /// Install but keep the current version active.
        #[arg(long)]
        no_activate: bool,
        /// Refuse unless the file's sha256 is this (hex).
        #[arg(long)]
        sha256: Option<String>,
        /// Approve what it requests beyond the active version.
        #[arg(long)]
        approve: bool,
    },
    /// Installed components, every version; `*` marks the active ones.
    List,
    /// Make an installed version active (by digest or a unique prefix).
    /// Refused when it requests more than the active version, unless
    /// --approve is given; `connector show` lists the difference.
    Activate {
        digest: String,
        /// Approve what it requests beyond the active version.
        #[arg(long)]
        approve: bool,
    },
    /// One installed version: what it requests and what it requests
    /// beyond the active version.
    Show { digest: String },
    /// Make the version active before the current one active again.
    Rollback { name: String },
    /// Remove an inactive version.
    Remove { digest: String },
}

#[derive(Debug, Subcommand)]
pub enum BackendAdmin {
    /// Create or replace a backend from a TOML or JSON file holding one
    /// backend (the keys of a [[backends]] entry of junction.toml).
    Add { file: PathBuf },
    /// Configured backends, the connector units serving them and their
    /// bound records.
    List,
    /// Call the connector's `check` against the backend.
    Check { name: String },
    /// Pause the backend on every node: its jobs stay pending, running
    /// ones finish; kept across restarts until `backend resume`.
    Pause { name: String },
    /// Resume a paused backend: its pending jobs run again.
    Resume { name: String },
    /// Close the backend's circuit breaker now, without waiting for its
    /// probe: its jobs run again (it opens again if the backend still
    /// fails).
    CloseBreaker { name: String },
    /// Where each model's next batch import starts searching.
    Cursors { name: String },
    /// Reset a model's import cursor: its next import searches from the
    /// beginning, or from --to.
    ResetCursor {
        name: String,
        model: String,
        /// RFC 3339: search for records changed since then instead.
        #[arg(long)]
        to: Option<String>,
    },
    /// Remove a backend added with `backend add` (one declared in
    /// junction.toml is removed from the file instead). Its bindings and
    /// state are kept, so adding it again binds to the same records.
    Remove {
        name: String,
        /// Cancel its unfinished jobs (and the jobs depending on them)
        /// instead of refusing while it has any.
        #[arg(long)]
        cancel_jobs: bool,
        /// Also delete its bindings and state: adding it again later
        /// imports every record as new.
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelAdmin {
    /// Pause a channel and its subtree on every node: their jobs stay
    /// pending, running ones finish; kept across restarts until `channel
    /// resume`.
    Pause { name: String },
    /// Resume a paused channel.
    Resume { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SyncAdmin {
    /// Import from a backend: one model, or all it imports in dependency
    /// order. Shows progress until the import jobs finish.
    Import {
        backend: String,
        #[arg(long)]
        model: Option<String>,
        /// Import in the batch job itself rather than one job per record.
        #[arg(long)]
        direct: bool,
        /// Search from this RFC 3339 time instead of the stored cursor.
        #[arg(long)]
        since: Option<String>,
        /// Import every record found (from the beginning unless --since),
        /// even those synced since their last change, writing every field.
        #[arg(long)]
        force: bool,
        /// Return once the jobs are enqueued.
        #[arg(long)]
        no_wait: bool,
    },
    /// Export one local record to a backend.
    Export {
        backend: String,
        model: String,
        local_id: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Run one of the tasks the backend's connector declares (`junction
    /// connector inspect` lists them) as a job of the backend.
    Task {
        backend: String,
        task: String,
        /// Its arguments, a JSON object such as '{"order": "order-1a2b"}'.
        #[arg(long)]
        args: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Find the records of a model the backend deleted and delete their
    /// local copies (each checked against the backend once more), or only
    /// report them when the backend's reconcile.delete is false.
    Reconcile {
        backend: String,
        model: String,
        /// Delete even more than the backend's reconcile.max_delete_percent
        /// of the bound records.
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsAdmin {
    /// Jobs, newest first.
    List {
        /// wait_dependencies, pending, enqueued, started, done, cancelled or failed
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        backend: Option<String>,
        #[arg(long)]
        function: Option<String>,
        /// Only jobs enqueued at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only jobs enqueued before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The `next` cursor printed under the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// A job's arguments, tries, error, logs and outbound HTTP audit.
    Show { id: i64 },
    /// Run a failed or cancelled job again.
    Requeue { id: i64 },
    /// Cancel a job that has not finished, and the jobs waiting on it.
    Cancel { id: i64 },
    /// Mark a failed job done without running it.
    Done { id: i64 },
    /// Requeue, cancel, mark done or discard every job a filter matches
    /// (one transaction per page of 500). Counts first: acts only with
    /// --yes.
    Bulk(super::repair::BulkArgs),
}

#[derive(Debug, Subcommand)]
pub enum RecordsAdmin {
    /// One local record.
    Get { model: String, id: String },
    /// Local records of a model, by id.
    List {
        model: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BindingsAdmin {
    /// External id ↔ local id pairs of a backend's model.
    List {
        #[arg(long)]
        backend: String,
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// Print rows under headers, columns aligned.
pub(super) fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

/// `junction channel …`.
pub async fn channel(client: &Client, command: ChannelAdmin, as_json: bool) -> anyhow::Result<()> {
    match command {
        ChannelAdmin::Pause { name } => pause(client, "channels", &name, true, as_json).await,
        ChannelAdmin::Resume { name } => pause(client, "channels", &name, false, as_json).await,
    }
}

/// Pause or resume a backend or channel (`what`: `backends`, `channels`)
/// and say what changed.
async fn pause(
    client: &Client,
    what: &str,
    name: &str,
    paused: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let verb = if paused { "pause" } else { "resume" };
    let v: PauseAnswer = client
        .act(&format!("/api/v1/{what}/{}/{verb}", enc(name)))
        .await?;
    if as_json {
        return print_json(&v);
    }
    let kind = match v.kind {
        PauseTarget::Backend => "backend",
        PauseTarget::Channel => "channel",
    };
    let name = clean(&v.name);
    match (paused, v.changed) {
        (true, true) => println!(
            "{kind} {name} paused on every node: its jobs stay pending, running ones finish"
        ),
        (true, false) => println!("{kind} {name} was paused already"),
        (false, true) => println!("{kind} {name} resumed: its pending jobs run again"),
        (false, false) => println!("{kind} {name} was not paused"),
    }
    Ok(())
}

/// A JSON value as one line of text for a table or a report. Much of what
/// the API returns was chosen by a connector (log lines, errors, audit
/// paths, ids), so control characters are shown as escapes and can never
/// move the cursor or start a line that looks like the CLI's own.
pub(super) fn s(v: &Value) -> String {
    clean(&match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Optional text, cleaned like [`s`]; empty when absent.
pub(super) fn o(v: &Option<String>) -> String {
    v.as_deref().map(clean).unwrap_or_default()
}

/// What a job does: its description, else its function.
fn what(job: &JobView) -> String {
    clean(job.description.as_deref().unwrap_or(&job.function))
}

fn short(digest: &str) -> String {
    clean(digest).chars().take(19).collect()
}

pub(super) fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(super) fn next<T>(page: &Page<T>) {
    if let Some(n) = &page.next {
        println!("more: --cursor {}", clean(n));
    }
}

/// GET a page of a list (`path` already has its query); with `--json`
/// it is printed and `None` returned, else the page to show.
async fn page<T: DeserializeOwned + Serialize>(
    client: &Client,
    mut path: String,
    cursor: Option<String>,
    as_json: bool,
) -> anyhow::Result<Option<Page<T>>> {
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={}", enc(&c)));
    }
    let v: Page<T> = client.get(&path).await?;
    if as_json {
        print_json(&v)?;
        return Ok(None);
    }
    Ok(Some(v))
}

fn connector_line(c: &ConnectorView) -> String {
    format!(
        "{} {} ({}){}",
        clean(&c.name),
        clean(&c.version),
        short(&c.digest),
        if c.active { ", active" } else { "" }
    )
}

pub async fn connector(client: &Client, cmd: ConnectorAdmin, as_json: bool) -> anyhow::Result<()> {
    let (v, done): (ConnectorView, &str) = match cmd {
        ConnectorAdmin::Install {
            file,
            no_activate,
            sha256,
            approve,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let query = serde_urlencoded::to_string(InstallQuery {
                activate: Some(!no_activate),
                sha256,
                approve: Some(approve),
            })?;
            let path = format!("/api/v1/connectors?{query}");
            let answer = client
                .call("POST", &path, Some(("application/wasm", bytes)))
                .await?;
            (client.typed("POST", &path, answer)?, "installed")
        }
        ConnectorAdmin::List => {
            let v: Page<ConnectorView> = client.get("/api/v1/connectors").await?;
            if as_json {
                return print_json(&v);
            }
            let rows = v
                .items
                .iter()
                .map(|c| {
                    vec![
                        if c.active { "*".into() } else { String::new() },
                        clean(&c.name),
                        clean(&c.version),
                        format!("{} {}", clean(&c.backend_kind), clean(&c.backend_versions)),
                        short(&c.digest),
                    ]
                })
                .collect();
            table(&["", "name", "version", "backend", "digest"], rows);
            return Ok(());
        }
        ConnectorAdmin::Activate { digest, approve } => (
            client
                .act(&format!(
                    "/api/v1/connectors/{}/activate?approve={approve}",
                    enc(&digest)
                ))
                .await?,
            "activated",
        ),
        ConnectorAdmin::Show { digest } => {
            let v: ConnectorView = client
                .get(&format!("/api/v1/connectors/{}", enc(&digest)))
                .await?;
            if as_json {
                return print_json(&v);
            }
            println!("{}", connector_line(&v));
            println!("requests:");
            for line in &v.requests {
                println!("  {}", clean(line));
            }
            if !v.beyond_active.is_empty() {
                println!("beyond the active version (activating needs --approve):");
                for line in &v.beyond_active {
                    println!("  {}", clean(line));
                }
            }
            return Ok(());
        }
        ConnectorAdmin::Rollback { name } => (
            client
                .post("/api/v1/connectors/rollback", &Rollback { name })
                .await?,
            "rolled back to",
        ),
        ConnectorAdmin::Remove { digest } => (
            client
                .delete(&format!("/api/v1/connectors/{}", enc(&digest)))
                .await?,
            "removed",
        ),
    };
    if as_json {
        return print_json(&v);
    }
    println!("{done} {}", connector_line(&v));
    Ok(())
}

/// The units line of a backend: its adapter and mapper, or why none.
fn units_line(units: &Units) -> String {
    match units {
        Units::Resolved(u) => format!("{} / {}", clean(&u.adapter), clean(&u.mapper)),
        Units::Unresolved(u) => format!("not ready: {}", clean(&u.error)),
    }
}

pub async fn backend(client: &Client, cmd: BackendAdmin, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        BackendAdmin::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Sent as the user wrote it: the server names the field that
            // is wrong, with the same rules a config file gets.
            let config: Value = if file.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", file.display()))?
            } else {
                let t: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("{} is not valid TOML", file.display()))?;
                serde_json::to_value(t)?
            };
            let v: BackendView = client.post("/api/v1/backends", &config).await?;
            if as_json {
                return print_json(&v);
            }
            println!("backend {} configured", clean(&v.name));
            match &v.units {
                Units::Resolved(u) => println!(
                    "  adapter {}, mapper {}",
                    clean(&u.adapter),
                    clean(&u.mapper)
                ),
                Units::Unresolved(u) => println!("  not ready: {}", clean(&u.error)),
            }
        }
        BackendAdmin::List => {
            let v: Page<BackendView> = client.get("/api/v1/backends").await?;
            if as_json {
                return print_json(&v);
            }
            let rows = v
                .items
                .iter()
                .map(|b| {
                    let bound: Vec<String> = b
                        .bindings
                        .iter()
                        .map(|(m, n)| format!("{} {n}", clean(m)))
                        .collect();
                    // "open (n probes failed): reason" when its jobs wait.
                    let breaker = match b.breaker.state {
                        BreakerState::Closed => "closed".to_string(),
                        state => format!(
                            "{} ({} probes failed): {}",
                            state.as_str(),
                            b.breaker.probes.unwrap_or_default(),
                            o(&b.breaker.reason)
                        ),
                    };
                    vec![
                        clean(&b.name),
                        format!("{} {}", clean(&b.config.kind), clean(&b.config.version)),
                        clean(&b.config.base_url),
                        units_line(&b.units),
                        bound.join(", "),
                        breaker,
                        if b.paused { "paused" } else { "running" }.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "name",
                    "kind",
                    "base url",
                    "adapter / mapper",
                    "bound",
                    "breaker",
                    "jobs",
                ],
                rows,
            );
        }
        BackendAdmin::Remove {
            name,
            cancel_jobs,
            purge,
        } => {
            let query = serde_urlencoded::to_string(RemoveBackendQuery { cancel_jobs, purge })?;
            let v: BackendRemoved = client
                .delete(&format!("/api/v1/backends/{}?{query}", enc(&name)))
                .await?;
            if as_json {
                return print_json(&v);
            }
            println!(
                "backend {} removed; {} unfinished jobs cancelled, {} bindings and {} state keys deleted",
                clean(&name),
                v.cancelled_jobs,
                v.purged.bindings,
                v.purged.state_keys
            );
        }
        BackendAdmin::Pause { name } => pause(client, "backends", &name, true, as_json).await?,
        BackendAdmin::Resume { name } => pause(client, "backends", &name, false, as_json).await?,
        BackendAdmin::CloseBreaker { name } => {
            super::repair::close_breaker(client, &name, as_json).await?
        }
        BackendAdmin::Cursors { name } => super::repair::cursors(client, &name, as_json).await?,
        BackendAdmin::ResetCursor { name, model, to } => {
            super::repair::reset_cursor(client, &name, &model, to.as_deref(), as_json).await?
        }
        BackendAdmin::Check { name } => {
            let v: CheckAnswer = client
                .act(&format!("/api/v1/backends/{}/check", enc(&name)))
                .await?;
            if as_json {
                print_json(&v)?;
            }
            let name = clean(&name);
            if !v.ok {
                bail!(
                    "backend {name} fails its check ({}): {}",
                    clean(&v.adapter),
                    clean(&v.message)
                );
            }
            if !as_json {
                println!(
                    "backend {name} ok ({}): {}",
                    clean(&v.adapter),
                    clean(&v.message)
                );
            }
        }
    }
    Ok(())
}

/// What following a sync found, for `--json`.
#[derive(Serialize)]
struct Followed {
    jobs: Vec<JobView>,
    record_jobs: Option<RecordJobs>,
}

/// The record import jobs a sync's batches enqueued that did not finish
/// done.
#[derive(Serialize)]
struct RecordJobs {
    failed: Vec<JobId>,
    cancelled: usize,
}

pub async fn sync(client: &Client, cmd: SyncAdmin, as_json: bool) -> anyhow::Result<()> {
    let (v, wait, backend): (Started, bool, String) = match cmd {
        SyncAdmin::Import {
            backend,
            model,
            direct,
            since,
            force,
            no_wait,
        } => {
            let body = ImportRequest {
                backend: backend.clone(),
                model,
                direct,
                since,
                force,
            };
            (
                client.post("/api/v1/sync/import", &body).await?,
                !no_wait,
                backend,
            )
        }
        SyncAdmin::Reconcile {
            backend,
            model,
            confirm,
            no_wait,
        } => {
            let body = ReconcileRequest {
                backend: backend.clone(),
                model,
                confirm,
            };
            (
                client.post("/api/v1/sync/reconcile", &body).await?,
                !no_wait,
                backend,
            )
        }
        SyncAdmin::Task {
            backend,
            task,
            args,
            no_wait,
        } => {
            let args = args
                .map(|a| {
                    serde_json::from_str::<serde_json::Value>(&a)
                        .map_err(|e| anyhow::anyhow!("--args is not JSON: {e}; pass an object such as '{{\"order\": \"o-1\"}}'"))
                })
                .transpose()?;
            let body = TaskRequest {
                backend: backend.clone(),
                task,
                args,
            };
            (
                client.post("/api/v1/sync/task", &body).await?,
                !no_wait,
                backend,
            )
        }
        SyncAdmin::Export {
            backend,
            model,
            local_id,
            no_wait,
        } => {
            let body = ExportRequest {
                backend: backend.clone(),
                model,
                local_id,
            };
            (
                client.post("/api/v1/sync/export", &body).await?,
                !no_wait,
                backend,
            )
        }
    };
    if as_json && !wait {
        return print_json(&v);
    }
    let jobs: Vec<(JobId, String)> = v.jobs.iter().map(|j| (j.id, j.model.clone())).collect();
    if !wait {
        for (id, model) in &jobs {
            println!(
                "job {id}: {} (follow it with `junction jobs show {id}`)",
                clean(model)
            );
        }
        return Ok(());
    }
    let finished = follow(client, &backend, &jobs, as_json).await?;
    // Batches in job mode leave one job per record: follow those too, so
    // that "done" means the records are imported.
    let enqueued_records = finished
        .iter()
        .any(|j| j.function == junction_runtime::sync::IMPORT_BATCH && j.state == JobState::Done);
    let records = match jobs.iter().map(|(id, _)| *id).min() {
        Some(first) if enqueued_records => {
            Some(follow_records(client, &backend, first, as_json).await?)
        }
        _ => None,
    };
    if as_json {
        return print_json(&Followed {
            jobs: finished,
            record_jobs: records,
        });
    }
    for (j, (_, model)) in finished.iter().zip(&jobs) {
        let outcome = if j.state == JobState::Done {
            o(&j.result)
        } else {
            o(&j.error_message)
        };
        println!("{}: {} (job {}) {outcome}", clean(model), j.state, j.id);
    }
    let failed: Vec<&JobView> = finished
        .iter()
        .filter(|j| j.state != JobState::Done)
        .collect();
    if let Some(first) = failed.first() {
        bail!(
            "{} of {} jobs did not finish done; see `junction jobs show {}`",
            failed.len(),
            finished.len(),
            first.id
        );
    }
    if let Some(r) = records {
        if !r.failed.is_empty() || r.cancelled > 0 {
            bail!(
                "{} record import jobs failed and {} were cancelled; \
                 `junction jobs list --backend {} --function {} --state failed` lists the failed ones",
                r.failed.len(),
                r.cancelled,
                clean(&backend),
                junction_runtime::sync::IMPORT_RECORD
            );
        }
        println!("every record import job finished done");
    }
    Ok(())
}

/// Jobs of `backend` running `function` in `state`, newer than `after`
/// and not newer than `upto`, newest first (at most `limit`, or every one
/// when `limit` is `None`).
async fn jobs_between(
    client: &Client,
    backend: &str,
    state: JobState,
    after: JobId,
    upto: JobId,
    limit: Option<usize>,
) -> anyhow::Result<Vec<JobView>> {
    let mut out = Vec::new();
    let mut before = upto + 1;
    loop {
        let query = serde_urlencoded::to_string(JobsQuery {
            backend: Some(backend.to_string()),
            function: Some(junction_runtime::sync::IMPORT_RECORD.to_string()),
            state: Some(state.to_string()),
            cursor: Some(before.to_string()),
            limit: Some(limit.unwrap_or(500).min(500) as u32),
            ..JobsQuery::default()
        })?;
        let page: Page<JobView> = client.get(&format!("/api/v1/jobs?{query}")).await?;
        let mut last = None;
        for j in page.items {
            if j.id <= after {
                return Ok(out);
            }
            last = Some(j.id);
            out.push(j);
            if limit.is_some_and(|l| out.len() >= l) {
                return Ok(out);
            }
        }
        match (last, page.next) {
            (Some(id), Some(_)) => before = id,
            _ => return Ok(out),
        }
    }
}

/// Records bound so far in a backend, in all models.
async fn bound(client: &Client, backend: &str) -> anyhow::Result<BackendView> {
    client
        .get(&format!("/api/v1/backends/{}", enc(backend)))
        .await
}

/// Wait until the record import jobs the batches enqueued have finished:
/// the backend's `junction.import-record` jobs after the first batch job
/// and no newer than the newest job once the batches were done (later
/// ones belong to later imports). Their failed ids and cancelled count.
async fn follow_records(
    client: &Client,
    backend: &str,
    first: JobId,
    quiet: bool,
) -> anyhow::Result<RecordJobs> {
    let newest: Page<JobView> = client.get("/api/v1/jobs?limit=1").await?;
    let upto = newest.items.first().map_or(first, |j| j.id);
    let bar = ProgressBar::new_spinner();
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>10} {msg}").expect("a valid template"),
    );
    bar.set_prefix("records");
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let mut live = None;
        for state in [
            JobState::Started,
            JobState::Enqueued,
            JobState::Pending,
            JobState::WaitDependencies,
        ] {
            if let Some(j) = jobs_between(client, backend, state, first, upto, Some(1))
                .await?
                .pop()
            {
                live = Some(j);
                break;
            }
        }
        let Some(j) = live else { break };
        let total: i64 = bound(client, backend).await?.bindings.values().sum();
        let retrying = match &j.error_message {
            Some(e) if !e.is_empty() => format!(" (job {} retrying: {})", j.id, clean(e)),
            _ => String::new(),
        };
        bar.set_message(format!(
            "{total} records bound; import jobs still {}{retrying}",
            j.state
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failed: Vec<JobId> = jobs_between(client, backend, JobState::Failed, first, upto, None)
        .await?
        .iter()
        .map(|j| j.id)
        .collect();
    let cancelled = jobs_between(client, backend, JobState::Cancelled, first, upto, None)
        .await?
        .len();
    bar.finish_with_message(format!(
        "record import jobs finished: {} failed, {cancelled} cancelled",
        failed.len()
    ));
    Ok(RecordJobs { failed, cancelled })
}

/// Show one bar per job (records bound so far for its model) until every
/// job has finished; the finished jobs.
async fn follow(
    client: &Client,
    backend: &str,
    jobs: &[(JobId, String)],
    quiet: bool,
) -> anyhow::Result<Vec<JobView>> {
    let bars = MultiProgress::new();
    if quiet {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {prefix:>10} {pos:>7} bound  {msg}")
        .expect("a valid template");
    let tracked: Vec<(JobId, String, ProgressBar)> = jobs
        .iter()
        .map(|(id, model)| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(clean(model));
            bar.enable_steady_tick(Duration::from_millis(120));
            (*id, model.clone(), bar)
        })
        .collect();
    let mut finished: Vec<Option<JobView>> = vec![None; tracked.len()];
    loop {
        let b = bound(client, backend).await?;
        let mut open = 0;
        for (i, (id, model, bar)) in tracked.iter().enumerate() {
            if finished[i].is_some() {
                continue;
            }
            let j = client
                .get::<JobDetail>(&format!("/api/v1/jobs/{id}"))
                .await?
                .job;
            bar.set_position(b.bindings.get(model).copied().unwrap_or(0).max(0) as u64);
            match j.state {
                JobState::Done | JobState::Failed | JobState::Cancelled => {
                    let msg = if j.state == JobState::Done {
                        format!("done: {}", o(&j.result))
                    } else {
                        format!("{}: {}", j.state, o(&j.error_message))
                    };
                    bar.finish_with_message(msg);
                    finished[i] = Some(j);
                }
                state => {
                    let wait = match &j.error_message {
                        Some(e) if !e.is_empty() => format!(" (retrying: {})", clean(e)),
                        _ => String::new(),
                    };
                    bar.set_message(format!("job {id} {state}{wait}"));
                    open += 1;
                }
            }
        }
        if open == 0 {
            return Ok(finished.into_iter().flatten().collect());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn jobs(client: &Client, cmd: JobsAdmin, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        JobsAdmin::List {
            state,
            channel,
            backend,
            function,
            since,
            until,
            limit,
            cursor,
        } => {
            let query = serde_urlencoded::to_string(JobsQuery {
                state,
                channel,
                backend,
                function,
                created_after: since,
                created_before: until,
                cursor,
                limit: Some(limit),
            })?;
            let v: Page<JobView> = client.get(&format!("/api/v1/jobs?{query}")).await?;
            if as_json {
                return print_json(&v);
            }
            let rows = v
                .items
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.state.to_string(),
                        j.tries.to_string(),
                        clean(&j.channel),
                        what(j),
                        o(&j.error_message).chars().take(60).collect(),
                    ]
                })
                .collect();
            table(&["id", "state", "tries", "channel", "what", "error"], rows);
            next(&v);
        }
        JobsAdmin::Show { id } => {
            let v: JobDetail = client.get(&format!("/api/v1/jobs/{id}")).await?;
            if as_json {
                return print_json(&v);
            }
            let j = &v.job;
            println!("job {id}: {}", what(j));
            println!("  function   {}", clean(&j.function));
            println!("  state      {}", j.state);
            println!(
                "  tries      {} of {}",
                j.tries,
                if j.max_retries == 0 {
                    "unlimited".into()
                } else {
                    j.max_retries.to_string()
                }
            );
            println!("  channel    {}", clean(&j.channel));
            println!("  node       {}", o(&j.node));
            println!("  connector  {}", o(&j.connector_digest));
            if j.result.is_some() {
                println!("  result     {}", o(&j.result));
            }
            if j.error_message.is_some() {
                println!("  error      {}: {}", o(&j.error_kind), o(&j.error_message));
            }
            println!("  arguments  {}", s(&j.args));
            for rel in [Relation::Parent, Relation::Child] {
                let word = if rel == Relation::Parent {
                    "parent"
                } else {
                    "child"
                };
                for g in v.graph.iter().filter(|g| g.relation == rel) {
                    println!(
                        "  {word:<10} job {} {} ({})",
                        g.id,
                        o(&g.description),
                        g.state
                    );
                }
            }
            println!("log:");
            for l in &v.logs {
                println!(
                    "  try {} {:<5} {}: {}",
                    l.try_number,
                    clean(&l.level),
                    clean(&l.source),
                    clean(&l.message)
                );
            }
            println!("outbound HTTP:");
            for a in &v.audit {
                let e = &a.entry;
                let outcome = if let Some(denied) = &e.denied {
                    format!("DENIED: {}", clean(denied))
                } else if let Some(error) = &e.error {
                    format!("failed: {}", clean(error))
                } else {
                    e.status.map(|s| s.to_string()).unwrap_or_default()
                };
                println!(
                    "  try {} {} {}://{}:{}{} → {} ({} ms, {} B)",
                    a.try_number,
                    clean(&e.method),
                    clean(&e.scheme),
                    clean(&e.host),
                    e.port,
                    clean(&e.path),
                    outcome,
                    e.duration_ms,
                    e.response_bytes
                );
            }
        }
        JobsAdmin::Bulk(args) => {
            super::repair::check_filter(&args)?;
            return super::repair::bulk(client, args, as_json).await;
        }
        JobsAdmin::Requeue { id } | JobsAdmin::Done { id } => {
            let (action, word) = match cmd {
                JobsAdmin::Requeue { .. } => ("requeue", "requeued"),
                _ => ("done", "marked done"),
            };
            let v: JobView = client.act(&format!("/api/v1/jobs/{id}/{action}")).await?;
            if as_json {
                return print_json(&v);
            }
            println!("job {id} {word}: now {}", v.state);
        }
        JobsAdmin::Cancel { id } => {
            let v: CancelledJob = client.act(&format!("/api/v1/jobs/{id}/cancel")).await?;
            if as_json {
                return print_json(&v);
            }
            println!("job {id} cancelled: now {}", v.job.state);
        }
    }
    Ok(())
}

pub async fn records(client: &Client, cmd: RecordsAdmin, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        RecordsAdmin::Get { model, id } => {
            let v: RecordView = client
                .get(&format!("/api/v1/records/{}/{}", enc(&model), enc(&id)))
                .await?;
            if as_json {
                return print_json(&v);
            }
            println!(
                "{} {} (version {}, updated {})",
                clean(&model),
                clean(&id),
                v.version,
                clean(&v.updated_at)
            );
            for line in serde_json::to_string_pretty(&v.data)?.lines() {
                println!("{}", clean(line));
            }
        }
        RecordsAdmin::List {
            model,
            limit,
            cursor,
        } => {
            let path = format!("/api/v1/records/{}?limit={limit}", enc(&model));
            let Some(v) = page::<RecordView>(client, path, cursor, as_json).await? else {
                return Ok(());
            };
            let rows = v
                .items
                .iter()
                .map(|r| {
                    vec![
                        clean(&r.id),
                        r.version.to_string(),
                        clean(&r.updated_at),
                        clean(&r.data.to_string()).chars().take(70).collect(),
                    ]
                })
                .collect();
            table(&["id", "version", "updated", "data"], rows);
            next(&v);
        }
    }
    Ok(())
}

pub async fn bindings(client: &Client, cmd: BindingsAdmin, as_json: bool) -> anyhow::Result<()> {
    let BindingsAdmin::List {
        backend,
        model,
        limit,
        cursor,
    } = cmd;
    let path = format!(
        "/api/v1/bindings?backend={}&model={}&limit={limit}",
        enc(&backend),
        enc(&model)
    );
    let Some(v) = page::<BindingView>(client, path, cursor, as_json).await? else {
        return Ok(());
    };
    let rows = v
        .items
        .iter()
        .map(|b| vec![clean(&b.external_id), clean(&b.local_id), at(b.sync_date)])
        .collect();
    table(&["external id", "local id", "synced"], rows);
    next(&v);
    Ok(())
}

/// A Unix-ms time as RFC 3339, for tables.
fn at(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub async fn nodes(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let v: Page<NodeView> = client.get("/api/v1/nodes").await?;
    if as_json {
        return print_json(&v);
    }
    let rows = v
        .items
        .iter()
        .map(|v| {
            let n = &v.node;
            vec![
                clean(&n.name),
                v.status.as_str().to_string(),
                n.running.to_string(),
                clean(&n.version),
                clean(&n.host),
                at(n.started_at),
                at(n.heartbeat_at),
            ]
        })
        .collect();
    table(
        &[
            "node",
            "status",
            "jobs",
            "version",
            "host",
            "started",
            "last heartbeat",
        ],
        rows,
    );
    Ok(())
}

/// `junction reload`.
pub async fn reload(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let v: ReloadAnswer = client.act("/api/v1/reload").await?;
    if as_json {
        return print_json(&v);
    }
    println!("reloaded: {}", clean(&v.summary));
    Ok(())
}
