//! Manual releases (what `fluxctl release` asks for) and what they did, per workload and
//! container.

use crate::image::ImageRef;
use crate::policy::ChangeCause;
use crate::resource::ResourceId;
use crate::source::Revision;

/// Which workloads a release is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadSelector {
    /// Every workload in the repository.
    All,
    /// These workloads.
    Only(Vec<ResourceId>),
}

/// Which image a release writes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSelector {
    /// For every container, the latest image its tag filter allows.
    AllLatest,
    /// This image, in every container that runs its repository.
    Image(ImageRef),
}

/// A release request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseSpec {
    /// Which workloads.
    pub workloads: WorkloadSelector,
    /// Workloads left out even if selected.
    #[serde(default)]
    pub excludes: Vec<ResourceId>,
    /// Which image.
    pub image: ImageSelector,
    /// Compute and report, commit nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Release to locked workloads, and tags their filters exclude.
    #[serde(default)]
    pub force: bool,
    /// Who asked, and why.
    #[serde(default)]
    pub cause: ChangeCause,
}

/// What a release did to one container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ContainerOutcome {
    /// Its image was (or, in a dry run, would be) changed.
    Updated {
        /// The new image.
        to: ImageRef,
    },
    /// It already runs the image.
    UpToDate,
    /// It runs another repository than the one released.
    DoesNotUseImage,
    /// Its tag filter excludes the released tag (use force to release anyway).
    FilterExcludes {
        /// The filter.
        filter: String,
    },
    /// The released tag is not in the registry.
    NotInRegistry,
    /// No tag passes its filter (or none has a created time for a time-ordered filter).
    NoCandidate,
    /// The registry could not be asked; nothing was changed.
    RegistryError {
        /// What the registry said.
        error: String,
    },
    /// The manifest could not be edited in place.
    EditFailed {
        /// Why.
        error: String,
    },
}

/// What a release did to one container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerRelease {
    /// The container.
    pub container: String,
    /// Its image in git before the release.
    pub current: ImageRef,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ContainerOutcome,
}

/// What a release did to one workload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WorkloadOutcome {
    /// At least one container was updated.
    Updated,
    /// Nothing to change.
    UpToDate,
    /// Left out on purpose.
    Skipped {
        /// Why: `excluded`, `locked`, ….
        reason: String,
    },
    /// Something went wrong; see the containers.
    Failed {
        /// Why.
        error: String,
    },
}

/// What a release did to one workload, and to each of its containers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadRelease {
    /// The workload.
    pub workload: ResourceId,
    /// The overall outcome.
    #[serde(flatten)]
    pub outcome: WorkloadOutcome,
    /// Each container's outcome (empty when the workload was skipped).
    pub containers: Vec<ContainerRelease>,
}

/// The result of a release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseResult {
    /// The revision committed; `None` for a dry run or when nothing changed.
    pub revision: Option<Revision>,
    /// Per workload, in repository order.
    pub workloads: Vec<WorkloadRelease>,
    /// Whether it was a dry run.
    pub dry_run: bool,
}

impl ReleaseResult {
    /// The workloads whose images were (or would be) changed.
    pub fn updated(&self) -> impl Iterator<Item = &WorkloadRelease> {
        self.workloads.iter().filter(|w| w.outcome == WorkloadOutcome::Updated)
    }
}
