//! `fluxd --once` as a user runs it (the release binary, a `file://` repository, a kubeconfig),
//! on 1,000 and 10,000 objects, cold and no-op, against `kubectl apply --server-side -f` and a
//! raw limit, each on its own fresh kube-apiserver (v1.20.2 + etcd) in the same run:
//!
//! - **fluxd**: cold (nothing in the cluster, an empty git mirror and discovery cache), then
//!   no-op runs (a new process each time, with the git mirror, the discovery cache and the
//!   unit's inventory the cold run left, as a restarted daemon with its directories kept);
//! - **kubectl**: cold, then the same files again (kubectl sends every object each time);
//! - **raw limit**: a minimal client in this process sending the same server-side-apply PATCHes
//!   64 at a time (Namespaces first), nothing else: no discovery, no reading of manifests.
//!
//! Every request is counted from each server's audit log, writes separately; peak RSS of fluxd
//! and kubectl comes from `/usr/bin/time` (`%M`). Figures are printed as a table;
//! `benches/README.md` records them.
//!
//! `cargo build --release -p examples --example fluxd` first. Needs `KUBEBUILDER_ASSETS`,
//! `kubectl`, `git` and `/usr/bin/time`. `FLUX_BENCH_SIZES` (default `1000,10000`) and
//! `FLUX_BENCH_NOOP_RUNS` (default 3) change the sizes and the no-op repetitions;
//! `FLUX_BENCH_FLUXD` runs another fluxd binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

const ALL_VERBS: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
/// Objects per namespace: the Namespace and 33 each of ConfigMaps, Services and Deployments.
const PER_NAMESPACE: usize = 100;

/// The objects of `size` (a multiple of 100): `size / 100` namespaces.
fn objects(size: usize) -> Vec<Vec<Value>> {
    (0..size / PER_NAMESPACE)
        .map(|n| {
            let ns = format!("bench-{n}");
            let mut objects = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})];
            for i in 0..(PER_NAMESPACE - 1) / 3 {
                objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("config-{i}"), "namespace": ns},
                    "data": {"settings.yaml": format!("replicas: {i}\nlevel: info\n")}}));
                objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}"), "namespace": ns},
                    "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
                objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{i}"), "namespace": ns},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                        "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                            "spec": {"containers": [{"name": "app", "image": format!("registry.example.com/team/app-{i}:1.0.{i}"),
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "env": [{"name": "LEVEL", "value": "info"}]}]}}}}));
            }
            objects
        })
        .collect()
}

/// One file per namespace, its Namespace first; file names sort Namespaces before the rest
/// for kubectl, which applies files in order: `00-namespaces.yaml`, then `<n>-<ns>.yaml`.
fn write_manifests(dir: &Path, namespaces: &[Vec<Value>]) {
    let yaml = |docs: &[Value]| docs.iter().map(|d| format!("---\n{d}\n")).collect::<String>();
    std::fs::create_dir_all(dir).expect("create the manifest folder");
    let heads: Vec<Value> = namespaces.iter().map(|objects| objects[0].clone()).collect();
    std::fs::write(dir.join("00-namespaces.yaml"), yaml(&heads)).expect("write");
    for (n, objects) in namespaces.iter().enumerate() {
        std::fs::write(dir.join(format!("{:04}-bench-{n}.yaml", n + 1)), yaml(&objects[1..])).expect("write");
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A repository with the manifests under `deploy/`, on `main`.
fn repository(dir: &Path, namespaces: &[Vec<Value>]) {
    write_manifests(&dir.join("deploy"), namespaces);
    git(dir, &["init", "--quiet", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["-c", "user.name=bench", "-c", "user.email=bench@flux.invalid", "commit", "--quiet", "-m", "manifests"]);
}

/// What one process run cost.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    /// User plus system CPU time: on a loaded machine, the figure that does not depend on load.
    cpu: Duration,
    peak_rss_kib: u64,
    requests: usize,
    writes: usize,
}

/// Runs `program args` under `/usr/bin/time`, counting its requests on `server`.
fn timed(server: &KubeApiServer, program: &Path, args: &[String], envs: &[(&str, &str)], work: &Path) -> Run {
    let report = work.join("time.txt");
    let (requests, writes) = (server.requests(ADMIN, &ALL_VERBS), server.requests(ADMIN, &WRITE_VERBS));
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run under /usr/bin/time");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rss = std::fs::read_to_string(&report).expect("time's report");
    // The last line is ours (a program that exits non-zero gets a line before it).
    let fields: Vec<&str> = rss.lines().last().unwrap_or_default().split_whitespace().collect();
    let [user, system, peak] = fields[..] else { panic!("time's report: {rss}") };
    let seconds = |f: &str| f.parse::<f64>().expect("seconds in time's report");
    let peak_rss_kib = peak.parse().expect("peak RSS in time's report");
    Run {
        wall,
        cpu: Duration::from_secs_f64(seconds(user) + seconds(system)),
        peak_rss_kib,
        requests: server.requests(ADMIN, &ALL_VERBS) - requests,
        writes: server.requests(ADMIN, &WRITE_VERBS) - writes,
    }
}

fn resource(object: &Value) -> ApiResource {
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = match object["apiVersion"].as_str().expect("apiVersion").split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), object["apiVersion"].as_str().expect("apiVersion").to_owned()),
    };
    let plural = format!("{}s", kind.to_ascii_lowercase());
    ApiResource {
        api_version: object["apiVersion"].as_str().expect("apiVersion").to_owned(),
        group,
        version,
        kind: kind.into(),
        plural,
    }
}

