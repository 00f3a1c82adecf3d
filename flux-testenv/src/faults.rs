//! Fault injection in front of real servers: a TCP proxy that can refuse, hold or cut
//! connections (a server stopped, hanging, partitioned, restarted) and an HTTP/1.1 proxy that
//! answers chosen requests with a status (and `Retry-After`), a delay, a truncated or malformed
//! body, a hang or a closed connection. With feature `tls` the HTTP proxy terminates TLS with a
//! given certificate and speaks TLS to the server, so it can stand in front of kube-apiserver
//! (give it the server's own certificate and key, and a kubeconfig pointing at the proxy works
//! with the server's CA).
//!
//! Both proxies run on threads (one per connection), so they work under any async runtime or
//! none, and stop accepting when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a held connection or a hung request is kept at most (then closed).
const HOLD_AT_MOST: Duration = Duration::from_secs(600);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the [`TcpProxy`] does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpMode {
    /// Forward to the server.
    Pass,
    /// Accept and close at once, without a byte (a server that is gone).
    Refuse,
    /// Accept and never answer nor forward, until [`TcpProxy::cut`] or the proxy is dropped (a
    /// server that hangs, a partition).
    Hang,
}

#[derive(Debug)]
struct TcpState {
    mode: TcpMode,
    /// Connections whose first bytes from the client contain this are held as in [`TcpMode::Hang`].
    hang_matching: Option<Vec<u8>>,
    /// Connections whose first bytes contain `.0` lose every reply once the client sent `.1`.
    lose_replies: Option<(Vec<u8>, Vec<u8>)>,
    /// Connections whose first bytes contain this wait for [`TcpProxy::release`], then go on.
    delay_matching: Option<Vec<u8>>,
    released: u64,
    accepted: usize,
    held: usize,
    open: Vec<TcpStream>,
}

/// A TCP proxy on a loopback port in front of `upstream`; see [`TcpMode`].
#[derive(Debug)]
pub struct TcpProxy {
    addr: String,
    state: Arc<Mutex<TcpState>>,
    stop: Arc<AtomicBool>,
}

impl TcpProxy {
    /// Starts a proxy forwarding to `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().map(|a| a.to_string()).expect("local address");
        let state = Arc::new(Mutex::new(TcpState {
            mode: TcpMode::Pass,
            hang_matching: None,
            lose_replies: None,
            delay_matching: None,
            released: 0,
            accepted: 0,
            held: 0,
            open: vec![],
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, thread_state, thread_stop) = (upstream.to_owned(), state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, state, stop) = (upstream.clone(), thread_state.clone(), thread_stop.clone());
                std::thread::spawn(move || tcp_connection(conn, &upstream, &state, &stop));
            }
        });
        TcpProxy { addr, state, stop }
    }

    /// `127.0.0.1:PORT`: the address to give the client under test.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
    }

    /// What new connections get from now on.
    pub fn set(&self, mode: TcpMode) {
        lock(&self.state).mode = mode;
    }

    /// Holds (as [`TcpMode::Hang`]) every new connection whose first bytes from the client
    /// contain `needle` (`b"git-receive-pack"`: pushes over git://); `None` forwards them again.
    pub fn hang_matching(&self, needle: Option<&[u8]>) {
        lock(&self.state).hang_matching = needle.map(<[u8]>::to_vec);
    }

    /// Holds every new connection whose first bytes from the client contain `needle` until
    /// [`TcpProxy::release`], then forwards it as if nothing happened: a push held while
    /// someone else pushes (a race made certain). `None` stops it for new connections.
    pub fn delay_matching(&self, needle: Option<&[u8]>) {
        lock(&self.state).delay_matching = needle.map(<[u8]>::to_vec);
    }

    /// Lets the connections held by [`TcpProxy::delay_matching`] go on.
    pub fn release(&self) {
        lock(&self.state).released += 1;
    }

    /// For every new connection whose first bytes from the client contain `needle`, forwards
    /// both ways until the client has sent `trigger`, then drops everything the server answers
    /// (the client waits forever): `(b"git-receive-pack", b"PACK")` lets a push land on the
    /// server while its pusher never learns it did. `None` stops it.
    pub fn lose_replies_after(&self, rule: Option<(&[u8], &[u8])>) {
        lock(&self.state).lose_replies = rule.map(|(n, t)| (n.to_vec(), t.to_vec()));
    }

    /// Closes every open connection, forwarded or held (a server restarting, a partition
    /// healing with broken connections).
    pub fn cut(&self) {
        for stream in lock(&self.state).open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        lock(&self.state).accepted
    }

    /// How many connections were held (hung) so far.
    pub fn held(&self) -> usize {
        lock(&self.state).held
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        let _ = TcpStream::connect(&self.addr); // wakes the accept loop up to see `stop`
    }
}

