//! Writes sent to a replica that does not own the unit, forwarded to the owner: one hop, to the
//! API address the owner advertises in its member lease, with the request's method, path,
//! query, body and `Authorization`, marked [`FORWARDED_BY`] so the owner never forwards again (a
//! forwarded write the receiver does not own either is refused as any write there is). The
//! client gets the owner's answer, or 503 naming the owner and why it could not be reached.
//! Jobs are found the same way: one a replica does not know is asked of every peer.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::Ownership;

/// The request header a forwarded request carries: the id of the replica that forwarded it.
pub const FORWARDED_BY: &str = "x-flux-forwarded-by";

/// The answer header of a forwarded write: the replica that answered it (the unit's owner).
pub const FORWARDED_TO: &str = "x-flux-forwarded-to";

/// How long a forwarded write may take (the owner only queues the job and answers its id).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a peer may take to say whether it knows a job.
const JOB_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with a write for a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteRoute {
    /// Handle it here: this replica writes for the unit, the unit is not shared, the request
    /// was forwarded already, or the unit has no other owner now (the handler says why it
    /// cannot be written).
    Here,
    /// Send it to `owner` at `base`.
    Forward {
        /// The owner's replica id.
        owner: String,
        /// Its API's base URL.
        base: reqwest::Url,
    },
    /// The owner is another replica but cannot be asked: the answer says so.
    Unreachable {
        /// Why, naming the owner.
        why: String,
    },
}

/// Where a write for `unit` goes, given the unit's `ownership` (`None`: not shared) and the
/// [`FORWARDED_BY`] header of the request.
pub(crate) fn route(ownership: Option<&dyn Ownership>, unit: &str, forwarded_by: Option<&str>) -> WriteRoute {
    let Some(ownership) = ownership else { return WriteRoute::Here };
    let me = ownership.replica();
    if forwarded_by.is_some() || ownership.gate().is_open(unit) {
        return WriteRoute::Here;
    }
    let Some(owner) = ownership.owner(unit).filter(|o| o != me) else { return WriteRoute::Here };
    let Some(address) = ownership.address(&owner) else {
        return WriteRoute::Unreachable {
            why: format!(
                "unit {unit} is written by replica {owner} (high availability), which advertises no API address \
                 (--ha-advertise-address): this replica {me} cannot forward the write; send it to {owner}"
            ),
        };
    };
    match base_url(&address) {
        Ok(base) => WriteRoute::Forward { owner, base },
        Err(e) => WriteRoute::Unreachable {
            why: format!(
                "unit {unit} is written by replica {owner} (high availability), whose advertised API address \
                 {address:?} is unusable ({e}): this replica {me} cannot forward the write; send it to {owner}"
            ),
        },
    }
}

/// The base URL of an advertised address: `HOST:PORT` (plain http) or an `http://` or
/// `https://` URL without credentials, query or fragment.
///
/// # Errors
/// A message saying what is wrong with it.
pub(crate) fn base_url(address: &str) -> Result<reqwest::Url, String> {
    let text = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    let url = reqwest::Url::parse(&text).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err("credentials, a query or a fragment are not allowed".to_owned());
    }
    Ok(url)
}

/// `base` with the path and query of the original request (`/api/v1/...?...`).
fn target(base: &reqwest::Url, path_and_query: &str) -> reqwest::Url {
    let prefix = base.path().trim_end_matches('/');
    let mut url = base.clone();
    let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(query);
    url
}

/// The client forwarded requests go through (no redirects followed: the answer is passed on).
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(JOB_LOOKUP_TIMEOUT)
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A request as it is passed on: `Authorization` and `Content-Type` of the original, and who
/// forwards it.
fn passed_on(
    client: &reqwest::Client,
    method: Method,
    url: reqwest::Url,
    headers: &HeaderMap,
    me: &str,
) -> reqwest::RequestBuilder {
    let mut request = client.request(method, url).header(FORWARDED_BY, me);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value.clone());
        }
    }
    request
}

/// An error answer of the API's shape.
fn refusal(status: StatusCode, why: String) -> Response {
    crate::api::error(status, why).into_response()
}

/// The answer of `response`, passed on with its status, content type and body.
async fn pass_back(response: reqwest::Response, owner: &str) -> Result<Response, reqwest::Error> {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = response.bytes().await?;
    let mut answer = (status, body).into_response();
    if let Some(content_type) = content_type {
        answer.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    if let Ok(owner) = HeaderValue::from_str(owner) {
        answer.headers_mut().insert(FORWARDED_TO, owner);
    }
    Ok(answer)
}

/// Forwards a write for `unit` to `owner` at `base` and answers what it answers: 503 naming the
/// owner and why when it cannot be reached or takes longer than the forwarding timeout.
pub(crate) async fn forward(
    me: &str,
    unit: &str,
    owner: &str,
    base: &reqwest::Url,
    request: (Method, &str, &HeaderMap),
    body: Bytes,
) -> Response {
    tracing::info!(replica = me, unit, owner, method = %request.0, path = request.1, "write forwarded to the unit's owner");
    match pass_on(me, owner, base, request, body, FORWARD_TIMEOUT).await {
        Ok(answer) => answer,
        Err(why) => {
            tracing::warn!(replica = me, unit, owner, error = %why, "could not forward a write to the unit's owner");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "unit {unit} is written by replica {owner} (high availability): this replica {me} could not \
                     forward the write to it at {base}: {why}; nothing was written, try again"
                ),
            )
        }
    }
}

