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
//! - [`managed`](flux_core::Cluster::managed): one GET of the unit's inventory, then one
//!   metadata-only list per kind it records (per allowed namespace when restricted), or per
//!   listable kind when there is no inventory; see [`managed`'s budget](crate#drift-and-the-request-budget).
//!   [`marked`](flux_core::Cluster::marked) is the same lists with the selector
//!   `fluxcd.io/sync-gc-mark` (the label exists): every unit's objects and Flux v1's.
//! - [`metadata`](flux_core::Cluster::metadata): per kind and namespace, one metadata-only list
//!   when 4 or more objects are asked about, else one metadata-only GET each (a forbidden list
//!   falls back to GETs), [`concurrency`](crate::ClusterOptions::concurrency) at a time.
//! - [`live`](flux_core::Cluster::live) (objects with their status, for health): per kind and
//!   namespace, one list when 4 or more objects are asked about, else one GET each; Secrets by
//!   a metadata look-up only (their data is never read).
//! - [`delete`](flux_core::Cluster::delete): one DELETE per object.
//! - [`workloads`](flux_core::Cluster::workloads): one list per workload kind.
//!
//! A no-op sync (nothing changed in git nor in the cluster) therefore costs the `managed` lists
//! and the GET of the unit's inventory, and no write: the sync engine applies only objects whose
//! checksum changed or that drifted.
//!
//! # One object, one result
//!
//! The server refusing one object's request (a 4xx, or a 500 it answers for a body it cannot
//! process, such as a quantity that is not one) is that object's `Failed`, with the server's
//! message; the others go on. Only refused credentials (401), rate limiting (429), an
//! unavailable server (502 and above, or no answer) and failed discovery end the call: what was
//! applied keeps its outcome, the rest is `Interrupted`, and no further request is sent.
//!
//! What is sent differs from the object in one way: every port without a `protocol` in a
//! Service's `spec.ports`, and in the `ports` of the containers and init containers of a Pod or
//! of a workload's pod template (ReplicationController, PodTemplate, Deployment, StatefulSet,
//! DaemonSet, ReplicaSet, Job, CronJob), gets `protocol: TCP`. That is Kubernetes' own default,
//! so the meaning is the same, but `protocol` is a key of those lists and server-side apply on
//! some servers (1.20 for Service ports) refuses a port without it. It is filled on every server
//! (all accept an explicit TCP); the sync engine's checksum is of the object as in git.
//!
//! # Drift and the request budget
//!
//! [`Cluster::managed`](flux_core::Cluster::managed) reads the unit's inventory (one GET; see
//! below), then makes one metadata-only list request
//! (`Accept: …;as=PartialObjectMetadataList`) per kind it records (per listable served kind
//! when the unit has no inventory), with
//! the label selector `fluxcd.io/sync-unit=<identity>,fluxcd.io/sync-gc-mark`; when the handle is
//! restricted to namespaces, one per namespaced kind per namespace (plus one per cluster-scoped kind, skipped
//! when forbidden). Lists of more than 500 objects are paged. No object is fetched: the checksum,
//! the annotations and the drift verdict all come from `metadata`. Each kind is listed once,
//! in its group's preferred version where that version serves it, else in the newest
//! stable-looking version that does (on 1.20, CronJob in `batch/v1beta1`, since `batch/v1` has
//! only Job): every kind that can be applied is seen by garbage collection and drift. Without an
//! inventory, on a bare Kubernetes 1.20 API server that is 49 lists (measured from its audit
//! log), run
//! [`concurrency`](crate::ClusterOptions::concurrency) at a time.
//!
//! ## The units' inventories
//!
//! One ConfigMap per sync unit, [`inventory_name`] in
//! [`ClusterOptions::inventory_namespace`], lists in its annotation [`KINDS_ANNOTATION`] the
//! kinds (`Kind` or `Kind.group`, comma-separated, as kubectl's ApplySet
//! `contains-group-kinds`) of which objects labelled with the unit may exist. An apply of a
//! kind not yet recorded first writes the record (one GET and one server-side apply with the
//! field manager `<field_manager>-inventory`, over the `resourceVersion` read, so a concurrent
//! writer is a conflict, read again); an object whose kind cannot be recorded in an existing
//! record is `Failed`. A record is made only from a listing of every kind (the first apply
//! after one); a kind is dropped, at the next write, once this handle's last listing of it
//! succeeded, found none of the unit's objects, and no apply of it ran since. Without a record
//! (or with [`ClusterOptions::inventory`] off, or an identity that may not read it), `managed`
//! lists every kind, as before.
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
mod client;
mod cluster;
mod credentials;
mod discovery;
mod discovery_cache;
mod errors;
mod events;
mod inventory;
mod lease;
mod list;
mod live;
mod lookup;
mod managed;
mod options;
mod request;
mod secrets;
mod target;
mod workloads;

pub use client::kube_client;
pub use cluster::KubeCluster;
pub use credentials::{PullSecretCache, RegistryCredential, docker_credentials};
pub use inventory::{KINDS_ANNOTATION, LEGACY_ANNOTATION, inventory_name};
pub use kube::api::PropagationPolicy;
pub use lease::{KubeLeases, LEASE_LABEL, LEASE_TIMEOUT, LeaseState};
pub use options::{ClusterOptions, RECREATE_ANNOTATION};
pub use secrets::{KubeSecret, SECRET_TIMEOUT, SecretValue};
