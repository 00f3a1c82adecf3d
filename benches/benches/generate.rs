//! What a generated revision costs besides the generator itself: writing the checkout, one
//! shell command (clean environment, process group), reading the changes back, and a real
//! `kubectl kustomize` of a small overlay.

use criterion::{Criterion, criterion_group, criterion_main};
use flux_core::Source;
use flux_core::generate::{Generator, Snapshot};
use flux_core::memory::MemorySource;
use flux_core::{Location, SourceFile};
use flux_generate::{Checkout, CommandRunner, GenerateConfig, Kustomize, RepoGenerator, ShellCommand};
use std::hint::black_box;
use std::sync::Arc;

/// `count` files of about 1 KiB in 10 directories.
fn files(count: usize) -> Vec<SourceFile> {
    (0..count)
        .map(|i| SourceFile { path: format!("apps/team-{}/app-{i}.yaml", i % 10), content: vec![b'x'; 1024] })
        .collect()
}

fn checkout(c: &mut Criterion) {
    let repo = files(1000);
    c.bench_function("checkout of 1000 files (1 KiB each)", |b| {
        b.iter(|| black_box(Checkout::new(&repo).expect("ok")))
    });
    let written = Checkout::new(&repo).expect("ok");
    std::fs::write(written.path().join("apps/team-3/app-3.yaml"), "changed").expect("write");
    c.bench_function("changes of a 1000-file checkout (one modified)", |b| {
        b.iter(|| assert_eq!(written.changes(black_box(&repo)).expect("ok").len(), 1))
    });
}

fn command(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let runner = CommandRunner::new();
    let cmd = ShellCommand::new("echo hello", dir.path(), Location::line(".flux.yaml", 1));
    c.bench_function("run `echo hello` (sh, clean env, fresh HOME)", |b| {
        b.iter(|| assert_eq!(rt.block_on(runner.run(&cmd)).expect("ok").stdout, "hello\n"))
    });
}

fn kustomize(c: &mut Criterion) {
    if flux_testenv::require("kubectl", flux_testenv::find_program("kubectl")).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let file = |path: &str, text: &str| SourceFile { path: path.into(), content: text.into() };
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: registry.local/web:1.0}]\n";
    let repo = [
        file("base/kustomization.yaml", "resources: [deployment.yaml]\n"),
        file("base/deployment.yaml", deployment),
        file(
            "prod/kustomization.yaml",
            "namePrefix: prod-\nresources: [../base]\nimages: [{name: registry.local/web, newTag: '2.0'}]\n",
        ),
    ];
    let checkout = Checkout::new(&repo).expect("ok");
    let kustomize = Kustomize::with_command(vec!["kubectl".into(), "kustomize".into()]);
    c.bench_function("kubectl kustomize of a one-Deployment overlay", |b| {
        b.iter(|| assert!(rt.block_on(kustomize.build(checkout.path(), "prod")).expect("ok").contains("prod-web")))
    });
}

/// A whole revision through `RepoGenerator` (layout, checkout of what Kustomize needs, two
/// overlay builds, reading the output) against the bare `kubectl kustomize` of the same two
/// overlays in a checkout made beforehand: the generator's own overhead, 1,000 unrelated
/// files in the repository.
fn repo_generator(c: &mut Criterion) {
    if flux_testenv::require("kubectl", flux_testenv::find_program("kubectl")).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let file = |path: &str, text: &str| SourceFile { path: path.into(), content: text.into() };
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: registry.local/web:1.0}]\n";
    let overlay = |ns: &str| {
        format!("namespace: {ns}\nresources: [../../base]\nimages: [{{name: registry.local/web, newTag: '2.0'}}]\n")
    };
    let mut repo: Vec<SourceFile> = files(1000)
        .into_iter()
        .map(|f| SourceFile { path: format!("docs/{}", f.path.replace(".yaml", ".txt")), ..f })
        .collect();
    repo.extend([
        file("apps/base/kustomization.yaml", "resources: [deployment.yaml]\n"),
        file("apps/base/deployment.yaml", deployment),
        file("apps/envs/staging/kustomization.yaml", &overlay("staging")),
        file("apps/envs/production/kustomization.yaml", &overlay("production")),
    ]);
    let source: Arc<dyn Source> =
        Arc::new(MemorySource::with_files(repo.iter().map(|f| (f.path.clone(), f.content.clone()))).expect("repo"));
    let head = rt.block_on(source.refresh()).expect("head");
    let generator = RepoGenerator::new(GenerateConfig::default());
    let mut group = c.benchmark_group("kustomize revision (2 overlays, 1,000 other files)");
    group.bench_function("RepoGenerator::generate", |b| {
        b.iter(|| {
            let snapshot = rt.block_on(Snapshot::read(source.clone(), head.clone(), &[])).expect("snapshot");
            let generated = rt.block_on(generator.generate(&snapshot));
            assert_eq!(generated.objects.len(), 2, "{:?}", generated.errors);
        })
    });
    let checkout = Checkout::new(&repo).expect("ok");
    let kustomize = Kustomize::with_command(vec!["kubectl".into(), "kustomize".into()]);
    group.bench_function("kubectl kustomize x2 (checkout made beforehand)", |b| {
        b.iter(|| {
            for env in ["apps/envs/staging", "apps/envs/production"] {
                assert!(rt.block_on(kustomize.build(checkout.path(), env)).expect("ok").contains("kind: Deployment"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, checkout, command, kustomize, repo_generator);
criterion_main!(benches);
