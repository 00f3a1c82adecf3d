//! The real fluxd killed with SIGKILL in the middle of its writes, then restarted on the same
//! `--git-mirror-dir`, `--state-dir` and `--registry-cache-dir`: during an automation push that
//! never reached the server, during one that landed but whose answer was lost, during a sync
//! (an apply hanging in the API server), and with a corrupt registry cache. What survives is
//! checked in git by SHA (no lost commit, no second commit), in the cluster and the audit log
//! (nothing pruned by the killed sync), and in the job history. The faults come from
//! flux-testenv's proxies in front of the real git daemon and kube-apiserver.

use std::process::Command;

use flux_testenv::faults::{HttpFault, HttpProxy, TcpProxy};
use flux_testenv::kube::ADMIN;
use flux_testenv::wait_until;
use serde_json::{Value, json};

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN, example_binary, text};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";
const T3: &str = "2024-03-01T00:00:00Z";
const T4: &str = "2024-04-01T00:00:00Z";
const T5: &str = "2024-05-01T00:00:00Z";

fn app(reg: &str, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: kill\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.app: semver:~1\nspec:\n  selector:\n    matchLabels:\n      app: app\n  template:\n    metadata:\n      labels:\n        app: app\n    spec:\n      containers:\n      - name: app\n        image: {reg}/kill/app:{tag}\n"
    )
}

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: kill\ndata:\n  value: \"{value}\"\n"
    )
}

/// The commits on `main` after `base`, oldest first.
fn commits_after(servers: &Servers, base: &str) -> Vec<String> {
    servers.repo.git(&["rev-list", "--reverse", &format!("{base}..main")]).lines().map(str::to_owned).collect()
}

/// The commit the sync tag points at, if any.
fn sync_tag(servers: &Servers) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "flux-sync^{commit}"])
        .current_dir(servers.repo.path())
        .output()
        .ok()?;
    out.status.success().then(|| text(&out.stdout).trim().to_owned())
}

/// Deletions by the syncing identity in namespace `kill`, from the audit log.
fn deletions(servers: &Servers) -> usize {
    servers.kube.requests(ADMIN, &["delete"]);
    servers
        .kube
        .audit_log()
        .lines()
        .filter(|l| l.contains("\"stage\":\"ResponseComplete\"") && l.contains("\"verb\":\"delete\""))
        .filter(|l| l.contains("\"namespace\":\"kill\"") && l.contains(&format!("\"username\":\"{ADMIN}\"")))
        .count()
}

async fn image(servers: &Servers) -> Option<String> {
    let object = servers.get("apps/v1", "kill:deployment/app").await?;
    object.to_value()["spec"]["template"]["spec"]["containers"][0]["image"].as_str().map(str::to_owned)
}

async fn value(servers: &Servers, name: &str) -> Option<String> {
    let object = servers.get("v1", &format!("kill:configmap/{name}")).await?;
    object.to_value()["data"]["value"].as_str().map(str::to_owned)
}

/// Polls an async condition until it holds or [`PATIENCE`] runs out.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// fluxd's flags, through the proxies, keeping its state in the work directory.
fn args(servers: &Servers, git: &TcpProxy, kubeconfig: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let work = servers.work.path();
    let mut flags = vec![
        "--git-poll-interval=1s".to_owned(),
        "--sync-interval=2s".to_owned(),
        "--automation-interval=2s".to_owned(),
        "--sync-garbage-collection".to_owned(),
        // A push whose answer never comes is ended by the test's SIGKILL, not the timeout.
        "--git-timeout=5m".to_owned(),
        format!("--git-mirror-dir={}", work.join("mirror").display()),
        format!("--state-dir={}", work.join("state").display()),
        format!("--registry-cache-dir={}", work.join("cache").display()),
    ];
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let git_url = servers
        .git_daemon
        .url()
        .replace(&format!(":{}/", url_port(&servers.git_daemon.url())), &format!(":{}/", git.port()));
    servers
        .fluxd_args(&refs)
        .into_iter()
        .map(|a| {
            if a.starts_with("--git-url=") {
                format!("--git-url={git_url}")
            } else if a.starts_with("--kubeconfig=") {
                format!("--kubeconfig={}", kubeconfig.display())
            } else {
                a
            }
        })
        .collect()
}

/// The port of `git://127.0.0.1:PORT/...`.
fn url_port(url: &str) -> String {
    url.trim_start_matches("git://127.0.0.1:").split('/').next().unwrap_or_default().to_owned()
}

