//! Webhooks that start work at once instead of at the next interval: a generic git notify, a
//! GitHub push (HMAC-SHA256 signed), and CNCF distribution's registry notifications.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::error;
use crate::api_types::GitNotify;
use crate::auth::GithubSecret;
use crate::daemon::Daemon;

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
