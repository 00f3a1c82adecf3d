//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution) on a loopback
//! port, plain HTTP or TLS with htpasswd; a pusher that writes images and indexes with chosen
//! `created` times into it (with oci-client); and a counting, fault-injecting HTTP proxy to put
//! in front of it.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};

use crate::{ServerProcess, find_program, free_port, require};

/// Errors of the pusher.
pub type PushError = Box<dyn std::error::Error + Send + Sync>;

/// A running `docker-registry`, stopped when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    server: ServerProcess,
    dir: tempfile::TempDir,
    host: String,
    tls: Option<(PathBuf, String, String)>,
}

impl TestRegistry {
    /// Starts a plain-HTTP registry; `None` (after a loud skip message) when `docker-registry`
    /// is not installed outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Starts a registry serving TLS (a certificate for `127.0.0.1` signed by a fresh CA, see
    /// [`TestRegistry::ca_pem`]) that accepts only `user`/`password` (htpasswd, bcrypt).
    pub fn start_tls(user: &str, password: &str) -> Option<Self> {
        require("openssl", find_program("openssl"))?;
        require("htpasswd (apache2-utils)", find_program("htpasswd"))?;
        Self::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Option<Self> {
        let program = require("docker-registry", find_program("docker-registry"))?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        let mut tls = None;
        if let Some((user, password)) = auth {
            let ca = make_certificates(dir.path());
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::write(&htpasswd, out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: flux-test\n    path: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display(),
                htpasswd.display()
            ));
            tls = Some((ca, user.to_owned(), password.to_owned()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let mut command = Command::new(program);
        command.arg("serve").arg(&config_path);
        let mut server = ServerProcess::start("docker-registry", command, dir.path()).expect("start docker-registry");
        server.wait_ready(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok());
        Some(TestRegistry { server, dir, host, tls })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The CA certificate (PEM file) the TLS variant's certificate is signed by.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.tls.as_ref().map(|(ca, _, _)| ca.as_path())
    }

    /// The server's log so far (its access log included).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// The temporary directory the registry keeps its data and configuration in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A pusher writing into this registry (with its credentials and CA for the TLS variant).
    pub fn pusher(&self) -> Pusher {
        let (protocol, roots, auth) = match &self.tls {
            None => (ClientProtocol::Http, Vec::new(), RegistryAuth::Anonymous),
            Some((ca, user, password)) => {
                let data = std::fs::read(ca).expect("read the test CA");
                let cert = Certificate { encoding: CertificateEncoding::Pem, data };
                (ClientProtocol::Https, vec![cert], RegistryAuth::Basic(user.clone(), password.clone()))
            }
        };
        let client = Client::try_from(ClientConfig {
            protocol,
            extra_root_certificates: roots,
            use_monolithic_push: true,
            ..ClientConfig::default()
        })
        .expect("an OCI client for the test registry");
        Pusher { client, auth, layers_pushed: Mutex::default() }
    }
}

/// Makes `ca.crt` and a `server.crt`/`server.key` for `127.0.0.1` signed by it; returns the CA's path.
fn make_certificates(dir: &Path) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("write");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=flux-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    dir.join("ca.crt")
}

/// Pushes small images and indexes (one shared layer, a config with the given `created`).
///
/// The first push into a repository uploads the layer: let it finish before pushing more into
/// the same repository concurrently (the registry loses racing uploads of one blob).
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
    layers_pushed: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher").field("auth", &self.auth).finish_non_exhaustive()
    }
}

const LAYER: &[u8] = b"flux-testenv layer";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

impl Pusher {
    /// Pushes a `linux/amd64` image to `reference` (`host/path:tag`) whose config says
    /// `created` (RFC 3339; `None`: no created field); returns the manifest digest. The same
    /// arguments give the same digest.
    pub async fn push_image(&self, reference: &str, created: Option<&str>) -> Result<String, PushError> {
        self.push_image_with_labels(reference, created, &[]).await
    }

