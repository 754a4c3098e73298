//! Local records and bindings, read-only.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::types::{
    BindingView, BindingsQuery, EntryKind, Page, PageQuery, RecordBinding, RecordView, Timeline,
    TimelineEntry,
};
use super::{ApiState, page_limit};

/// A model's local records, by id.
#[utoipa::path(get, path = "/api/v1/records/{model}", operation_id = "list_records", tag = "records", params(("model" = String, Path, description = "a local model, such as `product`"), PageQuery),
    responses((status = OK, description = "a page of records", body = Page<RecordView>)))]
pub async fn records(
    State(state): State<ApiState>,
    ApiPath(model): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<RecordView>>> {
    let limit = page_limit(q.limit)?;
    let items = state
        .storage()
        .records(&model, q.cursor.as_deref(), limit)
        .await?;
    let next = (items.len() as u32 == limit)
        .then(|| items.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(Page {
        items: items.iter().map(RecordView::from).collect(),
        next,
    }))
}

/// One local record.
#[utoipa::path(get, path = "/api/v1/records/{model}/{id}", operation_id = "get_record", tag = "records", params(("model" = String, Path, description = "a local model, such as `product`"), ("id" = String, Path, description = "the record's local id")),
    responses((status = OK, description = "the record", body = RecordView)))]
pub async fn record(
    State(state): State<ApiState>,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<RecordView>> {
    let r = state
        .storage()
        .record(&model, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no local {model} {id:?}")))?;
    Ok(Json(RecordView::from(&r)))
}

/// A backend's bindings of a model: which backend record each local
/// record is.
#[utoipa::path(get, path = "/api/v1/bindings", operation_id = "list_bindings", tag = "records", params(BindingsQuery),
    responses((status = OK, description = "a page of bindings, by external id", body = Page<BindingView>)))]
pub async fn bindings(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<BindingsQuery>,
) -> ApiResult<Json<Page<BindingView>>> {
    let (Some(backend), Some(model)) = (q.backend, q.model) else {
        return Err(ApiError::bad_request(
            "give backend and model, e.g. ?backend=shop&model=product",
        ));
    };
    let limit = page_limit(q.limit)?;
    let items = state
        .storage()
        .bindings_page(&backend, &model, q.cursor.as_deref(), limit)
        .await?;
    let next = (items.len() as u32 == limit)
        .then(|| items.last().map(|b| b.external_id.clone()))
        .flatten();
    Ok(Json(Page {
        items: items
            .iter()
            .map(|b| BindingView {
                backend: b.backend.clone(),
                model: b.model.clone(),
                external_id: b.external_id.clone(),
                local_id: b.local_id.clone(),
                sync_date: b.sync_date,
            })
            .collect(),
        next,
    }))
}

/// Entries a record's timeline shows, at most, of each kind.
const TIMELINE_MAX: u32 = 200;

/// `GET /api/v1/records/{model}/{id}/timeline`: the record (null once
/// deleted), its bindings in every configured backend, and its story
/// newest first: the events about it and the jobs that named it (imports
/// by a backend's external id, exports and deletes by its local id), each
/// job with its outbound request count. The jobs' own pages have their
/// logs and audit.
#[utoipa::path(get, path = "/api/v1/records/{model}/{id}/timeline", operation_id = "record_timeline", tag = "records", params(("model" = String, Path, description = "a local model, such as `product`"), ("id" = String, Path, description = "the record's local id")),
    responses((status = OK, description = "the record's story", body = Timeline)))]
pub async fn timeline(
    State(state): State<ApiState>,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Timeline>> {
    let storage = state.storage();
    let record = storage.record(&model, &id).await?;
    let mut bindings = Vec::new();
    for backend in state.sync().backend_configs().await? {
        if let Some(b) = storage.binding_of_local(&backend.name, &model, &id).await? {
            bindings.push(b);
        }
    }
    let external: Vec<(String, String)> = bindings
        .iter()
        .map(|b| (b.backend.clone(), b.external_id.clone()))
        .collect();
    let jobs = storage
        .record_jobs(&model, &id, &external, TIMELINE_MAX)
        .await?;
    let events = storage.record_events(&model, &id, TIMELINE_MAX).await?;
    if record.is_none() && bindings.is_empty() && jobs.is_empty() && events.is_empty() {
        return Err(ApiError::not_found(format!(
            "there is no local {model} {id:?} and nothing was ever recorded about it"
        )));
    }
    let mut timeline: Vec<TimelineEntry> = Vec::new();
    for e in &events {
        let origin = e
            .event
            .origin_backend
            .as_deref()
            .map(|b| format!(" (imported from {b})"))
            .unwrap_or_default();
        timeline.push(TimelineEntry {
            at: e.created_at,
            kind: EntryKind::Event,
            what: format!("event {}{origin}", e.event.name),
            state: String::new(),
            detail: if e.event.changed_fields.is_empty() {
                String::new()
            } else {
                format!("changed: {}", e.event.changed_fields.join(", "))
            },
            event: Some(e.id),
            job: None,
            backend: None,
            finished_at: None,
        });
    }
    for j in &jobs {
        let detail = j
            .error_message
            .clone()
            .or_else(|| j.result.clone())
            .unwrap_or_default();
        timeline.push(TimelineEntry {
            at: j.created_at,
            kind: EntryKind::Job,
            what: j.description.clone().unwrap_or_else(|| j.function.clone()),
            state: j.state.to_string(),
            detail: crate::text::truncate(&detail, 300).to_string(),
            event: None,
            job: Some(j.id),
            backend: j.backend.clone(),
            finished_at: j.finished_at,
        });
    }
    timeline.sort_by_key(|e| std::cmp::Reverse(e.at));
    Ok(Json(Timeline {
        model,
        id,
        record: record.as_ref().map(RecordView::from),
        bindings: bindings
            .into_iter()
            .map(|b| RecordBinding {
                backend: b.backend,
                external_id: b.external_id,
                sync_date: b.sync_date,
            })
            .collect(),
        timeline,
    }))
}
