//! Real `kubectl kustomize` (or `kustomize build`) of a base and an overlay.

use flux_core::{Error, SourceFile};
use flux_generate::{Checkout, Kustomize};
use serde_json::Value;

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile { path: path.to_owned(), content: content.as_bytes().to_vec() }
}

/// The detected kustomize, or `None` (a loud skip outside CI, a failure in CI) when neither
/// `kustomize` nor `kubectl` is installed.
fn kustomize() -> Option<Kustomize> {
    let found = flux_testenv::find_program("kustomize").or_else(|| flux_testenv::find_program("kubectl"));
    flux_testenv::require("kustomize or kubectl (with built-in kustomize)", found)?;
    Some(Kustomize::detect())
}

const BASE: &str = "\
resources:
  - deployment.yaml
  - service.yaml
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.local/team/web:1.0.0
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
";

const OVERLAY: &str = "\
namespace: prod
namePrefix: prod-
resources:
  - ../../base
images:
  - name: registry.local/team/web
    newTag: 2.1.0
";

fn repo() -> Vec<SourceFile> {
    vec![
        file("base/kustomization.yaml", BASE),
        file("base/deployment.yaml", DEPLOYMENT),
        file("base/service.yaml", SERVICE),
        file("overlays/prod/kustomization.yaml", OVERLAY),
        file("overlays/broken/kustomization.yaml", "resources:\n  - missing.yaml\n"),
    ]
}

#[tokio::test]
async fn builds_an_overlay() {
    let Some(kustomize) = kustomize() else { return };
    let checkout = Checkout::new(&repo()).unwrap();
    let yaml = kustomize.build(checkout.path(), "overlays/prod").await.unwrap();
    let objects: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let summary: Vec<(String, String, String)> = objects
        .iter()
        .map(|o| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (text(&o["kind"]), text(&o["metadata"]["namespace"]), text(&o["metadata"]["name"]))
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Service".to_owned(), "prod".to_owned(), "prod-web".to_owned()),
            ("Deployment".to_owned(), "prod".to_owned(), "prod-web".to_owned()),
        ]
    );
    let deployment = &objects[1];
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "registry.local/team/web:2.1.0");

    // The base alone, from the root path syntax.
    let base = kustomize.build(checkout.path(), "./base/").await.unwrap();
    assert!(base.contains("image: registry.local/team/web:1.0.0"), "{base}");
    assert!(!base.contains("prod"), "{base}");
}

#[tokio::test]
async fn a_broken_kustomization_names_the_directory_and_kustomize_s_complaint() {
    let Some(kustomize) = kustomize() else { return };
    let checkout = Checkout::new(&repo()).unwrap();
    let err = kustomize.build(checkout.path(), "overlays/broken").await.unwrap_err();
    let Error::InvalidInput { location, message } = &err else { panic!("{err:?}") };
    assert_eq!(location.file, "overlays/broken");
    assert!(message.contains("missing.yaml"), "{message}");
    assert!(message.contains("overlays/broken"), "{message}");
    let root = checkout.path().display().to_string();
    assert!(!message.contains(&root), "the temporary checkout path is left out: {message}");

    let err = kustomize.build(checkout.path(), "no/such/dir").await.unwrap_err();
    assert!(err.to_string().starts_with("no/such/dir: "), "{err}");

    let err = kustomize.build(checkout.path(), "../outside").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn an_explicit_command_is_used_as_given() {
    let checkout = Checkout::new(&repo()).unwrap();
    // `echo` stands in for a kustomize binary: it shows the exact words it was given.
    let echo = Kustomize::with_command(vec!["echo".into(), "build it".into()]);
    assert_eq!(echo.build(checkout.path(), "overlays/prod").await.unwrap(), "build it overlays/prod\n");
    assert_eq!(echo.build(checkout.path(), "").await.unwrap(), "build it .\n");
    let missing = Kustomize::with_command(vec!["no-such-kustomize-flux".into()]);
    let err = missing.build(checkout.path(), "base").await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert!(Kustomize::with_command(Vec::new()).build(checkout.path(), "base").await.is_err());
}

#[test]
fn detection_prefers_a_standalone_kustomize_on_the_commands_path() {
    let bin = tempfile::tempdir().unwrap();
    let runner = flux_generate::CommandRunner::new().with_path(bin.path());
    assert_eq!(Kustomize::detect_with(runner.clone()).command(), ["kubectl", "kustomize"]);
    std::fs::write(bin.path().join("kustomize"), "#!/bin/sh\n").unwrap();
    assert_eq!(Kustomize::detect_with(runner).command(), ["kustomize", "build"]);
}
