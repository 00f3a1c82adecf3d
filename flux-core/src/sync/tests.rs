//! The sync engine against the in-memory Source and Cluster, and mocks where a failure must be
//! injected.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::*;
use crate::cluster::{
    ApplyOutcome, ApplyResult, Cluster, DeleteOutcome, GC_MARK_LABEL, ObjectRef, SyncIdentity, WriteOptions,
};
use crate::generate::ManifestGenerator;
use crate::memory::{MemoryCluster, MemorySource};
use crate::source::{Author, CommitRequest, FileChange, Revision, Source};
use crate::{Error, KubeObject, MockCluster, ResourceId};

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn cm(ns: &str, name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"v": data}})
}

fn deploy(ns: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
}

/// A file's text: an array becomes a multi-document YAML stream (JSON is YAML).
fn render(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(|i| format!("---\n{i}\n")).collect(),
        other => other.to_string(),
    }
}

fn with_annotation(mut v: Value, key: &str, value: &str) -> Value {
    v["metadata"]["annotations"] = json!({key: value});
    v
}

struct Fixture {
    source: MemorySource,
    cluster: MemoryCluster,
}

impl Fixture {
    fn new(files: &[(&str, Value)]) -> Self {
        let source = MemorySource::with_files(files.iter().map(|(p, v)| (p.to_string(), render(v)))).unwrap();
        Fixture { source, cluster: MemoryCluster::new() }
    }

    fn engine(&self, config: SyncConfig) -> SyncEngine {
        SyncEngine::new(
            Arc::new(self.source.clone()),
            Arc::new(self.cluster.clone()),
            Arc::new(ManifestGenerator::default()),
            config,
        )
    }

    async fn commit(&self, changes: Vec<FileChange>) -> Revision {
        let base = self.source.refresh().await.unwrap();
        let request = CommitRequest { base, changes, author: Author::default(), message: "change".into() };
        self.source.commit(&request).await.unwrap()
    }

    fn names(&self) -> Vec<String> {
        self.cluster.objects().iter().map(|o| o.id().to_string()).collect()
    }
}

fn config(identity: &str, gc: GarbageCollection) -> SyncConfig {
    let mut c = SyncConfig::new(SyncIdentity::new(identity).unwrap(), ["deploy"]);
    c.garbage_collection = gc;
    c
}

fn write(path: &str, v: &Value) -> FileChange {
    FileChange::write(path, render(v))
}

fn outcomes(report: &SyncReport) -> Vec<(String, ApplyOutcome)> {
    report.applied.iter().map(|r| (r.id.to_string(), r.outcome.clone())).collect()
}

fn standard() -> Fixture {
    Fixture::new(&[
        // Files sort so that the namespace's file comes last: ordering is the engine's job.
        ("deploy/app.json", json!([cm("team", "settings", "1"), deploy("team", "web", "nginx:1")])),
        (
            "deploy/crd.json",
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"}}}),
        ),
        (
            "deploy/widget.json",
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "team"}}),
        ),
        ("deploy/zz-namespace.json", ns("team")),
        ("elsewhere/other.json", cm("team", "not-synced", "x")),
    ])
}

#[tokio::test]
async fn first_sync_applies_in_dependency_order() {
    let f = standard();
    let report = f.engine(config("prod", GarbageCollection::On)).sync_head().await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors);
    let ids: Vec<String> = report.applied.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "<cluster>:namespace/team",
            "<cluster>:customresourcedefinition/widgets.example.com",
            "team:configmap/settings",
            "team:deployment/web",
            "team:widget/w"
        ]
    );
    assert!(report.applied.iter().all(|r| r.outcome == ApplyOutcome::Created));
    assert!(!f.names().contains(&"team:configmap/not-synced".to_string()), "only the unit's paths are synced");
    let applied = f.cluster.objects();
    assert!(
        applied.iter().all(|o| o.label(GC_MARK_LABEL) == Some(crate::cluster::gc_mark("prod", o.id()).as_str())
            && o.label(crate::cluster::SYNC_UNIT_LABEL) == Some("prod")),
        "every object carries its own mark and the unit"
    );
    assert!(applied.iter().all(|o| o.annotation(crate::cluster::CHECKSUM_ANNOTATION).is_some_and(|c| c.len() == 64)));
    assert!(report.marker_moved);
    assert_eq!(f.source.sync_marker().await.unwrap(), Some(report.revision.clone()));
}

#[tokio::test]
async fn an_unchanged_revision_writes_nothing() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    engine.sync_head().await.unwrap();
    let before = f.cluster.writes();
    let report = engine.sync_head().await.unwrap();
    assert_eq!(f.cluster.writes(), before, "a no-op sync must not write");
    assert!(report.applied.is_empty() && report.pruned.is_empty());
    assert_eq!(report.unchanged, 5);
    assert!(report.is_success());
}

#[tokio::test]
async fn only_changed_objects_are_applied() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    engine.sync_head().await.unwrap();
    let rev = f
        .commit(vec![write("deploy/app.json", &json!([cm("team", "settings", "2"), deploy("team", "web", "nginx:1")]))])
        .await;
    let before = f.cluster.writes();
    let report = engine.sync(&rev).await;
    assert_eq!(outcomes(&report), [("team:configmap/settings".to_string(), ApplyOutcome::Configured)]);
    assert_eq!(f.cluster.writes().updated, before.updated + 1);
    assert_eq!(f.cluster.writes().total(), before.total() + 1);
}

#[tokio::test]
async fn drift_is_put_back_and_deleted_objects_recreated() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    engine.sync_head().await.unwrap();
    let settings = ObjectRef { api_version: "v1".into(), id: "team:configmap/settings".parse().unwrap() };
    let web = ObjectRef { api_version: "apps/v1".into(), id: "team:deployment/web".parse().unwrap() };
    f.cluster.edit(&settings, |body| body["data"] = json!({"v": "edited by hand"})).unwrap();
    assert!(f.cluster.remove(&web));

    let report = engine.sync_head().await.unwrap();
    let mut got = outcomes(&report);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("team:configmap/settings".to_string(), ApplyOutcome::Configured),
            ("team:deployment/web".to_string(), ApplyOutcome::Created)
        ]
    );
    let live = f.cluster.get(&settings).await.unwrap().unwrap();
    assert_eq!(live.pointer(&["data", "v"]), Some(&json!("1")), "the hand edit is reverted");
    let before = f.cluster.writes();
    engine.sync_head().await.unwrap();
    assert_eq!(f.cluster.writes(), before, "once put back, nothing more is written");
}

