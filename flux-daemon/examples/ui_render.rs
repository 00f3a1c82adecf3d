//! Measures the status page with 5,000 workloads: how long the daemon takes to answer the
//! workloads page (listing git and the cluster, filtering, paginating, rendering) and the
//! overview, and how large they are. A daemon over flux-core's in-memory adapters, synced once,
//! served on a loopback port and asked over HTTP as a browser would (signed in).
//!
//! `cargo run --release -p flux-daemon --example ui_render` (figures in benches/README.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flux_core::SyncIdentity;
use flux_core::generate::ManifestGenerator;
use flux_core::memory::{MemoryCluster, MemoryRegistry, MemorySource};
use flux_core::sync::SyncConfig;
use flux_daemon::{ApiAuth, ApiToken, Daemon, SyncUnit};

const WORKLOADS: usize = 5_000;
const PER_FILE: usize = 50;
const TOKEN: &str = "bench-token";

fn deployment(i: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: team-{}\n  annotations:\n    \
         fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.app: semver:~1\nspec:\n  template:\n    spec:\n      containers:\n      \
         - name: app\n        image: registry.test/team/app-{i}:1.0.{}\n      - name: sidecar\n        image: registry.test/proxy:2.{}\n",
        i % 20,
        i % 7,
        i % 3
    )
}

/// The median of `runs` timed GETs of `path` (signed in), and the last answer's size.
async fn measure(client: &reqwest::Client, url: &str, cookie: &str, path: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let response = client.get(format!("{url}{path}")).header("cookie", cookie).send().await.expect("answer");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        size = response.bytes().await.expect("body").len();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], size)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> flux_core::Result<()> {
    let files: Vec<(String, String)> = (0..WORKLOADS / PER_FILE)
        .map(|f| {
            let docs: Vec<String> = (f * PER_FILE..(f + 1) * PER_FILE).map(deployment).collect();
            (format!("deploy/apps-{f:03}.yaml"), docs.join("---\n"))
        })
        .collect();
    let namespaces: Vec<String> =
        (0..20).map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{n}\n")).collect();
    let mut files = files;
    files.push(("deploy/namespaces.yaml".to_owned(), namespaces.join("---\n")));
    let source = Arc::new(MemorySource::with_files(files)?);
    let generator = Arc::new(ManifestGenerator::new(Default::default()));
    let config = SyncConfig::new(SyncIdentity::new("bench")?, vec!["deploy".to_owned()]);
    let unit = SyncUnit::new(
        "bench",
        source,
        Arc::new(MemoryCluster::new()),
        Arc::new(MemoryRegistry::new()),
        generator,
        config,
    )?;
    let daemon = Arc::new(Daemon::builder().unit(unit).build()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let service = daemon.select(None)?.clone();
    let job = service.submit_sync()?;
    service.wait(&job).await;
    let synced = service.status().last_sync.map(|s| s.applied.len() + s.unchanged).unwrap_or_default();

    let router = daemon.router(ApiAuth::token(ApiToken::new(TOKEN).map_err(flux_core::Error::other)?), None);
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| flux_core::Error::other(e.to_string()))?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| flux_core::Error::other(e.to_string()))?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login = client
        .post(format!("{url}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("sign in");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();

    println!("{WORKLOADS} workloads ({synced} objects in the cluster), release build: {}", !cfg!(debug_assertions));
    let mut parts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        service.engines().automation.listing().await?;
        let listing = started.elapsed();
        let started = Instant::now();
        service.unit().cluster().workloads(None).await?;
        parts.push((listing, started.elapsed()));
    }
    parts.sort();
    let (listing, cluster) = parts[parts.len() / 2];
    println!(
        "under the page: AutomationEngine::listing (git side) {:.1} ms, Cluster::workloads {:.1} ms (medians of 5)",
        ms(listing),
        ms(cluster)
    );
    for (what, path) in [
        ("workloads page 1", "/ui/workloads"),
        ("workloads page 50", "/ui/workloads?page=50"),
        ("workloads filtered (team-3:, 250 of 5,000, page 1 of 5)", "/ui/workloads?q=team-3%3A"),
        ("overview", "/ui/"),
    ] {
        // Cold: right after a job (a sync), so the listing is read anew.
        let mut cold = Vec::new();
        for _ in 0..5 {
            let job = service.submit_sync()?;
            service.wait(&job).await;
            cold.push(measure(&client, &url, &cookie, path, 1).await.0);
        }
        cold.sort();
        let (warm, size) = measure(&client, &url, &cookie, path, 21).await;
        println!(
            "{what:58} after a change {:>7.1} ms  unchanged {:>6.1} ms  {:>6} bytes",
            ms(cold[cold.len() / 2]),
            ms(warm),
            size
        );
    }
    let _ = stop.send(());
    running.await.map_err(|e| flux_core::Error::other(e.to_string()))??;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
