//! Version 1 of the API, under [`PREFIX`] (`/api/v1`).
//!
//! # Routes
//!
//! | Route | Body | Answer |
//! |---|---|---|
//! | `GET /version` | | [`Version`] |
//! | `GET /units` | | [`Units`] |
//! | `GET /identity` | | [`Identity`] |
//! | `POST /identity/regenerate` | | [`Identity`] (the new key; 501 when the daemon cannot) |
//! | `GET /status` | | [`Status`] |
//! | `GET /workloads?namespace=NS` | | `[`[`WorkloadInfo`]`]` + listing headers |
//! | `GET /images?workload=ID` | | `[`[`WorkloadImages`]`]` + listing headers |
//! | `POST /release` | [`ReleaseSpec`] | [`JobAccepted`] (202) |
//! | `POST /policies` | [`PolicyRequest`] | [`JobAccepted`] (202) |
//! | `POST /sync?allow_prune=true` ([`SyncQuery`]) | | [`JobAccepted`] (202) |
//! | `POST /plan` | [`PlanRequest`] | [`Plan`] |
//! | `POST /suspend` | [`SuspendRequest`] | [`Status`] |
//! | `POST /resume` | [`ResumeRequest`] | [`Status`] |
//! | `GET /jobs/{id}` | | [`JobView`] |
//! | `GET /export` | | YAML |
//! | `POST /notify/git` | [`GitNotify`] | 202 |
//! | `POST /notify/registry` | | 202 |
//! | `POST /notify/github` | GitHub's push event | 202 |
//!
//! # The unit
//!
//! One daemon runs one or more sync units, each with its name. Every route but `/version` and
//! `/units` is about one unit, chosen with the query parameter [`UNIT_PARAM`]: `?unit=NAME`
//! (`/jobs/{id}` too: a job belongs to its unit). With one unit it may be left out. With several
//! and none given, the answer is `400 Bad Request` with an [`ApiError`] naming the choices; an
//! unknown name is `404 Not Found`, also naming them. Webhooks without the parameter concern
//! every unit whose source they match.
//!
//! Errors are [`ApiError`] bodies with the status their kind calls for (400 invalid input, 404
//! not found, 409 conflict, 503 rate limited or transient, 500 otherwise).

mod automation;
mod ids;
mod plan;
mod policy;
mod release;
mod sync;

use serde::{Deserialize, Serialize};

pub use automation::{
    AutomationReport, AvailableTag, ContainerImages, FailedChange, HeadProblem, ImageChange, RegistryFailure,
    SkippedWorkload, WorkloadImages,
};
pub use ids::{CLUSTER_SCOPE, ImageRef, ImageRepo, ParseError, ResourceId, Revision, TagFilter};
pub use plan::{Action, AutomationCommit, AutomationPlan, FieldChange, ObjectDiff, Plan, PlanRequest, SyncQuery};
pub use policy::{ChangeCause, Ignore, Lock, Policies, PolicyChange, PolicyDiff};
pub use release::{
    ContainerOutcome, ContainerRelease, ImageSelector, ReleaseResult, ReleaseSpec, WorkloadOutcome, WorkloadRelease,
    WorkloadSelector,
};
pub use sync::{
    ApplyOutcome, ApplyResult, DeleteOutcome, DeleteResult, ErrorDetail, ErrorLocation, GarbageCollection, Health,
    HealthReport, Held, KeepReason, Kept, ObjectHealth, ObjectRef, PruneHold, SyncError, SyncSummary, WaitOutcome,
    WorkloadStatus,
};

/// The prefix of every route of this version.
pub const PREFIX: &str = "/api/v1";

/// The query parameter naming the unit a request is about: `?unit=NAME`.
pub const UNIT_PARAM: &str = "unit";

/// The environment variable fluxctl reads the unit from (its `--unit` flag wins).
pub const UNIT_ENV: &str = "FLUX_UNIT";

/// The unit selector every unit route takes (`?unit=NAME`); `None` means "the only unit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitQuery {
    /// The unit's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The header of a listing (`GET /workloads`, `GET /images`) naming the revision listed.
pub const LISTED_REVISION: &str = "flux-listed-revision";
/// The header of a listing when the head is unusable (the listing is then of the last usable
/// revision): the head's revision, if known.
pub const HEAD_REVISION: &str = "flux-head-revision";
/// The header of a listing when the head is unusable: why, on one line (characters a header
/// cannot carry escaped as `\u{..}`).
pub const HEAD_ERROR: &str = "flux-head-error";

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// fluxd's version.
    pub version: String,
}

