//! The [`Source`] contract.
//!
//! [`run`] takes two handles on the same read-write repository, which already has a head
//! revision (two clones of one remote, for git). Everything it writes goes under a fresh
//! directory `flux-conformance-…/`, so it can run against a repository with other content.

use crate::Error;
use crate::source::{Author, CommitRequest, FileChange, Revision, Source};
use crate::testkit::{assert_err, unique};

/// Checks the whole contract.
pub async fn run(a: &dyn Source, b: &dyn Source) {
    commit_then_read(a).await;
    revisions_are_immutable(a).await;
    missing_things_are_not_found(a).await;
    invalid_paths_are_refused(a).await;
    unchanged_commit_publishes_nothing(a).await;
    stale_base_is_a_conflict(a, b).await;
    racing_writers_one_wins(a, b).await;
    sync_marker_is_shared(a, b).await;
}

fn request(base: Revision, changes: Vec<FileChange>, message: &str) -> CommitRequest {
    CommitRequest {
        base,
        changes,
        author: Author::new("Conformance", "conformance@example.com"),
        message: message.into(),
    }
}

async fn commit(source: &dyn Source, changes: Vec<FileChange>) -> Revision {
    let base = source.refresh().await.expect("refresh");
    let rev = source.commit(&request(base.clone(), changes, "conformance commit")).await.expect("commit");
    assert_ne!(rev, base, "a commit that changes files must publish a new revision");
    rev
}

/// Written files read back byte for byte, sorted, from the new head; `refresh` returns the head.
pub async fn commit_then_read(source: &dyn Source) {
    let dir = unique("flux-conformance");
    let binary: Vec<u8> = (0..=255).collect();
    let rev = commit(
        source,
        vec![
            FileChange::write(format!("{dir}/b.yaml"), "kind: B\r\n# crlf kept\r\n"),
            FileChange::write(format!("{dir}/a.yaml"), "kind: A\n"),
            FileChange::write(format!("{dir}/sub/deep/c.json"), "{}"),
            FileChange::write(format!("{dir}/bin.dat"), binary.clone()),
        ],
    )
    .await;
    assert_eq!(source.refresh().await.expect("refresh"), rev, "refresh must return the revision just committed");
    assert_eq!(source.refresh().await.expect("refresh"), rev, "refresh with nothing new must return the same head");

    let files = source.files(&rev, std::slice::from_ref(&dir)).await.expect("files");
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    let expected =
        [format!("{dir}/a.yaml"), format!("{dir}/b.yaml"), format!("{dir}/bin.dat"), format!("{dir}/sub/deep/c.json")];
    assert_eq!(paths, expected, "files must list every file under the path, recursively, sorted");
    assert_eq!(files[1].content, b"kind: B\r\n# crlf kept\r\n", "bytes must be kept exactly");
    assert_eq!(files[2].content, binary, "binary content must be kept exactly");

    let overlapping =
        source.files(&rev, &[format!("{dir}/sub"), dir.clone(), format!("./{dir}/a.yaml")]).await.expect("files");
    assert_eq!(overlapping.len(), 4, "overlapping paths must not duplicate files");
    let single = source.files(&rev, &[format!("{dir}/a.yaml")]).await.expect("files of one file");
    assert_eq!(single.len(), 1, "a path may name a single file");
    assert_eq!(source.read_file(&rev, &format!("{dir}/a.yaml")).await.expect("read_file"), b"kind: A\n");
    let root = source.files(&rev, &[String::new()]).await.expect("files at the root");
    assert!(root.iter().any(|f| f.path == expected[0]), "the empty path is the root");
    let none_given = source.files(&rev, &[]).await.expect("files with no paths");
    assert_eq!(none_given.len(), root.len(), "no paths means the root");
}

/// A revision reads the same after later commits change and delete its files.
pub async fn revisions_are_immutable(source: &dyn Source) {
    let dir = unique("flux-conformance");
    let (keep, gone) = (format!("{dir}/keep.yaml"), format!("{dir}/gone.yaml"));
    let first = commit(source, vec![FileChange::write(&keep, "v: 1\n"), FileChange::write(&gone, "v: 1\n")]).await;
    let second = commit(source, vec![FileChange::write(&keep, "v: 2\n"), FileChange::delete(&gone)]).await;

    let old = source.files(&first, std::slice::from_ref(&dir)).await.expect("files at first");
    assert_eq!(old.len(), 2, "the older revision must still hold both files");
    assert_eq!(source.read_file(&first, &keep).await.expect("read"), b"v: 1\n");
    let new = source.files(&second, std::slice::from_ref(&dir)).await.expect("files at second");
    assert_eq!(new.len(), 1, "a deleted file must be gone from the new revision");
    assert_eq!(new[0].content, b"v: 2\n");
    assert_err(source.read_file(&second, &gone).await, Error::is_not_found, "reading a deleted file");
}

/// Unknown revisions, files and paths are `NotFound`; an absent path is never an empty list.
pub async fn missing_things_are_not_found(source: &dyn Source) {
    let head = source.refresh().await.expect("refresh");
    let missing = unique("flux-conformance-missing");
    let err = assert_err(
        source.files(&head, std::slice::from_ref(&missing)).await,
        Error::is_not_found,
        "files of an absent path",
    );
    assert!(err.to_string().contains(&missing), "the error must name the path: {err}");
    assert_err(
        source.read_file(&head, &format!("{missing}/x.yaml")).await,
        Error::is_not_found,
        "read of an absent file",
    );
    let bogus = Revision::new("0123456789abcdef0123456789abcdef01234567");
    assert_err(source.files(&bogus, &[String::new()]).await, Error::is_not_found, "files at an unknown revision");
    let deleting = request(head.clone(), vec![FileChange::delete(format!("{missing}.yaml"))], "delete nothing");
    assert_err(source.commit(&deleting).await, Error::is_not_found, "deleting an absent file");
    assert_eq!(source.refresh().await.expect("refresh"), head, "a refused commit must publish nothing");
}

