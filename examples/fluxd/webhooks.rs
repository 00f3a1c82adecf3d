//! Webhooks that start work at once instead of at the next interval: a generic git notify, a
//! GitHub push (HMAC-SHA256 signed), and CNCF distribution's registry notifications.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;

use crate::api::error;
use crate::api_types::GitNotify;
use crate::daemon::Daemon;

/// The shared secret of GitHub webhooks. Its `Debug` hides it.
#[derive(Clone)]
pub(crate) struct GithubSecret(Vec<u8>);

impl std::fmt::Debug for GithubSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GithubSecret(***)")
    }
}

impl GithubSecret {
    /// The secret in `file`, trimmed.
    pub(crate) fn load(file: &std::path::Path) -> Result<Self, String> {
        let s = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the GitHub webhook secret {}: {e}", file.display()))?;
        Ok(GithubSecret(s.trim().as_bytes().to_vec()))
    }

    /// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` (checked in constant time).
    pub(crate) fn verifies(&self, body: &[u8], signature: &str) -> bool {
        let Some(hex) = signature.strip_prefix("sha256=") else { return false };
        let Some(expected) = decode_hex(hex) else { return false };
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&self.0) else { return false };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// `POST /api/v1/notify/git`: fetch now (a push to another branch is ignored).
pub(crate) async fn git(State(daemon): State<Arc<Daemon>>, body: Bytes) -> Response {
    let notify: GitNotify = if body.is_empty() {
        GitNotify::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid notification: {e}")).into_response(),
        }
    };
    if notify.branch.is_some_and(|b| b.trim_start_matches("refs/heads/") != daemon.branch) {
        return (StatusCode::OK, "another branch: ignored").into_response();
    }
    daemon.triggers.git.notify_one();
    (StatusCode::ACCEPTED, "fetching").into_response()
}

#[derive(Debug, Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// `POST /api/v1/notify/github`: a GitHub push event, checked against its signature.
pub(crate) async fn github(
    State((daemon, secret)): State<(Arc<Daemon>, Option<GithubSecret>)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = secret else {
        return error(StatusCode::NOT_FOUND, "GitHub webhooks are off (no --webhook-github-secret-file)")
            .into_response();
    };
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !secret.verifies(&body, signature) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong X-Hub-Signature-256").into_response();
    }
    match headers.get("x-github-event").and_then(|v| v.to_str().ok()) {
        Some("ping") => return (StatusCode::OK, "pong").into_response(),
        Some("push") => {}
        other => return (StatusCode::OK, format!("event {other:?} ignored")).into_response(),
    }
    let push: GithubPush = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid push event: {e}")).into_response(),
    };
    if push.reference.as_deref() != Some(&format!("refs/heads/{}", daemon.branch)) {
        return (StatusCode::OK, "another branch: ignored").into_response();
    }
    daemon.triggers.git.notify_one();
    (StatusCode::ACCEPTED, "fetching").into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    events: Vec<RegistryEvent>,
}

#[derive(Debug, Deserialize)]
struct RegistryEvent {
    action: String,
    target: Option<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    repository: Option<String>,
    tag: Option<String>,
}

/// `POST /api/v1/notify/registry`: CNCF distribution notifications; a push of a tag starts an
/// automation pass.
pub(crate) async fn registry(State(daemon): State<Arc<Daemon>>, Json(envelope): Json<Envelope>) -> Response {
    let pushed: Vec<String> = envelope
        .events
        .iter()
        .filter(|e| e.action == "push")
        .filter_map(|e| e.target.as_ref())
        .filter(|t| t.tag.is_some())
        .filter_map(|t| t.repository.clone())
        .collect();
    if pushed.is_empty() || daemon.scanning_disabled {
        return (StatusCode::OK, "nothing to do").into_response();
    }
    tracing::info!(repositories = ?pushed, "registry push notified: automation pass");
    daemon.triggers.automation.notify_one();
    (StatusCode::ACCEPTED, "automation pass started").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signatures_are_checked() {
        let secret = GithubSecret(b"It's a Secret to Everybody".to_vec());
        // GitHub's documented example of X-Hub-Signature-256.
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(secret.verifies(b"Hello, World!", sig));
        assert!(!secret.verifies(b"Hello, World?", sig));
        assert!(!secret.verifies(b"Hello, World!", "sha256=00"));
        assert!(!secret.verifies(b"Hello, World!", ""));
        assert!(!format!("{secret:?}").contains("Secret to"));
    }
}
