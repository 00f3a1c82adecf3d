//! The status page, `/ui/` on the API listener: server-rendered HTML (maud: compiled templates
//! that escape every value) over the [service layer](crate::UnitService), for a person who
//! wants to see what is wrong, where and since when, and to act on it.
//!
//! - **Sign-in**: `/ui/login` takes the API token (one password field, `token`), checks it in
//!   constant time and sets a session cookie (HttpOnly, SameSite=Strict, expiring; `Secure`
//!   over TLS). Every other page needs the session: a page redirects to the form, anything
//!   else is refused (401).
//! - **Actions** (sync now, automate / deautomate, lock / unlock, release) are forms posting
//!   the session's CSRF token (a wrong or missing one is refused, 403); each queues a job and
//!   leads to its page.
//! - **Live**: `/ui/events` is a server-sent event stream saying when a unit's jobs or syncs
//!   changed; the one script (`/ui/static/live.js`, from the binary) then fetches the page
//!   again and swaps its content in, without a reload. Without JavaScript every read-only view
//!   works as plain links and forms.
//! - **Headers**: a strict Content-Security-Policy (nothing but this server's own script and
//!   stylesheet; no inline code), `nosniff`, no referrer to other sites, no caching, no framing.
//!
//! No page ever holds a secret: the token is only ever read from the sign-in form.

mod pages;
mod session;
mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use flux_core::automation::{ImageSelector, ReleaseSpec, WorkloadSelector};
use flux_core::{ChangeCause, Lock, PolicyChange, ResourceId};
use serde::Deserialize;

use crate::auth::{ApiAuth, ApiToken};
use crate::daemon::Daemon;
use crate::results::PolicyRequest;
use crate::service::UnitService;
pub(crate) use session::Session;
use session::{COOKIE, Sessions};

/// The Content-Security-Policy of every `/ui/` answer: only this server's script, stylesheet
/// and event stream; no inline code, no plugins, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The user recorded on commits made through the page (`fluxcd.io/locked_user`, and the
/// commit author with `--git-set-author`).
pub const UI_USER: &str = "status page";

/// How long a unit's workload listing is reused while nothing changes in the unit (the
/// pages re-read it at once after a job or a sync).
pub const ROWS_TTL: Duration = Duration::from_secs(10);

/// How many workloads the workloads page shows at once.
pub const PAGE_SIZE: usize = 50;

/// How the status page is served.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Serve `/ui/` at all (on by default; it needs the API token to sign in).
    pub enabled: bool,
    /// How long a session lasts after signing in (default 8 hours).
    pub session_lifetime: Duration,
    /// The page is reached over TLS (a TLS-terminating proxy): the session cookie is `Secure`.
    /// A request with `X-Forwarded-Proto: https` gets a `Secure` cookie either way.
    pub tls: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings { enabled: true, session_lifetime: Duration::from_secs(8 * 3600), tls: false }
    }
}

/// The page's state: the daemon, the token to sign in with, the sessions.
struct Ui {
    daemon: Arc<Daemon>,
    token: Option<ApiToken>,
    sessions: Sessions,
    tls: bool,
    rows: view::RowCache,
}

type Shared = Arc<Ui>;

/// The status page's routes under `/ui`, over `daemon`, signing in with `auth`'s token.
pub(crate) fn router(daemon: Arc<Daemon>, auth: &ApiAuth, settings: &UiSettings) -> Router {
    let ui = Arc::new(Ui {
        daemon,
        token: auth.token.clone(),
        sessions: Sessions::new(settings.session_lifetime),
        tls: settings.tls,
        rows: view::RowCache::new(ROWS_TTL),
    });
    let signed_in = Router::new()
        .route("/ui/", get(overview))
        .route("/ui/workloads", get(workloads))
        .route("/ui/workload", get(workload))
        .route("/ui/history", get(history))
        .route("/ui/job", get(job))
        .route("/ui/events", get(events))
        .route("/ui/logout", post(logout))
        .route("/ui/sync", post(sync_now))
        .route("/ui/policy", post(policy))
        .route("/ui/release", post(release))
        .layer(middleware::from_fn_with_state(ui.clone(), require_session));
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/static/ui.css", get(stylesheet))
        .route("/ui/static/live.js", get(script))
        .merge(signed_in)
        .layer(middleware::from_fn(security_headers))
        .with_state(ui)
}

