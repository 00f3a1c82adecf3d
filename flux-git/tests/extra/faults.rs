//! A real `git daemon` that misbehaves, behind flux-testenv's TCP proxy or with a hook: down,
//! hanging a push, losing a landed push's answer, refusing pushes, history rewritten under the
//! sync marker, and a repository that grows by 10,000 commits. Each test checks the remote by SHA:
//! no commit lost, none made twice, no merge commit, nothing overwritten.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use flux_core::{FileChange, Source};
use flux_git::{GitConfig, VerifyMode};
use flux_testenv::faults::{TcpMode, TcpProxy};
use flux_testenv::git::{BareRepo, GitDaemon, git};

use crate::{open, request};

const TIMEOUT: Duration = Duration::from_secs(3);

/// A daemon serving `repo` and a proxy in front of it; the URL through the proxy.
fn proxied(repo: &BareRepo) -> Option<(GitDaemon, TcpProxy, String)> {
    let daemon = GitDaemon::start(repo)?;
    let port = daemon.url().trim_start_matches("git://127.0.0.1:").split('/').next().unwrap_or_default().to_owned();
    let proxy = TcpProxy::start(&format!("127.0.0.1:{port}"));
    let url = format!("git://{}/repo.git", proxy.addr());
    Some((daemon, proxy, url))
}

fn commits_after(repo: &BareRepo, base: &str) -> Vec<String> {
    repo.git(&["rev-list", "--reverse", &format!("{base}..main")]).lines().map(str::to_owned).collect()
}

