//! [`KubeCluster`]: flux-core's [`Cluster`] on a Kubernetes API server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flux_core::{
    ApplyResult, Cluster, DeleteResult, Error, KubeObject, LiveObject, Lookup, ManagedObject, ObjectRef, ResourceId,
    Result, SyncIdentity, Workload, WriteOptions,
};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::discovery::Kinds;
use crate::discovery_cache::DiskCache;
use crate::inventory::Inventories;
use crate::options::ClusterOptions;

/// A Kubernetes cluster reached through its API server.
///
/// Objects of any kind are written with server-side apply under one field manager; see the
/// crate documentation for how it detects drift and what each call costs in requests. Clones
/// share the connection, the view of the API and what the handle remembers of its applies.
#[derive(Clone)]
pub struct KubeCluster {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by a handle's clones and tasks.
pub(crate) struct Shared {
    pub(crate) client: Client,
    /// The view of the server's kinds, shared with [`KubeCluster::sibling`] handles.
    pub(crate) kinds: Arc<Kinds>,
    pub(crate) options: ClusterOptions,
    /// The `resourceVersion` each object had right after this handle last applied it, by API
    /// group and id: a match means nobody wrote the object since.
    pub(crate) applied: Versions,
    /// The latest `resourceVersion` this handle saw of each object (listed or applied): an apply
    /// that leaves it as it was wrote nothing.
    pub(crate) seen: Versions,
    /// What the handle knows of the units' inventories.
    pub(crate) inventories: Inventories,
}

/// resourceVersions by API group and object id.
#[derive(Default)]
pub(crate) struct Versions(Mutex<HashMap<(String, ResourceId), String>>);

impl Versions {
    /// Records (or forgets, with `None`) an object's version; returns the previous one.
    pub(crate) fn set(&self, group: &str, id: &ResourceId, version: Option<String>) -> Option<String> {
        let mut versions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (group.to_owned(), id.clone());
        match version {
            Some(v) => versions.insert(key, v),
            None => versions.remove(&key),
        }
    }

    /// An object's recorded version.
    pub(crate) fn get(&self, group: &str, id: &ResourceId) -> Option<String> {
        let versions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        versions.get(&(group.to_owned(), id.clone())).cloned()
    }
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds credentials: show only where it points.
        f.debug_struct("KubeCluster")
            .field("field_manager", &self.shared.options.field_manager)
            .field("namespaces", &self.shared.options.namespaces)
            .finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// A handle on `client`.
    pub fn new(client: Client, options: ClusterOptions) -> Self {
        Self::at(client, None, options)
    }

    /// A handle on `client`, which talks to the API server at `server` (its URL, the discovery
    /// cache's key).
    fn at(client: Client, server: Option<&str>, options: ClusterOptions) -> Self {
        let options = ClusterOptions { concurrency: options.concurrency.max(1), ..options };
        let disk = match (&options.discovery_cache_dir, server) {
            (Some(dir), Some(server)) => Some(DiskCache::new(dir, server, options.discovery_cache_ttl)),
            _ => None,
        };
        let shared = Shared {
            kinds: Arc::new(Kinds::new(client.clone(), disk)),
            client,
            options,
            applied: Versions::default(),
            seen: Versions::default(),
            inventories: Inventories::default(),
        };
        KubeCluster { shared: Arc::new(shared) }
    }

    /// A handle from the kubeconfig at `path` (its current context).
    pub async fn from_kubeconfig(path: &Path, options: ClusterOptions) -> Result<Self> {
        let at = path.display().to_string();
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| Error::invalid(flux_core::Location::file(&at), format!("cannot read kubeconfig: {e}")))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::invalid(flux_core::Location::file(&at), format!("invalid kubeconfig: {e}")))?;
        Self::from_config(config, options)
    }

    /// A handle from the environment: the kubeconfig `KUBECONFIG` names (or `~/.kube/config`),
    /// else the in-cluster service account.
    pub async fn infer(options: ClusterOptions) -> Result<Self> {
        let config =
            kube::Config::infer().await.map_err(|e| Error::other_with("no Kubernetes configuration found", e))?;
        Self::from_config(config, options)
    }

    /// A handle from the in-cluster service account (a Pod's token and CA).
    pub fn in_cluster(options: ClusterOptions) -> Result<Self> {
        let config = kube::Config::incluster().map_err(|e| Error::other_with("not running in a cluster", e))?;
        Self::from_config(config, options)
    }

    fn from_config(mut config: kube::Config, options: ClusterOptions) -> Result<Self> {
        // Counted from when each request is sent, not from when its pooled connection went idle.
        config.read_timeout = Some(options.request_timeout);
        // A server that accepts connections and never shakes hands (a frozen process) is held
        // to the same bound, not kube's 30 s per connection attempt.
        config.connect_timeout =
            Some(config.connect_timeout.map_or(options.request_timeout, |c| c.min(options.request_timeout)));
        config.reset_reader_on_write = true;
        // Throttling is retried a bounded number of times in `request` (kube's layer would
        // hold one request for minutes in a 429 storm).
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        let client = crate::client::kube_client(config)?;
        Ok(Self::at(client, Some(&server), options))
    }

    /// Another handle on the same API server through the same client (one connection pool) and
    /// the same view of its kinds (one discovery, one discovery cache), with `options` and its
    /// own records of applies and inventories: what the sync units of one process on one cluster
    /// share, so that a thousand units do not open a thousand connection pools. The client's
    /// timeouts and the discovery cache stay this handle's (`request_timeout`,
    /// `discovery_cache_dir` and `discovery_cache_ttl` of `options` are not used for them).
    pub fn sibling(&self, options: ClusterOptions) -> Self {
        let options = ClusterOptions { concurrency: options.concurrency.max(1), ..options };
        let shared = Shared {
            client: self.shared.client.clone(),
            kinds: self.shared.kinds.clone(),
            options,
            applied: Versions::default(),
            seen: Versions::default(),
            inventories: Inventories::default(),
        };
        KubeCluster { shared: Arc::new(shared) }
    }

    /// The client, for requests of the embedder's own.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The options in force.
    pub fn options(&self) -> &ClusterOptions {
        &self.shared.options
    }
}

#[async_trait]
impl Cluster for KubeCluster {
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> Result<Vec<ApplyResult>> {
        let results = self.shared.apply_all(objects, options.dry_run).await;
        if self.shared.options.record_events && !options.dry_run {
            self.shared.record_events(objects, &results).await;
        }
        Ok(results)
    }

    async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        self.shared.managed(identity).await
    }

    async fn marked(&self) -> Result<Vec<ManagedObject>> {
        self.shared.marked().await
    }

    async fn legacy_marked(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        self.shared.legacy_marked(identity).await
    }

    async fn metadata(&self, references: &[ObjectRef]) -> Result<Vec<Lookup>> {
        self.shared.metadata(references).await
    }

    async fn get(&self, reference: &ObjectRef) -> Result<Option<KubeObject>> {
        self.shared.get(reference).await
    }

    async fn preview_apply(&self, object: &KubeObject) -> Result<flux_core::cluster::Preview> {
        self.shared.preview(object).await
    }

    async fn live(&self, references: &[ObjectRef]) -> Result<Vec<LiveObject>> {
        self.shared.live(references).await
    }

    async fn delete(&self, objects: &[ObjectRef], options: WriteOptions) -> Result<Vec<DeleteResult>> {
        self.shared.delete_all(objects, options.dry_run).await
    }

    async fn workloads<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<Workload>> {
        self.shared.workloads(namespace).await
    }
}
