//! Credentials never appear in logs, errors or Debug output. An HTTP server on loopback refuses
//! every request (401) and records what it was sent, proving the token was offered.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use flux_core::{FileChange, Revision, Source};
use flux_git::{Credentials, GitConfig, Secret};

use crate::{open, request};

const TOKEN: &str = "ghp_S3cr3tT0kenNeverPrinted";

/// Answers every request with 401 and keeps the raw requests.
fn refusing_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            record.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, seen)
}

/// A writer capturing everything logged while the test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_never_printed() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (port, seen) = refusing_server();
    // A mirror that already holds a commit, so commits reach the push (and its credentials).
    let Some(repo) = flux_testenv::git::BareRepo::new() else { return };
    let base = Revision::new(repo.head());
    let mut shown = Vec::new();
    // Once as configured credentials, once inside the URL.
    let configs = [
        GitConfig::new(format!("http://127.0.0.1:{port}/org/repo.git"), "main")
            .with_credentials(Credentials::Token(Secret::new(TOKEN))),
        GitConfig::new(format!("http://bot:{TOKEN}@127.0.0.1:{port}/org/repo.git"), "main"),
    ];
    for config in configs {
        let mirror = tempfile::tempdir().unwrap();
        let mirror = mirror.path().join("mirror.git");
        flux_testenv::git::git(
            repo.base_dir(),
            &["clone", "--quiet", "--bare", "repo.git", mirror.to_str().unwrap()],
            None,
        );
        let config = config.with_local_dir(&mirror);
        shown.push(format!("{config:?}"));
        let source = open(config);
        shown.push(format!("{source:?}"));
        let err = source.refresh().await.unwrap_err();
        assert!(matches!(err, flux_core::Error::Unauthorized { .. }), "a refused token is Unauthorized: {err:?}");
        shown.push(format!("{err} {err:?}"));
        let pushed = source.commit(&request(&base, vec![FileChange::write("x", "x")], "x")).await.unwrap_err();
        assert!(matches!(pushed, flux_core::Error::Unauthorized { .. }), "a refused push is Unauthorized: {pushed:?}");
        shown.push(format!("{pushed} {pushed:?}"));
        let marker = source.set_sync_marker(&base).await.unwrap_err();
        shown.push(format!("{marker} {marker:?}"));
    }
    // An unreachable port: the error names the URL, still without the token.
    let closed = flux_testenv::free_port();
    let source = open(GitConfig::new(format!("https://bot:{TOKEN}@127.0.0.1:{closed}/org/repo.git"), "main"));
    let err = source.refresh().await.unwrap_err();
    assert!(err.is_retryable(), "an unreachable server is transient: {err:?}");
    shown.push(format!("{err} {err:?}"));

    let requests = seen.lock().unwrap().join("\n");
    assert!(
        requests.contains("Authorization: Basic") || requests.contains("authorization: Basic"),
        "the token must be offered: {requests}"
    );
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let everything = format!("{}\n{logged}", shown.join("\n"));
    assert!(!everything.contains(TOKEN), "the token leaked:\n{everything}");
    assert!(everything.contains("127.0.0.1"), "errors must still say which remote failed:\n{everything}");
}
