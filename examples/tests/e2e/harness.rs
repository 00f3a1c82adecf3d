//! The real servers, the built `fluxd` and `fluxctl`, and helpers to drive and observe them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use flux_core::{Cluster, ObjectRef, ResourceId};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::git::{BareRepo, GitDaemon, git};
use flux_testenv::kube::ADMIN;
use flux_testenv::{KubeApiServer, TestRegistry, free_port, wait_until};

/// The API token the test's fluxd requires.
pub(crate) const TOKEN: &str = "e2e-token-5f2b9c";

/// How long anything may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// Where cargo put the example binaries: next to the test's `deps` directory.
pub(crate) fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!(
            "{} is missing: build it with `cargo build -p examples --examples` (cargo test -p examples does)",
            path.display()
        )
    });
    // `cargo test --test e2e` alone does not rebuild examples: refuse to test a stale binary.
    let sources = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest = [name, "../flux-daemon/src", "../flux-api/src"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(sources.join(dir)).ok())
        .flatten()
        .filter_map(|entry| entry.ok()?.metadata().ok()?.modified().ok())
        .max();
    assert!(
        newest.is_none_or(|newest| newest <= built),
        "{} is older than its sources: rebuild with `cargo build -p examples --examples`",
        path.display()
    );
    path
}

/// Every server the test needs, plus a work directory.
pub(crate) struct Servers {
    pub(crate) kube: KubeApiServer,
    pub(crate) registry: TestRegistry,
    pub(crate) repo: BareRepo,
    pub(crate) git_daemon: GitDaemon,
    pub(crate) work: tempfile::TempDir,
}

impl Servers {
    /// Starts them all; `None` outside CI when one is missing (after a loud message).
    pub(crate) fn start() -> Option<Self> {
        let kube = KubeApiServer::start()?;
        let registry = TestRegistry::start()?;
        let repo = BareRepo::new()?;
        let git_daemon = GitDaemon::start(&repo)?;
        let work = tempfile::tempdir().expect("a work directory");
        Some(Servers { kube, registry, repo, git_daemon, work })
    }

    /// The cluster as the test sees it (admin).
    pub(crate) async fn cluster(&self) -> KubeCluster {
        KubeCluster::from_kubeconfig(&self.kube.kubeconfig(ADMIN), ClusterOptions::default()).await.expect("a client")
    }

    /// Pushes `repo:tag` built at `created` (RFC 3339) into the registry.
    pub(crate) async fn push(&self, reference: &str, created: &str) {
        let full = format!("{}/{reference}", self.registry.host());
        self.registry.pusher().push_image(&full, Some(created)).await.unwrap_or_else(|e| panic!("push {full}: {e}"));
    }

    /// The fluxd flags shared by every run of the test.
    pub(crate) fn fluxd_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            format!("--git-url={}", self.git_daemon.url()),
            "--git-branch=main".into(),
            "--git-path=deploy".into(),
            format!("--kubeconfig={}", self.kube.kubeconfig(ADMIN).display()),
            format!("--registry-insecure-host={}", self.registry.host()),
            "--git-user=Flux Bot".into(),
            "--git-email=bot@flux.invalid".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Runs `fluxd` to completion (`--once`, `--dry-run`).
    pub(crate) fn fluxd_once(&self, extra: &[&str]) -> Output {
        let out = Command::new(example_binary("fluxd"))
            .args(self.fluxd_args(extra))
            .env("RUST_LOG", "warn")
            .output()
            .expect("run fluxd");
        eprintln!("fluxd {extra:?}:\n{}{}", text(&out.stdout), text(&out.stderr));
        out
    }

