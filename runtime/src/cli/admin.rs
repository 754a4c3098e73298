//! The operator commands that talk to a running server: connectors,
//! backends, syncs, jobs, records and bindings. Each prints a human view
//! by default and the API's JSON with `--json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

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
        ChannelAdmin::Pause { name } => pause(client, "channels", &name, true, as_json).await?,
        ChannelAdmin::Resume { name } => pause(client, "channels", &name, false, as_json).await?,
    };
    Ok(())
}

/// Pause or resume a backend or channel (`what`: `backends`, `channels`)
/// and say what changed.
async fn pause(
    client: &Client,
    what: &str,
    name: &str,
    paused: bool,
    as_json: bool,
) -> anyhow::Result<Value> {
    let verb = if paused { "pause" } else { "resume" };
    let v = client
        .post(&format!("/api/v1/{what}/{}/{verb}", enc(name)), &json!({}))
        .await?;
    if as_json {
        print_json(&v)?;
    } else {
        let kind = s(&v["kind"]);
        let name = s(&v["name"]);
        match (paused, v["changed"] == json!(true)) {
            (true, true) => println!(
                "{kind} {name} paused on every node: its jobs stay pending, running ones finish"
            ),
            (true, false) => println!("{kind} {name} was paused already"),
            (false, true) => println!("{kind} {name} resumed: its pending jobs run again"),
            (false, false) => println!("{kind} {name} was not paused"),
        }
    }
    Ok(v)
}

