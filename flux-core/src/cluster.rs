//! The `Cluster` port: where objects run.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Location, Result};
use crate::object::KubeObject;
use crate::resource::ResourceId;

/// The label that proves an object was applied by one sync unit: its value is
/// [`gc_mark`]`(unit, object id)`, Flux v1's mark, so a copy of the object under another name or
/// namespace carries a mark that does not match its own id.
pub const GC_MARK_LABEL: &str = "fluxcd.io/sync-gc-mark";
/// The label naming the sync unit that applied an object (its [`SyncIdentity`]): how
/// [`Cluster::managed`] selects one unit's objects cheaply. It proves nothing (a copy carries it
/// too); [`GC_MARK_LABEL`] does.
pub const SYNC_UNIT_LABEL: &str = "fluxcd.io/sync-unit";
/// The annotation that records the checksum of the desired manifest an object was applied from.
pub const CHECKSUM_ANNOTATION: &str = "fluxcd.io/sync-checksum";
/// The annotation that records which of the unit's configured paths an object came from
/// (normalised, `.` for the root; several, comma-separated, when the origin could not tell).
pub const SYNC_PATH_ANNOTATION: &str = "fluxcd.io/sync-path";

/// Flux v1's GC mark of the object `id` applied by the sync set `sync_set`:
/// `sha256.` followed by the unpadded URL-safe base64 of SHA-256(`sync_set` + the id in Flux v1's
/// form, see [`flux_v1_id`]). 50 characters: a valid label value.
pub fn gc_mark(sync_set: &str, id: &ResourceId) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(sync_set.as_bytes());
    hasher.update(flux_v1_id(id).as_bytes());
    format!("sha256.{}", base64_url_nopad(&hasher.finalize()))
}

/// An id as Flux v1 wrote it: `namespace:kind/name` with the kind lower-cased, `<cluster>` for
/// cluster-scoped objects.
pub fn flux_v1_id(id: &ResourceId) -> String {
    let namespace = id.namespace().unwrap_or(crate::resource::CLUSTER_SCOPE);
    format!("{namespace}:{}/{}", id.kind().to_ascii_lowercase(), id.name())
}

/// Unpadded base64 with the URL-safe alphabet (RFC 4648 §5), as Go's `base64.RawURLEncoding`.
pub(crate) fn base64_url_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The name under which one sync unit owns objects: the value of [`SYNC_UNIT_LABEL`] and the set
/// name its [`gc_mark`]s are made from.
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
    /// The cluster refused this object (invalid, forbidden, rejected by admission or quota...);
    /// the others were still applied. Nothing of it was written; the sync engine retries it next
    /// sync.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
    /// The call failed as a whole (connection lost, credentials refused, rate limited) before
    /// this object's outcome was known: it was most likely not applied. The cluster cannot be
    /// trusted to be reachable; the sync engine prunes nothing in that sync.
    Interrupted {
        /// What ended the call.
        reason: String,
    },
}

impl ApplyOutcome {
    /// Whether the object was not applied (`Failed` or `Interrupted`).
    pub fn is_failure(&self) -> bool {
        matches!(self, ApplyOutcome::Failed { .. } | ApplyOutcome::Interrupted { .. })
    }
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

/// An object in the cluster carrying a [`GC_MARK_LABEL`], as [`Cluster::managed`] and
/// [`Cluster::marked`] list it. Whose it is, the sync engine decides from its mark.
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
    /// Its labels ([`GC_MARK_LABEL`], [`SYNC_UNIT_LABEL`] and the others).
    pub labels: BTreeMap<String, String>,
}

impl ManagedObject {
    /// The value of its [`GC_MARK_LABEL`].
    pub fn mark(&self) -> Option<&str> {
        self.labels.get(GC_MARK_LABEL).map(String::as_str)
    }
}

/// The metadata of one live object that [`Cluster::metadata`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMetadata {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// What [`Cluster::metadata`] found for one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No such object (or the cluster serves no such kind).
    Absent,
    /// The object exists, with this metadata.
    Found(ObjectMetadata),
    /// The cluster would not say (forbidden, refused): whether it exists is unknown.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
}

