//! Reading manifests: the corpus and every kind of bad input.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::{ManifestOptions, read_manifests};
use flux_core::{Error, ResourceId, SourceFile};

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile { path: path.to_owned(), content: text.as_bytes().to_vec() }
}

fn corpus() -> Vec<SourceFile> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut files: Vec<SourceFile> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| SourceFile {
            path: format!("corpus/{}", e.file_name().to_string_lossy()),
            content: std::fs::read(e.path()).expect("corpus file"),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn one_error(files: &[SourceFile]) -> String {
    one_error_with(files, &ManifestOptions::default())
}

fn one_error_with(files: &[SourceFile], options: &ManifestOptions) -> String {
    let errors = read_manifests(files, options).expect_err("should fail");
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(matches!(errors.errors()[0], Error::InvalidInput { .. }));
    errors.errors()[0].to_string()
}

#[test]
fn reads_the_corpus() {
    let manifests = read_manifests(&corpus(), &ManifestOptions::default()).unwrap();
    let ids: Vec<String> = manifests.iter().map(|m| format!("{} {}#{}", m.id(), m.file, m.document)).collect();
    assert_eq!(
        ids,
        [
            "default:deployment/api corpus/anchors.yaml#0",
            "default:deployment/api-canary corpus/anchors.yaml#0",
            "default:deployment/windows-app corpus/crlf.yaml#0",
            "default:configmap/windows-settings corpus/crlf.yaml#1",
            "ops:cronjob/report corpus/cronjob.yaml#0",
            "ops:cronjob/legacy-report corpus/cronjob.yaml#1",
            "demo:helmrelease/podinfo corpus/helmrelease.yaml#0",
            "default:helmrelease/metrics corpus/helmrelease.yaml#1",
            "<cluster>:namespace/shop corpus/multi-workloads.yaml#0",
            "shop:deployment/frontend corpus/multi-workloads.yaml#1",
            "default:statefulset/db corpus/multi-workloads.yaml#2",
            "kube-system:daemonset/node-agent corpus/multi-workloads.yaml#3",
            "shop:service/frontend corpus/multi-workloads.yaml#4",
            "<cluster>:customresourcedefinition/widgets.example.com corpus/widget-crd.json#0",
        ]
    );
    let lines: Vec<String> = manifests.iter().map(|m| m.location().to_string()).collect();
    assert_eq!(lines[0], "corpus/anchors.yaml:5", "list items carry their own line");
    assert_eq!(lines[1], "corpus/anchors.yaml:22");
    assert_eq!(lines[3], "corpus/crlf.yaml:15");
    assert_eq!(lines[9], "corpus/multi-workloads.yaml:9", "blank line after --- is skipped");
    // Aliases and merge keys are resolved.
    let canary = &manifests[1].object;
    assert_eq!(canary.label("team"), Some("payments"));
    let c = canary.pointer(&["spec", "template", "spec", "containers"]).unwrap();
    assert_eq!(c[0]["name"], "api");
    assert_eq!(c[0]["image"], "example/api:2.4.0-rc.1");
    assert_eq!(c[0]["env"][0]["value"], "prod");
}

#[test]
fn default_namespace_is_configurable_and_only_for_namespaced_kinds() {
    let files = [file(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: ignored}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: \"\"}\n",
    )];
    let options = ManifestOptions { default_namespace: "team".into(), ..Default::default() };
    let ids: Vec<String> = read_manifests(&files, &options).unwrap().iter().map(|m| m.id().to_string()).collect();
    assert_eq!(ids, ["team:configmap/c", "<cluster>:clusterrole/r", "team:secret/s"]);
}

#[test]
fn custom_kinds_take_their_scope_from_a_crd_in_the_same_files() {
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
    let gadget = "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n";
    let mut files = corpus();
    files.push(file("w.yaml", widget));
    files.push(file("g.yaml", gadget));
    let manifests = read_manifests(&files, &ManifestOptions::default()).unwrap();
    let has = |id: &str| manifests.iter().any(|m| m.id() == &id.parse::<ResourceId>().unwrap());
    assert!(has("<cluster>:widget/w"));
    assert!(has("default:gadget/g"), "unknown kinds are namespaced");
}

#[test]
fn other_files_and_empty_documents_are_skipped() {
    let files = [
        file("README.md", "not: yaml: at: all: ["),
        file("empty.yaml", ""),
        file("blank.yml", "---\n# just a comment\n---\n...\n"),
        file("UPPER.YAML", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"),
    ];
    let manifests = read_manifests(&files, &ManifestOptions::default()).unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].id().to_string(), "default:secret/s");
}

#[test]
fn a_bom_is_accepted() {
    let files = [file("bom.yaml", "\u{feff}apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")];
    let manifests = read_manifests(&files, &ManifestOptions::default()).unwrap();
    assert_eq!(manifests[0].location().to_string(), "bom.yaml:1");
}