/// Sets the security headers on every answer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Whether a request's `Origin`, when it has one, is this server (`Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !host.is_empty() && origin_host == host
}

/// The session cookie's id, if the request carries one.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| session::cookie(v, COOKIE))
}

/// Lets a request through only with a live session (put in its extensions); a page without one
/// is sent to the sign-in form, anything else refused. A request from another origin is refused.
async fn require_session(State(ui): State<Shared>, mut request: Request, next: Next) -> Response {
    if request.method() != Method::GET && !same_origin(request.headers()) {
        return pages::refused(StatusCode::FORBIDDEN, "this request came from another site").into_response();
    }
    let session = session_id(request.headers()).and_then(|id| ui.sessions.get(id, Instant::now()));
    let Some(session) = session else {
        let is_page = request.method() == Method::GET && request.uri().path() != "/ui/events";
        return if is_page {
            Redirect::to("/ui/login").into_response()
        } else {
            pages::refused(StatusCode::UNAUTHORIZED, "not signed in (or the session expired)").into_response()
        };
    };
    request.extensions_mut().insert(session);
    next.run(request).await
}

async fn stylesheet() -> Response {
    static CSS: &str = include_str!("static/ui.css");
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS).into_response()
}

async fn script() -> Response {
    static JS: &str = include_str!("static/live.js");
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], JS)
        .into_response()
}

