//! Flux v1's git behaviours over a real remote: the annotated, signed sync tag (checked with
//! `git tag -v`), notes on the commits made (read with `git notes show`), the ci-skip text, and
//! GPG keys imported into a private GnuPG home.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::{FileChange, Revision, Source};
use flux_git::{GitConfig, Signing};
use flux_testenv::git::BareRepo;

use crate::{open, request};

/// A GnuPG home with one fresh signing key for `test@example.com`, made with
/// `gpg --batch --quick-gen-key`, and that key exported (public and secret) as files.
struct GpgKey {
    dir: tempfile::TempDir,
}

impl GpgKey {
    fn new() -> Option<Self> {
        flux_testenv::require("gpg (gnupg)", flux_testenv::find_program("gpg"))?;
        let key = GpgKey { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir(key.home()).unwrap();
        gpg(
            &key.home(),
            &["--passphrase", "", "--quick-gen-key", "Flux Test <test@example.com>", "ed25519", "sign", "never"],
        );
        let public = gpg(&key.home(), &["--armor", "--export", "test@example.com"]);
        std::fs::write(key.dir.path().join("public.asc"), public).unwrap();
        let secret = gpg(&key.home(), &["--armor", "--export-secret-keys", "test@example.com"]);
        std::fs::create_dir(key.dir.path().join("keys")).unwrap();
        std::fs::write(key.dir.path().join("keys").join("secret.asc"), secret).unwrap();
        Some(key)
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("gnupg")
    }

    fn signing(&self) -> Signing {
        Signing::Gpg { key_id: "test@example.com".into(), gnupg_home: Some(self.home()) }
    }
}

fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg").env("GNUPGHOME", home).arg("--batch").args(args).output().unwrap();
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `git` in the remote with `GNUPGHOME` set, returning (success, stdout + stderr).
fn git_with_home(repo: &BareRepo, home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo.path())
        .args(args)
        .env("GNUPGHOME", home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_tag_is_annotated_signed_and_replaces_a_lightweight_one() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(key) = GpgKey::new() else { return };
    let first = repo.head();
    // A lightweight tag, as an older flux-rs (or a hand) left it.
    repo.git(&["tag", "flux-sync", &first]);
    assert_eq!(repo.git(&["cat-file", "-t", "flux-sync"]), "commit");

    let source = open(GitConfig::new(repo.file_url(), "main").with_signing(key.signing()));
    let head = source.refresh().await.unwrap();
    let second = source.commit(&request(&head, vec![FileChange::write("a.yaml", "a: 1\n")], "a")).await.unwrap();
    source.set_sync_marker(&second).await.unwrap();

    assert_eq!(repo.git(&["cat-file", "-t", "flux-sync"]), "tag", "annotated now");
    assert_eq!(repo.git(&["rev-parse", "flux-sync^{commit}"]), second.as_str());
    let (verified, said) = git_with_home(&repo, &key.home(), &["tag", "-v", "flux-sync"]);
    assert!(verified, "git tag -v must accept the sync tag: {said}");
    assert!(said.contains("Good signature") && said.contains("Sync pointer"), "{said}");
    let object = repo.git(&["cat-file", "tag", "flux-sync"]);
    assert!(object.contains("tagger Weave Flux <support@weave.works>"), "{object}");

    // Readers see the commit, not the tag object, and a second move works the same way.
    let reader = open(GitConfig::new(repo.file_url(), "main"));
    assert_eq!(reader.refresh().await.unwrap(), second);
    assert_eq!(reader.sync_marker().await.unwrap(), Some(second.clone()));
    source.set_sync_marker(&Revision::new(first.clone())).await.unwrap();
    assert_eq!(repo.git(&["rev-parse", "flux-sync^{commit}"]), first);
    assert!(git_with_home(&repo, &key.home(), &["tag", "-v", "flux-sync"]).0);
    assert_eq!(reader.refresh().await.unwrap(), second);
    assert_eq!(reader.sync_marker().await.unwrap(), Some(Revision::new(first)));

    // Without a signing key the tag is annotated and unsigned.
    let unsigned = open(GitConfig::new(repo.file_url(), "main"));
    unsigned.refresh().await.unwrap();
    unsigned.set_sync_marker(&second).await.unwrap();
    assert_eq!(repo.git(&["cat-file", "-t", "flux-sync"]), "tag");
    assert!(!git_with_home(&repo, &key.home(), &["tag", "-v", "flux-sync"]).0, "no signature to verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_gets_a_note_naming_its_job_and_the_ci_skip_text() {
    let Some(repo) = BareRepo::new() else { return };
    let message = "Release web:1.2\n\n - default:deployment/web (web): web:1.1 -> web:1.2\n\n\
                   Flux-Change: release\nFlux-Job: job-41\nFlux-User: jane\n";
    let config = || GitConfig::new(repo.file_url(), "main").with_notes_ref("flux").with_ci_skip_message("[skip ci]");
    let source = open(config());
    let head = source.refresh().await.unwrap();
    let first = source.commit(&request(&head, vec![FileChange::write("a.yaml", "a: 1\n")], message)).await.unwrap();

    let note = repo.git(&["notes", "--ref=flux", "show", first.as_str()]);
    assert!(note.starts_with("{\"jobID\":\"job-41\",\"spec\":{\"type\":\"image\""), "{note}");
    assert!(note.contains("\"user\":\"jane\"") && note.contains("web:1.1 -> web:1.2"), "{note}");
    let written = repo.git(&["log", "-1", "--format=%B", first.as_str()]);
    assert!(written.contains("web:1.2\n\n[skip ci]\n\nFlux-Change: release"), "before the trailers: {written}");
    assert_eq!(repo.git(&["log", "-1", "--format=%(trailers:key=Flux-Job,valueonly)", first.as_str()]), "job-41");

    // Someone else notes a commit on the remote meanwhile; a fresh mirror's note is added on top.
    let initial = head.to_string();
    repo.git(&["notes", "--ref=flux", "add", "-m", "by hand", &initial]);
    let other = open(config());
    let head = other.refresh().await.unwrap();
    let automation = "Auto-release web:1.3\n\nFlux-Change: automation\nFlux-Job: job-42\n";
    let second = other.commit(&request(&head, vec![FileChange::write("a.yaml", "a: 2\n")], automation)).await.unwrap();
    assert!(repo.git(&["notes", "--ref=flux", "show", second.as_str()]).contains("\"type\":\"auto\""));
    assert!(repo.git(&["notes", "--ref=flux", "show", first.as_str()]).contains("job-41"), "kept");
    assert_eq!(repo.git(&["notes", "--ref=flux", "show", &initial]), "by hand", "kept");
    // The first source's mirror is behind on the notes ref; its next note is still pushed.
    let head = source.refresh().await.unwrap();
    let third = source.commit(&request(&head, vec![FileChange::write("b.yaml", "b: 1\n")], "policy\n")).await.unwrap();
    assert!(repo.git(&["notes", "--ref=flux", "show", third.as_str()]).contains("\"jobID\":\"\""));
    assert!(repo.git(&["notes", "--ref=flux", "show", second.as_str()]).contains("job-42"), "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_gpg_keys_sign_and_verify_in_a_private_home() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(key) = GpgKey::new() else { return };
    // A directory (its regular files) and a file, as --git-gpg-key-import takes them.
    let paths = [key.dir.path().join("keys"), key.dir.path().join("public.asc")];
    let (home, imported) = flux_git::GnupgHome::import(&paths, true).unwrap();
    assert_eq!(imported.len(), 2, "{imported:?}");
    assert_ne!(home.path(), key.home());
    let listed = gpg(home.path(), &["--list-secret-keys", "--with-colons"]);
    assert!(listed.contains("Flux Test <test@example.com>"), "{listed}");

    let signing = Signing::Gpg { key_id: "test@example.com".into(), gnupg_home: Some(home.path().to_owned()) };
    let trusted = flux_git::TrustedKeys { gnupg_home: Some(home.path().to_owned()), ssh_allowed_signers: None };
    let source = open(GitConfig::new(repo.file_url(), "main").with_signing(signing));
    let head = source.refresh().await.unwrap();
    let signed = source.commit(&request(&head, vec![FileChange::write("a.yaml", "a: 1\n")], "a")).await.unwrap();
    source.set_sync_marker(&signed).await.unwrap();
    let verifier = open(GitConfig::new(repo.file_url(), "main").with_verification(flux_git::VerifyMode::Head, trusted));
    assert_eq!(verifier.refresh().await.unwrap(), signed, "verified with the imported key");
    let (ok, said) = git_with_home(&repo, home.path(), &["tag", "-v", "flux-sync"]);
    assert!(ok && said.contains("Good signature"), "{said}");

    let missing = flux_git::GnupgHome::import(&[key.dir.path().join("nope")], false).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
    std::fs::write(key.dir.path().join("keys").join("garbage.asc"), "not a key").unwrap();
    let bad = flux_git::GnupgHome::import(&[key.dir.path().join("keys")], false).unwrap_err();
    assert!(bad.to_string().contains("garbage.asc"), "names the file: {bad}");
    let dir = home.path().to_owned();
    drop(home);
    assert!(!dir.exists(), "the private home goes with the process");
}
