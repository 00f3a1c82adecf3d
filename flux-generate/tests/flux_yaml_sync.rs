//! `.flux.yaml` manifest generation end to end against a real kube-apiserver: `commandUpdated`
//! (generators and updaters with Flux v1's environment) and `patchUpdated` (a patch file Flux
//! keeps), each through generation, an image release and a policy change.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::automation::{AutomationConfig, AutomationEngine, ManifestPolicyStore, ReleaseSpec};
use flux_core::memory::{MemoryRegistry, MemorySource};
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine};
use flux_core::{ChangeCause, PolicyChange, PolicyStore, PolicyUpdate, ResourceId, SyncIdentity};
use flux_generate::RepoGenerator;
use flux_k8s::KubeCluster;
use flux_testenv::KubeApiServer;
use serde_json::Value;

/// At the repository root: governs `apps/web` from above, as Flux v1 allowed.
const COMMAND_UPDATED: &str = "version: 1
commandUpdated:
  generators:
    - command: sh generate.sh
  updaters:
    - containerImage:
        command: >-
          printf '%s:%s\\n' \"$FLUX_IMG\" \"$FLUX_TAG\" > image.txt &&
          echo \"$FLUX_WORKLOAD $FLUX_WL_NS $FLUX_WL_KIND $FLUX_WL_NAME $FLUX_CONTAINER\" > last-update.txt
      policy:
        command: sh set-policy.sh
";

/// Prints the Deployment from `image.txt` and `policies.txt`.
const GENERATE: &str = r#"set -eu
echo "apiVersion: apps/v1"
echo "kind: Deployment"
echo "metadata:"
echo "  name: web"
echo "  namespace: default"
echo "  annotations:"
echo "    generated-by: flux-yaml"
while IFS='=' read -r key value; do
  [ -n "$key" ] && echo "    fluxcd.io/$key: \"$value\""
done < policies.txt
cat <<END
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
        image: $(cat image.txt)
END
"#;

const SET_POLICY: &str = r#"set -eu
grep -v "^$FLUX_POLICY=" policies.txt > policies.new || true
if [ -n "${FLUX_POLICY_VALUE+set}" ]; then echo "$FLUX_POLICY=$FLUX_POLICY_VALUE" >> policies.new; fi
mv policies.new policies.txt
"#;

fn sync_engine(source: &MemorySource, cluster: &KubeCluster, generator: Arc<RepoGenerator>, path: &str) -> SyncEngine {
    let mut config = SyncConfig::new(SyncIdentity::new("e2e").expect("identity"), [path]);
    config.garbage_collection = GarbageCollection::On;
    SyncEngine::new(Arc::new(source.clone()), Arc::new(cluster.clone()), generator, config)
}

fn registry() -> MemoryRegistry {
    memory_registry("registry.local/web", &["1.0.0", "1.1.0", "1.2.0"])
}

async fn live_annotation(cluster: &KubeCluster, id: &str, key: &str) -> Option<String> {
    let object = live(cluster, "apps/v1", id).await?;
    object.pointer("/metadata/annotations")?.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[test]
fn command_updated_generates_releases_and_sets_policies_through_its_commands() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let source = repository(&[
            (".flux.yaml", COMMAND_UPDATED),
            ("apps/web/generate.sh", GENERATE),
            ("apps/web/set-policy.sh", SET_POLICY),
            ("apps/web/image.txt", "registry.local/web:1.0.0\n"),
            ("apps/web/policies.txt", ""),
            ("apps/web/ignored.yaml", "this file is not read: the .flux.yaml governs the path"),
            ("apps/other/unrelated.yaml", "neither is this one: it is not under the path"),
        ]);
        let generator = generator(true, std::time::Duration::from_secs(60));
        let engine = sync_engine(&source, &cluster, generator.clone(), "apps/web");
        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(report.applied.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(), ["default:deployment/web"]);
        assert_eq!(live_image(&cluster, "default:deployment/web").await.as_deref(), Some("registry.local/web:1.0.0"));

        // An image release runs the containerImage updater with the workload in its environment.
        let config = AutomationConfig { paths: vec!["apps/web".into()], ..AutomationConfig::default() };
        let automation =
            AutomationEngine::new(Arc::new(source.clone()), Arc::new(registry()), generator.clone(), config.clone());
        let web: ResourceId = "default:deployment/web".parse().expect("id");
        let result = automation
            .release(&release_spec("default:deployment/web", "registry.local/web:1.2.0"))
            .await
            .expect("release");
        assert!(result.revision.is_some(), "{result:?}");
        assert_eq!(text(&source, "apps/web/image.txt").await, "registry.local/web:1.2.0\n");
        assert_eq!(
            text(&source, "apps/web/last-update.txt").await,
            "default:deployment/web default deployment web app\n"
        );
        assert_eq!(text(&source, "apps/web/policies.txt").await, "", "the policy updater did not run");

        // A policy change runs the policy updater; the generator then shows the policy.
        let store = ManifestPolicyStore::new(Arc::new(source.clone()), generator.clone(), config);
        let update = PolicyUpdate { workload: web.clone(), changes: vec![PolicyChange::Automate] };
        store.update(&[update], &ChangeCause::default()).await.expect("automate");
        assert_eq!(text(&source, "apps/web/policies.txt").await, "automated=true\n");
        assert!(store.policies().await.expect("policies")[&web].automated);

        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(live_image(&cluster, "default:deployment/web").await.as_deref(), Some("registry.local/web:1.2.0"));
        assert_eq!(
            live_annotation(&cluster, "default:deployment/web", "fluxcd.io/automated").await.as_deref(),
            Some("true")
        );
    });
}

