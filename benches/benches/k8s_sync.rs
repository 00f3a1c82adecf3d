//! Syncing 1,000 objects (10 namespaces of Deployments, Services and ConfigMaps) into a real
//! kube-apiserver with flux-k8s, against `kubectl apply --server-side -f` of the same files,
//! each on its own fresh API server in the same run:
//!
//! - cold: everything is new (each iteration uses new namespaces, so it stays cold);
//! - no-op: nothing changed. flux-k8s does what the sync engine does then: list what the identity
//!   manages, compare checksums and drift, apply nothing. kubectl sends every object again.
//!
//! Writes during the no-op runs are counted from each server's audit log. The ratios and write
//! counts are printed at the end; `benches/README.md` records them.
//!
//! Needs `KUBEBUILDER_ASSETS` (scripts/kube-assets.sh) and `kubectl`.

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use flux_core::cluster::{CHECKSUM_ANNOTATION, GC_MARK_LABEL};
use flux_core::{ApplyOutcome, Cluster, KubeObject, SyncIdentity, WriteOptions};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use serde_json::json;

const NAMESPACES: usize = 10;
/// Per namespace: the Namespace and 33 each of Deployments, Services and ConfigMaps.
const PER_KIND: usize = 33;

/// The repository of one iteration, in stage order: Namespaces, ConfigMaps, Services, Deployments.
fn repository(prefix: &str, identity: &SyncIdentity) -> Vec<KubeObject> {
    let mut objects = Vec::new();
    let namespaces: Vec<String> = (0..NAMESPACES).map(|n| format!("{prefix}-{n}")).collect();
    for ns in &namespaces {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    for ns in &namespaces {
        for i in 0..PER_KIND {
            objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("config-{i}"), "namespace": ns},
                "data": {"settings.yaml": format!("replicas: {i}\nlevel: info\n")}}));
        }
    }
    for ns in &namespaces {
        for i in 0..PER_KIND {
            // A protocol on every port: Kubernetes 1.20's server-side apply needs it.
            objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}"), "namespace": ns},
                "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
        }
    }
    for ns in &namespaces {
        for i in 0..PER_KIND {
            objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{i}"), "namespace": ns},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                    "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                        "spec": {"containers": [{"name": "app", "image": format!("registry.example.com/team/app-{i}:1.0.{i}"),
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "LEVEL", "value": "info"}]}]}}}}));
        }
    }
    objects
        .into_iter()
        .map(|value| {
            let checksum = format!("{:016x}", fnv(value.to_string().as_bytes()));
            let mut object = KubeObject::from_value(value, None).expect("valid object");
            object.set_label(GC_MARK_LABEL, identity.as_str());
            object.set_annotation(CHECKSUM_ANNOTATION, &checksum);
            object
        })
        .collect()
}

/// A checksum of a manifest, as the sync engine records one.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// Writes the repository as kubectl reads it: Namespaces first (kubectl reads files in order).
fn write_files(dir: &Path, objects: &[KubeObject]) {
    std::fs::create_dir_all(dir).expect("create the manifest folder");
    let (namespaces, rest): (Vec<_>, Vec<_>) = objects.iter().partition(|o| o.kind() == "Namespace");
    let yaml = |objects: &[&KubeObject]| {
        objects
            .iter()
            .map(|o| serde_json::to_string(&o.to_value()).expect("json is yaml"))
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    std::fs::write(dir.join("0-namespaces.yaml"), yaml(&namespaces)).expect("write manifests");
    for (i, chunk) in rest.chunks(100).enumerate() {
        std::fs::write(dir.join(format!("{:02}-objects.yaml", i + 1)), yaml(chunk)).expect("write manifests");
    }
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

/// What a sync does: apply what is new, changed or drifted (all of it when cold, none on a no-op).
async fn sync(cluster: &KubeCluster, identity: &SyncIdentity, objects: &[KubeObject]) -> usize {
    let managed = cluster.managed(identity).await.expect("managed");
    let current: std::collections::HashMap<_, _> = managed.iter().map(|m| (&m.reference.id, m)).collect();
    let todo: Vec<KubeObject> = objects
        .iter()
        .filter(|o| {
            current.get(o.id()).is_none_or(|m| m.drifted || m.checksum.as_deref() != o.annotation(CHECKSUM_ANNOTATION))
        })
        .cloned()
        .collect();
    if todo.is_empty() {
        return 0;
    }
    let results = cluster.apply(&todo, WriteOptions::default()).await.expect("apply");
    assert!(!results.iter().any(|r| matches!(r.outcome, ApplyOutcome::Failed { .. })), "{results:?}");
    todo.len()
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
    let identity = SyncIdentity::new("bench").expect("valid identity");
    let round = Cell::new(0usize);
    let last = [Cell::new(String::new()), Cell::new(String::new())];
    let fresh = |tool: usize| {
        round.set(round.get() + 1);
        let prefix = format!("{}-{}", ["flux", "kubectl"][tool], round.get());
        last[tool].set(prefix.clone());
        repository(&prefix, &identity)
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
                let objects = fresh(0);
                let start = Instant::now();
                let applied = runtime.block_on(sync(&cluster, &identity, &objects));
                total += start.elapsed();
                assert_eq!(applied, objects.len());
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
                write_files(&dir, &fresh(1));
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
    let last_flux = repository(&last[0].take(), &identity);
    let noop_dir = files.path().join("noop");
    write_files(&noop_dir, &repository(&last[1].take(), &identity));
    let writes_before = [ours.write_requests(ADMIN), theirs.write_requests(ADMIN)];
    let mut noop = [Duration::ZERO; 2];
    let mut noop_runs = [0u32; 2];
    group.bench_function("no-op: flux-k8s", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                assert_eq!(runtime.block_on(sync(&cluster, &identity, &last_flux)), 0, "a no-op applies nothing");
            }
            let total = start.elapsed();
            noop[0] += total;
            noop_runs[0] += n as u32;
            total
        })
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
    println!("\nk8s sync of {} objects:", last_flux.len());
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