    /// Like [`Pusher::push_image`], with `labels` (name, value) in the config's `config.Labels`,
    /// as `docker build --label` writes them.
    pub async fn push_image_with_labels(
        &self,
        reference: &str,
        created: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Result<String, PushError> {
        let r: Reference = reference.parse()?;
        let (manifest, digest) = self.image_manifest(&r, "linux", "amd64", created, labels).await?;
        self.client.push_manifest_raw(&r, manifest, OCI_MANIFEST.parse()?).await?;
        Ok(digest)
    }

    /// Pushes an index to `reference` with one image per `(os, architecture, created)` entry,
    /// in that order; returns the index digest.
    pub async fn push_index(&self, reference: &str, entries: &[(&str, &str, &str)]) -> Result<String, PushError> {
        let r: Reference = reference.parse()?;
        let mut manifests = Vec::new();
        for (os, arch, created) in entries {
            let (manifest, digest) = self.image_manifest(&r, os, arch, Some(created), &[]).await?;
            let by_digest = Reference::with_digest(r.registry().to_owned(), r.repository().to_owned(), digest.clone());
            self.client.push_manifest_raw(&by_digest, manifest.clone(), OCI_MANIFEST.parse()?).await?;
            manifests.push(serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                "platform": {"os": os, "architecture": arch},
            }));
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        }))?;
        let digest = sha256(&index);
        self.client.push_manifest_raw(&r, index, OCI_INDEX.parse()?).await?;
        Ok(digest)
    }

    /// Uploads the layer (once per repository) and a config; returns the manifest and its digest.
    async fn image_manifest(
        &self,
        r: &Reference,
        os: &str,
        arch: &str,
        created: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Result<(Vec<u8>, String), PushError> {
        self.client.store_auth_if_needed(r.resolve_registry(), &self.auth).await;
        let layer_digest = sha256(LAYER);
        let repo_key = format!("{}/{}", r.registry(), r.repository());
        let needs_layer = !self.layers_pushed.lock().unwrap_or_else(|p| p.into_inner()).contains(&repo_key);
        if needs_layer {
            self.client.push_blob(r, LAYER.to_vec(), &layer_digest).await?;
            self.layers_pushed.lock().unwrap_or_else(|p| p.into_inner()).insert(repo_key);
        }
        let mut config = serde_json::json!({
            "architecture": arch, "os": os,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        if let Some(created) = created {
            config["created"] = created.into();
        }
        if !labels.is_empty() {
            let labels: serde_json::Map<String, serde_json::Value> =
                labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).into())).collect();
            config["config"] = serde_json::json!({ "Labels": labels });
        }
        let config = serde_json::to_vec(&config)?;
        let config_digest = sha256(&config);
        self.client.push_blob(r, config.clone(), &config_digest).await?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": LAYER.len()}],
        }))?;
        let digest = sha256(&manifest);
        Ok((manifest, digest))
    }
}

/// A fault the [`CountingProxy`] answers with instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An HTTP status (`429`, `503`, …) with an optional `Retry-After` in seconds.
    Status(u16, Option<u64>),
    /// No answer for this long, then the connection is closed (a timeout for the client).
    Stall(Duration),
}

#[derive(Debug, Default)]
struct ProxyState {
    requests: Vec<String>,
    faults: VecDeque<Fault>,
    strip_link: bool,
    page_cap: Option<usize>,
}

