//! The HTTP API (JSON), a thin skin on the [service layer](crate::UnitService). Every route but
//! `/healthz`, `/readyz` and `/metrics` needs the bearer token (or a loopback peer, when opted in:
//! [`ApiAuth`]), except the GitHub webhook, which GitHub cannot give one to: it is authenticated
//! by its HMAC signature instead. Unit routes take
//! `?unit=NAME` (flux-api's contract; see [`flux_api::v1`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use flux_api::v1::{
    ApiError, HEAD_ERROR, HEAD_REVISION, Identity, JobAccepted, LISTED_REVISION, PREFIX, UnitInfo, UnitQuery, Units,
    Version,
};
use flux_core::automation::Listing;
use flux_core::{Error, ResourceId};
use serde::Deserialize;

use crate::auth::{ApiAuth, GithubSecret};
use crate::daemon::Daemon;
use crate::service::UnitService;
use crate::wire::convert;

/// An error answer.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Json<ApiError>) {
    (status, Json(ApiError { error: message.into() }))
}

/// A flux error as an answer, with the status its kind calls for.
pub(crate) fn failure(e: &Error) -> Response {
    let status = match e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::RateLimited { .. } | Error::Transient { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string()).into_response()
}

fn accepted(id: flux_core::Result<crate::jobs::JobId>) -> Response {
    match id {
        Ok(id) => (StatusCode::ACCEPTED, Json(JobAccepted { job_id: id.to_string() })).into_response(),
        Err(e) => failure(&e),
    }
}

/// `value` as the wire type `U`, with `headers`; an internal error if the conversion fails.
fn answer<T: serde::Serialize, U: serde::Serialize + serde::de::DeserializeOwned>(
    headers: HeaderMap,
    value: &T,
) -> Response {
    match convert::<T, U>(value) {
        Ok(wire) => (headers, Json(wire)).into_response(),
        Err(e) => failure(&Error::other(e.to_string())),
    }
}

/// The unit a request is about: `?unit=NAME`, or the only one.
pub(crate) fn unit(daemon: &Daemon, query: &UnitQuery) -> flux_core::Result<Arc<UnitService>> {
    daemon.select(query.unit.as_deref()).map(Arc::clone)
}

/// Lets a request through only as `auth` says: the right bearer token, or a loopback peer when
/// opted in (the peer is known when served with connect info, as [`Daemon::run`] does).
pub(crate) async fn require_token(State(auth): State<ApiAuth>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match auth.check(peer, presented) {
        Ok(()) => next.run(request).await,
        Err(why) => error(StatusCode::UNAUTHORIZED, why).into_response(),
    }
}

/// The largest request body a replica forwards to a unit's owner.
const FORWARD_BODY_LIMIT: usize = 2 << 20;

/// High availability: a write for a unit another replica writes for is forwarded to that
/// replica (once: a request forwarded already is handled here, and refused if this replica does
/// not write for the unit either); its answer is the client's. See [`crate::ha::forward`].
async fn forward_writes(State(daemon): State<Arc<Daemon>>, request: Request, next: Next) -> Response {
    let Ok(Query(query)) = Query::<UnitQuery>::try_from_uri(request.uri()) else { return next.run(request).await };
    let Ok(unit) = unit(&daemon, &query) else { return next.run(request).await };
    let ownership = unit.unit().ownership().map(|o| o.as_ref() as &dyn crate::ha::Ownership);
    let forwarded_by = request.headers().get(crate::ha::FORWARDED_BY).and_then(|v| v.to_str().ok());
    if let (Some(by), Some(ownership)) = (forwarded_by, ownership) {
        tracing::info!(
            replica = ownership.replica(),
            unit = unit.name(),
            forwarded_by = by,
            path = request.uri().path(),
            "write forwarded by another replica"
        );
    }
    match crate::ha::forward::route(ownership, unit.name(), forwarded_by) {
        crate::ha::forward::WriteRoute::Here => next.run(request).await,
        crate::ha::forward::WriteRoute::Unreachable { why } => {
            error(StatusCode::SERVICE_UNAVAILABLE, why).into_response()
        }
        crate::ha::forward::WriteRoute::Forward { owner, base } => {
            let me = ownership.map(|o| o.replica().to_owned()).unwrap_or_default();
            // The nested API router sees its paths without the prefix.
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let path = format!("{PREFIX}{path}");
            let (parts, body) = request.into_parts();
            let body = match axum::body::to_bytes(body, FORWARD_BODY_LIMIT).await {
                Ok(body) => body,
                Err(e) => {
                    return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body not read for forwarding: {e}"))
                        .into_response();
                }
            };
            let request = (parts.method, path.as_str(), &parts.headers);
            crate::ha::forward::forward(&me, unit.name(), &owner, &base, request, body).await
        }
    }
}

