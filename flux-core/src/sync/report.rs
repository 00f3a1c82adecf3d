//! What a sync did, for logs, notifications and the API.

use std::time::Duration;

use crate::cluster::{
    ApplyResult, CHECKSUM_ANNOTATION, DeleteResult, GC_MARK_LABEL, ObjectRef, SYNC_PATH_ANNOTATION, SYNC_UNIT_LABEL,
    SyncIdentity,
};
use crate::error::Error;
use crate::manifest::Skipped;
use crate::object::KubeObject;
use crate::resource::ResourceId;
use crate::source::Revision;
use crate::sync::config::GarbageCollection;

/// A problem found during a sync: where (an object, a file) and what, as an [`Error`] that keeps
/// its kind and location (an unreadable file is `InvalidInput` at its file and line; an apply
/// call that failed as a whole is `Transient`).
///
/// Serialised as `{"id"?, "message", "error": {"kind", ...}}`: `message` is the error's text, for
/// readers that only want a line.
#[derive(Debug, Clone)]
pub struct SyncError {
    /// The object concerned, when there is one.
    pub id: Option<ResourceId>,
    /// What went wrong, naming the file and line where known.
    pub error: Error,
}

impl SyncError {
    pub(crate) fn new(id: Option<ResourceId>, error: Error) -> Self {
        SyncError { id, error }
    }

    /// The error's text, one line.
    pub fn message(&self) -> String {
        self.error.to_string()
    }
}

impl PartialEq for SyncError {
    /// The same object and the same error (kind and text).
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.error.kind() == other.error.kind() && self.message() == other.message()
    }
}

impl Eq for SyncError {}

/// The serialised form of a [`SyncError`].
#[derive(serde::Serialize, serde::Deserialize)]
struct SyncErrorRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<ResourceId>,
    #[serde(default)]
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Error>,
}

impl serde::Serialize for SyncError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SyncErrorRepr { id: self.id.clone(), message: self.message(), error: Some(self.error.clone()) }
            .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for SyncError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = SyncErrorRepr::deserialize(deserializer)?;
        Ok(SyncError { id: repr.id, error: repr.error.unwrap_or_else(|| Error::other(repr.message)) })
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

/// An object to apply and the marks it is sent with.
///
/// The object is kept as the revision holds it, its body shared with the engine's cache: a
/// marked copy is made only when it is sent ([`PlannedApply::marked`]), a call's worth at a
/// time, so a cold sync of 10,000 objects does not hold 10,000 copies.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedApply {
    /// The object as in git, without the marks.
    pub object: KubeObject,
    /// Why.
    pub reason: ApplyReason,
    /// What it is marked with when applied.
    pub marks: Marks,
}

impl PlannedApply {
    /// The object as it is applied: with its [`Marks`].
    pub fn marked(&self) -> KubeObject {
        let mut object = self.object.clone();
        let marks = &self.marks;
        object.set_label(GC_MARK_LABEL, &marks.gc_mark);
        object.set_label(SYNC_UNIT_LABEL, &marks.unit);
        object.set_annotation(CHECKSUM_ANNOTATION, &marks.checksum);
        object.set_annotation(SYNC_PATH_ANNOTATION, &marks.paths);
        object
    }
}

/// The labels and annotations a sync unit applies an object with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    /// The [`GC_MARK_LABEL`] value: proof of which unit applied it.
    pub gc_mark: String,
    /// The [`SYNC_UNIT_LABEL`] value: the unit's identity.
    pub unit: String,
    /// The [`CHECKSUM_ANNOTATION`] value: the checksum of the object as in git.
    pub checksum: String,
    /// The [`SYNC_PATH_ANNOTATION`] value: the paths it was read under.
    pub paths: String,
}

/// Why garbage collection keeps an object that left git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// The live object is annotated `fluxcd.io/prune: "false"`.
    Annotated,
    /// A Namespace, CustomResourceDefinition or PersistentVolumeClaim (deleting one deletes what
    /// it holds) not annotated `fluxcd.io/prune: "true"`.
    ProtectedKind,
}

