//! Scanning a registry the way image automation does: 100 repositories × 200 tags in a real
//! `docker-registry`, every tag's digest and created time.
//!
//! - cold scan with `flux-registry` (empty cache): time and request count;
//! - the Flux v1 way, `skopeo list-tags` per repository and `skopeo inspect` per tag, on a
//!   subset of the repositories (process start-up makes all 20,000 too slow), extrapolated;
//! - warm rescan (criterion): nothing new, so one tag-list request per repository.
//!
//! Requests are counted in the registry's access log. Sizes: `FLUX_BENCH_REPOS` (100),
//! `FLUX_BENCH_TAGS` (200), `FLUX_BENCH_SKOPEO_REPOS` (2), `FLUX_BENCH_CONCURRENCY` (4).

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Criterion;
use flux_core::{ImageRepo, Registry};
use flux_registry::{DockerConfig, OciRegistry, RegistryConfig};
use flux_testenv::{TestRegistry, find_program, require};
use futures::StreamExt;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Registry requests in the access log so far (`"GET /v2/…"`, `"HEAD /v2/…"`).
fn logged_requests(server: &TestRegistry) -> usize {
    server.log().lines().filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/")).count()
}

fn repos(server: &TestRegistry, count: usize) -> Vec<ImageRepo> {
    (0..count).map(|r| format!("{}/bench/repo{r}", server.host()).parse().expect("valid")).collect()
}

async fn push_all(server: &TestRegistry, repos: usize, tags: usize, concurrency: usize) {
    let pusher = server.pusher();
    // Each repository's first image (it uploads the shared layer) before the rest of it.
    let firsts = (0..repos).map(|r| (r, 0)).collect();
    let rest = (0..repos).flat_map(|r| (1..tags).map(move |t| (r, t))).collect();
    push_jobs(&pusher, server, firsts, concurrency).await;
    push_jobs(&pusher, server, rest, concurrency).await;
}

async fn push_jobs(
    pusher: &flux_testenv::Pusher,
    server: &TestRegistry,
    jobs: Vec<(usize, usize)>,
    concurrency: usize,
) {
    futures::stream::iter(jobs)
        .for_each_concurrent(concurrency, |(r, t)| async move {
            // Distinct created times, so no two images share a digest.
            let created = jiff::Timestamp::from_second(1_600_000_000 + (r * 10_000 + t) as i64).expect("valid");
            let reference = format!("{}/bench/repo{r}:1.{t}.0", server.host());
            pusher.push_image(&reference, Some(&created.to_string())).await.expect("push");
        })
        .await;
}

/// Every tag of every repository, and the metadata of each; returns how many images.
async fn scan(registry: &OciRegistry, repos: &[ImageRepo], concurrency: usize) -> usize {
    let mut refs = Vec::new();
    for repo in repos {
        refs.extend(registry.tags(repo).await.expect("tags").into_iter().map(|t| repo.tagged(&t)));
    }
    futures::stream::iter(&refs)
        .for_each_concurrent(concurrency, |image| async move {
            let info = registry.image_info(image).await.expect("image_info");
            assert!(info.created.is_some());
        })
        .await;
    refs.len()
}

/// `skopeo list-tags` + `skopeo inspect` per tag for `repos`, `concurrency` processes at a time.
fn skopeo_scan(repos: &[ImageRepo], concurrency: usize) -> usize {
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo").args(args).output().expect("run skopeo");
        assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let mut refs = Vec::new();
    for repo in repos {
        let listed = skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{repo}")]);
        let tags: serde_json::Value = serde_json::from_slice(&listed).expect("skopeo list-tags JSON");
        for tag in tags["Tags"].as_array().expect("Tags") {
            refs.push(format!("docker://{repo}:{}", tag.as_str().expect("a tag")));
        }
    }
    let queue = Mutex::new(refs.clone());
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| {
                while let Some(r) = queue.lock().expect("queue").pop() {
                    let out = skopeo(&["inspect", "--tls-verify=false", &r]);
                    let info: serde_json::Value = serde_json::from_slice(&out).expect("skopeo inspect JSON");
                    assert!(info["Created"].is_string());
                }
            });
        }
    });
    refs.len()
}

fn main() {
    let Some(server) = TestRegistry::start() else { return };
    if require("skopeo", find_program("skopeo")).is_none() {
        return;
    }
    let (n_repos, n_tags) = (env_usize("FLUX_BENCH_REPOS", 100), env_usize("FLUX_BENCH_TAGS", 200));
    let skopeo_repos = env_usize("FLUX_BENCH_SKOPEO_REPOS", 2).min(n_repos);
    let concurrency = env_usize("FLUX_BENCH_CONCURRENCY", 4);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let repos = repos(&server, n_repos);

    let start = Instant::now();
    runtime.block_on(push_all(&server, n_repos, n_tags, 8));
    println!("setup: pushed {n_repos} x {n_tags} images in {:.1?}", start.elapsed());

    let cache = tempfile::tempdir().expect("tempdir");
    let config = || RegistryConfig {
        insecure_hosts: vec![server.host().to_owned()],
        docker_config: DockerConfig::Disabled,
        cache_dir: Some(cache.path().to_owned()),
        rps: 0.0, // unpaced, like skopeo: the comparison is of work, not of politeness
        ..RegistryConfig::default()
    };

    let before = logged_requests(&server);
    let start = Instant::now();
    let images = {
        let registry = OciRegistry::new(config()).expect("registry");
        runtime.block_on(scan(&registry, &repos, concurrency))
    };
    let cold = start.elapsed();
    let cold_requests = logged_requests(&server) - before;
    println!("flux-registry cold scan: {images} images, {cold:.2?}, {cold_requests} requests");

    let before = logged_requests(&server);
    let start = Instant::now();
    let inspected = skopeo_scan(&repos[..skopeo_repos], concurrency);
    let skopeo_time = start.elapsed();
    let skopeo_requests = logged_requests(&server) - before;
    let scale = n_repos as f64 / skopeo_repos as f64;
    let skopeo_full = skopeo_time.mul_f64(scale);
    println!(
        "skopeo (Flux v1 way) on {skopeo_repos} repositories: {inspected} images, {skopeo_time:.2?}, {skopeo_requests} requests; \
         extrapolated to {n_repos}: {skopeo_full:.1?}, {:.0} requests",
        skopeo_requests as f64 * scale
    );
    println!("time ratio flux-registry / skopeo (extrapolated): {:.4}", cold.as_secs_f64() / skopeo_full.as_secs_f64());

    let registry = OciRegistry::new(config()).expect("registry");
    let before = logged_requests(&server);
    runtime.block_on(scan(&registry, &repos, concurrency));
    // The access log is written as requests complete; give the last lines a moment.
    std::thread::sleep(Duration::from_millis(200));
    let warm_requests = logged_requests(&server) - before;
    println!("flux-registry warm rescan after restart: {warm_requests} requests for {n_repos} repositories");
    assert_eq!(warm_requests, n_repos, "a warm rescan costs one request per repository");

    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    criterion.bench_function(&format!("warm rescan {n_repos} repos x {n_tags} tags"), |b| {
        b.iter(|| runtime.block_on(scan(&registry, &repos, concurrency)))
    });
    criterion.final_summary();
}
