//! A real browser for tests: Debian's `chromium` driven through `chromedriver` (WebDriver: JSON
//! over HTTP on a loopback port), headless. The client is a few blocking HTTP/1.1 calls over
//! a `TcpStream`, enough for navigation, finding and clicking elements, typing, running a
//! script, reading cookies and taking screenshots.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{ServerProcess, find_program, free_port, require};

/// How long one WebDriver call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The key WebDriver uses for an element's reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error, or a transport failure.
pub type BrowserError = String;

/// A running `chromedriver`, stopped when dropped.
#[derive(Debug)]
pub struct Chromedriver {
    server: ServerProcess,
    port: u16,
    chromium: PathBuf,
    _dir: tempfile::TempDir,
}

/// One call: `method path` with an optional JSON body; the answer's `value`.
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, BrowserError> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("chromedriver: {e}"))?;
    stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("chromedriver: {e}"))?;
    // chromedriver keeps the connection open whatever the request says: read the header, then
    // exactly Content-Length bytes (or chunks up to the last one).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let failed = |e: std::io::Error| format!("chromedriver {method} {path}: {e}");
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf).map_err(failed)?;
        if n == 0 {
            return Err(format!("chromedriver {method} {path}: closed before an answer"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked");
    let mut content = raw[split + 4..].to_vec();
    loop {
        let complete = match length {
            Some(length) => content.len() >= length,
            None if chunked => content.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf).map_err(failed)?;
        if n == 0 {
            break;
        }
        content.extend_from_slice(&buf[..n]);
    }
    if let Some(length) = length {
        content.truncate(length);
    } else if chunked {
        content = dechunk(&content);
    }
    let answer: Value = serde_json::from_slice(&content)
        .map_err(|e| format!("chromedriver {method} {path}: not JSON ({e}): {}", String::from_utf8_lossy(&content)))?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value.get("message").and_then(Value::as_str).unwrap_or_default();
        return Err(format!("{error}: {message}"));
    }
    Ok(value)
}

/// The body of a chunked HTTP answer.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

/// Standard base64 decoded (screenshots come as base64 PNG).
fn decode_base64(text: &str) -> Result<Vec<u8>, BrowserError> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut n) = (0u32, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        bits = (bits << 6) | u32::from(value(c).ok_or("not base64")?);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Ok(out)
}

impl Chromedriver {
    /// Starts `chromedriver` on a free port; `None` (after a loud skip message) when `chromium`
    /// or `chromedriver` is not installed outside CI (`scripts/install-test-deps` installs them).
    pub fn start() -> Option<Self> {
        let chromium = require("chromium (Debian's chromium)", find_program("chromium"))?;
        let program = require("chromedriver (Debian's chromium-driver)", find_program("chromedriver"))?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut command = Command::new(program);
        command.arg(format!("--port={port}"));
        let mut server = ServerProcess::start("chromedriver", command, dir.path()).expect("start chromedriver");
        server.wait_ready(Duration::from_secs(30), || {
            call(port, "GET", "/status", None).is_ok_and(|v| v["ready"].as_bool() == Some(true))
        });
        Some(Chromedriver { server, port, chromium, _dir: dir })
    }

    /// What chromedriver logged.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// A new headless browser window (its own profile: no cookies shared with others).
    ///
    /// # Errors
    /// When Chromium cannot start.
    pub fn browser(&self) -> Result<Browser, BrowserError> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                // As root Chromium needs --no-sandbox; these are test pages on loopback.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1"],
            },
        }}});
        let value = call(self.port, "POST", "/session", Some(&capabilities))?;
        let session = value["sessionId"].as_str().ok_or("no sessionId in the answer")?.to_owned();
        Ok(Browser { port: self.port, session })
    }
}

/// A browser window, closed when dropped.
#[derive(Debug)]
pub struct Browser {
    port: u16,
    session: String,
}