/// An HTTP/1.1 proxy on a loopback port in front of a plain-HTTP registry: it records every
/// request (`"GET /v2/…"`), can answer the next ones with injected [`Fault`]s, can page tag
/// lists as registries with a maximum page size do (Debian's distribution 2.8 does not page at
/// all), and can hide the `Link` header (as registries that page without saying so do). One
/// request per connection.
#[derive(Debug)]
pub struct CountingProxy {
    host: String,
    state: Arc<Mutex<ProxyState>>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    /// Starts a proxy forwarding to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let host = listener.local_addr().map(|a| a.to_string()).expect("local address");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, thread_state, thread_stop) = (upstream.to_owned(), state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, state) = (upstream.clone(), thread_state.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, &state);
                });
            }
        });
        CountingProxy { host, state, stop }
    }

    /// `127.0.0.1:PORT` of the proxy: the registry host to give the client under test.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request seen so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        self.state().requests.clear();
    }

    /// Answers the next requests with `faults`, in order, before forwarding again.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state().faults.extend(faults);
    }

    /// Hides (or shows again) the `Link` header of tag lists.
    pub fn strip_link(&self, strip: bool) {
        self.state().strip_link = strip;
    }

    /// Pages tag lists itself, at most `cap` tags a page whatever `n` asks (`None`: pass the
    /// registry's answer through). Honours `last=` and sets `Link` when more follow.
    pub fn page_tags(&self, cap: Option<usize>) {
        self.state().page_cap = cap;
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.host); // wakes the accept loop up to see `stop`
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<ProxyState>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&request, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let content_length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while request.len() < head_end + content_length {
        let n = client.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let request_line = head.lines().next().unwrap_or_default();
    let summary = request_line.rsplit_once(' ').map_or(request_line, |(s, _)| s).to_owned();
    let (fault, strip_link, page_cap) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(summary.clone());
        (s.faults.pop_front(), s.strip_link, s.page_cap)
    };
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
            let answer = format!("HTTP/1.1 {code} Injected\r\n{retry}Content-Length: 0\r\nConnection: close\r\n\r\n");
            return client.write_all(answer.as_bytes());
        }
        Some(Fault::Stall(duration)) => {
            std::thread::sleep(duration);
            return Ok(());
        }
        None => {}
    }
    let paging = page_cap.filter(|_| summary.starts_with("GET ") && summary.contains("/tags/list"));
    // Forward as HTTP/1.0 (no chunked answer) with `Connection: close`, so the answer ends
    // where the upstream stream ends; a paged tag list is asked for whole.
    let mut forwarded: Vec<u8> = Vec::new();
    let target = request_line.split(' ').nth(1).unwrap_or("/");
    let target = if paging.is_some() { target.split('?').next().unwrap_or(target) } else { target };
    let method = request_line.split(' ').next().unwrap_or("GET");
    forwarded.extend_from_slice(format!("{method} {target} HTTP/1.0\r\n").as_bytes());
    for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.extend_from_slice(line.as_bytes());
            forwarded.extend_from_slice(b"\r\n");
        }
    }
    forwarded.extend_from_slice(b"Connection: close\r\n\r\n");
    forwarded.extend_from_slice(&request[head_end..]);
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&forwarded)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    if let Some(cap) = paging
        && let Some(paged) = page(&answer, request_line, cap, strip_link)
    {
        answer = paged;
    }
    if strip_link && let Some(end) = find(&answer, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&answer[..end]).into_owned();
        let kept: Vec<&str> = head.split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("link:")).collect();
        let mut rewritten = kept.join("\r\n").into_bytes();
        rewritten.extend_from_slice(&answer[end..]);
        answer = rewritten;
    }
    client.write_all(&answer)
}

/// A tag list answer cut to one page of at most `cap` tags after `last=`, in order, with a
/// `Link` to the next page unless `strip_link`; `None` when `answer` is not a tag list.
fn page(answer: &[u8], request_line: &str, cap: usize, strip_link: bool) -> Option<Vec<u8>> {
    let end = find(answer, b"\r\n\r\n")?;
    if !answer.starts_with(b"HTTP/1.1 200") && !answer.starts_with(b"HTTP/1.0 200") {
        return None;
    }
    let list: serde_json::Value = serde_json::from_slice(&answer[end + 4..]).ok()?;
    let name = list.get("name")?.as_str()?.to_owned();
    let mut tags: Vec<String> =
        list.get("tags")?.as_array()?.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect();
    tags.sort();
    let query = request_line.split(' ').nth(1)?.split_once('?').map_or("", |(_, q)| q);
    let param = |key: &str| query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
    let n = param("n").and_then(|n| n.parse::<usize>().ok()).unwrap_or(cap).min(cap);
    let rest: Vec<String> = match param("last") {
        Some(last) => tags.into_iter().filter(|t| t.as_str() > last).collect(),
        None => tags,
    };
    let page: Vec<&String> = rest.iter().take(n).collect();
    let mut head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n".to_owned();
    if rest.len() > n && !strip_link {
        let last = page.last()?;
        head.push_str(&format!("Link: </v2/{name}/tags/list?last={last}&n={n}>; rel=\"next\"\r\n"));
    }
    let body = serde_json::to_vec(&serde_json::json!({"name": name, "tags": page})).ok()?;
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}
