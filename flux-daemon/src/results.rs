//! What jobs and the status hold inside fluxd, in flux-core's types. The API answers them as
//! flux-api's wire types (converted at the API, field for field).

use flux_core::automation::{AutomationReport, HeadProblem, ReleaseResult};
use flux_core::cluster::{ApplyResult, DeleteResult};
use flux_core::sync::{GarbageCollection, SyncError, SyncReport};
use flux_core::{PolicyChange, PolicyDiff, ResourceId};
use serde::{Deserialize, Serialize};

pub use crate::gate::{Held, Suspension, WorkloadSuspension};

/// A policy request, as the engines take it (from [`flux_api::v1::PolicyRequest`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// The workload.
    pub workload: ResourceId,
    /// The changes, in order.
    pub changes: Vec<PolicyChange>,
    /// Set (`Some(filter)`) or clear (`Some(None)`) the filter of every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_all: Option<Option<String>>,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a sync did, in the form the API gives it. `Default` is an empty, unsuccessful summary
/// (for `..Default::default()` in constructors).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncSummary {
    /// The revision synced.
    pub revision: String,
    /// Whether the revision was read completely and every object went through.
    pub success: bool,
    /// Objects sent to the cluster.
    pub applied: Vec<ApplyResult>,
    /// How many objects were already as desired.
    pub unchanged: usize,
    /// Objects pruned (with GC dry-run: what would have been).
    pub pruned: Vec<DeleteResult>,
    /// The garbage collection mode.
    pub garbage_collection: GarbageCollection,
    /// Every problem.
    pub errors: Vec<SyncError>,
    /// Each object's health and how the wait ended, when the unit waits for health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<flux_core::health::HealthReport>,
    /// Why nothing was applied, when the sync was held (by a dependency, or suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// Objects that left git and were kept (`fluxcd.io/prune`, protected kinds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<flux_core::sync::Kept>,
    /// Set when the prune guard held garbage collection (nothing was deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_held: Option<Box<flux_core::sync::PruneHold>>,
}

impl SyncSummary {
    /// The summary with the health wait's report: an object not healthy fails the sync, with
    /// an error naming it and why.
    pub fn with_health(mut self, report: flux_core::health::HealthReport) -> Self {
        use flux_core::health::WaitOutcome;
        let error = match &report.outcome {
            WaitOutcome::Healthy => None,
            WaitOutcome::Failed { id, .. } => {
                Some((id, flux_core::Error::other(format!("health: {}", report.summary()))))
            }
            WaitOutcome::TimedOut { id, .. } => {
                Some((id, flux_core::Error::transient(format!("health: {}", report.summary()))))
            }
        };
        if let Some((id, error)) = error {
            self.success = false;
            self.errors.push(SyncError { id: Some(id.clone()), error });
        }
        self.health = Some(report);
        self
    }
}

impl From<&SyncReport> for SyncSummary {
    fn from(r: &SyncReport) -> Self {
        SyncSummary {
            revision: r.revision.as_str().to_owned(),
            success: r.is_success(),
            applied: r.applied.clone(),
            unchanged: r.unchanged,
            pruned: r.pruned.clone(),
            garbage_collection: r.garbage_collection,
            errors: r.errors.clone(),
            health: None,
            held: None,
            kept: r.kept.clone(),
            prune_held: r.prune_held.clone().map(Box::new),
        }
    }
}

/// What a finished job did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobResult {
    /// A release.
    Release(ReleaseResult),
    /// A policy update: the workloads whose policies changed and the revision committed.
    Policy {
        /// The revision committed, if anything changed.
        revision: Option<String>,
        /// What changed.
        diffs: Vec<PolicyDiff>,
    },
    /// A sync (after a refresh of the source).
    Sync(Box<SyncSummary>),
    /// An automation pass.
    Automation(AutomationReport),
}

/// Where a job stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobView {
    /// Waiting.
    Queued,
    /// Running.
    Running,
    /// Done.
    Succeeded {
        /// What it did.
        result: Box<JobResult>,
    },
    /// Failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// Where the daemon stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// The head of the branch at the last refresh.
    pub head: Option<String>,
    /// The last sync, if there was one.
    pub last_sync: Option<SyncSummary>,
    /// Why the head could not be used at the last read.
    #[serde(default)]
    pub head_error: Option<HeadProblem>,
    /// Who suspended the unit and why, while it is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
    /// The workloads whose automation is suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended_workloads: Vec<WorkloadSuspension>,
    /// Why the last sync was held, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

/// One workload, as `GET /workloads` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadInfo {
    /// `namespace:kind/name`.
    pub id: ResourceId,
    /// Its containers as they run in the cluster (or as written in git when not running).
    pub containers: Vec<ContainerInfo>,
    /// Its rollout status; `None` when it does not run in the cluster.
    pub status: Option<flux_core::WorkloadStatus>,
    /// Its policies, from the manifests in git.
    pub policies: flux_core::Policies,
    /// Whether its manifest is in git.
    pub in_git: bool,
    /// What is wrong with its manifest in git, when something is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One container of a workload, in `GET /workloads`.
pub use flux_api::v1::ContainerInfo;

/// One sync as the unit remembers it (its recent history, for the status page).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRecord {
    /// When the sync finished.
    pub finished_at: jiff::Timestamp,
    /// How long it took.
    pub duration: std::time::Duration,
    /// How many objects failed to apply (refused by the cluster or not sent).
    pub failed: usize,
    /// What it did.
    pub summary: SyncSummary,
}