/// A value as one line of text for a table or a report. Much of what the
/// API returns was chosen by a connector (log lines, errors, audit paths,
/// ids), so control characters are shown as escapes and can never move the
/// cursor or start a line that looks like the CLI's own.
pub(super) fn s(v: &Value) -> String {
    junction_runtime::text::clean(&match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The elements of a JSON array; none when it is not one.
pub(super) fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// What a job does: its description, else its function.
fn what(job: &Value) -> String {
    if job["description"].is_null() {
        s(&job["function"])
    } else {
        s(&job["description"])
    }
}

fn short(digest: &Value) -> String {
    s(digest).chars().take(19).collect()
}

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(super) fn next(v: &Value) {
    if let Some(n) = v["next"].as_str() {
        println!("more: --cursor {n}");
    }
}

/// GET a page of a list (`path` already has its query); with `--json`
/// it is printed and `None` returned, else the page to show.
async fn page(
    client: &Client,
    mut path: String,
    cursor: Option<String>,
    as_json: bool,
) -> anyhow::Result<Option<Value>> {
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={}", enc(&c)));
    }
    let v = client.get(&path).await?;
    if as_json {
        print_json(&v)?;
        return Ok(None);
    }
    Ok(Some(v))
}

fn connector_line(c: &Value) -> String {
    format!(
        "{} {} ({}){}",
        s(&c["name"]),
        s(&c["version"]),
        short(&c["digest"]),
        if c["active"] == json!(true) {
            ", active"
        } else {
            ""
        }
    )
}

pub async fn connector(client: &Client, cmd: ConnectorAdmin, as_json: bool) -> anyhow::Result<()> {
    let v = match cmd {
        ConnectorAdmin::Install {
            file,
            no_activate,
            sha256,
            approve,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut path = format!(
                "/api/v1/connectors?activate={}&approve={approve}",
                !no_activate
            );
            if let Some(h) = sha256 {
                path.push_str(&format!("&sha256={}", enc(&h)));
            }
            let v = client
                .call("POST", &path, Some(("application/wasm", bytes)))
                .await?;
            if !as_json {
                println!("installed {}", connector_line(&v));
            }
            v
        }
        ConnectorAdmin::List => {
            let v = client.get("/api/v1/connectors").await?;
            if !as_json {
                let rows = items(&v["items"])
                    .map(|c| {
                        vec![
                            if c["active"] == json!(true) {
                                "*".into()
                            } else {
                                String::new()
                            },
                            s(&c["name"]),
                            s(&c["version"]),
                            format!("{} {}", s(&c["backend_kind"]), s(&c["backend_versions"])),
                            short(&c["digest"]),
                        ]
                    })
                    .collect();
                table(&["", "name", "version", "backend", "digest"], rows);
            }
            v
        }
        ConnectorAdmin::Activate { digest, approve } => {
            let v = client
                .post(
                    &format!(
                        "/api/v1/connectors/{}/activate?approve={approve}",
                        enc(&digest)
                    ),
                    &json!({}),
                )
                .await?;
            if !as_json {
                println!("activated {}", connector_line(&v));
            }
            v
        }
        ConnectorAdmin::Show { digest } => {
            let v = client
                .get(&format!("/api/v1/connectors/{}", enc(&digest)))
                .await?;
            if !as_json {
                println!("{}", connector_line(&v));
                println!("requests:");
                for line in items(&v["requests"]) {
                    println!("  {}", s(line));
                }
                let beyond: Vec<&Value> = items(&v["beyond_active"]).collect();
                if !beyond.is_empty() {
                    println!("beyond the active version (activating needs --approve):");
                    for line in beyond {
                        println!("  {}", s(line));
                    }
                }
            }
            v
        }
        ConnectorAdmin::Rollback { name } => {
            let v = client
                .post("/api/v1/connectors/rollback", &json!({"name": name}))
                .await?;
            if !as_json {
                println!("rolled back to {}", connector_line(&v));
            }
            v
        }
        ConnectorAdmin::Remove { digest } => {
            let v = client
                .call(
                    "DELETE",
                    &format!("/api/v1/connectors/{}", enc(&digest)),
                    None,
                )
                .await?;
            if !as_json {
                println!("removed {}", connector_line(&v));
            }
            v
        }
    };
    if as_json {
        print_json(&v)?;
    }
    Ok(())
}

pub async fn backend(client: &Client, cmd: BackendAdmin, as_json: bool) -> anyhow::Result<()> {
    let v = match cmd {
        BackendAdmin::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let config: Value = if file.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", file.display()))?
            } else {
                let t: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("{} is not valid TOML", file.display()))?;
                serde_json::to_value(t)?
            };
            let v = client.post("/api/v1/backends", &config).await?;
            if !as_json {
                println!("backend {} configured", s(&v["name"]));
                print_units(&v);
            }
            v
        }
        BackendAdmin::List => {
            let v = client.get("/api/v1/backends").await?;
            if !as_json {
                let rows = items(&v["items"])
                    .map(|b| {
                        let units = if b["units"]["error"].is_null() {
                            format!(
                                "{} / {}",
                                s(&b["units"]["adapter"]),
                                s(&b["units"]["mapper"])
                            )
                        } else {
                            format!("not ready: {}", s(&b["units"]["error"]))
                        };
                        let bound: Vec<String> = b["bindings"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(m, n)| format!("{m} {n}"))
                            .collect();
                        // "open since …: reason" when its jobs wait.
                        let breaker = match s(&b["breaker"]["state"]).as_str() {
                            "closed" | "" => "closed".to_string(),
                            state => format!(
                                "{state} ({} probes failed): {}",
                                b["breaker"]["probes"],
                                s(&b["breaker"]["reason"])
                            ),
                        };
                        vec![
                            s(&b["name"]),
                            format!("{} {}", s(&b["config"]["kind"]), s(&b["config"]["version"])),
                            s(&b["config"]["base_url"]),
                            units,
                            bound.join(", "),
                            breaker,
                            if b["paused"] == json!(true) {
                                "paused".to_string()
                            } else {
                                "running".to_string()
                            },
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
            v
        }
        BackendAdmin::Remove {
            name,
            cancel_jobs,
            purge,
        } => {
            let v = client
                .call(
                    "DELETE",
                    &format!(
                        "/api/v1/backends/{}?cancel_jobs={cancel_jobs}&purge={purge}",
                        enc(&name)
                    ),
                    None,
                )
                .await?;
            if !as_json {
                println!(
                    "backend {name} removed; {} unfinished jobs cancelled, {} bindings and {} state keys deleted",
                    s(&v["cancelled_jobs"]),
                    s(&v["purged"]["bindings"]),
                    s(&v["purged"]["state_keys"])
                );
            }
            v
        }
        BackendAdmin::Pause { name } => {
            pause(client, "backends", &name, true, as_json).await?;
            return Ok(());
        }
        BackendAdmin::Resume { name } => {
            pause(client, "backends", &name, false, as_json).await?;
            return Ok(());
        }
        BackendAdmin::CloseBreaker { name } => {
            return super::repair::close_breaker(client, &name, as_json).await;
        }
        BackendAdmin::Cursors { name } => {
            return super::repair::cursors(client, &name, as_json).await;
        }
        BackendAdmin::ResetCursor { name, model, to } => {
            return super::repair::reset_cursor(client, &name, &model, to.as_deref(), as_json)
                .await;
        }
        BackendAdmin::Check { name } => {
            let v = client
                .post(
                    &format!("/api/v1/backends/{}/check", enc(&name)),
                    &json!({}),
                )
                .await?;
            if as_json {
                print_json(&v)?;
            }
            if v["ok"] != json!(true) {
                bail!(
                    "backend {name} fails its check ({}): {}",
                    s(&v["adapter"]),
                    s(&v["message"])
                );
            }
            if !as_json {
                println!(
                    "backend {name} ok ({}): {}",
                    s(&v["adapter"]),
                    s(&v["message"])
                );
            }
            return Ok(());
        }
    };
    if as_json {
        print_json(&v)?;
    }
    Ok(())
}

fn print_units(b: &Value) {
    if b["units"]["error"].is_null() {
        println!(
            "  adapter {}, mapper {}",
            s(&b["units"]["adapter"]),
            s(&b["units"]["mapper"])
        );
    } else {
        println!("  not ready: {}", s(&b["units"]["error"]));
    }
}

pub async fn sync(client: &Client, cmd: SyncAdmin, as_json: bool) -> anyhow::Result<()> {
    let (v, wait, backend) = match cmd {
        SyncAdmin::Import {
            backend,
            model,
            direct,
            since,
            force,
            no_wait,
        } => {
            let mut body = json!({"backend": backend, "direct": direct, "force": force});
            if let Some(m) = model {
                body["model"] = json!(m);
            }
            if let Some(t) = since {
                body["since"] = json!(t);
            }
            (
                client.post("/api/v1/sync/import", &body).await?,
                !no_wait,
                backend,
            )
        }
        SyncAdmin::Export {
            backend,
            model,
            local_id,
            no_wait,
        } => (
            client
                .post(
                    "/api/v1/sync/export",
                    &json!({"backend": backend, "model": model, "local_id": local_id}),
                )
                .await?,
            !no_wait,
            backend,
        ),
    };
    if as_json && !wait {
        return print_json(&v);
    }
    let jobs: Vec<(i64, String)> = items(&v["jobs"])
        .map(|j| (j["id"].as_i64().unwrap_or_default(), s(&j["model"])))
        .collect();
    if !wait {
        for (id, model) in &jobs {
            println!("job {id}: {model} (follow it with `junction jobs show {id}`)");
        }
        return Ok(());
    }
    let finished = follow(client, &backend, &jobs, as_json).await?;
    // Batches in job mode leave one job per record: follow those too, so
    // that "done" means the records are imported.
    let enqueued_records = finished
        .iter()
        .any(|j| j["function"] == junction_runtime::sync::IMPORT_BATCH && j["state"] == "done");
    let records = match jobs.iter().map(|(id, _)| *id).min() {
        Some(first) if enqueued_records => {
            Some(follow_records(client, &backend, first, as_json).await?)
        }
        _ => None,
    };
    if as_json {
        return print_json(&json!({"jobs": finished, "record_jobs": records}));
    }
    for (j, (_, model)) in finished.iter().zip(&jobs) {
        let outcome = if j["state"] == "done" {
            s(&j["result"])
        } else {
            s(&j["error_message"])
        };
        println!(
            "{model}: {} (job {}) {outcome}",
            s(&j["state"]),
            s(&j["id"])
        );
    }
    let failed: Vec<&Value> = finished.iter().filter(|j| j["state"] != "done").collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} jobs did not finish done; see `junction jobs show {}`",
            failed.len(),
            finished.len(),
            s(&failed[0]["id"])
        );
    }
    if let Some(r) = records {
        let unfinished = r["failed"].as_array().map_or(0, Vec::len) as u64
            + r["cancelled"].as_u64().unwrap_or(0);
        if unfinished > 0 {
            bail!(
                "{} record import jobs failed and {} were cancelled; \
                 `junction jobs list --backend {backend} --function {} --state failed` lists the failed ones",
                r["failed"].as_array().map_or(0, Vec::len),
                r["cancelled"],
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
    state: &str,
    after: i64,
    upto: i64,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut before = upto + 1;
    loop {
        let page = client
            .get(&format!(
                "/api/v1/jobs?backend={}&function={}&state={state}&cursor={before}&limit={}",
                enc(backend),
                enc(junction_runtime::sync::IMPORT_RECORD),
                limit.unwrap_or(500).min(500)
            ))
            .await?;
        let mut last = None;
        for j in items(&page["items"]) {
            let id = j["id"].as_i64().unwrap_or_default();
            if id <= after {
                return Ok(out);
            }
            out.push(j.clone());
            if limit.is_some_and(|l| out.len() >= l) {
                return Ok(out);
            }
            last = Some(id);
        }
        match (last, page["next"].is_null()) {
            (Some(id), false) => before = id,
            _ => return Ok(out),
        }
    }
}

/// Wait until the record import jobs the batches enqueued have finished:
/// the backend's `junction.import-record` jobs after the first batch job
/// and no newer than the newest job once the batches were done (later
/// ones belong to later imports). Their failed ids and cancelled count.
async fn follow_records(
    client: &Client,
    backend: &str,
    first: i64,
    quiet: bool,
) -> anyhow::Result<Value> {
    let newest = client.get("/api/v1/jobs?limit=1").await?;
    let upto = newest["items"][0]["id"].as_i64().unwrap_or(first);
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
        for state in ["started", "enqueued", "pending", "wait_dependencies"] {
            if let Some(j) = jobs_between(client, backend, state, first, upto, Some(1))
                .await?
                .pop()
            {
                live = Some(j);
                break;
            }
        }
        let Some(j) = live else { break };
        let b = client
            .get(&format!("/api/v1/backends/{}", enc(backend)))
            .await?;
        let bound: u64 = b["bindings"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let retrying = if s(&j["error_message"]).is_empty() {
            String::new()
        } else {
            format!(
                " (job {} retrying: {})",
                s(&j["id"]),
                s(&j["error_message"])
            )
        };
        bar.set_message(format!(
            "{bound} records bound; import jobs still {}{retrying}",
            s(&j["state"])
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failed: Vec<Value> = jobs_between(client, backend, "failed", first, upto, None)
        .await?
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    let cancelled = jobs_between(client, backend, "cancelled", first, upto, None)
        .await?
        .len();
    bar.finish_with_message(format!(
        "record import jobs finished: {} failed, {cancelled} cancelled",
        failed.len()
    ));
    Ok(json!({"failed": failed, "cancelled": cancelled}))
}

/// Show one bar per job (records bound so far for its model) until every
/// job has finished; the finished jobs.
async fn follow(
    client: &Client,
    backend: &str,
    jobs: &[(i64, String)],
    quiet: bool,
) -> anyhow::Result<Vec<Value>> {
    let bars = MultiProgress::new();
    if quiet {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {prefix:>10} {pos:>7} bound  {msg}")
        .expect("a valid template");
    let tracked: Vec<(i64, String, ProgressBar)> = jobs
        .iter()
        .map(|(id, model)| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(model.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            (*id, model.clone(), bar)
        })
        .collect();
    let mut finished = vec![Value::Null; tracked.len()];
    loop {
        let b = client
            .get(&format!("/api/v1/backends/{}", enc(backend)))
            .await?;
        let mut open = 0;
        for (i, (id, model, bar)) in tracked.iter().enumerate() {
            if !finished[i].is_null() {
                continue;
            }
            let j = client.get(&format!("/api/v1/jobs/{id}")).await?["job"].clone();
            bar.set_position(b["bindings"][model].as_u64().unwrap_or(0));
            let state = s(&j["state"]);
            match state.as_str() {
                "done" | "failed" | "cancelled" => {
                    let msg = if state == "done" {
                        format!("done: {}", s(&j["result"]))
                    } else {
                        format!("{state}: {}", s(&j["error_message"]))
                    };
                    bar.finish_with_message(msg);
                    finished[i] = j;
                }
                _ => {
                    let wait = if s(&j["error_message"]).is_empty() {
                        String::new()
                    } else {
                        format!(" (retrying: {})", s(&j["error_message"]))
                    };
                    bar.set_message(format!("job {id} {state}{wait}"));
                    open += 1;
                }
            }
        }
        if open == 0 {
            return Ok(finished);
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
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("state", state),
                ("channel", channel),
                ("backend", backend),
                ("function", function),
                ("created_after", since),
                ("created_before", until),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(&v)));
                }
            }
            let v = client.get(&format!("/api/v1/jobs?{}", q.join("&"))).await?;
            if as_json {
                return print_json(&v);
            }
            let rows = items(&v["items"])
                .map(|j| {
                    vec![
                        s(&j["id"]),
                        s(&j["state"]),
                        s(&j["tries"]),
                        s(&j["channel"]),
                        what(j),
                        s(&j["error_message"]).chars().take(60).collect(),
                    ]
                })
                .collect();
            table(&["id", "state", "tries", "channel", "what", "error"], rows);
            next(&v);
        }
        JobsAdmin::Show { id } => {
            let v = client.get(&format!("/api/v1/jobs/{id}")).await?;
            if as_json {
                return print_json(&v);
            }
            let j = &v["job"];
            println!("job {id}: {}", what(j));
            println!("  function   {}", s(&j["function"]));
            println!("  state      {}", s(&j["state"]));
            println!(
                "  tries      {} of {}",
                s(&j["tries"]),
                if j["max_retries"] == json!(0) {
                    "unlimited".into()
                } else {
                    s(&j["max_retries"])
                }
            );
            println!("  channel    {}", s(&j["channel"]));
            println!("  node       {}", s(&j["node"]));
            println!("  connector  {}", s(&j["connector_digest"]));
            if !j["result"].is_null() {
                println!("  result     {}", s(&j["result"]));
            }
            if !j["error_message"].is_null() {
                println!(
                    "  error      {}: {}",
                    s(&j["error_kind"]),
                    s(&j["error_message"])
                );
            }
            println!("  arguments  {}", s(&j["args"]));
            for rel in ["parent", "child"] {
                for g in items(&v["graph"]).filter(|g| g["relation"] == rel) {
                    println!(
                        "  {rel:<10} job {} {} ({})",
                        s(&g["id"]),
                        s(&g["description"]),
                        s(&g["state"])
                    );
                }
            }
            println!("log:");
            for l in items(&v["logs"]) {
                println!(
                    "  try {} {:<5} {}: {}",
                    s(&l["try_number"]),
                    s(&l["level"]),
                    s(&l["source"]),
                    s(&l["message"])
                );
            }
            println!("outbound HTTP:");
            for a in items(&v["audit"]) {
                let e = &a["entry"];
                let outcome = if !e["denied"].is_null() {
                    format!("DENIED: {}", s(&e["denied"]))
                } else if !e["error"].is_null() {
                    format!("failed: {}", s(&e["error"]))
                } else {
                    s(&e["status"])
                };
                println!(
                    "  try {} {} {}://{}:{}{} → {} ({} ms, {} B)",
                    s(&a["try_number"]),
                    s(&e["method"]),
                    s(&e["scheme"]),
                    s(&e["host"]),
                    s(&e["port"]),
                    s(&e["path"]),
                    outcome,
                    s(&e["duration_ms"]),
                    s(&e["response_bytes"])
                );
            }
        }
        JobsAdmin::Bulk(args) => {
            super::repair::check_filter(&args)?;
            return super::repair::bulk(client, args, as_json).await;
        }
        JobsAdmin::Requeue { id } | JobsAdmin::Cancel { id } | JobsAdmin::Done { id } => {
            let (action, word) = match cmd {
                JobsAdmin::Requeue { .. } => ("requeue", "requeued"),
                JobsAdmin::Cancel { .. } => ("cancel", "cancelled"),
                _ => ("done", "marked done"),
            };
            let v = client
                .post(&format!("/api/v1/jobs/{id}/{action}"), &json!({}))
                .await?;
            if as_json {
                return print_json(&v);
            }
            println!("job {id} {word}: now {}", s(&v["state"]));
        }
    }
    Ok(())
}

pub async fn records(client: &Client, cmd: RecordsAdmin, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        RecordsAdmin::Get { model, id } => {
            let v = client
                .get(&format!("/api/v1/records/{}/{}", enc(&model), enc(&id)))
                .await?;
            if as_json {
                return print_json(&v);
            }
            println!(
                "{model} {id} (version {}, updated {})",
                s(&v["version"]),
                s(&v["updated_at"])
            );
            for line in serde_json::to_string_pretty(&v["data"])?.lines() {
                println!("{}", junction_runtime::text::clean(line));
            }
        }
        RecordsAdmin::List {
            model,
            limit,
            cursor,
        } => {
            let path = format!("/api/v1/records/{}?limit={limit}", enc(&model));
            let Some(v) = page(client, path, cursor, as_json).await? else {
                return Ok(());
            };
            let rows = items(&v["items"])
                .map(|r| {
                    let data = r["data"].to_string();
                    vec![
                        s(&r["id"]),
                        s(&r["version"]),
                        s(&r["updated_at"]),
                        data.chars().take(70).collect(),
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
    let Some(v) = page(client, path, cursor, as_json).await? else {
        return Ok(());
    };
    let rows = items(&v["items"])
        .map(|b| vec![s(&b["external_id"]), s(&b["local_id"]), at(&b["sync_date"])])
        .collect();
    table(&["external id", "local id", "synced"], rows);
    next(&v);
    Ok(())
}

/// A Unix-ms time as RFC 3339, for tables.
fn at(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub async fn nodes(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let v = client.get("/api/v1/nodes").await?;
    if as_json {
        return print_json(&v);
    }
    let rows = items(&v["items"])
        .map(|n| {
            vec![
                s(&n["name"]),
                s(&n["status"]),
                s(&n["running"]),
                s(&n["version"]),
                s(&n["host"]),
                at(&n["started_at"]),
                at(&n["heartbeat_at"]),
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
