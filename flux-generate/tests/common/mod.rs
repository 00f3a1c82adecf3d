//! Shared by the end-to-end tests against a real kube-apiserver.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use flux_core::automation::{ImageSelector, ReleaseSpec, WorkloadSelector};
use flux_core::memory::{MemoryImage, MemoryRegistry, MemorySource};
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine};
use flux_core::{ChangeCause, Cluster, ImageRepo, ObjectRef, Source, SyncIdentity};
use flux_generate::{GenerateConfig, RepoGenerator};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use serde_json::Value;

/// Whether `kubectl` (for `kubectl kustomize`) is there; says so loudly outside CI, fails in CI.
pub fn kubectl_present() -> bool {
    flux_testenv::require("kubectl (for `kubectl kustomize`)", flux_testenv::find_program("kubectl")).is_some()
}

/// A runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// An admin handle on `server`.
pub async fn cluster(server: &KubeApiServer) -> KubeCluster {
    KubeCluster::from_kubeconfig(&server.kubeconfig(ADMIN), ClusterOptions::default())
        .await
        .expect("a client from the kubeconfig")
}

/// A repository holding `files`.
pub fn repository(files: &[(&str, &str)]) -> MemorySource {
    MemorySource::with_files(files.iter().map(|(p, c)| (p.to_string(), c.to_string()))).expect("a repository")
}

/// A sync engine for the whole repository with garbage collection on.
pub fn engine(source: &MemorySource, cluster: &KubeCluster, generator: Arc<RepoGenerator>) -> SyncEngine {
    let mut config = SyncConfig::new(SyncIdentity::new("e2e").expect("identity"), Vec::<String>::new());
    config.garbage_collection = GarbageCollection::On;
    SyncEngine::new(Arc::new(source.clone()), Arc::new(cluster.clone()), generator, config)
}

/// A generator with manifest generation on and `timeout` per command.
pub fn generator(manifest_generation: bool, timeout: std::time::Duration) -> Arc<RepoGenerator> {
    Arc::new(RepoGenerator::new(GenerateConfig { manifest_generation, timeout, ..GenerateConfig::default() }))
}

/// The live object `id` (`ns:kind/name`) of `api_version`, if it exists.
pub async fn live(cluster: &KubeCluster, api_version: &str, id: &str) -> Option<Value> {
    let reference = ObjectRef { api_version: api_version.into(), id: id.parse().expect("an id") };
    cluster.get(&reference).await.expect("get").map(|o| o.to_value())
}

/// The first container image of the live Deployment `id`.
pub async fn live_image(cluster: &KubeCluster, id: &str) -> Option<String> {
    let object = live(cluster, "apps/v1", id).await?;
    object.pointer("/spec/template/spec/containers/0/image").and_then(Value::as_str).map(str::to_owned)
}

/// The text of `path` at the head of `source`.
pub async fn text(source: &MemorySource, path: &str) -> String {
    let head = source.refresh().await.expect("head");
    String::from_utf8(source.read_file(&head, path).await.expect("read")).expect("UTF-8")
}

/// The lines of `after` that are not in `before`, and the lines of `before` that are not in `after`.
pub fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let added = after.lines().filter(|l| !before.lines().any(|b| b == *l)).map(str::to_owned).collect();
    let removed = before.lines().filter(|l| !after.lines().any(|a| a == *l)).map(str::to_owned).collect();
    (added, removed)
}

/// A Deployment manifest with one container `app`.
pub fn deployment_yaml(name: &str, image: &str, annotations: &[(&str, &str)]) -> String {
    let mut out = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n");
    if !annotations.is_empty() {
        out.push_str("  annotations:\n");
        for (k, v) in annotations {
            out.push_str(&format!("    {k}: \"{v}\"\n"));
        }
    }
    out.push_str(&format!(
        "spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    ));
    out
}

/// A registry holding `tags` of `repository`, each a second newer than the one before.
pub fn memory_registry(repository: &str, tags: &[&str]) -> MemoryRegistry {
    let registry = MemoryRegistry::new();
    let repo: ImageRepo = repository.parse().expect("a repository");
    for (i, tag) in tags.iter().enumerate() {
        let created = jiff::Timestamp::from_second(1_700_000_000 + i as i64).expect("a time");
        registry.push(&repo, tag, MemoryImage::created(created));
    }
    registry
}

/// A release of `image` to `workload` alone.
pub fn release_spec(workload: &str, image: &str) -> ReleaseSpec {
    ReleaseSpec {
        workloads: WorkloadSelector::Only(vec![workload.parse().expect("an id")]),
        excludes: Vec::new(),
        image: ImageSelector::Image(image.parse().expect("an image")),
        dry_run: false,
        force: false,
        cause: ChangeCause::default(),
    }
}

/// Captures every log line of this test binary, to prove no secret is logged.
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Capture(writer.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
