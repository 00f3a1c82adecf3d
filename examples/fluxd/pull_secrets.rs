//! Each workload's image pull secrets as registry views for automation.

use std::collections::BTreeMap;
use std::sync::Arc;

use flux_core::{KubeObject, Registry, RegistryView, ResourceId, WorkloadRegistries};
use flux_k8s::{KubeCluster, PullSecretCache};
use flux_registry::{Credential, OciRegistry, PullCredentials};

/// Wraps each view's registry (with metrics, in fluxd).
pub(crate) type Wrap = Arc<dyn Fn(Arc<dyn Registry>) -> Arc<dyn Registry> + Send + Sync>;

/// Each workload's image pull secrets (its pod spec's, then its service account's), read from
/// the cluster at every automation pass, listing and release (each Secret and service account
/// once per pass), as views of the registry: their credentials win over `--docker-config` for
/// the hosts they name, as in Flux v1. A workload whose secrets cannot be read is scanned
/// without them (logged), and meets the registry's refusal for its private images only.
pub(crate) struct PullSecrets {
    cluster: Arc<KubeCluster>,
    oci: Arc<OciRegistry>,
    wrap: Wrap,
}

impl PullSecrets {
    /// Reads secrets from `cluster`, views `oci` with them, and wraps each view with `wrap`.
    pub(crate) fn new(cluster: Arc<KubeCluster>, oci: Arc<OciRegistry>, wrap: Wrap) -> Self {
        PullSecrets { cluster, oci, wrap }
    }
}

#[async_trait::async_trait]
impl WorkloadRegistries for PullSecrets {
    async fn views(&self, workloads: &[&KubeObject]) -> BTreeMap<ResourceId, RegistryView> {
        let mut seen = PullSecretCache::default();
        let mut views = BTreeMap::new();
        for workload in workloads {
            let found = match self.cluster.pull_credentials_of(workload, &mut seen).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(workload = %workload.id(), error = %e, "image pull secrets unreadable; scanning without them");
                    continue;
                }
            };
            if found.is_empty() {
                continue;
            }
            let mut pull = PullCredentials::new();
            for credential in found.into_values() {
                pull.insert(&credential.registry, Credential::basic(credential.username, credential.password));
            }
            let view = self.oci.with_pull_credentials(&pull);
            let identities =
                pull.hosts().filter_map(|host| Some((host.to_owned(), view.identity(host)?.to_owned()))).collect();
            views.insert(workload.id().clone(), RegistryView { registry: (self.wrap)(Arc::new(view)), identities });
        }
        views
    }
}