fn hold(stream: &TcpStream, stop: &AtomicBool) {
    let start = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    let mut reader = stream;
    // Read and drop what the client sends, until it (or `cut`) closes the connection.
    while start.elapsed() < HOLD_AT_MOST && !stop.load(Ordering::Relaxed) {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn tcp_connection(client: TcpStream, upstream: &str, state: &Mutex<TcpState>, stop: &AtomicBool) {
    let (mode, matching, lose_replies, delay, released) = {
        let mut s = lock(state);
        s.accepted += 1;
        if let Ok(c) = client.try_clone() {
            s.open.push(c);
        }
        (s.mode, s.hang_matching.clone(), s.lose_replies.clone(), s.delay_matching.clone(), s.released)
    };
    match mode {
        TcpMode::Refuse => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        TcpMode::Hang => {
            lock(state).held += 1;
            return hold(&client, stop);
        }
        TcpMode::Pass => {}
    }
    // The client's first bytes, to match on (git's first pkt-line names the service; git may
    // write its length first), read only when a rule needs them: until the client pauses.
    let mut first = Vec::new();
    if matching.is_some() || lose_replies.is_some() || delay.is_some() {
        let mut buf = [0u8; 4096];
        let mut wait = Duration::from_secs(2);
        while first.len() < 4096 {
            let _ = client.set_read_timeout(Some(wait));
            match (&client).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => first.extend_from_slice(&buf[..n]),
            }
            wait = Duration::from_millis(150);
        }
        let _ = client.set_read_timeout(None);
    }
    if let Some(needle) = matching
        && contains(&first, &needle)
    {
        lock(state).held += 1;
        return hold(&client, stop);
    }
    if let Some(needle) = delay
        && contains(&first, &needle)
    {
        lock(state).held += 1;
        let start = Instant::now();
        while lock(state).released == released && !stop.load(Ordering::Relaxed) && start.elapsed() < HOLD_AT_MOST {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    if let Ok(s) = server.try_clone() {
        lock(state).open.push(s);
    }
    if (&server).write_all(&first).is_err() {
        return;
    }
    let trigger = lose_replies.filter(|(needle, _)| contains(&first, needle)).map(|(_, trigger)| trigger);
    let silenced = Arc::new(AtomicBool::new(trigger.as_deref().is_some_and(|t| contains(&first, t))));
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone()) else { return };
    let silence = silenced.clone();
    let upstream_copy = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(trigger) = &trigger {
                tail.extend_from_slice(&buf[..n]);
                if contains(&tail, trigger) {
                    silence.store(true, Ordering::SeqCst);
                }
                let keep = tail.len().saturating_sub(trigger.len());
                tail.drain(..keep);
            }
            if server_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let mut buf = [0u8; 16384];
    loop {
        let n = match server_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if silenced.load(Ordering::SeqCst) {
            continue;
        }
        if client_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if silenced.load(Ordering::SeqCst) {
        // The server is done; the client is left waiting, as for a lost answer.
        return hold(&client_write, stop);
    }
    let _ = client_write.shutdown(Shutdown::Both);
    let _ = upstream_copy.join();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the [`HttpProxy`] does with a request a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFault {
    /// Answer this status (`429`, `500`, `503`…), with `Retry-After: <seconds>` when given and
    /// a Kubernetes-style `Status` body, without asking the server.
    Status(u16, Option<u64>),
    /// Wait this long, then forward (a slow server).
    Delay(Duration),
    /// Forward, then send only the first `n` bytes of the answer's body and close (a connection
    /// lost mid-answer: the client sees fewer bytes than announced).
    Truncate(usize),
    /// Forward, then replace the body by bytes that are not JSON (with a matching length).
    Malformed,
    /// Never answer: hold the connection until [`HttpProxy::release`], the client gives up, or
    /// the proxy is dropped.
    Hang,
    /// Close the connection without an answer.
    Close,
    /// Answer this status and JSON body without asking the server (a synthetic answer: a tag
    /// list too big to push, a manifest of one's own).
    Answer(u16, String),
}

#[derive(Debug, Clone)]
struct Rule {
    method: Option<String>,
    path_contains: String,
    fault: HttpFault,
    skip: usize,
    times: Option<usize>,
    stops: bool,
}

#[derive(Debug, Default)]
struct HttpState {
    rules: Vec<Rule>,
    requests: Vec<String>,
    faulted: Vec<String>,
    released: u64,
    /// Set by a [`HttpProxy::stop_after`] rule: every request is closed without an answer.
    stopped: bool,
}

/// How the proxy speaks to clients and to the server.
#[derive(Clone)]
enum Tls {
    Plain,
    #[cfg(feature = "tls")]
    Tls {
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    },
}

/// An HTTP/1.1 proxy on a loopback port in front of `upstream` that records every request
/// (`"GET /path?query"`) and answers those a rule matches with an [`HttpFault`]. Each answer
/// closes its connection (clients open a new one: a pooled connection is never left in doubt).
#[derive(Debug)]
pub struct HttpProxy {
    addr: String,
    state: Arc<Mutex<HttpState>>,
    stop: Arc<AtomicBool>,
}

impl HttpProxy {
    /// A plain-HTTP proxy in front of a plain-HTTP `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str) -> Self {
        Self::start_with(upstream, Tls::Plain)
    }

    /// A proxy serving TLS with `cert_pem` (the chain) and `key_pem` to clients and speaking
    /// TLS to `upstream`, trusting the certificates in `upstream_ca_pem`. In front of
    /// kube-apiserver: its `certs/apiserver.crt` and `apiserver.key` for both.
    #[cfg(feature = "tls")]
    pub fn start_tls(
        upstream: &str,
        cert_pem: &std::path::Path,
        key_pem: &std::path::Path,
        upstream_ca_pem: &std::path::Path,
    ) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .expect("read the certificate")
            .map(|c| c.expect("a PEM certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(key_pem).expect("read the private key");
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a TLS server configuration");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(upstream_ca_pem).expect("read the CA") {
            roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
        }
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::start_with(upstream, Tls::Tls { server: Arc::new(server), client: Arc::new(client) })
    }

    fn start_with(upstream: &str, tls: Tls) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().map(|a| a.to_string()).expect("local address");
        let state = Arc::new(Mutex::new(HttpState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, thread_state, thread_stop) = (upstream.to_owned(), state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, state, stop, tls) =
                    (upstream.clone(), thread_state.clone(), thread_stop.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = http_connection(conn, &upstream, &state, &stop, &tls);
                });
            }
        });
        HttpProxy { addr, state, stop }
    }

    /// `127.0.0.1:PORT`: the address to give the client under test.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Answers requests whose method is `method` (any when `None`) and whose path and query
    /// contain `path_contains` with `fault`: after letting the first `skip` of them through,
    /// `times` of them (`None`: all). Rules are tried in the order they were added.
    pub fn inject(
        &self,
        method: Option<&str>,
        path_contains: &str,
        fault: HttpFault,
        skip: usize,
        times: Option<usize>,
    ) {
        let rule = Rule {
            method: method.map(str::to_owned),
            path_contains: path_contains.to_owned(),
            fault,
            skip,
            times,
            stops: false,
        };
        lock(&self.state).rules.push(rule);
    }

    /// Lets `skip` requests matching `method` and `path_contains` through, then behaves as a
    /// server that stopped: that request and every later one (any method, any path) has its
    /// connection closed without an answer, until [`HttpProxy::heal`].
    pub fn stop_after(&self, method: Option<&str>, path_contains: &str, skip: usize) {
        let rule = Rule {
            method: method.map(str::to_owned),
            path_contains: path_contains.to_owned(),
            fault: HttpFault::Close,
            skip,
            times: None,
            stops: true,
        };
        lock(&self.state).rules.push(rule);
    }

    /// Forgets every rule and a stop (requests are forwarded again) and releases hung requests.
    pub fn heal(&self) {
        let mut s = lock(&self.state);
        s.rules.clear();
        s.stopped = false;
        drop(s);
        self.release();
    }

    /// Ends the requests held by [`HttpFault::Hang`] (their connections are closed).
    pub fn release(&self) {
        lock(&self.state).released += 1;
    }

    /// Every request seen so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// The requests answered with a fault so far, as `METHOD path?query`.
    pub fn faulted(&self) -> Vec<String> {
        lock(&self.state).faulted.clone()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.release();
        let _ = TcpStream::connect(&self.addr);
    }
}