#[tokio::test]
async fn garbage_collection_on_dry_and_off() {
    for gc in [GarbageCollection::On, GarbageCollection::DryRun, GarbageCollection::Off] {
        let f = standard();
        let engine = f.engine(config("prod", gc));
        engine.sync_head().await.unwrap();
        let rev = f.commit(vec![FileChange::delete("deploy/widget.json")]).await;
        let report = engine.sync(&rev).await;
        let still_there = f.names().contains(&"team:widget/w".to_string());
        match gc {
            GarbageCollection::On => {
                assert!(!still_there, "GC on deletes what left git");
                assert_eq!(report.pruned.len(), 1);
                assert_eq!(report.pruned[0].outcome, DeleteOutcome::Deleted);
            }
            GarbageCollection::DryRun => {
                assert!(still_there, "GC dry-run deletes nothing");
                assert_eq!(report.pruned.iter().map(|p| p.id.to_string()).collect::<Vec<_>>(), ["team:widget/w"]);
            }
            GarbageCollection::Off => {
                assert!(still_there);
                assert!(report.pruned.is_empty());
            }
        }
        assert!(report.is_success());
    }
}

#[tokio::test]
async fn pruning_runs_in_reverse_order() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::DryRun));
    // A Namespace is pruned only when annotated for it.
    f.commit(vec![write("deploy/zz-namespace.json", &with_annotation(ns("team"), PRUNE_ANNOTATION, "true"))]).await;
    engine.sync_head().await.unwrap();
    let rev =
        f.commit(vec![write("deploy/app.json", &json!([])), FileChange::delete("deploy/zz-namespace.json")]).await;
    let plan = engine.plan(&rev).await;
    let order: Vec<String> = plan.prune.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(order, ["team:deployment/web", "team:configmap/settings", "<cluster>:namespace/team"]);
}

#[tokio::test]
async fn a_parse_error_makes_the_revision_unusable_and_deletes_nothing() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    let good = engine.sync_head().await.unwrap().revision;
    let rev = f
        .commit(vec![
            FileChange::write("deploy/broken.json", "{\"apiVersion\": \"v1\",\n  oops"),
            FileChange::delete("deploy/widget.json"),
            write("deploy/new.json", &cm("team", "new", "1")),
        ])
        .await;
    let report = engine.sync(&rev).await;
    assert!(!report.usable && !report.is_success());
    assert!(
        report.errors.iter().any(|e| e.message().starts_with("deploy/broken.json:1: invalid YAML")),
        "{:?}",
        report.errors
    );
    assert!(report.pruned.is_empty() && report.applied.is_empty(), "nothing pruned, nothing applied by default");
    assert!(f.names().contains(&"team:widget/w".to_string()));
    assert_eq!(f.source.sync_marker().await.unwrap(), Some(good), "the marker stays at the last good revision");

    let mut opted_in = config("prod", GarbageCollection::On);
    opted_in.apply_unusable = true;
    let report = f.engine(opted_in).sync(&rev).await;
    assert_eq!(
        outcomes(&report),
        [("team:configmap/new".to_string(), ApplyOutcome::Created)],
        "opt-in applies what parsed"
    );
    assert!(report.pruned.is_empty() && f.names().contains(&"team:widget/w".to_string()), "and still prunes nothing");
}

#[tokio::test]
async fn a_missing_path_or_an_empty_revision_prunes_nothing() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    engine.sync_head().await.unwrap();
    let count = f.names().len();

    let emptied = f
        .commit(
            ["deploy/app.json", "deploy/crd.json", "deploy/widget.json", "deploy/zz-namespace.json"]
                .map(FileChange::delete)
                .into(),
        )
        .await;
    let report = engine.sync(&emptied).await;
    assert!(!report.usable, "a vanished path is unusable, not empty");
    assert!(report.errors[0].message().contains("deploy"), "{:?}", report.errors);
    assert_eq!(f.names().len(), count);

    let blank = f.commit(vec![FileChange::write("deploy/README.md", "nothing here")]).await;
    let report = engine.sync(&blank).await;
    assert!(!report.usable, "no objects while objects are managed is unusable by default");
    assert!(report.errors[0].message().contains("allow_empty"), "{:?}", report.errors);
    assert_eq!(f.names().len(), count);

    let mut intended = config("prod", GarbageCollection::On);
    intended.allow_empty = true;
    let report = f.engine(intended).sync(&blank).await;
    assert!(report.is_success(), "{:?}", report.errors);
    assert_eq!(
        f.names(),
        ["<cluster>:namespace/team", "<cluster>:customresourcedefinition/widgets.example.com"],
        "an intended empty revision prunes everything but the protected kinds"
    );
    let kept: Vec<String> = report.kept.iter().map(ToString::to_string).collect();
    assert_eq!(
        kept,
        [
            "<cluster>:customresourcedefinition/widgets.example.com kept: a CustomResourceDefinition is pruned only \
             when annotated fluxcd.io/prune: \"true\"",
            "<cluster>:namespace/team kept: a Namespace is pruned only when annotated fluxcd.io/prune: \"true\""
        ]
    );
}

fn config_maps(count: usize) -> Value {
    Value::Array((0..count).map(|i| cm("default", &format!("c-{i:03}"), "x")).collect())
}

#[tokio::test]
async fn the_prune_guard_holds_a_large_prune_until_allowed_once() {
    let f = Fixture::new(&[("deploy/many.json", config_maps(15))]);
    let engine = f.engine(config("prod", GarbageCollection::On));
    assert!(engine.sync_head().await.unwrap().is_success());
    let rev = f.commit(vec![write("deploy/many.json", &config_maps(3))]).await;

    let plan = engine.plan(&rev).await;
    assert_eq!((plan.prune.len(), plan.managed), (12, 15));
    assert!(plan.prune_hold.is_some(), "the plan says the guard would hold it");
    let report = engine.sync(&rev).await;
    assert_eq!(f.cluster.writes().deleted, 0, "nothing deleted");
    assert_eq!(f.names().len(), 15);
    assert!(!report.is_success() && !report.marker_moved);
    let hold = report.prune_held.as_ref().expect("held");
    assert_eq!((hold.pruning, hold.managed, hold.max_percent), (12, 15, 50));
    let message = report.errors.iter().map(SyncError::message).collect::<Vec<_>>().join("\n");
    assert!(
        message.contains("prune guard: not pruning 12 of the 15 objects this unit manages (over 50%): default:configmap/c-003, default:configmap/c-004")
            && message.contains("and 7 more")
            && message.contains("fluxctl sync --allow-prune"),
        "{message}"
    );
    assert!(engine.sync(&rev).await.prune_held.is_some(), "held at every sync");

    engine.allow_prune_once();
    let report = engine.sync(&rev).await;
    assert!(report.is_success(), "{:?}", report.errors);
    assert_eq!(report.pruned.len(), 12);
    assert_eq!(f.cluster.writes().deleted, 12);
    assert_eq!(f.names().len(), 3);
    assert!(!engine.prune_allowance(), "the allowance was taken");
}

