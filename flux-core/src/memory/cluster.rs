use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::lock;
use crate::cluster::{
    ApplyOutcome, ApplyResult, CHECKSUM_ANNOTATION, Cluster, DeleteOutcome, DeleteResult, GC_MARK_LABEL, Lookup,
    ManagedObject, ObjectMetadata, ObjectRef, Preview, SYNC_UNIT_LABEL, SyncIdentity, Workload, WriteOptions,
};
use crate::error::{Error, Result};
use crate::kinds::{Scope, api_group, builtin_scope};
use crate::object::KubeObject;
use crate::resource::ResourceId;
use crate::workload::{pod_containers, rollout_status};

/// Objects are keyed by API group and id: two groups may have kinds of the same name.
type Key = (String, ResourceId);

fn key(api_version: &str, id: &ResourceId) -> Key {
    (api_group(api_version).to_owned(), id.clone())
}

struct Stored {
    object: KubeObject,
    drifted: bool,
}

/// Writes persisted by a [`MemoryCluster`], by kind of write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Objects created.
    pub created: u64,
    /// Objects changed.
    pub updated: u64,
    /// Objects deleted.
    pub deleted: u64,
}

impl WriteCounts {
    /// All writes.
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.deleted
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Stored>,
    /// Custom kinds made known by applied CustomResourceDefinitions: (group, kind lower-case).
    custom_kinds: BTreeMap<(String, String), Scope>,
    writes: WriteCounts,
}

impl State {
    fn scope(&self, object: &KubeObject) -> Option<Scope> {
        builtin_scope(object.group(), object.kind()).or_else(|| {
            self.custom_kinds.get(&(object.group().to_owned(), object.kind().to_ascii_lowercase())).copied()
        })
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        matches!(ns, "default" | "kube-system" | "kube-public")
            || self.objects.contains_key(&key("v1", &ResourceId::cluster_scoped("Namespace", ns)))
    }

    /// Why the cluster would refuse `object`, if it would.
    fn refusal(&self, object: &KubeObject) -> Option<String> {
        let Some(scope) = self.scope(object) else {
            return Some(format!("no kind {} is registered for version {}", object.kind(), object.api_version()));
        };
        match (scope, object.namespace()) {
            (Scope::Namespaced, None) => Some("a namespace is required for this kind".into()),
            (Scope::Cluster, Some(_)) => Some("a cluster-scoped object cannot have a namespace".into()),
            (Scope::Namespaced, Some(ns)) if !self.namespace_exists(ns) => Some(format!("namespaces {ns:?} not found")),
            _ => None,
        }
    }

    fn learn_crd(&mut self, object: &KubeObject) {
        if object.group() != "apiextensions.k8s.io" || !object.id().is_kind("CustomResourceDefinition") {
            return;
        }
        let text = |path: &[&str]| object.pointer(path).and_then(Value::as_str).map(str::to_owned);
        if let (Some(group), Some(kind)) = (text(&["spec", "group"]), text(&["spec", "names", "kind"])) {
            let scope =
                if text(&["spec", "scope"]).as_deref() == Some("Cluster") { Scope::Cluster } else { Scope::Namespaced };
            self.custom_kinds.insert((group, kind.to_ascii_lowercase()), scope);
        }
    }

    fn remove(&mut self, key: &Key) -> bool {
        let Some(removed) = self.objects.remove(key) else { return false };
        // Deleting a namespace deletes what is in it, as the namespace controller does.
        if removed.object.id().is_kind("Namespace") && removed.object.group().is_empty() {
            let ns = removed.object.name().to_owned();
            self.objects.retain(|(_, id), _| id.namespace() != Some(ns.as_str()));
        }
        true
    }
}

/// The body an apply compares and stores: everything but `status`, which controllers own.
fn spec_of(object: &KubeObject) -> Map<String, Value> {
    let mut body = object.body().clone();
    body.remove("status");
    body
}