/// A byte stream to a client or to the server, plain or TLS.
trait Stream: Read + Write + Send {
    /// Ends the stream cleanly (TLS: `close_notify`).
    fn finish(&mut self) {}
}
impl Stream for TcpStream {}
#[cfg(feature = "tls")]
impl Stream for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}
#[cfg(feature = "tls")]
impl Stream for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// Reads one request (head and body: `Content-Length` or chunked); `None` at end of stream.
fn read_request(stream: &mut dyn Stream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&data, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut body = data.split_off(head_end);
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while body != b"0\r\n\r\n" && !body.ends_with(b"\r\n0\r\n\r\n") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    } else {
        let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        while body.len() < length {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    }
    Ok(Some((head, body)))
}

/// Reads until the end of the stream; a TLS peer closing without `close_notify` ends it too.
fn read_to_end(stream: &mut dyn Stream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

fn accept_client(conn: TcpStream, tls: &Tls) -> std::io::Result<Box<dyn Stream>> {
    match tls {
        Tls::Plain => Ok(Box::new(conn)),
        #[cfg(feature = "tls")]
        Tls::Tls { server, .. } => {
            let session = rustls::ServerConnection::new(server.clone()).map_err(std::io::Error::other)?;
            Ok(Box::new(rustls::StreamOwned::new(session, conn)))
        }
    }
}

fn connect_server(upstream: &str, tls: &Tls) -> std::io::Result<Box<dyn Stream>> {
    let conn = TcpStream::connect(upstream)?;
    conn.set_read_timeout(Some(HOLD_AT_MOST))?;
    match tls {
        Tls::Plain => Ok(Box::new(conn)),
        #[cfg(feature = "tls")]
        Tls::Tls { client, .. } => {
            let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h).to_owned();
            let name = rustls::pki_types::ServerName::try_from(host).map_err(std::io::Error::other)?;
            let session = rustls::ClientConnection::new(client.clone(), name).map_err(std::io::Error::other)?;
            Ok(Box::new(rustls::StreamOwned::new(session, conn)))
        }
    }
}

