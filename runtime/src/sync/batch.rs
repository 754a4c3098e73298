//! Incremental batch import (OCA's BatchImporter): search the backend for
//! records changed since the stream's cursor minus a safety buffer, page by
//! page, and either enqueue one `junction.import-record` job per record
//! (identity keys collapse repeats) or import them in this job. The cursor
//! moves to this run's start only after every page was handled, so a crash
//! means the next run searches the same window again — never a gap.

use std::collections::HashMap;
use std::fmt;

use super::import::{ImportRun, Imported, is_older, record_key};
use super::trail::Trail;
use super::{BackendUnits, IMPORT_BATCH, IMPORT_RECORD, Synchronizer, route, storage_failure};
use crate::model::{format_timestamp, parse_timestamp};
use crate::queue::job::Parent;
use crate::queue::worker::JobFailure;
use crate::queue::{JobSpec, now_ms};

/// What one batch run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub model: String,
    /// Records the search returned.
    pub found: u64,
    /// Jobs enqueued (job mode), or records created/updated (direct mode).
    pub enqueued: u64,
    pub created: u64,
    pub updated: u64,
    /// Bound to an existing local record with the same natural key.
    pub adopted: u64,
    /// Already up to date (binding newer than the change).
    pub skipped: u64,
    /// The connector said there was nothing to do for them.
    pub declined: u64,
    pub since: Option<String>,
    pub cursor: String,
    /// The page an interrupted run had reached, where this one began.
    pub resumed_at: Option<String>,
}

impl fmt::Display for BatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} found since {}; {} import jobs enqueued, {} created, {} updated, {} adopted by natural key, {} up to date, {} skipped by the connector; cursor now {}",
            self.model,
            self.found,
            self.since.as_deref().unwrap_or("the beginning"),
            self.enqueued,
            self.created,
            self.updated,
            self.adopted,
            self.skipped,
            self.declined,
            self.cursor
        )?;
        if let Some(page) = &self.resumed_at {
            write!(
                f,
                "; resumed an interrupted run at its page {}",
                crate::text::truncate(page, 64)
            )?;
        }
        Ok(())
    }
}

/// One batch import job per model, each waiting for the one before, so
/// that records are mostly imported after what they depend on (categories
/// before products, customers and products before orders). `direct`
/// imports in the batch jobs instead of one job per record.
pub fn batch_jobs(backend: &str, models: &[&str], direct: bool) -> Vec<JobSpec> {
    models
        .iter()
        .enumerate()
        .map(|(i, model)| {
            let spec = batch_job(backend, model, direct);
            if i > 0 {
                spec.after(Parent::InBatch(i - 1))
            } else {
                spec
            }
        })
        .collect()
}

/// One batch import of `model` from `backend`; its identity key collapses
/// it with a run of the same import still waiting.
pub fn batch_job(backend: &str, model: &str, direct: bool) -> JobSpec {
    let mut spec = JobSpec::new(
        IMPORT_BATCH,
        serde_json::json!({"backend": backend, "model": model, "direct": direct}),
    )
    .identity_key(&format!("batch:{backend}:{model}"));
    spec.backend = Some(backend.to_string());
    spec.request.description = Some(format!("import {model} from {backend}"));
    spec
}

/// Waits a batch job sits out within itself before giving up.
pub(crate) const MAX_WAITS: u32 = 10;
/// The longest single wait; longer delays fail the job, which the queue
/// retries later instead of holding a worker.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sleep for the delay a failure names (a rate limit's reset, a 503's
/// `Retry-After`, a lease held elsewhere) and say so; `false` for failures
/// that name none (traps, deadlines: the queue's back-off handles those)
/// or a delay too long to hold a worker for.
pub(crate) async fn wait_for(f: &JobFailure) -> bool {
    match f {
        JobFailure::Retry {
            after: Some(delay), ..
        } if *delay <= MAX_WAIT => {
            tokio::time::sleep(*delay).await;
            true
        }
        _ => false,
    }
}

/// Call `page` (the guest call of step `step`) until it answers something
/// other than a failure naming a short delay, waiting out each such delay
/// (at most [`MAX_WAITS`]): how a scan sits out a throttled or briefly
/// failing backend on its page.
pub(crate) async fn waiting_out<T, F, Fut>(
    trail: &mut Trail,
    step: &str,
    mut page: F,
) -> Result<T, JobFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::host::CallReport<T>>,
{
    let mut waits = 0;
    loop {
        match trail.call(step, page().await) {
            Err(f) if waits < MAX_WAITS && wait_for(&f).await => waits += 1,
            other => return other,
        }
    }
}

