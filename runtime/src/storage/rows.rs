//! Below the statements: decoding rows into the model (generic over the
//! database's row type), the job column list, lease-holder names,
//! numbered placeholders for statements built at run time ([`Params`]),
//! and the statements more than one area runs.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Binding, StateCount, StoredEvent};
use crate::model::{Event, LocalRecord, format_timestamp};
use crate::storage::types::PurgeScope;
use crate::storage::types::{Job, JobFilter, JobState};

pub(crate) const JOB_COLUMNS: &str = "id, function, args, backend, state, priority, eta, channel, identity_key, \
    max_retries, tries, description, result, error_kind, error_message, created_at, started_at, \
    finished_at, lease_until, node, worker, connector_digest";

pub(crate) fn job_from_row<R: Row>(row: &R) -> Result<Job, sqlx::Error>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        function: row.try_get("function")?,
        args: row.try_get("args")?,
        backend: row.try_get("backend")?,
        state: JobState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job state {state:?}").into()))?,
        priority: row.try_get::<i64, _>("priority")? as i32,
        eta: row.try_get("eta")?,
        channel: row.try_get("channel")?,
        identity_key: row.try_get("identity_key")?,
        max_retries: row.try_get::<i64, _>("max_retries")? as u32,
        tries: row.try_get::<i64, _>("tries")? as u32,
        description: row.try_get("description")?,
        result: row.try_get("result")?,
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        lease_until: row.try_get("lease_until")?,
        node: row.try_get("node")?,
        worker: row.try_get("worker")?,
        connector_digest: row.try_get("connector_digest")?,
    })
}

/// Circuit breakers: the same statements on both databases.
pub(crate) const OPEN_BREAKER: &str = "INSERT INTO backend_breakers \
    (backend, failures, reason, opened_at, retry_at, cool_down, probes) VALUES ($1, $2, $3, $4, $5, $6, 0) \
    ON CONFLICT (backend) DO NOTHING";
pub(crate) const BREAKERS: &str = "SELECT backend, failures, reason, opened_at, retry_at, cool_down, probes \
    FROM backend_breakers ORDER BY backend";
/// Binds: max cool-down twice, reason, now, max cool-down twice, backend.
pub(crate) const BREAKER_PROBE_FAILED: &str = "UPDATE backend_breakers SET \
    cool_down = CASE WHEN cool_down * 2 > $1 THEN $2 ELSE cool_down * 2 END, \
    reason = $3, probes = probes + 1, \
    retry_at = $4 + CASE WHEN cool_down * 2 > $5 THEN $6 ELSE cool_down * 2 END \
    WHERE backend = $7";
/// A row of `BREAKERS`.
pub(crate) type BreakerRow = (String, i64, String, i64, i64, i64, i64);

pub(crate) fn breaker_from_row(r: BreakerRow) -> super::OpenBreaker {
    let (backend, failures, reason, opened_at, retry_at, cool_down, probes) = r;
    super::OpenBreaker {
        backend,
        failures,
        reason,
        opened_at,
        retry_at,
        cool_down,
        probes,
    }
}

pub(crate) const CLOSE_BREAKER: &str = "DELETE FROM backend_breakers WHERE backend = $1";

/// Pauses: the same statements on both databases.
pub(crate) const PAUSE: &str = "INSERT INTO paused (kind, name, paused_at) VALUES ($1, $2, $3) \
    ON CONFLICT (kind, name) DO NOTHING";
pub(crate) const RESUME: &str = "DELETE FROM paused WHERE kind = $1 AND name = $2";
pub(crate) const PAUSED: &str = "SELECT kind, name, paused_at FROM paused ORDER BY kind, name";

/// Per channel, the ETA of the oldest due job not started (binds `now`
/// twice). One branch per partial index (`jobs_ready` over pending jobs,
/// `jobs_leased` over enqueued and started ones; the repeated `state` term
/// is what lets SQLite prove the second applies), so that the cost follows
/// the live jobs, not the finished ones kept until the retention purge.
pub(crate) const OLDEST_DUE: &str = "SELECT channel, MIN(eta) FROM (
        SELECT channel, eta FROM jobs WHERE state = 'pending' AND eta <= $1
        UNION ALL
        SELECT channel, eta FROM jobs
        WHERE state IN ('enqueued', 'started') AND state = 'enqueued' AND eta <= $2
    ) AS due GROUP BY channel";

