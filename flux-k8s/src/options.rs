//! How a [`KubeCluster`](crate::KubeCluster) writes: field manager, conflicts, concurrency,
//! pruning, the namespaces it is restricted to, events.

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
