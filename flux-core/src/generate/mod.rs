//! The step between "files at a revision" and "desired objects", and back.
//!
//! A [`Generator`] turns the files of a revision ([`Snapshot`]) into Kubernetes objects, and
//! writes workload changes (images, policies) back into the files those objects came from.
//! Reading plain YAML and JSON manifests is one generator ([`ManifestGenerator`]); Kustomize and
//! the commands of a `.flux.yaml` are others (the `flux-generate` crate).
//!
//! The sync engine trusts a generator's output only when it reports no errors: a revision with
//! any error is *unusable*, and nothing is pruned because of it. A generator that fails, times
//! out or prints nothing must say so as an error rather than return fewer objects; the engine
//! also refuses an empty result while objects are managed unless
//! [`SyncConfig::allow_empty`](crate::sync::SyncConfig::allow_empty) says the path is empty on
//! purpose.

mod manifests;
mod snapshot;

use async_trait::async_trait;

use crate::error::Error;
use crate::image::ImageRef;
use crate::manifest::Skipped;
use crate::object::KubeObject;
use crate::resource::ResourceId;
use crate::source::FileChange;

pub use manifests::{ManifestGenerator, update_manifest_files};
pub use snapshot::Snapshot;

/// What a generator made of a revision.
#[derive(Debug, Default)]
pub struct Generated {
    /// The objects it could make, each with its origin ([`KubeObject::origin`]): the manifest
    /// file and line, or the file that made it (a `kustomization.yaml`, a `.flux.yaml`). When
    /// `errors` is not empty these may be incomplete: the sync engine applies them only if its
    /// caller opted in, and never prunes on their basis.
    pub objects: Vec<KubeObject>,
    /// Every problem found, each naming its file (and line) or command.
    pub errors: Vec<Error>,
    /// What under the paths was not read as objects (hidden directories, Helm charts,
    /// documents that are not Kubernetes objects), sorted by path.
    pub skipped: Vec<Skipped>,
}

impl Generated {
    /// Whether the revision is usable: no errors at all.
    pub fn is_usable(&self) -> bool {
        self.errors.is_empty()
    }
}

/// One change automation wants written for one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEdit {
    /// The workload.
    pub workload: ResourceId,
    /// What changes.
    pub change: EditChange,
}

/// What a [`WorkloadEdit`] changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditChange {
    /// The image of a container (for a HelmRelease, of a named image).
    Image {
        /// The container.
        container: String,
        /// The image to write.
        image: ImageRef,
    },
    /// A policy annotation (`fluxcd.io/automated`, `fluxcd.io/tag.app`, ...): set, or removed
    /// when `value` is `None`.
    Annotation {
        /// The full annotation key.
        key: String,
        /// The new value.
        value: Option<String>,
    },
}

/// What a generator made of a list of edits.
#[derive(Debug, Default)]
pub struct Updated {
    /// The file changes that make the edits, to commit as one revision.
    pub files: Vec<FileChange>,
    /// The edits that could not be made, by index in the list given, with why.
    pub failed: Vec<(usize, Error)>,
}

/// Turns the files of a revision into desired objects, and writes workload edits back.
///
/// # Contract
/// - [`generate`](Generator::generate) is deterministic: the same files give the same objects,
///   in the same order. It never panics on user data; every problem becomes an entry in
///   [`Generated::errors`], located at the file (and line) or command at fault. A step that
///   fails, times out or yields nothing where it should yield objects is an error, never a
///   shorter list: fewer objects would make the sync engine prune.
/// - Objects carry their origin ([`KubeObject::origin`]) so that errors further on can name it,
///   and so that [`update`](Generator::update) knows where a workload came from.
/// - [`update`](Generator::update) gets the snapshot and what `generate` made of it, and returns
///   the file changes for every edit it could make and the index and reason of every one it
///   could not. It writes nothing itself: the caller commits the changes as one revision. Edits
///   to the same file accumulate. Bytes other than the edited values stay as they were wherever
///   the format allows (see [`edit`](crate::manifest::edit)).
/// - Generating the snapshot again after applying the changes gives the workloads with exactly
///   the edits made.
#[async_trait]
pub trait Generator: Send + Sync {
    /// Makes the desired objects of the snapshot's paths.
    async fn generate(&self, snapshot: &Snapshot) -> Generated;

    /// Writes `edits` into the files `generated` came from. The default refuses every edit: a
    /// generator that cannot write back (say, an embedder's read-only one) need not implement it.
    async fn update(&self, snapshot: &Snapshot, generated: &Generated, edits: &[WorkloadEdit]) -> Updated {
        let _ = (snapshot, generated);
        let failed =
            (0..edits.len()).map(|i| (i, Error::other("this generator cannot write changes back to git"))).collect();
        Updated { files: Vec::new(), failed }
    }
}
