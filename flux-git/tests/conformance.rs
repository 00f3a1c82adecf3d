//! flux-core's Source conformance suite against real git remotes: a bare repository over
//! `file://` (and as a plain path), `git daemon` (git://) and OpenSSH's sshd (ssh://).

use flux_core::testkit;
use flux_git::{Credentials, GitConfig, GitSource, HostKeyCheck};
use flux_testenv::git::{BareRepo, GitDaemon, Sshd};

fn open(config: GitConfig) -> GitSource {
    GitSource::open(config).expect("open git source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_url() {
    let Some(repo) = BareRepo::new() else { return };
    let url = repo.file_url();
    testkit::source::run(&open(GitConfig::new(&url, "main")), &open(GitConfig::new(&url, "main"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_path() {
    let Some(repo) = BareRepo::new() else { return };
    let path = repo.path().display().to_string();
    testkit::source::run(&open(GitConfig::new(&path, "main")), &open(GitConfig::new(&path, "main"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_daemon() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let url = daemon.url();
    testkit::source::run(&open(GitConfig::new(&url, "main")), &open(GitConfig::new(&url, "main"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_with_deploy_key() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let config = || {
        GitConfig::new(sshd.url(&repo), "main")
            .with_credentials(Credentials::SshKey { private_key: sshd.deploy_key() })
            .with_host_key_check(HostKeyCheck::KnownHostsFile(sshd.known_hosts()))
    };
    testkit::source::run(&open(config()), &open(config())).await;
}
