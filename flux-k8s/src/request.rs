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

/// Sends `request`; a non-2xx answer is a [`Refusal`].
pub(crate) async fn send(client: &Client, request: http::Request<Vec<u8>>) -> Result<Response, Refusal> {
    let (parts, body) = request.into_parts();
    let mut attempt = 1;
    let response = loop {
        let mut again = http::Request::new(Body::from(body.clone()));
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.headers_mut() = parts.headers.clone();
        match client.send(again).await {
            Ok(response) => break response,
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
    let bytes = response.into_body().collect_bytes().await.map_err(from_kube)?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if (200..300).contains(&code) {
        return Ok(Response { code, date, body });
    }
    let status = serde_json::from_value::<Status>(body)
        .unwrap_or_else(|_| Status::failure(String::from_utf8_lossy(&bytes).trim(), "Unknown").with_code(code));
    Err(refusal(Status { code, ..status }))
}

/// Sends `request` and reads the answer as `T`.
pub(crate) async fn fetch<T: serde::de::DeserializeOwned>(
    client: &Client,
    request: http::Request<Vec<u8>>,
) -> Result<T, Refusal> {
    let response = send(client, request).await?;
    serde_json::from_value(response.body)
        .map_err(|e| Refusal::Fatal(flux_core::Error::other_with("unexpected answer from the API server", e)))
}