/// Jobs by channel and state, from the counts the triggers keep
/// (`job_counts`: one row per channel and state on SQLite, signed deltas
/// on PostgreSQL; the sum is right on both).
pub(crate) const COUNTS: &str = "SELECT state, channel, CAST(SUM(n) AS BIGINT) AS n FROM job_counts \
    GROUP BY state, channel HAVING SUM(n) <> 0 ORDER BY channel, state";

pub(crate) fn state_count_from_row<R: Row>(row: &R) -> Result<StateCount, sqlx::Error>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    Ok(StateCount {
        state: JobState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job state {state:?}").into()))?,
        channel: row.try_get("channel")?,
        count: row.try_get("n")?,
    })
}

pub(crate) fn record_from_row<R: Row>(row: &R) -> Result<LocalRecord, sqlx::Error>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LocalRecord {
        model: row.try_get("model")?,
        id: row.try_get("id")?,
        data: row.try_get("data")?,
        version: row.try_get::<i64, _>("version")? as u64,
        updated_at: format_timestamp(row.try_get("updated_at")?),
    })
}

pub(crate) fn event_from_row<R: Row>(row: &R) -> Result<StoredEvent, sqlx::Error>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let fields: String = row.try_get("changed_fields")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        event: Event {
            name: row.try_get("name")?,
            model: row.try_get("model")?,
            local_id: row.try_get("local_id")?,
            changed_fields: serde_json::from_str(&fields)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            payload: row.try_get("payload")?,
            origin_backend: row.try_get("origin_backend")?,
        },
    })
}

/// `(external_id, local_id, sync_date, synced)` of a binding row.
pub(crate) type BindingRow = (String, String, i64, Option<String>);

pub(crate) fn binding_from_row(backend: &str, model: &str, row: BindingRow) -> Binding {
    let (external_id, local_id, sync_date, synced) = row;
    Binding {
        backend: backend.to_string(),
        model: model.to_string(),
        external_id,
        local_id,
        sync_date,
        synced,
    }
}

/// The attempt a job's lease holder belongs to: `job-<id>.<token>:`, the
/// part every holder of one run of the job shares (its dependency imports
/// add `:<depth>:<k>` after the node). A lease of the same job but another
/// attempt belongs to a run that is gone and may be taken over; one of the
/// same attempt is a concurrent part of this run and must be waited for.
pub(crate) fn holder_attempt(holder: &str) -> Option<&str> {
    holder.strip_prefix("job-")?;
    holder.find(':').map(|i| &holder[..=i])
}

/// A `LIKE … ESCAPE '\'` pattern for the texts that start with `prefix`
/// (its own `%`, `_` and `\` taken literally).
pub(crate) fn like_prefix(prefix: &str) -> String {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{escaped}%")
}

/// Whether two holders are parts of one run of a job.
pub(crate) fn same_attempt(a: &str, b: &str) -> bool {
    holder_attempt(a).is_some() && holder_attempt(a) == holder_attempt(b)
}

/// The job a lease holder named `job-<id>…` stands for.
pub(crate) fn holder_job(holder: &str) -> Option<i64> {
    let rest = holder.strip_prefix("job-")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// Cancel the unfinished jobs `seed` selects (its one parameter, `$1`)
/// and, transitively, every unfinished job depending on them; binds the
/// time as `$2` and returns the cancelled ids.
pub(crate) fn cancel_tree(seed: &str) -> String {
    format!(
        "WITH RECURSIVE tree(id) AS (
             {seed} UNION SELECT d.child FROM job_dependencies d JOIN tree t ON d.parent = t.id)
         UPDATE jobs SET state = 'cancelled', finished_at = $2, lease_until = NULL
         WHERE id IN (SELECT id FROM tree) AND state NOT IN ('done', 'cancelled', 'failed')
         RETURNING id"
    )
}

/// The `cancel_tree` seed of a backend's unfinished jobs.
pub(crate) const BACKEND_UNFINISHED: &str =
    "SELECT id FROM jobs WHERE backend = $1 AND state NOT IN ('done', 'cancelled', 'failed')";

/// Ids per `IN (...)` list, under SQLite's bound-parameter limit.
pub(crate) const IN_CHUNK: usize = 500;

/// Placeholders for a statement built at run time, handed out in the
/// order the values are bound; every placeholder of such a statement
/// comes from here. The style is the dialect's (`Dialect::PARAM`): `$n`
/// for PostgreSQL; plain `?` for SQLite, because any numbered or named
/// parameter (`?7`, `$7`) makes SQLite keep a list of them that the
/// driver scans once per parameter when binding — a 5,000-parameter
/// insert went from 268,000 to 18,000 jobs/s.
#[derive(Debug)]
pub(crate) struct Params {
    prefix: &'static str,
    n: usize,
}

