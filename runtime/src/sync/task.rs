//! Connector-defined tasks: job functions a connector declares in its
//! `features` (such as `export-tracking`) and runs with `tasks.run`. They
//! are jobs of function [`TASK`] (`{"task": NAME, "args": {…}}`) for the
//! backend: enqueued by the connector itself (`jobs.enqueue`), by a
//! listener or webhook, or by an operator (`junction sync task`, `POST
//! /api/v1/sync/task`), and run with the backend's channel, retries,
//! breaker and audit like every sync job.

use super::trail::Trail;
use super::{BackendUnits, Synchronizer};
use crate::queue::worker::JobFailure;

/// The job function of a connector-defined task.
pub const TASK: &str = "junction.task";

impl Synchronizer {
    /// The tasks `b`'s connectors declare, each with its component's label.
    pub async fn declared_tasks(
        &self,
        b: &BackendUnits,
    ) -> Result<Vec<(crate::features::TaskSpec, String)>, crate::error::CallError> {
        let mut out = Vec::new();
        for adapter in &b.adapters {
            let features = adapter.unit.features(&b.ctx).await?;
            out.extend(
                features
                    .tasks
                    .into_iter()
                    .map(|t| (t, adapter.label.clone())),
            );
        }
        Ok(out)
    }

    /// Run task `name` of `b`'s connectors with `args` (a JSON object).
    pub async fn run_task(
        &self,
        b: &BackendUnits,
        name: &str,
        args: &serde_json::Value,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        if !args.is_object() {
            return Err(JobFailure::fail(
                "bad-arguments",
                format!("{TASK} \"args\" must be a JSON object, as the task {name} takes"),
            ));
        }
        let mut declared = Vec::new();
        for adapter in &b.adapters {
            let features = adapter.unit.features(&b.ctx).await.map_err(|e| {
                super::trail::failure(&format!("reading the features of {}", adapter.label), &e)
            })?;
            if features.task(name).is_some() {
                trail.digest = Some(adapter.unit.digest().to_string());
                let line = trail.call(
                    &format!("running task {name} of {} for {}", adapter.label, b.name()),
                    adapter.unit.run_task(&b.ctx, name, &args.to_string()).await,
                )?;
                return Ok(format!("task {name}: {line}"));
            }
            declared.extend(features.tasks.into_iter().map(|t| t.name));
        }
        Err(JobFailure::fail(
            "unknown-task",
            format!(
                "no connector serving backend {} declares a task named {}; they declare: {} \
                 (check the name, or install the connector version that has it)",
                b.name(),
                crate::text::truncate(&crate::text::clean(name), 80),
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ),
        ))
    }
}