const PATCH_UPDATED: &str = "version: 1
patchUpdated:
  generators:
    - command: cat deployment.yaml
  patchFile: flux-patch.yaml
";

#[test]
fn patch_updated_keeps_releases_and_policies_in_its_patch_file() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let deployment = deployment_yaml("shop", "registry.local/web:1.0.0", &[("team", "shop")]);
        let source = repository(&[("apps/shop/.flux.yaml", PATCH_UPDATED), ("apps/shop/deployment.yaml", &deployment)]);
        let generator = generator(true, std::time::Duration::from_secs(60));
        let engine = sync_engine(&source, &cluster, generator.clone(), "apps/shop");
        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(live_image(&cluster, "default:deployment/shop").await.as_deref(), Some("registry.local/web:1.0.0"));

        let config = AutomationConfig { paths: vec!["apps/shop".into()], ..AutomationConfig::default() };
        let automation =
            AutomationEngine::new(Arc::new(source.clone()), Arc::new(registry()), generator.clone(), config.clone());
        let shop: ResourceId = "default:deployment/shop".parse().expect("id");
        automation
            .release(&release_spec("default:deployment/shop", "registry.local/web:1.1.0"))
            .await
            .expect("release");
        let patch = text(&source, "apps/shop/flux-patch.yaml").await;
        assert!(patch.contains("image: registry.local/web:1.1.0"), "{patch}");
        assert_eq!(text(&source, "apps/shop/deployment.yaml").await, deployment, "the generated input is left alone");

        let store = ManifestPolicyStore::new(Arc::new(source.clone()), generator.clone(), config);
        let lock = PolicyUpdate { workload: shop.clone(), changes: vec![PolicyChange::Lock(Default::default())] };
        store.update(&[lock], &ChangeCause::default()).await.expect("lock");
        let patch = text(&source, "apps/shop/flux-patch.yaml").await;
        assert!(patch.contains("fluxcd.io/locked"), "{patch}");
        assert!(store.policies().await.expect("policies")[&shop].locked.is_some());

        // A second release edits the patch in place: only the image line changes.
        let before = text(&source, "apps/shop/flux-patch.yaml").await;
        let spec = ReleaseSpec { force: true, ..release_spec("default:deployment/shop", "registry.local/web:1.2.0") };
        automation.release(&spec).await.expect("release");
        let after = text(&source, "apps/shop/flux-patch.yaml").await;
        let (added, removed) = changed_lines(&before, &after);
        assert_eq!(added.iter().map(|l| l.trim()).collect::<Vec<_>>(), ["image: registry.local/web:1.2.0"], "{after}");
        assert_eq!(removed.iter().map(|l| l.trim()).collect::<Vec<_>>(), ["image: registry.local/web:1.1.0"]);

        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(live_image(&cluster, "default:deployment/shop").await.as_deref(), Some("registry.local/web:1.2.0"));
        assert_eq!(
            live_annotation(&cluster, "default:deployment/shop", "fluxcd.io/locked").await.as_deref(),
            Some("true")
        );
        assert_eq!(live_annotation(&cluster, "default:deployment/shop", "team").await.as_deref(), Some("shop"));
    });
}
