//! Horizontal scale: 1,000 units × 4 objects (a ConfigMap, a Service, a ServiceAccount and a
//! Deployment each, all in `default`), one `fluxd --config` of 1,000 units on one `file://`
//! repository (one path per unit), against a fresh kube-apiserver (v1.20.2 + etcd) per run:
//!
//! - **1 replica**: plain fluxd (no high availability);
//! - **3 replicas**: three fluxd processes with `--ha-namespace` (15 s Leases), started at once.
//!
//! The time is from starting the processes until the audit log shows a write of every one of
//! the 4,000 objects; peak RSS is each process's `VmHWM` (Linux) just before it is stopped
//! (SIGTERM). Lease requests are counted from the audit log.
//!
//! `cargo build --release -p examples --example fluxd` first. Needs `KUBEBUILDER_ASSETS` and
//! `git`. `FLUX_BENCH_FLUXD` names another binary; `FLUX_BENCH_HA_UNITS` (default 1000) and `FLUX_BENCH_HA_REPLICAS` (default `1,3`)
//! change the size and the runs; `FLUX_BENCH_FLUXD_WRAP` runs fluxd under a profiler. Figures go to `benches/README.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use serde_json::Value;

/// How long one run may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(1800);

fn unit_files(unit: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{unit}\n  namespace: default\ndata:\n  unit: {unit}\n\
         ---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-{unit}\n  namespace: default\n\
         ---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{unit}\n  namespace: default\nspec:\n  selector:\n    app: {unit}\n  \
         ports:\n  - port: 80\n    targetPort: 8080\n    protocol: TCP\n\
         ---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{unit}\n  namespace: default\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels:\n      app: {unit}\n  template:\n    metadata:\n      labels:\n        app: {unit}\n    spec:\n      \
         containers:\n      - name: app\n        image: registry.example.com/team/{unit}:1.0.0\n        ports:\n        - containerPort: 8080\n          protocol: TCP\n"
    )
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The repository (`<unit>/objects.yaml` per unit, on `main`) and the config file of the units.
fn setup(dir: &Path, units: &[String]) -> PathBuf {
    let repo = dir.join("repo");
    for unit in units {
        std::fs::create_dir_all(repo.join(unit)).expect("create a unit's folder");
        std::fs::write(repo.join(unit).join("objects.yaml"), unit_files(unit)).expect("write");
    }
    git(&repo, &["init", "--quiet", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["-c", "user.name=bench", "-c", "user.email=bench@flux.invalid", "commit", "--quiet", "-m", "units"]);
    let mut config = String::from("units:\n");
    for unit in units {
        config.push_str(&format!(
            "- name: {unit}\n  git-url: file://{}\n  git-branch: main\n  git-path: [{unit}]\n  git-poll-interval: 1h\n  \
             sync-interval: 1h\n  registry-disable-scanning: true\n",
            repo.display()
        ));
    }
    let path = dir.join("fluxd.yaml");
    std::fs::write(&path, config).expect("write the config");
    path
}

/// The objects written so far (`resource/name`), and the Lease requests, from the audit log.
fn progress(server: &KubeApiServer) -> (BTreeSet<String>, usize) {
    let mut written = BTreeSet::new();
    let mut leases = 0;
    for line in server.audit_log().lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["stage"] != "ResponseComplete" {
            continue;
        }
        let resource = v["objectRef"]["resource"].as_str().unwrap_or_default();
        if resource == "leases" {
            leases += usize::from(v["objectRef"]["name"].as_str().is_some_and(|n| n.starts_with("flux-")));
            continue;
        }
        let code = v["responseStatus"]["code"].as_u64().unwrap_or(0);
        if ["create", "patch", "update"].contains(&v["verb"].as_str().unwrap_or_default()) && (200..300).contains(&code)
        {
            let name = v["objectRef"]["name"].as_str().unwrap_or_default();
            if ["cm-", "sa-", "svc-", "app-"].iter().any(|p| name.starts_with(p)) {
                written.insert(format!("{resource}/{name}"));
            }
        }
    }
    (written, leases)
}

