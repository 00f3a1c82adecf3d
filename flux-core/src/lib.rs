//! The core of a GitOps library in the spirit of Flux v1: the domain model, the four ports an
//! engine talks through, in-memory adapters and the conformance suites every adapter runs.
//!
//! # The ports
//!
//! | port | what it is | real adapter |
//! |---|---|---|
//! | [`Source`] | revisions of files: the desired state | `flux-git` (gix) |
//! | [`Registry`] | image repositories, tags, image metadata | `flux-registry` (oci-client) |
//! | [`Cluster`] | where objects run | `flux-k8s` (kube) |
//! | [`PolicyStore`] | automated / locked / tag filters per workload | annotations in git |
//!
//! Each trait's rustdoc is its contract. The engines hold ports as `Arc<dyn Port>`, so an
//! embedder can plug in an adapter of its own; [`testkit`] (feature `testkit`) checks an adapter
//! against the contract, and the `mock` feature provides mockall mocks (`MockSource`, …) for
//! unit tests that inject faults.
//!
//! Between a revision's files and the objects the sync engine applies sits a
//! [`Generator`](generate::Generator) (`generate`): [`ManifestGenerator`](generate::ManifestGenerator)
//! reads plain manifests; `flux-generate`'s `RepoGenerator` adds Kustomize apps and Flux v1
//! `.flux.yaml` commands. The same generator writes automation's and policies' edits back.
//!
//! This crate does no I/O of its own.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use flux_core::{Cluster, KubeObject, WriteOptions, ApplyOutcome, memory::MemoryCluster};
//!
//! # tokio_test_block_on(async {
//! let cluster: Arc<dyn Cluster> = Arc::new(MemoryCluster::new());
//! let cm = KubeObject::from_value(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "settings", "namespace": "default"},
//!     "data": {"colour": "blue"}
//! }), None)?;
//! let results = cluster.apply(&[cm.clone()], WriteOptions::default()).await?;
//! assert_eq!(results[0].outcome, ApplyOutcome::Created);
//! let again = cluster.apply(&[cm], WriteOptions::default()).await?;
//! assert_eq!(again[0].outcome, ApplyOutcome::Unchanged);
//! # Ok::<(), flux_core::Error>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

pub mod automation;
pub mod cluster;
pub mod diff;
pub mod error;
pub mod generate;
pub mod health;
pub mod image;
pub mod kinds;
pub mod manifest;
pub mod memory;
pub mod object;
pub mod policy;
pub mod registry;
pub mod resource;
pub mod source;
pub mod sync;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod workload;

/// Locks a mutex, taking the data even if a thread panicked holding it: every critical section
/// in this crate leaves its data consistent before anything can panic.
pub(crate) fn memory_lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use cluster::{
    ApplyOutcome, ApplyResult, Cluster, Container, DeleteOutcome, DeleteResult, LiveObject, Lookup, ManagedObject,
    ObjectMetadata, ObjectRef, SyncIdentity, Workload, WorkloadStatus, WriteOptions,
};
pub use error::{Error, Location, Result, SharedError};
pub use image::{ImageRef, ImageRepo};
pub use object::KubeObject;
pub use policy::{ChangeCause, Lock, Policies, PolicyChange, PolicyDiff, PolicyStore, PolicyUpdate, TagFilter};
pub use registry::{ImageInfo, Platform, Registry, RegistryView, WorkloadRegistries};
pub use resource::ResourceId;
pub use source::{Author, CommitRequest, FileChange, Revision, Source, SourceFile};

#[cfg(any(test, feature = "mock"))]
pub use cluster::MockCluster;
#[cfg(any(test, feature = "mock"))]
pub use policy::MockPolicyStore;
#[cfg(any(test, feature = "mock"))]
pub use registry::MockRegistry;
#[cfg(any(test, feature = "mock"))]
pub use source::MockSource;