/// The raw limit: the same server-side-apply PATCHes, 64 in flight, Namespaces first.
async fn raw_apply(client: &kube::Client, namespaces: &[Vec<Value>]) -> Duration {
    let params = PatchParams::apply("raw-bench").force();
    let send = |object: &Value| {
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource(object)),
            None => Api::all_with(client.clone(), &resource(object)),
        };
        let name = object["metadata"]["name"].as_str().expect("name").to_owned();
        let (object, params) = (object.clone(), params.clone());
        async move { api.patch(&name, &params, &Patch::Apply(&object)).await.map(|_| ()) }
    };
    let start = Instant::now();
    for wave in [
        namespaces.iter().map(|o| &o[0]).collect::<Vec<_>>(),
        namespaces.iter().flat_map(|o| &o[1..]).collect::<Vec<_>>(),
    ] {
        let results: Vec<_> = stream::iter(wave.into_iter().map(send)).buffer_unordered(64).collect().await;
        assert!(results.iter().all(Result::is_ok), "raw apply failed: {:?}", results.iter().find(|r| r.is_err()));
    }
    start.elapsed()
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs[runs.len() / 2]
}

struct Figures {
    size: usize,
    fluxd_cold: Run,
    fluxd_noop: Run,
    kubectl_cold: Run,
    kubectl_noop: Run,
    raw_cold: Duration,
}

fn measure(size: usize, fluxd: &Path, noop_runs: usize) -> Option<Figures> {
    let namespaces = objects(size);
    let work = tempfile::tempdir().expect("temp dir");
    let repo = work.path().join("repo");
    repository(&repo, &namespaces);
    let manifests = repo.join("deploy");
    let token = ("FLUX_API_TOKEN", "bench-token");
    // `FLUX_BENCH_FLUXD_ENV=KEY=VALUE`: one more variable for fluxd (say `MALLOC_ARENA_MAX=2`).
    let extra = std::env::var("FLUX_BENCH_FLUXD_ENV").unwrap_or_default();
    let extra = extra.split_once('=');
    let envs: Vec<(&str, &str)> = [Some(token), extra].into_iter().flatten().collect();

    // fluxd.
    let ours = KubeApiServer::start()?;
    let args = || -> Vec<String> {
        vec![
            format!("--git-url=file://{}", repo.display()),
            "--git-path=deploy".into(),
            "--git-branch=main".into(),
            format!("--kubeconfig={}", ours.kubeconfig(ADMIN).display()),
            "--registry-disable-scanning".into(),
            format!("--k8s-discovery-cache-dir={}", work.path().join("discovery").display()),
            format!("--git-mirror-dir={}", work.path().join("mirror").display()),
            format!("--state-dir={}", work.path().join("state").display()),
            "--once".into(),
        ]
    };
    // `FLUX_BENCH_FLUXD_WRAP="heaptrack -o /tmp/fluxd"`: fluxd runs under that program, to
    // profile it (the times and RSS are then the wrapper's).
    let wrap: Vec<String> =
        std::env::var("FLUX_BENCH_FLUXD_WRAP").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    let (program, fluxd_args) = match wrap.split_first() {
        Some((wrapper, wrapper_args)) => {
            let mut all = wrapper_args.to_vec();
            all.push(fluxd.display().to_string());
            all.extend(args());
            (PathBuf::from(wrapper), all)
        }
        None => (fluxd.to_owned(), args()),
    };
    let fluxd_cold = timed(&ours, &program, &fluxd_args, &envs, work.path());
    let fluxd_noop = median((0..noop_runs).map(|_| timed(&ours, &program, &fluxd_args, &envs, work.path())).collect());
    drop(ours);

    if !contenders().iter().any(|c| c == "kubectl") {
        let none = Run { wall: Duration::ZERO, cpu: Duration::ZERO, peak_rss_kib: 0, requests: 0, writes: 0 };
        return Some(Figures {
            size,
            fluxd_cold,
            fluxd_noop,
            kubectl_cold: none,
            kubectl_noop: none,
            raw_cold: Duration::ZERO,
        });
    }

    // kubectl.
    let theirs = KubeApiServer::start()?;
    let kubectl = flux_testenv::find_program("kubectl")?;
    let kubectl_args = vec![
        format!("--kubeconfig={}", theirs.kubeconfig(ADMIN).display()),
        "apply".into(),
        "--server-side".into(),
        "-f".into(),
        manifests.display().to_string(),
    ];
    let kubectl_cold = timed(&theirs, &kubectl, &kubectl_args, &[], work.path());
    let kubectl_noop =
        median((0..noop_runs).map(|_| timed(&theirs, &kubectl, &kubectl_args, &[], work.path())).collect());
    drop(theirs);

    // The raw limit.
    let raw = KubeApiServer::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let raw_cold = runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(raw.kubeconfig(ADMIN)).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("config");
        let client = flux_k8s::kube_client(config).expect("client");
        raw_apply(&client, &namespaces).await
    });
    Some(Figures { size, fluxd_cold, fluxd_noop, kubectl_cold, kubectl_noop, raw_cold })
}

