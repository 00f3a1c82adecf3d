//! Kubernetes Leases (`coordination.k8s.io/v1`) in one namespace: the store behind
//! flux-daemon's high availability (its `LeaseStore` port; fluxd adapts this type to it).
//!
//! Every write is guarded by the Lease's `resourceVersion` (optimistic concurrency): a create
//! fails if the Lease exists, a change fails with [`Error::Conflict`] unless the Lease is still
//! at the version the caller saw, so two replicas writing from the same view never both win.
//! Lists are consistent reads (no `resourceVersion`: from etcd, not a cache). `renewTime` and
//! `leaseDurationSeconds` are written for people and tools (`kubectl get leases`); nothing here
//! reads a time back: whether a Lease expired is the caller's judgement, on its own clock.
//!
//! `kube-lease-manager` (0.13, on kube 5) was considered: it judges expiry from `renewTime`
//! against the local wall clock (safe only while clocks agree within its grace period), keeps
//! one Lease per manager, and does not say when a renewal was sent, which a write gate on the
//! holder's monotonic clock needs. These few requests are what flux-rs needs instead.

use std::collections::BTreeMap;
use std::time::Duration;

use flux_core::{Error, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::KubeCluster;
use crate::errors::kube_error;

/// The label on every Lease written here, and the selector of [`KubeLeases::list`].
pub const LEASE_LABEL: &str = "fluxcd.io/lease-group";

/// How long one request may take by default (the caller usually gives a shorter bound).
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// One Lease as listed or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Its name.
    pub name: String,
    /// `spec.holderIdentity`; `None` when released.
    pub holder: Option<String>,
    /// Its `resourceVersion`.
    pub version: String,
    /// Its `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// The Leases of one group (the label [`LEASE_LABEL`]) in one namespace.
#[derive(Clone)]
pub struct KubeLeases {
    api: Api<Lease>,
    namespace: String,
    group: String,
    timeout: Duration,
}

impl std::fmt::Debug for KubeLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeases").field("namespace", &self.namespace).field("group", &self.group).finish()
    }
}

impl KubeLeases {
    /// The Leases labelled `group` in `namespace`, over `cluster`'s client.
    pub fn new(cluster: &KubeCluster, namespace: &str, group: &str) -> Self {
        KubeLeases {
            api: Api::namespaced(cluster.client().clone(), namespace),
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            timeout: LEASE_TIMEOUT,
        }
    }

    /// Bounds every request by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn bounded<T>(&self, what: &str, call: impl Future<Output = kube::Result<T>>) -> Result<T> {
        let what = || format!("{what} in namespace {}", self.namespace);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer.map_err(|e| kube_error(&what(), e)),
            Err(_) => Err(Error::transient(format!("{}: no answer within {:?}", what(), self.timeout))),
        }
    }

    /// Every Lease of the group, sorted by name, read from etcd.
    ///
    /// # Errors
    /// The server's refusal (`Unauthorized` without RBAC for Leases), or `Transient`.
    pub async fn list(&self) -> Result<Vec<LeaseState>> {
        let params = ListParams::default().labels(&format!("{LEASE_LABEL}={}", self.group));
        let list = self.bounded("listing Leases", self.api.list(&params)).await?;
        let mut leases: Vec<LeaseState> = list.items.iter().filter_map(state).collect();
        leases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(leases)
    }

    /// Writes `holder` (`None`: released) into Lease `name`: creates it when `previous` is
    /// `None`, else changes it only if it is still at `previous`'s version. `duration` goes to
    /// `leaseDurationSeconds` (rounded up); `renewTime` is now, `acquireTime` too when the
    /// holder changes.
    ///
    /// # Errors
    /// [`Error::Conflict`] when it exists (create) or changed since `previous`; the server's
    /// refusal otherwise, or `Transient`.
    pub async fn write(
        &self,
        name: &str,
        previous: Option<&LeaseState>,
        holder: Option<&str>,
        duration: Duration,
    ) -> Result<LeaseState> {
        self.write_annotated(name, previous, holder, &BTreeMap::new(), duration).await
    }

    /// As [`KubeLeases::write`], and sets each of `annotations` (`None`: removes it) in the same
    /// guarded write; the Lease's other annotations are kept.
    ///
    /// # Errors
    /// As [`KubeLeases::write`].
    pub async fn write_annotated(
        &self,
        name: &str,
        previous: Option<&LeaseState>,
        holder: Option<&str>,
        annotations: &BTreeMap<String, Option<String>>,
        duration: Duration,
    ) -> Result<LeaseState> {
        let seconds = i32::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let what = format!("writing Lease {name}");
        let written = match previous {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        labels: Some([(LEASE_LABEL.to_owned(), self.group.clone())].into()),
                        annotations: Some(
                            annotations.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect(),
                        )
                        .filter(|a: &BTreeMap<String, String>| !a.is_empty()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: holder.map(str::to_owned),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: holder.map(|_| now.clone()),
                        renew_time: holder.map(|_| now.clone()),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.bounded(&what, self.api.create(&PostParams::default(), &lease)).await?
            }
            Some(previous) => {
                // A merge patch carrying metadata.resourceVersion is refused (409) unless the
                // Lease is still at that version.
                let mut spec = json!({
                    "holderIdentity": holder,
                    "leaseDurationSeconds": seconds,
                    "renewTime": holder.map(|_| &now),
                });
                if previous.holder.as_deref() != holder {
                    spec["acquireTime"] = json!(holder.map(|_| &now));
                }
                // In a merge patch, a null annotation removes it; absent ones are kept.
                let mut metadata =
                    json!({ "resourceVersion": previous.version, "labels": { LEASE_LABEL: self.group } });
                if !annotations.is_empty() {
                    metadata["annotations"] = json!(annotations);
                }
                let patch = json!({ "metadata": metadata, "spec": spec });
                self.bounded(&what, self.api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).await?
            }
        };
        state(&written).ok_or_else(|| Error::other(format!("{what}: the server's answer has no name or version")))
    }
}

/// A Lease's name, holder and version.
fn state(lease: &Lease) -> Option<LeaseState> {
    Some(LeaseState {
        name: lease.metadata.name.clone()?,
        holder: lease.spec.as_ref().and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty()),
        version: lease.metadata.resource_version.clone()?,
        annotations: lease.metadata.annotations.clone().unwrap_or_default(),
    })
}
