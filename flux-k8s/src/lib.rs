//! The Kubernetes [`Cluster`](flux_core::Cluster) adapter of flux-rs, on [kube].
//!
//! [`KubeCluster`] applies objects of any kind, built-in or custom, with server-side apply under
//! one field manager (`flux` by default), lists the objects of a sync identity and tells which
//! drifted from their metadata alone, prunes precisely, and reads workloads with their images,
//! rollout status and registry credentials. It works with a least-privilege identity: restricted
//! to a set of namespaces ([`ClusterOptions::namespaces`]), it lists only there and skips kinds it
//! may not list.
//!
//! It speaks to Kubernetes from 1.20 (legacy discovery) to current versions (aggregated
//! discovery where offered), and refreshes its view of the API when an unknown kind appears or a
//! CustomResourceDefinition was just applied (after waiting for it to be Established).
//!
//! # Requests
//!
//! - [`apply`](flux_core::Cluster::apply): one server-side apply PATCH per object (201 tells
//!   `Created`; `Unchanged` versus `Configured` comes from the resourceVersion and our field
//!   manager's `managedFields` time in the response, so no GET is needed). Dry runs also GET the
//!   object to compare. A CRD adds GETs until it is Established and one discovery refresh.
//! - [`managed`](flux_core::Cluster::managed): one metadata-only list per listable kind (per
//!   allowed namespace when restricted); see [`managed`'s budget](crate#drift-and-the-request-budget).
//! - [`delete`](flux_core::Cluster::delete): one DELETE per object.
//! - [`workloads`](flux_core::Cluster::workloads): one list per workload kind.
//!
//! A no-op sync (nothing changed in git nor in the cluster) therefore costs the `managed` lists
//! and no write: the sync engine applies only objects whose checksum changed or that drifted.
//!
//! # Drift and the request budget
//!
//! [`Cluster::managed`](flux_core::Cluster::managed) makes one metadata-only list request
//! (`Accept: …;as=PartialObjectMetadataList`) per listable kind in its preferred version, with
//! the label selector `fluxcd.io/sync-gc-mark=<identity>`; when the handle is restricted to
//! namespaces, one per namespaced kind per namespace (plus one per cluster-scoped kind, skipped
//! when forbidden). Lists of more than 500 objects are paged. No object is fetched: the checksum,
//! the annotations and the drift verdict all come from `metadata`. On a bare Kubernetes
//! 1.20 API server that is 48 lists (measured from its audit log), run
//! [`concurrency`](crate::ClusterOptions::concurrency) at a time.
//!
//! ## Drift
//!
//! An object drifted when someone other than our field manager wrote a field of it, other than
//! `status`, after our last apply. `metadata.managedFields` records, per manager and operation,
//! the fields it wrote and when it last changed them:
//!
//! - if the object's `resourceVersion` is the one this handle's last apply left, nobody wrote it
//!   since: not drifted (this is also how a successful apply clears the flag);
//! - otherwise, it drifted when another manager's entry (an `Update` or `Apply`) dated at or after
//!   our own `Apply` entry touches fields outside `status`. Labels and annotations under the
//!   Kubernetes prefixes (`kubernetes.io/`, `k8s.io/`) are controllers' bookkeeping (e.g. a
//!   Deployment's revision) and do not count. An object with no `Apply` entry of ours was
//!   applied by someone else: drifted, so the next sync takes it over.
//!
//! Timestamps have whole seconds, so a write in the same second as our apply counts as drift;
//! the re-apply that follows is cheap and clears it.

mod apply;
mod cluster;
mod credentials;
mod discovery;
mod errors;
mod events;
mod list;
mod managed;
mod options;
mod request;
mod target;
mod workloads;

pub use cluster::KubeCluster;
pub use credentials::{RegistryCredential, docker_credentials};
pub use kube::api::PropagationPolicy;
pub use options::{ClusterOptions, RECREATE_ANNOTATION};
