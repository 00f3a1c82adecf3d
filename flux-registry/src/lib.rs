//! The flux-core [`Registry`](flux_core::Registry) port on OCI registries (Docker Hub, GHCR,
//! Quay, CNCF distribution, …), at the lowest request count that still gives complete, correct
//! metadata.
//!
//! - **Tags**: every tag, following `Link` pagination (and `last=` when a registry pages without
//!   saying so), sorted and deduplicated; cosign's `*.sig`/`*.att`/`*.sbom` left out by default.
//! - **Metadata**: digest, the config's `created` time, and for an index the entry of the
//!   configured platform(s) (default `linux/amd64`, never the machine's own by accident) and
//!   the list of platforms.
//! - **Credentials**: anonymous, basic, bearer-token challenges (through oci-client), Docker's
//!   `config.json` with credential helpers, pull secrets given at run time per host
//!   ([`OciRegistry::add_pull_secret`]), and views with one workload's own pull secrets
//!   ([`OciRegistry::with_pull_credentials`]) whose answers are cached apart from those got
//!   with other credentials. Never in logs, errors or `Debug`.
//! - **Transport**: HTTPS with extra CA bundles, plain HTTP for listed hosts; per-host token
//!   bucket, `429` slows a host down (honouring `Retry-After`) and recovers gradually; 5xx and
//!   timeouts retried with jittered backoff, a bounded number of times.
//! - **Cache**: one redb file: tag lists, tag → digest (rechecked on a slower schedule) and
//!   metadata per digest. A warm rescan of a repository with no new tags costs one request.
//!
//! ```no_run
//! # async fn demo() -> flux_core::Result<()> {
//! use flux_core::Registry;
//! use flux_registry::{OciRegistry, RegistryConfig};
//!
//! let registry = OciRegistry::new(RegistryConfig {
//!     cache_dir: Some("/var/cache/flux/registry".into()),
//!     ..RegistryConfig::default()
//! })?;
//! let repo = "ghcr.io/fluxcd/flux".parse()?;
//! for tag in registry.tags(&repo).await? {
//!     let info = registry.image_info(&repo.tagged(&tag)).await?;
//!     println!("{tag} {} {:?}", info.digest, info.created);
//! }
//! # Ok(()) }
//! ```

mod cache;
mod config;
mod credentials;
mod manifest;
mod rate_limit;
mod registry;
mod scope;
mod transport;

pub use config::RegistryConfig;
pub use credentials::{Credential, DockerConfig, PullCredentials};
pub use registry::OciRegistry;
pub use registry::WithPullCredentials;
pub use scope::DEFAULT_EXCLUDED_TAGS;