/// Peak resident memory of `pid` so far, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Figures {
    replicas: usize,
    synced: Duration,
    peak_rss_mib: Vec<f64>,
    lease_requests: usize,
}

fn run(fluxd: &Path, units: &[String], replicas: usize) -> Option<Figures> {
    let server = KubeApiServer::start()?;
    let work = tempfile::tempdir().expect("temp dir");
    let config = setup(work.path(), units);
    let start = Instant::now();
    let mut children: Vec<Child> = (0..replicas)
        .map(|i| {
            // `FLUX_BENCH_FLUXD_WRAP="heaptrack -o FILE"`: fluxd runs under that program, to
            // profile it (the RSS is then the wrapper's); each run is its own process group.
            let wrap: Vec<String> = std::env::var("FLUX_BENCH_FLUXD_WRAP")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            let mut command = match wrap.split_first() {
                Some((wrapper, args)) => {
                    let mut c = Command::new(wrapper);
                    c.args(args).arg(fluxd);
                    c
                }
                None => Command::new(fluxd),
            };
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            command
                .arg(format!("--config={}", config.display()))
                .arg(format!("--kubeconfig={}", server.kubeconfig(ADMIN).display()))
                .arg(format!("--k8s-discovery-cache-dir={}", work.path().join(format!("discovery-{i}")).display()))
                .arg(format!("--git-mirror-dir={}", work.path().join(format!("mirror-{i}")).display()))
                .arg("--listen=127.0.0.1:0")
                .env("FLUX_API_TOKEN", "bench-token")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(work.path().join(format!("fluxd-{i}.log"))).expect("log"));
            if replicas > 1 {
                command.arg("--ha-namespace=default").arg(format!("--ha-replica-id=replica-{i}"));
            }
            command.spawn().expect("start fluxd")
        })
        .collect();
    let want = units.len() * 4;
    let synced = loop {
        let (written, _) = progress(&server);
        if written.len() >= want {
            break start.elapsed();
        }
        for (i, child) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(work.path().join(format!("fluxd-{i}.log"))).unwrap_or_default();
                panic!("fluxd {i} exited ({status}): {log}");
            }
        }
        assert!(start.elapsed() < PATIENCE, "only {} of {want} objects written", written.len());
        std::thread::sleep(Duration::from_millis(500));
    };
    let peak_rss_mib = children.iter().map(|c| peak_rss_kib(c.id()) as f64 / 1024.0).collect();
    for child in &mut children {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", child.id())]).status();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    let (_, lease_requests) = progress(&server);
    Some(Figures { replicas, synced, peak_rss_mib, lease_requests })
}

fn main() {
    // `FLUX_BENCH_FLUXD`: another fluxd binary (a debug build, to try the bench quickly).
    let fluxd = std::env::var_os("FLUX_BENCH_FLUXD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/examples/fluxd"));
    assert!(fluxd.is_file(), "build it first: cargo build --release -p examples --example fluxd");
    let size: usize = std::env::var("FLUX_BENCH_HA_UNITS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let runs: Vec<usize> = std::env::var("FLUX_BENCH_HA_REPLICAS")
        .unwrap_or_else(|_| "1,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let units: Vec<String> = (0..size).map(|i| format!("u{i}")).collect();
    println!("fluxd_ha: {size} units x 4 objects");
    println!("| replicas | all synced | peak RSS per replica (MiB) | Lease requests |");
    println!("|---|---|---|---|");
    for replicas in runs {
        let Some(f) = run(&fluxd, &units, replicas) else { return };
        let rss: Vec<String> = f.peak_rss_mib.iter().map(|m| format!("{m:.0}")).collect();
        println!("| {} | {:.1} s | {} | {} |", f.replicas, f.synced.as_secs_f64(), rss.join(", "), f.lease_requests);
    }
}
