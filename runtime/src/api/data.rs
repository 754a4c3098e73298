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
