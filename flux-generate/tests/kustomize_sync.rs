//! Kustomize apps end to end: a base and two overlays built by the real kustomize and synced to a
//! real kube-apiserver; a release to one environment lands in that overlay's `images:` and
//! changes nothing else.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::ResourceId;
use flux_core::automation::{AutomationConfig, AutomationEngine};
use flux_testenv::KubeApiServer;

const STAGING: &str = "# Staging runs ahead of production.\nnamespace: staging\nresources:\n- ../../base\nimages:\n- name: registry.local/web\n  newTag: 1.1.0 # bumped by hand\n";
const PRODUCTION: &str =
    "namespace: production\nresources:\n  - ../../base\nimages:\n  - name: registry.local/web\n    newTag: \"1.0.0\"\n";

fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            "namespaces.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: staging\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: production\n".into(),
        ),
        ("apps/base/kustomization.yaml", "resources:\n- deployment.yaml\n- service.yaml\n".into()),
        ("apps/base/deployment.yaml", deployment_yaml("web", "registry.local/web:1.0.0", &[])),
        (
            "apps/base/service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    protocol: TCP\n".into(),
        ),
        ("apps/overlays/staging/kustomization.yaml", STAGING.into()),
        ("apps/overlays/production/kustomization.yaml", PRODUCTION.into()),
    ]
}

#[test]
fn overlays_are_built_synced_and_released_into_their_own_images_entry() {
    let Some(server) = KubeApiServer::start() else { return };
    if !kubectl_present() {
        return;
    }
    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let files = files();
        let source = repository(&files.iter().map(|(p, c)| (*p, c.as_str())).collect::<Vec<_>>());
        let generator = generator(false, std::time::Duration::from_secs(60));
        let engine = engine(&source, &cluster, generator.clone());

        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        let mut applied: Vec<String> = report.applied.iter().map(|r| r.id.to_string()).collect();
        applied.sort();
        assert_eq!(
            applied,
            [
                "<cluster>:namespace/production",
                "<cluster>:namespace/staging",
                "production:deployment/web",
                "production:service/web",
                "staging:deployment/web",
                "staging:service/web",
            ],
            "each overlay once, the base never on its own"
        );
        assert_eq!(live_image(&cluster, "staging:deployment/web").await.as_deref(), Some("registry.local/web:1.1.0"));
        assert_eq!(
            live_image(&cluster, "production:deployment/web").await.as_deref(),
            Some("registry.local/web:1.0.0")
        );

        // Release 1.2.0 to staging only.
        let registry = memory_registry("registry.local/web", &["1.0.0", "1.1.0", "1.2.0"]);
        let automation = AutomationEngine::new(
            Arc::new(source.clone()),
            Arc::new(registry),
            generator.clone(),
            AutomationConfig::default(),
        );
        let staging: ResourceId = "staging:deployment/web".parse().expect("id");
        let images = automation.images(Some(&staging)).await.expect("images");
        assert_eq!(images[0].containers[0].current.to_string(), "registry.local/web:1.1.0");
        let spec = release_spec("staging:deployment/web", "registry.local/web:1.2.0");
        let release = automation.release(&spec).await.expect("release");
        assert!(release.revision.is_some(), "{release:?}");

        let after = text(&source, "apps/overlays/staging/kustomization.yaml").await;
        assert_eq!(after, STAGING.replace("newTag: 1.1.0 #", "newTag: 1.2.0 #"), "only the tag changed, comments kept");
        assert_eq!(text(&source, "apps/overlays/production/kustomization.yaml").await, PRODUCTION);
        assert_eq!(text(&source, "apps/base/deployment.yaml").await, files[2].1, "the shared base is left alone");

        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        let applied: Vec<String> = report.applied.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(applied, ["staging:deployment/web"]);
        assert_eq!(live_image(&cluster, "staging:deployment/web").await.as_deref(), Some("registry.local/web:1.2.0"));
        assert_eq!(
            live_image(&cluster, "production:deployment/web").await.as_deref(),
            Some("registry.local/web:1.0.0")
        );

        // A production release where the overlay's entry is quoted: the quotes stay.
        let spec = release_spec("production:deployment/web", "registry.local/web:1.2.0");
        automation.release(&spec).await.expect("release");
        assert_eq!(
            text(&source, "apps/overlays/production/kustomization.yaml").await,
            PRODUCTION.replace("\"1.0.0\"", "\"1.2.0\"")
        );
    });
}

#[test]
fn a_broken_kustomization_makes_the_revision_unusable_and_prunes_nothing() {
    let Some(server) = KubeApiServer::start() else { return };
    if !kubectl_present() {
        return;
    }
    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let files = files();
        let source = repository(&files.iter().map(|(p, c)| (*p, c.as_str())).collect::<Vec<_>>());
        let engine = engine(&source, &cluster, generator(false, std::time::Duration::from_secs(60)));
        assert!(engine.sync_head().await.expect("sync").is_success());

        // The overlay now names a base that does not exist.
        let broken = STAGING.replace("../../base", "../../nowhere");
        source
            .push_external(&[flux_core::FileChange::write("apps/overlays/staging/kustomization.yaml", broken)], "typo")
            .expect("push");
        let report = engine.sync_head().await.expect("sync");
        assert!(!report.usable, "a kustomization that does not build makes the revision unusable");
        let errors = format!("{:?}", report.errors);
        assert!(errors.contains("apps/overlays/staging"), "the error names the app: {errors}");
        assert!(report.pruned.is_empty(), "nothing is pruned: {:?}", report.pruned);
        assert!(live(&cluster, "apps/v1", "staging:deployment/web").await.is_some(), "staging is still running");
    });
}
