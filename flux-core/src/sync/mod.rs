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
//!    carrying this unit's identity, with the checksum recorded on each when it was applied and
//!    whether someone else changed it since (drift).
//! 3. **Plan.** Each desired object gets the identity label (`fluxcd.io/sync-gc-mark`) and the
//!    SHA-256 of its canonical desired manifest (`fluxcd.io/sync-checksum`). It is applied if the
//!    cluster does not have it under this identity, if the recorded checksum differs, or if the
//!    cluster reports it drifted; otherwise nothing is sent for it.
//! 4. **Apply**, in stages: namespaces, CRDs, service accounts, cluster then namespaced RBAC,
//!    `*Class` kinds, volumes and claims, config maps and secrets, services, workloads,
//!    everything else, admission webhooks last. Within a stage up to
//!    [`SyncConfig::concurrency`] apply calls run at once. One object failing does not stop
//!    the others.
//! 5. **Garbage collection** (when on, or dry): managed objects absent from the revision are
//!    deleted in the reverse stage order — never when the revision is unusable, never when an
//!    apply call failed as a whole, never objects of a kind whose apply failed in this sync,
//!    never objects annotated `fluxcd.io/ignore` (`true` or `sync_only`), never outside the
//!    unit's restrictions, and never another identity's objects (they are not listed).
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
//! # Ignore and restrictions
//!
//! `fluxcd.io/ignore: "true"` on the object in git, or on the live object this unit manages,
//! means it is never applied nor deleted; `sync_only` means it is applied but never
//! garbage-collected. With [`SyncConfig::allowed_namespaces`] set, objects in other namespaces
//! (and cluster-scoped ones unless allowed) are refused with a per-object reason and never
//! applied nor pruned; [`SyncConfig::denied_kinds`] likewise.
//!
//! # Several units
//!
//! Each engine owns only objects carrying its identity, so several engines (several
//! repositories or paths) can share a process and a cluster without pruning each other's objects.

mod checksum;
mod config;
mod engine;
mod order;
mod report;

pub use config::{GarbageCollection, SyncConfig};
pub use engine::{IGNORE_ANNOTATION, SyncEngine, ignore_of};
pub use report::{ApplyReason, PlannedApply, Refusal, SyncError, SyncPlan, SyncReport};

#[cfg(test)]
mod tests;
