//! Writers: races, read-only mode, `[ci skip]`, cheap refreshes, shallow mirrors, links.

use std::num::NonZeroU32;

use flux_core::{Error, FileChange, Revision, Source};
use flux_git::GitConfig;
use flux_testenv::git::{BareRepo, GitDaemon};

use crate::{open, request};

/// Refresh, change, commit; on Conflict start again from the new head (as the engines do).
async fn commit_with_retries(source: &dyn Source, path: &str, content: &str) -> (Revision, usize) {
    let mut conflicts = 0;
    loop {
        let head = source.refresh().await.expect("refresh");
        match source.commit(&request(&head, vec![FileChange::write(path, content)], "writer")).await {
            Ok(rev) => return (rev, conflicts),
            Err(e) if e.is_conflict() => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(conflicts < 10, "a writer kept conflicting");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_both_land_after_a_retry() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let (a, b) = (open(GitConfig::new(daemon.url(), "main")), open(GitConfig::new(daemon.url(), "main")));
    let head = a.refresh().await.unwrap();
    assert_eq!(b.refresh().await.unwrap(), head);
    // Both start from the same head, so at most one can win the first round.
    let ((_, conflicts_a), (_, conflicts_b)) =
        futures::join!(commit_with_retries(&a, "a.yaml", "by: a\n"), commit_with_retries(&b, "b.yaml", "by: b\n"));
    assert!(conflicts_a + conflicts_b >= 1, "two writers on one base must not both win the first round");
    let head = a.refresh().await.unwrap();
    assert_eq!(head.as_str(), repo.head(), "the remote's branch is the head");
    let files = a.files(&head, &["a.yaml".into(), "b.yaml".into()]).await.unwrap();
    assert_eq!(files.len(), 2, "both changes landed: {files:?}");
    assert_eq!(repo.git(&["rev-list", "--count", "main"]), "3", "one commit per writer on top of the initial one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_leaves_the_remote_and_the_next_attempt_clean() {
    let Some(repo) = BareRepo::new() else { return };
    let source = open(GitConfig::new(repo.file_url(), "main"));
    let stale = source.refresh().await.unwrap();
    let colleague = repo.commit_files(&[("theirs.yaml", b"x: 1\n")], "a colleague's push");
    let err =
        source.commit(&request(&stale, vec![FileChange::write("mine.yaml", "y: 1\n")], "late")).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(repo.head(), colleague, "the colleague's push must not be overwritten");
    let head = source.refresh().await.unwrap();
    assert_eq!(head.as_str(), colleague);
    let rev = source.commit(&request(&head, vec![FileChange::write("mine.yaml", "y: 1\n")], "retry")).await.unwrap();
    assert_eq!(repo.git(&["rev-parse", &format!("{rev}^")]), colleague, "the retry builds on the fetched head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_never_pushes() {
    let Some(repo) = BareRepo::new() else { return };
    let source = open(GitConfig::new(repo.file_url(), "main").read_only());
    let head = source.refresh().await.unwrap();
    let err = source.commit(&request(&head, vec![FileChange::write("x.yaml", "x")], "no")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let err = source.set_sync_marker(&head).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(repo.head(), head.as_str());
    assert_eq!(repo.git(&["tag", "--list"]), "", "no tag may be pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_tag_is_configurable_and_ci_skip_is_appended() {
    let Some(repo) = BareRepo::new() else { return };
    let source = open(GitConfig::new(repo.file_url(), "main").with_sync_tag("cluster-a-sync").with_skip_ci());
    let head = source.refresh().await.unwrap();
    let rev = source.commit(&request(&head, vec![FileChange::write("x.yaml", "x: 1\n")], "Release x")).await.unwrap();
    assert_eq!(repo.git(&["log", "-1", "--format=%B", "main"]), "Release x\n\n[ci skip]");
    assert_eq!(repo.git(&["log", "-1", "--format=%an <%ae>", "main"]), "Test <test@example.com>");
    source.set_sync_marker(&rev).await.unwrap();
    // An annotated tag, as Flux v1's: peeled to the commit it marks.
    assert_eq!(repo.git(&["rev-parse", "refs/tags/cluster-a-sync^{commit}"]), rev.as_str());
    source.set_sync_marker(&head).await.unwrap();
    assert_eq!(repo.git(&["rev-parse", "refs/tags/cluster-a-sync^{commit}"]), head.as_str(), "the tag is force-moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_fetches_only_when_something_moved() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let source = open(GitConfig::new(daemon.url(), "main"));
    let first = source.refresh().await.unwrap();
    let after_first = source.fetch_stats();
    assert_eq!((after_first.ref_listings, after_first.pack_fetches), (1, 1));
    for _ in 0..3 {
        assert_eq!(source.refresh().await.unwrap(), first);
    }
    let idle = source.fetch_stats();
    assert_eq!((idle.ref_listings, idle.pack_fetches), (4, 1), "nothing moved: ref listings only");
    assert_eq!(daemon.upload_pack_requests(), 4, "one request per refresh, as the server saw it");
    let moved = repo.commit_files(&[("new.yaml", b"n: 1\n")], "moved");
    assert_eq!(source.refresh().await.unwrap().as_str(), moved);
    assert_eq!(source.fetch_stats().pack_fetches, 2, "a moved branch is fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_mirror_reads_commits_and_follows() {
    let Some(repo) = BareRepo::new() else { return };
    for i in 0..5 {
        repo.commit_files(&[("history.yaml", format!("n: {i}\n").as_bytes())], "history");
    }
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let source = open(GitConfig::new(daemon.url(), "main").with_depth(NonZeroU32::MIN));
    let head = source.refresh().await.unwrap();
    assert_eq!(source.read_file(&head, "history.yaml").await.unwrap(), b"n: 4\n");
    let parent = repo.git(&["rev-parse", "main^"]);
    let err = source.files(&Revision::new(parent), &[]).await.unwrap_err();
    assert!(err.is_not_found(), "history beyond the depth is not fetched: {err:?}");
    let rev = source.commit(&request(&head, vec![FileChange::write("x.yaml", "x")], "on shallow")).await.unwrap();
    assert_eq!(repo.head(), rev.as_str(), "a shallow mirror can push");
    let next = repo.commit_files(&[("y.yaml", b"y")], "incremental");
    assert_eq!(source.refresh().await.unwrap().as_str(), next);
    assert_eq!(source.read_file(&Revision::new(next), "y.yaml").await.unwrap(), b"y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_out_of_the_repository_are_refused() {
    let Some(repo) = BareRepo::new() else { return };
    repo.commit_files(&[("apps/web.yaml", b"kind: A\n")], "files");
    repo.commit_symlink("apps/inside.yaml", "web.yaml", "inside link");
    repo.commit_symlink("shared", "apps", "dir link");
    let source = open(GitConfig::new(repo.file_url(), "main"));
    let head = source.refresh().await.unwrap();
    let listed = source.files(&head, &["apps".into()]).await.unwrap();
    let paths: Vec<_> = listed.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["apps/web.yaml"], "links are not regular files");
    assert_eq!(source.read_file(&head, "apps/inside.yaml").await.unwrap(), b"kind: A\n");
    assert_eq!(source.read_file(&head, "shared/web.yaml").await.unwrap(), b"kind: A\n");

    repo.commit_symlink("apps/escape.yaml", "../../etc/passwd", "escape");
    repo.commit_symlink("etc", "/etc", "absolute");
    let head = source.refresh().await.unwrap();
    let invalid = |e: &Error| matches!(e, Error::InvalidInput { .. });
    let err = source.files(&head, &["apps".into()]).await.unwrap_err();
    assert!(invalid(&err) && err.to_string().contains("apps/escape.yaml"), "{err}");
    assert!(invalid(&source.read_file(&head, "apps/escape.yaml").await.unwrap_err()));
    assert!(invalid(&source.read_file(&head, "etc/passwd").await.unwrap_err()));
    assert!(invalid(&source.files(&head, &["etc".into()]).await.unwrap_err()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_without_the_branch_is_not_found() {
    let Some(repo) = BareRepo::new() else { return };
    let err = open(GitConfig::new(repo.file_url(), "production")).refresh().await.unwrap_err();
    assert!(err.is_not_found() && err.to_string().contains("production"), "{err:?}");
    let empty = tempfile::tempdir().unwrap();
    flux_testenv::git::git(empty.path(), &["init", "--quiet", "--bare"], None);
    let err = open(GitConfig::new(empty.path().display().to_string(), "main")).refresh().await.unwrap_err();
    assert!(err.is_not_found(), "an empty repository has no revision yet: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_incremental_fetches_keep_working() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let source = open(GitConfig::new(daemon.url(), "main"));
    source.refresh().await.unwrap();
    // Every fetch adds a pack; more of them than the mirror has index slots (64) unless it repacks.
    for i in 0..70 {
        let new = repo.commit_files(&[("counter.yaml", format!("n: {i}\n").as_bytes())], "tick");
        let head = source.refresh().await.unwrap();
        assert_eq!(head.as_str(), new, "fetch {i}");
        assert_eq!(source.read_file(&head, "counter.yaml").await.unwrap(), format!("n: {i}\n").as_bytes());
    }
    assert_eq!(source.fetch_stats().pack_fetches, 71);
}
