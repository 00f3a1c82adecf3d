//! Flux v1 patch files: applying them, and writing image and annotation changes into them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::patch::{apply_patch_file, set_patch_annotation, set_patch_image};
use flux_core::manifest::{ManifestOptions, read_manifests, workloads};
use flux_core::{Error, ImageRef, KubeObject, SourceFile};
use proptest::prelude::*;
use serde_json::{Value, json};

const GENERATED: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    fluxcd.io/automated: \"true\"
spec:
  replicas: 1
  template:
    spec:
      initContainers:
        - name: migrate
          image: example/migrate:1
      containers:
        - name: app
          image: example/app:1.0.0
          args: [--port, \"80\"]
          env:
            - {name: A, value: a}
            - {name: B, value: b}
          volumeMounts:
            - {name: data, mountPath: /data}
        - name: sidecar
          image: envoy:1
      volumes:
        - {name: data, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - {port: 80}
---
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: podinfo
  namespace: demo
spec:
  values:
    image:
      repository: stefanprodan/podinfo
      tag: 3.1.0
";

fn generated() -> Vec<KubeObject> {
    let files = [SourceFile { path: "originals.yaml".into(), content: GENERATED.as_bytes().to_vec() }];
    read_manifests(&files, &ManifestOptions::default()).unwrap().into_iter().map(|m| m.object).collect()
}

fn object(name: &str) -> KubeObject {
    generated().into_iter().find(|o| o.id().to_string() == name).unwrap()
}

fn container(object: &KubeObject, name: &str) -> flux_core::manifest::ContainerManifest {
    let files = [SourceFile {
        path: "o.yaml".into(),
        content: serde_json::to_string(&object.to_value()).unwrap().into_bytes(),
    }];
    let manifests = read_manifests(&files, &ManifestOptions::default()).unwrap();
    workloads(&manifests).unwrap()[0].container(name).unwrap().clone()
}

fn image(s: &str) -> ImageRef {
    s.parse().unwrap()
}

fn apply_one(text: &str, target: &KubeObject) -> Value {
    let all = apply_patch_file("p.yaml", text, generated()).unwrap();
    all.into_iter().find(|o| o.id() == target.id()).unwrap().to_value()
}

/// `object` with the image of container `name` in `field` replaced.
fn with_image(object: &Value, field: &str, name: &str, image: &str) -> Value {
    let mut v = object.clone();
    let list = v.pointer_mut(&format!("/spec/template/spec/{field}")).unwrap().as_array_mut().unwrap();
    let item = list.iter_mut().find(|c| c["name"] == name).unwrap();
    item["image"] = json!(image);
    v
}

#[test]
fn merges_containers_by_name_deletes_nulls_and_replaces_other_lists() {
    let patch = "\
# production settings
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    fluxcd.io/automated: null
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: app
          args: [--port, \"8080\"]
          env:
            - {name: B, value: patched}
            - {name: C, value: c}
            - {name: A, $patch: delete}
          volumeMounts:
            - {mountPath: /data, readOnly: true}
        - name: sidecar
          $patch: delete
        - name: extra
          image: busybox
          resources: {limits: {cpu: null, memory: 1Gi}}
";
    let out = apply_patch_file("p.yaml", patch, generated()).unwrap();
    let originals = generated();
    assert_eq!(out.len(), originals.len());
    for (a, b) in out.iter().zip(&originals) {
        assert_eq!(a.id(), b.id());
        assert_eq!(a.origin(), b.origin());
    }
    let web = out[0].to_value();
    assert_eq!(web["spec"]["replicas"], 3);
    assert_eq!(web["metadata"]["annotations"], json!({}));
    let containers = &web["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers,
        &json!([
            {"name": "app", "image": "example/app:1.0.0", "args": ["--port", "8080"],
             "env": [{"name": "B", "value": "patched"}, {"name": "C", "value": "c"}],
             "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]},
            {"name": "extra", "image": "busybox", "resources": {"limits": {"memory": "1Gi"}}}
        ])
    );
    assert_eq!(
        web["spec"]["template"]["spec"]["initContainers"],
        originals[0].to_value()["spec"]["template"]["spec"]["initContainers"]
    );
    assert_eq!(&out[1..], &originals[1..]);
}

#[test]
fn lists_without_merge_keys_are_replaced_and_identity_stays() {
    let patch = "\
apiVersion: v1
kind: Service
metadata: {name: web, labels: {a: b}}
spec:
  ports: [{port: 8080}]
";
    let out = apply_patch_file("p.yaml", patch, generated()).unwrap();
    let svc = out[1].to_value();
    assert_eq!(svc["spec"]["ports"], json!([{"port": 8080}]));
    assert_eq!(svc["metadata"], json!({"name": "web", "namespace": "default", "labels": {"a": "b"}}));
    // A patch cannot move an object: metadata.namespace stays.
    let patch = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort}\n";
    let out = apply_patch_file("p.yaml", patch, generated()).unwrap();
    assert_eq!(out[1].to_value()["spec"]["type"], "NodePort");
    assert_eq!(out[1].namespace(), Some("default"));
}

#[test]
fn a_patch_that_matches_nothing_is_an_error_at_its_line() {
    for patch in [
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n# other\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n# group differs\napiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n",
    ] {
        let err = apply_patch_file(".flux/patch.yaml", patch, generated()).unwrap_err();
        let Error::InvalidInput { location, message } = &err else { panic!("{err:?}") };
        assert_eq!((location.file.as_str(), location.line), (".flux/patch.yaml", Some(6)), "{err}");
        assert!(message.contains("deployment/web"), "{message}");
    }
    for (patch, line) in [("kind: Service\nmetadata: {name: web}\n", 1), ("a: b\n---\n- x\n", 1), ("x: [\n", 1)] {
        let err = apply_patch_file("p.yaml", patch, generated()).unwrap_err();
        let Error::InvalidInput { location, .. } = &err else { panic!("{err:?}") };
        assert_eq!(location.line, Some(line), "{patch:?}: {err}");
    }
    assert_eq!(apply_patch_file("p.yaml", "", generated()).unwrap(), generated());
    assert_eq!(apply_patch_file("p.yaml", "# nothing yet\n---\n", generated()).unwrap(), generated());
}

#[test]
fn sets_an_image_in_an_empty_file() {
    let web = object("shop:deployment/web");
    let out = set_patch_image("p.yaml", "", &web, &container(&web, "app"), &image("example/app:1.1.0")).unwrap();
    assert!(out.starts_with("apiVersion: apps/v1\n"), "{out}");
    assert_eq!(apply_one(&out, &web), with_image(&web.to_value(), "containers", "app", "example/app:1.1.0"));
    let init = set_patch_image("p.yaml", &out, &web, &container(&web, "migrate"), &image("example/migrate:2")).unwrap();
    assert!(init.contains("initContainers"), "{init}");
    let expected = with_image(&web.to_value(), "containers", "app", "example/app:1.1.0");
    assert_eq!(apply_one(&init, &web), with_image(&expected, "initContainers", "migrate", "example/migrate:2"));
}

#[test]
fn changes_only_the_value_when_the_patch_holds_the_image() {
    let web = object("shop:deployment/web");
    let patch = "\
# keep this comment
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: NodePort}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: app
          image: 'example/app:1.0.1' # pinned by hand
";
    let out = set_patch_image("p.yaml", patch, &web, &container(&web, "app"), &image("example/app:1.2.0")).unwrap();
    assert_eq!(out, patch.replace("'example/app:1.0.1'", "'example/app:1.2.0'"));
}

#[test]
fn rewrites_only_the_targets_document_when_the_value_is_new() {
    let web = object("shop:deployment/web");
    let service =
        "# the service\napiVersion: v1\nkind: Service\nmetadata: {name: web} # inline\nspec: {type: NodePort}\n";
    let deployment =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 5\n";
    let patch = format!("{service}---\n{deployment}");
    // The comment after the rewritten document's last value does not move onto another value.
    let commented = format!("{service}---\n{}# replicas\n", deployment.trim_end_matches('\n').to_owned() + " ");
    let out = set_patch_image("p.yaml", &commented, &web, &container(&web, "sidecar"), &image("envoy:2")).unwrap();
    assert!(!out.contains("# replicas") && out.ends_with("image: envoy:2\n"), "{out}");
    let out = set_patch_image("p.yaml", &patch, &web, &container(&web, "sidecar"), &image("envoy:2")).unwrap();
    assert!(out.starts_with(&format!("{service}---\n")), "{out}");
    let mut expected = with_image(&web.to_value(), "containers", "sidecar", "envoy:2");
    expected["spec"]["replicas"] = json!(5);
    assert_eq!(apply_one(&out, &web), expected);
    // A file with no document for the target gets one appended; the rest stays.
    let out = set_patch_image("p.yaml", service, &web, &container(&web, "app"), &image("example/app:9")).unwrap();
    assert!(out.starts_with(&format!("{service}---\napiVersion: apps/v1\n")), "{out}");
    // Indented and inline documents are rewritten at column 0.
    for start in [
        "  apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web, namespace: shop}\n",
        "--- {apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: shop}}\n",
    ] {
        let out = set_patch_image("p.yaml", start, &web, &container(&web, "app"), &image("example/app:9")).unwrap();
        assert_eq!(apply_one(&out, &web), with_image(&web.to_value(), "containers", "app", "example/app:9"), "{out}");
    }
    // CRLF files stay CRLF.
    let crlf = patch.replace('\n', "\r\n");
    let out = set_patch_image("p.yaml", &crlf, &web, &container(&web, "app"), &image("example/app:9")).unwrap();
    assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
}

#[test]
fn sets_and_removes_annotations() {
    let web = object("shop:deployment/web");
    let key = "fluxcd.io/tag.app";
    let out = set_patch_annotation("p.yaml", "", &web, key, Some("semver:~1")).unwrap();
    assert_eq!(apply_one(&out, &web)["metadata"]["annotations"][key], "semver:~1");
    // Into an existing document: one line added, nothing else.
    let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web # the app\n  namespace: shop\nspec:\n  replicas: 2\n";
    let out = set_patch_annotation("p.yaml", patch, &web, key, Some("glob:1.*")).unwrap();
    assert_eq!(
        out,
        patch.replace("namespace: shop\n", "namespace: shop\n  annotations:\n    fluxcd.io/tag.app: \"glob:1.*\"\n")
    );
    // Removing it again: the patch only added it, so it goes from the patch (with annotations:).
    assert_eq!(set_patch_annotation("p.yaml", &out, &web, key, None).unwrap(), patch);
    // Removing one the generated object has: the patch must say null.
    let out = set_patch_annotation("p.yaml", patch, &web, "fluxcd.io/automated", None).unwrap();
    assert!(out.contains("fluxcd.io/automated: null"), "{out}");
    let after = apply_one(&out, &web);
    assert!(after["metadata"]["annotations"].get("fluxcd.io/automated").is_none());
    assert_eq!(after["spec"]["replicas"], 2);
    // Nothing to do: the text stays.
    assert_eq!(set_patch_annotation("p.yaml", patch, &web, "fluxcd.io/automated", Some("true")).unwrap(), patch);
    assert_eq!(set_patch_annotation("p.yaml", patch, &web, "absent", None).unwrap(), patch);
    // Setting one the patch deletes: the null becomes the value.
    let out = set_patch_annotation("p.yaml", &out, &web, "fluxcd.io/automated", Some("false")).unwrap();
    assert_eq!(apply_one(&out, &web)["metadata"]["annotations"]["fluxcd.io/automated"], "false");
}

#[test]
fn sets_a_helm_release_image() {
    let hr = object("demo:helmrelease/podinfo");
    let chart = container(&hr, "chart-image");
    let out = set_patch_image("p.yaml", "", &hr, &chart, &image("stefanprodan/podinfo:3.2.0")).unwrap();
    let after = apply_one(&out, &hr);
    assert_eq!(after["spec"]["values"]["image"], json!({"repository": "stefanprodan/podinfo", "tag": "3.2.0"}));
    let mut expected = hr.to_value();
    expected["spec"]["values"]["image"]["tag"] = json!("3.2.0");
    assert_eq!(after, expected);
    // The patch holds the tag: it changes in place.
    let patch = "apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: demo\nspec:\n  values:\n    image:\n      tag: 3.1.5 # patched\n";
    let out = set_patch_image("p.yaml", patch, &hr, &chart, &image("stefanprodan/podinfo:3.3.0")).unwrap();
    assert_eq!(out, patch.replace("3.1.5", "3.3.0"));
    let err = set_patch_image(
        "p.yaml",
        patch,
        &hr,
        &chart,
        &image("stefanprodan/podinfo@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
}

#[test]
fn unknown_containers_are_not_found() {
    let web = object("shop:deployment/web");
    let mut gone = container(&web, "sidecar");
    gone.name = "nope".into();
    let err = set_patch_image("p.yaml", "", &web, &gone, &image("x:1")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// Patch files to start from, for the round-trip property.
const STARTS: [&str; 5] = [
    "",
    "# comment only\n",
    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort}\n",
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: example/app:0.9\n",
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 4\n",
];

proptest! {
    #[test]
    fn applying_the_written_patch_changes_exactly_the_image(
        start in prop::sample::select(STARTS.to_vec()),
        which in prop::sample::select(vec!["app", "sidecar", "migrate"]),
        tag in "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,20}",
        repo in prop::sample::select(vec!["example/app", "ghcr.io/org/app", "localhost:5000/a/b"]),
    ) {
        let web = object("shop:deployment/web");
        let before = apply_one(start, &web);
        let c = container(&web, which);
        let field = if c.init { "initContainers" } else { "containers" };
        let new = image(&format!("{repo}:{tag}"));
        let out = set_patch_image("p.yaml", start, &web, &c, &new).unwrap();
        prop_assert_eq!(apply_one(&out, &web), with_image(&before, field, which, &new.to_string()));
        let again = set_patch_image("p.yaml", &out, &web, &c, &new).unwrap();
        prop_assert_eq!(again, out);
    }
}