/// A [`Cluster`] kept in memory, with the API server's rules that matter to a sync: kinds must be
/// known (built in, or from a CustomResourceDefinition applied earlier), namespaced objects need
/// an existing namespace, deleting a namespace deletes its contents. `default`, `kube-system` and
/// `kube-public` exist from the start. Clones share the same cluster.
///
/// Applying replaces an object's content except `status` (a real server-side apply merges with
/// other managers' fields). [`MemoryCluster::edit`] and [`MemoryCluster::remove`] act as another
/// writer would, for drift tests; [`MemoryCluster::writes`] counts what was persisted.
#[derive(Clone, Default)]
pub struct MemoryCluster {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCluster").field("objects", &lock(&self.state).objects.len()).finish()
    }
}

impl MemoryCluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes persisted so far through [`Cluster`] (not through `edit`/`remove`).
    pub fn writes(&self) -> WriteCounts {
        lock(&self.state).writes
    }

    /// Every object, sorted by API group and id.
    pub fn objects(&self) -> Vec<KubeObject> {
        lock(&self.state).objects.values().map(|s| s.object.clone()).collect()
    }

    /// Changes an object as another writer would (a hand edit): the object is then drifted.
    pub fn edit(&self, reference: &ObjectRef, change: impl FnOnce(&mut Map<String, Value>)) -> Result<()> {
        let mut state = lock(&self.state);
        let stored = state
            .objects
            .get_mut(&key(&reference.api_version, &reference.id))
            .ok_or_else(|| Error::not_found(format!("object {}", reference.id)))?;
        let mut body = stored.object.body().clone();
        change(&mut body);
        stored.object = KubeObject::from_value(Value::Object(body), stored.object.origin().cloned())?;
        if stored.object.id() != &reference.id {
            return Err(Error::other("an edit may not change an object's identity"));
        }
        stored.drifted = true;
        Ok(())
    }

    /// Sets an object's `status` as its controller would; that is not drift.
    pub fn set_status(&self, reference: &ObjectRef, status: Value) -> Result<()> {
        let mut state = lock(&self.state);
        let stored = state
            .objects
            .get_mut(&key(&reference.api_version, &reference.id))
            .ok_or_else(|| Error::not_found(format!("object {}", reference.id)))?;
        let mut body = stored.object.body().clone();
        body.insert("status".into(), status);
        stored.object = KubeObject::from_value(Value::Object(body), stored.object.origin().cloned())?;
        Ok(())
    }

    /// Marked objects that `select` keeps, as [`Cluster::managed`] reports them, sorted by id.
    fn marked_where(&self, select: impl Fn(&KubeObject) -> bool) -> Vec<ManagedObject> {
        let state = lock(&self.state);
        let mut out: Vec<ManagedObject> = state
            .objects
            .values()
            .filter(|s| s.object.label(GC_MARK_LABEL).is_some() && select(&s.object))
            .map(|s| ManagedObject {
                reference: ObjectRef::of(&s.object),
                checksum: s.object.annotation(CHECKSUM_ANNOTATION).map(str::to_owned),
                drifted: s.drifted,
                annotations: s.object.annotations(),
                labels: s.object.labels(),
            })
            .collect();
        out.sort_by(|a, b| a.reference.id.cmp(&b.reference.id));
        out
    }

    /// Deletes an object as another writer would; returns whether it existed.
    pub fn remove(&self, reference: &ObjectRef) -> bool {
        lock(&self.state).remove(&key(&reference.api_version, &reference.id))
    }
}