    /// Commits `files` to `main` as a colleague would.
    pub(crate) fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        self.repo.commit_files(&files, message)
    }

    /// Deletes `path` from `main` in one commit (through a clone, as a person would).
    pub(crate) fn delete(&self, path: &str, message: &str) -> String {
        let clone = self.work.path().join(format!("clone-{}", free_port()));
        git(self.work.path(), &["clone", "--quiet", &self.repo.file_url(), &clone.display().to_string()], None);
        git(&clone, &["rm", "--quiet", path], None);
        git(&clone, &["commit", "--quiet", "-m", message], None);
        git(&clone, &["push", "--quiet", "origin", "main"], None);
        self.repo.head()
    }

    /// The `+`/`-` lines of `git diff from to` (file headers included): what a commit changed.
    pub(crate) fn changed_lines(&self, from: &str, to: &str) -> String {
        let diff = self.repo.git(&["diff", "--no-color", "-U0", from, to]);
        diff.lines().filter(|l| l.starts_with('+') || l.starts_with('-')).map(|l| format!("{l}\n")).collect()
    }

    /// Waits until `main` moves past `from`; the new head.
    pub(crate) fn wait_for_commit(&self, from: &str) -> String {
        assert!(wait_until(PATIENCE, || self.repo.head() != from), "no commit on top of {from}");
        self.repo.head()
    }

    /// The object `id` (of `api_version`) in the cluster, if it is there.
    pub(crate) async fn get(&self, api_version: &str, id: &str) -> Option<flux_core::KubeObject> {
        let id: ResourceId = id.parse().expect("an id");
        let reference = ObjectRef { api_version: api_version.to_owned(), id };
        self.cluster().await.get(&reference).await.expect("get from the cluster")
    }
}

/// A running fluxd, killed (by PID) when dropped.
pub(crate) struct Fluxd {
    child: std::process::Child,
    log: PathBuf,
    pub(crate) url: String,
}

impl Drop for Fluxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs fluxctl against the API at `url` with the test token, without the machine's git config
/// (which would give `--user` a default) nor its kubeconfig (which would give `-n` one).
pub(crate) fn fluxctl_at(url: &str, args: &[&str]) -> Output {
    Command::new(example_binary("fluxctl"))
        .args(args)
        .env("FLUX_URL", url)
        .env("FLUX_TOKEN", TOKEN)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("KUBECONFIG", "/dev/null")
        .output()
        .expect("run fluxctl")
}

impl Fluxd {
    /// Starts fluxd as a daemon with `extra` flags and waits until its API answers.
    pub(crate) fn start(servers: &Servers, extra: &[&str]) -> Self {
        let port = free_port();
        let mut command = Command::new(example_binary("fluxd"));
        command.args(servers.fluxd_args(extra)).arg(format!("--listen=127.0.0.1:{port}")).env("FLUX_API_TOKEN", TOKEN);
        Fluxd::spawn(servers, command, port)
    }

    /// Starts `command`, a fluxd (or a program that execs one) listening on `port` with the
    /// API token [`TOKEN`], and waits until its API answers.
    pub(crate) fn spawn(servers: &Servers, mut command: Command, port: u16) -> Self {
        let log = servers.work.path().join(format!("fluxd-{port}.log"));
        let file = std::fs::File::create(&log).expect("create the fluxd log");
        command.stdout(file.try_clone().expect("log file")).stderr(file);
        let mut child = command.spawn().expect("start fluxd");
        let url = format!("http://127.0.0.1:{port}");
        let up = wait_until(PATIENCE, || {
            matches!(child.try_wait(), Ok(None)) && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let fluxd = Fluxd { child, log, url };
        assert!(up, "fluxd did not start:\n{}", fluxd.log());
        fluxd
    }

    /// Runs fluxctl against this daemon (without the machine's git config, which would give
    /// `--user` a default, nor its kubeconfig, which would give `-n` one).
    pub(crate) fn fluxctl(&self, args: &[&str]) -> Output {
        let out = fluxctl_at(&self.url, args);
        eprintln!("fluxctl {args:?}:\n{}{}", text(&out.stdout), text(&out.stderr));
        out
    }

    /// Runs fluxctl and requires success; its standard output.
    pub(crate) fn fluxctl_ok(&self, args: &[&str]) -> String {
        let out = self.fluxctl(args);
        assert!(out.status.success(), "fluxctl {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `GET path` with `token` (or none): status and body.
    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("reach fluxd");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// `POST path` with the token and a JSON body: status and body.
    pub(crate) async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("reach fluxd");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// What fluxd logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks the daemon to stop (SIGTERM) and waits for it to exit cleanly.
    pub(crate) fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(killed.success());
        let mut status = None;
        wait_until(PATIENCE, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "fluxd did not stop cleanly on SIGTERM: {status:?}\n{}",
            self.log()
        );
    }
}

/// Bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
