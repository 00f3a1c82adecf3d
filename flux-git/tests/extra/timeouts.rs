//! `GitConfig::timeout`: a server that accepts the connection and then says nothing fails the
//! operation with a clear error naming the remote and the timeout, and nothing stays stuck.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flux_core::{Error, FileChange, Source};
use flux_git::{GitConfig, HostKeyCheck};
use flux_testenv::git::{BareRepo, GitDaemon};

use crate::{open, request};

const TIMEOUT: Duration = Duration::from_secs(1);

/// A TCP server that accepts every connection and never answers (nor closes).
struct Silent {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        Silent { port, _held: held }
    }
}

fn assert_timed_out(err: &Error, url_shown: &str) {
    let text = err.to_string();
    assert!(matches!(err, Error::Transient { .. }), "a timeout is transient: {err:?}");
    assert!(text.contains("timed out after 1s"), "the error says the timeout: {text}");
    assert!(text.contains(url_shown), "the error names the remote: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_hangs_after_accepting_times_out_and_the_next_fetch_works() {
    let Some(repo) = BareRepo::new() else { return };
    let Some(daemon) = GitDaemon::start(&repo) else { return };
    let silent = Silent::start();
    let port = silent.port;
    let remotes = [
        (format!("git://127.0.0.1:{port}/repo.git"), format!("git://127.0.0.1:{port}/repo.git")),
        // The password never shows, in the error or anywhere.
        (format!("http://bot:s3cret@127.0.0.1:{port}/repo.git"), format!("http://127.0.0.1:{port}/repo.git")),
        (format!("ssh://git@127.0.0.1:{port}/repo.git"), format!("ssh://git@127.0.0.1:{port}/repo.git")),
    ];
    for (url, shown) in remotes {
        let config = GitConfig::new(url.as_str(), "main")
            .with_timeout(TIMEOUT)
            .with_host_key_check(HostKeyCheck::InsecureAcceptAny);
        let source = open(config);
        let err = source.refresh().await.expect_err("a silent server cannot be fetched from");
        assert_timed_out(&err, &shown);
        assert!(!err.to_string().contains("s3cret"), "{err}");
        // The same handle is not left stuck: its next refresh ends the same way.
        let again = source.refresh().await.expect_err("still silent");
        assert_timed_out(&again, &shown);
    }
    // A good remote, in the same process, with the same short timeout, works.
    let good = open(GitConfig::new(daemon.url(), "main").with_timeout(TIMEOUT));
    assert_eq!(good.refresh().await.expect("the good remote is fetched").as_str(), repo.head());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_hangs_is_killed_and_fails_that_commit_only() {
    let Some(repo) = BareRepo::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A `git` whose push never ends, and that leaves a child behind.
    let hanging_git = dir.path().join("git");
    std::fs::write(&hanging_git, "#!/bin/sh\nsleep 600 &\nsleep 600\n").unwrap();
    std::fs::set_permissions(&hanging_git, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = GitConfig::new(repo.file_url(), "main").with_timeout(TIMEOUT);
    config.git_program = hanging_git;
    let stuck = open(config);
    let head = stuck.refresh().await.unwrap();
    let err = stuck
        .commit(&request(&head, vec![FileChange::write("a.yaml", "a")], "never pushed"))
        .await
        .expect_err("the push hangs");
    assert_timed_out(&err, &repo.file_url());
    assert_eq!(repo.head(), head.as_str(), "nothing reached the remote");

    // The next job, on a working source, commits.
    let working = open(GitConfig::new(repo.file_url(), "main").with_timeout(TIMEOUT));
    let head = working.refresh().await.unwrap();
    let rev = working.commit(&request(&head, vec![FileChange::write("b.yaml", "b")], "pushed")).await.unwrap();
    assert_eq!(repo.head(), rev.as_str());
}
