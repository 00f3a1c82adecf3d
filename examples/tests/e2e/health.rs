//! Health-gated units (issue 22) with the real fluxd against a real kube-apiserver, where no
//! controller runs: the test plays the Deployment controller by writing `status` through the
//! status subresource. A unit is applied only after the unit it depends on is Available (the
//! audit log's order, twenty rounds in a row); a dependency that never becomes healthy fails
//! within its timeout naming the Deployment while its dependent applies and prunes nothing;
//! cycles and unknown dependencies are refused at start; a suspension survives a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_testenv::free_port;
use flux_testenv::kube::ADMIN;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, example_binary, text};

fn deployment(name: &str, round: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n      \
         annotations: {{round: \"{round}\"}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.25\n"
    )
}

fn config_map(name: &str, round: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata: {{round: \"{round}\"}}\n"
    )
}

/// A unit of the config file on the test's repository.
fn unit(servers: &Servers, name: &str, extra: &str) -> String {
    format!(
        "- name: {name}\n  git-url: {}\n  git-branch: main\n  git-path: [{name}]\n  git-poll-interval: 1s\n  \
         sync-interval: 30s\n  registry-disable-scanning: true\n{extra}",
        servers.git_daemon.url()
    )
}

/// Writes the config file `file` with `units`.
fn config(servers: &Servers, file: &str, units: &[String]) -> PathBuf {
    let path = servers.work.path().join(file);
    let text = format!("kubeconfig: {}\nunits:\n{}", servers.kube.kubeconfig(ADMIN).display(), units.concat());
    std::fs::write(&path, text).expect("write the config");
    path
}

/// Starts fluxd on `config`, its state in `state`.
fn start(servers: &Servers, config: &Path, state: &Path) -> Fluxd {
    let port = free_port();
    let mut command = Command::new(example_binary("fluxd"));
    command
        .arg(format!("--config={}", config.display()))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--git-mirror-dir={}", servers.work.path().join(format!("mirrors-{port}")).display()))
        .arg(format!("--state-dir={}", state.display()))
        .env("FLUX_API_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    Fluxd::spawn(servers, command, port)
}

/// A field of a live object, as text.
async fn field(servers: &Servers, api_version: &str, id: &str, path: &[&str]) -> Option<String> {
    let object = servers.get(api_version, id).await?;
    object.pointer(path).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
}

/// Polls until `field` of `id` is `want`.
async fn wait_for_field(servers: &Servers, api_version: &str, id: &str, path: &[&str], want: &str) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if field(servers, api_version, id, path).await.as_deref() == Some(want) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// Plays the Deployment controller: `name` rolled out and Available at its current generation.
async fn make_available(servers: &Servers, name: &str) {
    let id = format!("default:deployment/{name}");
    let generation = servers
        .get("apps/v1", &id)
        .await
        .and_then(|d| d.pointer(&["metadata", "generation"]).and_then(Value::as_i64))
        .expect("the Deployment has a generation");
    let cluster = servers.cluster().await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client().clone(), "default");
    let status = json!({"status": {
        "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "played by the test"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "played by the test"}
        ]
    }});
    deployments.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("status written");
}

/// `GET /api/v1/status?unit=NAME` as JSON.
async fn status(fluxd: &Fluxd, unit: &str) -> Value {
    let (code, body) = fluxd.get(&format!("/api/v1/status?unit={unit}"), Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// Polls `unit`'s status until `check` holds; the status then.
async fn wait_for_status(fluxd: &Fluxd, unit: &str, check: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let now = status(fluxd, unit).await;
        if check(&now) {
            return Some(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    None
}

/// The audit log's completed requests, in order.
fn audit(servers: &Servers) -> Vec<Value> {
    servers
        .kube
        .audit_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .collect()
}

/// Whether the event wrote (`create`, `patch`, `update`) object `name` of `resource`
/// (`subresource` or the object itself), successfully.
fn writes(event: &Value, resource: &str, name: &str, subresource: Option<&str>) -> bool {
    let r = &event["objectRef"];
    ["create", "patch", "update"].contains(&event["verb"].as_str().unwrap_or_default())
        && r["resource"] == resource
        && r["name"] == name
        && r["subresource"].as_str() == subresource
        && event["responseStatus"]["code"].as_i64().is_some_and(|c| c < 300)
}

/// Runs fluxd on `config` expecting it to refuse to start; its standard error.
fn refused(config: &Path) -> String {
    let out = Command::new(example_binary("fluxd"))
        .arg(format!("--config={}", config.display()))
        .arg(format!("--listen=127.0.0.1:{}", free_port()))
        .env("FLUX_API_TOKEN", TOKEN)
        .output()
        .expect("run fluxd");
    assert!(!out.status.success(), "fluxd started: {}", text(&out.stderr));
    text(&out.stderr)
}

const ROUNDS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_is_applied_only_after_its_dependency_is_available_twenty_rounds_running() {
    let Some(servers) = Servers::start() else { return };
    servers.commit(
        &[("a/web.yaml", &deployment("a-web", 0)), ("b/settings.yaml", &config_map("b-settings", 0))],
        "Round 0",
    );

    // Cycles and unknown units are refused at start, named.
    let cycle = config(
        &servers,
        "cycle.yaml",
        &[unit(&servers, "a", "  depends-on: [b]\n"), unit(&servers, "b", "  depends-on: [a]\n")],
    );
    let stderr = refused(&cycle);
    assert!(stderr.contains("a -> b -> a"), "the cycle is named: {stderr}");
    let unknown = config(&servers, "unknown.yaml", &[unit(&servers, "a", "  depends-on: [db]\n")]);
    let stderr = refused(&unknown);
    assert!(stderr.contains("unit a") && stderr.contains("\"db\""), "the unknown unit is named: {stderr}");

    let file = config(
        &servers,
        "fluxd.yaml",
        &[unit(&servers, "a", "  wait: true\n  timeout: 2m\n"), unit(&servers, "b", "  depends-on: [a]\n")],
    );
    // Where each round starts in the audit log: b's writes of a round come after this.
    let mut starts = vec![audit(&servers).len()];
    let fluxd = start(&servers, &file, &servers.work.path().join("state"));
    let template_round = ["spec", "template", "metadata", "annotations", "round"];
    for round in 0..ROUNDS {
        let r = round.to_string();
        if round > 0 {
            servers.commit(
                &[("a/web.yaml", &deployment("a-web", round)), ("b/settings.yaml", &config_map("b-settings", round))],
                &format!("Round {round}"),
            );
            starts.push(audit(&servers).len());
        }
        assert!(
            wait_for_field(&servers, "apps/v1", "default:deployment/a-web", &template_round, &r).await,
            "round {round}: a did not apply its Deployment:\n{}",
            fluxd.log()
        );
        let b_now = field(&servers, "v1", "default:configmap/b-settings", &["data", "round"]).await;
        assert_ne!(b_now.as_deref(), Some(r.as_str()), "round {round}: b applied before a's Deployment was Available");
        let held = status(&fluxd, "b").await;
        assert!(held["held"].is_null() || held["held"]["by"] == "a", "b is held by a only: {held}");
        make_available(&servers, "a-web").await;
        assert!(
            wait_for_field(&servers, "v1", "default:configmap/b-settings", &["data", "round"], &r).await,
            "round {round}: b did not follow once a was Available:\n{}",
            fluxd.log()
        );
    }

    // The audit log's order: in each round, b's ConfigMap is written only after a's Deployment
    // status said Available (the test's status write of that round).
    let events = audit(&servers);
    let mut statuses = Vec::new();
    let mut b_writes = Vec::new();
    for (at, e) in events.iter().enumerate() {
        if writes(e, "deployments", "a-web", Some("status")) {
            statuses.push(at);
        }
        if writes(e, "configmaps", "b-settings", None) {
            b_writes.push(at);
        }
    }
    assert_eq!(statuses.len(), ROUNDS, "one status write per round");
    for round in 0..ROUNDS {
        let (start, available) = (starts[round], statuses[round]);
        let next = starts.get(round + 1).copied().unwrap_or(usize::MAX);
        let early: Vec<usize> = b_writes.iter().copied().filter(|&w| w >= start && w < available).collect();
        assert!(
            early.is_empty(),
            "round {round}: b written at audit events {early:?}, before a was Available ({available})"
        );
        assert!(
            b_writes.iter().any(|&w| w > available && w < next),
            "round {round}: no write of b between a's Available ({available}) and the next round ({next})"
        );
    }
    let a = status(&fluxd, "a").await;
    assert_eq!(a["last_sync"]["health"]["outcome"], "healthy", "{a}");
    let objects = a["last_sync"]["health"]["objects"].as_array().cloned().unwrap_or_default();
    assert!(
        objects.iter().any(|o| o["id"] == "default:deployment/a-web" && o["health"] == "current"),
        "each object's health: {a}"
    );
    fluxd.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_never_healthy_fails_within_its_timeout_and_its_dependent_applies_and_prunes_nothing() {
    let Some(servers) = Servers::start() else { return };
    servers.commit(
        &[
            ("a/web.yaml", &deployment("a-web", 0)),
            ("b/settings.yaml", &config_map("b-settings", 0)),
            ("b/old.yaml", &config_map("b-old", 0)),
        ],
        "Start",
    );
    const TIMEOUT_S: u64 = 10;
    let file = config(
        &servers,
        "fluxd.yaml",
        &[
            unit(&servers, "a", &format!("  wait: true\n  timeout: {TIMEOUT_S}s\n")),
            unit(&servers, "b", "  depends-on: [a]\n  sync-garbage-collection: true\n"),
        ],
    );
    let fluxd = start(&servers, &file, &servers.work.path().join("state"));
    let template_round = ["spec", "template", "metadata", "annotations", "round"];
    assert!(wait_for_field(&servers, "apps/v1", "default:deployment/a-web", &template_round, "0").await);
    make_available(&servers, "a-web").await;
    assert!(
        wait_for_field(&servers, "v1", "default:configmap/b-old", &["data", "round"], "0").await,
        "{}",
        fluxd.log()
    );

    // a's Deployment changes and nothing will ever make it Available.
    servers.commit(&[("a/web.yaml", &deployment("a-web", 1))], "A new a");
    assert!(wait_for_field(&servers, "apps/v1", "default:deployment/a-web", &template_round, "1").await);
    let since = audit(&servers).len();
    servers.delete("b/old.yaml", "b drops old");
    let head = servers.commit(&[("b/settings.yaml", &config_map("b-settings", 1))], "b changes");

    let failed = wait_for_status(&fluxd, "a", |s| {
        s["last_sync"]["revision"] == head.as_str() && s["last_sync"]["health"]["outcome"] == "timed_out"
    })
    .await
    .unwrap_or_else(|| panic!("a did not time out at {head}:\n{}", fluxd.log()));
    let health = &failed["last_sync"]["health"];
    assert_eq!(health["id"], "default:deployment/a-web", "the Deployment is named: {failed}");
    assert!(health["reason"].as_str().unwrap_or_default().contains("generation 2 is not observed"), "{failed}");
    let waited = health["waited_ms"].as_u64().expect("waited_ms");
    let timeout_ms = TIMEOUT_S * 1000;
    assert!(
        waited >= timeout_ms.saturating_sub(5000) && waited <= timeout_ms + 5000,
        "failed after {waited} ms, not within {TIMEOUT_S}s ± 5s"
    );
    assert_eq!(failed["last_sync"]["success"], false);
    let errors = failed["last_sync"]["errors"].to_string();
    assert!(errors.contains("default:deployment/a-web") && errors.contains("timed out"), "{errors}");

    // b is held by a, saying why (a's failure, once a has failed).
    let b = wait_for_status(&fluxd, "b", |s| {
        s["held"]["by"] == "a"
            && s["head"] == head.as_str()
            && s["held"]["reason"].as_str().is_some_and(|r| r.contains("default:deployment/a-web"))
    })
    .await
    .unwrap_or_else(|| panic!("b is not held by a at {head}, naming a-web:\n{}", fluxd.log()));
    assert!(b["held"]["reason"].as_str().unwrap_or_default().contains("timed out"), "why: {b}");
    // fluxctl says so too.
    let out = fluxd.fluxctl(&["--unit", "b", "sync"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("held by a"), "{}", text(&out.stderr));

    // b applied nothing and pruned nothing since a changed.
    let later: Vec<Value> = audit(&servers).into_iter().skip(since).collect();
    let b_writes: Vec<&Value> = later
        .iter()
        .filter(|e| writes(e, "configmaps", "b-settings", None) || writes(e, "configmaps", "b-old", None))
        .collect();
    assert!(b_writes.is_empty(), "b was applied: {b_writes:?}");
    let deletes: Vec<Value> = audit(&servers).into_iter().filter(|e| e["verb"] == "delete").collect();
    assert!(deletes.is_empty(), "something was deleted: {deletes:?}");
    assert_eq!(field(&servers, "v1", "default:configmap/b-old", &["data", "round"]).await.as_deref(), Some("0"));
    assert_eq!(field(&servers, "v1", "default:configmap/b-settings", &["data", "round"]).await.as_deref(), Some("0"));
    fluxd.terminate();

    // fluxd --once does the same: a waits and fails naming the Deployment, b is held.
    let out = Command::new(example_binary("fluxd"))
        .arg(format!("--config={}", file.display()))
        .arg("--once")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fluxd --once");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("health: timed out") && stdout.contains("default:deployment/a-web"), "{stdout}");
    assert!(stdout.contains("unit b:\nheld by a"), "{stdout}");
    assert_eq!(field(&servers, "v1", "default:configmap/b-old", &["data", "round"]).await.as_deref(), Some("0"));
    assert!(audit(&servers).iter().all(|e| e["verb"] != "delete"), "--once deleted something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_holds_syncs_and_survives_a_restart() {
    let Some(servers) = Servers::start() else { return };
    servers.commit(&[("deploy/settings.yaml", &config_map("settings", 0))], "Settings");
    let state = servers.work.path().join("state");
    let state_flag = format!("--state-dir={}", state.display());
    let flags = [state_flag.as_str(), "--git-poll-interval=1s", "--sync-interval=2s", "--registry-disable-scanning"];
    let fluxd = Fluxd::start(&servers, &flags);
    assert!(
        wait_for_field(&servers, "v1", "default:configmap/settings", &["data", "round"], "0").await,
        "{}",
        fluxd.log()
    );

    fluxd.fluxctl_ok(&["suspend", "-m", "incident 42", "--user", "ana"]);
    fluxd.fluxctl_ok(&["suspend", "-w", "default:deployment/web", "-m", "pinned", "--user", "bo"]);
    let head = servers.commit(&[("deploy/settings.yaml", &config_map("settings", 1))], "Round 1");
    let held = |s: &Value| s["head"] == head.as_str() && s["held"]["by"] == "default";
    let now = wait_for_status(&fluxd, "default", held).await.unwrap_or_else(|| panic!("not held:\n{}", fluxd.log()));
    assert_eq!(now["suspended"]["user"], "ana", "{now}");
    assert_eq!(field(&servers, "v1", "default:configmap/settings", &["data", "round"]).await.as_deref(), Some("0"));
    fluxd.terminate();

    // After a restart: still suspended, by whom and why, and still holding.
    let fluxd = Fluxd::start(&servers, &flags);
    let now = wait_for_status(&fluxd, "default", held).await.unwrap_or_else(|| panic!("not held:\n{}", fluxd.log()));
    assert_eq!(now["suspended"]["user"], "ana", "{now}");
    assert_eq!(now["suspended"]["message"], "incident 42", "{now}");
    assert_eq!(fluxd.get("/readyz", None).await.0, 200, "a held unit ran its sync: ready");
    let workloads = now["suspended_workloads"].as_array().cloned().unwrap_or_default();
    assert!(
        workloads
            .iter()
            .any(|w| w["workload"] == "default:deployment/web" && w["user"] == "bo" && w["message"] == "pinned"),
        "{now}"
    );
    let out = fluxd.fluxctl(&["sync"]);
    assert!(!out.status.success() && text(&out.stderr).contains("suspended by ana"), "{}", text(&out.stderr));
    assert_eq!(field(&servers, "v1", "default:configmap/settings", &["data", "round"]).await.as_deref(), Some("0"));

    fluxd.fluxctl_ok(&["resume"]);
    assert!(
        wait_for_field(&servers, "v1", "default:configmap/settings", &["data", "round"], "1").await,
        "{}",
        fluxd.log()
    );
    fluxd.fluxctl_ok(&["resume", "-w", "default:deployment/web"]);
    let now = status(&fluxd, "default").await;
    assert!(now["suspended"].is_null() && now["suspended_workloads"].is_null(), "{now}");
    fluxd.terminate();
}
