//! How an [`OciRegistry`](crate::OciRegistry) behaves: platforms, hosts, TLS, credentials,
//! rate limits, cache and scope.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use flux_core::Platform;

use crate::credentials::{Credential, DockerConfig};
use crate::scope::DEFAULT_EXCLUDED_TAGS;

/// The configuration of an [`OciRegistry`](crate::OciRegistry). Start from
/// [`RegistryConfig::default`] and change what differs.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The platforms an index is described by, in order of preference (the first one the index
    /// offers is taken). Default `linux/amd64`, whatever machine this runs on.
    pub platforms: Vec<Platform>,
    /// Hosts (`host:port`) spoken to in plain HTTP rather than HTTPS.
    pub insecure_hosts: Vec<String>,
    /// PEM files of extra certificate authorities to trust, besides the system's.
    pub ca_bundles: Vec<PathBuf>,
    /// Credentials per host, for hosts with no pull secret.
    pub credentials: HashMap<String, Credential>,
    /// Where Docker's `config.json` (and so its credential helpers) is found.
    pub docker_config: DockerConfig,
    /// Average requests per second to one host (Flux v1's `--registry-rps`); `0` for no limit.
    pub rps: f64,
    /// Requests allowed at once above that rate (Flux v1's `--registry-burst`).
    pub burst: u32,
    /// How many times a request failing with 5xx, `429` or a timeout is retried.
    pub max_retries: u32,
    /// The first retry's delay (doubling, with jitter, up to `max_backoff`).
    pub backoff: Duration,
    /// The longest wait between retries (and the longest `Retry-After` honoured in a retry).
    pub max_backoff: Duration,
    /// The time allowed for one request.
    pub timeout: Duration,
    /// How many tags to ask for per page (`n=`); `None` lets the registry choose.
    pub page_size: Option<usize>,
    /// Where the persistent cache lives; `None` keeps nothing between handles.
    pub cache_dir: Option<PathBuf>,
    /// How long a tag's digest is trusted before it is checked again (with one `HEAD`), to
    /// notice a tag moved to other content.
    pub digest_recheck: Duration,
    /// Image repository globs (`ghcr.io/team/*`) to scan; empty means all.
    pub include_images: Vec<String>,
    /// Image repository globs never scanned.
    pub exclude_images: Vec<String>,
    /// Tag globs left out of tag lists; by default cosign's `*.sig`, `*.att`, `*.sbom`.
    pub exclude_tags: Vec<String>,
    /// Image repository globs whose images' time is taken from their labels
    /// (`org.opencontainers.image.created`, else `org.label-schema.build-date`) rather than the
    /// config's `created` field, when they have one (Flux v1's `--registry-use-labels`). A
    /// Docker Hub repository also matches by its `index.docker.io/...` name, as v1's globs were
    /// written. Default: none.
    pub use_labels: Vec<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            platforms: vec![Platform::linux_amd64()],
            insecure_hosts: Vec::new(),
            ca_bundles: Vec::new(),
            credentials: HashMap::new(),
            docker_config: DockerConfig::Default,
            rps: 200.0,
            burst: 125,
            max_retries: 4,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            page_size: Some(1000),
            cache_dir: None,
            digest_recheck: Duration::from_secs(6 * 3600),
            include_images: Vec::new(),
            exclude_images: Vec::new(),
            exclude_tags: DEFAULT_EXCLUDED_TAGS.map(String::from).to_vec(),
            use_labels: Vec::new(),
        }
    }
}
