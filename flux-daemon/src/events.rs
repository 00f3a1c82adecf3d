//! What happened in a unit, announced to a list of [`EventSink`]s: syncs, releases, automation
//! commits, policy changes. Sinks are called in the background; a sink that fails is logged and
//! never holds up the unit.

use std::sync::Arc;

use async_trait::async_trait;
use flux_core::automation::{AutomationReport, ReleaseResult};
use flux_core::sync::SyncReport;
use flux_core::{PolicyDiff, Result};
use serde_json::{Value, json};

/// Something a unit did.
#[derive(Debug, Clone)]
pub enum Event {
    /// A sync that changed something (quiet syncs are not announced).
    SyncCompleted {
        /// The unit.
        unit: String,
        /// What it did.
        report: Arc<SyncReport>,
    },
    /// A sync that failed (a revision it could not use, objects the cluster refused, ...).
    SyncFailed {
        /// The unit.
        unit: String,
        /// What it did and what went wrong.
        report: Arc<SyncReport>,
    },
    /// A release that committed (dry runs and releases with nothing to change are not announced).
    ReleaseCompleted {
        /// The unit.
        unit: String,
        /// The job that ran it (its commit's `Flux-Job:`).
        job: String,
        /// What it did.
        result: ReleaseResult,
    },
    /// An automation pass that committed image updates.
    AutomationCommitted {
        /// The unit.
        unit: String,
        /// The job that ran it.
        job: String,
        /// What it did.
        report: AutomationReport,
    },
    /// A sync applied everything but its objects were not healthy in time (a unit that waits
    /// for health): which object blocked and why.
    HealthFailed {
        /// The unit.
        unit: String,
        /// The revision synced.
        revision: String,
        /// Each object's health and how the wait ended.
        report: flux_core::health::HealthReport,
    },
    /// A policy change that committed.
    PolicyChanged {
        /// The unit.
        unit: String,
        /// The job that ran it.
        job: String,
        /// The revision committed.
        revision: String,
        /// What changed.
        diffs: Vec<PolicyDiff>,
    },
}

impl Event {
    /// Its name: `SyncCompleted`, `SyncFailed`, `HealthFailed`, `ReleaseCompleted`,
    /// `AutomationCommitted`, `PolicyChanged`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SyncCompleted { .. } => "SyncCompleted",
            Event::SyncFailed { .. } => "SyncFailed",
            Event::HealthFailed { .. } => "HealthFailed",
            Event::ReleaseCompleted { .. } => "ReleaseCompleted",
            Event::AutomationCommitted { .. } => "AutomationCommitted",
            Event::PolicyChanged { .. } => "PolicyChanged",
        }
    }

    /// The unit it happened in.
    pub fn unit(&self) -> &str {
        match self {
            Event::SyncCompleted { unit, .. }
            | Event::SyncFailed { unit, .. }
            | Event::HealthFailed { unit, .. }
            | Event::ReleaseCompleted { unit, .. }
            | Event::AutomationCommitted { unit, .. }
            | Event::PolicyChanged { unit, .. } => unit,
        }
    }

    /// One line for people (a chat message).
    pub fn summary(&self) -> String {
        let unit = self.unit();
        match self {
            Event::SyncCompleted { report, .. } | Event::SyncFailed { report, .. } => {
                let outcome = if report.is_success() { "succeeded" } else { "failed" };
                format!(
                    "[{unit}] Sync of {} {outcome}: {} applied, {} pruned, {} errors",
                    report.revision.short(),
                    report.applied.len(),
                    report.pruned.len(),
                    report.errors.len()
                )
            }
            Event::HealthFailed { revision, report, .. } => {
                format!("[{unit}] {} not healthy: {}", &revision[..revision.len().min(7)], report.summary())
            }
            Event::ReleaseCompleted { result, .. } => {
                let updated: Vec<String> = result.updated().map(|w| w.workload.to_string()).collect();
                match &result.revision {
                    Some(rev) => format!("[{unit}] Released {} in {}", updated.join(", "), rev.short()),
                    None => format!("[{unit}] Release: nothing to change"),
                }
            }
            Event::AutomationCommitted { report, .. } => {
                let rev = report.revision.as_ref().map(|r| r.short().to_owned()).unwrap_or_default();
                let changes: Vec<String> = report.changes.iter().map(|c| format!("{} {}", c.workload, c.to)).collect();
                format!("[{unit}] Automated {} in {rev}", changes.join(", "))
            }
            Event::PolicyChanged { revision, diffs, .. } => {
                let names: Vec<String> = diffs.iter().map(|d| d.workload.to_string()).collect();
                format!("[{unit}] Policies of {} changed in {}", names.join(", "), &revision[..revision.len().min(7)])
            }
        }
    }

    /// The event as JSON: `{"event": name, "unit", "summary", ...details}`.
    pub fn to_json(&self) -> Value {
        let details = match self {
            Event::SyncCompleted { report, .. } | Event::SyncFailed { report, .. } => {
                json!({"report": report.as_ref()})
            }
            Event::HealthFailed { revision, report, .. } => json!({"revision": revision, "health": report}),
            Event::ReleaseCompleted { job, result, .. } => json!({"job": job, "result": result}),
            Event::AutomationCommitted { job, report, .. } => json!({"job": job, "report": report}),
            Event::PolicyChanged { job, revision, diffs, .. } => {
                json!({"job": job, "revision": revision, "diffs": diffs})
            }
        };
        let mut body = json!({"event": self.name(), "unit": self.unit(), "summary": self.summary()});
        if let (Some(body), Value::Object(details)) = (body.as_object_mut(), details) {
            body.extend(details);
        }
        body
    }
}

/// Where events go: a webhook, a chat, a log, a queue.
///
/// # Contract
///
/// - [`EventSink::send`] is called once per event, from a background task; it may take its time
///   (the unit does not wait) but must give up by itself (every network call has a timeout).
/// - An error is logged with the sink's `Debug` text and the event's name, and the event is not
///   retried: announcements are best-effort, the unit's state is in git and the cluster.
/// - Its `Debug` text must not show secrets (a Slack URL is one).
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Delivers `event`.
    async fn send(&self, event: &Event) -> Result<()>;
}

/// The daemon's sinks; [`Sinks::emit`] hands an event to each in the background.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sinks(Vec<Arc<dyn EventSink>>);

impl Sinks {
    pub(crate) fn new(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        Sinks(sinks)
    }

    /// Sends `event` to every sink, each in its own task.
    pub(crate) fn emit(&self, event: Event) {
        if self.0.is_empty() {
            return;
        }
        let event = Arc::new(event);
        for sink in &self.0 {
            let (sink, event) = (sink.clone(), event.clone());
            tokio::spawn(async move {
                if let Err(e) = sink.send(&event).await {
                    tracing::warn!(sink = ?sink, event = event.name(), error = %e, "event not delivered");
                }
            });
        }
    }
}
