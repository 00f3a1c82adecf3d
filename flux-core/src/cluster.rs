//! The `Cluster` port: where objects run.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Location, Result};
use crate::object::KubeObject;
use crate::resource::ResourceId;

/// The label that marks an object as applied by one sync identity; its value is the identity.
pub const GC_MARK_LABEL: &str = "fluxcd.io/sync-gc-mark";
/// The annotation that records the checksum of the desired manifest an object was applied from.
pub const CHECKSUM_ANNOTATION: &str = "fluxcd.io/sync-checksum";

/// The name under which one sync unit owns objects: the value of [`GC_MARK_LABEL`].
///
/// A valid Kubernetes label value: 1 to 63 characters, alphanumerics, `-`, `_`, `.`, starting
/// and ending with an alphanumeric.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SyncIdentity(String);

impl SyncIdentity {
    /// Checks `id` is a valid label value.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let b = id.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if ok {
            Ok(SyncIdentity(id))
        } else {
            Err(Error::invalid(
                Location::file(id),
                "a sync identity must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
            ))
        }
    }

    /// The identity.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SyncIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SyncIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SyncIdentity({})", self.0)
    }
}

impl TryFrom<String> for SyncIdentity {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        SyncIdentity::new(s)
    }
}

impl From<SyncIdentity> for String {
    fn from(s: SyncIdentity) -> String {
        s.0
    }
}

/// Enough to find one object in a cluster: its id and `apiVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `namespace:kind/name`.
    pub id: ResourceId,
}

impl ObjectRef {
    /// The reference of an object.
    pub fn of(object: &KubeObject) -> Self {
        ObjectRef { api_version: object.api_version().to_owned(), id: object.id().clone() }
    }
}

/// Options of [`Cluster::apply`] and [`Cluster::delete`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Validate and report, persist nothing.
    pub dry_run: bool,
}

/// What applying one object did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// The object did not exist and was created.
    Created,
    /// The object existed and was changed.
    Configured,
    /// The object already matched.
    Unchanged,
    /// The object was refused; the others were still applied.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
}

/// What applying one object did, by object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplyResult {
    /// The object.
    pub id: ResourceId,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ApplyOutcome,
}

/// What deleting one object did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeleteOutcome {
    /// The object was deleted (or deletion was started).
    Deleted,
    /// The object was already gone.
    Absent,
    /// The object could not be deleted.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
}

/// What deleting one object did, by object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteResult {
    /// The object.
    pub id: ResourceId,
    /// What happened.
    #[serde(flatten)]
    pub outcome: DeleteOutcome,
}

/// An object in the cluster carrying a sync identity's [`GC_MARK_LABEL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedObject {
    /// Where it is.
    pub reference: ObjectRef,
    /// The value of its [`CHECKSUM_ANNOTATION`], if any.
    pub checksum: Option<String>,
    /// Whether a writer other than this cluster handle's own applies has changed the object since
    /// it was last applied through [`Cluster::apply`] (a hand edit, another controller writing a
    /// field we own). Status updates do not count.
    pub drifted: bool,
    /// Its annotations (for `fluxcd.io/ignore` and friends).
    pub annotations: BTreeMap<String, String>,
}

/// One container of a workload, as running in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Container {
    /// The container's name.
    pub name: String,
    /// The image as the object spells it (not necessarily a valid reference).
    pub image: String,
    /// Whether it is an init container.
    #[serde(default)]
    pub init: bool,
}

/// How a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The object has no status to judge by (nothing reconciles it, or it has none).
    Unknown,
}

/// A workload running in the cluster: a Deployment, DaemonSet, StatefulSet, CronJob, Job, Pod or
/// HelmRelease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    /// Its id.
    pub id: ResourceId,
    /// Its containers, init containers included, in spec order.
    pub containers: Vec<Container>,
    /// How its rollout stands.
    pub status: WorkloadStatus,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A Kubernetes cluster, seen from the sync engine.
///
/// # Contract
///
/// Every implementation guarantees:
///
/// - [`Cluster::apply`] creates or updates each object so that the fields it sets match, and
///   reports one [`ApplyResult`] per object, in input order: `Created`, `Configured` (something
///   changed), `Unchanged` (nothing did, and nothing was written), or `Failed` with the cluster's
///   reason. One object failing never stops the others; an `Err` is only for failures of the whole
///   call (connection lost, credentials refused). Objects are applied in the order given, so the
///   caller controls ordering; a kind that becomes known through a CustomResourceDefinition
///   applied earlier in the same or a previous call must be usable (implementations refresh their
///   view of the API). Applying is idempotent: applying the same objects twice gives `Unchanged`
///   the second time. An object in a namespace that does not exist, or of a kind the cluster does
///   not know, is `Failed`.
/// - With [`WriteOptions::dry_run`], `apply` and `delete` report what they would do and persist
///   nothing.
/// - [`Cluster::managed`] lists every object the handle may see whose [`GC_MARK_LABEL`] is the
///   given identity, and none other, sorted by id. It reports each object's recorded checksum and
///   whether it [drifted](ManagedObject::drifted). Any apply of the object that is not a dry run
///   and does not fail clears the drift flag. Objects deleted by someone else simply no longer appear.
/// - [`Cluster::get`] returns one object as it is in the cluster, or `None`.
/// - [`Cluster::delete`] deletes each object, reporting `Deleted`, `Absent` (already gone; not an
///   error) or `Failed`, one per object in input order. Deleted objects no longer appear in
///   `managed` or `get` (dependents may be collected in the background).
/// - [`Cluster::workloads`] lists workloads, in one namespace or all, sorted by id, with
///   containers in spec order (init containers first).
/// - Handles are safe to use from several tasks at once.
///
/// `flux_core::testkit::cluster` checks all of this against any implementation.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Creates or updates `objects`, in order.
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> Result<Vec<ApplyResult>>;

    /// Objects marked with `identity`.
    async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>>;

    /// One object as it is in the cluster.
    async fn get(&self, reference: &ObjectRef) -> Result<Option<KubeObject>>;

    /// Deletes `objects`, in order.
    async fn delete(&self, objects: &[ObjectRef], options: WriteOptions) -> Result<Vec<DeleteResult>>;

    /// Workloads in `namespace`, or in every namespace the handle may see.
    async fn workloads<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<Workload>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_identity_is_a_label_value() {
        assert!(SyncIdentity::new("prod-cluster.main_1").is_ok());
        for bad in ["", "-a", "a-", "a/b", &"x".repeat(64)] {
            assert!(SyncIdentity::new(bad).is_err(), "{bad}");
        }
    }
}