#[tokio::test]
async fn the_prune_guard_lets_small_or_minor_prunes_through_and_can_be_off() {
    let f = Fixture::new(&[("deploy/many.json", config_maps(30))]);
    let engine = f.engine(config("prod", GarbageCollection::On));
    engine.sync_head().await.unwrap();
    // 15 of 30: not over half.
    let rev = f.commit(vec![write("deploy/many.json", &config_maps(15))]).await;
    assert_eq!(engine.sync(&rev).await.pruned.len(), 15);
    // 9 of 15: over half, but under 10 objects.
    let rev = f.commit(vec![write("deploy/many.json", &config_maps(6))]).await;
    assert_eq!(engine.sync(&rev).await.pruned.len(), 9);

    let f = Fixture::new(&[("deploy/many.json", config_maps(20))]);
    let mut unguarded = config("prod", GarbageCollection::On);
    unguarded.prune_guard = None;
    let engine = f.engine(unguarded);
    engine.sync_head().await.unwrap();
    let rev = f.commit(vec![write("deploy/many.json", &config_maps(1))]).await;
    assert_eq!(engine.sync(&rev).await.pruned.len(), 19, "no guard");

    // With a dry run of garbage collection nothing is deleted: not held, the allowance kept.
    let f = Fixture::new(&[("deploy/many.json", config_maps(20))]);
    let engine = f.engine(config("prod", GarbageCollection::DryRun));
    engine.sync_head().await.unwrap();
    let rev = f.commit(vec![write("deploy/many.json", &config_maps(1))]).await;
    engine.allow_prune_once();
    assert!(engine.plan(&rev).await.prune_hold.is_none(), "a dry run is never held");
    let report = engine.sync(&rev).await;
    assert!(report.prune_held.is_none() && report.pruned.len() == 19 && f.names().len() == 20);
    assert!(engine.prune_allowance());
}

#[tokio::test]
async fn protected_kinds_and_prune_annotations_are_kept_and_reported() {
    let pvc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    };
    let f = Fixture::new(&[(
        "deploy/all.json",
        json!([
            ns("kept"),
            with_annotation(ns("pruned"), PRUNE_ANNOTATION, "true"),
            pvc("data"),
            with_annotation(cm("default", "precious", "x"), PRUNE_ANNOTATION, "false"),
            cm("default", "plain", "x"),
            cm("default", "stays", "x"),
        ]),
    )]);
    let engine = f.engine(config("prod", GarbageCollection::On));
    assert!(engine.sync_head().await.unwrap().is_success());
    let rev = f.commit(vec![write("deploy/all.json", &json!([cm("default", "stays", "x")]))]).await;
    let report = engine.sync(&rev).await;
    assert!(report.is_success(), "{:?}", report.errors);
    let pruned: Vec<String> = report.pruned.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(pruned, ["default:configmap/plain", "<cluster>:namespace/pruned"]);
    let kept: Vec<(String, KeepReason)> = report.kept.iter().map(|k| (k.reference.id.to_string(), k.reason)).collect();
    assert_eq!(
        kept,
        [
            ("<cluster>:namespace/kept".to_owned(), KeepReason::ProtectedKind),
            ("default:configmap/precious".to_owned(), KeepReason::Annotated),
            ("default:persistentvolumeclaim/data".to_owned(), KeepReason::ProtectedKind),
        ]
    );
    assert!(f.names().contains(&"default:persistentvolumeclaim/data".to_owned()));
}

#[test]
fn keep_reasons_follow_kind_group_and_annotation() {
    let none = |_: &str| None;
    let says = |v: &'static str| move |k: &str| (k == PRUNE_ANNOTATION).then(|| v.to_owned());
    assert_eq!(keep_reason("v1", "Namespace", none), Some(KeepReason::ProtectedKind));
    assert_eq!(keep_reason("v1", "PersistentVolumeClaim", none), Some(KeepReason::ProtectedKind));
    assert_eq!(
        keep_reason("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", none),
        Some(KeepReason::ProtectedKind)
    );
    assert_eq!(keep_reason("example.com/v1", "Namespace", none), None, "another group's Namespace kind");
    assert_eq!(keep_reason("v1", "ConfigMap", none), None);
    assert_eq!(keep_reason("v1", "Namespace", says("true")), None);
    assert_eq!(keep_reason("v1", "ConfigMap", says("false")), Some(KeepReason::Annotated));
    assert_eq!(keep_reason("v1", "Namespace", says("false")), Some(KeepReason::Annotated));
    assert_eq!(keep_reason("v1", "Namespace", says("yes")), Some(KeepReason::ProtectedKind), "only true lets it go");
}

/// Delegates to a MemoryCluster but fails the applies of some objects, as an admission webhook
/// or a quota would; or, with `interrupt`, as a connection lost at that object would (it and
/// the objects after it in the call are `Interrupted`).
struct RefusingCluster {
    inner: MemoryCluster,
    refuse: Mutex<Vec<ResourceId>>,
    interrupt: bool,
    deletes: Mutex<Vec<ResourceId>>,
    applies: Mutex<Vec<ResourceId>>,
    /// How many objects each apply call carried, and how many of them came without a GC mark.
    calls: Mutex<Vec<(usize, usize)>>,
}

impl RefusingCluster {
    fn new(inner: &MemoryCluster, refuse: &[&str]) -> Self {
        RefusingCluster {
            inner: inner.clone(),
            refuse: Mutex::new(refuse.iter().map(|id| id.parse().unwrap()).collect()),
            interrupt: false,
            deletes: Mutex::default(),
            applies: Mutex::default(),
            calls: Mutex::default(),
        }
    }
}

#[async_trait]
impl Cluster for RefusingCluster {
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> crate::Result<Vec<ApplyResult>> {
        self.applies.lock().unwrap().extend(objects.iter().map(|o| o.id().clone()));
        let unmarked = objects.iter().filter(|o| o.label(GC_MARK_LABEL).is_none()).count();
        self.calls.lock().unwrap().push((objects.len(), unmarked));
        let refuse = self.refuse.lock().unwrap().clone();
        let mut results = Vec::new();
        let mut interrupted = false;
        for object in objects {
            let refused = refuse.contains(object.id());
            interrupted |= refused && self.interrupt;
            let outcome = if interrupted {
                ApplyOutcome::Interrupted { reason: "connection reset by peer".into() }
            } else if refused {
                ApplyOutcome::Failed { reason: "denied by webhook".into() }
            } else {
                results.extend(self.inner.apply(std::slice::from_ref(object), options).await?);
                continue;
            };
            results.push(ApplyResult { id: object.id().clone(), outcome });
        }
        Ok(results)
    }
    async fn managed(&self, identity: &SyncIdentity) -> crate::Result<Vec<crate::ManagedObject>> {
        self.inner.managed(identity).await
    }
    async fn marked(&self) -> crate::Result<Vec<crate::ManagedObject>> {
        self.inner.marked().await
    }
    async fn metadata(&self, references: &[ObjectRef]) -> crate::Result<Vec<crate::Lookup>> {
        self.inner.metadata(references).await
    }
    async fn get(&self, r: &ObjectRef) -> crate::Result<Option<KubeObject>> {
        self.inner.get(r).await
    }
    async fn delete(&self, objects: &[ObjectRef], options: WriteOptions) -> crate::Result<Vec<crate::DeleteResult>> {
        self.deletes.lock().unwrap().extend(objects.iter().map(|o| o.id.clone()));
        self.inner.delete(objects, options).await
    }
    async fn workloads<'a>(&self, namespace: Option<&'a str>) -> crate::Result<Vec<crate::Workload>> {
        self.inner.workloads(namespace).await
    }
}

