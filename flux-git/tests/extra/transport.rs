//! ssh: host keys are checked, deploy keys are used alone.

use flux_core::{Error, FileChange, Source};
use flux_git::{Credentials, GitConfig, HostKeyCheck};
use flux_testenv::git::{BareRepo, Sshd};

use crate::{open, request};

fn ssh_config(sshd: &Sshd, repo: &BareRepo, check: HostKeyCheck) -> GitConfig {
    GitConfig::new(sshd.url(repo), "main")
        .with_credentials(Credentials::SshKey { private_key: sshd.deploy_key() })
        .with_host_key_check(check)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_wrong_host_keys_are_refused() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let empty = tempfile::NamedTempFile::new().unwrap();
    for check in
        [HostKeyCheck::KnownHostsFile(empty.path().into()), HostKeyCheck::KnownHostsFile(sshd.wrong_known_hosts())]
    {
        let source = open(ssh_config(&sshd, &repo, check.clone()));
        let err = source.refresh().await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{check:?}: {err:?}");
        assert!(err.to_string().contains("host key"), "the error must say why: {err}");
    }
    // The same server with its real key in known_hosts works, and pushes over ssh too.
    let source = open(ssh_config(&sshd, &repo, HostKeyCheck::KnownHostsFile(sshd.known_hosts())));
    let head = source.refresh().await.unwrap();
    let rev = source.commit(&request(&head, vec![FileChange::write("s.yaml", "s")], "over ssh")).await.unwrap();
    assert_eq!(repo.head(), rev.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_opt_out_accepts_any_host_key() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let source = open(ssh_config(&sshd, &repo, HostKeyCheck::InsecureAcceptAny));
    assert_eq!(source.refresh().await.unwrap().as_str(), repo.head());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_server_does_not_know_is_unauthorized() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let config = ssh_config(&sshd, &repo, HostKeyCheck::KnownHostsFile(sshd.known_hosts()))
        .with_credentials(Credentials::SshKey { private_key: key });
    let err = open(config).refresh().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}
