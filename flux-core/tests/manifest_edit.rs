//! Lossless edits: each changes exactly the target bytes, or fails and changes nothing.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::edit::{
    MarkerField, image_markers, set_annotation, set_container_image, set_marker_images, set_value,
};
use flux_core::{Error, ImageRef, ResourceId};

fn corpus(name: &str) -> String {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    String::from_utf8(std::fs::read(path).expect("corpus file")).expect("utf-8")
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

fn image(s: &str) -> ImageRef {
    s.parse().unwrap()
}

/// Asserts that `after` is `before` with the one occurrence of `old` replaced by `new`.
fn assert_only_replaced(before: &str, after: &str, old: &str, new: &str) {
    assert_eq!(before.matches(old).count(), 1, "{old:?} must occur once in the input");
    assert_eq!(after, before.replacen(old, new, 1));
}

#[test]
fn sets_a_plain_image_and_keeps_its_comment() {
    let text = corpus("multi-workloads.yaml");
    let out = set_container_image(
        "m.yaml",
        &text,
        &id("shop:deployment/frontend"),
        "web",
        &image("registry.example.com:5000/shop/web:1.4.3"),
    )
    .unwrap();
    assert_only_replaced(
        &text,
        &out,
        "image: registry.example.com:5000/shop/web:1.4.2 # the app",
        "image: registry.example.com:5000/shop/web:1.4.3 # the app",
    );
}

#[test]
fn keeps_double_and_single_quotes() {
    let text = corpus("multi-workloads.yaml");
    let w = id("shop:deployment/frontend");
    let out =
        set_container_image("m.yaml", &text, &w, "migrate", &image("registry.example.com:5000/shop/migrate:1.5.0"))
            .unwrap();
    assert_only_replaced(
        &text,
        &out,
        "\"registry.example.com:5000/shop/migrate:1.4.0\"",
        "\"registry.example.com:5000/shop/migrate:1.5.0\"",
    );
    let out = set_container_image("m.yaml", &text, &w, "sidecar", &image("envoyproxy/envoy:3.2")).unwrap();
    assert_only_replaced(&text, &out, "'envoyproxy/envoy:3.1'", "'envoyproxy/envoy:3.2'");
}

#[test]
fn edits_inside_flow_style() {
    let text = corpus("multi-workloads.yaml");
    let out =
        set_container_image("m.yaml", &text, &id("default:statefulset/db"), "postgres", &image("postgres:15.5-alpine"))
            .unwrap();
    assert_only_replaced(
        &text,
        &out,
        "[{name: postgres, image: \"postgres:15.4-alpine\"}]",
        "[{name: postgres, image: \"postgres:15.5-alpine\"}]",
    );
}

#[test]
fn replaces_a_digest_reference() {
    let text = corpus("multi-workloads.yaml");
    let out = set_container_image(
        "m.yaml",
        &text,
        &id("kube-system:daemonset/node-agent"),
        "agent",
        &image("quay.io/prometheus/node-exporter:v1.7.0"),
    )
    .unwrap();
    assert!(out.contains("          image: quay.io/prometheus/node-exporter:v1.7.0\n"));
    assert_eq!(
        out.len(),
        text.len() - "@sha256:4cb2b9019f1757be8482419002cb7afe028fdba35d47958829e4cfeaf6246d80".len() + ":v1.7.0".len()
    );
}

#[test]
fn keeps_crlf_line_endings() {
    let text = corpus("crlf.yaml");
    let out = set_container_image(
        "c.yaml",
        &text,
        &id("default:deployment/windows-app"),
        "app",
        &image("mcr.microsoft.com/dotnet/aspnet:8.0.1"),
    )
    .unwrap();
    assert_only_replaced(&text, &out, "aspnet:8.0 \r\n", "aspnet:8.0.1 \r\n");
}

#[test]
fn keeps_a_bom() {
    let text = "\u{feff}apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: nginx:1\n";
    let out = set_container_image("p.yaml", text, &id("default:pod/p"), "a", &image("nginx:2")).unwrap();
    assert_only_replaced(text, &out, "nginx:1", "nginx:2");
}

#[test]
fn edits_cronjobs_of_both_api_versions() {
    let text = corpus("cronjob.yaml");
    let out = set_container_image(
        "c.yaml",
        &text,
        &id("ops:cronjob/legacy-report"),
        "report",
        &image("ghcr.io/example/report:nightly-20240102"),
    )
    .unwrap();
    assert_only_replaced(&text, &out, "report:nightly-20231231", "report:nightly-20240102");
    let out = set_container_image(
        "c.yaml",
        &text,
        &id("ops:cronjob/report"),
        "report",
        &image("ghcr.io/example/report:nightly-20240102"),
    )
    .unwrap();
    assert_only_replaced(&text, &out, "report:nightly-20240101", "report:nightly-20240102");
}

#[test]
fn edits_list_items_next_to_anchors() {
    let text = corpus("anchors.yaml");
    let out =
        set_container_image("a.yaml", &text, &id("default:deployment/api-canary"), "api", &image("example/api:2.4.0"))
            .unwrap();
    assert_only_replaced(&text, &out, "example/api:2.4.0-rc.1", "example/api:2.4.0");
    let out = set_container_image("a.yaml", &text, &id("default:deployment/api"), "api", &image("example/api:2.3.1"))
        .unwrap();
    assert_only_replaced(&text, &out, "example/api:2.3.0", "example/api:2.3.1");
}

#[test]
fn refuses_an_image_behind_a_merge_key() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec:\n    containers:\n    - &c {name: app, image: 'nginx:1'}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n  spec:\n    containers:\n    - <<: *c\n";
    let err = set_container_image("l.yaml", text, &id("default:pod/b"), "app", &image("nginx:2")).unwrap_err();
    assert!(err.to_string().contains("alias or merge key"), "{err}");
}