/// Asks `owner` at `base` for a read about `unit` (`GET /status`: what the owner synced); `None`
/// when it cannot answer within [`JOB_LOOKUP_TIMEOUT`] (the caller answers from its own view).
pub(crate) async fn ask_owner(
    me: &str,
    unit: &str,
    owner: &str,
    base: &reqwest::Url,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let request = (Method::GET, path_and_query, headers);
    match pass_on(me, owner, base, request, Bytes::new(), JOB_LOOKUP_TIMEOUT).await {
        Ok(answer) => Some(answer),
        Err(why) => {
            tracing::info!(replica = me, unit, owner, error = %why, "the unit's owner did not answer a read: answered here");
            None
        }
    }
}

/// Sends the request to `owner` at `base`; its answer, or why there is none.
async fn pass_on(
    me: &str,
    owner: &str,
    base: &reqwest::Url,
    (method, path_and_query, headers): (Method, &str, &HeaderMap),
    body: Bytes,
    timeout: Duration,
) -> Result<Response, String> {
    let client = client()?;
    let url = target(base, path_and_query);
    let sent = passed_on(client, method, url, headers, me).timeout(timeout).body(body).send().await;
    match sent {
        Ok(response) => {
            pass_back(response, owner).await.map_err(|e| format!("its answer was cut off: {}", e.without_url()))
        }
        Err(e) if e.is_timeout() => Err(format!("no answer within {timeout:?}")),
        Err(e) => Err(e.without_url().to_string()),
    }
}

/// Asks every peer `ownership` knows, in parallel, for the job at `path_and_query` (with the
/// request's `Authorization`, marked forwarded); the first answer 200 passed on, `None` when no
/// peer knows the job (or none could be asked).
pub(crate) async fn find_job(ownership: &dyn Ownership, path_and_query: &str, headers: &HeaderMap) -> Option<Response> {
    let client = client().ok()?;
    let me = ownership.replica();
    let asks = ownership.peers().into_iter().filter_map(|(peer, address)| {
        let url = target(&base_url(&address).ok()?, path_and_query);
        let request = passed_on(client, Method::GET, url, headers, me).timeout(JOB_LOOKUP_TIMEOUT);
        Some(async move {
            let response = request.send().await.ok().filter(|r| r.status() == reqwest::StatusCode::OK)?;
            pass_back(response, &peer).await.ok()
        })
    });
    let mut answers = futures::stream::iter(asks).buffer_unordered(16);
    while let Some(answer) = answers.next().await {
        if answer.is_some() {
            return answer;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::future::BoxFuture;
    use tokio::sync::watch;

    use super::*;
    use crate::ha::WriteGate;

    /// An ownership as a test sets it: who owns what, who advertises what.
    #[derive(Debug)]
    struct Fixed {
        gate: WriteGate,
        owners: Vec<(&'static str, &'static str)>,
        addresses: Vec<(&'static str, &'static str)>,
    }

    impl Ownership for Fixed {
        fn replica(&self) -> &str {
            self.gate.replica()
        }
        fn gate(&self) -> &WriteGate {
            &self.gate
        }
        fn owner(&self, unit: &str) -> Option<String> {
            self.owners.iter().find(|(u, _)| *u == unit).map(|(_, o)| (*o).to_owned())
        }
        fn address(&self, replica: &str) -> Option<String> {
            self.addresses.iter().find(|(r, _)| *r == replica).map(|(_, a)| (*a).to_owned())
        }
        fn run(self: Arc<Self>, _: Vec<String>, _: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn writes_go_to_the_owner_once_and_only_when_it_can_be_asked() {
        let me = Fixed {
            gate: WriteGate::new("a"),
            owners: vec![("mine", "a"), ("theirs", "b"), ("silent", "c"), ("odd", "d"), ("lapsed", "a")],
            addresses: vec![("b", "10.0.0.2:3030"), ("d", "ftp://d:21")],
        };
        me.gate.grant("mine", tokio::time::Instant::now() + Duration::from_secs(60));
        let route_of = |unit: &str, forwarded: Option<&str>| route(Some(&me), unit, forwarded);
        assert_eq!(route(None, "theirs", None), WriteRoute::Here, "a unit not shared is written here");
        assert_eq!(route_of("mine", None), WriteRoute::Here, "the owner writes");
        let forward = route_of("theirs", None);
        let WriteRoute::Forward { owner, base } = &forward else { panic!("{forward:?}") };
        assert_eq!((owner.as_str(), base.as_str()), ("b", "http://10.0.0.2:3030/"));
        assert_eq!(route_of("theirs", Some("c")), WriteRoute::Here, "forwarded once, never again");
        assert_eq!(route_of("free", None), WriteRoute::Here, "no owner: refused here, saying so");
        assert_eq!(route_of("lapsed", None), WriteRoute::Here, "this replica, gate closed: refused here");
        for (unit, says) in [("silent", "advertises no API address"), ("odd", "is not http or https")] {
            let WriteRoute::Unreachable { why } = route_of(unit, None) else { panic!("{unit}") };
            assert!(why.contains(says) && why.contains("send it to"), "{why}");
        }
    }

    #[test]
    fn advertised_addresses_become_base_urls() {
        let url = |a: &str| base_url(a).map(|u| u.to_string());
        assert_eq!(url("10.1.2.3:3030").as_deref(), Ok("http://10.1.2.3:3030/"));
        assert_eq!(url("[fd00::1]:3030").as_deref(), Ok("http://[fd00::1]:3030/"));
        assert_eq!(url("https://flux-0.flux:3030").as_deref(), Ok("https://flux-0.flux:3030/"));
        for bad in ["", "file:///etc", "http://user:pw@h:1", "http://h:1/?q=1", "h:notaport"] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        let base = base_url("https://h:1/flux/").expect("url");
        let to = target(&base, "/api/v1/sync?unit=shop&allow_prune=true");
        assert_eq!(to.as_str(), "https://h:1/flux/api/v1/sync?unit=shop&allow_prune=true");
    }
}
