//! Image reference parsing: never a panic; a parsed reference prints as written and parses
//! back to itself; its repository, canonical form and retagged form parse too.

#![no_main]

use flux_core::{ImageRef, ImageRepo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(repo) = text.parse::<ImageRepo>() {
        assert_eq!(repo.to_string().parse::<ImageRepo>().expect("a repository prints as one"), repo);
    }
    let Ok(image) = text.parse::<ImageRef>() else { return };
    assert_eq!(image.to_string(), text, "a reference keeps what was written");
    let again: ImageRef = image.to_string().parse().expect("printed reference parses");
    assert_eq!(again, image);
    let canonical: ImageRef = image.canonical().parse().expect("canonical form parses");
    assert!(canonical.same_image(&image), "{canonical} is not {image}");
    let repo = image.repository();
    let parsed_repo: ImageRepo = repo.to_string().parse().expect("repository parses");
    assert_eq!(parsed_repo, repo);
    let retagged = image.with_tag("fuzz-1.0");
    assert_eq!(retagged.tag(), Some("fuzz-1.0"));
    assert_eq!(retagged.repository(), repo);
    let reparsed: ImageRef = retagged.to_string().parse().expect("retagged reference parses");
    assert_eq!(reparsed, retagged);
});