fn refusing_engine(f: &Fixture, cluster: &Arc<RefusingCluster>) -> SyncEngine {
    SyncEngine::new(
        Arc::new(f.source.clone()),
        cluster.clone(),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    )
}

/// The plan holds the objects as in git (their bodies shared with the engine's cache); each is
/// marked only for the call that sends it, and calls are bounded, so the marked copies alive
/// at once are bounded too, whatever the revision's size.
#[tokio::test]
async fn objects_are_marked_only_when_sent_in_bounded_calls() {
    let f = Fixture::new(&[("deploy/many.json", config_maps(1100))]);
    let cluster = Arc::new(RefusingCluster::new(&f.cluster, &[]));
    let mut config = config("prod", GarbageCollection::On);
    config.concurrency = 2;
    let engine =
        SyncEngine::new(Arc::new(f.source.clone()), cluster.clone(), Arc::new(ManifestGenerator::default()), config);

    let head = f.source.refresh().await.unwrap();
    let plan = engine.plan(&head).await;
    assert_eq!(plan.apply.len(), 1100);
    for planned in &plan.apply {
        assert_eq!(planned.object.label(GC_MARK_LABEL), None, "the plan's object is as in git");
        let marked = planned.marked();
        assert_eq!(marked.label(GC_MARK_LABEL), Some(crate::cluster::gc_mark("prod", planned.object.id()).as_str()));
        assert_eq!(marked.label(crate::cluster::SYNC_UNIT_LABEL), Some("prod"));
        assert_eq!(marked.annotation(crate::cluster::CHECKSUM_ANNOTATION), Some(planned.marks.checksum.as_str()));
    }

    let report = engine.sync(&head).await;
    assert!(report.is_success(), "{:?}", report.errors);
    assert_eq!(report.applied.len(), 1100);
    let calls = cluster.calls.lock().unwrap().clone();
    assert!(calls.iter().all(|&(len, unmarked)| len <= 256 && unmarked == 0), "{calls:?}");
    assert_eq!(calls.iter().map(|(len, _)| len).sum::<usize>(), 1100);
    assert_eq!(calls.len(), 5, "1,100 objects in calls of at most 256: {calls:?}");
    assert!(f.cluster.objects().iter().all(|o| o.label(GC_MARK_LABEL).is_some()));
    // Marked as the plan said: the next sync has nothing to send.
    assert_eq!(engine.sync(&head).await.applied.len(), 0);
}

#[tokio::test]
async fn a_refused_object_fails_alone_is_retried_and_garbage_collection_still_runs() {
    let f = Fixture::new(&[(
        "deploy/all.json",
        json!([ns("team"), cm("team", "old", "1"), deploy("team", "old-web", "a:1")]),
    )]);
    f.engine(config("prod", GarbageCollection::On)).sync_head().await.unwrap();
    let rev = f
        .commit(vec![write(
            "deploy/all.json",
            &json!([ns("team"), cm("team", "new", "1"), cm("team", "refused", "1"), deploy("team", "web", "a:2")]),
        )])
        .await;
    let cluster = Arc::new(RefusingCluster::new(&f.cluster, &["team:configmap/refused"]));
    let engine = refusing_engine(&f, &cluster);
    let report = engine.sync(&rev).await;
    let names = f.names();
    assert!(
        names.contains(&"team:configmap/new".to_string()) && names.contains(&"team:deployment/web".to_string()),
        "the rest is applied"
    );
    let outcome = |id: &str| report.applied.iter().find(|r| r.id.to_string() == id).map(|r| r.outcome.clone());
    assert_eq!(outcome("team:configmap/new"), Some(ApplyOutcome::Created), "each object reports its own outcome");
    assert_eq!(outcome("team:deployment/web"), Some(ApplyOutcome::Created));
    let mut deleted = cluster.deletes.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(
        deleted,
        ["team:configmap/old".parse::<ResourceId>().unwrap(), "team:deployment/old-web".parse().unwrap()],
        "garbage is collected, of the failed object's kind too"
    );
    assert_eq!(report.failed, 1);
    let errors: Vec<String> = report.errors.iter().map(|e| e.message()).collect();
    assert_eq!(errors.len(), 1, "only the refused object is reported: {errors:?}");
    assert!(
        errors[0].starts_with("deploy/all.json:") && errors[0].ends_with("team:configmap/refused: denied by webhook"),
        "the error names the file, line, object and the cluster's reason: {errors:?}"
    );
    assert_eq!(report.errors[0].id, Some("team:configmap/refused".parse().unwrap()));
    assert!(!report.is_success() && !report.marker_moved);

    // The next sync sends the refused object again, and only it.
    cluster.applies.lock().unwrap().clear();
    let again = engine.sync(&rev).await;
    assert_eq!(*cluster.applies.lock().unwrap(), ["team:configmap/refused".parse::<ResourceId>().unwrap()]);
    assert_eq!(again.failed, 1);
    cluster.refuse.lock().unwrap().clear();
    let fixed = engine.sync(&rev).await;
    assert_eq!(outcomes(&fixed), [("team:configmap/refused".to_string(), ApplyOutcome::Created)]);
    assert!(fixed.is_success() && fixed.marker_moved && fixed.failed == 0, "{:?}", fixed.errors);
}

#[tokio::test]
async fn a_refused_object_keeps_its_live_copy_under_another_api_group() {
    let crd = |group: &str| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("widgets.{group}")},
            "spec": {"group": group, "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"}}})
    };
    let widget = |group: &str| json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w", "namespace": "team"}});
    let f = Fixture::new(&[(
        "deploy/all.json",
        json!([ns("team"), crd("old.example.com"), crd("new.example.com"), widget("old.example.com")]),
    )]);
    f.engine(config("prod", GarbageCollection::On)).sync_head().await.unwrap();
    // The widget moves to the new group, whose apply is refused.
    let rev = f
        .commit(vec![write(
            "deploy/all.json",
            &json!([ns("team"), crd("old.example.com"), crd("new.example.com"), widget("new.example.com")]),
        )])
        .await;
    let cluster = Arc::new(RefusingCluster::new(&f.cluster, &["team:widget/w"]));
    let report = refusing_engine(&f, &cluster).sync(&rev).await;
    assert!(cluster.deletes.lock().unwrap().is_empty(), "the old copy is kept while the new one fails");
    assert!(
        f.cluster
            .get(&ObjectRef { api_version: "old.example.com/v1".into(), id: "team:widget/w".parse().unwrap() })
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        report.errors.iter().any(|e| e.message().contains("not pruning team:widget/w (old.example.com/v1)")),
        "{:?}",
        report.errors
    );
}

