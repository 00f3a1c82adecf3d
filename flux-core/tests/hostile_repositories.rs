//! Hostile repositories: alias bombs, huge files, too many documents, deep nesting, invalid
//! UTF-8, paths that escape, duplicate ids, bad filters and bad image references.
//!
//! Each case is pushed on top of a revision the real [`SyncEngine`] has already applied to an
//! in-memory cluster, with garbage collection on. What must hold: nothing panics; the error
//! names the file (and the line where there is one); the reader refuses what is over its
//! documented limits ([`ManifestOptions`]: 4 MiB a file, 100,000 replayed alias events,
//! 10,000 documents, depth 64) instead of reading it; an unusable revision prunes nothing,
//! writes nothing and does not move the sync marker.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use flux_core::cluster::SyncIdentity;
use flux_core::generate::ManifestGenerator;
use flux_core::manifest::{ManifestOptions, read_repository_manifests, workloads_with_errors};
use flux_core::memory::{MemoryCluster, MemorySource};
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{CommitRequest, Error, FileChange, Result, Revision, Source, SourceFile};

const GOOD: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team\ndata:\n  v: \"1\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: team\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.25\n";

/// A repository whose first revision is synced, with its objects managed by the unit.
struct Synced {
    source: MemorySource,
    cluster: MemoryCluster,
    engine: SyncEngine,
    objects: Vec<String>,
}

async fn synced() -> Synced {
    let source = MemorySource::with_files([("deploy/good.yaml", GOOD)]).unwrap();
    synced_over(source.clone(), Arc::new(source)).await
}

async fn synced_over(source: MemorySource, read: Arc<dyn Source>) -> Synced {
    let cluster = MemoryCluster::new();
    let mut config = SyncConfig::new(SyncIdentity::new("hostile").unwrap(), ["deploy"]);
    config.garbage_collection = GarbageCollection::On;
    let engine = SyncEngine::new(read, Arc::new(cluster.clone()), Arc::new(ManifestGenerator::default()), config);
    let first = engine.sync_head().await.unwrap();
    assert!(first.is_success(), "{:?}", first.errors);
    let objects = ids(&cluster);
    assert_eq!(objects.len(), 3, "{objects:?}");
    Synced { source, cluster, engine, objects }
}

fn ids(cluster: &MemoryCluster) -> Vec<String> {
    cluster.objects().iter().map(|o| o.id().to_string()).collect()
}

impl Synced {
    /// Pushes `changes` (the good file stays) and syncs: the revision must be unusable with an
    /// error containing every one of `expected`, and change nothing in the cluster.
    async fn refused(&self, changes: Vec<FileChange>, expected: &[&str]) -> SyncReport {
        let before = self.cluster.writes();
        let marker = self.source.sync_marker().await.unwrap();
        let head = self.source.push_external(&changes, "hostile").unwrap();
        let report = self.engine.sync(&head).await;
        let errors: Vec<String> = report.errors.iter().map(|e| e.message()).collect();
        assert!(!report.usable && !report.is_success(), "accepted: {errors:?}");
        assert!(
            errors.iter().any(|e| expected.iter().all(|want| e.contains(want))),
            "no error says all of {expected:?}: {errors:?}"
        );
        assert!(report.pruned.is_empty() && report.applied.is_empty(), "an unusable revision changed the cluster");
        assert_eq!(self.cluster.writes(), before, "writes on an unusable revision");
        assert_eq!(ids(&self.cluster), self.objects, "objects lost");
        assert!(!report.marker_moved);
        assert_eq!(self.source.sync_marker().await.unwrap(), marker);
        report
    }