#[test]
fn invalid_yaml_names_file_and_line() {
    let err = one_error(&[file("apps/bad.yaml", "apiVersion: v1\nkind: [ConfigMap\nmetadata:\n  name: x\n")]);
    assert!(err.starts_with("apps/bad.yaml:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn duplicate_keys_are_invalid_yaml() {
    let err = one_error(&[file("dup.yaml", "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: x}\n")]);
    assert!(err.starts_with("dup.yaml:3: invalid YAML"), "{err}");
}

#[test]
fn missing_api_version_is_an_error() {
    let err = one_error(&[file("a.yaml", "---\nkind: ConfigMap\nmetadata: {name: x}\n")]);
    assert_eq!(err, "a.yaml:2: object has no apiVersion");
}

#[test]
fn missing_kind_is_an_error() {
    let err = one_error(&[file(
        "a.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ok}\n---\napiVersion: v1\nmetadata: {name: x}\n",
    )]);
    assert_eq!(err, "a.yaml:5: object has no kind");
}

#[test]
fn missing_name_is_an_error() {
    let err = one_error(&[file("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n")]);
    assert_eq!(err, "a.yaml:1: object has no metadata.name");
}

#[test]
fn a_document_that_is_not_a_mapping_is_an_error() {
    let err = one_error(&[file("a.yaml", "- just\n- a list\n")]);
    assert_eq!(err, "a.yaml:1: a Kubernetes object must be a mapping");
}

#[test]
fn the_same_id_twice_names_both_places() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    let err = one_error(&[file("a.yaml", cm), file("b/c.yaml", &format!("# dup\n{cm}"))]);
    assert_eq!(err, "b/c.yaml:2: default:configmap/x is defined twice: at a.yaml:1 and at b/c.yaml:2");
}

#[test]
fn the_same_id_twice_compares_kinds_case_insensitively() {
    let a = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n";
    let b = "apiVersion: v1\nkind: configmap\nmetadata: {name: x}\n";
    let err = one_error(&[file("a.yaml", &format!("{a}---\n{b}"))]);
    assert!(err.contains("defined twice"), "{err}");
}

#[test]
fn an_alias_bomb_is_stopped() {
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    bomb.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: boom}\n");
    let err = one_error(&[file("bomb.yaml", &bomb)]);
    assert!(err.starts_with("bomb.yaml:"), "{err}");
    assert!(err.contains("invalid YAML") && err.contains("alias"), "{err}");
}

#[test]
fn a_file_over_the_size_limit_is_an_error() {
    let options = ManifestOptions { max_file_bytes: 64, ..Default::default() };
    let big = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {{a: {}}}\n", "x".repeat(100));
    let err = one_error_with(&[file("big.yaml", &big)], &options);
    assert_eq!(err, format!("big.yaml: file is {} bytes, over the limit of 64 bytes", big.len()));
}

#[test]
fn a_path_that_leaves_the_repository_is_an_error() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    for bad in ["../outside.yaml", "/etc/k8s.yaml", "a/../../b.yaml"] {
        let err = one_error(&[file(bad, cm)]);
        assert!(err.starts_with(bad) && err.contains("invalid repository path"), "{err}");
    }
}

#[test]
fn non_utf8_is_an_error_at_its_line() {
    let mut content = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff}\n".to_vec();
    content.push(b'\n');
    let err = one_error(&[SourceFile { path: "bin.yaml".into(), content }]);
    assert_eq!(err, "bin.yaml:3: file is not valid UTF-8");
}

#[test]
fn all_errors_are_collected_and_make_the_revision_unusable() {
    let files = [
        file("a.yaml", "kind: ConfigMap\nmetadata: {name: x}\n"),
        file("b.yaml", "a: [\n"),
        file("c.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: fine}\n"),
    ];
    let errors = read_manifests(&files, &ManifestOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(errors.to_string().contains("this revision is unusable"));
    let error: Error = errors.into();
    let text = error.to_string();
    assert!(text.starts_with("a.yaml:1: object has no apiVersion (and 1 more error)"), "{text}");
    assert!(text.contains("this revision is unusable"), "{text}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let depth = 5000;
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  a: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let err = one_error(&[file("deep.yaml", &deep)]);
    assert!(err.starts_with("deep.yaml:") && err.contains("invalid YAML"), "{err}");
    let mut block = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata:\n");
    for level in 1..200 {
        block.push_str(&format!("{}k:\n", " ".repeat(level)));
    }
    let err = one_error(&[file("block.yaml", &block)]);
    assert!(err.starts_with("block.yaml:") && err.contains("invalid YAML"), "{err}");
}
