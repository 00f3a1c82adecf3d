//! What one sync unit is: its identity, paths, garbage collection and restrictions.

use std::collections::BTreeSet;

use crate::cluster::SyncIdentity;
use crate::object::KubeObject;

/// What happens to objects this identity applied that are no longer in git.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarbageCollection {
    /// Left alone (Flux v1's default).
    #[default]
    Off,
    /// Reported as what would be deleted, not deleted.
    DryRun,
    /// Deleted.
    On,
}

/// One sync unit: a set of paths in a source, applied under one identity.
///
/// Several units can run side by side in one process (for several repositories, or several
/// paths of one) as long as their identities differ: each unit only ever prunes objects carrying
/// its own identity.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The identity marked on every object applied (`fluxcd.io/sync-gc-mark`).
    pub identity: SyncIdentity,
    /// The paths in the source whose manifests are the desired state (empty: the root).
    pub paths: Vec<String>,
    /// Garbage collection of objects that left git.
    pub garbage_collection: GarbageCollection,
    /// Apply what could be read from an unusable revision (one with errors). Nothing is ever
    /// pruned on the basis of an unusable revision, whatever this says. Default: off.
    pub apply_unusable: bool,
    /// Let a revision with no objects at all prune everything this identity applied. Without
    /// it, an empty result where objects are managed makes the revision unusable: an empty
    /// result is far more often a broken generator or a wrong path than intent.
    pub allow_empty: bool,
    /// How many apply calls run at once within a stage.
    pub concurrency: usize,
    /// When set, only objects in these namespaces are applied or pruned; others are refused.
    pub allowed_namespaces: Option<BTreeSet<String>>,
    /// With `allowed_namespaces` set, whether cluster-scoped objects are still allowed.
    pub allow_cluster_scoped: bool,
    /// Kinds never applied nor pruned: `Kind` (any group) or `group/Kind`, case-insensitive.
    pub denied_kinds: Vec<String>,
    /// Move the source's "last synced" marker after a successful sync (off for read-only sources).
    pub move_marker: bool,
}

impl SyncConfig {
    /// A unit for `paths` under `identity`: no garbage collection, 8 concurrent applies, no
    /// restrictions, marker moved.
    pub fn new(identity: SyncIdentity, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        SyncConfig {
            identity,
            paths: paths.into_iter().map(Into::into).collect(),
            garbage_collection: GarbageCollection::Off,
            apply_unusable: false,
            allow_empty: false,
            concurrency: 8,
            allowed_namespaces: None,
            allow_cluster_scoped: false,
            denied_kinds: Vec::new(),
            move_marker: true,
        }
    }

    /// Why this unit may not touch `object`, if it may not.
    pub(crate) fn refusal(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Option<String> {
        let group = crate::kinds::api_group(api_version);
        let denied = self.denied_kinds.iter().any(|d| match d.split_once('/') {
            Some((g, k)) => g.eq_ignore_ascii_case(group) && k.eq_ignore_ascii_case(kind),
            None => d.eq_ignore_ascii_case(kind),
        });
        if denied {
            return Some(format!("kind {kind} is excluded from syncing"));
        }
        let allowed = self.allowed_namespaces.as_ref()?;
        match namespace {
            Some(ns) if !allowed.contains(ns) => Some(format!("namespace {ns} is not in the allowed namespaces")),
            None if !self.allow_cluster_scoped => {
                Some("cluster-scoped objects are not allowed when namespaces are restricted".to_owned())
            }
            _ => None,
        }
    }

    pub(crate) fn refuses(&self, object: &KubeObject) -> Option<String> {
        self.refusal(object.api_version(), object.kind(), object.namespace())
    }
}
