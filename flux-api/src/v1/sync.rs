//! What a sync did, and how workloads stand in the cluster.

use serde::{Deserialize, Serialize};

use super::ids::{ResourceId, Revision};

/// What applying one object did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// Created.
    Created,
    /// Changed.
    Configured,
    /// Already as desired.
    Unchanged,
    /// The cluster refused this object; the others were still applied.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
    /// The call failed as a whole before this object's outcome was known.
    Interrupted {
        /// What ended the call.
        reason: String,
    },
}

/// What applying one object did, by object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    /// The object.
    pub id: ResourceId,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ApplyOutcome,
}

/// What deleting one object did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeleteOutcome {
    /// Deleted (or deletion started).
    Deleted,
    /// Already gone.
    Absent,
    /// Could not be deleted.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
}

/// What deleting one object did, by object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    /// The object.
    pub id: ResourceId,
    /// What happened.
    #[serde(flatten)]
    pub outcome: DeleteOutcome,
}

/// What happens to objects a unit applied that are no longer in git.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarbageCollection {
    /// Left alone.
    #[default]
    Off,
    /// Reported, not deleted.
    DryRun,
    /// Deleted.
    On,
}

/// A problem found during a sync: where (an object, a file) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncError {
    /// The object concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    /// What went wrong, naming the file and line where known.
    pub message: String,
    /// Its kind and location, for programs (absent from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// What kind of error, and where: flux-core's error kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `not_found`, `conflict`, `unauthorized`, `rate_limited`, `invalid_input`, `transient` or
    /// `other`.
    pub kind: String,
    /// The file and line at fault, for `invalid_input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ErrorLocation>,
}

/// A file and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLocation {
    /// The file (or image, or workload).
    pub file: String,
    /// The line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Each object's health and how the wait ended, when the unit waits for health (absent
    /// otherwise, and from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
    /// Why nothing was applied, when the sync was held (by a unit it depends on, or suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// Objects that left git and were kept (absent when none, and from older daemons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Kept>,
    /// Set when the prune guard held garbage collection: nothing was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_held: Option<Box<PruneHold>>,
}

/// An object of the cluster: its `apiVersion` and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `namespace:kind/name`.
    pub id: ResourceId,
}

/// Why garbage collection keeps an object that left git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// Annotated `fluxcd.io/prune: "false"`.
    Annotated,
    /// A Namespace, CustomResourceDefinition or PersistentVolumeClaim not annotated
    /// `fluxcd.io/prune: "true"`.
    ProtectedKind,
}

/// An object that left git and was kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The object.
    pub reference: ObjectRef,
    /// Why.
    pub reason: KeepReason,
}

/// Garbage collection held by the prune guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneHold {
    /// How many objects would have been deleted.
    pub pruning: usize,
    /// How many objects the unit manages.
    pub managed: usize,
    /// The guard's share, in percent.
    pub max_percent: u8,
    /// A few of the objects that would have been deleted.
    pub examples: Vec<ResourceId>,
}

/// How an object stands, by kstatus' rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "health", rename_all = "snake_case")]
pub enum Health {
    /// Reconciled.
    Current,
    /// Not there yet.
    InProgress {
        /// What is missing.
        reason: String,
    },
    /// It will not get there by itself.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One object's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    /// The object.
    pub id: ResourceId,
    /// How it stands.
    #[serde(flatten)]
    pub health: Health,
}

/// How a wait for health ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WaitOutcome {
    /// Every object is current.
    Healthy,
    /// An object failed.
    Failed {
        /// The object.
        id: ResourceId,
        /// Why.
        reason: String,
    },
    /// The timeout passed: the first object not current, and why.
    TimedOut {
        /// The object that blocked.
        id: ResourceId,
        /// What it was still missing.
        reason: String,
    },
}

/// What a unit's wait for health found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: WaitOutcome,
    /// Each object's last verdict, sorted by id.
    pub objects: Vec<ObjectHealth>,
    /// How long it waited, in milliseconds.
    pub waited_ms: u64,
}

/// Why a sync applied nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The unit holding it: one it depends on, or the unit itself when suspended.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// How a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WorkloadStatus {
    /// Every replica runs the current spec.
    Ready,
    /// A rollout is in progress.
    RollingOut,
    /// The rollout failed.
    Failed {
        /// Why, from the object's status.
        message: String,
    },
    /// Nothing to judge by.
    Unknown,
}

impl SyncSummary {
    /// The revision synced.
    pub fn revision(&self) -> Revision {
        Revision(self.revision.clone())
    }
}
