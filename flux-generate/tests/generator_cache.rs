//! A revision is generated once: listing workloads, automation and syncs of an unchanged head
//! reuse the result (revisions are immutable); another revision or other paths run again.

use std::sync::Arc;

use flux_core::generate::{Generator, Snapshot};
use flux_core::memory::MemorySource;
use flux_core::{FileChange, Source};
use flux_generate::{GenerateConfig, RepoGenerator};

#[tokio::test]
async fn an_unchanged_revision_runs_its_generators_once() {
    let runs = tempfile::tempdir().expect("a directory");
    let log = runs.path().join("runs");
    let flux_yaml = format!(
        "version: 1\ncommandUpdated:\n  generators:\n    - command: echo run >> {} && cat cm.yaml\n",
        log.display()
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: default\n";
    let source = MemorySource::with_files([
        ("app/.flux.yaml", flux_yaml.clone()),
        ("app/cm.yaml", cm.to_owned()),
        ("other/.flux.yaml", flux_yaml),
        ("other/cm.yaml", cm.replace("name: cm", "name: other")),
    ])
    .expect("a repository");
    let shared: Arc<dyn Source> = Arc::new(source.clone());
    let generator = RepoGenerator::new(GenerateConfig { manifest_generation: true, ..GenerateConfig::default() });
    let runs_so_far = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();

    let head = source.refresh().await.expect("head");
    let app = Snapshot::read(shared.clone(), head.clone(), &["app".into()]).await.expect("snapshot");
    for _ in 0..3 {
        let generated = generator.generate(&app).await;
        assert!(generated.is_usable(), "{:?}", generated.errors);
        assert_eq!(generated.objects.len(), 1);
    }
    assert_eq!(runs_so_far(), 1, "the same revision and paths are generated once");

    let other = Snapshot::read(shared.clone(), head, &["other".into()]).await.expect("snapshot");
    assert_eq!(generator.generate(&other).await.objects[0].name(), "other");
    assert_eq!(runs_so_far(), 2, "other paths are generated anew");

    source
        .push_external(&[FileChange::write("app/cm.yaml", cm.replace("name: cm", "name: renamed"))], "rename")
        .expect("push");
    let next = Snapshot::read(shared, source.refresh().await.expect("head"), &["app".into()]).await.expect("snapshot");
    assert_eq!(generator.generate(&next).await.objects[0].name(), "renamed");
    assert_eq!(runs_so_far(), 3, "a new revision is generated anew");
}

#[tokio::test]
async fn output_that_is_not_manifests_is_an_error_naming_the_command_and_the_line() {
    let flux_yaml = "version: 1\ncommandUpdated:\n  generators:\n    - command: |-\n        printf 'apiVersion: v1\\n---\\n: [\\n'\n";
    let source = MemorySource::with_files([(".flux.yaml", flux_yaml)]).expect("a repository");
    let head = source.refresh().await.expect("head");
    let snapshot = Snapshot::read(Arc::new(source), head, &[]).await.expect("snapshot");
    let generator = RepoGenerator::new(GenerateConfig { manifest_generation: true, ..GenerateConfig::default() });
    let generated = generator.generate(&snapshot).await;
    assert!(generated.objects.is_empty());
    let message = generated.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(message.starts_with(".flux.yaml: the output of generator `printf"), "{message}");
    assert!(message.contains("(from .flux.yaml:5)") && message.contains("of the output"), "{message}");
}
