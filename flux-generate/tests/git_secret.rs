//! Flux v1's `--git-secret` against the real programs: a repository prepared with the real
//! `git secret init`, `tell`, `add` and `hide` (a key made by `gpg --quick-gen-key`), committed
//! with only the `*.secret` files and `.gitsecret/`, read by flux-git over `file://` and synced
//! by `RepoGenerator` into a real kube-apiserver: the hidden objects arrive as plaintext; with
//! a key that does not fit the revision is unusable, the error names the repository, nothing is
//! pruned and no plaintext is logged; automation never edits a revealed file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::*;
use flux_core::generate::{EditChange, Generator, Snapshot, WorkloadEdit};
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine};
use flux_core::{ResourceId, Source, SyncIdentity};
use flux_generate::{GenerateConfig, GitSecret, RepoGenerator};
use flux_git::{GitConfig, GitSource};
use flux_testenv::KubeApiServer;
use flux_testenv::git::BareRepo;

const PASSWORD: &str = "gs-Pa55w0rd-4f3e2d1c";
const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\ntype: Opaque\nstringData:\n  password: gs-Pa55w0rd-4f3e2d1c\n";
const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  level: info\n";

/// `git secret` (Debian's git-secret) and `gpg`, or `None` (skipped, or failing in CI).
fn tools() -> bool {
    flux_testenv::require("git-secret (Debian's git-secret)", flux_testenv::find_program("git-secret")).is_some()
        && flux_testenv::require("gpg (Debian's gnupg)", flux_testenv::find_program("gpg")).is_some()
}

