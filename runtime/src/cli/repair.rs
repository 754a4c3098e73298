//! The operator's repair commands: bulk actions on jobs by filter, dead
//! events, import cursors and closing a circuit breaker by hand. Every
//! action over many jobs counts first and acts only with `--yes`, so the
//! operator sees how many jobs a filter catches before touching them.

use anyhow::bail;
use clap::{Args, Subcommand};

use junction_runtime::api::types::{
    BreakerClosed, BulkAnswer, BulkRequest, CursorChanged, Cursors, DeadAction, DeadEvent,
    DeadQuery, JobSelection, Page, SetCursor,
};
use junction_runtime::text::clean;

use super::admin::{next, o, print_json, table};
use super::client::{Client, enc};

/// `junction jobs bulk …`.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// requeue, cancel, done or discard (a failed job set aside for good)
    pub action: String,
    /// wait_dependencies, pending, enqueued, started, done, cancelled or failed
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub backend: Option<String>,
    #[arg(long)]
    pub channel: Option<String>,
    #[arg(long)]
    pub function: Option<String>,
    /// Only jobs enqueued at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only jobs enqueued before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Act; without it, only count the jobs the filter matches.
    #[arg(long)]
    pub yes: bool,
}

/// `junction events …`.
#[derive(Debug, Subcommand)]
pub enum EventsAdmin {
    /// Events whose delivery to a backend's listener failed for good,
    /// newest first.
    Dead {
        #[arg(long)]
        backend: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Deliver dead events again (tries reset): the named delivery jobs,
    /// or all of them (of --backend).
    Retry(DeadArgs),
    /// Give up on dead events: set aside for good, purged like finished
    /// jobs.
    Discard(DeadArgs),
}

#[derive(Debug, Args)]
pub struct DeadArgs {
    /// Delivery job ids (the JOB column of `events dead`); none for all.
    pub jobs: Vec<i64>,
    #[arg(long)]
    pub backend: Option<String>,
    /// Act; without it, only count.
    #[arg(long)]
    pub yes: bool,
}

/// What a bulk answer says, as a line: the count when dry, else the
/// changes.
fn report(v: &BulkAnswer, verb: &str, again: &str) {
    if v.dry_run {
        println!(
            "{} jobs match; nothing changed yet. To {verb} them, run again with --yes: {again} --yes",
            v.matched
        );
    } else {
        println!(
            "{} of {} matching jobs: {} changed, {} skipped (their state had moved on) in {} transactions",
            verb, v.matched, v.changed, v.skipped, v.pages
        );
    }
}

pub async fn bulk(client: &Client, a: BulkArgs, as_json: bool) -> anyhow::Result<()> {
    let mut again = format!("junction jobs bulk {}", shell_word(&a.action));
    for (flag, value) in [
        ("state", &a.state),
        ("backend", &a.backend),
        ("channel", &a.channel),
        ("function", &a.function),
        ("since", &a.since),
        ("until", &a.until),
    ] {
        if let Some(v) = value {
            again.push_str(&format!(" --{flag} {}", shell_word(v)));
        }
    }
    let body = BulkRequest {
        action: a.action.clone(),
        filter: JobSelection {
            state: a.state,
            channel: a.channel,
            backend: a.backend,
            function: a.function,
            created_after: a.since,
            created_before: a.until,
        },
        dry_run: !a.yes,
    };
    let v: BulkAnswer = client.post("/api/v1/jobs/bulk", &body).await?;
    if as_json {
        return print_json(&v);
    }
    report(&v, &clean(&a.action), &again);
    Ok(())
}

/// A value as the shell would need it typed again.
fn shell_word(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:+/@".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

pub async fn events(client: &Client, cmd: EventsAdmin, as_json: bool) -> anyhow::Result<()> {
    let (verb, a) = match cmd {
        EventsAdmin::Dead {
            backend,
            limit,
            cursor,
        } => {
            let query = serde_urlencoded::to_string(DeadQuery {
                backend,
                cursor,
                limit: Some(limit),
            })?;
            let v: Page<DeadEvent> = client.get(&format!("/api/v1/events/dead?{query}")).await?;
            if as_json {
                return print_json(&v);
            }
            let rows = v
                .items
                .iter()
                .map(|d| {
                    vec![
                        d.job.to_string(),
                        o(&d.backend),
                        d.event.map(|e| e.to_string()).unwrap_or_default(),
                        format!("{}:{}", o(&d.name), o(&d.model)),
                        o(&d.local_id),
                        d.tries.to_string(),
                        o(&d.error_message).chars().take(60).collect(),
                    ]
                })
                .collect();
            table(
                &[
                    "job", "backend", "event", "what", "record", "tries", "error",
                ],
                rows,
            );
            next(&v);
            return Ok(());
        }
        EventsAdmin::Retry(a) => ("retry", a),
        EventsAdmin::Discard(a) => ("discard", a),
    };
    let mut again = format!("junction events {verb}");
    if let Some(b) = &a.backend {
        again.push_str(&format!(" --backend {}", shell_word(b)));
    }
    for id in &a.jobs {
        again.push_str(&format!(" {id}"));
    }
    let body = DeadAction {
        backend: a.backend,
        jobs: (!a.jobs.is_empty()).then_some(a.jobs),
        dry_run: !a.yes,
    };
    let v: BulkAnswer = client
        .post(&format!("/api/v1/events/dead/{verb}"), &body)
        .await?;
    if as_json {
        return print_json(&v);
    }
    report(&v, verb, &again);
    Ok(())
}

/// `junction backend close-breaker NAME`.
pub async fn close_breaker(client: &Client, name: &str, as_json: bool) -> anyhow::Result<()> {
    let v: BreakerClosed = client
        .act(&format!("/api/v1/backends/{}/breaker/close", enc(name)))
        .await?;
    if as_json {
        return print_json(&v);
    }
    let name = clean(name);
    if v.closed {
        println!(
            "backend {name}: circuit breaker closed; its jobs run again (it opens again if the backend still fails)"
        );
    } else {
        println!("backend {name}: its circuit breaker was not open");
    }
    Ok(())
}

/// `junction backend cursors NAME`.
pub async fn cursors(client: &Client, name: &str, as_json: bool) -> anyhow::Result<()> {
    let v: Cursors = client
        .get(&format!("/api/v1/backends/{}/cursors", enc(name)))
        .await?;
    if as_json {
        return print_json(&v);
    }
    let name = clean(name);
    let rows: Vec<Vec<String>> = v
        .items
        .iter()
        .map(|c| {
            vec![
                clean(&c.model),
                o(&c.cursor),
                o(&c.updated_at),
                o(&c.resumes_at),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!(
            "backend {name} has no import cursor yet: its next imports search from the beginning"
        );
        return Ok(());
    }
    table(&["model", "cursor", "updated", "resumes at page"], rows);
    Ok(())
}

/// `junction backend reset-cursor NAME MODEL [--to TIME]`.
pub async fn reset_cursor(
    client: &Client,
    name: &str,
    model: &str,
    to: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/backends/{}/cursors/{}", enc(name), enc(model));
    let v: CursorChanged = match to {
        Some(t) => {
            client
                .put(
                    &path,
                    &SetCursor {
                        cursor: t.to_string(),
                    },
                )
                .await?
        }
        None => client.delete(&path).await?,
    };
    if as_json {
        return print_json(&v);
    }
    let (name, model) = (clean(name), clean(model));
    match to {
        Some(_) => println!(
            "backend {name}: the next {model} import searches for records changed since {}",
            o(&v.cursor)
        ),
        None if v.existed == Some(true) => println!(
            "backend {name}: {model} cursor reset; its next import searches from the beginning"
        ),
        None => println!(
            "backend {name} had no {model} cursor; its next import searches from the beginning anyway"
        ),
    }
    Ok(())
}

/// Refuse an empty bulk filter in the CLI too, with the flags to use.
pub fn check_filter(a: &BulkArgs) -> anyhow::Result<()> {
    if a.state.is_none()
        && a.backend.is_none()
        && a.channel.is_none()
        && a.function.is_none()
        && a.since.is_none()
        && a.until.is_none()
    {
        bail!(
            "jobs bulk needs a filter: --state, --backend, --channel, --function, --since or --until"
        );
    }
    Ok(())
}