/// The whole router: health, metrics (as Flux v1 served them on its API port: no token), the
/// authenticated API, the webhooks and the status page (`/ui/`, unless turned off).
pub(crate) fn router(daemon: Arc<Daemon>, auth: ApiAuth, github_secret: Option<GithubSecret>) -> Router {
    let auth_for_ui = auth.clone();
    // The routes that write for a unit: sent to its owner from any replica.
    let forwarding = || middleware::from_fn_with_state(daemon.clone(), forward_writes);
    let api = Router::new()
        .route("/version", get(version))
        .route("/units", get(units))
        .route("/identity", get(identity))
        .route("/identity/regenerate", post(regenerate_identity))
        .route("/status", get(status))
        .route("/workloads", get(workloads))
        .route("/images", get(images))
        .route("/release", post(release).route_layer(forwarding()))
        .route("/policies", post(policies).route_layer(forwarding()))
        .route("/sync", post(sync_now).route_layer(forwarding()))
        .route("/plan", post(plan))
        .route("/suspend", post(suspend).route_layer(forwarding()))
        .route("/resume", post(resume).route_layer(forwarding()))
        .route("/jobs/{id}", get(job))
        .route("/export", get(export))
        .route("/notify/git", post(crate::webhooks::git))
        .route("/notify/registry", post(crate::webhooks::registry))
        .layer(middleware::from_fn_with_state(auth, require_token))
        .with_state(daemon.clone());
    let github = Router::new()
        .route("/notify/github", post(crate::webhooks::github))
        .with_state((daemon.clone(), github_secret));
    let mut root = Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz));
    if let Some(metrics) = daemon.metrics() {
        root = root.merge(crate::metrics::router(metrics.clone()));
    }
    let ui =
        daemon.ui_settings().enabled.then(|| crate::ui::router(daemon.clone(), &auth_for_ui, daemon.ui_settings()));
    let root = root.with_state(daemon).nest(PREFIX, api.merge(github));
    match ui {
        Some(ui) => root.merge(ui),
        None => root,
    }
}

/// Ready once every unit has synced once.
async fn readyz(State(daemon): State<Arc<Daemon>>) -> Response {
    // With high availability, a replica answers for the units it writes for. A held unit
    // (suspended, or waiting for a dependency) ran its sync: it is not waiting on this daemon.
    let synced = |u: &UnitService| {
        let status = u.status();
        status.last_sync.is_some() || status.held.is_some()
    };
    let waiting: Vec<&str> = daemon.units().filter(|u| u.writes_here() && !synced(u)).map(|u| u.name()).collect();
    if waiting.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("no sync yet in {}", waiting.join(", "))).into_response()
    }
}

async fn version() -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION").to_owned() })
}

async fn units(State(daemon): State<Arc<Daemon>>) -> Json<Units> {
    let units = daemon
        .units()
        .map(|u| UnitInfo {
            name: u.name().to_owned(),
            branch: u.unit().branch().map(str::to_owned),
            paths: u.unit().sync_config().paths.clone(),
            head: u.status().head,
            owner: u.owner(),
        })
        .collect();
    Json(Units { units })
}

/// A public key and its fingerprint.
fn identity_of(public_key: Option<String>) -> Identity {
    let fingerprint = public_key.as_deref().and_then(crate::fingerprint);
    Identity { public_key, fingerprint }
}

