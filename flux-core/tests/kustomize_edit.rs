//! Reading kustomization files and editing their `images:` overrides in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::kustomize::{
    KUSTOMIZATION_FILES, Kustomization, find_image, local_directories, parse_kustomization, set_image,
};
use flux_core::{Error, ImageRef};
use proptest::prelude::*;

fn image(s: &str) -> ImageRef {
    s.parse().unwrap()
}

const OVERLAY: &str = "\
# production overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod
resources:
  - ../../base # shared
  - https://github.com/org/repo//deploy?ref=v1
images:
  - name: nginx # the proxy
    newTag: \"1.25\"
  - name: example/app
    newName: registry.example.com/team/app
    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
  # trailing comment of the list
patches:
  - path: patch.yaml
";

/// Asserts that `after` is `before` with exactly `from` replaced by `to`, once.
fn assert_only_change(before: &str, after: &str, from: &str, to: &str) {
    assert_eq!(before.matches(from).count(), 1, "{from:?} is not unique in the input");
    assert_eq!(after, before.replacen(from, to, 1));
}

#[test]
fn parses_the_fields_automation_uses() {
    let k = parse_kustomization("apps/prod/kustomization.yaml", OVERLAY).unwrap();
    assert_eq!(k.resources, ["../../base", "https://github.com/org/repo//deploy?ref=v1"]);
    assert!(k.bases.is_empty() && k.components.is_empty());
    assert_eq!(k.images.len(), 2);
    assert_eq!(
        (k.images[0].name.as_str(), k.images[0].new_tag.as_deref(), k.images[0].line),
        ("nginx", Some("1.25"), 9)
    );
    assert_eq!(k.images[1].result_name(), "registry.example.com/team/app");
    assert_eq!(k.images[0].result_name(), "nginx");
    assert!(k.images[1].digest.as_deref().is_some_and(|d| d.starts_with("sha256:")));
    assert_eq!(KUSTOMIZATION_FILES[0], "kustomization.yaml");
    assert_eq!(parse_kustomization("k.yaml", "").unwrap(), Kustomization::default());
    assert_eq!(parse_kustomization("k.yaml", "# nothing\n").unwrap(), Kustomization::default());
}

#[test]
fn parse_errors_name_file_and_line() {
    for (text, line) in [
        ("resources:\n  - a\nimages:\n  - newTag: v1\n", 4),
        ("resources:\n  - a\n  b: [\n", 3),
        ("kind: Kustomization\nresources: 3\n", 2),
        ("images:\n  - name: a\n  - name: [x]\n", 3),
    ] {
        let err = parse_kustomization("apps/kustomization.yaml", text).unwrap_err();
        let Error::InvalidInput { location, .. } = &err else { panic!("{err:?}") };
        assert_eq!(location.file, "apps/kustomization.yaml", "{text:?}");
        assert_eq!(location.line, Some(line), "{text:?}: {err}");
    }
    let err = parse_kustomization("k.yaml", "resources: []\n---\nresources: []\n").unwrap_err();
    assert!(err.to_string().contains("one document"), "{err}");
}

#[test]
fn local_directories_resolve_against_the_directory() {
    let k = Kustomization {
        resources: vec![
            "../../base".into(),
            "./app".into(),
            "deploy.yaml".into(),
            "https://github.com/org/repo//deploy".into(),
            "github.com/org/repo/deploy".into(),
            "../shared?ref=main".into(),
            "../../../outside".into(),
            "/abs/path".into(),
        ],
        bases: vec!["../../base/".into()],
        components: vec!["../components/tls".into()],
        ..Kustomization::default()
    };
    assert_eq!(
        local_directories("apps/prod", &k),
        ["base", "apps/prod/app", "apps/prod/deploy.yaml", "apps/components/tls"]
    );
    assert_eq!(local_directories("", &Kustomization { resources: vec!["./a/../b".into()], ..k.clone() }), ["b"]);
}