/// Runs `program args` in `dir` with `GNUPGHOME=home`; panics with its output when it fails.
fn run(dir: &Path, home: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GNUPGHOME", home)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("the program runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

/// A GnuPG home (0700) with one new key for `email`, and its gpg-agent stopped on drop.
struct Keyring(tempfile::TempDir);

impl Keyring {
    fn new(email: &str) -> Keyring {
        let dir = tempfile::Builder::new().prefix("gs-gnupg-").tempdir().expect("tempdir");
        let home = Keyring(dir);
        let user = format!("Flux Test <{email}>");
        run(
            home.path(),
            home.path(),
            "gpg",
            &["--batch", "--passphrase", "", "--quick-gen-key", &user, "default", "default", "never"],
        );
        home
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").arg("--homedir").arg(self.path()).args(["--kill", "all"]).status();
    }
}

/// A clone of `repo` where git-secret is set up for `key`, `files` hidden and `plain` committed
/// as they are; pushed. Returns the work tree.
fn prepare(repo: &BareRepo, key: &Keyring, hidden: &[(&str, &str)], plain: &[(&str, &str)]) -> PathBuf {
    let work = repo.base_dir().join("work");
    run(repo.base_dir(), key.path(), "git", &["clone", "-q", &repo.file_url(), "work"]);
    run(&work, key.path(), "git", &["secret", "init"]);
    run(&work, key.path(), "git", &["secret", "tell", "flux@example.com"]);
    for (path, content) in hidden.iter().chain(plain) {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }
    for (path, _) in hidden {
        run(&work, key.path(), "git", &["secret", "add", path]);
    }
    run(&work, key.path(), "git", &["secret", "hide"]);
    // git-secret lists the plaintext in .gitignore: `git add .` commits only the *.secret files.
    run(&work, key.path(), "git", &["add", "."]);
    run(&work, key.path(), "git", &["commit", "-q", "-m", "secrets hidden with git-secret"]);
    run(&work, key.path(), "git", &["push", "-q", "origin", "main"]);
    let _ = Command::new("gpgconf").arg("--homedir").arg(work.join(".gitsecret/keys")).args(["--kill", "all"]).status();
    work
}

fn revealing(repo: &BareRepo, key: &Keyring) -> Arc<RepoGenerator> {
    Arc::new(RepoGenerator::new(GenerateConfig {
        timeout: Duration::from_secs(60),
        git_secret: Some(GitSecret::new(repo.file_url()).with_gnupg_home(key.path())),
        ..GenerateConfig::default()
    }))
}

fn engine(source: &GitSource, cluster: &flux_k8s::KubeCluster, generator: Arc<RepoGenerator>) -> SyncEngine {
    let mut config = SyncConfig::new(SyncIdentity::new("git-secret").expect("identity"), Vec::<String>::new());
    config.garbage_collection = GarbageCollection::On;
    SyncEngine::new(Arc::new(source.clone()), Arc::new(cluster.clone()), generator, config)
}

#[test]
fn hidden_files_sync_as_plaintext_a_wrong_key_stops_everything_and_edits_are_refused() {
    let logs = logs();
    if !tools() {
        return;
    }
    let Some(server) = KubeApiServer::start() else { return };
    let Some(repo) = BareRepo::new() else { return };
    let key = Keyring::new("flux@example.com");
    let web = deployment_yaml("web", "nginx:1.25", &[("fluxcd.io/automated", "true")])
        .replace("  name: web\n", "  name: web\n  namespace: default\n");
    let work = prepare(
        &repo,
        &key,
        &[("apps/secret.yaml", SECRET), ("apps/web.yaml", &web)],
        &[("apps/settings.yaml", SETTINGS)],
    );
    let committed = repo.git(&["ls-tree", "-r", "--name-only", "main"]);
    assert!(committed.contains("apps/secret.yaml.secret") && committed.contains(".gitsecret/paths/mapping.cfg"));
    assert!(!committed.lines().any(|l| l == "apps/secret.yaml" || l == "apps/web.yaml"), "{committed}");
    let source = GitSource::open(GitConfig::new(repo.file_url(), "main")).expect("a git source");

    runtime().block_on(async {
        let cluster = cluster(&server).await;
        let generator = revealing(&repo, &key);
        let report = engine(&source, &cluster, generator.clone()).sync_head().await.expect("sync");
        let errors = report.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n");
        assert!(report.is_success(), "{errors}");
        let secret = live(&cluster, "v1", "default:secret/db").await.expect("the revealed Secret exists");
        let b64 = secret["data"]["password"].as_str().expect("data");
        let password = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        assert_eq!(String::from_utf8(password).expect("UTF-8"), PASSWORD);
        assert_eq!(live_image(&cluster, "default:deployment/web").await.as_deref(), Some("nginx:1.25"));
        assert!(live(&cluster, "v1", "default:configmap/settings").await.is_some());

        // Revealed objects come from their path; automation never writes there (not in git).
        let head = source.refresh().await.expect("head");
        let snapshot = Snapshot::read(Arc::new(source.clone()), head, &[]).await.expect("snapshot");
        let generated = generator.generate(&snapshot).await;
        let web_object = generated.objects.iter().find(|o| o.id().to_string() == "default:deployment/web");
        assert_eq!(web_object.and_then(|o| o.origin()).map(|o| o.file.as_str()), Some("apps/web.yaml"));
        let edits = [
            WorkloadEdit {
                workload: ResourceId::namespaced("default", "Deployment", "web"),
                change: EditChange::Image { container: "app".into(), image: "nginx:1.27".parse().expect("image") },
            },
            WorkloadEdit {
                workload: ResourceId::namespaced("default", "ConfigMap", "settings"),
                change: EditChange::Annotation { key: "fluxcd.io/locked".into(), value: Some("true".into()) },
            },
        ];
        let updated = generator.update(&snapshot, &generated, &edits).await;
        assert_eq!(updated.failed.len(), 1, "{:?}", updated.failed);
        let (index, error) = &updated.failed[0];
        assert_eq!(*index, 0);
        let text = error.to_string();
        assert!(
            text.starts_with("apps/web.yaml: default:deployment/web is defined in this file revealed by git-secret"),
            "{text}"
        );
        let written: Vec<&str> = updated.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(written, ["apps/settings.yaml"], "only the committed plain file is written");

        // The ConfigMap removed, and a key that does not fit: unusable, named, nothing pruned.
        run(&work, key.path(), "git", &["rm", "-q", "apps/settings.yaml"]);
        run(&work, key.path(), "git", &["commit", "-q", "-m", "settings removed"]);
        run(&work, key.path(), "git", &["push", "-q", "origin", "main"]);
        let other = Keyring::new("someone-else@example.com");
        let report = engine(&source, &cluster, revealing(&repo, &other)).sync_head().await.expect("sync");
        assert!(!report.usable, "a reveal that fails makes the revision unusable");
        assert!(report.pruned.is_empty(), "nothing pruned: {:?}", report.pruned);
        assert!(report.applied.is_empty(), "nothing applied");
        let errors = report.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n");
        assert!(errors.contains("git secret reveal -f failed for revision"), "{errors}");
        assert!(errors.contains(&repo.file_url()), "the repository is named: {errors}");
        assert!(errors.contains("No secret key"), "gpg's reason is shown: {errors}");
        assert!(!errors.contains("flux-checkout-"), "no temporary path: {errors}");
        assert!(!errors.contains(PASSWORD), "{errors}");
        assert!(live(&cluster, "v1", "default:configmap/settings").await.is_some(), "not pruned");

        // The right key again: the removal is synced.
        let report = engine(&source, &cluster, generator.clone()).sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert!(live(&cluster, "v1", "default:configmap/settings").await.is_none(), "pruned once usable");
    });
    let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(!logs.contains(PASSWORD), "a log line holds the plaintext:\n{logs}");
}

#[test]
fn without_a_gitsecret_directory_the_revision_is_unusable_and_named() {
    if !tools() {
        return;
    }
    let Some(repo) = BareRepo::new() else { return };
    repo.commit_files(&[("apps/settings.yaml", SETTINGS.as_bytes())], "no git-secret here");
    let key = Keyring::new("flux@example.com");
    let source = GitSource::open(GitConfig::new(repo.file_url(), "main")).expect("a git source");
    runtime().block_on(async {
        let head = source.refresh().await.expect("head");
        let snapshot = Snapshot::read(Arc::new(source.clone()), head, &[]).await.expect("snapshot");
        let generated = revealing(&repo, &key).generate(&snapshot).await;
        assert!(!generated.is_usable());
        let text = generated.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(text.contains(".gitsecret: git-secret is on (fluxd --git-secret)"), "{text}");
        assert!(text.contains(&repo.file_url()), "{text}");
    });
}
