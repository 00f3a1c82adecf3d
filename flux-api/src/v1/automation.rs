//! Automation passes, and the images a unit's workloads run (`GET /api/v1/images`).

use serde::{Deserialize, Serialize};

use super::ids::{ImageRef, ImageRepo, ResourceId, Revision, TagFilter};

/// One image changed in one container of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChange {
    /// The workload.
    pub workload: ResourceId,
    /// The container (for a HelmRelease, the image's name).
    pub container: String,
    /// The image that was in git.
    pub from: ImageRef,
    /// The image written.
    pub to: ImageRef,
}

/// An image change that could not be written, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedChange {
    /// The change.
    pub change: ImageChange,
    /// Why it failed.
    pub error: String,
}

/// A repository the registry could not tell about; its workloads were not updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryFailure {
    /// The repository.
    pub repository: ImageRepo,
    /// What the registry said.
    pub error: String,
}

/// A workload an automation pass left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedWorkload {
    /// The workload.
    pub workload: ResourceId,
    /// Why: `ignore`, or its errors (`file:line: workload: message; ...`).
    pub reason: String,
}

/// What one automation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationReport {
    /// The revision committed, if anything changed.
    pub revision: Option<Revision>,
    /// The images changed, all in that one revision.
    pub changes: Vec<ImageChange>,
    /// Changes that could not be written.
    pub failed: Vec<FailedChange>,
    /// Repositories the registry could not tell about.
    pub registry_errors: Vec<RegistryFailure>,
    /// Workloads left alone, and why.
    #[serde(default)]
    pub skipped: Vec<SkippedWorkload>,
}

/// The head revision could not be used; listings answer from the last usable revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadProblem {
    /// The head, when the source could be refreshed.
    pub revision: Option<Revision>,
    /// Why it cannot be used.
    pub error: String,
}

/// One tag of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableTag {
    /// The tag.
    pub tag: String,
    /// When its image was built (RFC 3339), if it says.
    pub created: Option<String>,
}

/// One container's image and what its repository offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerImages {
    /// The container.
    pub container: String,
    /// Its image in git.
    pub current: ImageRef,
    /// Its tag filter.
    pub filter: TagFilter,
    /// The tag its filter would choose now, if any.
    pub latest: Option<String>,
    /// Every tag of the repository, newest first (undated ones last, by name).
    pub available: Vec<AvailableTag>,
    /// Why the repository could not be listed, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/images`: one workload's containers and their images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadImages {
    /// The workload.
    pub workload: ResourceId,
    /// Its containers (those whose image cannot be read are in `error` instead).
    pub containers: Vec<ContainerImages>,
    /// What is wrong with its manifest, when something is (`file:line: workload: message; ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