/// `GET /units`: the units this daemon runs, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    /// Each unit, sorted by name.
    pub units: Vec<UnitInfo>,
}

/// One unit, in `GET /units`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInfo {
    /// Its name (`[a-z0-9-]`), the value of `?unit=`.
    pub name: String,
    /// The branch it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The paths it syncs (empty: the repository's root).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The head at its last refresh, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// With high availability (`fluxd --ha-namespace`), the replica writing for it as the
    /// answering replica last saw (absent while it is free, and without high availability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `GET /identity`: the public half of the unit's git deploy key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The public key (OpenSSH format), when a deploy key is configured.
    pub public_key: Option<String>,
    /// Its fingerprint as `ssh-keygen -l` prints it (`SHA256:` and the unpadded base64 of the
    /// key blob's SHA-256); absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// One workload, in `GET /workloads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    /// `namespace:kind/name`.
    pub id: ResourceId,
    /// Its containers as they run in the cluster (or as written in git when not running).
    pub containers: Vec<ContainerInfo>,
    /// Its rollout status; `None` when it does not run in the cluster.
    pub status: Option<WorkloadStatus>,
    /// Its policies, from the manifests in git.
    pub policies: Policies,
    /// Whether its manifest is in git (else it runs but is not managed here).
    pub in_git: bool,
    /// What is wrong with its manifest in git, when something is (`file:line: workload:
    /// message; ...`): it is listed, but automation, releases and policy changes leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One container of a workload, in `GET /workloads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Its name.
    pub name: String,
    /// Its image, as written (even when it is not a valid reference).
    pub image: String,
    /// Whether it is an init container.
    pub init: bool,
    /// Why its image in git cannot be read, when it cannot (`file:line: workload: message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /policies`: policy changes to one workload, as one job and one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// The workload.
    pub workload: ResourceId,
    /// The changes, in order.
    pub changes: Vec<PolicyChange>,
    /// Set (`Some(Some(filter))`) or clear (`Some(None)`) the filter of every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_all: Option<Option<String>>,
    /// Who asked (the commit's author).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer to a request that queues a job (202 Accepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAccepted {
    /// The job's id, for `GET /jobs/{id}`; unique across the daemon's restarts.
    pub job_id: String,
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobResult {
    /// A release.
    Release(ReleaseResult),
    /// A policy update: the workloads whose policies changed and the revision committed.
    Policy {
        /// The revision committed, if anything changed.
        revision: Option<String>,
        /// What changed.
        diffs: Vec<PolicyDiff>,
    },
    /// A sync (after a refresh of the source); boxed, as the largest by far.
    Sync(Box<SyncSummary>),
    /// An automation pass.
    Automation(AutomationReport),
}

/// `GET /jobs/{id}`: where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobView {
    /// Waiting for the unit's jobs before it.
    Queued,
    /// Running.
    Running,
    /// Done.
    Succeeded {
        /// What it did.
        result: Box<JobResult>,
    },
    /// Failed.
    Failed {
        /// Why, one line.
        error: String,
    },
}

/// `GET /status`: where the unit stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The head of the branch at the last refresh.
    pub head: Option<String>,
    /// The last sync, if there was one.
    pub last_sync: Option<SyncSummary>,
    /// Why the head could not be used at the last read (listings then answer from the last
    /// usable revision; automation and policy changes refuse it); `None` when it could.
    #[serde(default)]
    pub head_error: Option<HeadProblem>,
    /// Who suspended the unit and why, while it is suspended (`POST /suspend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
    /// The workloads whose automation is suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended_workloads: Vec<WorkloadSuspension>,
    /// Why the last sync was held (by a unit it depends on, or suspended), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

/// Who suspended something, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// Who asked, if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why, if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When (RFC 3339).
    pub since: String,
}

/// One workload whose automation is suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSuspension {
    /// The workload.
    pub workload: ResourceId,
    /// Who, why, when.
    #[serde(flatten)]
    pub suspension: Suspension,
}

/// `POST /suspend`: suspend the unit (its syncs apply nothing, its automation stops), or with
/// `workload` only that workload's automation; answered with the unit's [`Status`]. Kept
/// across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendRequest {
    /// Only this workload's automation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<ResourceId>,
    /// Who asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /resume`: resume the unit, or with `workload` that workload's automation; answered
/// with the unit's [`Status`] (resuming what is not suspended changes nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRequest {
    /// Only this workload's automation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<ResourceId>,
    /// Who asks (logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, one line.
    pub error: String,
}

/// The body of the generic git notification (`POST /notify/git`); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitNotify {
    /// The branch pushed, if known: units on other branches ignore it.
    #[serde(default)]
    pub branch: Option<String>,
}
