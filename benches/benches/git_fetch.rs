//! flux-git against a `git daemon` on loopback serving a repository of 10,000 manifests:
//!
//! - (a) first fetch (shallow) + reading every file under `manifests/`, against
//!   `git clone --depth 1` + reading the same files from the work tree, in the same run;
//! - (b) a refresh when nothing moved (the requests it makes are printed);
//! - (c) a refresh that fetches one new commit.

use std::num::NonZeroU32;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flux_core::{Revision, Source};
use flux_git::{GitConfig, GitSource};
use flux_testenv::git::{BareRepo, GitDaemon};

const FILES: usize = 10_000;
const DIR: &str = "manifests";

fn manifest(i: usize) -> Vec<u8> {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: team-{}\n  annotations:\n    \
         fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.app: semver:~1.{}\nspec:\n  replicas: 2\n  selector:\n    \
         matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      \
         containers:\n      - name: app\n        image: registry.example.com/team/app-{i}:1.{}.{}\n        ports:\n        \
         - containerPort: 8080\n          protocol: TCP\n",
        i % 50,
        i % 7,
        i % 7,
        i % 13
    )
    .into_bytes()
}

/// The repository: 10,000 manifests in 100 directories, plus a README outside the paths.
fn repository() -> BareRepo {
    let repo = BareRepo::new().expect("git is needed for this benchmark");
    let files: Vec<(String, Vec<u8>)> =
        (0..FILES).map(|i| (format!("{DIR}/team-{:02}/app-{i}.yaml", i % 100), manifest(i))).collect();
    repo.commit_many(&files, "10,000 manifests");
    repo
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// Every regular file under `dir`, read from disk.
fn read_tree(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                std::hint::black_box(std::fs::read(entry.path()).expect("read file"));
                count += 1;
            }
        }
    }
    count
}

fn first_fetch(c: &mut Criterion) {
    let repo = repository();
    let daemon = GitDaemon::start(&repo).expect("git daemon");
    let rt = runtime();
    let mut group = c.benchmark_group("git first fetch + read 10k manifests");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("flux-git (gix, shallow, from the object database)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temp dir");
                let started = Instant::now();
                let source = GitSource::open(
                    GitConfig::new(daemon.url(), "main")
                        .with_depth(NonZeroU32::MIN)
                        .read_only()
                        .with_local_dir(dir.path().join("mirror.git")),
                )
                .expect("open");
                let files = rt.block_on(async {
                    let head = source.refresh().await.expect("refresh");
                    source.files(&head, &[DIR.to_owned()]).await.expect("files")
                });
                total += started.elapsed();
                assert_eq!(files.len(), FILES);
            }
            total
        })
    });
    group.bench_function("git clone --depth 1 + read the work tree", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temp dir");
                let started = Instant::now();
                let status = Command::new("git")
                    .args(["clone", "--quiet", "--depth", "1", "--branch", "main", &daemon.url()])
                    .arg(dir.path().join("clone"))
                    .status()
                    .expect("git clone");
                let count = read_tree(&dir.path().join("clone").join(DIR));
                total += started.elapsed();
                assert!(status.success());
                assert_eq!(count, FILES);
            }
            total
        })
    });
    group.finish();
}

fn refreshes(c: &mut Criterion) {
    let repo = repository();
    let daemon = GitDaemon::start(&repo).expect("git daemon");
    let rt = runtime();
    let source = GitSource::open(GitConfig::new(daemon.url(), "main")).expect("open");
    rt.block_on(source.refresh()).expect("first refresh");

    let before = (source.fetch_stats(), daemon.upload_pack_requests());
    let head = rt.block_on(source.refresh()).expect("refresh");
    let after = (source.fetch_stats(), daemon.upload_pack_requests());
    println!(
        "refresh with nothing moved: {} ref listing(s), {} pack fetch(es); the server saw {} request(s)",
        after.0.ref_listings - before.0.ref_listings,
        after.0.pack_fetches - before.0.pack_fetches,
        after.1 - before.1
    );

    let mut group = c.benchmark_group("git refresh");
    group.bench_function("nothing moved", |b| {
        b.iter(|| assert_eq!(rt.block_on(source.refresh()).expect("refresh"), head));
    });
    group.bench_function("one new commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let content = manifest(i as usize + FILES);
                let new = repo.commit_files(&[("manifests/team-00/app-0.yaml", &content)], "one change");
                let started = Instant::now();
                let head = rt.block_on(source.refresh()).expect("refresh");
                total += started.elapsed();
                assert_eq!(head, Revision::new(new));
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, first_fetch, refreshes);
criterion_main!(benches);
