//! Running one export of a [`Unit`] in a sandbox.
//!
//! Every call gets a store and instance of its own: a fresh one (from the
//! unit's `InstancePre`, pooled memory) or a warm one that served earlier
//! calls of the same backend without fault (`pool`), a wall-clock deadline that also covers
//! time spent in host calls (epoch interruption for guest code, a tokio
//! timeout for waits), optional fuel, and memory/table caps. Whatever
//! happens, the call's log and HTTP audit are collected into its report,
//! and the runtime stays usable for the next call.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::component::Instance;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::types as wit;
use super::pool::{Lease, ReturnSlot};
use super::stdio::LogLine;
use super::store::{CallShared, CallState};
use super::{Unit, UnitInner};
use crate::capabilities::egress::AuditEntry;
use crate::capabilities::{CallContext, HostFailure};
use crate::error::CallError;
use crate::model::{
    Dependency, Event, JobRequest, LocalDependency, LocalRecord, Manifest, Page, RemoteRecord,
};

/// The outcome of one call, with what it left behind.
#[derive(Debug, Clone)]
pub struct CallReport<T> {
    pub result: Result<T, CallError>,
    pub log: Vec<LogLine>,
    /// Log output past `SandboxLimits::max_log_bytes` was dropped.
    pub log_truncated: bool,
    pub audit: Vec<AuditEntry>,
    /// Audit entries past the per-call cap that were not kept.
    pub audit_dropped: u64,
    pub duration: Duration,
    /// The digest of the component that ran the call.
    pub digest: String,
}

impl<T> CallReport<T> {
    pub fn into_result(self) -> Result<T, CallError> {
        self.result
    }
}

/// Checks a call's output: JSON fields parse, and the total stays under
/// `SandboxLimits::max_output_bytes`.
pub(super) struct Output {
    export: &'static str,
    limit: usize,
    total: usize,
}

impl Output {
    pub(super) fn new(export: &'static str, ctx: &CallContext) -> Self {
        Output {
            export,
            limit: ctx.limits.max_output_bytes,
            total: 0,
        }
    }

    pub(super) fn text(&mut self, text: &str) -> Result<(), CallError> {
        self.total += text.len();
        if self.total > self.limit {
            return Err(CallError::OutputTooLarge {
                export: self.export,
                size: self.total,
                limit: self.limit,
            });
        }
        Ok(())
    }

    pub(super) fn json(&mut self, what: &str, text: &str) -> Result<(), CallError> {
        self.text(text)?;
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map(|_| ())
            .map_err(|e| CallError::InvalidOutput {
                export: self.export,
                reason: format!("{what} {}", crate::model::json_problem(&e)),
            })
    }

    fn record(&mut self, r: &RemoteRecord) -> Result<(), CallError> {
        self.text(&r.external_id)?;
        if r.external_id.is_empty() {
            return Err(CallError::InvalidOutput {
                export: self.export,
                reason: "a record has an empty external-id".to_string(),
            });
        }
        self.json(&format!("data of record {:?}", r.external_id), &r.data)
    }
}

pub(super) fn guest<T>(export: &'static str, r: Result<T, wit::Error>) -> Result<T, CallError> {
    r.map_err(|e| CallError::Guest(e.into(), export))
}

