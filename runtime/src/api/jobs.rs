//! Jobs: list with filters, one job with its logs, outbound HTTP audit and
//! dependencies, requeue / cancel / mark done, and starting syncs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiState, Page, id_cursor, page_limit};
use crate::queue::JobSpec;
use crate::queue::job::{Job, JobAction, JobFilter, JobState};
use crate::sync::EXPORT_RECORD;
use crate::sync::batch::batch_jobs;

/// A job as the API shows it: its arguments as JSON, not text.
fn view(job: &Job) -> Value {
    let mut v = serde_json::to_value(job).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        let args: Value =
            serde_json::from_str(&job.args).unwrap_or(Value::String(job.args.clone()));
        obj.insert("args".into(), args);
    }
    v
}

/// Which jobs: what the list and the bulk actions filter on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    state: Option<String>,
    channel: Option<String>,
    backend: Option<String>,
    function: Option<String>,
    /// Enqueued at or after this RFC 3339 time.
    created_after: Option<String>,
    /// Enqueued before this RFC 3339 time.
    created_before: Option<String>,
}

fn instant(key: &str, text: &Option<String>) -> ApiResult<Option<i64>> {
    text.as_deref()
        .map(|t| {
            crate::model::parse_timestamp(t).map_err(|e| {
                ApiError::bad_request(format!(
                    "{key} {t:?} is not an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}"
                ))
            })
        })
        .transpose()
}

impl Filter {
    fn to_jobs(&self) -> ApiResult<JobFilter> {
        let state = self
            .state
            .as_deref()
            .map(|s| {
                JobState::parse(s).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "state {s:?} is not a job state; use one of wait_dependencies, pending, enqueued, started, done, cancelled, failed"
                    ))
                })
            })
            .transpose()?;
        Ok(JobFilter {
            state,
            channel: self.channel.clone(),
            backend: self.backend.clone(),
            function: self.function.clone(),
            created_after: instant("created_after", &self.created_after)?,
            created_before: instant("created_before", &self.created_before)?,
            before: None,
            limit: 0,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    channel: Option<String>,
    backend: Option<String>,
    function: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Newest first.
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Value>>> {
    let limit = page_limit(q.limit)?;
    let filter = Filter {
        state: q.state,
        channel: q.channel,
        backend: q.backend,
        function: q.function,
        created_after: q.created_after,
        created_before: q.created_before,
    }
    .to_jobs()?;
    let before = id_cursor(q.cursor.as_deref())?;
    let jobs = state
        .storage()
        .jobs(&JobFilter {
            before,
            limit,
            ..filter
        })
        .await?;
    let next = (jobs.len() as u32 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: jobs.iter().map(view).collect(),
        next,
    }))
}

/// One job, or `not_found`.
pub(super) async fn job(state: &ApiState, id: i64) -> ApiResult<Job> {
    state.storage().job(id).await?.ok_or_else(|| {
        ApiError::not_found(format!("job {id} does not exist (it may have been purged)"))
    })
}

/// One job with everything it left behind.
pub async fn show(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let j = job(&state, id).await?;
    let storage = state.storage();
    let logs = storage.job_log(id).await?;
    let audit = storage.job_audit(id).await?;
    let parents = storage.parents(id).await?;
    let children = storage.children(id).await?;
    // The neighbours shown in full; a chain job may have thousands.
    const SHOWN: usize = 50;
    let mut graph = Vec::new();
    for other in parents
        .iter()
        .take(SHOWN)
        .chain(children.iter().take(SHOWN))
    {
        if let Some(o) = storage.job(*other).await? {
            graph.push(json!({
                "id": o.id,
                "function": o.function,
                "state": o.state,
                "description": o.description,
                "relation": if parents.contains(other) { "parent" } else { "child" },
            }));
        }
    }
    Ok(Json(json!({
        "job": view(&j),
        "logs": logs,
        "audit": audit,
        "parents": parents,
        "children": children,
        "graph": graph,
    })))
}

async fn after(state: &ApiState, id: i64) -> ApiResult<Json<Value>> {
    Ok(Json(view(&job(state, id).await?)))
}

pub async fn requeue(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    state.queue().requeue(id).await?;
    after(&state, id).await
}

pub async fn cancel(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let cancelled = state.queue().cancel(id).await?;
    let mut v = after(&state, id).await?.0;
    v["cancelled"] = json!(cancelled);
    Ok(Json(v))
}

pub async fn done(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    state.queue().mark_done(id).await?;
    after(&state, id).await
}

/// Body of `POST /api/v1/jobs/bulk`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    /// `requeue`, `cancel` or `done`.
    action: String,
    filter: Filter,
    /// Only count what the filter matches.
    #[serde(default)]
    dry_run: bool,
}

