//! HelmRelease and Flagger, end to end with a real registry and a real kube-apiserver: the
//! HelmRelease CRD is installed by the sync, a new tag pushed to the registry is written into
//! the HelmRelease's `spec.values` (and into the Deployment a Flagger Canary targets) as one
//! commit, and the next sync applies both; the Canary is applied like any custom resource.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use flux_core::automation::{AutomationConfig, AutomationEngine};
use flux_registry::{DockerConfig, OciRegistry, RegistryConfig};
use flux_testenv::KubeApiServer;
use flux_testenv::TestRegistry;
use serde_json::Value;

fn crd(group: &str, kind: &str, plural: &str, version: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    kind: {kind}
    plural: {plural}
    singular: {singular}
    listKind: {kind}List
  versions:
  - name: {version}
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
",
        singular = kind.to_lowercase()
    )
}

fn helm_release(host: &str) -> String {
    format!(
        "apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: podinfo
  namespace: apps
  annotations:
    fluxcd.io/automated: \"true\"
    fluxcd.io/tag.chart-image: semver:~1.0
spec:
  releaseName: podinfo
  chart:
    repository: https://stefanprodan.github.io/podinfo
    name: podinfo
    version: 3.2.0
  values:
    # The chart's image, found by Flux v1's conventions.
    image:
      repository: {host}/team/podinfo
      tag: 1.0.0
    replicaCount: 2
"
    )
}

const CANARY: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: frontend
  namespace: apps
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: frontend
  service:
    port: 80
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
    maxWeight: 50
";

#[test]
fn a_new_tag_reaches_a_helm_release_and_a_canary_target_through_git() {
    let Some(server) = KubeApiServer::start() else { return };
    let Some(registry) = TestRegistry::start() else { return };
    runtime().block_on(async {
        let host = registry.host().to_owned();
        let pusher = registry.pusher();
        pusher.push_image(&format!("{host}/team/podinfo:1.0.0"), Some("2024-01-01T00:00:00Z")).await.expect("push");
        pusher.push_image(&format!("{host}/team/frontend:2.0.0"), Some("2024-01-01T00:00:00Z")).await.expect("push");

        let frontend = deployment_yaml(
            "frontend",
            &format!("{host}/team/frontend:2.0.0"),
            &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:^2")],
        )
        .replace("  name: frontend\n", "  name: frontend\n  namespace: apps\n");
        let release = helm_release(&host);
        let files = [
            ("crds/helmrelease.yaml", crd("helm.fluxcd.io", "HelmRelease", "helmreleases", "v1")),
            ("crds/canary.yaml", crd("flagger.app", "Canary", "canaries", "v1beta1")),
            ("apps/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n".to_owned()),
            ("apps/podinfo.yaml", release.clone()),
            ("apps/frontend.yaml", frontend.clone()),
            ("apps/frontend-canary.yaml", CANARY.to_owned()),
        ];
        let source = repository(&files.iter().map(|(p, c)| (*p, c.as_str())).collect::<Vec<_>>());
        let cluster = cluster(&server).await;
        let generator = generator(false, Duration::from_secs(60));
        let engine = engine(&source, &cluster, generator.clone());
        let first = engine.sync_head().await.expect("sync");
        assert!(first.is_success(), "{:?}", first.errors);
        assert!(live(&cluster, "flagger.app/v1beta1", "apps:canary/frontend").await.is_some(), "the Canary is applied");

        // New tags: one the HelmRelease's filter takes, one it does not; one for the canary target.
        pusher.push_image(&format!("{host}/team/podinfo:1.0.1"), Some("2024-02-01T00:00:00Z")).await.expect("push");
        pusher.push_image(&format!("{host}/team/podinfo:1.1.0"), Some("2024-03-01T00:00:00Z")).await.expect("push");
        pusher.push_image(&format!("{host}/team/frontend:2.1.0"), Some("2024-03-01T00:00:00Z")).await.expect("push");
        let oci = OciRegistry::new(RegistryConfig {
            insecure_hosts: vec![host.clone()],
            docker_config: DockerConfig::Disabled,
            ..RegistryConfig::default()
        })
        .expect("a registry client");
        let automation = AutomationEngine::new(
            Arc::new(source.clone()),
            Arc::new(oci),
            generator.clone(),
            AutomationConfig::default(),
        );
        let report = automation.automate().await.expect("automate");
        assert!(report.revision.is_some(), "{report:?}");
        assert_eq!(report.changes.len(), 2, "{report:?}");
        assert!(source.log()[0].message.starts_with("Auto-release multiple (2) images"), "{}", source.log()[0].message);

        let after = text(&source, "apps/podinfo.yaml").await;
        assert_eq!(after, release.replace("tag: 1.0.0", "tag: 1.0.1"), "only the tag in spec.values changed");
        assert_eq!(text(&source, "apps/frontend.yaml").await, frontend.replace("frontend:2.0.0", "frontend:2.1.0"));
        assert_eq!(text(&source, "apps/frontend-canary.yaml").await, CANARY, "the Canary is not touched");

        let second = engine.sync_head().await.expect("sync");
        assert!(second.is_success(), "{:?}", second.errors);
        let live_release = live(&cluster, "helm.fluxcd.io/v1", "apps:helmrelease/podinfo").await.expect("HelmRelease");
        assert_eq!(live_release.pointer("/spec/values/image/tag").and_then(Value::as_str), Some("1.0.1"));
        assert_eq!(live_image(&cluster, "apps:deployment/frontend").await, Some(format!("{host}/team/frontend:2.1.0")));

        // Nothing newer: the next pass commits nothing.
        let again = automation.automate().await.expect("automate");
        assert!(again.revision.is_none() && again.changes.is_empty(), "{again:?}");
    });
}