impl Params {
    /// Placeholders in the style `prefix` names: `"$"` numbers them,
    /// `"?"` leaves them positional.
    pub fn new(prefix: &'static str) -> Params {
        Params { prefix, n: 0 }
    }

    /// The next placeholder.
    pub fn next(&mut self) -> String {
        self.n += 1;
        if self.prefix == "?" {
            "?".to_string()
        } else {
            format!("{}{}", self.prefix, self.n)
        }
    }

    /// `n` placeholders, comma-separated.
    pub fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// `rows` rows of `width` placeholders: `($1, $2), ($3, $4)`.
    pub fn rows(&mut self, rows: usize, width: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(width)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One value a job filter binds, in the order of `job_filter`'s `?`s.
pub(crate) enum FilterValue {
    Text(String),
    Int(i64),
}

/// `query` with `values` bound in order (a job filter's, a purge's).
pub(crate) fn bind_values<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    values: Vec<FilterValue>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + Type<DB>,
    i64: sqlx::Encode<'q, DB> + Type<DB>,
{
    for value in values {
        query = match value {
            FilterValue::Text(t) => query.bind(t),
            FilterValue::Int(i) => query.bind(i),
        };
    }
    query
}

/// The ` AND …` conditions of a job filter (paging included), and the
/// values to bind to them in order.
pub(crate) fn job_filter(filter: &JobFilter, params: &mut Params) -> (String, Vec<FilterValue>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    // The state written out, not bound: a partial index (the failed
    // jobs', the finished jobs') serves only a query that names its state
    // literally. `as_str` is one of a fixed set of words.
    if let Some(s) = filter.state {
        sql.push_str(&format!(" AND state = '{}'", s.as_str()));
    }
    for (column, value) in [
        ("channel", &filter.channel),
        ("backend", &filter.backend),
        ("function", &filter.function),
    ] {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = {}", params.next()));
            values.push(FilterValue::Text(v.clone()));
        }
    }
    for (condition, value) in [
        (" AND created_at >= ", filter.created_after),
        (" AND created_at < ", filter.created_before),
        (" AND id < ", filter.before),
    ] {
        if let Some(v) = value {
            sql.push_str(condition);
            sql.push_str(&params.next());
            values.push(FilterValue::Int(v));
        }
    }
    (sql, values)
}

/// Requeue, step 1 (binds: job): how many of its parents are not done.
pub(crate) const UNDONE_PARENTS: &str = "SELECT COUNT(*) FROM job_dependencies d \
    JOIN jobs p ON p.id = d.parent WHERE d.child = $1 AND p.state != 'done'";
/// Requeue, step 2 (binds: state, now, waiting parents, job).
pub(crate) const REQUEUE: &str = "UPDATE jobs SET state = $1, tries = 0, eta = $2, \
    pending_parents = $3, finished_at = NULL, lease_until = NULL, node = NULL, worker = NULL \
    WHERE id = $4";
/// Mark done (binds: now, job); the dependents are released after.
pub(crate) const MARK_DONE: &str = "UPDATE jobs SET state = 'done', finished_at = $1, \
    lease_until = NULL, result = COALESCE(result, '\"marked done by an operator\"') WHERE id = $2";

/// A backend's state keys under a prefix (binds: backend, prefix length,
/// prefix): compared as text, whatever the collation or `LIKE` escapes.
pub(crate) const STATE_LIST: &str = "SELECT key, value, updated_at FROM stream_state \
    WHERE backend = $1 AND SUBSTR(key, 1, CAST($2 AS INTEGER)) = $3 ORDER BY key";
/// Binds: backend, key.
pub(crate) const STATE_DELETE: &str = "DELETE FROM stream_state WHERE backend = $1 AND key = $2";
/// Discard a failed job (binds: now, job); its dependents are cancelled
/// after, with `cancel_tree(DEPENDENTS)`.
pub(crate) const DISCARD: &str = "UPDATE jobs SET state = 'cancelled', finished_at = $1, \
    lease_until = NULL, result = '\"discarded by an operator\"' WHERE id = $2";
/// The `cancel_tree` seed of a job's direct dependents (binds: job).
pub(crate) const DEPENDENTS: &str = "SELECT child FROM job_dependencies WHERE parent = $1";

/// Condition: `channel` is `root` or inside it (binds: root, its length
/// plus one, root and a dot), compared as text so that `_` and `%` in a
/// name mean themselves.
fn in_subtree(params: &mut Params) -> String {
    format!(
        "(channel = {} OR SUBSTR(channel, 1, CAST({} AS INTEGER)) = {})",
        params.next(),
        params.next(),
        params.next()
    )
}

/// One purge batch of finished jobs in `scope`, older than a time: the
/// statement and its values (binds: before, the scope's, batch size).
pub(crate) fn purge(
    param: &'static str,
    scope: &PurgeScope,
    before: i64,
    batch: u32,
) -> (String, Vec<FilterValue>) {
    let mut values = vec![FilterValue::Int(before)];
    let mut params = Params::new(param);
    let before_p = params.next();
    let mut conditions = String::new();
    let subtree = |root: &str, values: &mut Vec<FilterValue>| {
        values.push(FilterValue::Text(root.to_string()));
        values.push(FilterValue::Int(root.chars().count() as i64 + 1));
        values.push(FilterValue::Text(format!("{root}.")));
    };
    if let Some(root) = &scope.subtree {
        conditions.push_str(&format!(" AND {}", in_subtree(&mut params)));
        subtree(root, &mut values);
    }
    for root in &scope.except {
        conditions.push_str(&format!(" AND NOT {}", in_subtree(&mut params)));
        subtree(root, &mut values);
    }
    values.push(FilterValue::Int(i64::from(batch)));
    let limit = params.next();
    (
        format!(
            "DELETE FROM jobs WHERE id IN (
                 SELECT id FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < {before_p}{conditions}
                 AND id NOT IN (SELECT d.parent FROM job_dependencies d JOIN jobs c ON c.id = d.child
                                WHERE c.state NOT IN ('done', 'cancelled', 'failed'))
                 LIMIT {limit})"
        ),
        values,
    )
}

