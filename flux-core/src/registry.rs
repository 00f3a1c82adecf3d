//! The `Registry` port: image repositories, their tags and image metadata.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::image::{ImageRef, ImageRepo};
use crate::object::KubeObject;
use crate::resource::ResourceId;

/// An OS and architecture (and variant), as in an OCI image index.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … when the index says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without variant.
    pub fn new(os: &str, architecture: &str) -> Self {
        Platform { os: os.to_owned(), architecture: architecture.to_owned(), variant: None }
    }

    /// `linux/amd64`, the platform chosen from an index unless configured otherwise.
    pub fn linux_amd64() -> Self {
        Platform::new("linux", "amd64")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

/// What a registry knows of one image reference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    /// The reference asked about, as given.
    pub image: ImageRef,
    /// The digest of the manifest (or index) the reference resolves to: `sha256:<64 hex>`.
    pub digest: String,
    /// The `created` time of the image's config. For an index, that of the entry for the
    /// configured platform. `None` when the image does not say.
    pub created: Option<jiff::Timestamp>,
    /// For an index, the platforms it offers (sorted); empty for a single-platform image.
    pub platforms: Vec<Platform>,
}

/// Container image registries, seen from the automation engine.
///
/// # Contract
///
/// Every implementation guarantees:
///
/// - [`Registry::tags`] returns **every** tag of the repository, however the registry pages
///   them, with no duplicates, sorted in byte order. A repository that does not exist is
///   [`Error::NotFound`](crate::Error::NotFound); refused credentials are
///   [`Error::Unauthorized`](crate::Error::Unauthorized); the registry asking to slow down is
///   [`Error::RateLimited`](crate::Error::RateLimited) (after any retries of the
///   implementation's own). A partial list is never returned as if it were complete.
/// - [`Registry::image_info`] resolves a tag (or digest) reference to its [`ImageInfo`]. The
///   digest is the registry's, `algorithm:hex`. Tags that point at the same content have the
///   same digest. For an image index the `created` time is that of the configured platform's
///   entry (not the machine's own platform), and `platforms` lists every platform of the index.
///   A tag that does not exist is [`Error::NotFound`](crate::Error::NotFound) naming the image.
/// - Results are consistent with each other: every tag that `tags` lists can be resolved by
///   `image_info` unless it was deleted meanwhile.
/// - Credentials never appear in errors, logs or `Debug` output.
/// - Handles are safe to use from several tasks at once; implementations may cache, and then
///   must never return metadata of one digest for another.
///
/// `flux_core::testkit::registry` checks all of this against any implementation.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Registry: Send + Sync {
    /// Every tag of `repository`, sorted.
    async fn tags(&self, repository: &ImageRepo) -> Result<Vec<String>>;

    /// Digest, created time and platforms of one image.
    async fn image_info(&self, image: &ImageRef) -> Result<ImageInfo>;
}

/// How one workload's images are scanned when that differs from the automation engine's own
/// registry: typically with the workload's image pull secrets.
#[derive(Clone)]
pub struct RegistryView {
    /// The registry to ask about the workload's repositories on the hosts in `identities`.
    pub registry: Arc<dyn Registry>,
    /// Each host this view has credentials of its own for, with an identity of them: not the
    /// secret (a salted fingerprint, say), equal exactly when the credentials are. Workloads
    /// whose views have the same identity for a host share the scan of its repositories;
    /// repositories on other hosts are scanned with the engine's registry.
    pub identities: BTreeMap<String, String>,
}

impl fmt::Debug for RegistryView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryView").field("identities", &self.identities).finish_non_exhaustive()
    }
}

/// Chooses the registry each workload's images are scanned with (see
/// [`AutomationEngine::with_workload_registries`](crate::automation::AutomationEngine::with_workload_registries)).
///
/// # Contract
///
/// - Asked once per automation pass, image listing or release, about the workloads it scans,
///   so credentials that changed since are used from the next pass on.
/// - Returns a view only for workloads that need one; a workload left out is scanned with the
///   engine's registry. It never fails as a whole: a workload whose credentials cannot be read
///   is left out (and the implementation says so in its log), and then meets the registry's own
///   answer, such as `Unauthorized` for that image only.
/// - Results fetched through one view are never served to a workload whose view has another
///   identity for that host (the scan keys them apart; a caching registry must too).
#[async_trait]
pub trait WorkloadRegistries: Send + Sync {
    /// The views of `workloads`, each as the revision being automated defines it.
    async fn views(&self, workloads: &[&KubeObject]) -> BTreeMap<ResourceId, RegistryView>;
}