#[test]
fn refuses_an_anchored_scalar_that_aliases_share() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {copy: *img}\nspec:\n  containers:\n  - name: a\n    image: &img nginx:1\n";
    let text = text.replace(
        "annotations: {copy: *img}\nspec:\n  containers:\n  - name: a\n    image: &img nginx:1",
        "labels: {}\nspec:\n  containers:\n  - name: a\n    image: &img nginx:1\n  - name: b\n    image: *img",
    );
    let err = set_container_image("p.yaml", &text, &id("default:pod/p"), "a", &image("nginx:2")).unwrap_err();
    assert!(err.to_string().contains("not a plain or quoted scalar"), "{err}");
}

#[test]
fn quotes_a_plain_value_that_would_not_read_back_as_a_string() {
    let text = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: h}\nspec:\n  values:\n    image: example/app\n    tag: v1.2   # pinned\n";
    let out =
        set_container_image("h.yaml", text, &id("default:helmrelease/h"), "chart-image", &image("example/app:1.3"))
            .unwrap();
    assert_only_replaced(text, &out, "tag: v1.2   # pinned", "tag: \"1.3\"   # pinned");
}

#[test]
fn helm_release_parts_are_written_where_they_are() {
    let text = corpus("helmrelease.yaml");
    let w = id("demo:helmrelease/podinfo");
    let out = set_container_image("h.yaml", &text, &w, "backend", &image("ghcr.io/example/backend:2.1.0")).unwrap();
    assert_only_replaced(&text, &out, "tag: \"2.0.1\"", "tag: \"2.1.0\"");
    let out = set_container_image("h.yaml", &text, &w, "chart-image", &image("stefanprodan/podinfo:3.2.0")).unwrap();
    assert_only_replaced(&text, &out, "podinfo:3.1.0\n", "podinfo:3.2.0\n");
    let out = set_container_image("h.yaml", &text, &w, "worker", &image("quay.io/example/worker:v1.3.0")).unwrap();
    assert_only_replaced(&text, &out, "tag: v1.2.3", "tag: v1.3.0");
    let out = set_container_image("h.yaml", &text, &w, "frontend", &image("docker.io/example/frontend:1.0")).unwrap();
    assert_only_replaced(&text, &out, "example/frontend:0.9", "example/frontend:1.0");
    let out = set_container_image("h.yaml", &text, &w, "cache", &image("redis:7.2.4")).unwrap();
    assert_only_replaced(&text, &out, "version: 7.0.5", "version: 7.2.4");
    let out =
        set_value("h.yaml", &text, &id("default:helmrelease/metrics"), &["spec", "values", "image", "tag"], "v2.46.0")
            .unwrap();
    assert_only_replaced(&text, &out, "tag: v2.45.0", "tag: v2.46.0");
}

