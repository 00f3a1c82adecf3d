//! Signature verification: signed and unsigned commits under each mode, with ssh and OpenPGP keys.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::{Error, FileChange, Revision, Source};
use flux_git::{GitConfig, GitSource, Signing, TrustedKeys, VerifyMode};
use flux_testenv::git::BareRepo;

use crate::{open, request};

/// Throwaway signing keys: an ssh key with its allowed-signers file, and a GnuPG home with one key.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Option<Self> {
        flux_testenv::require("ssh-keygen", flux_testenv::find_program("ssh-keygen"))?;
        flux_testenv::require("gpg (gnupg)", flux_testenv::find_program("gpg"))?;
        let keys = Keys { dir: tempfile::tempdir().unwrap() };
        for name in ["trusted", "stranger"] {
            run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(keys.path(name)));
        }
        let public = std::fs::read_to_string(keys.path("trusted.pub")).unwrap();
        std::fs::write(keys.path("allowed_signers"), format!("test@example.com namespaces=\"git\" {public}")).unwrap();
        for home in ["gnupg", "gnupg-stranger"] {
            std::fs::create_dir(keys.path(home)).unwrap();
            run(Command::new("gpg").env("GNUPGHOME", keys.path(home)).args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                &format!("{home} <test@example.com>"),
                "ed25519",
                "sign",
                "never",
            ]));
        }
        Some(keys)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn trusted(&self) -> TrustedKeys {
        TrustedKeys { gnupg_home: Some(self.path("gnupg")), ssh_allowed_signers: Some(self.path("allowed_signers")) }
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Commits one file through a source that signs with `signing` (or not at all).
async fn commit_as(url: &str, signing: Option<Signing>, file: &str) -> Revision {
    let mut config = GitConfig::new(url, "main");
    if let Some(signing) = signing {
        config = config.with_signing(signing);
    }
    let writer = open(config);
    let head = writer.refresh().await.unwrap();
    writer.commit(&request(&head, vec![FileChange::write(file, file)], file)).await.unwrap()
}

fn reader(url: &str, mode: VerifyMode, keys: &Keys) -> GitSource {
    open(GitConfig::new(url, "main").with_verification(mode, keys.trusted()))
}

fn ssh(keys: &Keys, name: &str) -> Option<Signing> {
    Some(Signing::Ssh { private_key: keys.path(name) })
}

fn gpg(home: &Path) -> Option<Signing> {
    Some(Signing::Gpg { key_id: "test@example.com".into(), gnupg_home: Some(home.to_path_buf()) })
}

#[track_caller]
fn assert_refused(result: flux_core::Result<Revision>, commit: &Revision) {
    match result {
        Err(e @ Error::Unauthorized { .. }) => {
            assert!(e.to_string().contains(commit.as_str()), "must name {commit}: {e}")
        }
        other => panic!("commit {commit} must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_unsigned_commits_under_each_mode() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(keys) = Keys::new() else { return };
    let url = repo.file_url();
    let initial = Revision::new(repo.head());
    // The unsigned initial commit is where the last sync happened.
    let marker = open(GitConfig::new(&url, "main"));
    marker.refresh().await.unwrap();
    marker.set_sync_marker(&initial).await.unwrap();

    let ssh_signed = commit_as(&url, ssh(&keys, "trusted"), "a").await;
    let gpg_signed = commit_as(&url, gpg(&keys.path("gnupg")), "b").await;
    for mode in [VerifyMode::None, VerifyMode::Head, VerifyMode::AllFirstParent] {
        assert_eq!(
            reader(&url, mode, &keys).refresh().await.unwrap(),
            gpg_signed,
            "{mode:?}: both signed by trusted keys"
        );
    }
    assert_eq!(reader(&url, VerifyMode::Head, &keys).refresh().await.unwrap(), gpg_signed);

    let unsigned = commit_as(&url, None, "c").await;
    assert_eq!(reader(&url, VerifyMode::None, &keys).refresh().await.unwrap(), unsigned);
    assert_refused(reader(&url, VerifyMode::Head, &keys).refresh().await, &unsigned);
    assert_refused(reader(&url, VerifyMode::AllFirstParent, &keys).refresh().await, &unsigned);

    // A signed head on top of the unsigned commit: enough for Head, not for AllFirstParent.
    let signed_on_top = commit_as(&url, ssh(&keys, "trusted"), "d").await;
    assert_eq!(reader(&url, VerifyMode::Head, &keys).refresh().await.unwrap(), signed_on_top);
    assert_refused(reader(&url, VerifyMode::AllFirstParent, &keys).refresh().await, &unsigned);

    // Once the marker is past the unsigned commit, only what follows it counts.
    marker.refresh().await.unwrap();
    marker.set_sync_marker(&signed_on_top).await.unwrap();
    assert_eq!(reader(&url, VerifyMode::AllFirstParent, &keys).refresh().await.unwrap(), signed_on_top);
    let _ = ssh_signed;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_by_untrusted_keys_are_refused() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(keys) = Keys::new() else { return };
    let url = repo.file_url();
    let by_stranger = commit_as(&url, ssh(&keys, "stranger"), "a").await;
    assert_refused(reader(&url, VerifyMode::Head, &keys).refresh().await, &by_stranger);
    let by_gpg_stranger = commit_as(&url, gpg(&keys.path("gnupg-stranger")), "b").await;
    assert_refused(reader(&url, VerifyMode::Head, &keys).refresh().await, &by_gpg_stranger);
    // The refusal is not cached away: the same head is refused again.
    let same = reader(&url, VerifyMode::Head, &keys);
    assert_refused(same.refresh().await, &by_gpg_stranger);
    assert_refused(same.refresh().await, &by_gpg_stranger);
}

/// Flux v1's `all` checks every commit since the marker, also those a merge brought in;
/// `first-parent` only the chain of merges and direct commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_checks_merged_commits_and_first_parent_does_not() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(keys) = Keys::new() else { return };
    let url = repo.file_url();
    let marker = open(GitConfig::new(&url, "main"));
    marker.refresh().await.unwrap();
    marker.set_sync_marker(&Revision::new(repo.head())).await.unwrap();
    // A clone: an unsigned commit on a side branch, merged by a merge commit signed by a trusted key.
    let work = tempfile::tempdir().expect("work dir");
    let clone = work.path().join("clone");
    let git = |args: &[&str]| {
        let mut command = Command::new("git");
        command.current_dir(&clone).args(["-c", "user.name=T", "-c", "user.email=t@example.com"]).args(args);
        run(&mut command);
    };
    run(Command::new("git").args(["clone", "--quiet", &url]).arg(&clone));
    git(&["checkout", "--quiet", "-b", "side"]);
    std::fs::write(clone.join("side.txt"), "side").expect("write");
    git(&["add", "side.txt"]);
    git(&["commit", "--quiet", "-m", "unsigned, on a side branch"]);
    let unsigned = Revision::new(
        String::from_utf8(Command::new("git").current_dir(&clone).args(["rev-parse", "HEAD"]).output().unwrap().stdout)
            .unwrap()
            .trim(),
    );
    git(&["checkout", "--quiet", "main"]);
    let key = keys.path("trusted").display().to_string();
    git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={key}"),
        "merge",
        "--quiet",
        "--no-ff",
        "-S",
        "-m",
        "signed merge",
        "side",
    ]);
    git(&["push", "--quiet", "origin", "main"]);
    let merge = Revision::new(repo.head());
    assert_eq!(reader(&url, VerifyMode::AllFirstParent, &keys).refresh().await.unwrap(), merge);
    assert_refused(reader(&url, VerifyMode::All, &keys).refresh().await, &unsigned);
}
