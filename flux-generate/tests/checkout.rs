//! Checkouts: files written out, and the changes real commands make read back.

use std::path::Path;

use flux_core::{Error, FileChange, Location, SourceFile};
use flux_generate::{Checkout, CommandRunner, ShellCommand};

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile { path: path.to_owned(), content: content.as_bytes().to_vec() }
}

fn originals() -> Vec<SourceFile> {
    vec![
        file(".flux.yaml", "version: 1\nscanForFiles: {}\n"),
        file("apps/web/deploy.yaml", "kind: Deployment\n"),
        file("apps/web/patch.yaml", "old\n"),
        file("gone.yaml", "bye\n"),
        file("same.yaml", "unchanged\n"),
    ]
}

async fn sh(command: &str, dir: &Path) -> flux_core::Result<flux_generate::Output> {
    CommandRunner::new().run(&ShellCommand::new(command, dir, Location::line(".flux.yaml", 3))).await
}

#[tokio::test]
async fn round_trip_reports_writes_and_deletes_sorted() {
    let files = originals();
    let checkout = Checkout::new(&files).unwrap();
    assert_eq!(std::fs::read_to_string(checkout.path().join("apps/web/deploy.yaml")).unwrap(), "kind: Deployment\n");
    assert_eq!(checkout.changes(&files).unwrap(), [], "nothing ran, nothing changed");

    let web = checkout.join("apps/web").unwrap();
    sh(
        "echo new > patch.yaml && mkdir -p ../../zz/deep && echo hi > ../../zz/deep/new.txt && rm ../../gone.yaml",
        &web,
    )
    .await
    .unwrap();
    // Links and special files are not files of the repository, and never followed.
    sh("ln -s /etc/passwd link && ln -s apps dirlink && mkfifo fifo && touch same.yaml", checkout.path())
        .await
        .unwrap();
    let changes = checkout.changes(&files).unwrap();
    assert_eq!(
        changes,
        [
            FileChange::write("apps/web/patch.yaml", "new\n"),
            FileChange::delete("gone.yaml"),
            FileChange::write("zz/deep/new.txt", "hi\n"),
        ]
    );
}

#[tokio::test]
async fn a_file_replaced_by_a_link_is_deleted() {
    let files = originals();
    let checkout = Checkout::new(&files).unwrap();
    sh("rm same.yaml && ln -s gone.yaml same.yaml", checkout.path()).await.unwrap();
    assert_eq!(checkout.changes(&files).unwrap(), [FileChange::delete("same.yaml")]);
}

#[tokio::test]
async fn a_name_that_is_no_repository_path_is_an_error() {
    let files = originals();
    let checkout = Checkout::new(&files).unwrap();
    sh(r"touch 'back\slash.yaml'", checkout.path()).await.unwrap();
    let err = checkout.changes(&files).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains(r"back\slash.yaml"), "{err}");
}

#[test]
fn bad_paths_are_refused_and_the_directory_goes_on_drop() {
    for bad in ["../escape.yaml", "/etc/passwd", "a/../../b", ""] {
        let err = Checkout::new(&[file(bad, "x")]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err:?}");
    }
    let err = Checkout::new(&[file("a", "x"), file("a/b", "y")]).unwrap_err();
    assert!(err.to_string().contains("cannot write a/b"), "{err}");

    let checkout = Checkout::new(&[file("./x//y.yaml", "x")]).unwrap();
    let dir = checkout.path().to_owned();
    assert!(dir.join("x/y.yaml").is_file());
    assert!(checkout.join("../x").is_err());
    drop(checkout);
    assert!(!dir.exists());
}