fn start(servers: &Servers, args: &[String]) -> Fluxd {
    let port = flux_testenv::free_port();
    let mut command = Command::new(example_binary("fluxd"));
    command.args(args).arg(format!("--listen=127.0.0.1:{port}")).env("FLUX_API_TOKEN", TOKEN);
    Fluxd::spawn(servers, command, port)
}

/// `fluxd --once` with `args`: its exit code and output.
fn once(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(example_binary("fluxd"))
        .args(args)
        .arg("--once")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fluxd");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("fluxd --once:\n{all}");
    (out.status.code(), all)
}

async fn job_status(fluxd: &Fluxd, id: &str) -> Value {
    let (code, body) = fluxd.get(&format!("/api/v1/jobs/{id}"), Some(TOKEN)).await;
    assert_eq!(code, 200, "job {id}: {body}");
    serde_json::from_str(&body).expect("a job as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxd_killed_mid_write_loses_nothing_and_repeats_nothing() {
    let Some(servers) = Servers::start() else { return };
    let reg = servers.registry.host().to_owned();
    servers.push("kill/app:1.0.0", T1).await;
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kill\n".to_owned();
    let files = [
        ("deploy/ns.yaml", ns),
        ("deploy/app.yaml", app(&reg, "1.0.0")),
        ("deploy/config.yaml", config_map("config", "1")),
        ("deploy/garbage.yaml", config_map("garbage", "1")),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    servers.commit(&refs, "the app");

    let git = TcpProxy::start(&format!("127.0.0.1:{}", url_port(&servers.git_daemon.url())));
    let certs = servers.kube.dir().join("certs");
    let crt = certs.join("apiserver.crt");
    let kube = HttpProxy::start_tls(
        servers.kube.url().trim_start_matches("https://"),
        &crt,
        &certs.join("apiserver.key"),
        &crt,
    );
    let kubeconfig = servers.work.path().join("kubeconfig-proxied");
    let admin = std::fs::read_to_string(servers.kube.kubeconfig(ADMIN)).expect("read the kubeconfig");
    std::fs::write(&kubeconfig, admin.replace(servers.kube.url(), &format!("https://{}", kube.addr()))).expect("write");
    let args = args(&servers, &git, &kubeconfig, &[]);

    // A first daemon syncs, and a job of its history to look up after the kills.
    let fluxd = start(&servers, &args);
    let head = servers.repo.head();
    assert!(wait_until(PATIENCE, || sync_tag(&servers).as_deref() == Some(head.as_str())), "{}", fluxd.log());
    let (code, body) = fluxd.post("/api/v1/sync", &json!({})).await;
    assert_eq!(code, 202, "{body}");
    let job: String =
        serde_json::from_str::<Value>(&body).expect("JSON")["job_id"].as_str().expect("a job id").to_owned();
    assert!(eventually(|| async { job_status(&fluxd, &job).await["status"] == "succeeded" }).await, "{}", fluxd.log());

    // 1. Killed while its automation push hangs before reaching the server: nothing landed;
    //    after a restart the update is committed once.
    let base = servers.repo.head();
    git.hang_matching(Some(b"git-receive-pack"));
    servers.push("kill/app:1.0.1", T2).await;
    assert!(wait_until(PATIENCE, || git.held() > 0), "no push started:\n{}", fluxd.log());
    drop(fluxd); // SIGKILL
    assert_eq!(servers.repo.head(), base, "the hung push reached the server");
    git.hang_matching(None);
    git.cut();
    let fluxd = start(&servers, &args);
    let landed = servers.wait_for_commit(&base);
    assert!(
        eventually(|| async { image(&servers).await == Some(format!("{reg}/kill/app:1.0.1")) }).await,
        "{}",
        fluxd.log()
    );
    assert_eq!(commits_after(&servers, &base), std::slice::from_ref(&landed), "exactly one automation commit");
    assert_eq!(
        servers.changed_lines(&base, &landed),
        format!(
            "--- a/deploy/app.yaml\n+++ b/deploy/app.yaml\n-        image: {reg}/kill/app:1.0.0\n+        image: {reg}/kill/app:1.0.1\n"
        )
    );
    assert_eq!(job_status(&fluxd, &job).await["status"], "succeeded", "the job history survived SIGKILL");
    assert!(!fluxd.log().contains("discarding the registry cache"), "the cache survived SIGKILL:\n{}", fluxd.log());

    // 2. Killed after its push landed but before the answer came back: after a restart, the
    //    commit is there once, not made again.
    assert!(wait_until(PATIENCE, || sync_tag(&servers).as_deref() == Some(landed.as_str())), "{}", fluxd.log());
    let base = landed;
    git.lose_replies_after(Some((b"git-receive-pack", b"PACK")));
    servers.push("kill/app:1.0.2", T3).await;
    let pushed = servers.wait_for_commit(&base);
    drop(fluxd); // SIGKILL
    git.lose_replies_after(None);
    git.cut();
    let (code, out) = once(&args);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(commits_after(&servers, &base), std::slice::from_ref(&pushed), "no second commit for the same update");
    assert_eq!(image(&servers).await, Some(format!("{reg}/kill/app:1.0.2")));

    // 3. A colleague's push lands while fluxd's automation push is on its way: fluxd's is
    //    refused (its lease names the old head), made again on top of the colleague's commit;
    //    both survive, one automation commit, no merge commit.
    let fluxd = start(&servers, &args);
    assert!(wait_until(PATIENCE, || sync_tag(&servers).as_deref() == Some(pushed.as_str())), "{}", fluxd.log());
    let base = pushed;
    let held = git.held();
    git.delay_matching(Some(b"git-receive-pack"));
    servers.push("kill/app:1.0.3", T4).await;
    assert!(wait_until(PATIENCE, || git.held() > held), "no push started:\n{}", fluxd.log());
    let colleague = servers.commit(&[("docs/README.md", "a colleague's change\n")], "a colleague's push");
    git.delay_matching(None);
    git.release();
    assert!(
        wait_until(PATIENCE, || commits_after(&servers, &base).len() == 2),
        "the automation commit was not made again:\n{}",
        fluxd.log()
    );
    let after = commits_after(&servers, &base);
    assert_eq!(after[0], colleague, "the colleague's commit is kept, first");
    assert_eq!(servers.repo.git(&["rev-parse", &format!("{}^", after[1])]), colleague, "built on the colleague's");
    assert!(servers.repo.git(&["rev-list", "--merges", &format!("{base}..main")]).is_empty(), "no merge commit");
    assert!(servers.changed_lines(&colleague, &after[1]).contains(&format!("+        image: {reg}/kill/app:1.0.3")));
    assert!(eventually(|| async { image(&servers).await == Some(format!("{reg}/kill/app:1.0.3")) }).await);

    // 4. Killed during a sync whose apply hangs in the API server: nothing is pruned by it; the
    //    next run applies the change and collects what left git.
    kube.inject(Some("PATCH"), "/namespaces/kill/configmaps/config", HttpFault::Hang, 0, None);
    servers.commit(&[("deploy/config.yaml", &config_map("config", "2"))], "config 2");
    let before = servers.delete("deploy/garbage.yaml", "garbage leaves git");
    assert!(wait_until(PATIENCE, || !kube.faulted().is_empty()), "the sync did not reach the apply:\n{}", fluxd.log());
    drop(fluxd); // SIGKILL
    kube.heal();
    assert_eq!(deletions(&servers), 0, "the killed sync deleted something");
    assert_eq!(value(&servers, "garbage").await.as_deref(), Some("1"));
    let (code, out) = once(&args);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(value(&servers, "config").await.as_deref(), Some("2"));
    assert_eq!(value(&servers, "garbage").await, None, "collected once the view was whole");
    assert_eq!(deletions(&servers), 1, "only the garbage was deleted");
    assert_eq!(servers.repo.head(), before, "a sync commits nothing");

    // 5. A corrupt registry cache is discarded and rebuilt: the next update is found, once.
    let cache = servers.work.path().join("cache");
    for entry in std::fs::read_dir(&cache).expect("the cache directory") {
        let path = entry.expect("an entry").path();
        std::fs::write(&path, b"not a registry cache \x00\xff").expect("corrupt the cache");
    }
    servers.push("kill/app:1.0.4", T5).await;
    let base = servers.repo.head();
    let (code, out) = once(&args);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("discarding the registry cache"), "the corrupt cache is reported: {out}");
    let commits = commits_after(&servers, &base);
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert!(servers.changed_lines(&base, &commits[0]).contains(&format!("+        image: {reg}/kill/app:1.0.4")));
}
