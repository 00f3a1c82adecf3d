//! The quickstart: on a machine with no cluster, brings up real local servers (kube-apiserver +
//! etcd from flux-testenv, a git repository with a small app, docker-registry), installing what
//! is missing (Debian's docker-registry and skopeo; kube-apiserver built once), runs `fluxd`
//! against them and narrates: the sync, a new tag pushed, the automation commit (as a diff), the
//! cluster updated, a lock and a refused release. Nothing is simulated.
//!
//! ```sh
//! cargo run -p examples --example quickstart
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::Duration;

use flux_testenv::git::BareRepo;
use flux_testenv::kube::ADMIN;
use flux_testenv::{KubeApiServer, TestRegistry, find_program, free_port, wait_until};
use serde_json::Value;

const TOKEN: &str = "quickstart-token";
const PATIENCE: Duration = Duration::from_secs(120);

fn say(step: &str) {
    println!("\n==> {step}");
}

/// Kills fluxd when the quickstart ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn app_manifest(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hello\n  namespace: quickstart\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/tag.hello: semver:~1\nspec:\n  selector:\n    matchLabels:\n      app: hello\n  template:\n    metadata:\n      labels:\n        app: hello\n    spec:\n      containers:\n      - name: hello\n        image: {image}\n"
    )
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: quickstart\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: hello\n  namespace: quickstart\nspec:\n  selector:\n    app: hello\n  ports:\n  - port: 80\n    protocol: TCP\n";

/// The binaries next to this one (`target/<profile>/examples/`), built if missing.
fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name(name);
    if !path.is_file() {
        say(&format!("Building {name}"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = me.components().any(|c| c.as_os_str() == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "examples", "--example", name]);
        if release {
            build.arg("--release");
        }
        let status = build.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of {name} failed"));
        }
    }
    Ok(path)
}

/// When the kube-apiserver and etcd binaries are not known yet, prepares them
/// (`scripts/kube-assets.sh`, minutes the first time) and runs this program again with
/// `KUBEBUILDER_ASSETS` set; `Some(exit code)` of that run.
fn with_kube_assets() -> Result<Option<ExitCode>, String> {
    if flux_testenv::kube_assets().is_some() {
        return Ok(None);
    }
    say(
        "Preparing kube-apiserver and etcd (scripts/kube-assets.sh: the first time it builds kube-apiserver, about 5 minutes on 2 cores)",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-assets.sh");
    let child = Command::new(&script)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let out = with_progress(child, &kube_assets_log())?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(me).env("KUBEBUILDER_ASSETS", &dir).status().map_err(|e| e.to_string())?;
    Ok(Some(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }))
}

/// Where scripts/kube-assets.sh writes its build log.
fn kube_assets_log() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_default();
    cache.join("kube-assets/v1.20.2-reflect2-1.0.2/build.log")
}

/// Waits for `child`, printing every 15 s how long it has run and the last line of `log` (what
/// the build is doing), so a long step is never silent.
fn with_progress(child: std::process::Child, log: &Path) -> Result<std::process::Output, String> {
    let started = std::time::Instant::now();
    let (done, wait) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    while wait.recv_timeout(Duration::from_secs(15)).is_err() {
        let last = std::fs::read_to_string(log)
            .ok()
            .and_then(|l| l.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned));
        let mut doing = last.unwrap_or_else(|| "starting".into());
        doing.truncate(100);
        println!("    ... {}s: {doing}", started.elapsed().as_secs());
    }
    waiter.join().map_err(|_| "the progress thread failed".to_owned())?.map_err(|e| e.to_string())
}

/// Installs the Debian packages that provide `programs` (program, package) when some are
/// missing: as root with apt-get, showing apt's progress. Refuses to without root.
fn ensure_installed(programs: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> =
        programs.iter().filter(|(program, _)| find_program(program).is_none()).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return Err(format!("{} missing: run as root, or `apt-get install {}`", missing.join(", "), missing.join(" ")));
    }
    say(&format!("Installing {} (apt-get)", missing.join(", ")));
    for args in
        [vec!["update", "-q"], [vec!["install", "-y", "-q", "--no-install-recommends"], missing.clone()].concat()]
    {
        let status = Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("apt-get {} failed", args.join(" ")));
        }
    }
    Ok(())
}

/// A command's output, each line indented under the narration.
fn indent(output: &[u8]) -> String {
    String::from_utf8_lossy(output).lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

async fn api(url: &str, path: &str) -> Option<Value> {
    let response = reqwest::Client::new().get(format!("{url}/api/v1{path}")).bearer_auth(TOKEN).send().await.ok()?;
    response.json().await.ok()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("gave up waiting for {what}"))
}

async fn running_image(url: &str) -> Option<String> {
    let list = api(url, "/workloads?namespace=quickstart").await?;
    let w = list.as_array()?.iter().find(|w| w["id"] == "quickstart:deployment/hello")?;
    w["status"].is_object().then(|| w["containers"][0]["image"].as_str().map(str::to_owned))?
}