#[tokio::test]
async fn a_call_interrupted_partway_reports_what_was_applied_and_prunes_nothing() {
    let f = Fixture::new(&[("deploy/all.json", json!([ns("team"), cm("team", "old", "1")]))]);
    f.engine(config("prod", GarbageCollection::On)).sync_head().await.unwrap();
    let rev = f
        .commit(vec![write(
            "deploy/all.json",
            &json!([
                ns("team"),
                cm("team", "a-first", "1"),
                cm("team", "b-cut", "1"),
                cm("team", "c-after", "1"),
                deploy("team", "web", "a:1")
            ]),
        )])
        .await;
    let mut cluster = RefusingCluster::new(&f.cluster, &["team:configmap/b-cut"]);
    cluster.interrupt = true;
    let cluster = Arc::new(cluster);
    let mut one_call = config("prod", GarbageCollection::On);
    one_call.concurrency = 1;
    let engine =
        SyncEngine::new(Arc::new(f.source.clone()), cluster.clone(), Arc::new(ManifestGenerator::default()), one_call);
    let report = engine.sync(&rev).await;
    let got = outcomes(&report);
    assert_eq!(
        got[0],
        ("team:configmap/a-first".to_string(), ApplyOutcome::Created),
        "applied before the cut: {got:?}"
    );
    for (id, outcome) in &got[1..] {
        assert!(matches!(outcome, ApplyOutcome::Interrupted { .. }), "{id}: {outcome:?}");
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(report.failed, 3);
    assert!(
        !cluster.applies.lock().unwrap().contains(&"team:deployment/web".parse().unwrap()),
        "later stages are not sent once a call failed as a whole"
    );
    assert!(cluster.deletes.lock().unwrap().is_empty(), "nothing is pruned");
    assert!(f.names().contains(&"team:configmap/old".to_string()));
    assert!(report.errors.iter().any(|e| e.message().contains("not pruning 1 objects")), "{:?}", report.errors);
    assert!(!report.is_success());
}

#[tokio::test]
async fn an_apply_call_failing_as_a_whole_prunes_nothing() {
    let f = standard();
    let mut mock = MockCluster::new();
    let gone: ResourceId = "team:configmap/gone-from-git".parse().unwrap();
    let managed = vec![crate::ManagedObject {
        reference: ObjectRef { api_version: "v1".into(), id: gone.clone() },
        checksum: Some("x".into()),
        drifted: false,
        annotations: Default::default(),
        labels: [
            (GC_MARK_LABEL.to_owned(), crate::cluster::gc_mark("prod", &gone)),
            (crate::cluster::SYNC_UNIT_LABEL.to_owned(), "prod".to_owned()),
        ]
        .into(),
    }];
    mock.expect_managed().returning(move |_| Ok(managed.clone()));
    mock.expect_metadata().returning(|refs| Ok(vec![crate::Lookup::Absent; refs.len()]));
    // The first stage's call fails; later stages are not sent.
    mock.expect_apply().times(1).returning(|_, _| Err(Error::transient("connection reset by peer")));
    mock.expect_delete().never();
    let engine = SyncEngine::new(
        Arc::new(f.source.clone()),
        Arc::new(mock),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    );
    let report = engine.sync_head().await.unwrap();
    assert!(!report.is_success());
    assert!(report.errors.iter().any(|e| e.message().contains("connection reset by peer")));
    assert!(report.pruned.is_empty());
    assert!(report.applied.iter().all(|r| matches!(r.outcome, ApplyOutcome::Interrupted { .. })));
    assert_eq!(report.failed, report.applied.len());
    assert_eq!(report.applied.len(), 5, "every planned object is reported");
}

#[tokio::test]
async fn ignore_in_git_and_on_the_live_object() {
    let f = Fixture::new(&[(
        "deploy/all.json",
        json!([
            ns("team"),
            with_annotation(cm("team", "hands-off", "1"), "fluxcd.io/ignore", "true"),
            with_annotation(cm("team", "keep", "1"), "fluxcd.io/ignore", "sync_only"),
            cm("team", "live-ignored", "1"),
        ]),
    )]);
    let engine = f.engine(config("prod", GarbageCollection::On));
    let report = engine.sync_head().await.unwrap();
    assert_eq!(report.ignored, ["team:configmap/hands-off".parse::<ResourceId>().unwrap()]);
    assert!(!f.names().contains(&"team:configmap/hands-off".to_string()), "ignore=true in git: never applied");
    assert!(f.names().contains(&"team:configmap/keep".to_string()), "sync_only: applied");

    // Someone marks a live object ignored (and edits it): it is neither put back nor pruned.
    let live = ObjectRef { api_version: "v1".into(), id: "team:configmap/live-ignored".parse().unwrap() };
    f.cluster
        .edit(&live, |b| {
            b["metadata"]["annotations"] = json!({"flux.weave.works/ignore": "true"});
            b["data"] = json!({"v": "mine now"});
        })
        .unwrap();
    let rev = f.commit(vec![write("deploy/all.json", &json!([ns("team")]))]).await;
    let report = engine.sync(&rev).await;
    assert!(report.is_success(), "{:?}", report.errors);
    let names = f.names();
    assert!(names.contains(&"team:configmap/keep".to_string()), "sync_only: never garbage-collected");
    assert!(names.contains(&"team:configmap/live-ignored".to_string()), "ignored live object: never pruned");
    let still = f.cluster.get(&live).await.unwrap().unwrap();
    assert_eq!(still.pointer(&["data", "v"]), Some(&json!("mine now")), "ignored live object: never re-applied");
}

#[tokio::test]
async fn namespace_and_kind_restrictions() {
    let f = Fixture::new(&[
        ("deploy/ns.json", json!([ns("a"), ns("b")])),
        ("deploy/objs.json", json!([cm("a", "ok", "1"), cm("b", "outside", "1"), deploy("a", "web", "x:1")])),
        (
            "deploy/secret.json",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}),
        ),
    ]);
    // An admin unit creates the namespaces and an object in b; the restricted unit must not touch it.
    let admin = f.engine(config("admin", GarbageCollection::Off));
    admin.sync_head().await.unwrap();

    let mut restricted = config("team-a", GarbageCollection::On);
    restricted.allowed_namespaces = Some(["a".to_string()].into());
    restricted.denied_kinds = vec!["secret".into(), "apps/Deployment".into()];
    let engine = f.engine(restricted);
    let report = engine.sync_head().await.unwrap();
    let mut refused: Vec<String> = report.refused.iter().map(|r| format!("{} {}", r.id, r.reason)).collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            "<cluster>:namespace/a cluster-scoped objects are not allowed when namespaces are restricted",
            "<cluster>:namespace/b cluster-scoped objects are not allowed when namespaces are restricted",
            "a:deployment/web kind Deployment is excluded from syncing",
            "a:secret/s kind Secret is excluded from syncing",
            "b:configmap/outside namespace b is not in the allowed namespaces",
        ]
    );
    assert_eq!(outcomes(&report), [("a:configmap/ok".to_string(), ApplyOutcome::Configured)]);
    let identity = SyncIdentity::new("team-a").unwrap();
    let mine: Vec<String> =
        f.cluster.managed(&identity).await.unwrap().iter().map(|m| m.reference.id.to_string()).collect();
    assert_eq!(mine, ["a:configmap/ok"]);
}

