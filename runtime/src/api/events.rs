//! Dead events (`/api/v1/events/dead`): deliveries of an event to a
//! backend's listener that failed for good (`sync::deliver`), listed with
//! the event they carry, retried (the delivery job requeued with its
//! tries reset) or discarded (set aside for good, purged like any
//! finished job). Acting by filter pages like the jobs' bulk actions;
//! acting on named jobs refuses any that is not a dead delivery.

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::types::{BulkAnswer, DeadAction, DeadEvent, DeadQuery, ErrorBody, Page};
use super::{ApiState, id_cursor, page_limit};
use crate::queue::job::{JobAction, JobFilter, JobState};
use crate::sync::{DELIVER, deliver::dead};

/// `GET /api/v1/events/dead`: newest first, with each event's name,
/// model and record (when the event is still stored).
#[utoipa::path(get, path = "/api/v1/events/dead", operation_id = "list_dead_events", tag = "events", params(DeadQuery),
    responses((status = OK, description = "a page of dead events", body = Page<DeadEvent>)))]
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<DeadQuery>,
) -> ApiResult<Json<Page<DeadEvent>>> {
    let limit = page_limit(q.limit)?;
    let before = id_cursor(q.cursor.as_deref())?;
    let storage = state.storage();
    let jobs = storage
        .jobs(&JobFilter {
            before,
            limit,
            ..dead(q.backend.as_deref())
        })
        .await?;
    let mut items = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let event_id = serde_json::from_str::<Value>(&job.args)
            .ok()
            .and_then(|a| a["event"].as_i64());
        let event = match event_id {
            Some(id) => storage.event(id).await?,
            None => None,
        };
        items.push(DeadEvent {
            job: job.id,
            backend: job.backend.clone(),
            event: event_id,
            name: event.as_ref().map(|e| e.event.name.clone()),
            model: event.as_ref().map(|e| e.event.model.clone()),
            local_id: event.as_ref().and_then(|e| e.event.local_id.clone()),
            tries: job.tries,
            error_kind: job.error_kind.clone(),
            error_message: job.error_message.clone(),
            failed_at: job.finished_at,
        });
    }
    let next = (jobs.len() as u32 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(Page { items, next }))
}

async fn act(state: &ApiState, action: JobAction, body: DeadAction) -> ApiResult<Json<BulkAnswer>> {
    let queue = state.queue();
    let Some(ids) = body.jobs else {
        let report = queue
            .bulk(action, &dead(body.backend.as_deref()), body.dry_run)
            .await?;
        return Ok(Json(BulkAnswer::from_report(report, body.dry_run, None)));
    };
    if ids.len() > crate::queue::BULK_PAGE as usize {
        return Err(ApiError::bad_request(format!(
            "{} jobs named; name at most {} at a time, or act by backend",
            ids.len(),
            crate::queue::BULK_PAGE
        )));
    }
    // Every named job must be a dead delivery (of the backend, if one is
    // named): this route is not a back door to act on other jobs.
    for &id in &ids {
        let job = super::jobs::job(state, id).await?;
        let of_backend = body
            .backend
            .as_deref()
            .is_none_or(|b| job.backend.as_deref() == Some(b));
        if job.function != DELIVER || job.state != JobState::Failed || !of_backend {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "not_dead_event",
                format!(
                    "job {id} is not a dead event ({} {}{}); list them with GET /api/v1/events/dead",
                    job.function,
                    job.state,
                    job.backend
                        .as_deref()
                        .map(|b| format!(" of backend {b}"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    let matched = ids.len() as u64;
    if body.dry_run {
        return Ok(Json(BulkAnswer {
            matched,
            changed: 0,
            skipped: 0,
            pages: 0,
            dry_run: true,
            action: None,
        }));
    }
    let acted = queue.act(action, &ids).await?;
    Ok(Json(BulkAnswer {
        matched,
        changed: acted.changed.len() as u64,
        skipped: (acted.skipped.len() + acted.missing.len()) as u64,
        pages: 1,
        dry_run: false,
        action: None,
    }))
}

/// Deliver dead events again, tries reset.
#[utoipa::path(post, path = "/api/v1/events/dead/retry", operation_id = "retry_dead_events", tag = "events", request_body = DeadAction,
    responses(
        (status = OK, description = "what it did (or would do)", body = BulkAnswer),
        (status = CONFLICT, description = "`not_dead_event`: a named job is not a dead delivery; nothing was done", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DeadAction>,
) -> ApiResult<Json<BulkAnswer>> {
    act(&state, JobAction::Requeue, body).await
}

/// Give up on delivering dead events: set aside for good, purged like
/// finished jobs.
#[utoipa::path(post, path = "/api/v1/events/dead/discard", operation_id = "discard_dead_events", tag = "events", request_body = DeadAction,
    responses(
        (status = OK, description = "what it did (or would do)", body = BulkAnswer),
        (status = CONFLICT, description = "`not_dead_event`: a named job is not a dead delivery; nothing was done", body = ErrorBody),
    ))]
pub async fn discard(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DeadAction>,
) -> ApiResult<Json<BulkAnswer>> {
    act(&state, JobAction::Discard, body).await
}
