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

use crate::discovery_cache::DiskCache;
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
pub(crate) struct Snapshot {
    /// Every served group version's kinds.
    pub(crate) kinds: BTreeMap<Key, Kind>,
    /// One version of every served kind of every group: what lists go through (see
    /// [`listed_versions`]).
    pub(crate) listed: Vec<Kind>,
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
    /// The view on disk, when the handle keeps one.
    disk: Option<DiskCache>,
}

/// Kinds that are listed by nothing: listing ComponentStatuses probes the control plane.
const NEVER_LISTED: [(&str, &str); 1] = [("", "componentstatuses")];

impl Kinds {
    pub(crate) fn new(client: Client, disk: Option<DiskCache>) -> Self {
        Kinds {
            client,
            snapshot: RwLock::new(None),
            refreshing: Mutex::new(()),
            generation: AtomicU64::new(0),
            legacy_only: AtomicBool::new(false),
            disk,
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

    /// One version of every served kind that can be listed, as [`listed_versions`] picks it.
    pub(crate) async fn listable(&self) -> Result<Vec<Kind>> {
        if self.snapshot.read().await.is_none() {
            self.refresh_after(self.generation()).await?;
        }
        let snapshot = self.snapshot.read().await;
        Ok(snapshot.as_ref().map(|s| s.listed.iter().filter(|k| k.listable).cloned().collect()).unwrap_or_default())
    }

    /// The listed version of the kind `kind` of API group `group` (as [`Kinds::listable`] picks
    /// it), refreshing the view once when the server is not known to serve it. `None` when it is
    /// not served (or not listable).
    pub(crate) async fn listed_kind(&self, group: &str, kind: &str) -> Result<Option<Kind>> {
        let find = |kinds: Vec<Kind>| {
            kinds.into_iter().find(|k| k.resource.group == group && k.resource.kind.eq_ignore_ascii_case(kind))
        };
        let seen = self.generation();
        if let Some(found) = find(self.listable().await?) {
            return Ok(Some(found));
        }
        self.refresh_after(seen).await?;
        Ok(find(self.listable().await?))
    }

    /// Refreshes the view unless another task already did since generation `seen`.
    /// The first view comes from the disk cache when it holds a fresh one; every later refresh
    /// (an unknown kind) asks the server and rewrites the cache.
    pub(crate) async fn refresh_after(&self, seen: u64) -> Result<()> {
        let _guard = self.refreshing.lock().await;
        let empty = self.snapshot.read().await.is_none();
        if self.generation() != seen && !empty {
            return Ok(());
        }
        let cached = match (&self.disk, empty) {
            (Some(disk), true) => disk.load(),
            _ => None,
        };
        let snapshot = match cached {
            Some((snapshot, legacy_only)) => {
                self.legacy_only.fetch_or(legacy_only, Ordering::AcqRel);
                snapshot
            }
            None => {
                let (discovery, partial) = self.discover().await?;
                let snapshot = snapshot_of(&discovery);
                // A view missing broken groups is not kept: the next start asks again.
                if let Some(disk) = self.disk.as_ref().filter(|_| !partial) {
                    disk.store(&snapshot, self.legacy_only.load(Ordering::Acquire));
                }
                snapshot
            }
        };
        *self.snapshot.write().await = Some(snapshot);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The server's view, and whether groups whose discovery failed were left out of it.
    async fn discover(&self) -> Result<(Discovery, bool)> {
        if !self.legacy_only.load(Ordering::Acquire) {
            // A server without aggregated discovery may answer the same URLs with the legacy
            // documents, which read as an empty aggregated list: no core group means legacy.
            match Discovery::new(self.client.clone()).run_aggregated().await {
                Ok(d) if d.has_group("") => return Ok((d, false)),
                Ok(_) => tracing::debug!("aggregated discovery unavailable (empty answer); using legacy discovery"),
                Err(e) => tracing::debug!(error = %e, "aggregated discovery unavailable; using legacy discovery"),
            }
            self.legacy_only.store(true, Ordering::Release);
        }
        let error = match Discovery::new(self.client.clone()).run().await {
            Ok(d) => return Ok((d, false)),
            Err(e) => e,
        };
        // One broken group (an aggregated API whose service is down, as metrics-server in an
        // outage) fails kube's whole discovery: leave out the groups that fail, as kubectl
        // does. Their kinds are unknown: objects of them fail by name, and none is listed, so
        // none is pruned.
        let broken = self.failing_groups().await;
        if broken.is_empty() {
            return Err(kube_error("API discovery", error));
        }
        tracing::warn!(groups = ?broken, %error, "API groups whose discovery fails are left out until the next refresh");
        let broken: Vec<&str> = broken.iter().map(String::as_str).collect();
        let discovery = Discovery::new(self.client.clone())
            .exclude(&broken)
            .run()
            .await
            .map_err(|e| kube_error("API discovery", e))?;
        Ok((discovery, true))
    }

    /// The API groups (under `/apis`) one of whose versions cannot be discovered.
    async fn failing_groups(&self) -> Vec<String> {
        let Ok(list) = self.client.list_api_groups().await else { return Vec::new() };
        let mut failing = Vec::new();
        for group in list.groups {
            for version in &group.versions {
                if self.client.list_api_group_resources(&version.group_version).await.is_err() {
                    failing.push(group.name.clone());
                    break;
                }
            }
        }
        failing
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
        let versions: Vec<(&str, Vec<(ApiResource, ApiCapabilities)>)> =
            group.versions().map(|v| (v, group.versioned_resources(v))).collect();
        snapshot.listed.extend(listed_versions(group.preferred_version(), versions).into_iter().map(kind));
    }
    snapshot
}

/// One version of each kind of a group: the preferred version's kinds, then each kind served
/// only in other versions at the first of them that serves it. `versions` come most stable and
/// newest first (kube sorts them so: `v1`, `v1beta2`, `v1beta1`, `v1alpha1`), so a kind absent
/// from the preferred version is listed in its newest stable-looking one; e.g. on Kubernetes
/// 1.20, CronJob in `batch/v1beta1` next to `batch/v1`'s Job. Listing each kind once keeps one
/// request per kind and each object seen once.
fn listed_versions<R>(
    preferred: Option<&str>,
    mut versions: Vec<(&str, Vec<(ApiResource, R)>)>,
) -> Vec<(ApiResource, R)> {
    if let Some(at) = versions.iter().position(|(v, _)| Some(*v) == preferred) {
        let first = versions.remove(at);
        versions.insert(0, first);
    }
    let mut kinds = std::collections::BTreeSet::new();
    let mut listed = Vec::new();
    for (_, resources) in versions {
        for (resource, extra) in resources {
            if kinds.insert(resource.kind.clone()) {
                listed.push((resource, extra));
            }
        }
    }
    listed
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(version: &str, kind: &str) -> (ApiResource, ()) {
        let resource = ApiResource {
            group: "batch".into(),
            version: version.into(),
            api_version: format!("batch/{version}"),
            kind: kind.into(),
            plural: format!("{}s", kind.to_ascii_lowercase()),
        };
        (resource, ())
    }

    fn listed(preferred: Option<&str>, versions: Vec<(&str, Vec<(ApiResource, ())>)>) -> Vec<String> {
        listed_versions(preferred, versions)
            .into_iter()
            .map(|(r, ())| format!("{}/{}", r.api_version, r.kind))
            .collect()
    }

    #[test]
    fn a_kind_missing_from_the_preferred_version_is_listed_where_it_is_served() {
        // Kubernetes 1.20's batch group.
        let versions = vec![
            ("v1", vec![resource("v1", "Job")]),
            ("v1beta1", vec![resource("v1beta1", "CronJob")]),
            ("v2alpha1", vec![resource("v2alpha1", "CronJob")]),
        ];
        assert_eq!(listed(Some("v1"), versions), ["batch/v1/Job", "batch/v1beta1/CronJob"]);
    }

    #[test]
    fn the_preferred_version_wins_for_kinds_it_serves() {
        // Kubernetes 1.21-1.24: CronJob in both; a group preferring a version that is not first.
        let versions = vec![
            ("v1", vec![resource("v1", "Job"), resource("v1", "CronJob")]),
            ("v1beta1", vec![resource("v1beta1", "CronJob")]),
        ];
        assert_eq!(listed(Some("v1"), versions.clone()), ["batch/v1/Job", "batch/v1/CronJob"]);
        assert_eq!(listed(Some("v1beta1"), versions.clone()), ["batch/v1beta1/CronJob", "batch/v1/Job"]);
        assert_eq!(listed(None, versions), ["batch/v1/Job", "batch/v1/CronJob"], "no preference: the first served");
    }
}