/// The state key of a model's import cursor.
pub fn cursor_key(model: &str) -> String {
    format!("{CURSOR_PREFIX}{model}{CURSOR_SUFFIX}")
}

/// What every cursor key starts with.
pub const CURSOR_PREFIX: &str = "import:";
const CURSOR_SUFFIX: &str = ":since";

/// The model a cursor key is for; `None` for other state under the prefix.
pub fn cursor_model(key: &str) -> Option<&str> {
    key.strip_prefix(CURSOR_PREFIX)?.strip_suffix(CURSOR_SUFFIX)
}

/// The state key of where a model's running import has got to.
pub fn resume_key(model: &str) -> String {
    format!("{CURSOR_PREFIX}{model}{RESUME_SUFFIX}")
}
const RESUME_SUFFIX: &str = ":resume";

/// The model a resume key is for; `None` for other state.
pub fn resume_model(key: &str) -> Option<&str> {
    key.strip_prefix(CURSOR_PREFIX)?.strip_suffix(RESUME_SUFFIX)
}

/// The search page an interrupted scan resumes at, from a resume key's
/// stored value.
pub fn resume_page(value: &str) -> Option<String> {
    serde_json::from_str::<Resume>(value).ok().map(|r| r.page)
}

/// The longest page cursor kept as a resume point: the cursor is the
/// connector's text, written once per page.
const MAX_RESUME_PAGE: usize = 4096;

/// Whether a page cursor is kept as a resume point.
fn resumable(page: &str) -> bool {
    page.len() <= MAX_RESUME_PAGE
}

/// Where a batch import run has got to, written after each page it
/// handled: a run killed midway (a node lost, a deploy) is taken up by the
/// job's next try at the page after the last one handled, instead of
/// scanning from the start again. Only a run of the same scan resumes:
/// same stored cursor (or explicit `since`) and same `force`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Resume {
    /// When the interrupted run began: the cursor the finished scan
    /// stores, so that changes made while it ran are searched again.
    started: i64,
    /// The cursor (or `since`) the scan searched from.
    from: Option<String>,
    force: bool,
    /// The search cursor of the next page.
    page: String,
}

/// How one batch import runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchRun<'a> {
    /// Import in the batch job itself instead of one job per record.
    pub direct: bool,
    /// Import every record found, even those synced since their last
    /// change, and write every mapped field, changed or not.
    pub force: bool,
    /// Search from this RFC 3339 time instead of the stored cursor.
    pub since: Option<&'a str>,
}

impl Synchronizer {
    /// Records per page asked of `b`: its own `page_size`, else the node's.
    pub(crate) fn page_size(&self, b: &BackendUnits) -> u32 {
        b.config.page_size.unwrap_or(self.settings.page_size)
    }

    /// One page of `model` matching `filter` from the adapter's `search`
    /// (`doing`: what the step is called in failures). A throttled or
    /// briefly failing backend is waited out here, on this page: failing
    /// the job would start a scan over.
    pub(crate) async fn search_page(
        &self,
        b: &BackendUnits,
        model: &str,
        filter: &str,
        cursor: Option<&str>,
        doing: &str,
        trail: &mut Trail,
    ) -> Result<crate::model::Page, JobFailure> {
        let adapter = &route(b, model)?.adapter;
        let step = format!("{doing} {model} in {}", b.name());
        waiting_out(trail, &step, || {
            adapter.search(&b.ctx, model, filter, cursor, self.page_size(b))
        })
        .await
    }

    /// Run one batch import of `model`.
    pub async fn import_batch(
        &self,
        b: &BackendUnits,
        model: &str,
        run: BatchRun<'_>,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<BatchReport, JobFailure> {
        // One run per backend and model at a time, across nodes.
        let key = format!("batch:{}:{model}", b.name());
        let run = self.batch_locked(b, model, run, holder, trail);
        self.leased(&key, holder, run).await
    }