enum Stage {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// One export call, the path every typed wrapper takes: `$iface`'s export
/// `$export` runs on an instance under `ctx`'s limits (refused with
/// `MissingExport` when the component lacks the interface). `$body` gets the
/// interface's loaded functions as `$g`, the store as `$store` and the
/// output checks as `$out`, and evaluates to the call's
/// `Result<T, CallError>`. `?` in `$body` returns from the call as a trap
/// (classified by `classify`), so it belongs only on wasmtime results: a
/// `CallError` goes through `and_then`, never `?`, or a guest's error
/// would be reported as a trap. `EXPORT` names the export inside `$body`.
macro_rules! export_call {
    ($unit:expr, $ctx:expr, $iface:ident, $export:literal,
     |$g:ident, $store:ident, $out:pat_param| $body:expr) => {{
        const EXPORT: &str = $export;
        let present = $unit.inner.exports.$iface;
        $unit
            .run(
                $ctx,
                EXPORT,
                present,
                move |mut store, instance, inner, mut out| async move {
                    let $g = inner
                        .indices
                        .$iface
                        .as_ref()
                        .expect("present: `run` refuses a call of a missing export")
                        .load(&mut store, &instance)?;
                    let $store = &mut store;
                    let $out = &mut out;
                    Ok($body)
                },
            )
            .await
    }};
}
pub(super) use export_call;

impl Unit {
    /// Run `f` on a fresh instance under `ctx`'s limits; `present` says
    /// whether the component exports the interface `export` belongs to.
    pub(super) async fn run<T, F, Fut>(
        &self,
        ctx: &Arc<CallContext>,
        export: &'static str,
        present: bool,
        f: F,
    ) -> CallReport<T>
    where
        F: FnOnce(Lease, Instance, Arc<UnitInner>, Output) -> Fut,
        Fut: Future<Output = wasmtime::Result<Result<T, CallError>>> + Send,
    {
        if !present {
            return self.refused(CallError::MissingExport {
                export,
                world: self.inner.exports.world().to_string(),
            });
        }
        let shared = CallShared::new(ctx.limits.max_log_bytes);
        let started = Instant::now();
        // The call's span (see `telemetry`): the bindings' import spans and
        // the guest's outbound requests nest in it.
        let span = tracing::info_span!(
            "guest_call",
            guest.export = export,
            backend = %ctx.backend.name,
            connector.digest = %self.inner.digest,
            guest.outcome = tracing::field::Empty,
        );
        let result = self
            .execute(ctx, export, &shared, f)
            .instrument(span.clone())
            .await;
        span.record(
            "guest.outcome",
            match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            },
        );
        if let Err(e) = &result {
            tracing::debug!(export, digest = %self.inner.digest, error = %e, "guest call failed");
        }
        let (log, log_truncated) = shared.log.snapshot();
        let (audit, audit_dropped) = shared.audit.snapshot();
        count(
            &self.inner.digest,
            export,
            &ctx.backend.name,
            &result,
            &audit,
        );
        CallReport {
            result,
            log,
            log_truncated,
            audit,
            audit_dropped,
            duration: started.elapsed(),
            digest: self.inner.digest.clone(),
        }
    }

    async fn execute<T, F, Fut>(
        &self,
        ctx: &Arc<CallContext>,
        export: &'static str,
        shared: &CallShared,
        f: F,
    ) -> Result<T, CallError>
    where
        F: FnOnce(Lease, Instance, Arc<UnitInner>, Output) -> Fut,
        Fut: Future<Output = wasmtime::Result<Result<T, CallError>>> + Send,
    {
        let host = &self.inner.host.inner;
        let limits = &ctx.limits;
        if limits.memory_bytes > host.config.max_memory_bytes {
            return Err(CallError::Instantiate {
                export,
                message: format!(
                    "the memory limit of {} bytes is above the host's max_memory_bytes of {}; lower it or raise the host's",
                    limits.memory_bytes, host.config.max_memory_bytes
                ),
            });
        }
        // Wait for a free pooling slot rather than fail when more calls run
        // at once than the host has instances.
        let _slot = host
            .slots
            .acquire()
            .await
            .expect("the slot semaphore is never closed");
        let (mut store, warm, uses) = match self.inner.warm.take(ctx) {
            Some(w) => {
                let mut store = w.store;
                store.data_mut().begin(shared.clone());
                (store, Some(w.instance), w.uses)
            }
            None => {
                let mut store =
                    Store::new(&host.engine, CallState::new(ctx.clone(), shared.clone()));
                store.limiter(|s| &mut s.limiter);
                (store, None, 0)
            }
        };
        match (limits.fuel, host.config.fuel) {
            (Some(budget), true) => store.set_fuel(budget).map_err(|e| CallError::Instantiate {
                export,
                message: format!("{e:#}"),
            })?,
            (Some(_), false) => {
                return Err(CallError::Instantiate {
                    export,
                    message: "a fuel budget is set but the host runs without fuel metering; enable `fuel` in the host config".to_string(),
                });
            }
            (None, true) => store
                .set_fuel(u64::MAX)
                .map_err(|e| CallError::Instantiate {
                    export,
                    message: format!("{e:#}"),
                })?,
            (None, false) => {}
        }
        // Epoch deadlines are relative to the current epoch when set, so the
        // callback compares against wall-clock time and yields in between,
        // letting the tokio timeout below fire even in a tight guest loop.
        let deadline = Instant::now() + limits.deadline;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);

