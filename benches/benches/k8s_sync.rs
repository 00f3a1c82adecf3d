//! Syncing 1,000 objects (10 namespaces of Deployments, Services and ConfigMaps) into a real
//! kube-apiserver with flux-core's sync engine and flux-k8s, against
//! `kubectl apply --server-side -f` of the same files, each on its own fresh API server in the
//! same run:
//!
//! - cold: everything is new (each iteration uses new namespaces and a new sync identity, so it
//!   stays cold);
//! - no-op: nothing changed. The engine lists what its identity manages, finds every checksum
//!   recorded and nothing drifted, and applies nothing. kubectl sends every object again.
//!
//! Writes during the no-op runs are counted from each server's audit log. The ratios and write
//! counts are printed at the end; `benches/README.md` records them.
//!
//! Needs `KUBEBUILDER_ASSETS` (scripts/kube-assets.sh) and `kubectl`.

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{SyncConfig, SyncEngine};
use flux_core::{Cluster, SyncIdentity};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use serde_json::{Value, json};

const NAMESPACES: usize = 10;
/// Per namespace: the Namespace and 33 each of Deployments, Services and ConfigMaps.
const PER_KIND: usize = 33;

/// The repository of one iteration: one file of Namespaces (first, as kubectl reads files in
/// order), then one file per namespace.
fn repository(prefix: &str) -> Vec<(String, String)> {
    let yaml = |documents: &[Value]| documents.iter().map(|d| format!("---\n{d}\n")).collect::<String>();
    let namespaces: Vec<String> = (0..NAMESPACES).map(|n| format!("{prefix}-{n}")).collect();
    let mut files = vec![(
        "0-namespaces.yaml".to_owned(),
        yaml(
            &namespaces
                .iter()
                .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .collect::<Vec<_>>(),
        ),
    )];
    for (n, ns) in namespaces.iter().enumerate() {
        let mut objects = Vec::new();
        for i in 0..PER_KIND {
            objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("config-{i}"), "namespace": ns},
                "data": {"settings.yaml": format!("replicas: {i}\nlevel: info\n")}}));
            // A protocol on every port: Kubernetes 1.20's server-side apply needs it.
            objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}"), "namespace": ns},
                "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
            objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{i}"), "namespace": ns},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                    "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                        "spec": {"containers": [{"name": "app", "image": format!("registry.example.com/team/app-{i}:1.0.{i}"),
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "LEVEL", "value": "info"}]}]}}}}));
        }
        files.push((format!("{:02}-{ns}.yaml", n + 1), yaml(&objects)));
    }
    files
}

/// Writes the repository for kubectl.
fn write_files(dir: &Path, files: &[(String, String)]) {
    std::fs::create_dir_all(dir).expect("create the manifest folder");
    for (name, content) in files {
        std::fs::write(dir.join(name), content).expect("write manifests");
    }
}

/// An engine for one repository, under its own identity.
fn engine(cluster: &KubeCluster, prefix: &str, files: &[(String, String)]) -> SyncEngine {
    let source =
        MemorySource::with_files(files.iter().map(|(p, c)| (format!("deploy/{p}"), c.clone()))).expect("repository");
    let config = SyncConfig::new(SyncIdentity::new(prefix).expect("valid identity"), ["deploy"]);
    SyncEngine::new(Arc::new(source), Arc::new(cluster.clone()), Arc::new(ManifestGenerator::default()), config)
}

fn kubectl_apply(server: &KubeApiServer, dir: &Path) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig(ADMIN))
        .args(["apply", "--server-side", "-f"])
        .arg(dir)
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Syncs the engine's head; returns how many objects were applied.
fn sync(runtime: &tokio::runtime::Runtime, engine: &SyncEngine) -> usize {
    let report = runtime.block_on(engine.sync_head()).expect("sync");
    assert!(report.is_success(), "{:?}", report.errors);
    report.applied.len()
}