/// Requeue, cancel or mark done every job a filter matches, one
/// transaction per page; `dry_run` answers the count alone.
pub async fn bulk(
    State(state): State<ApiState>,
    ApiJson(b): ApiJson<Bulk>,
) -> ApiResult<Json<Value>> {
    let action = JobAction::parse(&b.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action {:?} is not a bulk action; use requeue, cancel or done",
            b.action
        ))
    })?;
    let filter = b.filter.to_jobs()?;
    let report = state.queue().bulk(action, &filter, b.dry_run).await?;
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    v["action"] = json!(action);
    v["dry_run"] = json!(b.dry_run);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    backend: String,
    /// One model; all the backend's importable models (in dependency
    /// order) when absent.
    model: Option<String>,
    /// Import in the batch job itself instead of one job per record.
    #[serde(default)]
    direct: bool,
    /// Search from this RFC 3339 time instead of the stored cursor.
    since: Option<String>,
    /// Import every record found (from the beginning unless `since`),
    /// even those synced since their last change, writing every field.
    #[serde(default)]
    force: bool,
}

/// Enqueue batch imports; answers the jobs.
pub async fn import(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<Import>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let units = state.sync().backend(&r.backend).await?;
    let models: Vec<String> = match &r.model {
        Some(m) if units.importable.contains(m) => vec![m.clone()],
        Some(m) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_model",
                format!(
                    "backend {:?} does not import {m:?}; it imports {}",
                    r.backend,
                    units.importable.join(", ")
                ),
            ));
        }
        None => units.importable.clone(),
    };
    if let Some(since) = &r.since {
        time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "since {since:?} is not an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}"
                ))
            })?;
    }
    let names: Vec<&str> = models.iter().map(String::as_str).collect();
    let mut specs = batch_jobs(&r.backend, &names, r.direct);
    if r.since.is_some() || r.force {
        for spec in &mut specs {
            let mut args: Value = serde_json::from_str(&spec.request.args).unwrap_or_default();
            if let Some(since) = &r.since {
                args["since"] = json!(since);
            }
            if r.force {
                args["force"] = json!(true);
                // Not collapsed into an ordinary import waiting.
                spec.request.identity_key = spec
                    .request
                    .identity_key
                    .as_ref()
                    .map(|k| format!("{k}:forced"));
            }
            spec.request.args = args.to_string();
        }
    }
    let enqueued = state.queue().enqueue_batch(&specs).await?;
    let jobs: Vec<Value> = enqueued
        .iter()
        .zip(&models)
        .map(|(e, m)| json!({"id": e.id, "model": m, "deduplicated": e.deduplicated}))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({"jobs": jobs}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    backend: String,
    model: String,
    local_id: String,
}

/// Enqueue the export of one local record.
pub async fn export(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<Export>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    state.sync().backend(&r.backend).await?;
    if state
        .storage()
        .record(&r.model, &r.local_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "there is no local {} {:?} to export",
            r.model, r.local_id
        )));
    }
    let mut spec = JobSpec::new(
        EXPORT_RECORD,
        json!({"backend": r.backend, "model": r.model, "local_id": r.local_id}),
    );
    spec.backend = Some(r.backend.clone());
    spec.request.description = Some(format!(
        "export {} {} to {}",
        r.model, r.local_id, r.backend
    ));
    let e = state.queue().enqueue(spec).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"jobs": [{"id": e.id, "model": r.model, "deduplicated": e.deduplicated}]})),
    ))
}

/// One job of `POST /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJobRequest {
    function: String,
    #[serde(default)]
    args: Option<Value>,
    backend: Option<String>,
    channel: Option<String>,
    priority: Option<u32>,
    identity_key: Option<String>,
    max_retries: Option<u32>,
    /// Run no earlier than this many milliseconds from now.
    delay_ms: Option<u64>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enqueue {
    jobs: Vec<NewJobRequest>,
}

/// Enqueue jobs of any registered function, in one transaction: all or
/// none (at most 10,000 per request).
pub async fn enqueue(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<Enqueue>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if r.jobs.is_empty() || r.jobs.len() > 10_000 {
        return Err(ApiError::bad_request(format!(
            "send 1 to 10000 jobs per request, not {}",
            r.jobs.len()
        )));
    }
    let specs: Vec<JobSpec> = r
        .jobs
        .into_iter()
        .map(|j| {
            let mut spec = JobSpec::new(&j.function, j.args.unwrap_or_else(|| json!({})));
            spec.backend = j.backend;
            spec.request.channel = j.channel;
            spec.request.priority = j.priority;
            spec.request.identity_key = j.identity_key;
            spec.request.max_retries = j.max_retries;
            spec.request.description = j.description;
            spec.delay = j.delay_ms.map(std::time::Duration::from_millis);
            spec
        })
        .collect();
    let enqueued = state.queue().enqueue_batch(&specs).await?;
    Ok((StatusCode::CREATED, Json(json!({"jobs": enqueued}))))
}
