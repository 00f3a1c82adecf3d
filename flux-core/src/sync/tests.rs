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
    assert!(applied.iter().all(|o| o.label(GC_MARK_LABEL) == Some("prod")), "every object carries the identity");
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
        report.errors.iter().any(|e| e.message.starts_with("deploy/broken.json:1: invalid YAML")),
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
    assert!(report.errors[0].message.contains("deploy"), "{:?}", report.errors);
    assert_eq!(f.names().len(), count);

    let blank = f.commit(vec![FileChange::write("deploy/README.md", "nothing here")]).await;
    let report = engine.sync(&blank).await;
    assert!(!report.usable, "no objects while objects are managed is unusable by default");
    assert!(report.errors[0].message.contains("allow_empty"), "{:?}", report.errors);
    assert_eq!(f.names().len(), count);

    let mut intended = config("prod", GarbageCollection::On);
    intended.allow_empty = true;
    let report = f.engine(intended).sync(&blank).await;
    assert!(report.is_success(), "{:?}", report.errors);
    assert!(f.names().is_empty(), "an intended empty revision prunes everything: {:?}", f.names());
}

/// Delegates to a MemoryCluster but fails the applies of some objects, as an admission webhook
/// or a quota would.
struct RefusingCluster {
    inner: MemoryCluster,
    refuse: Vec<ResourceId>,
    deletes: Mutex<Vec<ResourceId>>,
}

#[async_trait]
impl Cluster for RefusingCluster {
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> crate::Result<Vec<ApplyResult>> {
        let (refused, rest): (Vec<_>, Vec<_>) = objects.iter().cloned().partition(|o| self.refuse.contains(o.id()));
        let mut results = self.inner.apply(&rest, options).await?;
        results.extend(refused.iter().map(|o| ApplyResult {
            id: o.id().clone(),
            outcome: ApplyOutcome::Failed { reason: "denied by webhook".into() },
        }));
        Ok(results)
    }
    async fn managed(&self, identity: &SyncIdentity) -> crate::Result<Vec<crate::ManagedObject>> {
        self.inner.managed(identity).await
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

#[tokio::test]
async fn a_failed_object_does_not_stop_the_rest_and_blocks_pruning_of_its_kind() {
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
    let cluster = Arc::new(RefusingCluster {
        inner: f.cluster.clone(),
        refuse: vec!["team:configmap/refused".parse().unwrap()],
        deletes: Mutex::default(),
    });
    let engine = SyncEngine::new(
        Arc::new(f.source.clone()),
        cluster.clone(),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    );
    let report = engine.sync(&rev).await;
    let names = f.names();
    assert!(
        names.contains(&"team:configmap/new".to_string()) && names.contains(&"team:deployment/web".to_string()),
        "the rest is applied"
    );
    assert!(names.contains(&"team:configmap/old".to_string()), "no ConfigMap is pruned while one failed to apply");
    assert!(!names.contains(&"team:deployment/old-web".to_string()), "other kinds are still pruned");
    assert_eq!(*cluster.deletes.lock().unwrap(), ["team:deployment/old-web".parse::<ResourceId>().unwrap()]);
    assert!(!report.is_success() && !report.marker_moved);
    assert!(report.errors.iter().any(|e| e.message.contains("denied by webhook")));
    assert!(report.errors.iter().any(|e| e.message.contains("not pruning team:configmap/old")));
}

#[tokio::test]
async fn an_apply_call_failing_as_a_whole_prunes_nothing() {
    let f = standard();
    let mut mock = MockCluster::new();
    let managed = vec![crate::ManagedObject {
        reference: ObjectRef { api_version: "v1".into(), id: "team:configmap/gone-from-git".parse().unwrap() },
        checksum: Some("x".into()),
        drifted: false,
        annotations: Default::default(),
    }];
    mock.expect_managed().returning(move |_| Ok(managed.clone()));
    mock.expect_apply().returning(|_, _| Err(Error::transient("connection reset by peer")));
    mock.expect_delete().never();
    let engine = SyncEngine::new(
        Arc::new(f.source.clone()),
        Arc::new(mock),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    );
    let report = engine.sync_head().await.unwrap();
    assert!(!report.is_success());
    assert!(report.errors.iter().any(|e| e.message.contains("connection reset by peer")));
    assert!(report.pruned.is_empty());
    assert!(report.applied.iter().all(|r| matches!(r.outcome, ApplyOutcome::Failed { .. })));
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

/// Counts reads of the files of a revision.
struct CountingSource {
    inner: MemorySource,
    reads: std::sync::atomic::AtomicUsize,
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
        self.inner.set_sync_marker(r).await
    }
}

#[tokio::test]
async fn an_unchanged_head_is_not_read_again_but_drift_is_still_put_back() {
    let f = standard();
    let source = Arc::new(CountingSource { inner: f.source.clone(), reads: Default::default() });
    let engine = SyncEngine::new(
        source.clone(),
        Arc::new(f.cluster.clone()),
        Arc::new(ManifestGenerator::default()),
        config("prod", GarbageCollection::On),
    );
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
