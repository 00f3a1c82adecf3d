//! The HTTP API between `fluxd` and `fluxctl`: routes and JSON bodies, in one place both
//! programs include (`#[path = "../common/api.rs"] mod api;`).

#![allow(dead_code)] // Each program uses its own half of the module.

use flux_core::automation::{AutomationReport, ReleaseResult};
use flux_core::cluster::{ApplyResult, DeleteResult, WorkloadStatus};
use flux_core::sync::{GarbageCollection, SyncError, SyncReport};
use flux_core::{Container, Policies, PolicyChange, PolicyDiff, ResourceId};
use serde::{Deserialize, Serialize};

/// The version of this API, in every route's prefix.
pub(crate) const PREFIX: &str = "/api/v1";

/// `GET /api/v1/version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Version {
    /// fluxd's version.
    pub(crate) version: String,
}

/// `GET /api/v1/identity`: the public half of the git deploy key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// The public key (OpenSSH format), when a deploy key is configured.
    pub(crate) public_key: Option<String>,
}

/// One workload, in `GET /api/v1/workloads`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkloadInfo {
    /// `namespace:kind/name`.
    pub(crate) id: ResourceId,
    /// Its containers as they run in the cluster (or as written in git when not running).
    pub(crate) containers: Vec<Container>,
    /// Its rollout status; `None` when it does not run in the cluster.
    pub(crate) status: Option<WorkloadStatus>,
    /// Its policies, from the manifests in git.
    pub(crate) policies: Policies,
    /// Whether its manifest is in git (else it runs but is not managed here).
    pub(crate) in_git: bool,
}

/// `POST /api/v1/policies`: policy changes, as one job and one commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PolicyRequest {
    /// The workload.
    pub(crate) workload: ResourceId,
    /// The changes, in order.
    pub(crate) changes: Vec<PolicyChange>,
    /// Set (`Some(filter)`) or clear (`Some(None)`) the filter of every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tag_all: Option<Option<String>>,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// The answer to a request that queues a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobAccepted {
    /// The job's id, for `GET /api/v1/jobs/{id}`.
    pub(crate) job_id: String,
}

/// What a sync did, in a form a client can read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SyncSummary {
    /// The revision synced.
    pub(crate) revision: String,
    /// Whether the revision was read completely and every object went through.
    pub(crate) success: bool,
    /// Objects sent to the cluster.
    pub(crate) applied: Vec<ApplyResult>,
    /// How many objects were already as desired.
    pub(crate) unchanged: usize,
    /// Objects pruned (with GC dry-run: what would have been).
    pub(crate) pruned: Vec<DeleteResult>,
    /// The garbage collection mode.
    pub(crate) garbage_collection: GarbageCollection,
    /// Every problem.
    pub(crate) errors: Vec<SyncError>,
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
        }
    }
}

/// What a finished job did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum JobResult {
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
    Sync(SyncSummary),
    /// An automation pass.
    Automation(AutomationReport),
}

/// `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum JobView {
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

/// `GET /api/v1/status`: where the daemon stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Status {
    /// The head of the branch at the last refresh.
    pub(crate) head: Option<String>,
    /// The last sync, if there was one.
    pub(crate) last_sync: Option<SyncSummary>,
}

/// An error answer: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiError {
    /// What went wrong, one line.
    pub(crate) error: String,
}

/// The body of the generic git notification (`POST /api/v1/notify/git`); every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct GitNotify {
    /// The branch pushed, if known: other branches are ignored.
    #[serde(default)]
    pub(crate) branch: Option<String>,
}
