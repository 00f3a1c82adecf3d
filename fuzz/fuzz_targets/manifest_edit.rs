//! The lossless editor: for text the reader accepts, set each container's image and set and
//! remove annotations, then read the result again. The invariant: the edit is refused with an
//! error, or the objects read from the new text equal the old ones with exactly that value
//! changed. Never a panic, never a silent other change, never text the reader then refuses.

#![no_main]

use flux_core::manifest::edit::{image_markers, set_annotation, set_container_image};
use flux_core::manifest::{
    ContainerLocator, Manifest, ManifestOptions, WorkloadManifest, read_repository_manifests, workloads_with_errors,
};
use flux_core::{ImageRef, ResourceId, SourceFile};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FILE: &str = "apps/f.yaml";
/// Annotation values that need quoting, escaping or care in YAML.
const VALUES: [&str; 6] = ["true", "glob:*-{a,b}", "semver:~1.2 # x", "it's \"quoted\"", "", "é: [x]"];

fn read(text: &str) -> Option<Vec<Manifest>> {
    let files = [SourceFile { path: FILE.into(), content: text.as_bytes().to_vec() }];
    read_repository_manifests(&files, &ManifestOptions::default()).ok().map(|r| r.manifests)
}

/// The objects' bodies, with empty or null `metadata.annotations` taken out (removing the last
/// annotation removes the mapping).
fn bodies(manifests: &[Manifest]) -> Vec<Value> {
    manifests
        .iter()
        .map(|m| {
            let mut body = m.object.to_value();
            if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                let empty = metadata
                    .get("annotations")
                    .is_some_and(|a| a.is_null() || a.as_object().is_some_and(|o| o.is_empty()));
                if empty {
                    metadata.remove("annotations");
                }
            }
            body
        })
        .collect()
}

fn position(manifests: &[Manifest], id: &ResourceId) -> usize {
    manifests.iter().position(|m| m.id() == id).expect("the workload is among the manifests")
}

/// Reads `edited` and checks it holds `expected`, or for a HelmRelease (whose image parts
/// are spread over values) that every other object is unchanged and the image reads back.
fn check(edited: &str, old: &[Manifest], expected: Vec<Value>, helm_image: Option<(&ResourceId, &str, &ImageRef)>) {
    let new = read(edited).unwrap_or_else(|| panic!("the editor wrote text the reader refuses:\n{edited}"));
    let new_bodies = bodies(&new);
    assert_eq!(new.len(), old.len(), "the number of objects changed");
    match helm_image {
        None => assert_eq!(new_bodies, expected, "an edit changed more than its value:\n{edited}"),
        Some((id, container, image)) => {
            let at = position(old, id);
            for (i, (a, b)) in new_bodies.iter().zip(&expected).enumerate() {
                assert!(i == at || a == b, "an edit of {id} changed another object:\n{edited}");
            }
            let w = workloads_with_errors(&new).into_iter().find(|w| &w.id == id).expect("the workload is still there");
            let c = w.container(container).expect("the image is still there");
            assert!(
                c.image.same_image(image) && c.image.tag() == image.tag() && c.image.digest() == image.digest(),
                "{} written, {} read back",
                image,
                c.image
            );
        }
    }
}

fn edit_images(text: &str, old: &[Manifest], w: &WorkloadManifest) {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for c in w.containers.iter().take(4) {
        let wanted = [
            c.image.with_tag("fuzz-1.0"),
            format!("registry.example:5000/fuzz/app@{digest}").parse().expect("an image"),
        ];
        for image in wanted {
            let Ok(edited) = set_container_image(FILE, text, &w.id, &c.name, &image) else { continue };
            let mut expected = bodies(old);
            match &c.locator {
                ContainerLocator::Pod { field, index } => {
                    let at = position(old, &w.id);
                    let spec = flux_core::workload::pod_spec_path(old[at].object.kind()).expect("a pod workload");
                    let mut pointer: String = spec.iter().map(|k| format!("/{k}")).collect();
                    pointer.push_str(&format!("/{field}/{index}/image"));
                    *expected[at].pointer_mut(&pointer).expect("the image is there") = Value::String(image.to_string());
                    check(&edited, old, expected, None);
                }
                ContainerLocator::Helm(_) => check(&edited, old, expected, Some((&w.id, &c.name, &image))),
            }
        }
    }
}

fn edit_annotations(text: &str, old: &[Manifest], w: &WorkloadManifest, seed: usize) {
    let at = position(old, &w.id);
    let value = VALUES[seed % VALUES.len()];
    let existing: Vec<String> = old[at].object.annotations().into_keys().take(2).collect();
    let mut edits: Vec<(String, Option<&str>)> = vec![("fluxcd.io/automated".to_owned(), Some(value))];
    for key in existing {
        edits.push((key.clone(), Some(value)));
        edits.push((key, None));
    }
    for (key, value) in edits {
        let Ok(edited) = set_annotation(FILE, text, &w.id, &key, value) else { continue };
        let mut expected = bodies(old);
        let metadata = expected[at].get_mut("metadata").and_then(Value::as_object_mut).expect("metadata");
        let annotations = metadata.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
        let map = annotations.as_object_mut().expect("annotations is a mapping");
        match value {
            Some(v) => {
                map.insert(key.clone(), Value::String(v.to_owned()));
            }
            None => {
                map.remove(&key);
            }
        }
        if map.is_empty() {
            metadata.remove("annotations");
        }
        check(&edited, old, expected, None);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = image_markers(FILE, text);
    let Some(old) = read(text) else {
        // Text the reader refuses: the editor answers without a panic.
        let id: ResourceId = "default:deployment/web".parse().expect("an id");
        let image: ImageRef = "nginx:1".parse().expect("an image");
        let _ = set_container_image(FILE, text, &id, "web", &image);
        let _ = set_annotation(FILE, text, &id, "fluxcd.io/automated", Some("true"));
        return;
    };
    for (i, w) in workloads_with_errors(&old).iter().take(4).enumerate() {
        edit_images(text, &old, w);
        edit_annotations(text, &old, w, data.len() + i);
    }
});