fn bench(c: &mut Criterion) {
    let (Some(ours), Some(theirs)) = (KubeApiServer::start(), KubeApiServer::start()) else { return };
    if flux_testenv::find_program("kubectl").is_none() {
        eprintln!("kubectl is not installed: benchmark skipped");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let cluster = runtime
        .block_on(KubeCluster::from_kubeconfig(&ours.kubeconfig(ADMIN), ClusterOptions::default()))
        .expect("client");
    let files = tempfile::tempdir().expect("temp dir");
    let round = Cell::new(0usize);
    let last = [Cell::new(String::new()), Cell::new(String::new())];
    let fresh = |tool: usize| {
        round.set(round.get() + 1);
        let prefix = format!("{}-{}", ["flux", "kubectl"][tool], round.get());
        last[tool].set(prefix.clone());
        (prefix.clone(), repository(&prefix))
    };

    let mut group = c.benchmark_group("k8s sync of 1,000 objects");
    // Flat sampling: one or two syncs per sample, not criterion's growing series.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(10));
    let mut cold = [Duration::ZERO; 2];
    let mut runs = [0u32; 2];
    group.bench_function("cold: flux-k8s", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let (prefix, files) = fresh(0);
                let engine = engine(&cluster, &prefix, &files);
                let start = Instant::now();
                let applied = sync(&runtime, &engine);
                total += start.elapsed();
                assert_eq!(applied, NAMESPACES * (1 + 3 * PER_KIND));
            }
            cold[0] += total;
            runs[0] += n as u32;
            total
        })
    });
    group.bench_function("cold: kubectl apply --server-side", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let dir = files.path().join(format!("cold-{}", round.get() + 1));
                write_files(&dir, &fresh(1).1);
                let start = Instant::now();
                kubectl_apply(&theirs, &dir);
                total += start.elapsed();
            }
            cold[1] += total;
            runs[1] += n as u32;
            total
        })
    });

    // No-op: the last cold repository of each, synced again.
    let last_flux = last[0].take();
    let last_flux = engine(&cluster, &last_flux, &repository(&last_flux));
    let noop_dir = files.path().join("noop");
    write_files(&noop_dir, &repository(&last[1].take()));
    let writes_before = [ours.write_requests(ADMIN), theirs.write_requests(ADMIN)];
    let mut noop = [Duration::ZERO; 2];
    let mut noop_runs = [0u32; 2];
    group.bench_function("no-op: flux-k8s", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                assert_eq!(sync(&runtime, &last_flux), 0, "a no-op applies nothing");
            }
            let total = start.elapsed();
            noop[0] += total;
            noop_runs[0] += n as u32;
            total
        })
    });
    // The adapter's share of the no-op: the one `managed()` call (the rest is the engine reading
    // and checksumming the manifests).
    let identity = last_flux.config().identity.clone();
    group.bench_function("no-op: flux-k8s managed() alone", |b| {
        b.iter(|| runtime.block_on(cluster.managed(&identity)).expect("managed"))
    });
    group.bench_function("no-op: kubectl apply --server-side", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                kubectl_apply(&theirs, &noop_dir);
            }
            let total = start.elapsed();
            noop[1] += total;
            noop_runs[1] += n as u32;
            total
        })
    });
    group.finish();
    let writes = [ours.write_requests(ADMIN) - writes_before[0], theirs.write_requests(ADMIN) - writes_before[1]];

    let mean = |d: Duration, n: u32| d.as_secs_f64() / f64::from(n.max(1));
    let (ours_cold, theirs_cold) = (mean(cold[0], runs[0]), mean(cold[1], runs[1]));
    let (ours_noop, theirs_noop) = (mean(noop[0], noop_runs[0]), mean(noop[1], noop_runs[1]));
    println!("\nk8s sync of {} objects:", NAMESPACES * (1 + 3 * PER_KIND));
    println!(
        "  cold:  flux-k8s {ours_cold:.3} s, kubectl {theirs_cold:.3} s, ratio {:.3} (target <= 0.35)",
        ours_cold / theirs_cold
    );
    println!(
        "  no-op: flux-k8s {ours_noop:.3} s, kubectl {theirs_noop:.3} s, ratio {:.3} (target <= 0.05)",
        ours_noop / theirs_noop
    );
    println!(
        "  writes during the no-op runs (audit log): flux-k8s {} in {} syncs, kubectl {} in {} applies",
        writes[0], noop_runs[0], writes[1], noop_runs[1]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