/// The fault for `summary` (`METHOD target`), counting the rule's skips and uses.
fn pick(state: &Mutex<HttpState>, method: &str, target: &str) -> Option<HttpFault> {
    let mut s = lock(state);
    s.requests.push(format!("{method} {target}"));
    if s.stopped {
        s.faulted.push(format!("{method} {target}"));
        return Some(HttpFault::Close);
    }
    let rule = s.rules.iter_mut().find(|r| {
        r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && target.contains(&r.path_contains)
            && r.times != Some(0)
    })?;
    if rule.skip > 0 {
        rule.skip -= 1;
        return None;
    }
    if let Some(times) = rule.times.as_mut() {
        *times -= 1;
    }
    let fault = rule.fault.clone();
    s.stopped |= rule.stops;
    s.faulted.push(format!("{method} {target}"));
    Some(fault)
}

fn http_connection(
    conn: TcpStream,
    upstream: &str,
    state: &Mutex<HttpState>,
    stop: &AtomicBool,
    tls: &Tls,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut client = accept_client(conn, tls)?;
    let Some((head, body)) = read_request(client.as_mut())? else { return Ok(()) };
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or("GET").to_owned(), parts.next().unwrap_or("/").to_owned());
    let fault = pick(state, &method, &target);
    match &fault {
        Some(HttpFault::Status(code, retry_after)) => {
            let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
            let body = format!(
                r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected {code}","reason":"","code":{code}}}"#
            );
            let answer = format!(
                "HTTP/1.1 {code} Injected\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes())?;
            client.finish();
            return Ok(());
        }
        Some(HttpFault::Close) => return Ok(()),
        Some(HttpFault::Answer(code, body)) => {
            let head = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(head.as_bytes())?;
            client.write_all(body.as_bytes())?;
            client.finish();
            return Ok(());
        }
        Some(HttpFault::Hang) => {
            let (start, released) = (Instant::now(), lock(state).released);
            while lock(state).released == released && !stop.load(Ordering::Relaxed) && start.elapsed() < HOLD_AT_MOST {
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        Some(HttpFault::Delay(d)) => std::thread::sleep(*d),
        _ => {}
    }
    // Forward with `Connection: close`, so the answer ends where the server's stream ends.
    let mut forwarded = format!("{request_line}\r\n").into_bytes();
    for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.extend_from_slice(line.as_bytes());
            forwarded.extend_from_slice(b"\r\n");
        }
    }
    forwarded.extend_from_slice(b"Connection: close\r\n\r\n");
    forwarded.extend_from_slice(&body);
    let mut server = connect_server(upstream, tls)?;
    server.write_all(&forwarded)?;
    server.flush()?;
    let mut answer = read_to_end(server.as_mut())?;
    let end = find(&answer, b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
    match fault {
        Some(HttpFault::Truncate(n)) => answer.truncate((end + n).min(answer.len())),
        Some(HttpFault::Malformed) => {
            let answer_head = String::from_utf8_lossy(&answer[..end]).into_owned();
            let status = answer_head.lines().next().unwrap_or("HTTP/1.1 200 OK").to_owned();
            let garbage = b"{\"kind\": \"not json, \x00\xff [[[";
            let mut out = format!(
                "{status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                garbage.len()
            )
            .into_bytes();
            out.extend_from_slice(garbage);
            answer = out;
        }
        _ => {}
    }
    client.write_all(&answer)?;
    client.finish();
    Ok(())
}
