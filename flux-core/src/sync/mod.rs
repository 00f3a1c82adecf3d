//! The sync engine: git → cluster.
//!
//! A [`SyncEngine`] makes a [`Cluster`](crate::Cluster) match one revision of one sync unit
//! ([`SyncConfig`]: paths in a [`Source`](crate::Source), an identity, garbage collection and
//! restrictions).
//!
//! # The algorithm
//!
//! 1. **Desired state.** The files under the unit's paths at the revision go through the
//!    [`Generator`](crate::generate::Generator). Any error (unreadable path, invalid YAML, an
//!    object defined twice, a generator failure), or an empty result while objects are managed,
//!    makes the revision *unusable*: its errors are reported with file and line, nothing is
//!    pruned, the marker does not move, and nothing is applied unless
//!    [`SyncConfig::apply_unusable`] is set.
//! 2. **Live state.** One [`Cluster::managed`](crate::Cluster::managed) call lists the objects
//!    labelled with this unit (or, with [`SyncConfig::legacy_sync_sets`], one
//!    [`Cluster::marked`](crate::Cluster::marked) call lists every marked object), with the
//!    checksum recorded on each when it was applied and whether someone else changed it since
//!    (drift). Only those whose GC mark proves this unit applied that very object are managed
//!    (see [Marks](#marks-copies-and-flux-v1)).
//! 3. **Plan.** Each desired object gets its mark (`fluxcd.io/sync-gc-mark`), the unit label
//!    (`fluxcd.io/sync-unit`), the path it came from (`fluxcd.io/sync-path`) and the SHA-256 of
//!    its canonical desired manifest (`fluxcd.io/sync-checksum`). It is applied if this unit does
//!    not manage it yet, if the recorded checksum, path or mark differs, or if the cluster
//!    reports it drifted; otherwise nothing is sent for it. Objects this unit does not manage yet
//!    are first looked up in one batched, metadata-only [`Cluster::metadata`](crate::Cluster::metadata)
//!    call: one that exists marked `fluxcd.io/ignore: "true"`, whoever made it, is left alone;
//!    when the look-up fails, they are not applied (the error is reported).
//! 4. **Apply**, in stages: namespaces, CRDs, service accounts, cluster then namespaced RBAC,
//!    `*Class` kinds, volumes and claims, config maps and secrets, services, workloads,
//!    everything else, admission webhooks last. Within a stage up to
//!    [`SyncConfig::concurrency`] apply calls run at once. Results are per object: an object
//!    the cluster refuses is reported with its file, line and the cluster's reason, does not
//!    stop the others, and is sent again next sync (nothing of it was recorded). A call that
//!    fails as a whole (connection lost, credentials refused) stops the later stages.
//! 5. **Garbage collection** (when on, or dry): managed objects absent from the revision are
//!    deleted in the reverse stage order — never when the revision is unusable (the view of
//!    the desired or live state is incomplete), never when an apply call failed as a whole
//!    (the cluster is unreachable), never the live copy of an object whose apply failed (under
//!    another API group), never objects annotated `fluxcd.io/ignore` (`true` or `sync_only`), never outside the
//!    unit's restrictions, never an object whose mark is not its own (a copy: reported in
//!    [`SyncReport::foreign_copies`]), and never another unit's objects. An object from a path
//!    no longer configured is *orphaned* instead: left in the cluster and reported in
//!    [`SyncReport::orphaned`], unless [`SyncConfig::prune_removed_paths`] is set.
//!    Namespaces, CustomResourceDefinitions and PersistentVolumeClaims are kept unless annotated
//!    `fluxcd.io/prune: "true"`, and any object annotated `fluxcd.io/prune: "false"` is kept
//!    (reported in [`SyncReport::kept`]). The [prune guard](SyncConfig::prune_guard) holds the
//!    whole deletion, reported as an error, when it would delete more than its share of the
//!    unit's objects, until [`SyncEngine::allow_prune_once`].
//! 6. **Marker and report.** After a fully successful sync the source's "last synced" marker
//!    moves to the revision; the [`SyncReport`] is returned and sent to every subscriber.
//!
//! # Drift and what a sync costs
//!
//! An unchanged revision against an unchanged cluster costs one `managed` call and **zero
//! writes**: the engine keeps the desired objects of the last usable revision it read (revisions
//! are immutable), so the same head is neither read nor generated again. Drift is detected by the Cluster adapter, not by comparing every
//! object: an object changed by another writer is reported `drifted` and re-applied; an object
//! deleted by someone is missing from `managed` and re-created. Writes per sync are therefore
//! the number of objects that changed in git or drifted, plus those pruned. (The Kubernetes
//! adapter documents how many list requests `managed` costs.)
//!
//! # Marks, copies and Flux v1
//!
//! The mark is Flux v1's: `sha256.` + unpadded URL-safe base64 of SHA-256(set name + the
//! object's id as Flux v1 wrote it, `namespace:kind/name` with the kind lower-cased), where the
//! set name is this unit's identity ([`crate::cluster::gc_mark`]). A copy of an applied object
//! made with `kubectl get -o yaml | sed … | kubectl apply` keeps the labels, so its mark is the
//! original's, which does not match the copy's own id: it is never managed nor pruned. Objects
//! marked by Flux v1 carry the mark of Flux v1's sync set ([`flux_v1_sync_set_name`] of its git
//! URL, branch and paths); listed in [`SyncConfig::legacy_sync_sets`], they are this unit's:
//! re-marked at their next apply (their Flux v1 checksum never matches), collected when they
//! leave git. Cost: Flux v1's objects carry no unit label, so with legacy sets each sync lists
//! every marked object in the cluster (all units' and Flux v1's, metadata only) instead of this
//! unit's; once migrated, drop the legacy sets to go back to the unit-label selection.
//!
//! # Paths
//!
//! `fluxcd.io/sync-path` records which configured path an object came from (the deepest one
//! its origin file is under; every configured path when the origin is outside them all, as for
//! a `.flux.yaml` above the paths). An object that leaves git while one of its recorded paths
//! is no longer configured is orphaned, not deleted, as in Flux v1, whose sync set name held the
//! paths; [`SyncConfig::prune_removed_paths`] deletes them instead. An object moving from one
//! configured path to another is re-applied with its new path, never pruned nor orphaned.
//!
//! # Ignore and restrictions
//!
//! `fluxcd.io/ignore: "true"` on the object in git, or on the live object (whether this unit
//! manages it or not), means it is never applied, taken over nor deleted; `sync_only` means it is applied but never
//! garbage-collected. With [`SyncConfig::allowed_namespaces`] set, objects in other namespaces
//! (and cluster-scoped ones unless allowed) are refused with a per-object reason and never
//! applied nor pruned; [`SyncConfig::denied_kinds`] likewise.
//!
//! # Several units
//!
//! Each engine owns only objects whose mark is made from its identity, so several engines
//! (several repositories or paths) can share a process and a cluster without pruning each
//! other's objects. Each lists only the objects labelled with its own unit (one label-selected,
//! metadata-only list per kind), not every unit's.

mod checksum;
mod config;
mod engine;
mod order;
mod report;

pub use config::{GarbageCollection, PruneGuard, SyncConfig, flux_v1_sync_set_name};
pub use engine::{IGNORE_ANNOTATION, PRUNE_ANNOTATION, SyncEngine, ignore_of, keep_reason};
pub use report::{
    ApplyReason, KeepReason, Kept, Marks, PlannedApply, PruneHold, Refusal, SyncError, SyncPlan, SyncReport,
};

#[cfg(test)]
mod tests;