    /// Pushes `changes` and syncs: the revision is usable, and every object stays.
    async fn accepted(&self, changes: Vec<FileChange>) -> SyncReport {
        let head = self.source.push_external(&changes, "odd but valid").unwrap();
        let report = self.engine.sync(&head).await;
        assert!(report.is_success(), "{:?}", report.errors);
        assert!(report.pruned.is_empty());
        assert_eq!(self.cluster.writes().deleted, 0);
        for id in &self.objects {
            assert!(ids(&self.cluster).contains(id), "{id} lost");
        }
        report
    }
}

fn file(path: &str, content: impl Into<Vec<u8>>) -> FileChange {
    FileChange::write(path, content)
}

/// Billion laughs: nine levels of nine aliases each, 387 million strings once expanded.
fn alias_bomb() -> String {
    let mut text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n  namespace: team\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_owned();
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 9].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    text
}

#[tokio::test]
async fn an_alias_bomb_is_refused_at_its_file() {
    let s = synced().await;
    s.refused(vec![file("deploy/bomb.yaml", alias_bomb())], &["deploy/bomb.yaml:", "alias"]).await;
}

#[tokio::test]
async fn a_100_mb_file_is_refused_before_it_is_parsed() {
    let s = synced().await;
    let mut big = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: team}\ndata:\n  blob: ".to_vec();
    big.resize(100 << 20, b'x');
    s.refused(vec![file("deploy/big.yaml", big)], &["deploy/big.yaml", "over the limit of 4194304 bytes"]).await;
}

#[tokio::test]
async fn ten_thousand_documents_are_read_and_one_more_is_refused() {
    let docs = |n: usize| -> String {
        (0..n)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: team}}\n"))
            .collect()
    };
    let limit = ManifestOptions::default().max_documents;
    assert_eq!(limit, 10_000);
    let at_limit = [SourceFile { path: "deploy/many.yaml".into(), content: docs(limit).into_bytes() }];
    let read = read_repository_manifests(&at_limit, &ManifestOptions::default()).expect("10,000 documents are read");
    assert_eq!(read.manifests.len(), limit);
    let s = synced().await;
    s.refused(vec![file("deploy/many.yaml", docs(limit + 1))], &["deploy/many.yaml", "document"]).await;
}

#[tokio::test]
async fn deep_nesting_is_refused_at_its_line() {
    let s = synced().await;
    let flow = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep, namespace: team}}\ndata:\n  x: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    s.refused(vec![file("deploy/deep-flow.yaml", flow)], &["deploy/deep-flow.yaml:5", "recursion limit"]).await;
    let mut block = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deeper, namespace: team}\ndata:\n".to_owned();
    for depth in 1..2_000 {
        block.push_str(&format!("{}k:\n", "  ".repeat(depth)));
    }
    s.refused(vec![file("deploy/deep-block.yaml", block)], &["deploy/deep-block.yaml:", "depth"]).await;
}

#[tokio::test]
async fn invalid_utf8_is_refused_at_its_line() {
    let s = synced().await;
    let text =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bytes\n  namespace: team\ndata:\n  v: \"\xff\xfe\"\n";
    s.refused(vec![file("deploy/latin1.yaml", text.to_vec())], &["deploy/latin1.yaml:7", "not valid UTF-8"]).await;
}

#[tokio::test]
async fn an_id_defined_twice_names_both_places() {
    let s = synced().await;
    let copy = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team\ndata:\n  v: \"2\"\n";
    s.refused(
        vec![file("deploy/zz-copy.yaml", copy)],
        &["defined twice", "deploy/good.yaml:6", "deploy/zz-copy.yaml:1"],
    )
    .await;
    let keys = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys\n  namespace: team\ndata:\n  v: a\n  v: b\n";
    s.refused(vec![file("deploy/keys.yaml", keys)], &["deploy/keys.yaml:8", "duplicate"]).await;
}

