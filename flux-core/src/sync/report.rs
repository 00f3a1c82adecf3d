//! What a sync did, for logs, notifications and the API.

use std::time::Duration;

use crate::cluster::{ApplyResult, DeleteResult, ObjectRef, SyncIdentity};
use crate::object::KubeObject;
use crate::resource::ResourceId;
use crate::source::Revision;
use crate::sync::config::GarbageCollection;

/// A problem found during a sync: where (an object, a file) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncError {
    /// The object concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    /// What went wrong, naming the file and line where known.
    pub message: String,
}

impl SyncError {
    pub(crate) fn new(id: Option<ResourceId>, message: impl Into<String>) -> Self {
        SyncError { id, message: message.into() }
    }
}

/// An object the unit's restrictions kept out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// The object.
    pub id: ResourceId,
    /// Which restriction.
    pub reason: String,
}

/// Why an object is to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyReason {
    /// This identity does not manage it yet (new in git, or deleted from the cluster).
    Missing,
    /// Its desired manifest changed since it was last applied.
    Changed,
    /// Someone changed it in the cluster.
    Drifted,
}

/// An object to apply, ready to send (sync label and checksum set).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedApply {
    /// The object as it will be applied.
    pub object: KubeObject,
    /// Why.
    pub reason: ApplyReason,
}

/// What a sync would do, computed without writing anything.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// The revision planned.
    pub revision: Revision,
    /// Whether the revision could be read completely; an unusable one never prunes.
    pub usable: bool,
    /// Problems with the revision (file and line) or with reading the cluster.
    pub errors: Vec<SyncError>,
    /// Objects to apply, in apply order.
    pub apply: Vec<PlannedApply>,
    /// Objects already as desired: nothing is sent for them.
    pub unchanged: Vec<ResourceId>,
    /// Objects kept out by the unit's restrictions.
    pub refused: Vec<Refusal>,
    /// Objects left alone because of `fluxcd.io/ignore`.
    pub ignored: Vec<ResourceId>,
    /// Objects to prune (with garbage collection on or dry), in deletion order.
    pub prune: Vec<ObjectRef>,
}

/// What a sync did. Emitted to subscribers of the engine after every sync.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    /// The unit's identity.
    pub identity: SyncIdentity,
    /// The revision synced.
    pub revision: Revision,
    /// Whether the revision could be read completely.
    pub usable: bool,
    /// Objects sent to the cluster and what each did, in apply order.
    pub applied: Vec<ApplyResult>,
    /// How many objects were already as desired (nothing was sent for them).
    pub unchanged: usize,
    /// Objects kept out by restrictions.
    pub refused: Vec<Refusal>,
    /// Objects left alone because of `fluxcd.io/ignore`.
    pub ignored: Vec<ResourceId>,
    /// The garbage collection mode in force.
    pub garbage_collection: GarbageCollection,
    /// Objects pruned, in deletion order; with [`GarbageCollection::DryRun`], what would have been.
    pub pruned: Vec<DeleteResult>,
    /// Every problem, with file and line or object.
    pub errors: Vec<SyncError>,
    /// Whether the source's marker was moved to this revision.
    pub marker_moved: bool,
    /// How long the sync took.
    #[serde(with = "millis")]
    pub duration: Duration,
}

impl SyncReport {
    /// Whether everything went through: a usable revision, no failed object, no error.
    pub fn is_success(&self) -> bool {
        self.usable && self.errors.is_empty()
    }
}

mod millis {
    pub(super) fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}