/// The `record` keys a record's jobs carry: its local one and one per
/// binding.
pub(crate) fn record_keys(
    model: &str,
    local_id: &str,
    external: &[(String, String)],
) -> Vec<String> {
    let mut keys = vec![crate::storage::types::local_record_key(model, local_id)];
    keys.extend(
        external
            .iter()
            .map(|(backend, id)| crate::storage::types::remote_record_key(backend, model, id)),
    );
    keys
}

/// A record's jobs, newest first (binds: each of `n` keys, limit).
pub(crate) fn record_jobs(param: &'static str, n: usize) -> String {
    let mut p = Params::new(param);
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE record IN ({}) ORDER BY id DESC LIMIT {}",
        p.list(n),
        p.next()
    )
}

/// Events about a record, newest first (binds: model, local id, limit).
pub(crate) const RECORD_EVENTS: &str = "SELECT id, name, model, local_id, changed_fields, payload, \
    origin_backend, created_at FROM outbox WHERE model = $1 AND local_id = $2 AND local_id IS NOT NULL \
    ORDER BY id DESC LIMIT $3";

/// Notifications (queue::notify): the same statements on both databases.
pub(crate) const NOTIFY_COUNT: &str = "SELECT COUNT(*) FROM notifications WHERE target = $1";
pub(crate) const NOTIFY_ADD: &str = "INSERT INTO notifications (target, kind, backend, subject, \
    message, at) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const NOTIFY_DROP: &str = "INSERT INTO notification_drops (target, dropped) VALUES ($1, 1) \
    ON CONFLICT (target) DO UPDATE SET dropped = notification_drops.dropped + 1";
pub(crate) const NOTIFY_TAKE: &str = "SELECT id, kind, backend, subject, message, at \
    FROM notifications WHERE target = $1 ORDER BY id LIMIT $2";
pub(crate) const NOTIFY_DROPPED: &str = "SELECT dropped FROM notification_drops WHERE target = $1";
/// Binds: how many were reported, target.
pub(crate) const NOTIFY_UNDROP: &str =
    "UPDATE notification_drops SET dropped = dropped - $1 WHERE target = $2";

pub(crate) fn notification_from_row<R: Row>(
    row: &R,
) -> Result<crate::storage::types::Notification, sqlx::Error>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::storage::types::Notification {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        backend: row.try_get("backend")?,
        subject: row.try_get("subject")?,
        message: row.try_get("message")?,
        at: row.try_get("at")?,
    })
}