#[test]
fn find_image_compares_normalised_repositories() {
    let k = parse_kustomization("k.yaml", OVERLAY).unwrap();
    for name in [
        "nginx:1.26",
        "docker.io/library/nginx",
        "index.docker.io/library/nginx@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert_eq!(find_image(&k, &image(name)).map(|i| i.name.as_str()), Some("nginx"), "{name}");
    }
    assert_eq!(find_image(&k, &image("registry.example.com/team/app:2")).map(|i| i.name.as_str()), Some("example/app"));
    // The entry's `name` is not what it produces any more.
    assert!(find_image(&k, &image("example/app:2")).is_none());
    assert!(find_image(&k, &image("other/nginx:1")).is_none());
}

#[test]
fn changes_only_the_tag() {
    let out = set_image("k.yaml", OVERLAY, "nginx", &image("nginx:1.26")).unwrap();
    assert_only_change(OVERLAY, &out, "newTag: \"1.25\"", "newTag: \"1.26\"");
    // The same tag again: nothing to do.
    assert_eq!(set_image("k.yaml", &out, "nginx", &image("docker.io/library/nginx:1.26")).unwrap(), out);
}

#[test]
fn switches_between_tag_and_digest() {
    let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let out = set_image("k.yaml", OVERLAY, "nginx", &image(&format!("nginx@{digest}"))).unwrap();
    assert_only_change(OVERLAY, &out, "    newTag: \"1.25\"\n", &format!("    digest: {digest}\n"));
    let out = set_image("k.yaml", OVERLAY, "example/app", &image("registry.example.com/team/app:v2")).unwrap();
    let old_digest = "    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n";
    assert_only_change(OVERLAY, &out, old_digest, "    newTag: v2\n");
}

#[test]
fn adds_new_name_only_for_another_repository() {
    let out = set_image("k.yaml", OVERLAY, "nginx", &image("ghcr.io/org/nginx:2")).unwrap();
    assert_only_change(OVERLAY, &out, "    newTag: \"1.25\"\n", "    newTag: \"2\"\n    newName: ghcr.io/org/nginx\n");
    let out = set_image("k.yaml", OVERLAY, "example/app", &image("registry.example.com/team/app2:v3")).unwrap();
    let k = parse_kustomization("k.yaml", &out).unwrap();
    assert_eq!(k.images[1].new_name.as_deref(), Some("registry.example.com/team/app2"));
    assert_eq!(k.images[1].new_tag.as_deref(), Some("v3"));
    assert_eq!(k.images[1].digest, None);
    assert!(out.contains("# the proxy\n") && out.contains("  # trailing comment of the list\n"));
}

#[test]
fn appends_a_missing_entry_in_the_list_style() {
    let out = set_image("k.yaml", OVERLAY, "redis", &image("redis:7.2")).unwrap();
    assert_only_change(
        OVERLAY,
        &out,
        "  # trailing comment of the list\n",
        "  - name: redis\n    newTag: \"7.2\"\n  # trailing comment of the list\n",
    );
    let indentless = "resources:\n- a.yaml\nimages:\n- name: x\n  newTag: v1\n";
    // `y` is a YAML 1.1 boolean when plain: it is quoted.
    let out = set_image("k.yaml", indentless, "y", &image("ghcr.io/o/y:v2")).unwrap();
    assert_eq!(out, format!("{indentless}- name: \"y\"\n  newName: ghcr.io/o/y\n  newTag: v2\n"));
}

#[test]
fn creates_the_images_list() {
    let text = "resources:\n  - ../base # b\n\n# end\n";
    let out = set_image("k.yaml", text, "nginx", &image("nginx:1.25")).unwrap();
    assert_eq!(out, "resources:\n  - ../base # b\nimages:\n  - name: nginx\n    newTag: \"1.25\"\n\n# end\n");
    let empty_list = "images:\nresources: [a]\n";
    let out = set_image("k.yaml", empty_list, "a", &image("a:1")).unwrap();
    assert_eq!(out, "images:\n- name: a\n  newTag: \"1\"\nresources: [a]\n");
    assert_eq!(set_image("k.yaml", "", "a", &image("a:v1")).unwrap(), "images:\n- name: a\n  newTag: v1\n");
    assert_eq!(set_image("k.yaml", "# c", "a", &image("a:v1")).unwrap(), "# c\nimages:\n- name: a\n  newTag: v1\n");
}

