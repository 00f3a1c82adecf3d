//! Where a Kustomize app's image changes go, with the real kustomize: the app's own `images:`
//! entry, else Flux v2 markers for the workload, else a new entry in the app's kustomization
//! (a shared base is never edited); policies are refused with a clear error.

mod common;

use std::sync::Arc;

use common::{kubectl_present, memory_registry, release_spec, text};

use flux_core::automation::{AutomationConfig, AutomationEngine, ManifestPolicyStore, ReleaseSpec};
use flux_core::generate::{Generator, Snapshot};
use flux_core::memory::{MemoryRegistry, MemorySource};
use flux_core::{ChangeCause, PolicyChange, PolicyStore, PolicyUpdate, ResourceId, Source};
use flux_generate::{GenerateConfig, RepoGenerator};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: registry.local/web:1.0.0
";

/// The `marked` overlay's patch: its image carries a Flux v2 marker for `marked:web`.
const PATCH: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.local/web:1.0.0 # {\"$imagepolicy\": \"marked:web\"}
";

const MARKED: &str = "namespace: marked\nresources:\n- ../base\npatches:\n- path: patch.yaml\n";

/// A base with an `images:` entry, an overlay without one, and one whose patch carries a marker.
fn source() -> MemorySource {
    MemorySource::with_files([
        (
            "base/kustomization.yaml",
            "resources:\n- deployment.yaml\nimages:\n- name: registry.local/web\n  newTag: 1.0.0\n".to_owned(),
        ),
        ("base/deployment.yaml", DEPLOYMENT.to_owned()),
        ("plain/kustomization.yaml", "namespace: plain\nresources:\n- ../base\n".to_owned()),
        ("marked/Kustomization", MARKED.to_owned()),
        ("marked/patch.yaml", PATCH.to_owned()),
    ])
    .expect("a repository")
}

fn registry() -> MemoryRegistry {
    memory_registry("registry.local/web", &["1.0.0", "1.1.0"])
}

fn release(workload: &str) -> ReleaseSpec {
    release_spec(workload, "registry.local/web:1.1.0")
}

/// An automation engine on `source` that sees Kustomize apps.
fn automation(source: &MemorySource, generator: Arc<RepoGenerator>) -> AutomationEngine {
    AutomationEngine::new(Arc::new(source.clone()), Arc::new(registry()), AutomationConfig::default())
        .with_generator(generator)
}

#[test]
fn an_image_declared_only_in_a_shared_base_gets_an_entry_in_the_app() {
    if !kubectl_present() {
        return;
    }
    runtime().block_on(async {
        let source = source();
        let generator = Arc::new(RepoGenerator::new(GenerateConfig::default()));
        let engine = automation(&source, generator.clone());
        let result = engine.release(&release("plain:deployment/web")).await.expect("release");
        assert!(result.revision.is_some(), "{result:?}");
        assert_eq!(
            text(&source, "plain/kustomization.yaml").await,
            "namespace: plain\nresources:\n- ../base\nimages:\n- name: registry.local/web\n  newTag: 1.1.0\n"
        );
        assert!(text(&source, "base/kustomization.yaml").await.contains("newTag: 1.0.0"), "the base is shared");

        // What the cluster would get: the new tag in `plain` only.
        let head = source.refresh().await.expect("head");
        let snapshot = Snapshot::read(Arc::new(source.clone()), head, &[]).await.expect("snapshot");
        let generated = generator.generate(&snapshot).await;
        assert!(generated.is_usable(), "{:?}", generated.errors);
        let image = |ns: &str| {
            let o = generated.objects.iter().find(|o| o.namespace() == Some(ns)).expect("the deployment");
            o.pointer(&["spec", "template", "spec", "containers"])
                .and_then(|c| c[0]["image"].as_str())
                .map(str::to_owned)
        };
        assert_eq!(image("plain").as_deref(), Some("registry.local/web:1.1.0"));
        assert_eq!(image("marked").as_deref(), Some("registry.local/web:1.0.0"));
    });
}

#[test]
fn a_marker_for_the_workload_is_written_instead_of_a_new_entry() {
    if !kubectl_present() {
        return;
    }
    runtime().block_on(async {
        let source = source();
        let generator = Arc::new(RepoGenerator::new(GenerateConfig::default()));
        let engine = automation(&source, generator);
        engine.release(&release("marked:deployment/web")).await.expect("release");
        assert_eq!(
            text(&source, "marked/patch.yaml").await,
            PATCH.replace("web:1.0.0 #", "web:1.1.0 #"),
            "the marked image is set, in the file that carries the marker"
        );
        assert_eq!(text(&source, "marked/Kustomization").await, MARKED, "no entry added");
        assert_eq!(text(&source, "base/deployment.yaml").await, DEPLOYMENT);
    });
}

#[test]
fn policies_of_a_kustomize_workload_are_refused_with_where_to_put_them() {
    if !kubectl_present() {
        return;
    }
    runtime().block_on(async {
        let source = source();
        let generator = Arc::new(RepoGenerator::new(GenerateConfig::default()));
        let store =
            ManifestPolicyStore::new(Arc::new(source.clone()), AutomationConfig::default()).with_generator(generator);
        let workload: ResourceId = "plain:deployment/web".parse().expect("id");
        let update = PolicyUpdate { workload, changes: vec![PolicyChange::Automate] };
        let error = store.update(&[update], &ChangeCause::default()).await.expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("plain/kustomization.yaml"), "{message}");
        assert!(message.contains("set the annotation in its manifests"), "{message}");
        assert_eq!(source.log().len(), 1, "nothing committed");
    });
}
