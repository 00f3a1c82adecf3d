//! The example repository of the end-to-end test: a namespace, automated workloads (semver and
//! glob filters), a locked one, a CronJob, a HelmRelease (with its CRD) and services.

/// `(path, content)` of every manifest, with images in the registry `reg`.
pub(crate) fn manifests(reg: &str) -> Vec<(String, String)> {
    vec![
        ("deploy/namespace.yaml".into(), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n".into()),
        (
            "deploy/app.yaml".into(),
            deployment(
                "app",
                &format!("{reg}/demo/app:1.0.0"),
                &[("fluxcd.io/automated", "\"true\""), ("fluxcd.io/tag.app", "semver:~1")],
            ),
        ),
        ("deploy/app-svc.yaml".into(), service("app")),
        (
            "deploy/web.yaml".into(),
            deployment(
                "web",
                &format!("{reg}/demo/web:v1.0"),
                &[("fluxcd.io/automated", "\"true\""), ("fluxcd.io/tag.web", "glob:v1.*")],
            ),
        ),
        ("deploy/web-svc.yaml".into(), service("web")),
        (
            "deploy/frozen.yaml".into(),
            deployment(
                "frozen",
                &format!("{reg}/demo/app:1.0.0"),
                &[("fluxcd.io/automated", "\"true\""), ("fluxcd.io/locked", "\"true\"")],
            ),
        ),
        ("deploy/nightly.yaml".into(), cronjob(&format!("{reg}/demo/app:1.0.0"))),
        ("deploy/helmrelease-crd.yaml".into(), HELM_CRD.into()),
        ("deploy/chart.yaml".into(), helm_release(&format!("{reg}/demo/app:1.0.0"))),
        (
            "deploy/config.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: demo\ndata:\n  colour: blue\n"
                .into(),
        ),
        (
            "deploy/extra.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: demo\ndata:\n  size: large\n"
                .into(),
        ),
    ]
}

fn annotations(list: &[(&str, &str)]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let lines: String = list.iter().map(|(k, v)| format!("    {k}: {v}\n")).collect();
    format!("  annotations:\n{lines}")
}

fn deployment(name: &str, image: &str, notes: &[(&str, &str)]) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: demo\n{}spec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: {name}\n        image: {image}\n",
        annotations(notes)
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: demo\nspec:\n  selector:\n    app: {name}\n  ports:\n  - port: 80\n    protocol: TCP\n"
    )
}

fn cronjob(image: &str) -> String {
    format!(
        "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: demo\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: report\n            image: {image}\n"
    )
}

fn helm_release(image: &str) -> String {
    format!(
        "apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata:\n  name: chart\n  namespace: demo\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.chart-image: semver:~1\nspec:\n  chart:\n    repository: https://charts.example.invalid/\n    name: chart\n    version: 1.0.0\n  values:\n    image: {image}\n"
    )
}

const HELM_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: helmreleases.helm.fluxcd.io
spec:
  group: helm.fluxcd.io
  names:
    kind: HelmRelease
    listKind: HelmReleaseList
    plural: helmreleases
    singular: helmrelease
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";