fn parents(repo: &BareRepo, rev: &str) -> usize {
    repo.git(&["rev-list", "--parents", "-n", "1", rev]).split_whitespace().count() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_fails_the_fetch_and_the_next_one_works() {
    let Some(repo) = BareRepo::new() else { return };
    repo.commit_files(&[("a.yaml", b"a: 1\n")], "first");
    let Some((_daemon, proxy, url)) = proxied(&repo) else { return };
    let source = open(GitConfig::new(url.as_str(), "main").with_timeout(TIMEOUT));
    let first = source.refresh().await.expect("fetch");
    let second = repo.commit_files(&[("a.yaml", b"a: 2\n")], "second");

    proxy.set(TcpMode::Refuse);
    let err = source.refresh().await.expect_err("the server is down");
    assert!(err.to_string().contains(proxy.addr()), "the error names the remote: {err}");
    assert!(err.is_retryable(), "a server that is down is worth retrying: {err:?}");
    // What was fetched before is still readable.
    assert_eq!(source.read_file(&first, "a.yaml").await.expect("read"), b"a: 1\n");

    proxy.set(TcpMode::Pass);
    assert_eq!(source.refresh().await.expect("fetch again").as_str(), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_hanging_on_the_server_fails_that_commit_and_the_next_lands_once() {
    let Some(repo) = BareRepo::new() else { return };
    repo.commit_files(&[("a.yaml", b"a: 1\n")], "first");
    let Some((_daemon, proxy, url)) = proxied(&repo) else { return };
    let source = open(GitConfig::new(url.as_str(), "main").with_timeout(TIMEOUT));
    let base = source.refresh().await.expect("fetch");

    proxy.hang_matching(Some(b"git-receive-pack"));
    let err =
        source.commit(&request(&base, vec![FileChange::write("b.yaml", "b: 1\n")], "hung")).await.expect_err("hangs");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(proxy.held() > 0, "the push reached the proxy");
    assert_eq!(repo.head(), base.as_str(), "nothing reached the remote");
    proxy.hang_matching(None);
    proxy.cut();

    // The next attempt lands once, on the remote's head, without the abandoned commit.
    let head = source.refresh().await.expect("fetch");
    assert_eq!(head, base);
    let rev = source.commit(&request(&head, vec![FileChange::write("b.yaml", "b: 1\n")], "again")).await.expect("push");
    assert_eq!(commits_after(&repo, base.as_str()), [rev.to_string()]);
    assert_eq!(parents(&repo, rev.as_str()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_landed_without_an_answer_is_never_made_twice() {
    let Some(repo) = BareRepo::new() else { return };
    repo.commit_files(&[("a.yaml", b"a: 1\n")], "first");
    let Some((_daemon, proxy, url)) = proxied(&repo) else { return };
    let source = open(GitConfig::new(url.as_str(), "main").with_timeout(TIMEOUT));
    let base = source.refresh().await.expect("fetch");

    proxy.lose_replies_after(Some((b"git-receive-pack", b"PACK")));
    let change = || vec![FileChange::write("b.yaml", "b: 1\n")];
    let err = source.commit(&request(&base, change(), "landed")).await.expect_err("no answer");
    assert!(err.to_string().contains("timed out"), "{err}");
    let landed = commits_after(&repo, base.as_str());
    assert_eq!(landed.len(), 1, "the push landed on the server");
    proxy.lose_replies_after(None);
    proxy.cut();

    // Sent again on the same base, it is a conflict, not a second commit.
    let again = source.commit(&request(&base, change(), "landed")).await.expect_err("the base moved");
    assert!(again.is_conflict(), "{again:?}");
    assert_eq!(commits_after(&repo, base.as_str()), landed);
    // Refreshed, the change is already there: nothing to commit.
    let head = source.refresh().await.expect("fetch");
    assert_eq!(head.as_str(), landed[0]);
    assert_eq!(source.read_file(&head, "b.yaml").await.expect("read"), b"b: 1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_the_server_refuses_fails_naming_why_and_loses_nothing() {
    let Some(repo) = BareRepo::new() else { return };
    repo.commit_files(&[("a.yaml", b"a: 1\n")], "first");
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let hook = repo.path().join("hooks").join("pre-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks")).expect("hooks dir");
    std::fs::write(&hook, "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n").expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let source = open(GitConfig::new(daemon.url(), "main").with_timeout(Duration::from_secs(20)));
    let base = source.refresh().await.expect("fetch");
    let err = source
        .commit(&request(&base, vec![FileChange::write("b.yaml", "b: 1\n")], "refused"))
        .await
        .expect_err("the server refuses");
    let text = err.to_string();
    assert!(text.contains("main is protected") || text.contains("rejected"), "the error says why: {text}");
    assert_eq!(repo.head(), base.as_str());

    std::fs::remove_file(&hook).expect("remove the hook");
    let head = source.refresh().await.expect("fetch");
    let rev =
        source.commit(&request(&head, vec![FileChange::write("b.yaml", "b: 1\n")], "allowed")).await.expect("push");
    assert_eq!(commits_after(&repo, base.as_str()), [rev.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_rewritten_under_the_sync_marker_is_followed_only_if_verification_allows() {
    let Some(repo) = BareRepo::new() else { return };
    let first = repo.commit_files(&[("a.yaml", b"a: 1\n")], "first");
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let source = open(GitConfig::new(daemon.url(), "main").with_timeout(Duration::from_secs(20)));
    let base = source.refresh().await.expect("fetch");
    let synced =
        source.commit(&request(&base, vec![FileChange::write("a.yaml", "a: 2\n")], "flux")).await.expect("push");
    source.set_sync_marker(&synced).await.expect("marker");

    // A colleague rewrites main: the synced commit is no longer on it.
    let work = tempfile::tempdir().expect("a work dir");
    let clone = work.path().join("clone");
    git(work.path(), &["clone", "--quiet", &repo.file_url(), &clone.display().to_string()], None);
    git(&clone, &["-c", "user.name=C", "-c", "user.email=c@x", "reset", "--quiet", "--hard", &first], None);
    std::fs::write(clone.join("a.yaml"), "a: 3\n").expect("write");
    git(&clone, &["-c", "user.name=C", "-c", "user.email=c@x", "commit", "--quiet", "-am", "rewritten"], None);
    git(&clone, &["push", "--quiet", "--force", "origin", "main"], None);
    let rewritten = repo.head();
    assert!(!repo.git(&["rev-list", "main"]).contains(synced.as_str()), "the synced commit left main");

    // Without verification: the new head is followed, the marker still names the old commit
    // until moved, and flux builds on the new history (no merge with the old one).
    let head = source.refresh().await.expect("fetch the rewritten history");
    assert_eq!(head.as_str(), rewritten);
    assert_eq!(source.read_file(&head, "a.yaml").await.expect("read"), b"a: 3\n");
    assert_eq!(source.sync_marker().await.expect("marker"), Some(synced.clone()));
    let rev =
        source.commit(&request(&head, vec![FileChange::write("b.yaml", "b: 1\n")], "on top")).await.expect("push");
    assert_eq!(parents(&repo, rev.as_str()), 1);
    assert_eq!(repo.git(&["rev-parse", &format!("{rev}^")]), rewritten);

    // With every commit since the marker to be signed (v1's `all`), the unsigned rewrite is
    // refused: reported, not synced.
    let mut strict = GitConfig::new(daemon.url(), "main").with_timeout(Duration::from_secs(20));
    strict.verify = VerifyMode::All;
    let strict = open(strict);
    let err = strict.refresh().await.expect_err("unsigned rewritten history");
    assert!(matches!(err, flux_core::Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&rewritten[..7]) || err.to_string().contains(&rev.to_string()[..7]),
        "names the commit: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_grows_by_ten_thousand_commits_is_followed() {
    let Some(repo) = BareRepo::new() else { return };
    let first = repo.commit_files(&[("deploy/a.yaml", b"a: 0\n")], "first");
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let source = open(GitConfig::new(daemon.url(), "main").with_timeout(Duration::from_secs(60)));
    assert_eq!(source.refresh().await.expect("fetch").as_str(), first);

    let mut stream = String::new();
    for i in 1..=10_000 {
        let content = format!("a: {i}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter C <c@x> {} +0000\ndata {}\ncommit {i}\n",
            1_700_000_000 + i,
            format!("commit {i}").len()
        ));
        if i == 1 {
            stream.push_str(&format!("from {first}\n"));
        }
        stream.push_str(&format!("M 100644 inline deploy/a.yaml\ndata {}\n{content}\n", content.len()));
    }
    git(&repo.path(), &["fast-import", "--quiet"], Some(stream.as_bytes()));
    let head = repo.head();
    assert_eq!(repo.git(&["rev-list", "--count", &format!("{first}..main")]), "10000");

    let fetched = source.refresh().await.expect("fetch 10,000 new commits");
    assert_eq!(fetched.as_str(), head);
    let files = source.files(&fetched, &["deploy".to_owned()]).await.expect("read");
    assert_eq!(files.len(), 1);
    assert_eq!(source.read_file(&fetched, "deploy/a.yaml").await.expect("read"), b"a: 10000\n");
    let rev = source
        .commit(&request(&fetched, vec![FileChange::write("deploy/b.yaml", "b: 1\n")], "on top"))
        .await
        .expect("push");
    assert_eq!(commits_after(&repo, &head), [rev.to_string()]);
}