#[test]
fn an_unchanged_image_leaves_the_text_alone() {
    let text = corpus("multi-workloads.yaml");
    let out =
        set_container_image("m.yaml", &text, &id("default:statefulset/db"), "postgres", &image("postgres:15.4-alpine"))
            .unwrap();
    assert_eq!(out, text);
}

#[test]
fn missing_workload_or_container_is_not_found() {
    let text = corpus("multi-workloads.yaml");
    let err = set_container_image("m.yaml", &text, &id("shop:deployment/nope"), "web", &image("x:1")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = set_container_image("m.yaml", &text, &id("shop:deployment/frontend"), "nope", &image("x:1")).unwrap_err();
    assert!(err.is_not_found() && err.to_string().contains("container nope"), "{err}");
    let err = set_container_image("m.yaml", &text, &id("other:deployment/frontend"), "web", &image("x:1")).unwrap_err();
    assert!(err.is_not_found(), "a namespace written in the file must match: {err}");
}

#[test]
fn block_scalars_are_refused() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: |-\n      nginx:1\n";
    let err = set_container_image("p.yaml", text, &id("default:pod/p"), "a", &image("nginx:2")).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[test]
fn invalid_yaml_is_an_error_naming_the_file() {
    let err = set_container_image("bad.yaml", "a: [\n", &id("default:pod/p"), "a", &image("nginx:2")).unwrap_err();
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
}

#[test]
fn changes_an_existing_annotation_in_its_style() {
    let text = corpus("cronjob.yaml");
    let out = set_annotation("c.yaml", &text, &id("ops:cronjob/report"), "fluxcd.io/automated", Some("false")).unwrap();
    assert_only_replaced(&text, &out, "fluxcd.io/automated: 'true'", "fluxcd.io/automated: 'false'");
}

#[test]
fn adds_an_annotation_after_the_last_one() {
    let text = corpus("multi-workloads.yaml");
    let out =
        set_annotation("m.yaml", &text, &id("shop:deployment/frontend"), "fluxcd.io/locked", Some("true")).unwrap();
    assert_only_replaced(
        &text,
        &out,
        "    fluxcd.io/tag.sidecar: glob:3.*\n",
        "    fluxcd.io/tag.sidecar: glob:3.*\n    fluxcd.io/locked: \"true\"\n",
    );
}

#[test]
fn creates_annotations_with_the_file_indentation() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n    name: web   # four spaces here\n    namespace: prod\nspec:\n    replicas: 1\n";
    let out = set_annotation("d.yaml", text, &id("prod:deployment/web"), "fluxcd.io/automated", Some("true")).unwrap();
    assert_only_replaced(
        text,
        &out,
        "    namespace: prod\n",
        "    namespace: prod\n    annotations:\n        fluxcd.io/automated: \"true\"\n",
    );
}

