//! Jobs: list with filters, one job with its logs, outbound HTTP audit and
//! dependencies, requeue / cancel / mark done, and starting syncs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::types::{
    BulkAnswer, BulkRequest, CancelledJob, EnqueueAnswer, EnqueueRequest, ErrorBody, ExportRequest,
    ImportRequest, JobAudit, JobDetail, JobLog, JobSelection, JobView, JobsQuery, Neighbour, Page,
    ReconcileRequest, Relation, Started, StartedJob, TaskRequest,
};
use super::{ApiState, id_cursor, page_limit};
use crate::queue::JobSpec;
use crate::queue::job::{Job, JobAction, JobFilter, JobState};
use crate::sync::EXPORT_RECORD;
use crate::sync::batch::batch_jobs;

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

/// What the list and the bulk actions filter on, checked.
fn to_jobs(f: &JobSelection) -> ApiResult<JobFilter> {
    let state = f
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
        channel: f.channel.clone(),
        backend: f.backend.clone(),
        function: f.function.clone(),
        created_after: instant("created_after", &f.created_after)?,
        created_before: instant("created_before", &f.created_before)?,
        before: None,
        limit: 0,
    })
}

/// Jobs, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "list_jobs", tag = "jobs", params(JobsQuery),
    responses((status = OK, description = "a page of jobs", body = Page<JobView>)))]
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> ApiResult<Json<Page<JobView>>> {
    let limit = page_limit(q.limit)?;
    let filter = to_jobs(&JobSelection {
        state: q.state,
        channel: q.channel,
        backend: q.backend,
        function: q.function,
        created_after: q.created_after,
        created_before: q.created_before,
    })?;
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
        items: jobs.iter().map(JobView::from).collect(),
        next,
    }))
}

/// One job, or `not_found`.
pub(super) async fn job(state: &ApiState, id: i64) -> ApiResult<Job> {
    state.storage().job(id).await?.ok_or_else(|| {
        ApiError::not_found(format!("job {id} does not exist (it may have been purged)"))
    })
}

/// One job with its logs, outbound HTTP audit and dependencies.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "get_job", tag = "jobs", params(("id" = i64, Path, description = "the job's id")),
    responses((status = OK, description = "the job", body = JobDetail)))]
pub async fn show(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobDetail>> {
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
            graph.push(Neighbour {
                id: o.id,
                function: o.function,
                state: o.state,
                description: o.description,
                relation: if parents.contains(other) {
                    Relation::Parent
                } else {
                    Relation::Child
                },
            });
        }
    }
    Ok(Json(JobDetail {
        job: JobView::from(&j),
        logs: logs
            .into_iter()
            .map(|l| JobLog {
                try_number: l.try_number,
                level: l.level,
                source: l.source,
                message: l.message,
            })
            .collect(),
        audit: audit
            .into_iter()
            .map(|a| JobAudit {
                try_number: a.try_number,
                entry: a.entry,
            })
            .collect(),
        parents,
        children,
        graph,
    }))
}

async fn after(state: &ApiState, id: i64) -> ApiResult<Json<JobView>> {
    Ok(Json(JobView::from(&job(state, id).await?)))
}

/// A failed or cancelled job back to the queue, tries reset.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/requeue", operation_id = "requeue_job", tag = "jobs", params(("id" = i64, Path, description = "the job's id")),
    responses(
        (status = OK, description = "the job, pending again", body = JobView),
        (status = CONFLICT, description = "`wrong_state`: it is not failed or cancelled", body = ErrorBody),
    ))]
pub async fn requeue(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobView>> {
    state.queue().requeue(id).await?;
    after(&state, id).await
}

/// Cancel an unfinished job and every job that depends on it.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs", params(("id" = i64, Path, description = "the job's id")),
    responses(
        (status = OK, description = "the job, with every job cancelled", body = CancelledJob),
        (status = CONFLICT, description = "`wrong_state`: it has finished", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CancelledJob>> {
    let cancelled = state.queue().cancel(id).await?;
    let Json(job) = after(&state, id).await?;
    Ok(Json(CancelledJob { job, cancelled }))
}

/// Mark a job done by hand (its dependents may start).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/done", operation_id = "mark_job_done", tag = "jobs", params(("id" = i64, Path, description = "the job's id")),
    responses(
        (status = OK, description = "the job, done", body = JobView),
        (status = CONFLICT, description = "`wrong_state`: it is done already or running", body = ErrorBody),
    ))]
pub async fn done(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<JobView>> {
    state.queue().mark_done(id).await?;
    after(&state, id).await
}

/// Requeue, cancel or mark done every job a filter matches, one
/// transaction per page; `dry_run` answers the count alone.
#[utoipa::path(post, path = "/api/v1/jobs/bulk", operation_id = "bulk_jobs", tag = "jobs", request_body = BulkRequest,
    responses(
        (status = OK, description = "what it did (or would do)", body = BulkAnswer),
        (status = BAD_REQUEST, description = "`bad_request`: an empty filter or a bad action", body = ErrorBody),
    ))]
pub async fn bulk(
    State(state): State<ApiState>,
    ApiJson(b): ApiJson<BulkRequest>,
) -> ApiResult<Json<BulkAnswer>> {
    let action = JobAction::parse(&b.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action {:?} is not a bulk action; use requeue, cancel or done",
            b.action
        ))
    })?;
    let filter = to_jobs(&b.filter)?;
    let report = state.queue().bulk(action, &filter, b.dry_run).await?;
    Ok(Json(BulkAnswer::from_report(
        report,
        b.dry_run,
        Some(action),
    )))
}

