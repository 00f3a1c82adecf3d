//! Reading a revision's manifests, choosing tags and editing YAML: done on every sync and
//! every automation pass.

use criterion::{Criterion, criterion_group, criterion_main};
use flux_core::manifest::edit::{set_annotation, set_container_image};
use flux_core::manifest::{ManifestOptions, TagCandidate, read_manifests, workloads};
use flux_core::{ImageRef, ResourceId, SourceFile, TagFilter};
use std::hint::black_box;

/// One file of `docs` Deployments, each with two containers, annotations and comments.
fn manifest_file(file: usize, docs: usize) -> String {
    let mut s = String::new();
    for d in 0..docs {
        s.push_str(&format!(
            "---\n# workload {d} of file {file}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{file}-{d}\n  namespace: team-{file}\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.web: semver:~1.{d}\nspec:\n  replicas: 2\n  template:\n    metadata:\n      labels: {{app: app-{file}-{d}}}\n    spec:\n      containers:\n        - name: web\n          image: registry.example.com/team/web:1.{d}.0 # pinned by automation\n        - name: proxy\n          image: 'envoyproxy/envoy:1.29.{d}'\n"
        ));
    }
    s
}

fn read(c: &mut Criterion) {
    let files: Vec<SourceFile> = (0..100)
        .map(|f| SourceFile { path: format!("apps/{f}.yaml"), content: manifest_file(f, 10).into_bytes() })
        .collect();
    let options = ManifestOptions::default();
    c.bench_function("read_manifests+workloads 100 files x 10 deployments", |b| {
        b.iter(|| {
            let manifests = read_manifests(black_box(&files), &options).expect("valid");
            black_box(workloads(&manifests).expect("valid"));
        })
    });
}

fn latest(c: &mut Criterion) {
    let tags: Vec<TagCandidate> =
        (0..1000).map(|i| TagCandidate::new(format!("{}.{}.{}", i / 100, (i / 10) % 10, i % 10), None)).collect();
    let semver = TagFilter::new("semver:>=3.0 <8").expect("filter").compile().expect("valid");
    c.bench_function("semver latest of 1000 tags", |b| b.iter(|| black_box(semver.latest(black_box(&tags)))));
    let timed: Vec<TagCandidate> = (0..1000)
        .map(|i| TagCandidate::new(format!("build-{i}"), Some(jiff::Timestamp::from_second(i).expect("time"))))
        .collect();
    let glob = TagFilter::new("glob:build-*").expect("filter").compile().expect("valid");
    c.bench_function("glob latest of 1000 timed tags", |b| b.iter(|| black_box(glob.latest(black_box(&timed)))));
}

fn edit(c: &mut Criterion) {
    let text = manifest_file(0, 50);
    let workload: ResourceId = "team-0:deployment/app-0-25".parse().expect("id");
    let image: ImageRef = "registry.example.com/team/web:1.25.1".parse().expect("image");
    c.bench_function("set_container_image in a 50-document file", |b| {
        b.iter(|| black_box(set_container_image("f.yaml", black_box(&text), &workload, "web", &image).expect("edit")))
    });
    c.bench_function("set_annotation (insert) in a 50-document file", |b| {
        b.iter(|| {
            black_box(
                set_annotation("f.yaml", black_box(&text), &workload, "fluxcd.io/locked", Some("true")).expect("edit"),
            )
        })
    });
}

criterion_group!(benches, read, latest, edit);
criterion_main!(benches);