#[async_trait]
impl Cluster for MemoryCluster {
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> Result<Vec<ApplyResult>> {
        let mut state = lock(&self.state);
        let mut results = Vec::with_capacity(objects.len());
        for object in objects {
            let outcome = match state.refusal(object) {
                Some(reason) => ApplyOutcome::Failed { reason },
                None => {
                    let k = key(object.api_version(), object.id());
                    let desired = spec_of(object);
                    let outcome = match state.objects.get(&k) {
                        None => ApplyOutcome::Created,
                        Some(s) if spec_of(&s.object) == desired => ApplyOutcome::Unchanged,
                        Some(_) => ApplyOutcome::Configured,
                    };
                    if !options.dry_run {
                        let status = state.objects.get(&k).and_then(|s| s.object.body().get("status").cloned());
                        let mut body = desired;
                        if let Some(status) = status {
                            body.insert("status".into(), status);
                        }
                        let stored = KubeObject::from_value(Value::Object(body), object.origin().cloned())?;
                        match outcome {
                            ApplyOutcome::Created => state.writes.created += 1,
                            ApplyOutcome::Configured => state.writes.updated += 1,
                            _ => {}
                        }
                        state.learn_crd(&stored);
                        state.objects.insert(k, Stored { object: stored, drifted: false });
                    }
                    outcome
                }
            };
            results.push(ApplyResult { id: object.id().clone(), outcome });
        }
        Ok(results)
    }

    async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        Ok(self.marked_where(|o| o.label(SYNC_UNIT_LABEL) == Some(identity.as_str())))
    }

    async fn marked(&self) -> Result<Vec<ManagedObject>> {
        Ok(self.marked_where(|_| true))
    }

    async fn legacy_marked(&self, _identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        Ok(self.marked_where(|o| o.label(SYNC_UNIT_LABEL).is_none()))
    }

    async fn metadata(&self, references: &[ObjectRef]) -> Result<Vec<Lookup>> {
        let state = lock(&self.state);
        Ok(references
            .iter()
            .map(|r| match state.objects.get(&key(&r.api_version, &r.id)) {
                None => Lookup::Absent,
                Some(s) => {
                    Lookup::Found(ObjectMetadata { labels: s.object.labels(), annotations: s.object.annotations() })
                }
            })
            .collect())
    }

    async fn get(&self, reference: &ObjectRef) -> Result<Option<KubeObject>> {
        let state = lock(&self.state);
        Ok(state.objects.get(&key(&reference.api_version, &reference.id)).map(|s| s.object.clone()))
    }

    async fn preview_apply(&self, object: &KubeObject) -> Result<Preview> {
        let state = lock(&self.state);
        if let Some(reason) = state.refusal(object) {
            return Ok(Preview::Refused { reason });
        }
        // What `apply` stores: the object but its status, which the stored copy keeps.
        let mut body = spec_of(object);
        let stored = state.objects.get(&key(object.api_version(), object.id()));
        if let Some(status) = stored.and_then(|s| s.object.body().get("status").cloned()) {
            body.insert("status".into(), status);
        }
        KubeObject::from_value(Value::Object(body), object.origin().cloned()).map(Preview::Object)
    }

    async fn delete(&self, objects: &[ObjectRef], options: WriteOptions) -> Result<Vec<DeleteResult>> {
        let mut state = lock(&self.state);
        let mut results = Vec::with_capacity(objects.len());
        for reference in objects {
            let k = key(&reference.api_version, &reference.id);
            let outcome = if !state.objects.contains_key(&k) {
                DeleteOutcome::Absent
            } else {
                if !options.dry_run {
                    state.remove(&k);
                    state.writes.deleted += 1;
                }
                DeleteOutcome::Deleted
            };
            results.push(DeleteResult { id: reference.id.clone(), outcome });
        }
        Ok(results)
    }

    async fn workloads<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<Workload>> {
        let state = lock(&self.state);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for stored in state.objects.values() {
            let object = &stored.object;
            if namespace.is_some_and(|ns| object.namespace() != Some(ns)) || !seen.insert(object.id().clone()) {
                continue;
            }
            if let Some(containers) = pod_containers(object) {
                out.push(Workload {
                    id: object.id().clone(),
                    containers,
                    status: rollout_status(object),
                    annotations: object.annotations(),
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
