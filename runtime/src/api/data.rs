//! Local records and bindings, read-only.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::{ApiState, Page, page_limit};
use crate::model::LocalRecord;

fn view(r: &LocalRecord) -> Value {
    json!({
        "model": r.model,
        "id": r.id,
        "version": r.version,
        "updated_at": r.updated_at,
        "data": serde_json::from_str::<Value>(&r.data).unwrap_or(Value::String(r.data.clone())),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

pub async fn records(
    State(state): State<ApiState>,
    ApiPath(model): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Value>>> {
    let limit = page_limit(q.limit)?;
    let items = state
        .storage()
        .records(&model, q.cursor.as_deref(), limit)
        .await?;
    let next = (items.len() as u32 == limit)
        .then(|| items.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(Page {
        items: items.iter().map(view).collect(),
        next,
    }))
}

pub async fn record(
    State(state): State<ApiState>,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let r = state
        .storage()
        .record(&model, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no local {model} {id:?}")))?;
    Ok(Json(view(&r)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingsQuery {
    backend: Option<String>,
    model: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub async fn bindings(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<BindingsQuery>,
) -> ApiResult<Json<Page<Value>>> {
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
            .map(|b| {
                json!({
                    "backend": b.backend,
                    "model": b.model,
                    "external_id": b.external_id,
                    "local_id": b.local_id,
                    "sync_date": b.sync_date,
                })
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
pub async fn timeline(
    State(state): State<ApiState>,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
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
    let mut timeline: Vec<(i64, Value)> = Vec::new();
    for e in &events {
        let origin = e
            .event
            .origin_backend
            .as_deref()
            .map(|b| format!(" (imported from {b})"))
            .unwrap_or_default();
        timeline.push((
            e.created_at,
            json!({
                "at": e.created_at,
                "kind": "event",
                "what": format!("event {}{origin}", e.event.name),
                "state": "",
                "detail": if e.event.changed_fields.is_empty() {
                    String::new()
                } else {
                    format!("changed: {}", e.event.changed_fields.join(", "))
                },
                "event": e.id,
            }),
        ));
    }
    for j in &jobs {
        let detail = j
            .error_message
            .clone()
            .or_else(|| j.result.clone())
            .unwrap_or_default();
        timeline.push((
            j.created_at,
            json!({
                "at": j.created_at,
                "kind": "job",
                "what": j.description.clone().unwrap_or_else(|| j.function.clone()),
                "state": j.state,
                "detail": crate::text::truncate(&detail, 300),
                "job": j.id,
                "backend": j.backend,
                "finished_at": j.finished_at,
            }),
        ));
    }
    timeline.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    Ok(Json(json!({
        "model": model,
        "id": id,
        "record": record.as_ref().map(view),
        "bindings": bindings.iter().map(|b| json!({
            "backend": b.backend,
            "external_id": b.external_id,
            "sync_date": b.sync_date,
        })).collect::<Vec<_>>(),
        "timeline": timeline.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })))
}
