//! How a [`KubeCluster`](crate::KubeCluster) writes: field manager, conflicts, concurrency,
//! pruning, the namespaces it is restricted to, events.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::PropagationPolicy;

/// The annotation that allows an object whose update hits an immutable field (a Job's template,
/// a Deployment's selector, a Service's `clusterIP`) to be deleted and created again. Its value
/// must be `"true"`; without it such an update is reported as
/// [`ApplyOutcome::Failed`](flux_core::ApplyOutcome::Failed).
pub const RECREATE_ANNOTATION: &str = "fluxcd.io/recreate-on-immutable";

/// Options of a [`KubeCluster`](crate::KubeCluster). `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The server-side apply field manager (default `flux`).
    pub field_manager: String,
    /// Whether applies take over fields another manager owns (`force=true`; default `true`, as a
    /// GitOps tool's manifests are the source of truth). When `false`, a conflict fails the object.
    pub force_conflicts: bool,
    /// How many requests are in flight at once (default 16).
    pub concurrency: usize,
    /// How deletions propagate to dependents (default background).
    pub propagation: PropagationPolicy,
    /// When set, the only namespaces this handle lists and works in: an identity without
    /// cluster-wide rights works this way. Cluster-scoped kinds are still tried, and skipped when
    /// the identity may not list them.
    pub namespaces: Option<Vec<String>>,
    /// Record a Kubernetes Event on each object an apply created, configured or failed
    /// (default `false`: events are writes).
    pub record_events: bool,
    /// Keep, per sync unit, an inventory of the kinds its objects are of, so that
    /// [`managed`](flux_core::Cluster::managed) lists only those kinds (default `true`). It is a
    /// ConfigMap `flux-inventory-<unit>` in [`inventory_namespace`](Self::inventory_namespace),
    /// written before objects of a new kind are applied; see the crate documentation. Off, or
    /// when the identity may not read it, `managed` lists every kind the server serves.
    pub inventory: bool,
    /// The namespace of the inventories (default `None`: the client's default namespace, i.e.
    /// the kubeconfig context's or the Pod's own; the first of [`namespaces`](Self::namespaces)
    /// when the handle is restricted to others).
    pub inventory_namespace: Option<String>,
    /// A directory to keep the view of the API (discovery) in across restarts, one file per API
    /// server, as kubectl's `~/.kube/cache/discovery` (default `None`: discovery runs once per
    /// handle, at its first need). A handle made from a configuration (kubeconfig, in-cluster)
    /// uses it; [`KubeCluster::new`](crate::KubeCluster::new) on a bare client does not know the
    /// server's address and does not. An unknown kind still refreshes at once.
    pub discovery_cache_dir: Option<PathBuf>,
    /// How long one request may wait for the server's next bytes (default 60 s) on a handle
    /// made from a configuration (kubeconfig, in-cluster): a server that accepts and then never
    /// answers fails the request instead of holding the sync forever (kube's own default is no
    /// limit). [`KubeCluster::new`](crate::KubeCluster::new) keeps its client's settings.
    pub request_timeout: Duration,
    /// How long a view on disk is used (default 6 hours, kubectl's).
    pub discovery_cache_ttl: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            field_manager: "flux".to_owned(),
            force_conflicts: true,
            concurrency: 16,
            propagation: PropagationPolicy::Background,
            namespaces: None,
            record_events: false,
            inventory: true,
            inventory_namespace: None,
            discovery_cache_dir: None,
            discovery_cache_ttl: Duration::from_secs(6 * 3600),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl ClusterOptions {
    /// Restricts the handle to `namespaces`.
    pub fn restricted_to<S: Into<String>>(mut self, namespaces: impl IntoIterator<Item = S>) -> Self {
        self.namespaces = Some(namespaces.into_iter().map(Into::into).collect());
        self
    }
}