async fn identity(State(daemon): State<Arc<Daemon>>, Query(q): Query<UnitQuery>) -> Response {
    match unit(&daemon, &q) {
        Ok(u) => Json(identity_of(u.unit().public_key())).into_response(),
        Err(e) => failure(&e),
    }
}

/// Flux v1's `POST /identity/regenerate`: a new deploy key, stored and in use; its public half.
async fn regenerate_identity(State(daemon): State<Arc<Daemon>>, Query(q): Query<UnitQuery>) -> Response {
    let unit = match unit(&daemon, &q) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    let Some(ring) = unit.unit().deploy_key() else {
        let why = format!(
            "unit {}'s deploy key is not kept in a Kubernetes Secret by this daemon: it cannot be regenerated",
            unit.name()
        );
        return error(StatusCode::NOT_IMPLEMENTED, why).into_response();
    };
    match ring.regenerate().await {
        Ok(public_key) => {
            tracing::info!(unit = unit.name(), fingerprint = ?crate::fingerprint(&public_key), "deploy key regenerated");
            Json(identity_of(Some(public_key))).into_response()
        }
        Err(e) => failure(&e),
    }
}

/// The unit's status; with high availability, the owner's (what it synced), asked of it when
/// another replica writes for the unit, else this replica's own view.
async fn status(
    State(daemon): State<Arc<Daemon>>,
    Query(q): Query<UnitQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let unit = match unit(&daemon, &q) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    let ownership = unit.unit().ownership().map(|o| o.as_ref() as &dyn crate::ha::Ownership);
    let forwarded_by = headers.get(crate::ha::FORWARDED_BY).and_then(|v| v.to_str().ok());
    if let (crate::ha::forward::WriteRoute::Forward { owner, base }, Some(ownership)) =
        (crate::ha::forward::route(ownership, unit.name(), forwarded_by), ownership)
    {
        let path = format!("{PREFIX}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
        let asked = crate::ha::forward::ask_owner(ownership.replica(), unit.name(), &owner, &base, &path, &headers);
        if let Some(answer) = asked.await {
            return answer;
        }
    }
    answer::<_, flux_api::v1::Status>(HeaderMap::new(), &unit.status())
}

#[derive(Debug, Deserialize)]
struct WorkloadQuery {
    namespace: Option<String>,
}

async fn workloads(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    Query(q): Query<WorkloadQuery>,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    match unit.workloads(q.namespace.as_deref()).await {
        Ok((listing, list)) => answer::<_, Vec<flux_api::v1::WorkloadInfo>>(listing_headers(&listing), &list),
        Err(e) => failure(&e),
    }
}

/// The headers of a listing: the revision listed and, when the head is unusable, the head and
/// its error (the body keeps its shape, so scripts reading it are unaffected).
fn listing_headers(listing: &Listing) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(&header_text(value)) {
            headers.insert(name, value);
        }
    };
    set(LISTED_REVISION, listing.state.head.as_str());
    if let Some(problem) = &listing.head_problem {
        if let Some(head) = &problem.revision {
            set(HEAD_REVISION, head.as_str());
        }
        set(HEAD_ERROR, &problem.error);
    }
    headers
}

/// `text` on one line of visible ASCII: line breaks and tabs become spaces, other characters
/// `\u{..}` escapes.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => " ".to_owned(),
            ' '..='~' => c.to_string(),
            other => other.escape_unicode().to_string(),
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct ImagesQuery {
    workload: Option<String>,
}

async fn images(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    Query(q): Query<ImagesQuery>,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    let only = match q.workload.as_deref().map(str::parse::<ResourceId>).transpose() {
        Ok(only) => only,
        Err(e) => return failure(&e),
    };
    match unit.images(only.as_ref()).await {
        Ok((listing, images)) => answer::<_, Vec<flux_api::v1::WorkloadImages>>(listing_headers(&listing), &images),
        Err(e) => failure(&e),
    }
}