        let inner = self.inner.clone();
        let out = Output::new(export, ctx);
        let returned: ReturnSlot = Default::default();
        let slot = returned.clone();
        let work = async move {
            let instance = match warm {
                Some(instance) => instance,
                None => {
                    inner
                        .instantiations
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    inner
                        .pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(Stage::Instantiate)?
                }
            };
            f(Lease::new(store, instance, &slot), instance, inner, out)
                .await
                .map_err(Stage::Call)
        };
        let result = match tokio::time::timeout(limits.deadline, work).await {
            Err(_) => Err(CallError::Deadline {
                export,
                limit: limits.deadline,
            }),
            Ok(Ok(result)) => result,
            Ok(Err(Stage::Instantiate(e))) => match classify(e, export, ctx, shared) {
                CallError::Trap { message, .. } => Err(CallError::Instantiate { export, message }),
                other => Err(other),
            },
            Ok(Err(Stage::Call(e))) => Err(classify(e, export, ctx, shared)),
        };
        let kept = returned.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Ok(_), Some((store, instance))) = (&result, kept) {
            self.inner.warm.put(store, instance, uses + 1);
        }
        result
    }

    /// Instantiate once and resolve every export's functions, which checks
    /// their types against the contract.
    pub(super) async fn typecheck(&self) -> Result<(), super::LoadError> {
        let ctx = Arc::new(CallContext::detached(
            crate::limits::SandboxLimits::default(),
        ));
        let report = self
            .run(
                &ctx,
                "load",
                true,
                |mut store, instance, inner, _| async move {
                    let i = &inner.indices;
                    let checks: [(&'static str, Option<wasmtime::Result<()>>); 8] = [
                        (
                            "describe",
                            Some(i.describe.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "adapter",
                            i.adapter
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "mapper",
                            i.mapper
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "listener",
                            i.listener
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "features",
                            i.features
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "lookup",
                            i.lookup
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "webhooks",
                            i.webhooks
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                        (
                            "tasks",
                            i.tasks
                                .as_ref()
                                .map(|x| x.load(&mut store, &instance).map(drop)),
                        ),
                    ];
                    for (interface, check) in checks {
                        if let Some(Err(e)) = check {
                            return Ok(Ok(Some((interface, format!("{e:#}")))));
                        }
                    }
                    Ok(Ok(None))
                },
            )
            .await;
        match report.result {
            Ok(None) => Ok(()),
            Ok(Some((interface, message))) => {
                Err(super::LoadError::WrongShape { interface, message })
            }
            Err(e) => Err(super::LoadError::Invalid(format!(
                "instantiating it in the sandbox failed: {e}"
            ))),
        }
    }

    /// The component's manifest, validated.
    pub async fn describe(&self, ctx: &Arc<CallContext>) -> CallReport<Manifest> {
        const EXPORT: &str = "describe";
        self.run(
            ctx,
            EXPORT,
            true,
            move |mut store, instance, inner, mut out| async move {
                let g = inner.indices.describe.load(&mut store, &instance)?;
                let m = Manifest::from(g.call_describe(&mut store).await?);
                let texts = [&m.name, &m.version, &m.backend_kind, &m.backend_versions];
                let lists = m.hosts.iter().chain(&m.events).chain(&m.secrets);
                let checked = texts
                    .into_iter()
                    .chain(lists)
                    .try_for_each(|t| out.text(t))
                    .and_then(|()| out.json("settings-schema", &m.settings_schema))
                    .and_then(|()| {
                        m.validate().map_err(|e| CallError::InvalidOutput {
                            export: EXPORT,
                            reason: e.to_string(),
                        })
                    });
                Ok(checked.map(|()| m))
            },
        )
        .await
    }

    /// `adapter.check`: verify the backend connection with `settings`.
    pub async fn check(&self, ctx: &Arc<CallContext>, settings: &str) -> CallReport<String> {
        let settings = settings.to_string();
        export_call!(self, ctx, adapter, "adapter.check", |g, store, out| {
            let r = guest(EXPORT, g.call_check(store, &settings).await?);
            r.and_then(|line| out.text(&line).map(|()| line))
        })
    }

    /// `adapter.search`: one page of records matching `filter`.
    pub async fn search(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        filter: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> CallReport<Page> {
        let (model, filter) = (model.to_string(), filter.to_string());
        let cursor = cursor.map(str::to_string);
        export_call!(self, ctx, adapter, "adapter.search", |g, store, out| {
            let r = g
                .call_search(store, &model, &filter, cursor.as_deref(), page_size)
                .await?;
            guest(EXPORT, r).map(Page::from).and_then(|page| {
                page.items.iter().try_for_each(|r| out.record(r))?;
                if let Some(c) = &page.next_cursor {
                    out.text(c)?;
                }
                Ok(page)
            })
        })
    }

    /// `adapter.read`: one record by external id.
    pub async fn read(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        id: &str,
    ) -> CallReport<RemoteRecord> {
        let (model, id) = (model.to_string(), id.to_string());
        export_call!(self, ctx, adapter, "adapter.read", |g, store, out| {
            guest(EXPORT, g.call_read(store, &model, &id).await?)
                .map(RemoteRecord::from)
                .and_then(|rec| out.record(&rec).map(|()| rec))
        })
    }

    /// `adapter.create`: returns the new record's external id.
    pub async fn create(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        data: &str,
    ) -> CallReport<String> {
        let (model, data) = (model.to_string(), data.to_string());
        export_call!(self, ctx, adapter, "adapter.create", |g, store, out| {
            guest(EXPORT, g.call_create(store, &model, &data).await?)
                .and_then(|id| out.text(&id).map(|()| id))
        })
    }

    /// `adapter.write`: update a record in the backend.
    pub async fn write(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        id: &str,
        data: &str,
    ) -> CallReport<()> {
        let (model, id, data) = (model.to_string(), id.to_string(), data.to_string());
        export_call!(self, ctx, adapter, "adapter.write", |g, store, _| {
            guest(EXPORT, g.call_write(store, &model, &id, &data).await?)
        })
    }

    /// `adapter.delete`: delete a record in the backend.
    pub async fn delete(&self, ctx: &Arc<CallContext>, model: &str, id: &str) -> CallReport<()> {
        let (model, id) = (model.to_string(), id.to_string());
        export_call!(self, ctx, adapter, "adapter.delete", |g, store, _| {
            guest(EXPORT, g.call_delete(store, &model, &id).await?)
        })
    }

    /// `mapper.map-import`: backend record to local data (a JSON object).
    pub async fn map_import(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<String> {
        let (model, record) = (model.to_string(), wit::RemoteRecord::from(record));
        export_call!(self, ctx, mapper, "mapper.map-import", |g, store, out| {
            guest(EXPORT, g.call_map_import(store, &model, &record).await?)
                .and_then(|data| out.json("mapped data", &data).map(|()| data))
        })
    }

    /// `mapper.map-export`: local record to backend data; `changed` is
    /// `None` on create.
    pub async fn map_export(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
        changed: Option<Vec<String>>,
    ) -> CallReport<String> {
        let (model, record) = (model.to_string(), wit::LocalRecord::from(record));
        export_call!(self, ctx, mapper, "mapper.map-export", |g, store, out| {
            let r = g
                .call_map_export(store, &model, &record, changed.as_deref())
                .await?;
            guest(EXPORT, r).and_then(|data| out.json("mapped data", &data).map(|()| data))
        })
    }

    /// `mapper.dependencies`: records to import before this one.
    pub async fn dependencies(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<Vec<Dependency>> {
        let (model, record) = (model.to_string(), wit::RemoteRecord::from(record));
        export_call!(self, ctx, mapper, "mapper.dependencies", |g, store, out| {
            let r = g.call_dependencies(store, &model, &record).await?;
            guest(EXPORT, r).and_then(|deps| {
                let deps: Vec<Dependency> = deps.into_iter().map(Dependency::from).collect();
                deps.iter()
                    .try_for_each(|d| out.text(&d.model).and_then(|()| out.text(&d.external_id)))
                    .map(|()| deps)
            })
        })
    }

    /// `mapper.export-dependencies`: local records to export before this one.
    pub async fn export_dependencies(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
    ) -> CallReport<Vec<LocalDependency>> {
        let (model, record) = (model.to_string(), wit::LocalRecord::from(record));
        export_call!(
            self,
            ctx,
            mapper,
            "mapper.export-dependencies",
            |g, store, out| {
                let r = g.call_export_dependencies(store, &model, &record).await?;
                guest(EXPORT, r).and_then(|deps| {
                    let deps: Vec<LocalDependency> =
                        deps.into_iter().map(LocalDependency::from).collect();
                    deps.iter()
                        .try_for_each(|d| out.text(&d.model).and_then(|()| out.text(&d.local_id)))
                        .map(|()| deps)
                })
            }
        )
    }

    /// `listener.on-event`: the jobs an event should cause (none = skip).
    pub async fn on_event(
        &self,
        ctx: &Arc<CallContext>,
        backend: &str,
        event: &Event,
    ) -> CallReport<Vec<JobRequest>> {
        let (backend, event) = (backend.to_string(), wit::Event::from(event));
        export_call!(self, ctx, listener, "listener.on-event", |g, store, out| {
            guest(EXPORT, g.call_on_event(store, &backend, &event).await?)
                .and_then(|jobs| checked_jobs(EXPORT, out, jobs))
        })
    }

    /// For the calls benchmark only (built with the `testing` feature,
    /// never in production): `n` calls of `adapter.delete` on one reused
    /// instance (no fresh sandbox per call), returning the time they took.
    /// Production calls always get a fresh instance.
    #[cfg(feature = "testing")]
    pub async fn bench_reused_delete(
        &self,
        ctx: &Arc<CallContext>,
        n: u32,
    ) -> Result<Duration, CallError> {
        export_call!(self, ctx, adapter, "adapter.delete", |g, store, _| {
            let (model, id) = ("noop".to_string(), "1".to_string());
            let started = Instant::now();
            let mut done = Ok(());
            for _ in 0..n {
                done = guest(EXPORT, g.call_delete(&mut *store, &model, &id).await?);
                if done.is_err() {
                    break;
                }
            }
            done.map(|()| started.elapsed())
        })
        .result
    }

    fn refused<T>(&self, error: CallError) -> CallReport<T> {
        CallReport {
            result: Err(error),
            log: Vec::new(),
            log_truncated: false,
            audit: Vec::new(),
            audit_dropped: 0,
            duration: Duration::ZERO,
            digest: self.inner.digest.clone(),
        }
    }
}

/// Job requests a guest returned, checked as `jobs.enqueue` checks them.
pub(super) fn checked_jobs(
    export: &'static str,
    out: &mut Output,
    jobs: Vec<wit::JobRequest>,
) -> Result<Vec<JobRequest>, CallError> {
    let jobs: Vec<JobRequest> = jobs.into_iter().map(JobRequest::from).collect();
    for j in &jobs {
        out.json("job args", &j.args)?;
        j.validate()
            .map_err(|reason| CallError::InvalidOutput { export, reason })?;
    }
    Ok(jobs)
}

/// Name the limit or fault that ended a call.
fn classify(
    error: wasmtime::Error,
    export: &'static str,
    ctx: &CallContext,
    shared: &CallShared,
) -> CallError {
    if let Some(h) = error.downcast_ref::<HostFailure>() {
        return CallError::Host {
            export,
            capability: h.capability,
            message: h.message.clone(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return CallError::Deadline {
                export,
                limit: ctx.limits.deadline,
            };
        }
        Some(Trap::OutOfFuel) => {
            return CallError::Fuel {
                export,
                budget: ctx.limits.fuel.unwrap_or(u64::MAX),
            };
        }
        Some(Trap::StackOverflow) => return CallError::StackOverflow { export },
        _ => {}
    }
    if shared.memory_breach.load(Ordering::Relaxed) > 0 {
        return CallError::Memory {
            export,
            limit: ctx.limits.memory_bytes,
        };
    }
    if shared.table_breach.load(Ordering::Relaxed) > 0 {
        return CallError::Table {
            export,
            limit: ctx.limits.table_elements,
        };
    }
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if error.chain().any(|e| {
        e.downcast_ref::<wasmtime::component::ResourceTableError>()
            .is_some()
    }) || message.contains("resource table has no free keys")
    {
        return CallError::HostResources {
            export,
            limit: ctx.limits.max_host_resources,
        };
    }
    if message.contains("total size of fields exceeds limit") {
        return CallError::HeaderSize {
            export,
            limit: ctx.limits.max_header_bytes,
        };
    }
    // A Python guest's uncaught exception: the author's mistake, not the
    // interpreter's trap, leads the message.
    if let Some(exception) = shared.log.guest_exception() {
        return CallError::Trap {
            export,
            message: format!("the guest raised {exception} ({message})"),
        };
    }
    // A Rust guest prints its panic message to stderr just before it traps.
    let tail = shared.log.stderr_tail(3);
    if !tail.is_empty() {
        message.push_str(" (guest stderr: ");
        message.push_str(&tail.join(" | "));
        message.push(')');
    }
    CallError::Trap { export, message }
}

/// What a call did, in the process's metrics.
fn count<T>(
    digest: &str,
    export: &str,
    backend: &str,
    result: &Result<T, CallError>,
    audit: &[AuditEntry],
) {
    use crate::metrics::CallOutcome;
    let m = crate::metrics::global();
    let outcome = match result {
        Ok(_) => CallOutcome::Ok,
        Err(CallError::Guest(..)) => CallOutcome::GuestError,
        Err(
            e @ (CallError::Deadline { .. }
            | CallError::Fuel { .. }
            | CallError::Memory { .. }
            | CallError::Table { .. }
            | CallError::StackOverflow { .. }
            | CallError::HostResources { .. }
            | CallError::HeaderSize { .. }),
        ) => CallOutcome::Limit(e.kind()),
        Err(_) => CallOutcome::Trap,
    };
    m.call(digest, export, outcome);
    for entry in audit {
        if entry.method == "-" {
            // The note of entries dropped over the audit cap, not a request.
        } else if entry.denied.is_some() {
            m.denied(backend);
        } else {
            m.request(backend, entry.status);
        }
    }
}