#[tokio::test]
async fn garbage_and_empty_files_are_errors_or_skipped_but_never_prune() {
    let s = synced().await;
    for (name, text) in [
        ("tabs", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: tab\n"),
        ("unclosed", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"),
        ("sequence", "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n"),
        ("nameless", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"),
    ] {
        let path = format!("deploy/{name}.yaml");
        s.refused(vec![file(&path, text)], &[&path]).await;
        s.source.push_external(&[FileChange::delete(&path)], "clean up").unwrap();
    }
    // What is not an object is skipped and listed, and costs nothing.
    let report =
        s.accepted(vec![file("deploy/empty.yaml", ""), file("deploy/ci.yaml", "on: [push]\njobs: {}\n")]).await;
    let skipped: Vec<&str> = report.skipped.iter().map(|k| k.path.as_str()).collect();
    assert_eq!(skipped, ["deploy/ci.yaml"]);
}

/// A source whose files carry paths no honest adapter gives (`..`, absolute): the reader must
/// refuse them itself.
struct EscapingSource {
    inner: MemorySource,
    path: &'static str,
    escape: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Source for EscapingSource {
    async fn refresh(&self) -> Result<Revision> {
        self.inner.refresh().await
    }
    async fn files(&self, revision: &Revision, paths: &[String]) -> Result<Vec<SourceFile>> {
        let mut files = self.inner.files(revision, paths).await?;
        if self.escape.load(std::sync::atomic::Ordering::SeqCst) {
            let content = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: out, namespace: team}\n".to_vec();
            files.push(SourceFile { path: self.path.into(), content });
        }
        Ok(files)
    }
    async fn read_file(&self, revision: &Revision, path: &str) -> Result<Vec<u8>> {
        self.inner.read_file(revision, path).await
    }
    async fn commit(&self, request: &CommitRequest) -> Result<Revision> {
        self.inner.commit(request).await
    }
    async fn sync_marker(&self) -> Result<Option<Revision>> {
        self.inner.sync_marker().await
    }
    async fn set_sync_marker(&self, revision: &Revision) -> Result<()> {
        self.inner.set_sync_marker(revision).await
    }
}

#[tokio::test]
async fn paths_that_escape_the_repository_are_refused() {
    for path in ["deploy/../../etc/passwd.yaml", "/etc/flux.yaml", "deploy/a\\..\\..\\b.yaml"] {
        let inner = MemorySource::with_files([("deploy/good.yaml", GOOD)]).unwrap();
        let source = Arc::new(EscapingSource { inner: inner.clone(), path, escape: false.into() });
        let s = synced_over(inner, source.clone()).await;
        source.escape.store(true, std::sync::atomic::Ordering::SeqCst);
        s.refused(vec![file("deploy/other.yaml", "# a new revision\n")], &[path]).await;
    }
    // The in-memory source refuses them at the door too.
    let err = MemorySource::with_files([("../x.yaml", "a: 1")]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("../x.yaml"), "{err}");
}

#[tokio::test]
async fn bad_filters_and_image_references_are_named_and_prune_nothing() {
    let s = synced().await;
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: odd\n  namespace: team\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.app: \"regex:([\"\n    fluxcd.io/tag.side: \"semver:~~1\"\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: nginx:1\n        - name: side\n          image: \"NGINX::latest\"\n";
    // A Deployment the API server would take: the sync applies it and prunes nothing.
    s.accepted(vec![file("deploy/odd.yaml", text)]).await;
    let files = [SourceFile { path: "deploy/odd.yaml".into(), content: text.as_bytes().to_vec() }];
    let manifests = read_repository_manifests(&files, &ManifestOptions::default()).unwrap().manifests;
    let odd = workloads_with_errors(&manifests).pop().expect("the workload is listed");
    let errors = odd.error_text();
    for want in ["deploy/odd.yaml:1", "team:deployment/odd", "fluxcd.io/tag.app", "fluxcd.io/tag.side", "NGINX::latest"]
    {
        assert!(errors.contains(want), "{want} not in {errors}");
    }
    assert!(odd.container("side").is_none(), "a container whose image cannot be read is not offered for updates");
}
