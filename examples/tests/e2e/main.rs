//! End to end, all real: `git daemon`, `docker-registry`, `kube-apiserver` + `etcd`, and the
//! built `fluxd` and `fluxctl` binaries. Few tests, each in stages, because the servers are costly.

mod bad_workloads;
mod deploy_key;
mod faults;
mod fixtures;
mod fluxctl_v1;
mod ha;
mod harness;
mod health;
mod install;
mod plan;
mod ui;
mod units;
mod v1_args;

use flux_testenv::wait_until;
use harness::{Fluxd, PATIENCE, Servers, TOKEN, text};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";
const T3: &str = "2024-03-01T00:00:00Z";

/// The image of container `container` of workload `id` as `fluxctl list-workloads` shows it.
fn running_image(fluxd: &Fluxd, id: &str, container: &str) -> Option<String> {
    let out = fluxd.fluxctl(&["list-workloads", "--all-namespaces", "-o", "json"]);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
    let w = list.iter().find(|w| w["id"] == id)?;
    let running = w["status"].is_object();
    let c = w["containers"].as_array()?.iter().find(|c| c["name"] == container)?;
    running.then(|| c["image"].as_str().unwrap_or_default().to_owned())
}

/// An HTTP endpoint recording every JSON body posted to it, with its path.
async fn notification_sink() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let store = store.clone();
        async move {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            store.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((uri.path().to_owned(), value));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the sink");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxd_and_fluxctl_do_the_whole_job() {
    let Some(servers) = Servers::start() else { return };
    let reg = servers.registry.host().to_owned();
    servers.push("demo/app:1.0.0", T1).await;
    servers.push("demo/web:v1.0", T1).await;
    let files = fixtures::manifests(&reg);
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    servers.commit(&refs, "Add the demo app");

    // --dry-run writes nothing anywhere: no object, no commit, no marker.
    let before = servers.repo.head();
    let out = servers.fluxd_once(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "changes: kubectl diff's exit code; {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("apply demo:deployment/app"), "the plan lists the workloads");
    assert!(servers.get("v1", "<cluster>:namespace/demo").await.is_none(), "a dry run applied something");
    assert_eq!(servers.repo.head(), before);
    assert!(servers.repo.git(&["tag", "--list"]).is_empty(), "a dry run moved the sync marker");

    // The daemon syncs everything at start.
    let metrics_port = flux_testenv::free_port();
    let metrics_flag = format!("--listen-metrics=127.0.0.1:{metrics_port}");
    let secret_file = servers.work.path().join("github-secret");
    std::fs::write(&secret_file, "hook-secret\n").expect("write the webhook secret");
    let secret_flag = format!("--webhook-github-secret-file={}", secret_file.display());
    let (hook_url, received) = notification_sink().await;
    let webhook_flag = format!("--notify-webhook-url={hook_url}/hook");
    let slack_flag = format!("--notify-slack-url={hook_url}/slack");
    let fluxd = Fluxd::start(
        &servers,
        &[
            &webhook_flag,
            &slack_flag,
            "--git-poll-interval=1s",
            "--sync-interval=2s",
            "--automation-interval=1h",
            "--sync-garbage-collection",
            &metrics_flag,
            &secret_flag,
        ],
    );
    let app = format!("{reg}/demo/app");
    assert!(
        wait_until(PATIENCE, || running_image(&fluxd, "demo:deployment/app", "app").as_deref()
            == Some(&format!("{app}:1.0.0"))),
        "the initial sync did not bring the app up:\n{}",
        fluxd.log()
    );
    for (api, id) in [
        ("v1", "demo:service/app"),
        ("batch/v1beta1", "demo:cronjob/nightly"),
        ("helm.fluxcd.io/v1", "demo:helmrelease/chart"),
        ("apps/v1", "demo:deployment/frozen"),
    ] {
        assert!(servers.get(api, id).await.is_some(), "{id} was not synced");
    }
    let listed = fluxd.fluxctl_ok(&["list-workloads", "-n", "demo"]);
    assert!(listed.starts_with("WORKLOAD"), "a table: {listed}");
    assert!(listed.contains("demo:deployment/frozen") && listed.contains("automated,locked"));

    // The API refuses a missing or wrong token; health needs none.
    assert_eq!(fluxd.get("/api/v1/workloads", None).await.0, 401);
    assert_eq!(fluxd.get("/api/v1/workloads", Some("wrong")).await.0, 401);
    assert_eq!(fluxd.get("/api/v1/export", Some("e2e-token-5f2b9")).await.0, 401);
    assert_eq!(fluxd.get("/healthz", None).await.0, 200);
    let (status, export) = fluxd.get("/api/v1/export", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(export.contains("name: frozen") && !export.contains("managedFields"), "export: {export}");
    let wrong_token = fluxd.fluxctl(&["--token", "nope", "list-workloads"]);
    assert!(!wrong_token.status.success());
    assert_eq!(text(&wrong_token.stderr).lines().count(), 1, "errors are one line");

    // New tags; the registry's notification starts an automation pass at once.
    servers.push("demo/app:1.2.0", T2).await;
    servers.push("demo/app:2.0.0", T3).await;
    servers.push("demo/web:v1.1", T2).await;
    servers.push("demo/web:v2.0", T3).await;
    let images = fluxd.fluxctl_ok(&["list-images", "-w", "demo:deployment/app"]);
    assert!(images.contains("'-> 1.0.0") && images.contains("|   2.0.0"), "list-images: {images}");
    let before = servers.repo.head();
    let event = json!({"events": [{"action": "push", "target": {"repository": "demo/app", "tag": "1.2.0"}}]});
    assert_eq!(fluxd.post("/api/v1/notify/registry", &event).await.0, 202);
    let after = servers.wait_for_commit(&before);
    let expected = format!(
        "--- a/deploy/app.yaml\n+++ b/deploy/app.yaml\n-        image: {app}:1.0.0\n+        image: {app}:1.2.0\n\
         --- a/deploy/chart.yaml\n+++ b/deploy/chart.yaml\n-    image: {app}:1.0.0\n+    image: {app}:1.2.0\n\
         --- a/deploy/web.yaml\n+++ b/deploy/web.yaml\n-        image: {reg}/demo/web:v1.0\n+        image: {reg}/demo/web:v1.1\n"
    );
    assert_eq!(servers.changed_lines(&before, &after), expected, "automation changed exactly the image lines");
    assert!(
        wait_until(PATIENCE, || running_image(&fluxd, "demo:deployment/app", "app").as_deref()
            == Some(&format!("{app}:1.2.0"))),
        "the cluster did not follow the automation commit"
    );

    // Metrics count the syncs, the automation updates and the registry lookups by host.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.contains("flux_automation_updates_total{unit=\"default\"} 3"), "{metrics}");
    assert!(metrics.contains("flux_syncs_total{unit=\"default\",outcome=\"success\"}"), "{metrics}");
    assert!(metrics.contains(&format!("host=\"{reg}\"")), "registry calls by host: {metrics}");

    // A GitHub push webhook is accepted only with the right signature.
    let push = br#"{"ref":"refs/heads/main"}"#;
    let sign = |key: &[u8]| {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(push);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    };
    for (key, expected) in [(&b"hook-secret"[..], 202), (&b"wrong"[..], 401)] {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/notify/github", fluxd.url))
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", sign(key))
            .body(push.to_vec())
            .send()
            .await
            .expect("reach fluxd");
        assert_eq!(response.status().as_u16(), expected);
    }

    // Policies through fluxctl, each one commit changing one annotation.
    let mut head = servers.repo.head();
    for (args, lines) in [
        (
            vec!["lock", "-w", "demo:deployment/web", "-m", "hold on"],
            vec!["+    fluxcd.io/locked: \"true\"", "+    fluxcd.io/locked_msg: \"hold on\""],
        ),
        (
            vec!["unlock", "-w", "demo:deployment/web"],
            vec!["-    fluxcd.io/locked: \"true\"", "-    fluxcd.io/locked_msg: \"hold on\""],
        ),
        (vec!["deautomate", "-w", "demo:deployment/web"], vec!["-    fluxcd.io/automated: \"true\""]),
        (vec!["automate", "-w", "demo:deployment/web"], vec!["+    fluxcd.io/automated: \"true\""]),
        (
            vec!["policy", "-w", "demo:deployment/web", "--tag", "web=glob:v2.*"],
            vec!["-    fluxcd.io/tag.web: glob:v1.*", "+    fluxcd.io/tag.web: glob:v2.*"],
        ),
    ] {
        let out = fluxd.fluxctl(&args);
        assert!(out.status.success() && text(&out.stderr).contains("Commit pushed:\t"), "{args:?}: {out:?}");
        let new = servers.repo.head();
        let changed = servers.changed_lines(&head, &new);
        let body: Vec<&str> = changed.lines().filter(|l| !l.starts_with("---") && !l.starts_with("+++")).collect();
        let mut want = lines.clone();
        want.sort_unstable();
        let mut got = body.clone();
        got.sort_unstable();
        assert_eq!(got, want, "{args:?} changed: {changed}");
        assert!(changed.contains("deploy/web.yaml") && changed.matches("+++").count() == 1);
        head = new;
    }

    // A release to a locked workload is refused without --force.
    let refused = fluxd.fluxctl(&["release", "--workload", "demo:deployment/frozen", "-i", &format!("{app}:1.2.0")]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("locked"), "{}", text(&refused.stderr));
    assert_eq!(servers.repo.head(), head, "a refused release committed");
    fluxd.fluxctl_ok(&["release", "--workload", "demo:deployment/frozen", "-i", &format!("{app}:1.2.0"), "--force"]);
    let new = servers.repo.head();
    assert_eq!(
        servers.changed_lines(&head, &new),
        format!(
            "--- a/deploy/frozen.yaml\n+++ b/deploy/frozen.yaml\n-        image: {app}:1.0.0\n+        image: {app}:1.2.0\n"
        )
    );
    head = new;

    // A release with --watch returns once the cluster runs the new image.
    let out = fluxd.fluxctl_ok(&[
        "release",
        "--workload",
        "demo:cronjob/nightly",
        "-i",
        &format!("{app}:2.0.0"),
        "--watch",
        "--user",
        "jane",
        "-m",
        "nightly",
    ]);
    assert!(out.contains("success"), "{out}");
    assert_eq!(running_image(&fluxd, "demo:cronjob/nightly", "report"), Some(format!("{app}:2.0.0")));
    let message = servers.repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("jane") && message.contains("nightly"), "the commit records who and why: {message}");
    assert!(message.contains("Flux-Job: "), "the commit names the job that made it: {message}");
    assert_ne!(servers.repo.head(), head);

    // Sync and release outcomes were announced to the JSON webhook and to Slack.
    assert!(
        wait_until(PATIENCE, || {
            let got = received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let hook = |event: &str| got.iter().any(|(p, b)| p == "/hook" && b["event"] == event);
            let slack = got
                .iter()
                .any(|(p, b)| p == "/slack" && b["text"].as_str().is_some_and(|t| t.starts_with("[default] Released")));
            hook("ReleaseCompleted") && hook("SyncCompleted") && hook("PolicyChanged") && slack
        }),
        "notifications missing"
    );

    // A manifest removed from git is pruned (GC on).
    servers.delete("deploy/extra.yaml", "Drop extra");
    let mut pruned = false;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !pruned && tokio::time::Instant::now() < deadline {
        pruned = servers.get("v1", "demo:configmap/extra").await.is_none();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(pruned, "the removed ConfigMap was not pruned:\n{}", fluxd.log());

    // Broken YAML: the sync fails loudly and deletes nothing.
    servers.commit(&[("deploy/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [oops\n")], "Break it");
    let broken = fluxd.fluxctl(&["sync"]);
    assert!(!broken.status.success());
    assert!(text(&broken.stderr).contains("broken.yaml"), "the error names the file: {}", text(&broken.stderr));
    assert!(servers.get("v1", "demo:configmap/config").await.is_some(), "a broken revision deleted objects");
    servers.delete("deploy/broken.yaml", "Fix it");
    fluxd.fluxctl_ok(&["sync"]);
    let log = fluxd.log();
    assert!(!log.contains(TOKEN) && !log.contains("hook-secret"), "a secret reached the log");
    fluxd.terminate();

    // GC dry-run only reports: a one-shot run with the object gone from git.
    servers.delete("deploy/config.yaml", "Drop config");
    let out = servers.fluxd_once(&["--once", "--sync-garbage-collection-dry"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("demo:configmap/config would be pruned"), "{}", text(&out.stdout));
    assert!(servers.get("v1", "demo:configmap/config").await.is_some(), "GC dry-run deleted");

    // --once fails loudly (non-zero exit) on a broken revision, and deletes nothing.
    servers.commit(&[("deploy/broken.yaml", "kind: [\n")], "Break it again");
    let out = servers.fluxd_once(&["--once", "--sync-garbage-collection"]);
    assert_eq!(out.status.code(), Some(1), "a failed round must exit 1");
    assert!(text(&out.stdout).contains("FAILED") && text(&out.stdout).contains("broken.yaml"));
    assert!(servers.get("v1", "demo:configmap/config").await.is_some(), "a broken revision pruned");
}

/// fluxd with `--manifest-generation`: a Kustomize overlay and a `.flux.yaml` path are generated
/// and synced by `--once`; a generator that hangs past `--sync-timeout` fails the round (exit 1)
/// with the reason, and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxd_generates_kustomize_apps_and_flux_yaml_paths() {
    let Some(servers) = Servers::start() else { return };
    if flux_testenv::require("kubectl (for `kubectl kustomize`)", flux_testenv::find_program("kubectl")).is_none() {
        return;
    }
    let flux_yaml = "version: 1\ncommandUpdated:\n  generators:\n    - command: cat settings.txt\n";
    let settings =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: generated\n  namespace: gen\ndata:\n  from: flux-yaml\n";
    servers.commit(
        &[
            ("deploy/namespaces.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: gen\n"),
            ("deploy/app/base/kustomization.yaml", "resources:\n- settings.yaml\n"),
            (
                "deploy/app/base/settings.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  colour: blue\n",
            ),
            ("deploy/app/env/kustomization.yaml", "namespace: gen\nnamePrefix: env-\nresources:\n- ../base\n"),
            ("generated/.flux.yaml", flux_yaml),
            ("generated/settings.txt", settings),
        ],
        "Kustomize and .flux.yaml",
    );
    let out = servers.fluxd_once(&["--once", "--manifest-generation", "--git-path=deploy,generated"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(servers.get("v1", "gen:configmap/env-settings").await.is_some(), "the overlay was not synced");
    assert!(servers.get("v1", "gen:configmap/generated").await.is_some(), "the .flux.yaml output was not synced");
    assert!(servers.get("v1", "default:configmap/settings").await.is_none(), "the base was applied on its own");

    let hanging =
        "version: 1\ncommandUpdated:\n  generators:\n    - command: cat settings.txt\n    - command: sleep 600\n";
    servers.commit(&[("generated/.flux.yaml", hanging)], "A generator that hangs");
    let out = servers.fluxd_once(&[
        "--once",
        "--manifest-generation",
        "--git-path=deploy,generated",
        "--sync-timeout=2s",
        "--sync-garbage-collection",
    ]);
    assert_eq!(out.status.code(), Some(1), "a hanging generator fails the round");
    assert!(text(&out.stdout).contains("timed out after 2s"), "{}", text(&out.stdout));
    assert!(servers.get("v1", "gen:configmap/generated").await.is_some(), "a timed-out revision pruned");
    assert!(servers.get("v1", "gen:configmap/env-settings").await.is_some(), "a timed-out revision pruned");
}
