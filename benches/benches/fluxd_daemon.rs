//! fluxd as a daemon with image automation: the release binary as a user runs it (`fluxd
//! --git-url file://… --registry-insecure-host …`), 1,000 automated Deployments (one file each,
//! `fluxcd.io/automated: "true"` and a tag filter, `semver:^1` by default) in 10 namespaces of a
//! bare `file://` repository, their images spread over 100 repositories x 200 tags in a real
//! Debian `docker-registry`, synced to a real kube-apiserver (v1.20.2 + etcd).
//!
//! Setup: one small image per repository (`1.0.0`, pushed with the test pusher), then the same
//! manifest PUT under the other tags (`1.1.0` … `1.199.0`) through the registry's HTTP API, so
//! every tag of a repository shares one digest. The workloads start at `1.0.0`; the first
//! automation pass moves every one of them to `1.199.0` in one commit.
//!
//! Measured, from starting fluxd: the first sync (the sync tag on the first revision); the
//! registry cache full (fluxd's `flux_registry_calls_total`: every repository's tags listed, and
//! with a time-ordered filter every tag's metadata); the first automation commit (in the bare
//! repository); the automation commit synced (the sync tag on it); the steady state (the second
//! automation pass over a warm cache, then 10 s more). Peak RSS is fluxd's `VmHWM` read at each
//! step (sampled every 250 ms), `VmRSS` at the end; registry requests from the registry's access
//! log (`GET`/`HEAD` under `/v2/` after the setup) and fluxd's `flux_registry_http_requests`.
//!
//! `cargo build --release -p examples --example fluxd` first. Needs `KUBEBUILDER_ASSETS`, `git`
//! and `docker-registry`. Sizes: `FLUX_BENCH_DAEMON_WORKLOADS` (1000), `FLUX_BENCH_DAEMON_REPOS`
//! (100), `FLUX_BENCH_DAEMON_TAGS` (200); `FLUX_BENCH_DAEMON_FILTER` (`semver:^1`; `glob:1.*`
//! makes automation fetch every tag's metadata), `FLUX_BENCH_DAEMON_AUTOMATION_INTERVAL` (`30s`),
//! `FLUX_BENCH_DAEMON_ARGS` (more fluxd flags, space-separated), `FLUX_BENCH_FLUXD` (another
//! binary), `FLUX_BENCH_FLUXD_ENV` (`KEY=VALUE`, one more variable for fluxd) and `FLUX_BENCH_FLUXD_WRAP` (a wrapper such as `heaptrack -o FILE`; the RSS is then
//! the wrapper's process, which is fluxd under heaptrack's preload). Figures go to
//! `benches/README.md`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flux_testenv::git::BareRepo;
use flux_testenv::kube::ADMIN;
use flux_testenv::{KubeApiServer, TestRegistry, free_port};

/// How long one step may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(1800);
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_string(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One HTTP/1.1 request on a kept-alive connection; the status and the body.
fn http(conn: &mut BufReader<TcpStream>, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\r\n",
        conn.get_ref().peer_addr().expect("peer"),
        body.len()
    );
    let stream = conn.get_mut();
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send");
    let mut status_line = String::new();
    conn.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).expect("body");
    (status, body)
}

fn connect(host: &str) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(host).expect("connect to the registry"))
}

/// Pushes `1.0.0` into every repository, then PUTs its manifest under `1.1.0` … as the other
/// tags (4 connections). Returns how long the PUTs took and how many there were.
fn push(registry: &TestRegistry, repos: usize, tags: usize) -> (Duration, usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let pusher = registry.pusher();
    runtime.block_on(async {
        for r in 0..repos {
            let reference = format!("{}/bench/repo{r}:1.0.0", registry.host());
            pusher.push_image(&reference, Some("2026-01-01T00:00:00Z")).await.expect("push");
        }
    });
    let accept = format!("Accept: {OCI_MANIFEST}\r\n");
    let (status, manifest) =
        http(&mut connect(registry.host()), "GET", "/v2/bench/repo0/manifests/1.0.0", &accept, &[]);
    assert_eq!(status, 200, "the pushed manifest: {}", String::from_utf8_lossy(&manifest));
    let puts: Vec<(usize, usize)> = (0..repos).flat_map(|r| (1..tags).map(move |t| (r, t))).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for chunk in puts.chunks(puts.len().div_ceil(4).max(1)) {
            let manifest = &manifest;
            s.spawn(move || {
                let mut conn = connect(registry.host());
                let content_type = format!("Content-Type: {OCI_MANIFEST}\r\n");
                for (r, t) in chunk {
                    let path = format!("/v2/bench/repo{r}/manifests/1.{t}.0");
                    let (status, body) = http(&mut conn, "PUT", &path, &content_type, manifest);
                    assert_eq!(status, 201, "PUT {path}: {}", String::from_utf8_lossy(&body));
                }
            });
        }
    });
    (start.elapsed(), puts.len())
}

