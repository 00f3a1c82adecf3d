//! Image automation: registry → git.
//!
//! An [`AutomationEngine`] reads the workloads in the source's manifests, asks the registry
//! about the image repositories they use, and writes newer images back into the manifests as
//! one commit, with the lossless editor (only the image values change).
//!
//! # An automation pass
//!
//! 1. Read the head: every manifest under the paths. Any unreadable manifest stops the pass —
//!    it never commits on top of a revision it cannot read. A workload whose own values cannot
//!    be read (an invalid image reference, a bad policy annotation, a HelmRelease mapping that
//!    points nowhere) does not stop it: that workload is skipped and reported with its errors
//!    ([`AutomationReport::skipped`]), as is an automated one marked `fluxcd.io/ignore: "true"`.
//! 2. For every workload whose policy is *automated* and not *locked*, and every container:
//!    the container's tag filter (`fluxcd.io/tag.<container>`, default: any tag but `latest`)
//!    decides which tags qualify and which is latest (semver order for semver filters, newest
//!    `created` time otherwise; see [`CompiledFilter::latest`](crate::manifest::CompiledFilter::latest)).
//! 3. The registry is asked only about those repositories (narrowed by the [`ImageScope`]), with
//!    metadata only for tags a time-ordered filter could choose. A repository the registry
//!    cannot fully describe produces no update; the others carry on.
//! 4. Only images that differ from git are written; all updates of a pass go into **one**
//!    commit (`Auto-release …`, with the list of workload, container, old → new).
//! 5. If someone pushed meanwhile, the source says `Conflict`: the pass reads the new head and
//!    plans again (without asking the registry again), a bounded number of times. Nothing is
//!    lost or applied twice, because every attempt plans from scratch on the head it commits to.
//!
//! # Releases and policies
//!
//! [`AutomationEngine::release`] is `fluxctl release`: chosen workloads (or all, minus
//! exclusions), a given image or each container's latest; locked workloads are refused unless
//! forced; ignored ones (`fluxcd.io/ignore: "true"`) are skipped (`ignore`) unless forced for
//! workloads named one by one, as in Flux v1; a workload with errors fails with them, the others
//! go on. The result says per workload and container what happened. Policy changes go through
//! a [`PolicyStore`](crate::PolicyStore); [`ManifestPolicyStore`] keeps them as annotations in
//! the manifests, as Flux v1 did.
//!
//! Listings ([`AutomationEngine::listing`]) answer from the last usable revision while the head
//! is unusable, and say so ([`HeadProblem`]); everything that writes refuses an unusable head.
//!
//! Every commit carries trailers (`Flux-Change:`, `Flux-Job:`, `Flux-User:`), so the history
//! of who released what is in the repository and survives a restart. The author and the job
//! are given per call ([`CommitAs`]), so one engine serves every request.
//!
//! Engines are built with the [`Generator`](crate::generate::Generator) the sync engine uses:
//! there is no default, so automation, policies and sync cannot see different workloads.

mod config;
mod engine;
mod policy_store;
mod release;
mod scan;
mod state;
mod write;

pub use config::{AutomationConfig, CommitTemplate, ImageScope};
pub use engine::{
    AutomationEngine, AutomationReport, AvailableTag, ContainerImages, FailedChange, HeadProblem, Listing,
    RegistryFailure, SkippedWorkload, Suspended, WorkloadImages,
};
pub use policy_store::{ManifestPolicyStore, tag_all_containers};
pub use release::{
    ContainerOutcome, ContainerRelease, ImageSelector, ReleaseResult, ReleaseSpec, WorkloadOutcome, WorkloadRelease,
    WorkloadSelector,
};
pub use scan::ImageCatalog;
pub use state::RepoState;
pub use write::{CommitAs, ImageChange};

#[cfg(test)]
mod tests;
