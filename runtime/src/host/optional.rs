//! Calls of the optional exports of contract 0.1.2 (`full-connector`):
//! `features`, `lookup`, `webhooks` and `tasks`. A component
//! without them answers `MissingExport`, like a unit asked for an
//! interface it does not have; callers ask [`Unit::features`] first and
//! call only what it declares.

use std::sync::Arc;

use super::Unit;
use super::bindings::webhooks;
use super::call::{checked_jobs, export_call, guest};
use crate::capabilities::CallContext;
use crate::error::CallError;
use crate::features::{Features, IdPage, Webhook};
use crate::model::JobRequest;

impl Unit {
    /// What the component declares it offers; asked once and kept (an
    /// invalid declaration, or a failed call, is an error every time and
    /// is not kept). A component without `features` offers nothing.
    pub async fn features(&self, ctx: &Arc<CallContext>) -> Result<Features, CallError> {
        if !self.inner.exports.features {
            return Ok(Features::default());
        }
        self.inner
            .features
            .get_or_try_init(|| async {
                const EXPORT: &str = "features";
                self.run(
                    ctx,
                    EXPORT,
                    true,
                    |mut store, instance, inner, mut out| async move {
                        let g = inner
                            .indices
                            .features
                            .as_ref()
                            .expect("present")
                            .load(&mut store, &instance)?;
                        let f = Features::from(g.call_features(&mut store).await?);
                        let names = f
                            .list_ids
                            .iter()
                            .chain(&f.find)
                            .chain(f.match_keys.iter().map(|m| &m.field))
                            .chain(&f.webhooks)
                            .chain(f.tasks.iter().map(|t| &t.name))
                            .chain(f.tasks.iter().map(|t| &t.description));
                        let checked =
                            names
                                .into_iter()
                                .try_for_each(|t| out.text(t))
                                .and_then(|()| {
                                    f.validate().map_err(|reason| CallError::InvalidOutput {
                                        export: EXPORT,
                                        reason,
                                    })
                                });
                        Ok(checked.map(|()| f))
                    },
                )
                .await
                .into_result()
            })
            .await
            .cloned()
    }

    /// `lookup.list-ids`: one page of the backend's ids of `model`.
    pub async fn list_ids(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> super::CallReport<IdPage> {
        let (model, cursor) = (model.to_string(), cursor.map(str::to_string));
        export_call!(self, ctx, lookup, "lookup.list-ids", |g, store, out| {
            let r = g
                .call_list_ids(store, &model, cursor.as_deref(), page_size)
                .await?;
            guest(EXPORT, r).and_then(|page| {
                for id in page.ids.iter().chain(&page.next_cursor) {
                    out.text(id)?;
                }
                if page.ids.iter().any(String::is_empty) {
                    return Err(CallError::InvalidOutput {
                        export: EXPORT,
                        reason: "an id is empty".into(),
                    });
                }
                Ok(IdPage {
                    ids: page.ids,
                    next_cursor: page.next_cursor,
                })
            })
        })
    }

    /// `lookup.find`: the backend's ids of `model` records whose match
    /// field `field` is `value`.
    pub async fn find(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        field: &str,
        value: &str,
    ) -> super::CallReport<Vec<String>> {
        let (model, field, value) = (model.to_string(), field.to_string(), value.to_string());
        export_call!(self, ctx, lookup, "lookup.find", |g, store, out| {
            guest(EXPORT, g.call_find(store, &model, &field, &value).await?).and_then(|mut ids| {
                for id in &ids {
                    out.text(id)?;
                }
                ids.retain(|id| !id.is_empty());
                ids.sort();
                ids.dedup();
                Ok(ids)
            })
        })
    }

    /// `webhooks.on-webhook`: the jobs a verified webhook call causes.
    pub async fn on_webhook(
        &self,
        ctx: &Arc<CallContext>,
        backend: &str,
        hook: &Webhook,
    ) -> super::CallReport<Vec<JobRequest>> {
        let backend = backend.to_string();
        let hook = webhooks::Webhook {
            name: hook.name.clone(),
            headers: hook.headers.clone(),
            body: hook.body.clone(),
        };
        export_call!(
            self,
            ctx,
            webhooks,
            "webhooks.on-webhook",
            |g, store, out| {
                guest(EXPORT, g.call_on_webhook(store, &backend, &hook).await?)
                    .and_then(|jobs| checked_jobs(EXPORT, out, jobs))
            }
        )
    }

    /// `tasks.run`: run task `name` with `args` (a JSON object); the
    /// line it returns.
    pub async fn run_task(
        &self,
        ctx: &Arc<CallContext>,
        name: &str,
        args: &str,
    ) -> super::CallReport<String> {
        let (name, args) = (name.to_string(), args.to_string());
        export_call!(self, ctx, tasks, "tasks.run", |g, store, out| {
            guest(EXPORT, g.call_run(store, &name, &args).await?)
                .and_then(|line| out.text(&line).map(|()| line))
        })
    }
}