#[test]
fn creates_annotations_in_flow_metadata_and_crlf_files() {
    let text = corpus("multi-workloads.yaml");
    let out = set_annotation("m.yaml", &text, &id("shop:service/frontend"), "fluxcd.io/ignore", Some("true")).unwrap();
    assert!(out.contains("metadata:\n  name: frontend\n  namespace: shop\n  annotations:\n    fluxcd.io/ignore: \"true\"\nspec:\n  selector: {app: frontend}"), "{out}");
    let text = corpus("crlf.yaml");
    let out = set_annotation("c.yaml", &text, &id("default:configmap/windows-settings"), "a", Some("b")).unwrap();
    assert_only_replaced(
        &text,
        &out,
        "  name: windows-settings\r\n",
        "  name: windows-settings\r\n  annotations:\r\n    a: \"b\"\r\n",
    );
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let out =
        set_annotation("c.yaml", text, &id("default:configmap/c"), "fluxcd.io/tag.app", Some("semver:^1")).unwrap();
    assert_eq!(
        out,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {fluxcd.io/tag.app: \"semver:^1\"}}\n"
    );
}

#[test]
fn removes_annotations() {
    let text = corpus("multi-workloads.yaml");
    let w = id("default:statefulset/db");
    let out = set_annotation("m.yaml", &text, &w, "flux.weave.works/locked_msg", None).unwrap();
    assert_only_replaced(&text, &out, "    flux.weave.works/locked_msg: \"schema migration in progress\"\n", "");
    let w = id("kube-system:daemonset/node-agent");
    let out = set_annotation("m.yaml", &text, &w, "fluxcd.io/ignore", None).unwrap();
    assert_only_replaced(&text, &out, "  annotations:\n    fluxcd.io/ignore: sync_only\n", "");
    let out = set_annotation("m.yaml", &text, &w, "not-there", None).unwrap();
    assert_eq!(out, text);
    let flow = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {a: '1', b: '2', c: '3'}}\n";
    let id_c = id("default:configmap/c");
    assert_eq!(
        set_annotation("c.yaml", flow, &id_c, "b", None).unwrap(),
        flow.replace("{a: '1', b: '2', c: '3'}", "{a: '1', c: '3'}")
    );
    assert_eq!(
        set_annotation("c.yaml", flow, &id_c, "a", None).unwrap(),
        flow.replace("{a: '1', b: '2', c: '3'}", "{b: '2', c: '3'}")
    );
}

#[test]
fn finds_markers_in_any_yaml() {
    let text = corpus("markers/kustomization.yaml");
    let markers = image_markers("k.yaml", &text).unwrap();
    let found: Vec<(&str, MarkerField, usize, &str)> =
        markers.iter().map(|m| (m.policy.as_str(), m.field, m.line, m.value.as_str())).collect();
    assert_eq!(
        found,
        [
            ("flux-system:app", MarkerField::Tag, 8, "1.0.0"),
            ("flux-system:tool", MarkerField::Name, 10, "registry.example.com/example/tool"),
            ("flux-system:full", MarkerField::Image, 12, "registry.example.com/example/full:2.0.0"),
        ]
    );
}

#[test]
fn sets_marked_values() {
    let text = corpus("markers/kustomization.yaml");
    let out = set_marker_images("k.yaml", &text, "flux-system:app", &image("registry.example.com/example/app:1.1.0"))
        .unwrap();
    assert_only_replaced(&text, &out, "newTag: 1.0.0 #", "newTag: 1.1.0 #");
    let out = set_marker_images("k.yaml", &text, "flux-system:full", &image("registry.example.com/example/full:2.1.0"))
        .unwrap();
    assert_only_replaced(&text, &out, "full:2.0.0\"", "full:2.1.0\"");
    let out =
        set_marker_images("k.yaml", &text, "flux-system:tool", &image("mirror.example.com/example/tool:9")).unwrap();
    assert_only_replaced(&text, &out, "registry.example.com/example/tool #", "mirror.example.com/example/tool #");
    let text = corpus("markers/values.yaml");
    let out = set_marker_images("v.yaml", &text, "apps:app", &image("ghcr.io/example/app:1.2.4")).unwrap();
    assert_only_replaced(&text, &out, "tag: \"1.2.3\"", "tag: \"1.2.4\"");
    assert_eq!(set_marker_images("v.yaml", &text, "apps:other", &image("x:1")).unwrap(), text);
}

#[test]
fn a_marker_with_a_bad_policy_is_an_error_at_its_line() {
    let err = image_markers("v.yaml", "a: 1\nb: x # {\"$imagepolicy\": \"nonamespace\"}\n").unwrap_err();
    assert!(err.to_string().starts_with("v.yaml:2: image policy marker"), "{err}");
}

#[test]
fn fills_an_empty_annotations_field() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n  labels: {a: b}\n";
    let out = set_annotation("c.yaml", text, &id("default:configmap/c"), "fluxcd.io/automated", Some("true")).unwrap();
    assert_only_replaced(text, &out, "  annotations:\n", "  annotations:\n    fluxcd.io/automated: \"true\"\n");
}

