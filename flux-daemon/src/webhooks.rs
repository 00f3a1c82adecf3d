//! Webhooks that start work at once instead of at the next interval: a generic git notify, a
//! GitHub push (HMAC-SHA256 signed), and CNCF distribution's registry notifications. Each
//! concerns the unit its `?unit=` names, else every unit it matches (the branch pushed; any
//! unit scanning registries).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::error;
use crate::auth::GithubSecret;
use crate::daemon::Daemon;
use crate::service::UnitService;

/// The units a notification about `branch` (`None`: unknown) concerns: the one `?unit=` names,
/// else those following that branch.
fn concerned(daemon: &Daemon, query: &UnitQuery, branch: Option<&str>) -> flux_core::Result<Vec<Arc<UnitService>>> {
    if query.unit.is_some() {
        return crate::api::unit(daemon, query).map(|u| vec![u]);
    }
    let matches = |u: &&Arc<UnitService>| match (branch, u.unit().branch()) {
        (Some(pushed), Some(followed)) => pushed.trim_start_matches("refs/heads/") == followed,
        _ => true,
    };
    Ok(daemon.units().filter(matches).cloned().collect())
}

/// Wakes the git loop of `units`; the answer.
fn fetch(units: Vec<Arc<UnitService>>) -> Response {
    if units.is_empty() {
        return (StatusCode::OK, "another branch: ignored").into_response();
    }
    let names: Vec<&str> = units.iter().map(|u| u.name()).collect();
    let answer = format!("fetching in {}", names.join(", "));
    units.iter().for_each(|u| u.triggers.git.notify_one());
    (StatusCode::ACCEPTED, answer).into_response()
}
use flux_api::v1::{GitNotify, UnitQuery};

/// `POST /api/v1/notify/git`: fetch now (a push to another branch is ignored).
pub(crate) async fn git(State(daemon): State<Arc<Daemon>>, Query(q): Query<UnitQuery>, body: Bytes) -> Response {
    let notify: GitNotify = if body.is_empty() {
        GitNotify::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid notification: {e}")).into_response(),
        }
    };
    match concerned(&daemon, &q, notify.branch.as_deref()) {
        Ok(units) => fetch(units),
        Err(e) => crate::api::failure(&e),
    }
}

#[derive(Debug, Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// `POST /api/v1/notify/github`: a GitHub push event, checked against its signature.
pub(crate) async fn github(
    State((daemon, secret)): State<(Arc<Daemon>, Option<GithubSecret>)>,
    Query(q): Query<UnitQuery>,
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
    let Some(branch) = push.reference.as_deref().and_then(|r| r.strip_prefix("refs/heads/")) else {
        return (StatusCode::OK, "not a branch: ignored").into_response();
    };
    match concerned(&daemon, &q, Some(branch)) {
        Ok(units) => fetch(units),
        Err(e) => crate::api::failure(&e),
    }
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
pub(crate) async fn registry(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<UnitQuery>,
    Json(envelope): Json<Envelope>,
) -> Response {
    let pushed: Vec<String> = envelope
        .events
        .iter()
        .filter(|e| e.action == "push")
        .filter_map(|e| e.target.as_ref())
        .filter(|t| t.tag.is_some())
        .filter_map(|t| t.repository.clone())
        .collect();
    let units = match concerned(&daemon, &q, None) {
        Ok(units) => units.into_iter().filter(|u| u.unit().scanning()).collect::<Vec<_>>(),
        Err(e) => return crate::api::failure(&e),
    };
    if pushed.is_empty() || units.is_empty() {
        return (StatusCode::OK, "nothing to do").into_response();
    }
    tracing::info!(repositories = ?pushed, "registry push notified: automation pass");
    units.iter().for_each(|u| u.triggers.automation.notify_one());
    (StatusCode::ACCEPTED, "automation pass started").into_response()
}
