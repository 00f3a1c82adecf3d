//! Workloads, their containers and policies, from the corpus and from bad annotations.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::{ContainerLocator, ManifestOptions, read_manifests, workloads, workloads_with_errors};
use flux_core::policy::Ignore;
use flux_core::{Lock, SourceFile};

fn corpus_file(name: &str) -> SourceFile {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    SourceFile { path: format!("corpus/{name}"), content: std::fs::read(path).expect("corpus file") }
}

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile { path: path.to_owned(), content: text.as_bytes().to_vec() }
}

fn images(files: &[SourceFile]) -> Vec<String> {
    let manifests = read_manifests(files, &ManifestOptions::default()).unwrap();
    let mut out = Vec::new();
    for w in workloads(&manifests).unwrap() {
        for c in &w.containers {
            out.push(format!("{} {}{} {}", w.id, c.name, if c.init { " (init)" } else { "" }, c.image));
        }
    }
    out
}

#[test]
fn pod_workloads_and_their_containers() {
    assert_eq!(
        images(&[corpus_file("multi-workloads.yaml"), corpus_file("cronjob.yaml"), corpus_file("crlf.yaml")]),
        [
            "default:deployment/windows-app app mcr.microsoft.com/dotnet/aspnet:8.0",
            "ops:cronjob/report report ghcr.io/example/report:nightly-20240101",
            "ops:cronjob/legacy-report report ghcr.io/example/report:nightly-20231231",
            "shop:deployment/frontend migrate (init) registry.example.com:5000/shop/migrate:1.4.0",
            "shop:deployment/frontend web registry.example.com:5000/shop/web:1.4.2",
            "shop:deployment/frontend sidecar envoyproxy/envoy:3.1",
            "default:statefulset/db postgres postgres:15.4-alpine",
            "kube-system:daemonset/node-agent agent quay.io/prometheus/node-exporter@sha256:4cb2b9019f1757be8482419002cb7afe028fdba35d47958829e4cfeaf6246d80",
        ]
    );
}

#[test]
fn helm_release_images_by_convention_and_by_mapping() {
    assert_eq!(
        images(&[corpus_file("helmrelease.yaml")]),
        [
            "demo:helmrelease/podinfo backend ghcr.io/example/backend:2.0.1",
            "demo:helmrelease/podinfo cache redis:7.0.5",
            "demo:helmrelease/podinfo chart-image stefanprodan/podinfo:3.1.0",
            "demo:helmrelease/podinfo frontend docker.io/example/frontend:0.9",
            "demo:helmrelease/podinfo worker quay.io/example/worker:v1.2.3",
            "default:helmrelease/metrics chart-image prom/prometheus:v2.45.0",
        ]
    );
    let manifests = read_manifests(&[corpus_file("helmrelease.yaml")], &ManifestOptions::default()).unwrap();
    let w = &workloads(&manifests).unwrap()[0];
    let ContainerLocator::Helm(paths) = &w.container("worker").unwrap().locator else { panic!("helm locator") };
    assert_eq!(paths.image.join("."), "spec.values.worker.image.repository");
    assert_eq!(paths.tag.as_ref().unwrap().join("."), "spec.values.worker.image.tag");
    assert_eq!(paths.registry.as_ref().unwrap().join("."), "spec.values.worker.image.registry");
    assert_eq!(w.policies.tag_filter("chart-image").as_str(), "semver:~3.1");
    assert_eq!(w.policies.tag_filter("backend").as_str(), "glob:2.*");
}

#[test]
fn policies_are_read_for_each_workload() {
    let manifests = read_manifests(&[corpus_file("multi-workloads.yaml")], &ManifestOptions::default()).unwrap();
    let ws = workloads(&manifests).unwrap();
    let frontend = &ws[0];
    assert!(frontend.policies.is_automatable());
    assert_eq!(frontend.policies.tag_filter("web").as_str(), "semver:~1.4");
    assert_eq!(frontend.container("web").unwrap().locator, ContainerLocator::Pod { field: "containers", index: 0 });
    let db = &ws[1];
    assert_eq!(
        db.policies.locked,
        Some(Lock { message: Some("schema migration in progress".into()), user: Some("Ada <ada@example.com>".into()) })
    );
    assert_eq!(ws[2].policies.ignore, Some(Ignore::SyncOnly));
    assert_eq!(ws[2].location.to_string(), "corpus/multi-workloads.yaml:56");
}