/// `FLUX_BENCH_CONTENDERS`: `fluxd,kubectl` (default) measures all three; `fluxd` alone skips
/// kubectl and the raw limit (their columns read 0), to profile fluxd quickly.
fn contenders() -> Vec<String> {
    std::env::var("FLUX_BENCH_CONTENDERS")
        .unwrap_or_else(|_| "fluxd,kubectl".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list.
    }
    // `FLUX_BENCH_FLUXD`: another binary (an older build, to compare).
    let fluxd = std::env::var_os("FLUX_BENCH_FLUXD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/examples/fluxd"));
    if !fluxd.exists() {
        eprintln!("{} is missing: cargo build --release -p examples --example fluxd", fluxd.display());
        return;
    }
    for tool in ["git", "kubectl"] {
        if flux_testenv::find_program(tool).is_none() {
            eprintln!("{tool} is not installed: benchmark skipped");
            return;
        }
    }
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("/usr/bin/time is missing (apt-get install time): benchmark skipped");
        return;
    }
    let sizes: Vec<usize> = std::env::var("FLUX_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let noop_runs: usize = std::env::var("FLUX_BENCH_NOOP_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(3).max(1);
    let mut all = Vec::new();
    for size in sizes {
        eprintln!("measuring {size} objects...");
        match measure(size, &fluxd, noop_runs) {
            Some(f) => all.push(f),
            None => eprintln!("no kube-apiserver (KUBEBUILDER_ASSETS): benchmark skipped"),
        }
    }
    let s = |d: Duration| d.as_secs_f64();
    let mib = |r: &Run| r.peak_rss_kib as f64 / 1024.0;
    println!("\nfluxd --once, whole process (no-op: median of {noop_runs} new processes)\n");
    println!(
        "| objects | case | fluxd | kubectl apply --server-side | raw limit | fluxd / kubectl | fluxd / raw | fluxd requests (writes) | kubectl requests (writes) | fluxd peak RSS | kubectl peak RSS | fluxd CPU | kubectl CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        println!(
            "| {} | cold | {:.2} s | {:.2} s | {:.2} s | {:.3} | {:.2} | {} ({}) | {} ({}) | {:.0} MiB | {:.0} MiB | {:.2} s | {:.2} s |",
            f.size,
            s(f.fluxd_cold.wall),
            s(f.kubectl_cold.wall),
            s(f.raw_cold),
            s(f.fluxd_cold.wall) / s(f.kubectl_cold.wall),
            s(f.fluxd_cold.wall) / s(f.raw_cold),
            f.fluxd_cold.requests,
            f.fluxd_cold.writes,
            f.kubectl_cold.requests,
            f.kubectl_cold.writes,
            mib(&f.fluxd_cold),
            mib(&f.kubectl_cold),
            s(f.fluxd_cold.cpu),
            s(f.kubectl_cold.cpu)
        );
        println!(
            "| {} | no-op | {:.3} s | {:.2} s | | {:.3} | | {} ({}) | {} ({}) | {:.0} MiB | {:.0} MiB | {:.3} s | {:.2} s |",
            f.size,
            s(f.fluxd_noop.wall),
            s(f.kubectl_noop.wall),
            s(f.fluxd_noop.wall) / s(f.kubectl_noop.wall),
            f.fluxd_noop.requests,
            f.fluxd_noop.writes,
            f.kubectl_noop.requests,
            f.kubectl_noop.writes,
            mib(&f.fluxd_noop),
            mib(&f.kubectl_noop),
            s(f.fluxd_noop.cpu),
            s(f.kubectl_noop.cpu)
        );
    }
    if let [small, large] = &all[..] {
        let growth = |a: f64, b: f64| b / a;
        println!("\ngrowth from {} to {} objects ({}x):", small.size, large.size, large.size / small.size);
        println!(
            "  fluxd cold {:.1}x, no-op {:.1}x, peak RSS cold {:.1}x; kubectl cold {:.1}x, no-op {:.1}x; raw {:.1}x",
            growth(s(small.fluxd_cold.wall), s(large.fluxd_cold.wall)),
            growth(s(small.fluxd_noop.wall), s(large.fluxd_noop.wall)),
            growth(mib(&small.fluxd_cold), mib(&large.fluxd_cold)),
            growth(s(small.kubectl_cold.wall), s(large.kubectl_cold.wall)),
            growth(s(small.kubectl_noop.wall), s(large.kubectl_noop.wall)),
            growth(s(small.raw_cold), s(large.raw_cold)),
        );
    }
}