/// A model the backend does not import, refused with those it does.
fn unknown_model(backend: &str, model: &str, importable: &[String]) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_model",
        format!(
            "backend {backend:?} does not import {model:?}; it imports {}",
            importable.join(", ")
        ),
    )
}

/// The answer of a sync that started one job.
fn started_one(e: crate::queue::job::Enqueued, model: String) -> (StatusCode, Json<Started>) {
    (
        StatusCode::ACCEPTED,
        Json(Started {
            jobs: vec![StartedJob {
                id: e.id,
                model,
                deduplicated: e.deduplicated,
            }],
        }),
    )
}

/// Start batch imports of a backend (one model, or all in dependency
/// order).
#[utoipa::path(post, path = "/api/v1/sync/import", operation_id = "start_import", tag = "sync", request_body = ImportRequest,
    responses(
        (status = ACCEPTED, description = "the batch jobs", body = Started),
        (status = UNPROCESSABLE_ENTITY, description = "`unknown_model`: the backend does not import that model", body = ErrorBody),
    ))]
pub async fn import(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<ImportRequest>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let units = state.sync().backend(&r.backend).await?;
    let models: Vec<String> = match &r.model {
        Some(m) if units.importable.contains(m) => vec![m.clone()],
        Some(m) => return Err(unknown_model(&r.backend, m, &units.importable)),
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
    let jobs = enqueued
        .iter()
        .zip(&models)
        .map(|(e, m)| StartedJob {
            id: e.id,
            model: m.clone(),
            deduplicated: e.deduplicated,
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(Started { jobs })))
}

/// Export one local record to a backend.
#[utoipa::path(post, path = "/api/v1/sync/export", operation_id = "start_export", tag = "sync", request_body = ExportRequest,
    responses((status = ACCEPTED, description = "the export job", body = Started)))]
pub async fn export(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<ExportRequest>,
) -> ApiResult<(StatusCode, Json<Started>)> {
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
    Ok(started_one(e, r.model))
}

/// Find the records of a model the backend deleted: their local copies
/// are deleted (each checked against the backend once more), or only
/// reported when the backend's `reconcile.delete` is false; a run that
/// would delete more than `reconcile.max_delete_percent` fails, deleting
/// nothing, unless `confirm`.
#[utoipa::path(post, path = "/api/v1/sync/reconcile", operation_id = "start_reconcile", tag = "sync",
    request_body = ReconcileRequest,
    responses(
        (status = ACCEPTED, description = "the reconcile job", body = Started),
        (status = UNPROCESSABLE_ENTITY, description = "`unknown_model`: the backend does not import that model", body = ErrorBody),
    ))]
pub async fn reconcile(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<ReconcileRequest>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let units = state.sync().backend(&r.backend).await?;
    // A model it does not import has no bindings to reconcile.
    if !units.importable.contains(&r.model) {
        return Err(unknown_model(&r.backend, &r.model, &units.importable));
    }
    let e = state
        .queue()
        .enqueue(crate::sync::reconcile::reconcile_job(
            &r.backend, &r.model, r.confirm,
        ))
        .await?;
    Ok(started_one(e, r.model))
}

/// Run one of the tasks a backend's connector declares, as a job of the
/// backend (`junction.task`).
#[utoipa::path(post, path = "/api/v1/sync/task", operation_id = "start_task", tag = "sync",
    request_body = TaskRequest,
    responses(
        (status = ACCEPTED, description = "the task's job", body = Started),
        (status = UNPROCESSABLE_ENTITY, description = "`unknown_task`: no connector of the backend declares it; `bad_request`: args not an object", body = ErrorBody),
    ))]
pub async fn task(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<TaskRequest>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let units = state.sync().backend(&r.backend).await?;
    let args = r.args.unwrap_or_else(|| json!({}));
    if !args.is_object() {
        return Err(ApiError::bad_request(format!(
            "args of task {} must be a JSON object",
            r.task
        )));
    }
    let declared =
        state.sync().declared_tasks(&units).await.map_err(|e| {
            ApiError::new(StatusCode::BAD_GATEWAY, "connector_failed", e.to_string())
        })?;
    if !declared.iter().any(|(t, _)| t.name == r.task) {
        let names: Vec<String> = declared.iter().map(|(t, _)| t.name.clone()).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_task",
            format!(
                "no connector of backend {:?} declares a task {:?}; they declare: {}",
                r.backend,
                crate::text::clean(&r.task),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    let mut spec = JobSpec::new(
        crate::sync::TASK,
        json!({"backend": r.backend, "task": r.task, "args": args}),
    );
    spec.backend = Some(r.backend.clone());
    spec.request.description = Some(format!("task {} for {}", r.task, r.backend));
    let e = state.queue().enqueue(spec).await?;
    Ok(started_one(e, format!("task:{}", r.task)))
}

/// Enqueue jobs of any registered function, in one transaction: all or
/// none (at most 10,000 per request).
#[utoipa::path(post, path = "/api/v1/jobs", operation_id = "enqueue_jobs", tag = "jobs", request_body = EnqueueRequest,
    responses(
        (status = CREATED, description = "the jobs, in the order sent", body = EnqueueAnswer),
        (status = UNPROCESSABLE_ENTITY, description = "`invalid_job`: an unknown function, channel or delay; nothing was enqueued", body = ErrorBody),
    ))]
pub async fn enqueue(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<EnqueueRequest>,
) -> ApiResult<(StatusCode, Json<EnqueueAnswer>)> {
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
    Ok((StatusCode::CREATED, Json(EnqueueAnswer { jobs: enqueued })))
}
