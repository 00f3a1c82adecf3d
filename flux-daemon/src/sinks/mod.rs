//! The [`EventSink`](crate::EventSink)s this crate has; adding one is a new file here.

mod slack;
mod webhook;

pub use slack::SlackSink;
pub use webhook::WebhookSink;

use std::time::Duration;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client the sinks post with.
fn client() -> flux_core::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| flux_core::Error::other(format!("cannot build an HTTP client: {e}")))
}

/// Posts `body` to `url`; the error never shows the URL (a Slack URL is a secret).
async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> flux_core::Result<()> {
    let sent = client.post(url).json(body).send().await.and_then(|r| r.error_for_status());
    sent.map(drop).map_err(|e| flux_core::Error::transient(format!("notification not delivered: {}", e.without_url())))
}
