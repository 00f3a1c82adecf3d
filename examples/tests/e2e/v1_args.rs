//! fluxd started with the exact arguments Flux v1's own manifests pass to its fluxd, and a
//! working sync from them: a migrating user's Deployment keeps working. Only the git URL, the
//! cluster's address (a kubeconfig: the test runs outside the cluster), the keygen directory
//! (`/var/fluxd/keygen` is the Pod's tmpfs) and the ports (tests run side by side) are replaced.

use std::process::Command;

use flux_testenv::free_port;
use flux_testenv::kube::ADMIN;

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, example_binary};

/// The `args:` of fluxcd/flux `chart/flux/templates/deployment.yaml` rendered with the defaults
/// of `chart/flux/values.yaml` (release `flux`; `git.url` set, as the chart requires).
const CHART_ARGS: &[&str] = &[
    "--ssh-keygen-dir=/var/fluxd/keygen",
    "--k8s-secret-name=flux-git-deploy",
    "--memcached-hostname=flux-memcached",
    "--memcached-service=",
    "--git-url=git@github.com:fluxcd/flux-get-started",
    "--git-branch=master",
    "--git-path=",
    "--git-user=Weave Flux",
    "--git-email=support@weave.works",
    "--git-set-author=false",
    "--git-poll-interval=5m",
    "--git-timeout=20s",
    "--sync-interval=5m",
    "--git-ci-skip=false",
    "--registry-poll-interval=5m",
    "--registry-rps=200",
    "--registry-burst=125",
    "--registry-trace=false",
];

/// The `args:` of fluxcd/flux `deploy/flux-deployment.yaml`.
const DEPLOY_ARGS: &[&str] = &[
    "--memcached-service=",
    "--ssh-keygen-dir=/var/fluxd/keygen",
    "--git-url=git@github.com:weaveworks/flux-get-started",
    "--git-branch=master",
    "--listen-metrics=:3031",
];

/// `args` with the test's git URL, keygen directory and metrics port; plus the kubeconfig and
/// the API's port.
fn adapted(servers: &Servers, args: &[&str], port: u16, metrics_port: u16) -> Vec<String> {
    let keygen = servers.work.path().join(format!("keygen-{port}"));
    std::fs::create_dir_all(&keygen).expect("keygen dir");
    let mut out: Vec<String> = args
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--git-url", _)) => format!("--git-url={}", servers.git_daemon.url()),
            Some(("--ssh-keygen-dir", _)) => format!("--ssh-keygen-dir={}", keygen.display()),
            Some(("--listen-metrics", _)) => format!("--listen-metrics=:{metrics_port}"),
            _ => (*arg).to_owned(),
        })
        .collect();
    out.push(format!("--kubeconfig={}", servers.kube.kubeconfig(ADMIN).display()));
    out.push(format!("--listen=127.0.0.1:{port}"));
    out
}

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata: {{a: b}}\n")
}

/// `GET http://127.0.0.1:{port}{path}` without a token: status and body.
async fn get(port: u16, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.expect("reach fluxd");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// Starts fluxd with `args`, waits for its first sync and checks it applied `name`, served
/// Flux v1's metrics on the API port (and on `metrics_port` when given), and logged the
/// memcached flags as ignored.
async fn synced_with(servers: &Servers, source: &str, args: &[&str], name: &str, metrics: bool) -> Fluxd {
    let (port, metrics_port) = (free_port(), free_port());
    let mut command = Command::new(example_binary("fluxd"));
    command.args(adapted(servers, args, port, metrics_port)).env("FLUX_API_TOKEN", TOKEN);
    let fluxd = Fluxd::spawn(servers, command, port);
    let mut ready = false;
    for _ in 0..PATIENCE.as_secs() * 2 {
        if get(port, "/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(ready, "fluxd with {source}'s arguments did not sync:\n{}", fluxd.log());
    assert!(servers.get("v1", &format!("default:configmap/{name}")).await.is_some(), "{source}: {name} not applied");
    let (status, status_body) = fluxd.get("/api/v1/status", Some(TOKEN)).await;
    assert_eq!(status, 200, "{status_body}");
    assert!(status_body.contains("\"success\":true"), "{source}: {status_body}");
    let mut ports = vec![port];
    if metrics {
        ports.push(metrics_port);
    }
    for p in ports {
        let (code, text) = get(p, "/metrics").await;
        assert_eq!(code, 200, "{source}: /metrics on port {p} (no token, as v1)");
        for family in [
            "flux_daemon_sync_duration_seconds_count{unit=\"default\",success=\"true\"}",
            "flux_daemon_sync_manifests{unit=\"default\",success=\"true\"}",
            "flux_daemon_job_duration_seconds_count{unit=\"default\",success=\"true\"}",
            "flux_daemon_queue_length_count{unit=\"default\"}",
            "flux_git_ready{unit=\"default\"} 1",
            "flux_syncs_total{unit=\"default\",outcome=\"success\"}",
        ] {
            assert!(text.contains(family), "{source}: {family} missing from /metrics on port {p}:\n{text}");
        }
    }
    let log = fluxd.log();
    assert!(
        log.contains("Flux v1 flag ignored") && log.contains("--memcached-service"),
        "{source}: the memcached flags are logged as ignored:\n{log}"
    );
    fluxd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxd_runs_and_syncs_with_flux_v1_chart_and_deploy_arguments() {
    let Some(servers) = Servers::start() else { return };
    servers.commit(&[("apps/from-v1.yaml", &config_map("from-v1"))], "a ConfigMap");
    // Flux v1's manifests sync `master`.
    servers.repo.git(&["branch", "master", "main"]);

    let chart = synced_with(&servers, "chart/flux", CHART_ARGS, "from-v1", false).await;
    chart.terminate();

    servers.commit(&[("apps/from-deploy.yaml", &config_map("from-deploy"))], "another");
    servers.repo.git(&["branch", "-f", "master", "main"]);
    let deploy = synced_with(&servers, "deploy/flux-deployment.yaml", DEPLOY_ARGS, "from-deploy", true).await;
    deploy.terminate();
}
