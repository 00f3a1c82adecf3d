//! Where a Kustomize app's image changes go, with the real kustomize: the app's own `images:`
//! entry, else Flux v2 markers for the workload, else a new entry in the app's kustomization
//! (a shared base is never edited); policies are refused with a clear error.

mod common;

use std::sync::Arc;

use common::{kubectl_present, memory_registry, release_spec, text};

use flux_core::automation::{AutomationConfig, AutomationEngine, ManifestPolicyStore, ReleaseSpec};
use flux_core::generate::{Generator, Snapshot};
use flux_core::memory::{MemoryRegistry, MemorySource};
use flux_core::policy::Lock;
use flux_core::{ChangeCause, PolicyChange, PolicyStore, PolicyUpdate, ResourceId, Source};
use flux_generate::{GenerateConfig, RepoGenerator};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team
  annotations:
    fluxcd.io/automated: \"true\"
    fluxcd.io/tag.app: semver:^1
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
  namespace: team
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.local/web:1.0.0 # {\"$imagepolicy\": \"marked:web\"}
";

const MARKED: &str = "namespace: marked\nresources:\n- ../base\npatches:\n- path: patch.yaml\n";

const PLAIN: &str = "namespace: plain\nnamePrefix: p-\nresources:\n- ../base\n";

/// A base with an `images:` entry, an overlay without one, and one whose patch carries a marker.
fn source() -> MemorySource {
    MemorySource::with_files([
        (
            "base/kustomization.yaml",
            "resources:\n- deployment.yaml\nimages:\n- name: registry.local/web\n  newTag: 1.0.0\n".to_owned(),
        ),
        ("base/deployment.yaml", DEPLOYMENT.to_owned()),
        ("plain/kustomization.yaml", PLAIN.to_owned()),
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
    AutomationEngine::new(Arc::new(source.clone()), Arc::new(registry()), generator, AutomationConfig::default())
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
        let result = engine.release(&release("plain:deployment/p-web")).await.expect("release");
        assert!(result.revision.is_some(), "{result:?}");
        assert_eq!(
            text(&source, "plain/kustomization.yaml").await,
            format!("{PLAIN}images:\n- name: registry.local/web\n  newTag: 1.1.0\n")
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
fn policies_of_a_kustomize_workload_go_into_a_patch_of_its_own_app() {
    if !kubectl_present() {
        return;
    }
    runtime().block_on(async {
        let source = source();
        let generator = Arc::new(RepoGenerator::new(GenerateConfig::default()));
        let store =
            ManifestPolicyStore::new(Arc::new(source.clone()), generator, AutomationConfig::default());
        let web: ResourceId = "plain:deployment/p-web".parse().expect("id");
        let other: ResourceId = "marked:deployment/web".parse().expect("id");
        let lock = Lock { message: Some("release freeze".into()), user: None };
        let update = PolicyUpdate { workload: web.clone(), changes: vec![PolicyChange::Lock(lock)] };
        store.update(&[update], &ChangeCause::default()).await.expect("lock");

        // The app applies its own patch to the workload, named as the base names it.
        assert_eq!(
            text(&source, "plain/kustomization.yaml").await,
            format!(
                "{PLAIN}patches:\n- path: flux-patches/deployment-web.yaml\n  target:\n    kind: Deployment\n    name: web\n"
            )
        );
        let patch = text(&source, "plain/flux-patches/deployment-web.yaml").await;
        for line in ["name: web", "fluxcd.io/locked: \"true\"", "fluxcd.io/locked_msg: \"release freeze\""] {
            assert!(patch.contains(line), "{line:?} in {patch}");
        }
        assert!(!patch.contains("namespace"), "the entry's target chooses, in any namespace: {patch}");
        assert_eq!(text(&source, "base/deployment.yaml").await, DEPLOYMENT, "the shared base is untouched");
        let policies = store.policies().await.expect("policies");
        assert!(policies[&web].locked.is_some() && policies[&other].locked.is_none(), "{policies:?}");

        // Automation the base turns on is turned off for this app alone ("false": kustomize
        // would write a `null` annotation as the string "null").
        let off = PolicyUpdate { workload: web.clone(), changes: vec![PolicyChange::Deautomate] };
        store.update(&[off], &ChangeCause::default()).await.expect("deautomate");
        assert!(text(&source, "plain/flux-patches/deployment-web.yaml").await.contains("fluxcd.io/automated: \"false\""));
        let policies = store.policies().await.expect("policies");
        assert!(!policies[&web].automated && policies[&other].automated, "{policies:?}");

        // What only the patch says is taken out of it.
        let unlock = PolicyUpdate { workload: web.clone(), changes: vec![PolicyChange::Unlock] };
        store.update(&[unlock], &ChangeCause::default()).await.expect("unlock");
        let patch = text(&source, "plain/flux-patches/deployment-web.yaml").await;
        assert!(!patch.contains("locked"), "{patch}");
        assert!(store.policies().await.expect("policies")[&web].locked.is_none());

        // A tag filter the base sets cannot be removed for one app: said clearly, nothing committed.
        let clear = PolicyUpdate { workload: web.clone(), changes: vec![PolicyChange::ClearTagFilter { container: "app".into() }] };
        let error = store.update(&[clear], &ChangeCause::default()).await.expect_err("refused");
        assert!(error.to_string().contains("is set in the app's resources (a base)"), "{error}");
        assert_eq!(source.log().len(), 4, "one commit per update that changed something");
    });
}