/// An element of the page.
#[derive(Debug)]
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(self.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, BrowserError> {
        call(self.port, method, &format!("/session/{}{path}", self.session), body.as_ref())
    }

    /// Navigates to `url` and waits for it to load.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.call("POST", "/url", Some(json!({ "url": url }))).map(drop)
    }

    /// The current URL.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn url(&self) -> Result<String, BrowserError> {
        Ok(self.call("GET", "/url", None)?.as_str().unwrap_or_default().to_owned())
    }

    /// The page's title.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn title(&self) -> Result<String, BrowserError> {
        Ok(self.call("GET", "/title", None)?.as_str().unwrap_or_default().to_owned())
    }

    /// The elements matching CSS `selector`, in document order.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn find_all(&self, selector: &str) -> Result<Vec<Element<'_>>, BrowserError> {
        let found = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": selector})))?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str())
            .map(|id| Element { browser: self, id: id.to_owned() })
            .collect())
    }

    /// The first element matching CSS `selector`, waiting up to 5 s for one to appear (a page
    /// just navigated to may still be loading); `None` when none did.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn find(&self, selector: &str) -> Result<Option<Element<'_>>, BrowserError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(found) = self.find_all(selector)?.into_iter().next() {
                return Ok(Some(found));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The visible text of the first element matching `selector` (empty when none does).
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn text_of(&self, selector: &str) -> Result<String, BrowserError> {
        match self.find(selector)? {
            Some(element) => element.text(),
            None => Ok(String::new()),
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; what it returns.
    ///
    /// # Errors
    /// As WebDriver says (a script error included).
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// The value of the cookie `name` (HttpOnly ones included), if set.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn cookie(&self, name: &str) -> Result<Option<Value>, BrowserError> {
        let cookies = self.call("GET", "/cookie", None)?;
        Ok(cookies.as_array().into_iter().flatten().find(|c| c["name"] == name).cloned())
    }

    /// Saves a PNG of the whole page to `path` (the window is made as tall as the page first,
    /// up to 4,000 pixels).
    ///
    /// # Errors
    /// As WebDriver says, or when the file cannot be written.
    pub fn screenshot(&self, path: &Path) -> Result<(), BrowserError> {
        let sizes = self.execute(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
            vec![],
        )?;
        let page = sizes[0].as_u64().unwrap_or(900);
        let chrome = sizes[1].as_u64().unwrap_or(0);
        let height = (page + chrome).clamp(600, 4000);
        self.call("POST", "/window/rect", Some(json!({"width": 1280, "height": height})))?;
        let png = self.call("GET", "/screenshot", None)?;
        let bytes = decode_base64(png.as_str().ok_or("no screenshot")?)?;
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl Element<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, BrowserError> {
        self.browser.call(method, &format!("/element/{}{path}", self.id), body)
    }

    /// Clicks it (and waits for a navigation it starts).
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn click(&self) -> Result<(), BrowserError> {
        self.call("POST", "/click", Some(json!({}))).map(drop)
    }

    /// Types `text` into it.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn send_keys(&self, text: &str) -> Result<(), BrowserError> {
        self.call("POST", "/value", Some(json!({ "text": text }))).map(drop)
    }

    /// Its visible text.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn text(&self) -> Result<String, BrowserError> {
        Ok(self.call("GET", "/text", None)?.as_str().unwrap_or_default().to_owned())
    }

    /// Its attribute `name`, if set.
    ///
    /// # Errors
    /// As WebDriver says.
    pub fn attribute(&self, name: &str) -> Result<Option<String>, BrowserError> {
        Ok(self.call("GET", &format!("/attribute/{name}"), None)?.as_str().map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_chunks_decode() {
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ=").expect("base64"), b"hello world");
        assert_eq!(decode_base64("iVBORw0KGgo=").expect("base64"), b"\x89PNG\r\n\x1a\n");
        assert!(decode_base64("a*b").is_err());
        assert_eq!(dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), b"hello world");
    }
}