#[tokio::test]
async fn plan_writes_nothing() {
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    engine.sync_head().await.unwrap();
    let rev = f
        .commit(vec![
            FileChange::delete("deploy/widget.json"),
            write("deploy/app.json", &json!([cm("team", "settings", "2"), cm("team", "extra", "1")])),
        ])
        .await;
    let before = f.cluster.writes();
    let marker = f.source.sync_marker().await.unwrap();
    let plan = engine.plan(&rev).await;
    assert_eq!(f.cluster.writes(), before);
    assert_eq!(f.source.sync_marker().await.unwrap(), marker);
    let apply: Vec<(String, ApplyReason)> = plan.apply.iter().map(|p| (p.object.id().to_string(), p.reason)).collect();
    assert_eq!(
        apply,
        [
            ("team:configmap/extra".to_string(), ApplyReason::Missing),
            ("team:configmap/settings".to_string(), ApplyReason::Changed)
        ]
    );
    let prune: Vec<String> = plan.prune.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(prune, ["team:widget/w", "team:deployment/web"]);
    assert_eq!(plan.unchanged.len(), 2);
}

#[tokio::test]
async fn reports_are_emitted_and_the_marker_respects_read_only() {
    let f = standard();
    let mut cfg = config("prod", GarbageCollection::Off);
    cfg.move_marker = false;
    let engine = f.engine(cfg);
    let mut events = engine.subscribe();
    let report = engine.sync_head().await.unwrap();
    let event = events.recv().await.unwrap();
    assert_eq!(event.revision, report.revision);
    assert_eq!(event.applied.len(), 5);
    assert!(!report.marker_moved);
    assert_eq!(f.source.sync_marker().await.unwrap(), None);
    let json = serde_json::to_value(&*event).unwrap();
    assert_eq!(json["identity"], "prod");
    assert_eq!(json["applied"][0]["outcome"], "created");
}

#[tokio::test]
async fn two_units_side_by_side_never_prune_each_other() {
    let f = Fixture::new(&[
        ("deploy/a.json", json!([ns("shared"), cm("shared", "from-a", "1")])),
        ("other/b.json", json!([cm("shared", "from-b", "1")])),
    ]);
    let a = f.engine(config("unit-a", GarbageCollection::On));
    let mut cfg_b = SyncConfig::new(SyncIdentity::new("unit-b").unwrap(), ["other"]);
    cfg_b.garbage_collection = GarbageCollection::On;
    let b = f.engine(cfg_b);
    a.sync_head().await.unwrap();
    b.sync_head().await.unwrap();
    assert_eq!(f.names().len(), 3);
    // Each resyncs: neither sees the other's objects as garbage.
    let (ra, rb) = futures::join!(a.sync_head(), b.sync_head());
    assert!(ra.unwrap().pruned.is_empty() && rb.unwrap().pruned.is_empty());
    let rev = f.commit(vec![write("other/b.json", &json!([]))]).await;
    let report = b.sync(&rev).await;
    assert!(!report.usable, "b's path became empty: unusable without allow_empty");
    let rev = f.commit(vec![write("other/b.json", &json!([cm("shared", "from-b-renamed", "1")]))]).await;
    let report = b.sync(&rev).await;
    assert_eq!(report.pruned.iter().map(|p| p.id.to_string()).collect::<Vec<_>>(), ["shared:configmap/from-b"]);
    assert!(f.names().contains(&"shared:configmap/from-a".to_string()), "a's objects are untouched");
}

#[test]
fn sync_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let f = standard();
    let engine = f.engine(config("prod", GarbageCollection::On));
    let revision = Revision::new("0000000000000000000000000000000000000000");
    assert_send(&engine.sync(&revision));
    assert_send(&engine.plan(&revision));
    assert_send(&engine.sync_head());
}

/// Counts reads of the files of a revision, and marker writes.
struct CountingSource {
    inner: MemorySource,
    reads: std::sync::atomic::AtomicUsize,
    marker_writes: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Source for CountingSource {
    async fn refresh(&self) -> crate::Result<Revision> {
        self.inner.refresh().await
    }
    async fn files(&self, r: &Revision, p: &[String]) -> crate::Result<Vec<crate::SourceFile>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.files(r, p).await
    }
    async fn read_file(&self, r: &Revision, p: &str) -> crate::Result<Vec<u8>> {
        self.inner.read_file(r, p).await
    }
    async fn commit(&self, c: &CommitRequest) -> crate::Result<Revision> {
        self.inner.commit(c).await
    }
    async fn sync_marker(&self) -> crate::Result<Option<Revision>> {
        self.inner.sync_marker().await
    }
    async fn set_sync_marker(&self, r: &Revision) -> crate::Result<()> {
        self.marker_writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.set_sync_marker(r).await
    }
}

/// An engine of unit `prod` over `f`'s source, counted.
fn counting(f: &Fixture) -> (Arc<CountingSource>, SyncEngine) {
    let source = Arc::new(CountingSource {
        inner: f.source.clone(),
        reads: Default::default(),
        marker_writes: Default::default(),
    });
    let engine = SyncEngine::new(
        source.clone(),
        Arc::new(f.cluster.clone()),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    );
    (source, engine)
}

#[tokio::test]
async fn the_marker_is_written_only_when_it_moves() {
    let f = standard();
    let (source, engine) = counting(&f);
    let writes = || source.marker_writes.load(std::sync::atomic::Ordering::SeqCst);
    let first = engine.sync_head().await.unwrap();
    assert!(first.marker_moved && writes() == 1);
    let again = engine.sync_head().await.unwrap();
    assert!(again.marker_moved, "the marker is at the revision");
    assert_eq!(writes(), 1, "a sync of the marker's revision does not write it again");
    let rev = f.commit(vec![write("deploy/app.json", &json!([cm("team", "settings", "9")]))]).await;
    assert!(engine.sync(&rev).await.marker_moved);
    assert_eq!(writes(), 2, "a new revision moves it");
    assert_eq!(f.source.sync_marker().await.unwrap(), Some(rev));
}

#[tokio::test]
async fn an_unchanged_head_is_not_read_again_but_drift_is_still_put_back() {
    let f = standard();
    let (source, engine) = counting(&f);
    engine.sync_head().await.unwrap();
    let settings = ObjectRef { api_version: "v1".into(), id: "team:configmap/settings".parse().unwrap() };
    f.cluster.edit(&settings, |b| b["data"] = json!({"v": "by hand"})).unwrap();
    let report = engine.sync_head().await.unwrap();
    assert_eq!(source.reads.load(std::sync::atomic::Ordering::SeqCst), 1, "the same revision is read once");
    assert_eq!(outcomes(&report), [("team:configmap/settings".to_string(), ApplyOutcome::Configured)]);
    let rev = f
        .commit(vec![write("deploy/app.json", &json!([cm("team", "settings", "9"), deploy("team", "web", "nginx:1")]))])
        .await;
    engine.sync(&rev).await;
    assert_eq!(source.reads.load(std::sync::atomic::Ordering::SeqCst), 2, "a new revision is read");
}

// --- Garbage-collection safety: ignore in the cluster, marks bound to the object, paths. ---

fn object(v: Value) -> KubeObject {
    KubeObject::from_value(v, None).unwrap()
}

