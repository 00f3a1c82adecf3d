//! `.flux.yaml` parsing: never a panic; an error names the file; what parses is well-formed
//! (generators, a command on a line, a patch file inside the directory).

#![no_main]

use flux_core::Error;
use flux_generate::flux_yaml::{FluxYamlConfig, parse_flux_yaml};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "apps/web/.flux.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_flux_yaml(FILE, text) {
        Err(Error::InvalidInput { location, .. }) => assert_eq!(location.file, FILE),
        Err(other) => panic!("not an InvalidInput: {other:?}"),
        Ok(parsed) => {
            assert_eq!(parsed.file, FILE);
            let generators = match &parsed.config {
                FluxYamlConfig::CommandUpdated { generators, updaters } => {
                    for u in updaters {
                        assert!(u.container_image.is_some() || u.policy.is_some());
                    }
                    generators
                }
                FluxYamlConfig::PatchUpdated { generators, patch_file } => {
                    assert!(!patch_file.is_empty() && !patch_file.starts_with('/'), "{patch_file}");
                    assert!(!patch_file.split('/').any(|p| p == ".."), "{patch_file} leaves the directory");
                    generators
                }
                FluxYamlConfig::ScanForFiles => return,
            };
            assert!(!generators.is_empty());
            for g in generators {
                assert!(!g.command.trim().is_empty() && g.line >= 1);
            }
        }
    }
});