fn workload_error(text: &str) -> String {
    let manifests = read_manifests(&[file("apps/w.yaml", text)], &ManifestOptions::default()).unwrap();
    let errors = workloads(&manifests).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    errors.errors()[0].to_string()
}

#[test]
fn an_invalid_tag_filter_names_workload_and_annotation() {
    let err = workload_error(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    fluxcd.io/tag.app: 'semver:>=banana'\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: nginx}]\n",
    );
    assert!(
        err.starts_with("apps/w.yaml:1: default:deployment/web: annotation fluxcd.io/tag.app: invalid tag filter"),
        "{err}"
    );
}

#[test]
fn an_invalid_regex_filter_under_the_legacy_prefix_is_named() {
    let err = workload_error(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\n  annotations: {flux.weave.works/tag.app: 'regex:(unclosed'}\nspec: {}\n",
    );
    assert!(
        err.starts_with("apps/w.yaml:1: default:cronjob/tick: annotation flux.weave.works/tag.app: invalid tag filter"),
        "{err}"
    );
}

#[test]
fn an_invalid_image_names_workload_and_container() {
    let err = workload_error(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: app\n      image: 'UPPER/Case:tag'\n",
    );
    assert!(err.starts_with("apps/w.yaml:1: default:pod/p: container app: invalid image reference"), "{err}");
}

#[test]
fn a_mapping_annotation_that_points_nowhere_is_named() {
    let err = workload_error(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: h\n  annotations:\n    repository.fluxcd.io/app: app.repo\nspec:\n  values: {app: {name: x}}\n",
    );
    assert_eq!(
        err,
        "apps/w.yaml:1: default:helmrelease/h: annotation repository.fluxcd.io/app: spec.values.app.repo does not exist"
    );
}

#[test]
fn non_workloads_are_left_out() {
    assert!(images(&[file("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")]).is_empty());
}

#[test]
fn jobs_and_pods_are_workloads() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      containers: [{name: run, image: busybox:1.36}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec:\n  initContainers: [{name: wait, image: busybox}]\n  containers: [{name: main, image: 'nginx@sha256:4cb2b9019f1757be8482419002cb7afe028fdba35d47958829e4cfeaf6246d80'}]\n";
    assert_eq!(
        images(&[file("w.yaml", text)]),
        [
            "default:job/once run busybox:1.36",
            "default:pod/solo wait (init) busybox",
            "default:pod/solo main nginx@sha256:4cb2b9019f1757be8482419002cb7afe028fdba35d47958829e4cfeaf6246d80",
        ]
    );
}

#[test]
fn each_workload_carries_its_own_errors_and_hides_no_other() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: good}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: 'nginx:1.25'}]\n---\napiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata:\n  name: chart\n  annotations:\n    tag.fluxcd.io/app: app.tag\nspec:\n  values: {app: {tag: '1.0'}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: ok, image: busybox}\n    - {name: side, image: 'Team/App:1.0'}\n";
    let manifests = read_manifests(&[file("apps/w.yaml", text)], &ManifestOptions::default()).unwrap();
    assert_eq!(workloads(&manifests).unwrap_err().len(), 2, "the strict reading still refuses them");
    let ws = workloads_with_errors(&manifests);
    let ids: Vec<String> = ws.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(ids, ["default:deployment/good", "default:helmrelease/chart", "default:pod/p"]);
    assert!(ws[0].is_valid());

    let helm = &ws[1].errors;
    assert_eq!(helm.len(), 1);
    assert_eq!(helm[0].container.as_deref(), Some("app"));
    assert!(
        helm[0].to_string().starts_with("apps/w.yaml:9: default:helmrelease/chart: annotation tag.fluxcd.io/app: "),
        "{}",
        helm[0]
    );

    let pod = &ws[2];
    assert_eq!(pod.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["ok"], "the readable one is kept");
    let side = &pod.errors[0];
    assert_eq!((side.container.as_deref(), side.value.as_deref()), (Some("side"), Some("Team/App:1.0")));
    assert!(
        side.to_string().starts_with("apps/w.yaml:18: default:pod/p: container side: invalid image reference"),
        "{side}"
    );
}
