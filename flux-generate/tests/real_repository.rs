//! A repository as people have them, synced by `RepoGenerator` (what fluxd uses) from real git
//! over `file://` into a real kube-apiserver: a CI workflow under `.github/`, a Grafana
//! dashboard, a Helm chart with templates, a Kustomize-style data file and a README sit next to
//! the manifests. They are skipped and listed in the report; the objects are applied. Then a
//! broken manifest (meant to be an object) makes the revision unusable with its file and line,
//! and nothing is pruned.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::manifest::SkipReason;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{Cluster, SyncIdentity};
use flux_git::{GitConfig, GitSource};
use flux_testenv::KubeApiServer;
use flux_testenv::git::BareRepo;

const WORKFLOW: &str = "name: CI\non:\n  push:\n    branches: [main]\njobs:\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: kubeval ${{ github.workspace }}/apps\n";
const DASHBOARD: &str = r#"{
  "title": "web",
  "uid": "web-latency",
  "panels": [{"type": "timeseries", "targets": [{"expr": "rate(http_requests_total[5m])"}]}],
  "schemaVersion": 39
}
"#;
const CHART: &str = "apiVersion: v2\nname: podinfo\nversion: 6.0.0\n";
const VALUES: &str = "replicaCount: 1\nimage:\n  repository: ghcr.io/stefanprodan/podinfo\n  tag: 6.0.0\n";
const TEMPLATE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- with .Values.labels }}\n  labels: {{ toYaml . | nindent 4 }}\n{{- end }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n";
const KUSTOMIZECONFIG: &str = "nameReference:\n- kind: ConfigMap\n  version: v1\n  fieldSpecs:\n  - path: spec/template/spec/volumes/configMap/name\n    kind: Deployment\n";
const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: real-repo\n";
const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: real-repo\ndata:\n  level: info\n";

fn crd(group: &str, version: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: helmreleases.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: HelmRelease, plural: helmreleases, singular: helmrelease, listKind: HelmReleaseList}}\n  versions:\n  - name: {version}\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
    )
}

/// A Flux v1 HelmRelease of the older group, as the Helm Operator's first releases wanted it.
const BETA_RELEASE: &str = "apiVersion: flux.weave.works/v1beta1\nkind: HelmRelease\nmetadata:\n  name: ambassador\n  namespace: real-repo\n  annotations:\n    flux.weave.works/automated: \"true\"\nspec:\n  releaseName: ambassador\n  chart: {repository: https://example.com/charts, name: ambassador, version: 1.0.0}\n  values:\n    image:\n      repository: quay.io/datawire/ambassador\n      tag: 0.70.1\n";

fn engine(repo: &BareRepo, cluster: &flux_k8s::KubeCluster) -> SyncEngine {
    let source = GitSource::open(GitConfig::new(repo.file_url(), "main")).expect("a git source");
    let mut config = SyncConfig::new(SyncIdentity::new("real-repo").expect("identity"), Vec::<String>::new());
    config.garbage_collection = GarbageCollection::On;
    let generator = generator(false, std::time::Duration::from_secs(60));
    SyncEngine::new(Arc::new(source), Arc::new(cluster.clone()), generator, config)
}

fn skipped(report: &SyncReport) -> Vec<String> {
    report.skipped.iter().map(ToString::to_string).collect()
}

fn errors(report: &SyncReport) -> String {
    report.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n")
}

