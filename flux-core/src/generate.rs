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