/// Paths that leave the repository are refused, for reads and writes.
pub async fn invalid_paths_are_refused(source: &dyn Source) {
    let head = source.refresh().await.expect("refresh");
    let invalid = |e: &Error| matches!(e, Error::InvalidInput { .. });
    for path in ["../outside", "/etc/passwd", "a/../../outside"] {
        assert_err(source.files(&head, &[path.to_owned()]).await, invalid, &format!("files({path})"));
        assert_err(source.read_file(&head, path).await, invalid, &format!("read_file({path})"));
        let write = request(head.clone(), vec![FileChange::write(path, "x")], "escape");
        assert_err(source.commit(&write).await, invalid, &format!("commit to {path}"));
    }
    assert_eq!(source.refresh().await.expect("refresh"), head, "a refused commit must publish nothing");
}

/// Changes that change nothing return the base and publish nothing.
pub async fn unchanged_commit_publishes_nothing(source: &dyn Source) {
    let path = format!("{}/same.yaml", unique("flux-conformance"));
    let rev = commit(source, vec![FileChange::write(&path, "same: true\n")]).await;
    let again = source.commit(&request(rev.clone(), vec![FileChange::write(&path, "same: true\n")], "no-op")).await;
    assert_eq!(again.expect("no-op commit"), rev, "a commit that changes nothing must return its base");
    assert_eq!(source.refresh().await.expect("refresh"), rev, "a commit that changes nothing must publish nothing");
}

/// A commit on a base that is no longer the head is a `Conflict`, publishes nothing, and the
/// other handle sees the winner's files after a refresh.
pub async fn stale_base_is_a_conflict(a: &dyn Source, b: &dyn Source) {
    let dir = unique("flux-conformance");
    let base = a.refresh().await.expect("refresh a");
    assert_eq!(b.refresh().await.expect("refresh b"), base, "two handles on one repository must agree on the head");
    let winner = a
        .commit(&request(base.clone(), vec![FileChange::write(format!("{dir}/a.yaml"), "by: a\n")], "a wins"))
        .await
        .expect("first writer");
    let late = request(base.clone(), vec![FileChange::write(format!("{dir}/b.yaml"), "by: b\n")], "b is late");
    assert_err(b.commit(&late).await, Error::is_conflict, "commit on a stale base");
    assert_eq!(b.refresh().await.expect("refresh b"), winner, "after a conflict, refresh must give the winner's head");
    let seen = b.files(&winner, std::slice::from_ref(&dir)).await.expect("files");
    assert_eq!(seen.len(), 1, "the loser must not have published anything");
    assert_eq!(seen[0].content, b"by: a\n");
    let retried =
        b.commit(&request(winner.clone(), late.changes.clone(), "b retries")).await.expect("retry on new head");
    assert_eq!(
        a.refresh().await.expect("refresh a"),
        retried,
        "the retried commit must be the new head for every handle"
    );
    assert_eq!(a.files(&retried, std::slice::from_ref(&dir)).await.expect("files").len(), 2, "both changes land");
}

/// Two writers on the same base at the same time: exactly one wins, the other gets `Conflict`.
pub async fn racing_writers_one_wins(a: &dyn Source, b: &dyn Source) {
    let dir = unique("flux-conformance");
    let base = a.refresh().await.expect("refresh a");
    assert_eq!(b.refresh().await.expect("refresh b"), base);
    let ra = request(base.clone(), vec![FileChange::write(format!("{dir}/x.yaml"), "by: a\n")], "race a");
    let rb = request(base.clone(), vec![FileChange::write(format!("{dir}/x.yaml"), "by: b\n")], "race b");
    let (ca, cb) = futures::join!(a.commit(&ra), b.commit(&rb));
    let (won, lost) = match (ca, cb) {
        (Ok(rev), Err(e)) | (Err(e), Ok(rev)) => (rev, e),
        (ca, cb) => panic!("exactly one racing writer must win: got {ca:?} and {cb:?}"),
    };
    assert!(lost.is_conflict(), "the loser must get Conflict, got {lost:?}");
    assert_eq!(a.refresh().await.expect("refresh"), won, "the winner's revision must be the head");
    assert_eq!(b.refresh().await.expect("refresh"), won, "the winner's revision must be the head");
}

/// The sync marker moves both ways and every handle sees it.
pub async fn sync_marker_is_shared(a: &dyn Source, b: &dyn Source) {
    let dir = unique("flux-conformance");
    let first = commit(a, vec![FileChange::write(format!("{dir}/m.yaml"), "m: 1\n")]).await;
    let second = commit(a, vec![FileChange::write(format!("{dir}/m.yaml"), "m: 2\n")]).await;
    a.set_sync_marker(&second).await.expect("set marker");
    assert_eq!(a.sync_marker().await.expect("marker"), Some(second.clone()));
    b.refresh().await.expect("refresh b");
    assert_eq!(b.sync_marker().await.expect("marker via b"), Some(second), "another handle must see the marker");
    b.set_sync_marker(&first).await.expect("move marker back");
    a.refresh().await.expect("refresh a");
    assert_eq!(a.sync_marker().await.expect("marker"), Some(first), "the marker may move backwards");
}