fn reference(api_version: &str, id: &str) -> ObjectRef {
    ObjectRef { api_version: api_version.into(), id: id.parse().unwrap() }
}

/// Counts [`Cluster::metadata`] calls and the references asked about.
struct LookupCounting {
    inner: MemoryCluster,
    calls: Mutex<Vec<usize>>,
}

#[async_trait]
impl Cluster for LookupCounting {
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> crate::Result<Vec<ApplyResult>> {
        self.inner.apply(objects, options).await
    }
    async fn managed(&self, identity: &SyncIdentity) -> crate::Result<Vec<crate::ManagedObject>> {
        self.inner.managed(identity).await
    }
    async fn marked(&self) -> crate::Result<Vec<crate::ManagedObject>> {
        self.inner.marked().await
    }
    async fn metadata(&self, references: &[ObjectRef]) -> crate::Result<Vec<crate::Lookup>> {
        self.calls.lock().unwrap().push(references.len());
        self.inner.metadata(references).await
    }
    async fn get(&self, r: &ObjectRef) -> crate::Result<Option<KubeObject>> {
        self.inner.get(r).await
    }
    async fn delete(&self, objects: &[ObjectRef], options: WriteOptions) -> crate::Result<Vec<crate::DeleteResult>> {
        self.inner.delete(objects, options).await
    }
    async fn workloads<'a>(&self, namespace: Option<&'a str>) -> crate::Result<Vec<crate::Workload>> {
        self.inner.workloads(namespace).await
    }
}

#[tokio::test]
async fn a_pre_existing_ignored_object_is_never_applied_taken_over_nor_pruned() {
    let f = Fixture::new(&[(
        "deploy/all.json",
        json!([ns("team"), cm("team", "hands-off", "git"), cm("team", "legacy", "git"), cm("team", "taken", "git")]),
    )]);
    // Made by hand before flux-rs ever ran, and annotated with `kubectl annotate`.
    f.cluster.apply(&[object(ns("team"))], WriteOptions::default()).await.unwrap();
    f.cluster
        .apply(
            &[
                object(with_annotation(cm("team", "hands-off", "mine"), "fluxcd.io/ignore", "true")),
                object(with_annotation(cm("team", "legacy", "mine"), "flux.weave.works/ignore", "true")),
                object(cm("team", "taken", "mine")),
            ],
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let engine = f.engine(config("prod", GarbageCollection::On));
    for _ in 0..2 {
        let report = engine.sync_head().await.unwrap();
        assert!(report.is_success(), "{:?}", report.errors);
        let mut ignored: Vec<String> = report.ignored.iter().map(ToString::to_string).collect();
        ignored.sort();
        assert_eq!(ignored, ["team:configmap/hands-off", "team:configmap/legacy"]);
    }
    for name in ["hands-off", "legacy"] {
        let live = f.cluster.get(&reference("v1", &format!("team:configmap/{name}"))).await.unwrap().unwrap();
        assert_eq!(live.pointer(&["data", "v"]), Some(&json!("mine")), "{name}: never overwritten");
        assert_eq!(live.label(GC_MARK_LABEL), None, "{name}: never taken over");
    }
    let taken = f.cluster.get(&reference("v1", "team:configmap/taken")).await.unwrap().unwrap();
    assert_eq!(taken.pointer(&["data", "v"]), Some(&json!("git")), "a pre-existing object not ignored is taken over");

    // They leave git: the ignored ones are not this unit's, so not pruned; the taken one is.
    let rev = f.commit(vec![write("deploy/all.json", &json!([ns("team")]))]).await;
    let report = engine.sync(&rev).await;
    assert!(report.is_success(), "{:?}", report.errors);
    let pruned: Vec<String> = report.pruned.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(pruned, ["team:configmap/taken"]);
    let names = f.names();
    assert!(
        names.contains(&"team:configmap/hands-off".to_string()) && names.contains(&"team:configmap/legacy".to_string())
    );
}

#[tokio::test]
async fn objects_not_managed_yet_are_looked_up_in_one_batch_and_a_failed_look_up_applies_nothing() {
    let many: Vec<Value> = (0..50).map(|i| cm("team", &format!("c{i}"), "1")).collect();
    let f = Fixture::new(&[("deploy/ns.json", ns("team")), ("deploy/many.json", Value::Array(many))]);
    let cluster = Arc::new(LookupCounting { inner: f.cluster.clone(), calls: Mutex::default() });
    let engine = SyncEngine::new(
        Arc::new(f.source.clone()),
        cluster.clone(),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    );
    let report = engine.sync_head().await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors);
    assert_eq!(*cluster.calls.lock().unwrap(), [51], "one look-up call for the whole cold sync");
    engine.sync_head().await.unwrap();
    assert_eq!(*cluster.calls.lock().unwrap(), [51], "managed objects need no look-up");

    let mut mock = MockCluster::new();
    mock.expect_managed().returning(|_| Ok(Vec::new()));
    mock.expect_metadata().returning(|_| Err(Error::transient("connection reset by peer")));
    mock.expect_apply().never();
    mock.expect_delete().never();
    let engine = SyncEngine::new(
        Arc::new(f.source.clone()),
        Arc::new(mock),
        Arc::new(ManifestGenerator::default()),
        config("other", GarbageCollection::On),
    );
    let report = engine.sync_head().await.unwrap();
    assert!(!report.is_success() && !report.marker_moved);
    assert!(report.applied.is_empty(), "what may be ignored in the cluster is not applied");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.message().contains("cannot tell whether") && e.message().contains("connection reset"))
    );
}

#[tokio::test]
async fn a_hand_made_copy_carrying_the_labels_survives_garbage_collection() {
    let f = Fixture::new(&[("deploy/all.json", json!([ns("team"), cm("team", "settings", "1")]))]);
    let engine = f.engine(config("prod", GarbageCollection::On));
    assert!(engine.sync_head().await.unwrap().is_success());
    // `kubectl get -o yaml | sed s/settings/settings-copy/ | kubectl apply -f -`
    let original = f.cluster.get(&reference("v1", "team:configmap/settings")).await.unwrap().unwrap();
    let mut copy = original.to_value();
    copy["metadata"]["name"] = json!("settings-copy");
    f.cluster.apply(&[object(copy)], WriteOptions::default()).await.unwrap();
    // And one in another namespace.
    let mut elsewhere = original.to_value();
    elsewhere["metadata"]["namespace"] = json!("default");
    f.cluster.apply(&[object(elsewhere)], WriteOptions::default()).await.unwrap();

    let report = engine.sync_head().await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors);
    assert!(report.pruned.is_empty(), "a copy is never garbage: {:?}", report.pruned);
    let copies: Vec<String> = report.foreign_copies.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(copies, ["default:configmap/settings", "team:configmap/settings-copy"]);

    let rev = f.commit(vec![write("deploy/all.json", &json!([ns("team")]))]).await;
    let report = engine.sync(&rev).await;
    assert!(report.is_success(), "{:?}", report.errors);
    let pruned: Vec<String> = report.pruned.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(pruned, ["team:configmap/settings"], "the original is collected, the copies are not");
    let names = f.names();
    assert!(names.contains(&"team:configmap/settings-copy".to_string()));
    assert!(names.contains(&"default:configmap/settings".to_string()));
}

