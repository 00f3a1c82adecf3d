//! fluxd's per-workload pull secrets, all real: a TLS `docker-registry` with htpasswd reached
//! only through a workload's `imagePullSecrets` or its service account's (dockerconfigjson
//! Secrets in a real kube-apiserver), the automation engine over a git repository, and fluxd's
//! own wiring (`fluxd/pull_secrets.rs`).

#![allow(dead_code, unreachable_pub)]

#[path = "../fluxd/pull_secrets.rs"]
mod pull_secrets;

use std::io::Write;
use std::sync::{Arc, Mutex};

use flux_core::automation::{AutomationConfig, AutomationEngine};
use flux_core::{Cluster, KubeObject, Registry, ResourceId, WriteOptions};
use flux_git::{GitConfig, GitSource};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_registry::{DockerConfig, OciRegistry, RegistryConfig};
use flux_testenv::git::BareRepo;
use flux_testenv::kube::ADMIN;
use flux_testenv::{KubeApiServer, TestRegistry};
use serde_json::json;

const USER: &str = "robot";
const PASSWORD: &str = "pull-s3cret-Xq9";

/// Everything logged, in memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn object(value: serde_json::Value) -> KubeObject {
    KubeObject::from_value(value, None).expect("a valid object")
}

/// Standard base64, as Secrets' data is.
fn b64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' };
            out.push(c);
        }
    }
    out
}

fn pull_secret(name: &str, host: &str, password: &str) -> KubeObject {
    let config = json!({"auths": {host: {"auth": b64(&format!("{USER}:{password}"))}}}).to_string();
    object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "team"},
        "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64(&config)}}))
}

fn deployment(name: &str, image: &str, pod: serde_json::Value) -> String {
    let mut spec = json!({"containers": [{"name": "app", "image": image}]});
    spec.as_object_mut().expect("an object").extend(pod.as_object().cloned().unwrap_or_default());
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "team",
            "annotations": {"fluxcd.io/automated": "true", "fluxcd.io/tag.app": "semver:~1"}},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_images_are_scanned_with_each_workloads_own_pull_secrets_only() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let Some(kube) = KubeApiServer::start() else { return };
    let Some(registry) = TestRegistry::start_tls(USER, PASSWORD) else { return };
    let Some(repo) = BareRepo::new() else { return };
    let host = registry.host().to_owned();
    let image = format!("{host}/team/app");
    for tag in ["1.0.0", "1.1.0"] {
        registry.pusher().push_image(&format!("{image}:{tag}"), Some("2024-01-01T00:00:00Z")).await.expect("push");
    }

    // The cluster: two pull secrets, a service account with one of them, the default without.
    let cluster = Arc::new(
        KubeCluster::from_kubeconfig(&kube.kubeconfig(ADMIN), ClusterOptions::default()).await.expect("a client"),
    );
    let namespace = object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}));
    cluster.apply(&[namespace], WriteOptions::default()).await.expect("namespace");
    let account = object(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "puller", "namespace": "team"}, "imagePullSecrets": [{"name": "account-cred"}]}));
    let objects = [pull_secret("own-cred", &host, PASSWORD), pull_secret("account-cred", &host, PASSWORD), account];
    let applied = cluster.apply(&objects, WriteOptions::default()).await.expect("apply");
    assert!(applied.iter().all(|r| !matches!(r.outcome, flux_core::ApplyOutcome::Failed { .. })), "{applied:?}");

    // Git: three automated workloads on the private image.
    let old = format!("{image}:1.0.0");
    let own = deployment("own", &old, json!({"imagePullSecrets": [{"name": "own-cred"}]}));
    let via_account = deployment("via-account", &old, json!({"serviceAccountName": "puller"}));
    let without = deployment("without", &old, json!({}));
    repo.commit_files(
        &[
            ("deploy/own.yaml", own.as_bytes()),
            ("deploy/via-account.yaml", via_account.as_bytes()),
            ("deploy/without.yaml", without.as_bytes()),
        ],
        "workloads",
    );

    let ca = registry.ca_pem().expect("a TLS registry has a CA").to_owned();
    let config =
        RegistryConfig { ca_bundles: vec![ca], docker_config: DockerConfig::Disabled, ..RegistryConfig::default() };
    let oci = Arc::new(OciRegistry::new(config).expect("a registry client"));
    let views = Arc::new(pull_secrets::PullSecrets::new(cluster.clone(), oci.clone(), Arc::new(|r| r)));
    let source = Arc::new(GitSource::open(GitConfig::new(repo.file_url(), "main")).expect("git"));
    let automation_config = AutomationConfig { paths: vec!["deploy".into()], ..AutomationConfig::default() };
    let registry_port: Arc<dyn Registry> = oci.clone();
    let generator = Arc::new(flux_core::generate::ManifestGenerator::new(Default::default()));
    let engine =
        AutomationEngine::new(source, registry_port, generator, automation_config).with_workload_registries(views);

    // The listing: the workloads with credentials see the tags, the one without is refused.
    let images = engine.images(None).await.expect("list images");
    let container = |name: &str| {
        let id: ResourceId = format!("team:deployment/{name}").parse().expect("an id");
        images.iter().find(|w| w.workload == id).and_then(|w| w.containers.first()).cloned().expect("listed")
    };
    for name in ["own", "via-account"] {
        let c = container(name);
        let tags: Vec<&str> = c.available.iter().map(|t| t.tag.as_str()).collect();
        assert!(tags.contains(&"1.1.0") && c.error.is_none(), "{name}: {c:?}");
    }
    let refused = container("without");
    assert!(refused.available.is_empty(), "the cache must not serve private tags: {refused:?}");
    let error = refused.error.expect("an error for the image");
    assert!(error.contains("unauthorized") || error.contains("refused"), "{error}");

    // Automation: the two with credentials move to 1.1.0, the one without stays, with its error.
    let report = engine.automate().await.expect("an automation pass");
    let mut moved: Vec<String> = report.changes.iter().map(|c| c.workload.to_string()).collect();
    moved.sort();
    assert_eq!(moved, ["team:deployment/own", "team:deployment/via-account"], "{report:?}");
    assert!(report.changes.iter().all(|c| c.to.tag() == Some("1.1.0")));
    assert!(
        report.registry_errors.iter().any(|f| f.repository.to_string() == image),
        "the workload without credentials gets an error for that image: {:?}",
        report.registry_errors
    );
    assert!(repo.git(&["show", "HEAD:deploy/without.yaml"]).contains("1.0.0"));
    assert!(repo.git(&["show", "HEAD:deploy/own.yaml"]).contains("1.1.0"));

    // A Secret that changes is read again at the next pass: with a wrong password, refused.
    let wrong = pull_secret("own-cred", &host, "wrong-password");
    cluster.apply(&[wrong], WriteOptions::default()).await.expect("update the secret");
    let images = engine.images(None).await.expect("list images");
    let own_now = images.iter().find(|w| w.workload.to_string() == "team:deployment/own").expect("listed");
    assert!(own_now.containers[0].error.is_some(), "the changed secret is used: {:?}", own_now.containers[0]);

    let logged =
        String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned();
    assert!(!logged.is_empty(), "logs were captured");
    assert!(!logged.contains(PASSWORD), "a password was logged");
    assert!(!format!("{report:?}{images:?}").contains(PASSWORD));
}