async fn login_form(State(ui): State<Shared>) -> Response {
    pages::login(ui.token.is_some(), None).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(State(ui): State<Shared>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        return pages::refused(StatusCode::FORBIDDEN, "this request came from another site").into_response();
    }
    let Some(token) = &ui.token else {
        return (StatusCode::UNAUTHORIZED, pages::login(false, None)).into_response();
    };
    if !token.matches(form.token.trim()) {
        // A pause makes guessing slow; the comparison itself is constant-time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return (StatusCode::UNAUTHORIZED, pages::login(true, Some("That is not the API token."))).into_response();
    }
    let (id, _) = match ui.sessions.create(Instant::now()) {
        Ok(created) => created,
        Err(e) => {
            tracing::error!(error = %e, "no random bytes for a session");
            return pages::refused(StatusCode::INTERNAL_SERVER_ERROR, "cannot start a session").into_response();
        }
    };
    let secure = ui.tls || forwarded_https(&headers);
    let cookie = session::set_cookie(&id, ui.sessions.lifetime(), secure);
    let mut response = Redirect::to("/ui/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session.csrf_matches(&form.csrf) {
        return bad_csrf();
    }
    if let Some(id) = session_id(&headers) {
        ui.sessions.remove(id);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(ui.tls || forwarded_https(&headers))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn bad_csrf() -> Response {
    pages::refused(StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong: reload the page and try again")
        .into_response()
}

/// `?unit=` of a page.
#[derive(Debug, Default, Deserialize)]
struct UnitParam {
    unit: Option<String>,
}

/// The unit `name` names, else the first one.
fn pick_unit(daemon: &Daemon, name: Option<&str>) -> Result<Arc<UnitService>, Box<Response>> {
    match name {
        Some(_) => {
            daemon.select(name).cloned().map_err(|e| Box::new(pages::refused(StatusCode::NOT_FOUND, &e.to_string())))
        }
        None => daemon
            .units()
            .next()
            .cloned()
            .ok_or_else(|| Box::new(pages::refused(StatusCode::NOT_FOUND, "this daemon has no unit"))),
    }
}

async fn overview(State(ui): State<Shared>, Extension(session): Extension<Session>) -> Response {
    let mut units = Vec::new();
    for unit in ui.daemon.units() {
        units.push(view::overview(unit, &ui.rows).await);
    }
    pages::overview(&pages::Chrome::new(&ui.daemon, &session, None), &units).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct WorkloadsQuery {
    unit: Option<String>,
    /// Text to look for in the id and images.
    #[serde(default)]
    q: String,
    /// Only this namespace.
    #[serde(default)]
    namespace: String,
    /// The page, from 1.
    page: Option<usize>,
}

async fn workloads(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Query(query): Query<WorkloadsQuery>,
) -> Response {
    let unit = match pick_unit(&ui.daemon, query.unit.as_deref()) {
        Ok(unit) => unit,
        Err(refused) => return *refused,
    };
    let filter = view::WorkloadFilter {
        text: query.q.trim().to_owned(),
        namespace: query.namespace.trim().to_owned(),
        page: query.page.unwrap_or(1).max(1),
    };
    let list = view::workloads(&unit, &ui.rows, &filter, PAGE_SIZE).await;
    pages::workloads(&pages::Chrome::new(&ui.daemon, &session, Some(unit.name())), &list).into_response()
}

#[derive(Debug, Deserialize)]
struct WorkloadQuery {
    unit: Option<String>,
    id: String,
}

async fn workload(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Query(query): Query<WorkloadQuery>,
) -> Response {
    let unit = match pick_unit(&ui.daemon, query.unit.as_deref()) {
        Ok(unit) => unit,
        Err(refused) => return *refused,
    };
    let id: ResourceId = match query.id.parse() {
        Ok(id) => id,
        Err(e) => return pages::refused(StatusCode::BAD_REQUEST, &e.to_string()).into_response(),
    };
    let detail = view::workload(&unit, &ui.rows, &id).await;
    pages::workload(&pages::Chrome::new(&ui.daemon, &session, Some(unit.name())), &detail).into_response()
}

async fn history(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Query(query): Query<UnitParam>,
) -> Response {
    let unit = match pick_unit(&ui.daemon, query.unit.as_deref()) {
        Ok(unit) => unit,
        Err(refused) => return *refused,
    };
    let history = view::history(&unit);
    pages::history(&pages::Chrome::new(&ui.daemon, &session, Some(unit.name())), &history).into_response()
}

#[derive(Debug, Deserialize)]
struct JobQuery {
    unit: Option<String>,
    id: String,
}

async fn job(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Query(query): Query<JobQuery>,
) -> Response {
    let unit = match pick_unit(&ui.daemon, query.unit.as_deref()) {
        Ok(unit) => unit,
        Err(refused) => return *refused,
    };
    let chrome = pages::Chrome::new(&ui.daemon, &session, Some(unit.name()));
    match unit.job(&query.id) {
        Some(view) => pages::job(&chrome, &query.id, &view).into_response(),
        None => pages::refused(StatusCode::NOT_FOUND, &format!("no job {} in unit {}", query.id, unit.name()))
            .into_response(),
    }
}

/// Server-sent events: `changed` (data: the unit's name) whenever a unit's jobs or syncs
/// changed; the stream ends when the daemon shuts down.
async fn events(State(ui): State<Shared>) -> Response {
    let watches: Vec<(String, crate::UnitChanges)> =
        ui.daemon.units().map(|u| (u.name().to_owned(), u.changes())).collect();
    let stream = futures::stream::unfold((watches, ui.daemon.stopping()), |(mut watches, mut stopping)| async move {
        let changed = {
            let waits = watches.iter_mut().map(|(name, changes)| {
                Box::pin(async move {
                    changes.changed().await;
                    name.clone()
                })
            });
            let any = futures::future::select_all(waits);
            tokio::select! {
                (name, _, _) = any => Some(name),
                _ = stopping.wait_for(|stop| *stop) => None,
            }
        };
        let event = SseEvent::default().event("changed").data(changed?);
        Some((Ok::<_, Infallible>(event), (watches, stopping)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// Where a job's page is.
fn job_url(unit: &str, id: &crate::jobs::JobId) -> String {
    format!("/ui/job?unit={}&id={}", pages::enc(unit), pages::enc(id.as_str()))
}

fn queued(unit: &UnitService, job: flux_core::Result<crate::jobs::JobId>) -> Response {
    match job {
        Ok(id) => Redirect::to(&job_url(unit.name(), &id)).into_response(),
        Err(e) => pages::refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct SyncForm {
    #[serde(default)]
    csrf: String,
    unit: Option<String>,
}

async fn sync_now(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<SyncForm>,
) -> Response {
    if !session.csrf_matches(&form.csrf) {
        return bad_csrf();
    }
    match pick_unit(&ui.daemon, form.unit.as_deref()) {
        Ok(unit) => queued(&unit, unit.submit_sync()),
        Err(refused) => *refused,
    }
}

#[derive(Deserialize)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    unit: Option<String>,
    id: String,
    /// `automate`, `deautomate`, `lock` or `unlock`.
    action: String,
    #[serde(default)]
    message: String,
}

async fn policy(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<PolicyForm>,
) -> Response {
    if !session.csrf_matches(&form.csrf) {
        return bad_csrf();
    }
    let unit = match pick_unit(&ui.daemon, form.unit.as_deref()) {
        Ok(unit) => unit,
        Err(refused) => return *refused,
    };
    let workload: ResourceId = match form.id.parse() {
        Ok(id) => id,
        Err(e) => return pages::refused(StatusCode::BAD_REQUEST, &e.to_string()).into_response(),
    };
    let message = Some(form.message.trim().to_owned()).filter(|m| !m.is_empty());
    let change = match form.action.as_str() {
        "automate" => PolicyChange::Automate,
        "deautomate" => PolicyChange::Deautomate,
        "lock" => PolicyChange::Lock(Lock { message: message.clone(), user: Some(UI_USER.to_owned()) }),
        "unlock" => PolicyChange::Unlock,
        other => {
            return pages::refused(StatusCode::BAD_REQUEST, &format!("no such action {other:?}")).into_response();
        }
    };
    let request =
        PolicyRequest { workload, changes: vec![change], tag_all: None, user: Some(UI_USER.to_owned()), message };
    queued(&unit, unit.submit_policy(request))
}

#[derive(Deserialize)]
struct ReleaseForm {
    #[serde(default)]
    csrf: String,
    unit: Option<String>,
    id: String,
    image: String,
    /// `true` for the dry run (the first step), `false` to commit.
    #[serde(default)]
    dry_run: Option<String>,
    #[serde(default)]
    force: Option<String>,
}

async fn release(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<ReleaseForm>,
) -> Response {
    if !session.csrf_matches(&form.csrf) {
        return bad_csrf();
    }
    let unit = match pick_unit(&ui.daemon, form.unit.as_deref()) {
        Ok(unit) => unit,
        Err(refused) => return *refused,
    };
    let parsed = form.id.parse::<ResourceId>().and_then(|id| Ok((id, form.image.trim().parse()?)));
    let (workload, image) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return pages::refused(StatusCode::BAD_REQUEST, &e.to_string()).into_response(),
    };
    let flag = |v: &Option<String>| v.as_deref().is_some_and(|v| v == "true" || v == "on");
    let spec = ReleaseSpec {
        workloads: WorkloadSelector::Only(vec![workload]),
        excludes: Vec::new(),
        image: ImageSelector::Image(image),
        // Anything but an explicit "false" is a dry run: the first step is always one.
        dry_run: form.dry_run.as_deref() != Some("false"),
        force: flag(&form.force),
        cause: ChangeCause { user: Some(UI_USER.to_owned()), message: None },
    };
    queued(&unit, unit.submit_release(spec))
}

#[cfg(test)]
mod tests;
