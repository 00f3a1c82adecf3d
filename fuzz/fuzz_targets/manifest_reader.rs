//! The manifest reader over any bytes, as one file at several places in a repository (plain,
//! in a hidden directory, in a Helm chart, twice): never a panic; every error names a file given;
//! what `read_manifests` accepts, `read_repository_manifests` reads the same way.

#![no_main]

use flux_core::manifest::{
    ManifestOptions, read_manifests, read_repository_manifests, select_manifest_files, workloads_with_errors,
};
use flux_core::{Error, SourceFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = |path: &str| SourceFile { path: path.into(), content: data.to_vec() };
    let options = ManifestOptions::default();

    // One file: both readers agree on what is an object.
    let single = [file("apps/f.yaml")];
    let strict = read_manifests(&single, &options);
    let lenient = read_repository_manifests(&single, &options);
    if let Ok(manifests) = &strict {
        let lenient = lenient.as_ref().expect("what read_manifests reads, read_repository_manifests reads");
        assert_eq!(&lenient.manifests, manifests);
        assert!(lenient.skipped.is_empty(), "read_manifests accepted a document the lenient reader skips");
    }
    for errors in [strict.as_ref().err(), lenient.as_ref().err()].into_iter().flatten() {
        assert!(!errors.is_empty());
        for e in errors.errors() {
            let Error::InvalidInput { location, .. } = e else { panic!("not an InvalidInput: {e:?}") };
            assert_eq!(location.file, "apps/f.yaml", "{e}");
        }
    }
    if let Ok(read) = &lenient {
        for w in workloads_with_errors(&read.manifests) {
            assert_eq!(w.file, "apps/f.yaml");
        }
    }

    // The skip rules over a small repository holding the same file four times.
    let mut chart = file("charts/c/Chart.yaml");
    chart.content = b"apiVersion: v2\nname: c\nversion: 0.1.0\n".to_vec();
    let files =
        [file("apps/f.yaml"), file("apps/.hidden/f.yaml"), chart, file("charts/c/templates/f.yaml"), file("b/f.json")];
    let (selected, skipped) = select_manifest_files(&files, &["".to_owned()]);
    let paths: Vec<&str> = selected.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["apps/f.yaml", "b/f.json"], "skipped: {skipped:?}");
    let selected: Vec<SourceFile> = selected.into_iter().cloned().collect();
    match read_repository_manifests(&selected, &options) {
        // The same objects in two files are defined twice.
        Ok(read) => assert!(read.manifests.is_empty(), "an id defined twice was accepted"),
        Err(errors) => assert!(!errors.is_empty()),
    }
});
