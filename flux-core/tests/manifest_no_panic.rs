//! Nothing panics on user data: the reader and the editor return errors for any text.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::edit::{image_markers, set_annotation, set_container_image, set_marker_images};
use flux_core::manifest::kustomize::{local_directories, parse_kustomization, set_image};
use flux_core::manifest::patch::{apply_patch_file, set_patch_annotation, set_patch_image};
use flux_core::manifest::{ManifestOptions, read_manifests, workloads};
use flux_core::{ImageRef, ResourceId, SourceFile};
use proptest::prelude::*;

fn corpus(name: &str) -> String {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

/// A corpus file with some bytes replaced by YAML-significant or multi-byte characters.
fn mutated() -> impl Strategy<Value = String> {
    let files = ["multi-workloads.yaml", "helmrelease.yaml", "anchors.yaml", "crlf.yaml", "markers/values.yaml"];
    (
        prop::sample::select(files.to_vec()),
        proptest::collection::vec(
            (any::<prop::sample::Index>(), "[ \\n:#&*!|>'\"{}\\[\\],\\-é日\u{feff}\\r]{0,3}"),
            1..6,
        ),
    )
        .prop_map(|(name, cuts)| {
            let mut text = corpus(name);
            for (at, insert) in cuts {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                let end = (i + 1..=text.len()).find(|e| text.is_char_boundary(*e)).unwrap_or(text.len());
                text.replace_range(i..end, &insert);
            }
            text
        })
}

fn exercise(text: &str) {
    let files = [SourceFile { path: "f.yaml".into(), content: text.as_bytes().to_vec() }];
    if let Ok(manifests) = read_manifests(&files, &ManifestOptions::default()) {
        let _ = workloads(&manifests);
    }
    let image: ImageRef = "example/app:9.9.9".parse().unwrap();
    for workload in ["shop:deployment/frontend", "demo:helmrelease/podinfo", "default:deployment/api-canary"] {
        let id: ResourceId = workload.parse().unwrap();
        for container in ["web", "migrate", "backend", "chart-image", "api"] {
            let _ = set_container_image("f.yaml", text, &id, container, &image);
        }
        let _ = set_annotation("f.yaml", text, &id, "fluxcd.io/automated", Some("true"));
        let _ = set_annotation("f.yaml", text, &id, "fluxcd.io/tag.web", None);
    }
    let _ = image_markers("f.yaml", text);
    let _ = set_marker_images("f.yaml", text, "apps:app", &image);
    exercise_overlays(text, &image);
}

/// The text as a kustomization and as a patch file for the corpus' own objects.
fn exercise_overlays(text: &str, image: &ImageRef) {
    if let Ok(k) = parse_kustomization("kustomization.yaml", text) {
        let _ = local_directories("apps/prod", &k);
    }
    let digest: ImageRef =
        "example/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap();
    for name in ["nginx", "example/app", "web"] {
        let _ = set_image("kustomization.yaml", text, name, image);
        let _ = set_image("kustomization.yaml", text, name, &digest);
    }
    let targets = read_manifests(
        &[SourceFile { path: "g.yaml".into(), content: corpus("multi-workloads.yaml").into_bytes() }],
        &ManifestOptions::default(),
    )
    .unwrap();
    let objects: Vec<_> = targets.iter().map(|m| m.object.clone()).collect();
    let _ = apply_patch_file("p.yaml", text, objects);
    for w in workloads(&targets).unwrap() {
        let target = &targets.iter().find(|m| m.id() == &w.id).unwrap().object;
        for c in &w.containers {
            let _ = set_patch_image("p.yaml", text, target, c, image);
        }
        let _ = set_patch_annotation("p.yaml", text, target, "fluxcd.io/automated", Some("true"));
        let _ = set_patch_annotation("p.yaml", text, target, "fluxcd.io/automated", None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_files_never_panic(text in mutated()) {
        exercise(&text);
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(text in "[a-z:\\- \\n#&*!|>'\"{}\\[\\],0-9é]{0,200}") {
        exercise(&text);
    }
}
