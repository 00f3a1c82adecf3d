//! Shared by the test binaries: pushing the conformance fixture, and a registry configured for
//! a plain-HTTP test host.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use flux_core::testkit::registry::FixtureImage;
use flux_registry::{DockerConfig, OciRegistry, RegistryConfig};
use flux_testenv::Pusher;

/// Pushes every image of a fixture.
pub async fn push_fixture(pusher: &Pusher, images: &[FixtureImage]) {
    for image in images {
        let reference = image.image.to_string();
        if image.platforms.is_empty() {
            let created = image.created.map(|t| t.to_string());
            pusher.push_image(&reference, created.as_deref()).await.unwrap_or_else(|e| panic!("push {reference}: {e}"));
        } else {
            let entries: Vec<(String, String, String)> =
                image.platforms.iter().map(|(p, t)| (p.os.clone(), p.architecture.clone(), t.to_string())).collect();
            let entries: Vec<(&str, &str, &str)> =
                entries.iter().map(|(o, a, t)| (o.as_str(), a.as_str(), t.as_str())).collect();
            pusher.push_index(&reference, &entries).await.unwrap_or_else(|e| panic!("push {reference}: {e}"));
        }
    }
}

/// A configuration speaking plain HTTP to `host`, with fast retries and no `config.json`.
pub fn plain_config(host: &str) -> RegistryConfig {
    RegistryConfig {
        insecure_hosts: vec![host.to_owned()],
        docker_config: DockerConfig::Disabled,
        backoff: std::time::Duration::from_millis(20),
        ..RegistryConfig::default()
    }
}

/// A registry handle on `host` (plain HTTP) with its cache in `cache_dir`.
pub fn cached_registry(host: &str, cache_dir: PathBuf) -> OciRegistry {
    OciRegistry::new(RegistryConfig { cache_dir: Some(cache_dir), ..plain_config(host) }).expect("a registry handle")
}