/// An object that left git and that garbage collection keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    /// The object.
    pub reference: ObjectRef,
    /// Why it is kept.
    pub reason: KeepReason,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            KeepReason::Annotated => write!(f, "{} kept: annotated fluxcd.io/prune: \"false\"", self.reference.id),
            KeepReason::ProtectedKind => {
                let kind = ["Namespace", "CustomResourceDefinition", "PersistentVolumeClaim"]
                    .into_iter()
                    .find(|k| self.reference.id.is_kind(k))
                    .unwrap_or(self.reference.id.kind());
                write!(
                    f,
                    "{} kept: a {kind} is pruned only when annotated fluxcd.io/prune: \"true\"",
                    self.reference.id
                )
            }
        }
    }
}

/// Garbage collection held by the [prune guard](crate::sync::PruneGuard): nothing was deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneHold {
    /// How many objects would have been deleted.
    pub pruning: usize,
    /// How many objects the unit manages.
    pub managed: usize,
    /// The guard's share, in percent.
    pub max_percent: u8,
    /// A few of the objects that would have been deleted, in deletion order.
    pub examples: Vec<ResourceId>,
}

impl PruneHold {
    /// How many objects are given as examples.
    pub const EXAMPLES: usize = 5;
}

impl std::fmt::Display for PruneHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let examples = self.examples.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let more = self.pruning.saturating_sub(self.examples.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        write!(
            f,
            "prune guard: not pruning {} of the {} objects this unit manages (over {}%): {examples}{more}; \
             nothing was deleted. If this is intended, allow it once: fluxctl sync --allow-prune \
             (POST /api/v1/sync?allow_prune=true)",
            self.pruning, self.managed, self.max_percent
        )
    }
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
    /// Objects that left git and are kept all the same (`fluxcd.io/prune`, protected kinds).
    pub kept: Vec<Kept>,
    /// How many objects this unit manages (whose GC mark proves it applied them).
    pub managed: usize,
    /// Set when the [prune guard](crate::sync::SyncConfig::prune_guard) would hold `prune`
    /// (garbage collection on): a sync deletes nothing unless a prune was allowed once.
    pub prune_hold: Option<PruneHold>,
    /// What under the paths is not Kubernetes objects and was not read (see
    /// [`Skipped`]), sorted by path.
    pub skipped: Vec<Skipped>,
    /// Objects of this unit that left git and came from a path no longer configured: left in
    /// the cluster (unless [`SyncConfig::prune_removed_paths`](crate::sync::SyncConfig::prune_removed_paths)).
    pub orphaned: Vec<ObjectRef>,
    /// Objects labelled with this unit whose GC mark is not their own (hand-made copies of an
    /// applied object, or a label set by hand): never pruned.
    pub foreign_copies: Vec<ObjectRef>,
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
    /// How many of `applied` were not applied: refused by the cluster (`Failed`, each also in
    /// `errors` with its file, line and the cluster's reason) or not sent because an apply call
    /// failed as a whole (`Interrupted`). Nothing of them was recorded, so the next sync sends
    /// them again.
    pub failed: usize,
    /// How many objects were already as desired (nothing was sent for them).
    pub unchanged: usize,
    /// Objects kept out by restrictions.
    pub refused: Vec<Refusal>,
    /// Objects left alone because of `fluxcd.io/ignore`.
    pub ignored: Vec<ResourceId>,
    /// What under the paths is not Kubernetes objects and was not read: hidden directories,
    /// Helm charts, documents with neither `apiVersion` nor `kind`.
    pub skipped: Vec<Skipped>,
    /// The garbage collection mode in force.
    pub garbage_collection: GarbageCollection,
    /// Objects pruned, in deletion order; with [`GarbageCollection::DryRun`], what would have been.
    pub pruned: Vec<DeleteResult>,
    /// Objects that left git with a path no longer configured: not pruned, left in the cluster.
    pub orphaned: Vec<ObjectRef>,
    /// Objects carrying this unit's label but a GC mark that is not their own (copies): not pruned.
    pub foreign_copies: Vec<ObjectRef>,
    /// Objects that left git and were kept (`fluxcd.io/prune`, protected kinds).
    pub kept: Vec<Kept>,
    /// Set when the prune guard held garbage collection: nothing was deleted (also in `errors`).
    pub prune_held: Option<PruneHold>,
    /// Every problem, with file and line or object.
    pub errors: Vec<SyncError>,
    /// Whether the source's marker is at this revision after the sync: moved there, or found
    /// there already (then nothing was written).
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