#[tokio::main]
async fn main() -> ExitCode {
    match with_kube_assets() {
        Ok(Some(code)) => return code,
        Ok(None) => {}
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let fluxd = sibling("fluxd")?;
    let fluxctl_bin = sibling("fluxctl")?;
    say("Starting a real Kubernetes API server (etcd + kube-apiserver on loopback)");
    let kube = KubeApiServer::start().ok_or("kube-apiserver could not start")?;
    println!("    {}", kube.url());

    ensure_installed(&[("docker-registry", "docker-registry"), ("skopeo", "skopeo")])?;
    say("Starting a local registry (docker-registry) and pushing hello:1.0.0");
    let registry = TestRegistry::start().ok_or("docker-registry could not start")?;
    let image = format!("{}/demo/hello:1.0.0", registry.host());
    registry.pusher().push_image(&image, Some("2024-01-01T00:00:00Z")).await.map_err(|e| e.to_string())?;

    say("Creating a git repository with a small app (namespace, deployment, service)");
    let repo = BareRepo::new().ok_or("git is not installed")?;
    let app = app_manifest(&image);
    repo.commit_files(
        &[
            ("deploy/namespace.yaml", NAMESPACE.as_bytes()),
            ("deploy/hello.yaml", app.as_bytes()),
            ("deploy/service.yaml", SERVICE.as_bytes()),
        ],
        "Add the hello app",
    );
    println!("    {}", repo.file_url());

    say("Running fluxd");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut args = vec![
        format!("--git-url={}", repo.file_url()),
        "--git-branch=main".to_owned(),
        "--git-path=deploy".to_owned(),
        format!("--kubeconfig={}", kube.kubeconfig(ADMIN).display()),
        format!("--listen=127.0.0.1:{port}"),
        "--git-poll-interval=2s".to_owned(),
        "--sync-interval=10s".to_owned(),
        "--automation-interval=1h".to_owned(),
        "--sync-garbage-collection".to_owned(),
    ];
    args.push(format!("--registry-insecure-host={}", registry.host()));
    println!("    fluxd {}", args.join(" "));
    let child = Command::new(&fluxd)
        .args(&args)
        .env("FLUX_API_TOKEN", TOKEN)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .spawn()
        .map_err(|e| format!("cannot start fluxd: {e}"))?;
    let _daemon = Daemon(child);
    let up = wait_until(PATIENCE, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    if !up {
        return Err("fluxd did not start".into());
    }

    say("The first sync: git -> cluster");
    wait_for("the first sync", async || api(&url, "/status").await.is_some_and(|s| !s["last_sync"].is_null())).await?;
    let status = api(&url, "/status").await.unwrap_or_default();
    for a in status["last_sync"]["applied"].as_array().into_iter().flatten() {
        println!("    {} {}", a["id"].as_str().unwrap_or_default(), a["outcome"].as_str().unwrap_or("applied"));
    }
    wait_for("the app to run", async || running_image(&url).await.is_some()).await?;
    println!("    the cluster runs {}", running_image(&url).await.unwrap_or_default());

    say("A new tag is pushed: hello:1.1.0 (and 2.0.0, which the filter semver:~1 leaves out)");
    let pusher = registry.pusher();
    for (tag, created) in [("1.1.0", "2024-02-01T00:00:00Z"), ("2.0.0", "2024-03-01T00:00:00Z")] {
        let image = format!("{}/demo/hello:{tag}", registry.host());
        pusher.push_image(&image, Some(created)).await.map_err(|e| e.to_string())?;
    }
    println!("    the registry notifies fluxd (POST /api/v1/notify/registry)");
    let before = repo.head();
    let event =
        serde_json::json!({"events": [{"action": "push", "target": {"repository": "demo/hello", "tag": "1.1.0"}}]});
    reqwest::Client::new()
        .post(format!("{url}/api/v1/notify/registry"))
        .bearer_auth(TOKEN)
        .json(&event)
        .send()
        .await
        .map_err(|e| e.to_string())?;

    say("Automation commits the new image");
    wait_for("the automation commit", async || repo.head() != before).await?;
    println!("{}", repo.git(&["show", "--stat", "--patch", "--format=    %h %s%n%n%b", "refs/heads/main"]));

    say("The cluster follows");
    let wanted = format!("{}/demo/hello:1.1.0", registry.host());
    wait_for("the cluster to run 1.1.0", async || running_image(&url).await.as_deref() == Some(wanted.as_str()))
        .await?;
    println!("    the cluster runs {wanted}");

    say("A lock: fluxctl lock, then a release to the locked workload is refused");
    let fluxctl =
        |args: &[&str]| Command::new(&fluxctl_bin).args(args).env("FLUX_URL", &url).env("FLUX_TOKEN", TOKEN).output();
    let id = "quickstart:deployment/hello";
    let locked = fluxctl(&["lock", "--workload", id, "--message", "frozen for the demo"]).map_err(|e| e.to_string())?;
    println!("    $ fluxctl lock --workload {id} --message 'frozen for the demo'\n{}", indent(&locked.stdout));
    if !locked.status.success() {
        return Err(format!("fluxctl lock failed: {}", String::from_utf8_lossy(&locked.stderr).trim()));
    }
    let newer = format!("{}/demo/hello:1.2.0", registry.host());
    pusher.push_image(&newer, Some("2024-04-01T00:00:00Z")).await.map_err(|e| e.to_string())?;
    let refused = fluxctl(&["release", "--workload", id, "--update-image", &newer]).map_err(|e| e.to_string())?;
    println!("    $ fluxctl release --workload {id} --update-image {newer}\n{}", indent(&refused.stderr));
    if refused.status.success() || !String::from_utf8_lossy(&refused.stderr).contains("locked") {
        return Err("the release to a locked workload was not refused".into());
    }
    println!("    (exit status {}; the cluster still runs {wanted})", refused.status.code().unwrap_or(-1));
    say("Done: git -> cluster and registry -> git, all real. Everything is stopped and removed now.");
    Ok(())
}
