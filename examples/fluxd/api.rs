//! The HTTP API (JSON). Every route but `/healthz` and `/readyz` needs the bearer token, except
//! the GitHub webhook, which GitHub cannot give one to: it is authenticated by its HMAC
//! signature instead. Routes are documented in examples/README.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use flux_core::automation::ReleaseSpec;
use flux_core::{Error, ObjectRef, ResourceId};
use serde::Deserialize;

use crate::api_types::{ApiError, Identity, JobAccepted, PREFIX, PolicyRequest, Version, WorkloadInfo};
use crate::auth::ApiToken;
use crate::daemon::Daemon;

/// An error answer.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Json<ApiError>) {
    (status, Json(ApiError { error: message.into() }))
}

/// A flux error as an answer, with the status its kind calls for.
fn failure(e: &Error) -> Response {
    let status = match e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::RateLimited { .. } | Error::Transient { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string()).into_response()
}

fn accepted(id: flux_core::Result<flux_core::jobs::JobId>) -> Response {
    match id {
        Ok(id) => (StatusCode::ACCEPTED, Json(JobAccepted { job_id: id.to_string() })).into_response(),
        Err(e) => failure(&e),
    }
}

/// Lets a request through only with the right bearer token.
pub(crate) async fn require_token(State(token): State<ApiToken>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p.trim()) => next.run(request).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "wrong API token").into_response(),
        None => error(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <token>").into_response(),
    }
}

/// The whole router: health, the authenticated API and the webhooks.
pub(crate) fn router(daemon: Arc<Daemon>, token: ApiToken, github_secret: Option<crate::auth::GithubSecret>) -> Router {
    let api = Router::new()
        .route("/version", get(version))
        .route("/identity", get(identity))
        .route("/status", get(status))
        .route("/workloads", get(workloads))
        .route("/images", get(images))
        .route("/release", post(release))
        .route("/policies", post(policies))
        .route("/sync", post(sync_now))
        .route("/jobs/{id}", get(job))
        .route("/export", get(export))
        .route("/notify/git", post(crate::webhooks::git))
        .route("/notify/registry", post(crate::webhooks::registry))
        .layer(middleware::from_fn_with_state(token, require_token))
        .with_state(daemon.clone());
    let github = Router::new()
        .route("/notify/github", post(crate::webhooks::github))
        .with_state((daemon.clone(), github_secret));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(daemon)
        .nest(PREFIX, api.merge(github))
}

async fn readyz(State(daemon): State<Arc<Daemon>>) -> Response {
    match daemon.status().last_sync {
        Some(_) => (StatusCode::OK, "ready").into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no sync yet").into_response(),
    }
}

async fn version() -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION").to_owned() })
}

async fn identity(State(daemon): State<Arc<Daemon>>) -> Json<Identity> {
    Json(Identity { public_key: daemon.parts.public_key.clone() })
}

async fn status(State(daemon): State<Arc<Daemon>>) -> Json<crate::api_types::Status> {
    Json(daemon.status())
}

#[derive(Debug, Deserialize)]
struct WorkloadQuery {
    namespace: Option<String>,
}

/// Workloads in git (with their policies) and in the cluster (with what runs and its status).
async fn workloads(State(daemon): State<Arc<Daemon>>, Query(q): Query<WorkloadQuery>) -> Response {
    let parts = &daemon.parts;
    let running = match parts.cluster.workloads(q.namespace.as_deref()).await {
        Ok(w) => w,
        Err(e) => return failure(&e),
    };
    let state = match parts.automation.state().await {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    let mut out: BTreeMap<ResourceId, WorkloadInfo> = BTreeMap::new();
    for w in state.workloads.iter().filter(|w| q.namespace.is_none() || w.id.namespace() == q.namespace.as_deref()) {
        let containers = w
            .containers
            .iter()
            .map(|c| flux_core::Container { name: c.name.clone(), image: c.image.to_string(), init: false })
            .collect();
        out.insert(
            w.id.clone(),
            WorkloadInfo { id: w.id.clone(), containers, status: None, policies: w.policies.clone(), in_git: true },
        );
    }
    for w in running {
        let entry = out.entry(w.id.clone()).or_insert_with(|| WorkloadInfo {
            id: w.id.clone(),
            containers: Vec::new(),
            status: None,
            policies: Default::default(),
            in_git: false,
        });
        entry.containers = w.containers;
        entry.status = Some(w.status);
    }
    Json(out.into_values().collect::<Vec<_>>()).into_response()
}

#[derive(Debug, Deserialize)]
struct ImagesQuery {
    workload: Option<String>,
}

async fn images(State(daemon): State<Arc<Daemon>>, Query(q): Query<ImagesQuery>) -> Response {
    if daemon.scanning_disabled {
        return error(StatusCode::SERVICE_UNAVAILABLE, "registry scanning is disabled (--registry-disable-scanning)")
            .into_response();
    }
    let only = match q.workload.as_deref().map(str::parse::<ResourceId>).transpose() {
        Ok(only) => only,
        Err(e) => return failure(&e),
    };
    match daemon.parts.automation.images(only.as_ref()).await {
        Ok(images) => Json(images).into_response(),
        Err(e) => failure(&e),
    }
}

async fn release(State(daemon): State<Arc<Daemon>>, Json(spec): Json<ReleaseSpec>) -> Response {
    accepted(daemon.submit(daemon.release_work(spec)))
}

async fn policies(State(daemon): State<Arc<Daemon>>, Json(request): Json<PolicyRequest>) -> Response {
    accepted(daemon.submit(daemon.policy_work(request)))
}

async fn sync_now(State(daemon): State<Arc<Daemon>>) -> Response {
    accepted(daemon.submit(daemon.sync_work()))
}

async fn job(State(daemon): State<Arc<Daemon>>, Path(id): Path<String>) -> Response {
    match daemon.job(&id) {
        Some(view) => Json(view).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id} (unknown, or finished long ago)")).into_response(),
    }
}

/// Fields the server sets, left out of an export so it can be applied elsewhere.
const SERVER_FIELDS: [&str; 5] = ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"];

/// The objects this daemon manages, as they are in the cluster, as one YAML stream.
async fn export(State(daemon): State<Arc<Daemon>>) -> Response {
    let parts = &daemon.parts;
    let managed = match parts.cluster.managed(&parts.sync.config().identity).await {
        Ok(m) => m,
        Err(e) => return failure(&e),
    };
    let mut refs: Vec<ObjectRef> = managed.into_iter().map(|m| m.reference).collect();
    refs.sort_by(|a, b| a.id.cmp(&b.id));
    let mut yaml = String::new();
    for reference in refs {
        let object = match parts.cluster.get(&reference).await {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => return failure(&e),
        };
        let mut value = object.to_value();
        if let Some(obj) = value.as_object_mut() {
            obj.remove("status");
            if let Some(meta) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                SERVER_FIELDS.iter().for_each(|f| {
                    meta.remove(*f);
                });
            }
        }
        match serde_saphyr::to_string(&value) {
            Ok(doc) => {
                yaml.push_str("---\n");
                yaml.push_str(&doc);
            }
            Err(e) => return failure(&Error::other(format!("cannot write {} as YAML: {e}", reference.id))),
        }
    }
    ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response()
}