/// What [`Cluster::preview_apply`] says an apply would make of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    /// The object as the cluster would store it after the apply: defaults filled in, mutating
    /// admission run, the fields of other writers kept.
    Object(KubeObject),
    /// The cluster would refuse the object (invalid, forbidden, its namespace or kind unknown).
    Refused {
        /// Why, as the cluster said it.
        reason: String,
    },
}

/// What [`Cluster::live`] found for one reference.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveObject {
    /// No such object (or the cluster serves no such kind).
    Absent,
    /// The object as the cluster has it, `status` included (a Secret without its data).
    Found(KubeObject),
    /// The cluster would not say (forbidden, refused): whether it exists is unknown.
    Failed {
        /// Why, as the cluster said it.
        reason: String,
    },
}

/// `object` with what a live read never hands out removed: a Secret's `data` and `stringData`.
pub fn without_secret_data(mut object: KubeObject) -> KubeObject {
    if object.group().is_empty() && object.kind() == "Secret" {
        let mut body = object.body().clone();
        body.remove("data");
        body.remove("stringData");
        if let Ok(stripped) = KubeObject::from_value(serde_json::Value::Object(body), object.origin().cloned()) {
            object = stripped;
        }
    }
    object
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
///   reason when the cluster refused that object. Results are per object and true: one object
///   failing never stops the others nor changes what is reported for them. A failure of the whole
///   call (connection lost, credentials refused, rate limited) partway still returns `Ok`: objects
///   already applied with what happened to them, the others `Interrupted` with what ended the
///   call. An `Err` means no object was written. Objects are applied in the order given, so the
///   caller controls ordering; a kind that becomes known through a CustomResourceDefinition
///   applied earlier in the same or a previous call must be usable (implementations refresh their
///   view of the API). Applying is idempotent: applying the same objects twice gives `Unchanged`
///   the second time. An object in a namespace that does not exist, or of a kind the cluster does
///   not know, is `Failed`.
/// - With [`WriteOptions::dry_run`], `apply` and `delete` report what they would do and persist
///   nothing.
/// - [`Cluster::managed`] lists every object the handle may see whose [`SYNC_UNIT_LABEL`] is the
///   given identity and which carries a [`GC_MARK_LABEL`], and none other, sorted by id. It
///   reports each object's recorded checksum, labels, annotations and whether it
///   [drifted](ManagedObject::drifted). Any apply of the object that is not a dry run and does not
///   fail clears the drift flag. Objects deleted by someone else simply no longer appear. It reads
///   metadata only, and writes nothing.
///
///   It finds every such object applied through [`Cluster::apply`], by this handle or any other
///   on the same cluster, before or after a restart, including objects of kinds the unit no
///   longer applies (a kind that left git is found until none of its objects remains, so
///   garbage collection can remove them). An implementation may get there by keeping, with the
///   cluster, an inventory of the kinds each unit applied, written by `apply` before it applies
///   an object of a kind not yet recorded (an object whose kind cannot be recorded is then
///   `Failed`) and created only from a listing of every kind; so an object given the unit's
///   labels by other means than `apply` (a hand-made copy) may be listed only if the unit
///   applied its kind.
/// - [`Cluster::marked`] is the same for every object carrying a [`GC_MARK_LABEL`], whatever its
///   value and unit (objects marked by Flux v1 carry no unit label).
/// - [`Cluster::legacy_marked`] is the same for the objects carrying a [`GC_MARK_LABEL`] and no
///   [`SYNC_UNIT_LABEL`] (Flux v1's), for the unit `identity` migrating from Flux v1. An
///   implementation may record, with the cluster and for that unit, that a call saw every kind
///   and found none, and from then on answer empty without listing: nothing of flux-rs makes
///   such objects (every apply for a unit carries its label), so once none remain, only a Flux
///   v1 daemon run again on the cluster would make more. Such a record is its only write.
/// - [`Cluster::metadata`] reports, for each reference in input order, whether the object exists
///   and its labels and annotations ([`Lookup`]); a reference the cluster would not answer for is
///   `Failed`, never `Absent`. It reads metadata only (no secret data), with a bounded number of
///   requests per kind and namespace rather than one sequential request per object.
/// - [`Cluster::get`] returns one object as it is in the cluster, or `None`.
/// - [`Cluster::preview_apply`] returns what [`Cluster::apply`] of `object` would store
///   ([`Preview::Object`]: for Kubernetes, the answer of a server-side apply with
///   `dryRun=All`, so defaults, mutating webhooks and other managers' fields are accounted
///   for), or [`Preview::Refused`] with the reason the apply would be `Failed`; it persists
///   nothing, records nothing (no inventory write, no drift bookkeeping), and an `Err` is for a
///   failure of the whole call. The default answers an error: the cluster cannot preview.
/// - [`Cluster::live`] reports, for each reference in input order, the object as it is in the
///   cluster with its `status` and `metadata` (`generation`, `deletionTimestamp`), so that its
///   health can be judged ([`crate::health`]): [`LiveObject::Found`], `Absent`, or `Failed`
///   with the cluster's reason when it would not answer for that reference (never `Absent`
///   then). A Secret is reported without `data` and `stringData`. It reads only, with a bounded
///   number of requests (the default: one [`Cluster::get`] each, 8 at a time); an `Err` is
///   for a failure of the whole call.
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

    /// Marked objects labelled with the unit `identity`.
    async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>>;

    /// Every marked object, whichever unit (or Flux v1) marked it.
    async fn marked(&self) -> Result<Vec<ManagedObject>>;

    /// Marked objects without a unit label (Flux v1's), as the unit `identity` migrating from
    /// Flux v1 needs them. By default, [`Cluster::marked`]'s without a [`SYNC_UNIT_LABEL`].
    async fn legacy_marked(&self, _identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        Ok(self.marked().await?.into_iter().filter(|m| !m.labels.contains_key(SYNC_UNIT_LABEL)).collect())
    }

    /// Whether each object exists, and its labels and annotations, in input order.
    async fn metadata(&self, references: &[ObjectRef]) -> Result<Vec<Lookup>>;

    /// One object as it is in the cluster.
    async fn get(&self, reference: &ObjectRef) -> Result<Option<KubeObject>>;

    /// What applying `object` would store, persisting nothing (a server-side dry run).
    async fn preview_apply(&self, object: &KubeObject) -> Result<Preview> {
        Err(Error::other(format!("this cluster cannot preview the apply of {}", object.id())))
    }

    /// The objects as they are in the cluster, `status` included, in input order (for their
    /// health). By default, one [`Cluster::get`] each, 8 at a time; an error of one is that
    /// reference's `Failed`.
    async fn live(&self, references: &[ObjectRef]) -> Result<Vec<LiveObject>> {
        let mut out = Vec::with_capacity(references.len());
        for chunk in references.chunks(8) {
            let reads: Vec<_> = chunk.iter().map(|r| self.get(r)).collect();
            out.extend(futures::future::join_all(reads).await.into_iter().map(|read| match read {
                Ok(Some(object)) => LiveObject::Found(without_secret_data(object)),
                Ok(None) => LiveObject::Absent,
                Err(e) => LiveObject::Failed { reason: e.to_string() },
            }));
        }
        Ok(out)
    }

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

    #[test]
    fn base64_matches_go_raw_url_encoding() {
        // Go: base64.RawURLEncoding.EncodeToString
        let cases: [(&[u8], &str); 6] =
            [(b"", ""), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v"), (b"foob", "Zm9vYg"), (b"\xfb\xff", "-_8")];
        for (input, expected) in cases {
            assert_eq!(base64_url_nopad(input), expected);
        }
    }

    #[test]
    fn gc_mark_is_flux_v1s() {
        let id: ResourceId = "apps:Deployment/web".parse().expect("valid id");
        assert_eq!(flux_v1_id(&id), "apps:deployment/web");
        let ns = ResourceId::cluster_scoped("Namespace", "apps");
        assert_eq!(flux_v1_id(&ns), "<cluster>:namespace/apps");
        let mark = gc_mark("set", &id);
        // Computed independently: "sha256." + urlsafe_b64encode(sha256(b"setapps:deployment/web")) without "=".
        assert_eq!(mark, "sha256.9IQlaCKiAdi4KXNS3H35zDUoTbHYIbAGPlobZuXvci0");
        assert_eq!(mark.len(), 50);
        assert!(SyncIdentity::new(mark.clone()).is_ok(), "a mark is a valid label value: {mark}");
        assert_ne!(gc_mark("set", &"apps:Deployment/web-copy".parse().expect("valid id")), mark);
    }
}
