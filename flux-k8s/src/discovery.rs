//! What kinds the API server serves, refreshed when an unknown kind shows up.
//!
//! Aggregated discovery (2 requests) is used where the server offers it (Kubernetes >= 1.26);
//! older servers get legacy discovery (one request per group version), and the handle remembers
//! which one worked so a 1.20 server is not asked for aggregated discovery again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flux_core::Result;
use kube::Client;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use tokio::sync::{Mutex, RwLock};

use crate::errors::kube_error;

/// A served kind: how to address it and what it supports.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub(crate) resource: ApiResource,
    pub(crate) namespaced: bool,
    pub(crate) listable: bool,
}

/// (group, version, kind lower-cased).
type Key = (String, String, String);

#[derive(Default)]
struct Snapshot {
    /// Every served group version's kinds.
    kinds: BTreeMap<Key, Kind>,
    /// One version per kind (the group's preferred one): what lists go through.
    preferred: Vec<Kind>,
}

/// The handle's view of the API, shared by its tasks.
pub(crate) struct Kinds {
    client: Client,
    snapshot: RwLock<Option<Snapshot>>,
    /// Serialises refreshes, so a burst of unknown kinds refreshes once.
    refreshing: Mutex<()>,
    /// Bumped by each refresh.
    generation: AtomicU64,
    /// Set once aggregated discovery failed: the server is too old for it.
    legacy_only: AtomicBool,
}

/// Kinds that are listed by nothing: listing ComponentStatuses probes the control plane.
const NEVER_LISTED: [(&str, &str); 1] = [("", "componentstatuses")];

impl Kinds {
    pub(crate) fn new(client: Client) -> Self {
        Kinds {
            client,
            snapshot: RwLock::new(None),
            refreshing: Mutex::new(()),
            generation: AtomicU64::new(0),
            legacy_only: AtomicBool::new(false),
        }
    }

    /// The generation of the view, to refresh only once per caller's need.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The kind `kind` of `api_version` (compared case-insensitively), discovering first if needed.
    pub(crate) async fn lookup(&self, api_version: &str, kind: &str) -> Result<Option<Kind>> {
        if self.snapshot.read().await.is_none() {
            self.refresh_after(self.generation()).await?;
        }
        let (group, version) = split_api_version(api_version);
        let key = (group.to_owned(), version.to_owned(), kind.to_ascii_lowercase());
        Ok(self.snapshot.read().await.as_ref().and_then(|s| s.kinds.get(&key).cloned()))
    }

    /// The kind, refreshing the view once if it is not known (a CRD may just have been applied).
    pub(crate) async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Kind>> {
        let seen = self.generation();
        if let Some(found) = self.lookup(api_version, kind).await? {
            return Ok(Some(found));
        }
        self.refresh_after(seen).await?;
        self.lookup(api_version, kind).await
    }

    /// One version of every kind that can be listed.
    pub(crate) async fn listable(&self) -> Result<Vec<Kind>> {
        if self.snapshot.read().await.is_none() {
            self.refresh_after(self.generation()).await?;
        }
        let snapshot = self.snapshot.read().await;
        Ok(snapshot.as_ref().map(|s| s.preferred.iter().filter(|k| k.listable).cloned().collect()).unwrap_or_default())
    }

    /// Refreshes the view unless another task already did since generation `seen`.
    pub(crate) async fn refresh_after(&self, seen: u64) -> Result<()> {
        let _guard = self.refreshing.lock().await;
        if self.generation() != seen && self.snapshot.read().await.is_some() {
            return Ok(());
        }
        let discovery = self.discover().await?;
        *self.snapshot.write().await = Some(snapshot_of(&discovery));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    async fn discover(&self) -> Result<Discovery> {
        if !self.legacy_only.load(Ordering::Acquire) {
            // A server without aggregated discovery may answer the same URLs with the legacy
            // documents, which read as an empty aggregated list: no core group means legacy.
            match Discovery::new(self.client.clone()).run_aggregated().await {
                Ok(d) if d.has_group("") => return Ok(d),
                Ok(_) => tracing::debug!("aggregated discovery unavailable (empty answer); using legacy discovery"),
                Err(e) => tracing::debug!(error = %e, "aggregated discovery unavailable; using legacy discovery"),
            }
            self.legacy_only.store(true, Ordering::Release);
        }
        Discovery::new(self.client.clone()).run().await.map_err(|e| kube_error("API discovery", e))
    }
}

fn snapshot_of(discovery: &Discovery) -> Snapshot {
    let kind = |(resource, caps): (ApiResource, ApiCapabilities)| {
        let listable = caps.supports_operation(verbs::LIST)
            && !NEVER_LISTED.iter().any(|(g, p)| *g == resource.group && *p == resource.plural);
        Kind { namespaced: caps.scope == Scope::Namespaced, listable, resource }
    };
    let mut snapshot = Snapshot::default();
    for group in discovery.groups() {
        for version in group.versions() {
            for found in group.versioned_resources(version).into_iter().map(kind) {
                let r = &found.resource;
                snapshot.kinds.insert((r.group.clone(), r.version.clone(), r.kind.to_ascii_lowercase()), found);
            }
        }
        snapshot.preferred.extend(group.recommended_resources().into_iter().map(kind));
    }
    snapshot
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}