/// The repository's files: the namespaces, and one automated Deployment per file.
fn files(registry: &str, workloads: usize, repos: usize, filter: &str) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "apps/namespaces.yaml".to_owned(),
        (0..10)
            .map(|n| format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{n}\n"))
            .collect::<String>(),
    )];
    for i in 0..workloads {
        let team = i % 10;
        files.push((
            format!("apps/team-{team}/svc-{i}.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}\n  namespace: team-{team}\n  annotations:\n    \
                 fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.app: {filter}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      \
                 app: svc-{i}\n  template:\n    metadata:\n      labels:\n        app: svc-{i}\n    spec:\n      containers:\n      \
                 - name: app\n        image: {registry}/bench/repo{repo}:1.0.0\n        ports:\n        - containerPort: 8080\n          \
                 protocol: TCP\n",
                repo = i % repos
            ),
        ));
    }
    files.into_iter().map(|(p, c)| (p, c.into_bytes())).collect()
}

/// `VmHWM` and `VmRSS` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// fluxd's metrics, in Prometheus' text format (empty while it does not answer).
fn metrics(port: u16) -> String {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let mut stream = stream;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// The sum of the samples of `name` whose labels contain every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

fn registry_requests(registry: &TestRegistry) -> usize {
    registry.log().lines().filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/")).count()
}

fn rev(repo: &BareRepo, name: &str) -> Option<String> {
    let out = Command::new("git")
        .current_dir(repo.path())
        .args(["rev-parse", "--verify", "--quiet", &format!("{name}^{{commit}}")])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

struct Step {
    name: &'static str,
    at: Duration,
    hwm_kib: u64,
}

struct Watch<'a> {
    child: &'a mut Child,
    start: Instant,
    log: PathBuf,
    steps: Vec<Step>,
}

impl Watch<'_> {
    /// Waits until `done` holds, checking every 250 ms that fluxd still runs; records the step.
    fn until(&mut self, name: &'static str, mut done: impl FnMut() -> bool) {
        let begin = Instant::now();
        while !done() {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("fluxd exited ({status}) waiting for {name}: {log}");
            }
            assert!(begin.elapsed() < PATIENCE, "gave up waiting for {name}");
            std::thread::sleep(Duration::from_millis(250));
        }
        let (hwm_kib, _) = memory_kib(self.child.id());
        self.steps.push(Step { name, at: self.start.elapsed(), hwm_kib });
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let fluxd = std::env::var_os("FLUX_BENCH_FLUXD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/examples/fluxd"));
    if !fluxd.is_file() {
        eprintln!("{} is missing: cargo build --release -p examples --example fluxd", fluxd.display());
        return;
    }
    let workloads = env_usize("FLUX_BENCH_DAEMON_WORKLOADS", 1000);
    let repos = env_usize("FLUX_BENCH_DAEMON_REPOS", 100).max(1);
    let tags = env_usize("FLUX_BENCH_DAEMON_TAGS", 200).max(1);
    let filter = env_string("FLUX_BENCH_DAEMON_FILTER", "semver:^1");
    let interval = env_string("FLUX_BENCH_DAEMON_AUTOMATION_INTERVAL", "30s");
    let time_ordered = filter.starts_with("glob:") || filter.starts_with("regex:") || !filter.contains(':');

    let Some(registry) = TestRegistry::start() else { return };
    let Some(server) = KubeApiServer::start() else { return };
    let Some(repo) = BareRepo::new() else { return };
    let (put_time, put_count) = push(&registry, repos, tags);
    println!("setup: {put_count} manifest PUTs ({repos} repositories x {} more tags) in {put_time:.1?}", tags - 1);
    let newest = format!("1.{}.0", tags - 1);
    repo.commit_many(&files(registry.host(), workloads, repos, &filter), "workloads");
    let first = repo.head();

    let work = tempfile::tempdir().expect("temp dir");
    let metrics_port = free_port();
    let log = work.path().join("fluxd.log");
    let args: Vec<String> = [
        format!("--git-url={}", repo.file_url()),
        "--git-branch=main".into(),
        "--git-path=apps".into(),
        format!("--kubeconfig={}", server.kubeconfig(ADMIN).display()),
        format!("--registry-insecure-host={}", registry.host()),
        format!("--automation-interval={interval}"),
        "--git-poll-interval=30s".into(),
        "--sync-interval=5m".into(),
        format!("--k8s-discovery-cache-dir={}", work.path().join("discovery").display()),
        format!("--git-mirror-dir={}", work.path().join("mirror").display()),
        format!("--state-dir={}", work.path().join("state").display()),
        "--listen=127.0.0.1:0".into(),
        format!("--listen-metrics=127.0.0.1:{metrics_port}"),
    ]
    .into_iter()
    .chain(env_string("FLUX_BENCH_DAEMON_ARGS", "").split_whitespace().map(str::to_owned))
    .collect();
    let wrap: Vec<String> = env_string("FLUX_BENCH_FLUXD_WRAP", "").split_whitespace().map(str::to_owned).collect();
    let mut command = match wrap.split_first() {
        Some((wrapper, wrapper_args)) => {
            let mut c = Command::new(wrapper);
            c.args(wrapper_args).arg(&fluxd);
            c
        }
        None => Command::new(&fluxd),
    };
    // `FLUX_BENCH_FLUXD_ENV=KEY=VALUE`: one more variable for fluxd (say `MALLOC_ARENA_MAX=2`).
    let extra_env = std::env::var("FLUX_BENCH_FLUXD_ENV")
        .ok()
        .and_then(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())));
    // Its own process group, so that SIGTERM reaches fluxd under a wrapper too.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let before = registry_requests(&registry);
    let start = Instant::now();
    let mut child = command
        .args(&args)
        .env("FLUX_API_TOKEN", "bench-token")
        .env("RUST_LOG", env_string("FLUX_BENCH_DAEMON_LOG", "warn"))
        .envs(extra_env.as_ref().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start fluxd");
    let mut watch = Watch { child: &mut child, start, log, steps: Vec::new() };
    let tags_listed = |text: &str| metric(text, "flux_registry_calls_total", &["call=\"tags\"", "outcome=\"ok\""]);
    let infos = |text: &str| metric(text, "flux_registry_calls_total", &["call=\"image_info\"", "outcome=\"ok\""]);

    watch.until("first sync", || rev(&repo, "flux-sync").as_deref() == Some(first.as_str()));
    watch.until("registry cache full", || {
        let text = metrics(metrics_port);
        tags_listed(&text) >= repos as f64 && (!time_ordered || infos(&text) >= (repos * tags) as f64)
    });
    watch.until("first automation commit", || repo.head() != first);
    let commit = repo.head();
    let shown = repo.git(&["show", "--stat", "--format=%s", &commit]);
    watch.until("automation commit synced", || rev(&repo, "flux-sync").as_deref() == Some(commit.as_str()));
    watch.until("second automation pass", || tags_listed(&metrics(metrics_port)) >= 2.0 * repos as f64);
    let settle = Instant::now();
    watch.until("steady (10 s later)", || settle.elapsed() >= Duration::from_secs(10));
    let (hwm, rss) = memory_kib(watch.child.id());
    let text = metrics(metrics_port);
    let steps = std::mem::take(&mut watch.steps);
    let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", child.id())]).status();
    let _ = child.wait();
    let requests = registry_requests(&registry) - before;

    let updated = repo.git(&["grep", "-c", &format!(":{newest}"), "main", "--", "apps"]);
    let updated: usize = updated.lines().filter_map(|l| l.rsplit(':').next()?.parse::<usize>().ok()).sum();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "fluxd daemon: {workloads} automated workloads ({filter}), {repos} repositories x {tags} tags, automation every {interval}"
    );
    println!("| step | after | peak RSS (VmHWM) so far |");
    println!("|---|---|---|");
    for s in &steps {
        println!("| {} | {:.1} s | {:.1} MiB |", s.name, s.at.as_secs_f64(), mib(s.hwm_kib));
    }
    println!("peak RSS {:.1} MiB, RSS at the end {:.1} MiB", mib(hwm), mib(rss));
    println!(
        "registry requests (access log, GET/HEAD /v2/): {requests}; fluxd's flux_registry_http_requests {}; lookups: tags {}, image_info {}",
        metric(&text, "flux_registry_http_requests", &[]),
        tags_listed(&text),
        infos(&text)
    );
    println!("automation commit: {} workloads at {newest}; {}", updated, shown.lines().next().unwrap_or_default());
}
