//! Deletion reconciliation: backends delete records without telling
//! anyone, so a `junction.reconcile` job pages through every record of a
//! model the backend holds (the adapter's `search` with no filter), compares
//! their ids with the model's bindings, and for each bound record the
//! backend no longer has enqueues a `junction.delete-local` that checks
//! once more (the adapter's `read` must answer not-found) before deleting.
//! A backend set to report only (`reconcile.delete = false`) gets the list
//! and nothing is deleted; a run that would delete more than
//! `reconcile.max_delete_percent` of the bound records is refused unless
//! the operator confirms it, since an empty or wrong answer from a backend
//! must not empty the local store.

use std::collections::HashSet;

use super::trail::Trail;
use super::{BackendUnits, DELETE_LOCAL, Synchronizer, route, storage_failure};
use crate::queue::JobSpec;
use crate::queue::worker::JobFailure;

pub use crate::backend::ReconcileConfig;

/// Ids listed in a report at most.
const LISTED: usize = 20;

/// The job that reconciles `model` of `backend` (`confirm`: delete even
/// above the share limit). One waits per backend and model.
pub fn reconcile_job(backend: &str, model: &str, confirm: bool) -> JobSpec {
    let mut spec = JobSpec::new(
        super::RECONCILE,
        serde_json::json!({"backend": backend, "model": model, "confirm": confirm}),
    )
    .identity_key(&format!("reconcile:{backend}:{model}:{confirm}"));
    spec.backend = Some(backend.to_string());
    spec.request.description = Some(format!("reconcile {model} with {backend}"));
    spec
}

impl Synchronizer {
    /// Compare `model`'s bindings with the ids the backend holds; enqueue
    /// (or report) the deletions. `confirm` lifts the share limit.
    pub async fn reconcile(
        &self,
        b: &BackendUnits,
        model: &str,
        confirm: bool,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        // One run per backend and model at a time, across nodes.
        let key = format!("reconcile:{}:{model}", b.name());
        let run = self.reconcile_locked(b, model, confirm, trail);
        self.leased(&key, holder, run).await
    }

    /// One page of `lookup.list-ids`, waiting out the backend's rate
    /// limit as a search page does.
    async fn id_page(
        &self,
        b: &BackendUnits,
        model: &str,
        cursor: Option<&str>,
        trail: &mut Trail,
    ) -> Result<crate::features::IdPage, JobFailure> {
        let adapter = &route(b, model)?.adapter;
        let step = format!("listing the ids of {model} in {}", b.name());
        super::batch::waiting_out(trail, &step, || {
            adapter.list_ids(&b.ctx, model, cursor, self.page_size(b))
        })
        .await
    }

    async fn reconcile_locked(
        &self,
        b: &BackendUnits,
        model: &str,
        confirm: bool,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        let settings = b.config.reconcile;
        // Every id the backend holds: by `lookup.list-ids` when the
        // connector offers it for the model (ids only), else by search.
        let units = route(b, model)?;
        let by_ids = units
            .adapter
            .features(&b.ctx)
            .await
            .map_err(|e| {
                super::trail::failure(
                    &format!("reading the features of {}", units.adapter_label),
                    &e,
                )
            })?
            .lists_ids(model);
        let mut held: HashSet<String> = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let next_cursor = if by_ids {
                let page = self.id_page(b, model, cursor.as_deref(), trail).await?;
                held.extend(page.ids);
                page.next_cursor
            } else {
                let page = self
                    .search_page(b, model, "{}", cursor.as_deref(), "listing", trail)
                    .await?;
                held.extend(page.items.into_iter().map(|r| r.external_id));
                page.next_cursor
            };
            match next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
        // Every bound id it no longer holds.
        let mut bound = 0u64;
        let mut missing: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .storage
                .bindings_page(b.name(), model, after.as_deref(), 1000)
                .await
                .map_err(storage_failure)?;
            let Some(last) = page.last() else { break };
            after = Some(last.external_id.clone());
            bound += page.len() as u64;
            missing.extend(
                page.into_iter()
                    .map(|bd| bd.external_id)
                    .filter(|id| !held.contains(id)),
            );
        }
        let listed = || {
            // The ids are the backend's: each shown short.
            let mut ids: Vec<String> = missing
                .iter()
                .take(LISTED)
                .map(|id| crate::text::truncate(id, 128))
                .collect();
            if missing.len() > LISTED {
                ids.push("…".to_string());
            }
            crate::text::clean(&ids.join(", "))
        };
        let summary = format!(
            "{model}: {} in {}, {bound} bound, {} no longer there",
            held.len(),
            b.name(),
            missing.len()
        );
        if missing.is_empty() {
            return Ok(summary);
        }
        if !settings.delete {
            return Ok(format!(
                "{summary} (reported only: reconcile.delete is false): {}",
                listed()
            ));
        }
        let share = missing.len() as u64 * 100 / bound.max(1);
        if !confirm && share > u64::from(settings.max_delete_percent) {
            return Err(JobFailure::fail(
                "reconcile-refused",
                format!(
                    "{summary}: deleting {share}% of the bound records is above the backend's reconcile.max_delete_percent of {}%, so nothing was deleted; \
                     check the backend (an outage or a wrong filter looks like mass deletion), then run `junction sync reconcile {} {model} --confirm` to delete them: {}",
                    settings.max_delete_percent,
                    b.name(),
                    listed()
                ),
            ));
        }
        let specs: Vec<JobSpec> = missing
            .iter()
            .map(|id| {
                let mut spec = JobSpec::new(
                    DELETE_LOCAL,
                    serde_json::json!({
                        "backend": b.name(), "model": model, "external_id": id, "verify": true,
                    }),
                );
                spec.backend = Some(b.name().to_string());
                spec.request.description = Some(format!(
                    "delete local {model} {} (gone from {})",
                    crate::text::truncate(id, 128),
                    b.name()
                ));
                spec
            })
            .collect();
        for chunk in specs.chunks(crate::queue::BULK_PAGE as usize) {
            self.queue.enqueue_batch(chunk).await.map_err(|e| {
                JobFailure::retry("enqueue", format!("enqueueing the deletions: {e}"))
            })?;
        }
        Ok(format!(
            "{summary}: {} deletions enqueued, each checked against the backend first",
            missing.len()
        ))
    }
}
