//! Reaching fluxd without `--url`, as Flux v1's fluxctl did: find the running fluxd pod in
//! `--k8s-fwd-ns` by `--k8s-fwd-labels` (then by `name in (flux,fluxd,weave-flux-agent)`) and
//! forward a local port to its port 3030 through the Kubernetes API (kube's port-forward over a
//! WebSocket). The API token, when none is given, is read from the `flux-api-token` Secret that
//! `fluxctl install` writes next to fluxd.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};

/// The port fluxd's API listens on in its pod.
const FLUXD_PORT: u16 = 3030;

/// The selectors tried after `--k8s-fwd-labels`, as Flux v1 tried them.
pub(crate) const FALLBACK_SELECTOR: &str = "name in (flux,fluxd,weave-flux-agent)";

/// A forwarded local port to fluxd; it lasts while this lives.
pub(crate) struct Forward {
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    /// The API token from the cluster, if the Secret was there and readable.
    pub(crate) token: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `k=v,k2=v2` as a label selector (sorted, as Flux v1 formatted it).
pub(crate) fn selector(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A client of the cluster of kubeconfig context `context` (the current one when `None`; in a
/// pod without kubeconfig, the pod's service account).
pub(crate) async fn client(context: Option<&str>) -> Result<kube::Client, String> {
    let config = match context {
        Some(context) => {
            let options = kube::config::KubeConfigOptions { context: Some(context.to_owned()), ..Default::default() };
            kube::Config::from_kubeconfig(&options).await.map_err(|e| e.to_string())
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    }
    .map_err(|e| format!("Could not load kubernetes configuration file: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("Could not create kubernetes client: {e}"))
}

/// The one running pod in `namespace` that `selectors` find, trying them in order as Flux v1 did:
/// a selector that finds none moves on to the next; one that finds several is an error.
pub(crate) async fn find_pod(client: &kube::Client, namespace: &str, selectors: &[String]) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for selector in selectors {
        let params = ListParams::default().labels(selector).fields("status.phase=Running");
        let list = pods.list(&params).await.map_err(|e| format!("Listing pods in kubernetes: {e}"))?;
        let mut names = list.items.into_iter().filter_map(|p| p.metadata.name);
        match (names.next(), names.next()) {
            (Some(name), None) => return Ok(name),
            (Some(_), Some(_)) => {
                return Err(format!("Ambiguous pod: found more than one pod for selector: labels \"{selector}\""));
            }
            (None, _) => {}
        }
    }
    Err(format!(
        "No pod found in namespace {namespace:?} using the following selectors: {}. Make sure Flux is running in \
         namespace {namespace:?}; if it runs in another namespace, give it with --k8s-fwd-ns",
        selectors.join("; ")
    ))
}

/// The API token in Secret `flux-api-token` (key `token`) of `namespace`, if it is readable.
async fn cluster_token(client: &kube::Client, namespace: &str) -> Option<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt("flux-api-token").await.ok()??;
    let bytes = secret.data?.remove("token")?.0;
    let token = String::from_utf8(bytes).ok()?.trim().to_owned();
    (!token.is_empty()).then_some(token)
}

/// Finds fluxd's pod and forwards a local port to it, all within `timeout`.
pub(crate) async fn start(
    context: Option<&str>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<Forward, String> {
    let work = async {
        let client = client(context).await?;
        let selectors = [selector(labels), FALLBACK_SELECTOR.to_owned()];
        let pod = find_pod(&client, namespace, &selectors).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        // One forward now, so that a pod that cannot be reached is an error here, not a
        // confusing failure of the first request.
        let first = pods
            .portforward(&pod, &[FLUXD_PORT])
            .await
            .map_err(|e| format!("Could not create port forward to pod {namespace}/{pod}: {e}"))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("Could not find a port to bind to: {e}"))?;
        let port = listener.local_addr().map_err(|e| format!("Could not find a port to bind to: {e}"))?.port();
        let token = cluster_token(&client, namespace).await;
        let task = tokio::spawn(serve(listener, pods, pod, first));
        Ok(Forward { url: format!("http://127.0.0.1:{port}"), token, task })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no port forward to fluxd in namespace {namespace:?} after {timeout:?}"))?
}

/// Forwards each connection to `listener` to the pod, the first through `first`.
async fn serve(listener: tokio::net::TcpListener, pods: Api<Pod>, pod: String, first: kube::api::Portforwarder) {
    let mut ready = Some(first);
    while let Ok((mut local, _)) = listener.accept().await {
        let forwarder = match ready.take() {
            Some(f) => Ok(f),
            None => pods.portforward(&pod, &[FLUXD_PORT]).await,
        };
        let Ok(mut forwarder) = forwarder else { continue };
        tokio::spawn(async move {
            if let Some(mut remote) = forwarder.take_stream(FLUXD_PORT) {
                let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
            }
            let _ = forwarder.join().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_written_as_flux_v1_wrote_them() {
        let labels = BTreeMap::from([("app".to_owned(), "flux".to_owned()), ("tier".to_owned(), "ops".to_owned())]);
        assert_eq!(selector(&labels), "app=flux,tier=ops");
    }
}