#[test]
fn keeps_crlf() {
    let text = OVERLAY.replace('\n', "\r\n");
    let out = set_image("k.yaml", &text, "nginx", &image("nginx:1.26")).unwrap();
    assert_only_change(&text, &out, "\"1.25\"", "\"1.26\"");
    let out = set_image("k.yaml", &text, "redis", &image("redis:7")).unwrap();
    assert!(out.contains("\r\n  - name: redis\r\n    newTag: \"7\"\r\n"), "{out:?}");
    assert!(!out.replace("\r\n", "").contains('\n'));
}

#[test]
fn refuses_what_cannot_be_edited_in_place() {
    for (text, line) in [
        ("resources: [a]\nimages: [{name: a, newTag: v1}]\n", 2),
        ("images:\n  - {name: a, newTag: v1}\n", 2),
        ("x: &t v1\nimages:\n  - name: a\n    newTag: *t\n", 4),
        ("images:\n  - name: a\n    newTag: &t v1\n", 3),
        ("images:\n  - name: a\n    newTag: |\n      v1\n", 3),
        ("images: 3\n", 1),
    ] {
        let err = set_image("apps/kustomization.yaml", text, "a", &image("a:v2")).unwrap_err();
        let Error::InvalidInput { location, .. } = &err else { panic!("{err:?}") };
        assert_eq!(location.file, "apps/kustomization.yaml");
        assert_eq!(location.line, Some(line), "{text:?}: {err}");
    }
    // An anchored list that is aliased elsewhere: the edit would change both.
    let err =
        set_image("k.yaml", "images: &i\n  - name: a\n    newTag: v1\nother: *i\n", "a", &image("a:v2")).unwrap_err();
    let Error::InvalidInput { location, message } = &err else { panic!("{err:?}") };
    assert_eq!(location.line, Some(1), "{err}");
    assert!(message.contains("other.0.newTag"), "{message}");
    let err = set_image("k.yaml", "images:\n  - name: a\n", "a", &image("a")).unwrap_err();
    assert!(err.to_string().contains("neither tag nor digest"), "{err}");
    let err = set_image("k.yaml", "images:\n  - name: [\n", "a", &image("a:1")).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

proptest! {
    /// Whatever entry and image, the result parses to the entry overridden as asked, the other
    /// entries and fields as they were.
    #[test]
    fn set_image_sets_exactly_the_entry(
        name in prop::sample::select(vec!["nginx", "example/app", "redis", "ghcr.io/o/new"]),
        repo in prop::sample::select(vec!["nginx", "docker.io/library/nginx", "registry.example.com/team/app", "ghcr.io/o/new"]),
        tag in "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,12}",
        digest in proptest::option::of("[0-9a-f]{64}"),
        crlf in any::<bool>(),
    ) {
        let text = if crlf { OVERLAY.replace('\n', "\r\n") } else { OVERLAY.to_owned() };
        let to = match &digest {
            Some(d) => image(&format!("{repo}@sha256:{d}")),
            None => image(&format!("{repo}:{tag}")),
        };
        let out = set_image("k.yaml", &text, name, &to).unwrap();
        let before = parse_kustomization("k.yaml", &text).unwrap();
        let after = parse_kustomization("k.yaml", &out).unwrap();
        prop_assert_eq!(&after.resources, &before.resources);
        let entry = after.images.iter().find(|i| i.name == name).unwrap();
        prop_assert_eq!(entry.result_name().parse::<ImageRef>().unwrap().repository(), to.repository());
        prop_assert_eq!(entry.digest.as_deref(), to.digest());
        prop_assert_eq!(entry.new_tag.as_deref(), if digest.is_some() { None } else { Some(tag.as_str()) });
        let others = |k: &Kustomization| k.images.iter().filter(|i| i.name != name).map(|i| (i.name.clone(), i.new_name.clone(), i.new_tag.clone(), i.digest.clone())).collect::<Vec<_>>();
        prop_assert_eq!(others(&after), others(&before));
        prop_assert!(out.contains("# the proxy") && out.contains("# production overlay"));
        prop_assert_eq!(set_image("k.yaml", &out, name, &to).unwrap(), out);
    }
}
