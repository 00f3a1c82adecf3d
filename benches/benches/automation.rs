//! An automation pass over an in-memory repository of 1,000 workload files in which 100 images
//! have a newer tag: read + scan + plan + edit + one commit. Also prints how many bytes the
//! commit changed against the bytes in the repository.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use flux_core::automation::{AutomationConfig, AutomationEngine};
use flux_core::memory::{MemoryImage, MemoryRegistry, MemorySource};
use flux_core::{ImageRepo, Source};

const WORKLOADS: usize = 1_000;
const NEWER: usize = 100;

fn file(i: usize) -> String {
    format!(
        "# Service {i}, owned by team {team}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}\n  namespace: team-{team}\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.app: glob:1.*\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: svc-{i}}}\n  template:\n    metadata:\n      labels: {{app: svc-{i}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.local/team-{team}/svc-{i}:1.0.0\n        ports:\n        - containerPort: 8080\n          protocol: TCP\n      - name: proxy\n        image: registry.local/proxy:2.4.1\n",
        team = i % 10
    )
}

fn files() -> Vec<(String, String)> {
    (0..WORKLOADS).map(|i| (format!("apps/team-{}/svc-{i}.yaml", i % 10), file(i))).collect()
}

fn registry() -> MemoryRegistry {
    let registry = MemoryRegistry::new();
    let at = |m: i64| MemoryImage::created(jiff::Timestamp::from_second(1_700_000_000 + m * 60).expect("valid time"));
    for i in 0..WORKLOADS {
        let repo: ImageRepo = format!("registry.local/team-{}/svc-{i}", i % 10).parse().expect("valid repo");
        registry.push(&repo, "1.0.0", at(1));
        if i < NEWER {
            registry.push(&repo, "1.1.0", at(2));
        }
    }
    registry.push(&"registry.local/proxy".parse().expect("valid repo"), "2.4.1", at(1));
    registry
}

fn automation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let files = files();
    let registry = registry();
    let engine = |source: MemorySource| {
        let generator = Arc::new(flux_core::generate::ManifestGenerator::new(Default::default()));
        AutomationEngine::new(Arc::new(source), Arc::new(registry.clone()), generator, AutomationConfig::default())
    };

    // Bytes changed by one pass, against the bytes in the repository.
    let source = MemorySource::with_files(files.clone()).expect("source");
    let report = rt.block_on(engine(source.clone()).automate()).expect("automation pass");
    assert_eq!(report.changes.len(), NEWER);
    let head = rt.block_on(source.refresh()).expect("head");
    let after = rt.block_on(source.files(&head, &[String::new()])).expect("files");
    let total: usize = files.iter().map(|(_, t)| t.len()).sum();
    let before: std::collections::BTreeMap<&str, &str> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let changed: usize = after
        .iter()
        .map(|new| {
            let old = before[new.path.as_str()].as_bytes();
            let differing = old.iter().zip(&new.content).filter(|(a, b)| a != b).count();
            differing + old.len().abs_diff(new.content.len())
        })
        .sum();
    eprintln!(
        "automation: {} images updated in one commit; {changed} bytes changed of {total} in the repository",
        NEWER
    );

    c.bench_function("automation pass: 1000 workloads, 100 newer images", |b| {
        b.iter_batched(
            || MemorySource::with_files(files.clone()).expect("source"),
            |source| black_box(rt.block_on(engine(source).automate()).expect("pass")),
            BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = automation
}
criterion_main!(benches);
