//! Property tests of image references: whatever valid reference a user writes prints back the
//! same, and normalisation puts it in Docker Hub's canonical form.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::ImageRef;
use proptest::prelude::*;

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,2})[a-z0-9]{1,6}){0,2}"
}

fn domain() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}(:[0-9]{2,5})?",
        Just("localhost:5000".to_owned()),
        Just("index.docker.io".to_owned()),
        Just("docker.io".to_owned()),
    ])
}

fn reference() -> impl Strategy<Value = (Option<String>, String, Option<String>, Option<String>)> {
    (
        domain(),
        proptest::collection::vec(component(), 1..4).prop_map(|c| c.join("/")),
        proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        proptest::option::of("[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))),
    )
}

proptest! {
    #[test]
    fn round_trips_what_was_written((domain, path, tag, digest) in reference()) {
        // Without a registry, a first component that looks like a host is one (Docker's rule).
        let first = path.split('/').next().unwrap_or_default();
        prop_assume!(domain.is_some() || !(first.contains('.') || first == "localhost"));
        let mut text = domain.as_ref().map(|d| format!("{d}/")).unwrap_or_default();
        text.push_str(&path);
        if let Some(t) = &tag { text.push(':'); text.push_str(t); }
        if let Some(d) = &digest { text.push('@'); text.push_str(d); }
        let r: ImageRef = text.parse().unwrap();
        prop_assert_eq!(r.to_string(), text.clone());
        prop_assert_eq!(r.domain(), domain.as_deref());
        prop_assert_eq!(r.path(), path.as_str());
        prop_assert_eq!(r.tag(), tag.as_deref());
        prop_assert_eq!(r.digest(), digest.as_deref());
        // The canonical form is itself a reference to the same image.
        let canonical: ImageRef = r.canonical().parse().unwrap();
        prop_assert!(canonical.same_image(&r));
        let hub = matches!(domain.as_deref(), None | Some("docker.io") | Some("index.docker.io"));
        if hub {
            prop_assert_eq!(canonical.domain(), Some("docker.io"));
            prop_assert_eq!(canonical.path().contains('/'), true);
        }
    }
}
