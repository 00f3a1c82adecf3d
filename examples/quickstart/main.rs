//! The quickstart: on a machine with no cluster, brings up real local servers (kube-apiserver +
//! etcd from flux-testenv, a git repository with a small app, docker-registry when installed),
//! runs `fluxd` against them and narrates: the sync, a new tag pushed, the automation commit
//! (as a diff), the cluster updated. Nothing is simulated.
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
    say("Preparing kube-apiserver and etcd (scripts/kube-assets.sh; the first time takes minutes)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-assets.sh");
    let out = Command::new(&script).output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(me).env("KUBEBUILDER_ASSETS", &dir).status().map_err(|e| e.to_string())?;
    Ok(Some(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }))
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
    say("Starting a real Kubernetes API server (etcd + kube-apiserver on loopback)");
    let kube = KubeApiServer::start().ok_or("kube-apiserver could not start")?;
    println!("    {}", kube.url());

    let registry = if find_program("docker-registry").is_some() {
        say("Starting a local registry (docker-registry) and pushing hello:1.0.0");
        let registry = TestRegistry::start().ok_or("docker-registry could not start")?;
        let image = format!("{}/demo/hello:1.0.0", registry.host());
        registry.pusher().push_image(&image, Some("2024-01-01T00:00:00Z")).await.map_err(|e| e.to_string())?;
        Some(registry)
    } else {
        say("docker-registry is not installed: no registry, so no automation (apt-get install docker-registry)");
        None
    };
    let image = match &registry {
        Some(r) => format!("{}/demo/hello:1.0.0", r.host()),
        None => "nginx:1.25.0".to_owned(),
    };

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
        "--git-path=deploy".to_owned(),
        format!("--kubeconfig={}", kube.kubeconfig(ADMIN).display()),
        format!("--listen=127.0.0.1:{port}"),
        "--git-poll-interval=2s".to_owned(),
        "--sync-interval=10s".to_owned(),
        "--automation-interval=1h".to_owned(),
        "--sync-garbage-collection".to_owned(),
    ];
    match &registry {
        Some(r) => args.push(format!("--registry-insecure-host={}", r.host())),
        None => args.push("--registry-disable-scanning".to_owned()),
    }
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

    let Some(registry) = registry else {
        say("Done (without a registry there is no automation to show)");
        return Ok(());
    };
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
    say("Done: git -> cluster and registry -> git, all real. Everything is stopped and removed now.");
    Ok(())
}
