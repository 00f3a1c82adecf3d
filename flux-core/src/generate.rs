//! The step between "files at a revision" and "desired objects".
//!
//! A [`Generator`] turns the files a [`Source`](crate::Source) returned into Kubernetes objects.
//! Reading plain YAML and JSON manifests is one generator; Kustomize or a command from
//! `.flux.yaml` are others. The sync engine trusts a generator's output only when it reports no
//! errors: a revision with any error is *unusable*, and nothing is pruned because of it.

use async_trait::async_trait;

use crate::error::Error;
use crate::object::KubeObject;
use crate::source::{Revision, SourceFile};

/// What a generator made of a revision.
#[derive(Debug, Default)]
pub struct Generated {
    /// The objects it could make. When `errors` is not empty these may be incomplete: the sync
    /// engine applies them only if its caller opted in, and never prunes on their basis.
    pub objects: Vec<KubeObject>,
    /// Every problem found, each naming its file and line where it can.
    pub errors: Vec<Error>,
}

impl Generated {
    /// Whether the revision is usable: no errors at all.
    pub fn is_usable(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Turns the files of a revision into desired objects.
///
/// # Contract
/// - Deterministic: the same files give the same objects, in the same order.
/// - Never panics on user data; every problem becomes an entry in [`Generated::errors`],
///   located at the file (and line) at fault.
/// - Objects carry their origin ([`KubeObject::origin`]) so that errors further on can name it.
#[async_trait]
pub trait Generator: Send + Sync {
    /// Makes the desired objects of `files`, which are the files under the sync paths at `revision`.
    async fn generate(&self, revision: &Revision, files: &[SourceFile]) -> Generated;
}

/// The plain generator: every `*.yaml`, `*.yml` and `*.json` file is read as manifests
/// ([`read_manifests`](crate::manifest::read_manifests)).
///
/// When the revision has errors, [`Generated::objects`] still holds the objects of every file
/// that reads cleanly on its own, for callers that opted in to applying an unusable revision.
/// (Read alone, such a file cannot see CustomResourceDefinitions in other files, so a custom
/// kind's scope may be guessed wrong; such objects are still never pruned on.)
#[derive(Debug, Clone, Default)]
pub struct ManifestGenerator {
    options: crate::manifest::ManifestOptions,
}

impl ManifestGenerator {
    /// A generator with these reading options.
    pub fn new(options: crate::manifest::ManifestOptions) -> Self {
        ManifestGenerator { options }
    }
}

#[async_trait]
impl Generator for ManifestGenerator {
    async fn generate(&self, _revision: &Revision, files: &[SourceFile]) -> Generated {
        use crate::manifest::read_manifests;
        match read_manifests(files, &self.options) {
            Ok(manifests) => {
                Generated { objects: manifests.into_iter().map(|m| m.object).collect(), errors: Vec::new() }
            }
            Err(errors) => {
                let objects = files
                    .iter()
                    .filter_map(|f| read_manifests(std::slice::from_ref(f), &self.options).ok())
                    .flatten()
                    .map(|m| m.object)
                    .collect();
                Generated { objects, errors: errors.into_errors() }
            }
        }
    }
}
