//! The Kustomize editor: for a kustomization that parses, set each `images:` entry (and a new
//! one) to a tag and to a digest, and add a patch; the result parses again with exactly that
//! change. Never a panic, never a silent other change.

#![no_main]

use flux_core::ImageRef;
use flux_core::manifest::kustomize::{
    Kustomization, KustomizeImage, add_patch, local_directories, parse_kustomization, set_image,
};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "apps/prod/kustomization.yaml";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// An entry without its line (lines move when entries are added above).
fn unlined(i: &KustomizeImage) -> KustomizeImage {
    KustomizeImage { line: 0, ..i.clone() }
}

fn check_set(old: &Kustomization, new: &Kustomization, name: &str, to: &ImageRef, edited: &str) {
    let same_rest =
        Kustomization { images: Vec::new(), ..old.clone() } == Kustomization { images: Vec::new(), ..new.clone() };
    assert!(same_rest, "set_image changed more than images:\n{edited}");
    let at = old.images.iter().position(|i| i.name == name);
    let expected_len = old.images.len() + usize::from(at.is_none());
    assert_eq!(new.images.len(), expected_len, "images entries added or lost:\n{edited}");
    let at = at.unwrap_or(old.images.len());
    for (i, (a, b)) in old.images.iter().zip(&new.images).enumerate() {
        assert!(i == at || unlined(a) == unlined(b), "another images entry changed:\n{edited}");
    }
    let entry = &new.images[at];
    assert_eq!(entry.name, name);
    let result: ImageRef = entry.result_name().parse().unwrap_or_else(|e| panic!("{e}:\n{edited}"));
    assert_eq!(result.repository(), to.repository(), "{edited}");
    match to.digest() {
        Some(d) => assert!(entry.digest.as_deref() == Some(d) && entry.new_tag.is_none(), "{entry:?}"),
        None => assert!(entry.new_tag.as_deref() == to.tag() && entry.digest.is_none(), "{entry:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tagged: ImageRef = "registry.example:5000/fuzz/app:1.2.3".parse().expect("an image");
    let Ok(old) = parse_kustomization(FILE, text) else {
        let _ = set_image(FILE, text, "nginx", &tagged);
        return;
    };
    let _ = local_directories("apps/prod", &old);
    let mut names: Vec<String> = old.images.iter().take(3).map(|i| i.name.clone()).collect();
    names.push("fuzz/new".to_owned());
    for name in names {
        let mut wanted = vec![tagged.clone(), format!("nginx@{DIGEST}").parse().expect("an image")];
        if let Ok(same) = name.parse::<ImageRef>() {
            wanted.push(same.with_tag("9.9.9"));
        }
        for to in wanted {
            let Ok(edited) = set_image(FILE, text, &name, &to) else { continue };
            let new = parse_kustomization(FILE, &edited)
                .unwrap_or_else(|e| panic!("{e}: the edit does not parse:\n{edited}"));
            check_set(&old, &new, &name, &to, &edited);
        }
    }
    if let Ok(edited) = add_patch(FILE, text, "flux-patches/deployment-web.yaml", "Deployment", "web") {
        let new =
            parse_kustomization(FILE, &edited).unwrap_or_else(|e| panic!("{e}: the edit does not parse:\n{edited}"));
        assert_eq!(new, old, "add_patch changed what automation reads:\n{edited}");
    }
});
