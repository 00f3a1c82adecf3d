//! Raw requests, for what kube's typed `Api` does not show: the HTTP status of a server-side
//! apply (201 means created) and the server's clock (`Date`).

use kube::Client;
use kube::client::Body;
use kube::core::Status;
use serde_json::Value;

use crate::errors::{Refusal, from_kube, refusal};

/// A successful response.
pub(crate) struct Response {
    /// The HTTP status code.
    pub(crate) code: u16,
    /// The server's `Date` header, as a timestamp, when it sent one.
    pub(crate) date: Option<jiff::Timestamp>,
    /// The JSON body.
    pub(crate) body: Value,
}

/// How often a request whose connection broke before any answer is sent again. Every request
/// this crate makes is idempotent (server-side apply, get, list, delete), so a retry is safe;
/// the API server closes idle pooled connections, e.g. when it installs a new CRD's handlers.
const ATTEMPTS: usize = 3;

/// The longest wait before sending again a request answered 429, 503 or 504 (whatever its
/// `Retry-After` asks): a throttled server delays a sync by seconds, not minutes, and the sync
/// reports the objects not applied. kube's own retry layer (15 attempts, backoff up to 1000 s) is
/// turned off on the clients this crate builds.
const MAX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long to wait before sending again a request answered with a throttling `code`, or
/// `None` when the answer is final: 429, 503 and 504, at most [`ATTEMPTS`] times, as long as
/// `Retry-After` says (seconds), else 1 s, capped at [`MAX_RETRY_WAIT`].
fn throttled_wait(code: u16, headers: &http::HeaderMap, attempt: usize) -> Option<std::time::Duration> {
    if !matches!(code, 429 | 503 | 504) || attempt >= ATTEMPTS {
        return None;
    }
    let asked = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(std::time::Duration::from_secs(1), std::time::Duration::from_secs);
    Some(asked.min(MAX_RETRY_WAIT))
}

/// The `Retry-After` of an answer, in seconds.
fn retry_after(headers: &http::HeaderMap) -> Option<std::time::Duration> {
    let seconds = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(std::time::Duration::from_secs(seconds))
}

/// Sends `request`; a non-2xx answer is a [`Refusal`].
pub(crate) async fn send(client: &Client, request: http::Request<Vec<u8>>) -> Result<Response, Refusal> {
    let (code, date, bytes) = send_raw(client, request).await?;
    let body: Value = serde_json::from_slice(bytes.as_ref()).unwrap_or(Value::Null);
    Ok(Response { code, date, body })
}

/// Sends `request`: the status code, `Date` and body of a 2xx answer, else a [`Refusal`].
async fn send_raw(
    client: &Client,
    request: http::Request<Vec<u8>>,
) -> Result<(u16, Option<jiff::Timestamp>, impl AsRef<[u8]>), Refusal> {
    let (parts, body) = request.into_parts();
    let mut attempt = 1;
    let response = loop {
        let mut again = http::Request::new(Body::from(body.clone()));
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.headers_mut() = parts.headers.clone();
        match client.send(again).await {
            Ok(response) => match throttled_wait(response.status().as_u16(), response.headers(), attempt) {
                Some(wait) => {
                    tracing::debug!(status = response.status().as_u16(), ?wait, attempt, "throttled: sending again");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                None => break response,
            },
            Err(e @ (kube::Error::HyperError(_) | kube::Error::Service(_))) if attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "connection lost before an answer: sending again");
                attempt += 1;
            }
            Err(e) => return Err(from_kube(e)),
        }
    };
    let code = response.status().as_u16();
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
        .map(|z| z.timestamp());
    let retry_after = retry_after(response.headers());
    let bytes = response.into_body().collect_bytes().await.map_err(from_kube)?;
    if (200..300).contains(&code) {
        return Ok((code, date, bytes));
    }
    if code == 429 {
        return Err(Refusal::Fatal(flux_core::Error::RateLimited { retry_after }));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let status = serde_json::from_value::<Status>(body)
        .unwrap_or_else(|_| Status::failure(String::from_utf8_lossy(&bytes).trim(), "Unknown").with_code(code));
    Err(refusal(Status { code, ..status }))
}

/// Sends `request` and reads the answer as `T`.
pub(crate) async fn fetch<T: serde::de::DeserializeOwned>(
    client: &Client,
    request: http::Request<Vec<u8>>,
) -> Result<T, Refusal> {
    // Straight from the bytes: a page of objects is never held as a JSON tree too.
    let (_, _, bytes) = send_raw(client, request).await?;
    serde_json::from_slice(bytes.as_ref())
        .map_err(|e| Refusal::Fatal(flux_core::Error::other_with("unexpected answer from the API server", e)))
}