#[test]
fn what_is_not_an_object_is_skipped_and_listed_and_a_broken_manifest_stops_everything() {
    let Some(server) = KubeApiServer::start() else { return };
    let Some(repo) = BareRepo::new() else { return };
    let files: Vec<(&str, String)> = vec![
        (".github/workflows/ci.yml", WORKFLOW.into()),
        ("dashboards/web.json", DASHBOARD.into()),
        ("charts/podinfo/Chart.yaml", CHART.into()),
        ("charts/podinfo/values.yaml", VALUES.into()),
        ("charts/podinfo/templates/deployment.yaml", TEMPLATE.into()),
        ("config/kustomizeconfig.yaml", KUSTOMIZECONFIG.into()),
        ("apps/namespace.yaml", NAMESPACE.into()),
        (
            "apps/web.yaml",
            deployment_yaml("web", "nginx:1.25", &[("fluxcd.io/automated", "true")])
                .replace("  name: web\n", "  name: web\n  namespace: real-repo\n"),
        ),
        ("apps/settings.yaml", SETTINGS.into()),
        (
            "crds/helm-operator.yaml",
            format!("{}---\n{}", crd("helm.fluxcd.io", "v1"), crd("flux.weave.works", "v1beta1")),
        ),
        ("apps/ambassador.yaml", BETA_RELEASE.into()),
    ];
    let bytes: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
    repo.commit_files(&bytes, "a repository as people have them");

    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let engine = engine(&repo, &cluster);

        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{}", errors(&report));
        let mut applied: Vec<String> = report.applied.iter().map(|r| r.id.to_string()).collect();
        applied.sort();
        assert_eq!(
            applied,
            [
                "<cluster>:customresourcedefinition/helmreleases.flux.weave.works",
                "<cluster>:customresourcedefinition/helmreleases.helm.fluxcd.io",
                "<cluster>:namespace/real-repo",
                "real-repo:configmap/settings",
                "real-repo:deployment/web",
                "real-repo:helmrelease/ambassador",
            ]
        );
        assert_eq!(
            skipped(&report),
            [
                ".github/: a hidden directory",
                "charts/podinfo/: a Helm chart (it has a Chart.yaml): Helm renders it, not flux",
                "config/kustomizeconfig.yaml:1: not a Kubernetes object (no apiVersion and no kind)",
                "dashboards/web.json:1: not a Kubernetes object (no apiVersion and no kind)",
            ],
            "README.md is not a manifest file at all: not listed"
        );
        assert_eq!(report.skipped[1].reason, SkipReason::HelmChart);
        let json = serde_json::to_value(&report).expect("the report serialises");
        assert_eq!(json["skipped"][0], serde_json::json!({"path": ".github/", "reason": "hidden_directory"}));

        // The older Flux v1 HelmRelease is a workload in the cluster, with its image.
        let workloads = cluster.workloads(Some("real-repo")).await.expect("workloads");
        let ambassador = workloads.iter().find(|w| w.id.to_string() == "real-repo:helmrelease/ambassador");
        let images: Vec<&str> =
            ambassador.expect("listed").containers.iter().map(|c| c.image.as_str()).collect();
        assert_eq!(images, ["quay.io/datawire/ambassador:0.70.1"]);

        // The same revision again: listed again, from the cache.
        let again = engine.sync_head().await.expect("sync");
        assert_eq!(skipped(&again), skipped(&report));

        // A manifest meant to be an object but broken, next to good ones; the settings leave git
        // in the same commit. The revision is unusable, with the file and line; nothing is pruned.
        let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n  namespace: real-repo\n  annotations:\n    fluxcd.io/automated: true\ndata: {}\n";
        repo.commit_files(&[("apps/broken.yaml", broken.as_bytes()), ("apps/settings.yaml", b"")], "oops");
        let report = engine.sync_head().await.expect("sync");
        assert!(!report.usable, "a broken manifest makes the revision unusable");
        let text = errors(&report);
        assert!(
            text.contains("apps/broken.yaml:7: configmap/broken: annotation fluxcd.io/automated is the boolean true"),
            "{text}"
        );
        assert!(report.pruned.is_empty(), "nothing is pruned: {:?}", report.pruned);
        assert!(live(&cluster, "v1", "real-repo:configmap/settings").await.is_some(), "the settings are still there");

        // Bad YAML in a file with apiVersion and kind: the same, at the line of the error.
        let bad_yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n  namespace: real-repo\ndata:\n  a: [1\n";
        repo.commit_files(&[("apps/broken.yaml", bad_yaml.as_bytes())], "oops again");
        let report = engine.sync_head().await.expect("sync");
        assert!(!report.usable);
        let text = errors(&report);
        assert!(text.contains("apps/broken.yaml:") && text.contains("invalid YAML"), "{text}");
        assert!(report.pruned.is_empty(), "nothing is pruned: {:?}", report.pruned);

        // Fixed: the revision is usable again and what left git is collected.
        let fixed = broken.replace(": true\n", ": \"true\"\n");
        repo.commit_files(&[("apps/broken.yaml", fixed.as_bytes())], "quoted");
        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{}", errors(&report));
        let pruned: Vec<String> = report.pruned.iter().map(|p| p.id.to_string()).collect();
        assert_eq!(pruned, ["real-repo:configmap/settings"]);
        assert_eq!(skipped(&report).len(), 4, "the same four things skipped");
    });
}