#[test]
fn json_files_keep_quoted_keys() {
    let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\"name\": \"p\"},\n  \"spec\": {\"containers\": [{\"name\": \"a\", \"image\": \"nginx:1\"}]}\n}\n";
    let w = id("default:pod/p");
    let out = set_container_image("p.json", text, &w, "a", &image("nginx:2")).unwrap();
    assert_only_replaced(text, &out, "\"nginx:1\"", "\"nginx:2\"");
    let out = set_annotation("p.json", text, &w, "fluxcd.io/automated", Some("true")).unwrap();
    assert_only_replaced(
        text,
        &out,
        "{\"name\": \"p\"}",
        "{\"name\": \"p\", \"annotations\": {\"fluxcd.io/automated\": \"true\"}}",
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["metadata"]["annotations"]["fluxcd.io/automated"], "true");
}

#[test]
fn empty_and_comment_only_documents_are_counted_as_the_reader_counts_them() {
    let text = "---\n# nothing here\n---\n~\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: nginx:1}\n---\n";
    let out = set_container_image("p.yaml", text, &id("default:pod/p"), "a", &image("nginx:2")).unwrap();
    assert_only_replaced(text, &out, "nginx:1", "nginx:2");
}

#[test]
fn a_failed_verification_leaves_the_text_alone() {
    // The scalar is shared through an anchor with another field: refused before any change.
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: &i nginx:1\n  - name: b\n    image: *i\n";
    let err = set_container_image("p.yaml", text, &id("default:pod/p"), "b", &image("nginx:2")).unwrap_err();
    assert!(err.to_string().starts_with("p.yaml: "), "{err}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let err = set_container_image("deep.yaml", &deep, &id("default:pod/p"), "a", &image("nginx:2")).unwrap_err();
    assert!(err.to_string().starts_with("deep.yaml:"), "{err}");
    assert!(image_markers("deep.yaml", &deep).is_err());
}

#[test]
fn multibyte_text_before_the_target_is_kept() {
    let text = "# déploiement — 日本語のコメント\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {équipe: \"café\"}\nspec:\n  containers:\n  - name: a   # ☕\n    image: nginx:1 # 🚀\n";
    let out = set_container_image("p.yaml", text, &id("default:pod/p"), "a", &image("nginx:2")).unwrap();
    assert_only_replaced(text, &out, "nginx:1", "nginx:2");
    let out = set_annotation("p.yaml", text, &id("default:pod/p"), "note", Some("über")).unwrap();
    assert_only_replaced(
        text,
        &out,
        "  labels: {équipe: \"café\"}\n",
        "  labels: {équipe: \"café\"}\n  annotations:\n    note: \"über\"\n",
    );
}

#[test]
fn an_edit_that_would_change_a_merged_copy_is_refused() {
    // Pod b takes its container from pod a's through a merge key: editing a's image in place
    // would change b's too. The re-parse catches it and the text is left alone.
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec:\n    containers:\n    - &c {name: app, image: 'nginx:1'}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n  spec:\n    containers:\n    - <<: *c\n";
    let err = set_container_image("l.yaml", text, &id("default:pod/a"), "app", &image("nginx:2")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "l.yaml: the edit would also change document 0: items.1.spec.containers.0.image (through an anchor or merge key); the file is left alone"
    );
}

#[test]
fn an_empty_namespace_in_the_text_matches_the_default() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: \"\"}\nspec:\n  containers: [{name: a, image: nginx:1}]\n";
    let out = set_container_image("p.yaml", text, &id("default:pod/p"), "a", &image("nginx:2")).unwrap();
    assert_only_replaced(text, &out, "nginx:1", "nginx:2");
}

#[test]
fn new_annotations_go_after_a_nested_last_field_and_before_blank_lines_and_comments() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\n    tier: front # ui\n\n# the spec follows\nspec:\n  replicas: 1\n";
    let out =
        set_annotation("d.yaml", text, &id("default:deployment/web"), "fluxcd.io/automated", Some("true")).unwrap();
    assert_only_replaced(
        text,
        &out,
        "    tier: front # ui\n",
        "    tier: front # ui\n  annotations:\n    fluxcd.io/automated: \"true\"\n",
    );
    let block = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    note: |\n      line one\n      line two\ndata: {}\n";
    let out = set_annotation("c.yaml", block, &id("default:configmap/c"), "b", Some("x")).unwrap();
    assert_only_replaced(block, &out, "      line two\n", "      line two\n    b: \"x\"\n");
}