    async fn batch_locked(
        &self,
        b: &BackendUnits,
        model: &str,
        run: BatchRun<'_>,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<BatchReport, JobFailure> {
        let BatchRun {
            direct,
            force,
            since,
        } = run;
        let mut started = now_ms();
        // A forced import without `since` starts from the beginning: it is
        // asked for to repair what earlier imports left.
        let stored = match since {
            Some(s) => Some(s.to_string()),
            None if force => None,
            None => self
                .storage
                .state_get(b.name(), &cursor_key(model))
                .await
                .map_err(storage_failure)?,
        };
        let resume_key = resume_key(model);
        let mut cursor: Option<String> = None;
        let mut resumed_at = None;
        if let Some(text) = self
            .storage
            .state_get(b.name(), &resume_key)
            .await
            .map_err(storage_failure)?
        {
            // A resume point of another scan (the cursor was moved or
            // reset, or this run is forced and that one was not) is stale.
            match serde_json::from_str::<Resume>(&text) {
                Ok(r) if r.from == stored && r.force == force => {
                    started = r.started;
                    resumed_at = Some(r.page.clone());
                    cursor = Some(r.page);
                }
                _ => {}
            }
        }
        let since = match &stored {
            Some(text) => {
                let at = parse_timestamp(text).map_err(|e| {
                    JobFailure::fail(
                        "bad-arguments",
                        format!("the import cursor of {model}: {e}"),
                    )
                })?;
                Some(format_timestamp(
                    at - self.settings.safety_buffer.as_millis() as i64,
                ))
            }
            None => None,
        };
        let filter = match &since {
            Some(s) => serde_json::json!({ "updated-since": s }),
            None => serde_json::json!({}),
        };
        let filter = filter.to_string();
        let mut report = BatchReport {
            model: model.to_string(),
            since: since.clone(),
            resumed_at,
            ..BatchReport::default()
        };
        // The page after the one being handled, fetched while it is
        // handled: at a distance, a search's round trips overlap the
        // page's work instead of adding to it.
        let mut ahead: Option<Result<crate::model::Page, JobFailure>> = None;
        loop {
            let page = match ahead.take() {
                Some(fetched) => fetched?,
                None => {
                    self.search_page(b, model, &filter, cursor.as_deref(), "searching", trail)
                        .await?
                }
            };
            let crate::model::Page { items, next_cursor } = page;
            report.found += items.len() as u64;
            let following = next_cursor
                .clone()
                .filter(|next| Some(next) != cursor.as_ref());
            let work = async {
                if direct {
                    let run = ImportRun {
                        b,
                        model,
                        force,
                        holder,
                        ancestors: &[],
                    };
                    self.import_page(run, items, trail, &mut report).await
                } else {
                    self.enqueue_page(b, model, items, force, &mut report).await
                }
            };
            match &following {
                Some(next) => {
                    let mut fetching = Trail::default();
                    let (done, fetched) = tokio::join!(
                        work,
                        self.search_page(b, model, &filter, Some(next), "searching", &mut fetching)
                    );
                    trail.absorb(fetching);
                    done?;
                    ahead = Some(fetched);
                }
                None => work.await?,
            }
            match next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() && !resumable(&next) => {
                    // A page cursor too large to keep (it is the
                    // connector's): the scan goes on, without a resume
                    // point past this page.
                    cursor = Some(next);
                }
                Some(next) if Some(&next) != cursor.as_ref() => {
                    // This page is handled: a try that dies from here on
                    // begins at the next one.
                    let point = Resume {
                        started,
                        from: stored.clone(),
                        force,
                        page: next.clone(),
                    };
                    self.storage
                        .state_set(
                            b.name(),
                            &resume_key,
                            &serde_json::to_string(&point).unwrap_or_default(),
                            now_ms(),
                            None,
                        )
                        .await
                        .map_err(storage_failure)?;
                    cursor = Some(next);
                }
                _ => break,
            }
        }
        report.cursor = format_timestamp(started);
        self.storage
            .state_set(b.name(), &cursor_key(model), &report.cursor, now_ms(), None)
            .await
            .map_err(storage_failure)?;
        // Were this lost, the next run's cursor would differ from the
        // point's and it would be ignored.
        self.storage
            .state_delete(b.name(), &resume_key)
            .await
            .map_err(storage_failure)?;
        Ok(report)
    }

    async fn enqueue_page(
        &self,
        b: &BackendUnits,
        model: &str,
        items: Vec<crate::model::RemoteRecord>,
        force: bool,
        report: &mut BatchReport,
    ) -> Result<(), JobFailure> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = items.iter().map(|r| r.external_id.clone()).collect();
        let synced: HashMap<String, i64> = self
            .storage
            .bindings_of(b.name(), model, &ids)
            .await
            .map_err(storage_failure)?
            .into_iter()
            .map(|bd| (bd.external_id, bd.sync_date))
            .collect();
        let mut specs = Vec::with_capacity(items.len());
        for item in items {
            // Records synced after their last change need no job at all
            // (unless the operator forces them all again).
            if !force
                && synced
                    .get(&item.external_id)
                    .is_some_and(|at| is_older(item.updated_at.as_deref(), *at))
            {
                report.skipped += 1;
                continue;
            }
            let id = &item.external_id;
            let (args, key) = if force {
                (
                    serde_json::json!({"backend": b.name(), "model": model, "external_id": id, "force": true}),
                    // A forced import must not collapse into an ordinary
                    // one waiting (which would keep unchanged fields).
                    format!("import-forced:{}:{model}:{id}", b.name()),
                )
            } else {
                (
                    serde_json::json!({"backend": b.name(), "model": model, "external_id": id}),
                    format!("import:{}:{model}:{id}", b.name()),
                )
            };
            let mut spec = JobSpec::new(IMPORT_RECORD, args).identity_key(&key);
            spec.backend = Some(b.name().to_string());
            spec.request.description = Some(format!("import {model} {id} from {}", b.name()));
            specs.push(spec);
        }
        if specs.is_empty() {
            return Ok(());
        }
        let enqueued = self
            .queue
            .enqueue_batch(&specs)
            .await
            .map_err(|e| JobFailure::retry("queue", e.to_string()))?;
        report.enqueued += enqueued.len() as u64;
        Ok(())
    }

    async fn import_page(
        &self,
        run: ImportRun<'_>,
        items: Vec<crate::model::RemoteRecord>,
        trail: &mut Trail,
        report: &mut BatchReport,
    ) -> Result<(), JobFailure> {
        let ImportRun {
            b,
            model,
            force,
            holder,
            ..
        } = run;
        // The page's leases, reads of the binder and records, and writes
        // each go to the database as one transaction: a page costs a few
        // writes, not a few per record.
        let keys: Vec<String> = items
            .iter()
            .map(|r| record_key(b.name(), model, &r.external_id))
            .collect();
        let now = now_ms();
        let until = now + self.settings.lease.as_millis() as i64;
        let taken = self
            .commit
            .lock(keys.clone(), holder, now, until)
            .await
            .map_err(storage_failure)?;
        let mut mine = Vec::new();
        let mut busy = Vec::new();
        for (record, taken) in items.into_iter().zip(&taken) {
            if *taken {
                mine.push(record);
            } else {
                busy.push(record);
            }
        }
        // Records another worker is syncing right now get a job of their
        // own, which waits for the lease.
        self.enqueue_page(b, model, busy, force, report).await?;
        let wanted: Vec<(String, Option<crate::model::RemoteRecord>)> = mine
            .into_iter()
            .map(|r| (r.external_id.clone(), Some(r)))
            .collect();
        let mut results = self.import_many(run, wanted.clone(), trail).await;
        // Records that failed with a delay (a rate limit, a 503) are tried
        // again in this job, after the delay, a few times.
        for _ in 0..MAX_WAITS {
            let again: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r, Err(JobFailure::Retry { .. })))
                .map(|(i, _)| i)
                .collect();
            let Some(first) = again.first() else { break };
            let Err(f) = &results[*first] else { break };
            if !wait_for(f).await {
                break;
            }
            let retry: Vec<(String, Option<crate::model::RemoteRecord>)> =
                again.iter().map(|i| wanted[*i].clone()).collect();
            let redone = self.import_many(run, retry, trail).await;
            for (i, r) in again.into_iter().zip(redone) {
                results[i] = r;
            }
        }
        let taken_keys: Vec<String> = keys
            .into_iter()
            .zip(taken)
            .filter(|(_, t)| *t)
            .map(|(k, _)| k)
            .collect();
        if let Err(e) = self.commit.unlock(taken_keys, holder).await {
            tracing::warn!(error = %e, "could not release a page's leases; they expire on their own");
        }
        let mut first_failure = None;
        let mut refused = Vec::new();
        for (result, (_, record)) in results.into_iter().zip(wanted) {
            match result {
                Ok((Imported::Created { .. }, _)) => report.created += 1,
                Ok((Imported::Updated { .. }, _)) => report.updated += 1,
                Ok((Imported::Adopted { .. }, _)) => report.adopted += 1,
                Ok(_) => report.skipped += 1,
                // The connector said there was nothing to do for it.
                Err(f) if super::trail::declined(&f) => report.declined += 1,
                // A record that cannot be imported gets a job of its own,
                // which fails visibly with the reason and can be requeued
                // once fixed; the stream moves on.
                Err(JobFailure::Fail { .. }) => refused.extend(record),
                Err(f) => {
                    first_failure.get_or_insert(f);
                }
            }
        }
        self.enqueue_page(b, model, refused, force, report).await?;
        // The cursor must not pass a record that may still import: the run
        // fails and is retried over the same window (the imported ones are
        // skipped then).
        match first_failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connectors_huge_page_cursor_is_not_kept_as_a_resume_point() {
        assert!(resumable("42"));
        assert!(resumable(&"c".repeat(MAX_RESUME_PAGE)));
        assert!(!resumable(&"c".repeat(MAX_RESUME_PAGE + 1)));
    }
}