#[tokio::test]
async fn objects_marked_by_flux_v1_are_re_marked_and_collected() {
    let url = "git@github.com:org/fleet.git";
    let v1_set = flux_v1_sync_set_name(url, "master", &["deploy".to_owned()]);
    let other_v1_set = flux_v1_sync_set_name(url, "master", &["deploy".to_owned(), "more".to_owned()]);
    let f = Fixture::new(&[("deploy/all.json", json!([ns("team"), cm("team", "kept", "git")]))]);
    // What Flux v1 left: its mark (of this object's id and its sync set) and a SHA-1 checksum.
    let v1_marked = |name: &str, set: &str| {
        let mut o = object(cm("team", name, "v1"));
        o.set_label(GC_MARK_LABEL, &crate::cluster::gc_mark(set, o.id()));
        o.set_annotation(crate::cluster::CHECKSUM_ANNOTATION, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        o
    };
    f.cluster.apply(&[object(ns("team"))], WriteOptions::default()).await.unwrap();
    f.cluster
        .apply(
            &[v1_marked("kept", &v1_set), v1_marked("left-git", &v1_set), v1_marked("other-set", &other_v1_set)],
            WriteOptions::default(),
        )
        .await
        .unwrap();

    // Without the legacy set, Flux v1's objects are not this unit's: nothing is collected.
    let plan = f.engine(config("prod", GarbageCollection::On)).plan(&f.source.refresh().await.unwrap()).await;
    assert!(plan.prune.is_empty(), "{:?}", plan.prune);

    let mut cfg = config("prod", GarbageCollection::On);
    cfg.legacy_sync_sets = vec![v1_set];
    let engine = f.engine(cfg);
    let report = engine.sync_head().await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors);
    let pruned: Vec<String> = report.pruned.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(pruned, ["team:configmap/left-git"], "a v1 object that left git is collected");
    assert!(outcomes(&report).contains(&("team:configmap/kept".to_string(), ApplyOutcome::Configured)));
    let kept = f.cluster.get(&reference("v1", "team:configmap/kept")).await.unwrap().unwrap();
    assert_eq!(kept.label(GC_MARK_LABEL), Some(crate::cluster::gc_mark("prod", kept.id()).as_str()), "re-marked");
    assert_eq!(kept.label(crate::cluster::SYNC_UNIT_LABEL), Some("prod"));
    assert!(f.names().contains(&"team:configmap/other-set".to_string()), "another v1 sync set's object is left alone");
    let again = engine.sync_head().await.unwrap();
    assert!(again.applied.is_empty(), "re-marked once: {:?}", again.applied);
}

#[tokio::test]
async fn removing_a_path_orphans_its_objects_unless_opted_in() {
    let f = Fixture::new(&[
        ("deploy/ns.json", ns("team")),
        ("extra/cm.json", json!([cm("team", "extra-1", "1"), cm("team", "extra-2", "1")])),
    ]);
    let unit = |paths: &[&str], prune_removed_paths: bool| {
        let mut c = SyncConfig::new(SyncIdentity::new("prod").unwrap(), paths.iter().copied());
        c.garbage_collection = GarbageCollection::On;
        c.prune_removed_paths = prune_removed_paths;
        f.engine(c)
    };
    assert!(unit(&["deploy", "extra"], false).sync_head().await.unwrap().is_success());
    let recorded = f.cluster.get(&reference("v1", "team:configmap/extra-1")).await.unwrap().unwrap();
    assert_eq!(recorded.annotation(crate::cluster::SYNC_PATH_ANNOTATION), Some("extra"));

    let report = unit(&["deploy"], false).sync_head().await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors);
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    let orphaned: Vec<String> = report.orphaned.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(orphaned, ["team:configmap/extra-1", "team:configmap/extra-2"]);
    assert!(f.names().contains(&"team:configmap/extra-1".to_string()), "orphaned, not deleted");

    let report = unit(&["deploy"], true).sync_head().await.unwrap();
    let pruned: Vec<String> = report.pruned.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(pruned, ["team:configmap/extra-1", "team:configmap/extra-2"], "the opt-in collects them");
    assert!(report.orphaned.is_empty());
    assert!(!f.names().contains(&"team:configmap/extra-1".to_string()));
}

#[tokio::test]
async fn an_object_moving_between_configured_paths_is_neither_pruned_nor_orphaned() {
    let f = Fixture::new(&[
        ("a/all.json", json!([ns("team"), cm("team", "mover", "1")])),
        ("b/keep.json", cm("team", "b", "1")),
    ]);
    let mut cfg = SyncConfig::new(SyncIdentity::new("prod").unwrap(), ["a", "b"]);
    cfg.garbage_collection = GarbageCollection::On;
    let engine = f.engine(cfg);
    assert!(engine.sync_head().await.unwrap().is_success());
    let rev = f.commit(vec![write("a/all.json", &ns("team")), write("b/mover.json", &cm("team", "mover", "1"))]).await;
    let report = engine.sync(&rev).await;
    assert!(report.is_success(), "{:?}", report.errors);
    assert!(report.pruned.is_empty() && report.orphaned.is_empty(), "{:?} {:?}", report.pruned, report.orphaned);
    assert_eq!(outcomes(&report), [("team:configmap/mover".to_string(), ApplyOutcome::Configured)], "re-recorded");
    let mover = f.cluster.get(&reference("v1", "team:configmap/mover")).await.unwrap().unwrap();
    assert_eq!(mover.annotation(crate::cluster::SYNC_PATH_ANNOTATION), Some("b"));

    // Dropping path `a` now orphans nothing: the object is in `b`.
    let mut only_b = SyncConfig::new(SyncIdentity::new("prod").unwrap(), ["b"]);
    only_b.garbage_collection = GarbageCollection::On;
    let report = f.engine(only_b).sync(&rev).await;
    let orphaned: Vec<String> = report.orphaned.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(orphaned, ["<cluster>:namespace/team"], "only what came from `a` is orphaned");
    assert!(f.names().contains(&"team:configmap/mover".to_string()));
}

#[test]
fn recorded_paths_follow_the_origin() {
    let configured = vec!["apps".to_owned(), "apps/web".to_owned(), "infra".to_owned()];
    let at = |file: &str| object(cm("a", "b", "c")).with_origin(Some(crate::Location::file(file)));
    assert_eq!(super::engine::recorded_paths(&at("apps/web/x.yaml"), &configured), "apps/web", "the deepest");
    assert_eq!(super::engine::recorded_paths(&at("infra/x.yaml"), &configured), "infra");
    assert_eq!(
        super::engine::recorded_paths(&at(".flux.yaml"), &configured),
        "apps,apps/web,infra",
        "an origin outside the paths records them all"
    );
    assert_eq!(super::engine::recorded_paths(&at("anything"), &[String::new()]), ".", "the root");
}