async fn release(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    Json(spec): Json<flux_api::v1::ReleaseSpec>,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    match convert(&spec) {
        Ok(spec) => accepted(unit.submit_release(spec)),
        Err(e) => failure(&e),
    }
}

async fn policies(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    Json(request): Json<flux_api::v1::PolicyRequest>,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    match convert(&request) {
        Ok(request) => accepted(unit.submit_policy(request)),
        Err(e) => failure(&e),
    }
}

async fn sync_now(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    Query(q): Query<flux_api::v1::SyncQuery>,
) -> Response {
    match unit(&daemon, &u) {
        Ok(unit) => {
            // The allowance is for the replica that writes for the unit.
            if let Err(e) = unit.check_writes_here() {
                return failure(&e);
            }
            if q.allow_prune {
                tracing::info!(unit = unit.name(), "one prune allowed past the prune guard");
                unit.engines().sync.allow_prune_once();
            }
            accepted(unit.submit_sync())
        }
        Err(e) => failure(&e),
    }
}

/// The diff plan of a revision or of the unit's head; the body ([`flux_api::v1::PlanRequest`])
/// may be empty.
async fn plan(State(daemon): State<Arc<Daemon>>, Query(u): Query<UnitQuery>, body: axum::body::Bytes) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    let request: flux_api::v1::PlanRequest = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("plan request: {e}")).into_response(),
        }
    };
    let planned = crate::dry_run::plan::plan_request(unit.unit(), &unit.engines().sync, &request).await;
    match planned.and_then(|p| p.to_wire()) {
        Ok(plan) => Json(plan).into_response(),
        Err(e) => failure(&e),
    }
}

/// A job of the unit; with high availability, one this replica does not know is asked of the
/// other replicas (a write forwarded to the owner was queued there).
async fn job(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    if let Some(view) = unit.job(&id) {
        return answer::<_, flux_api::v1::JobView>(HeaderMap::new(), &view);
    }
    let asked_already = headers.contains_key(crate::ha::FORWARDED_BY);
    if let Some(ownership) = unit.unit().ownership().filter(|_| !asked_already) {
        let path = format!("{PREFIX}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
        if let Some(found) = crate::ha::forward::find_job(ownership.as_ref(), &path, &headers).await {
            return found;
        }
    }
    error(StatusCode::NOT_FOUND, format!("no job {id} in unit {} (unknown, or finished long ago)", unit.name()))
        .into_response()
}

async fn export(State(daemon): State<Arc<Daemon>>, Query(u): Query<UnitQuery>) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    match unit.export().await {
        Ok(yaml) => ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response(),
        Err(e) => failure(&e),
    }
}

/// `POST /suspend`: the unit, or one workload's automation; the unit's status after.
async fn suspend(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    body: Option<Json<flux_api::v1::SuspendRequest>>,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let workload = match request.workload.map(|w| w.to_string().parse::<ResourceId>()).transpose() {
        Ok(workload) => workload,
        Err(e) => return failure(&e),
    };
    match unit.suspend(workload, request.user, request.message).await {
        Ok(()) => answer::<_, flux_api::v1::Status>(HeaderMap::new(), &unit.status()),
        Err(e) => failure(&e),
    }
}

/// `POST /resume`: the unit, or one workload's automation; the unit's status after.
async fn resume(
    State(daemon): State<Arc<Daemon>>,
    Query(u): Query<UnitQuery>,
    body: Option<Json<flux_api::v1::ResumeRequest>>,
) -> Response {
    let unit = match unit(&daemon, &u) {
        Ok(unit) => unit,
        Err(e) => return failure(&e),
    };
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let workload = match request.workload.map(|w| w.to_string().parse::<ResourceId>()).transpose() {
        Ok(workload) => workload,
        Err(e) => return failure(&e),
    };
    match unit.resume(workload.as_ref(), request.user.as_deref()).await {
        Ok(_) => answer::<_, flux_api::v1::Status>(HeaderMap::new(), &unit.status()),
        Err(e) => failure(&e),
    }
}
