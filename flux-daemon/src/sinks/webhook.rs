//! Events as JSON to a generic webhook (`--notify-webhook-url`).

use async_trait::async_trait;

use crate::events::{Event, EventSink};

/// Posts each event's JSON ([`Event::to_json`]) to one URL. Its `Debug` does not show the URL.
#[derive(Clone)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSink(***)")
    }
}

impl WebhookSink {
    /// A sink posting to `url`.
    ///
    /// # Errors
    /// When no HTTP client can be built.
    pub fn new(url: impl Into<String>) -> flux_core::Result<Self> {
        Ok(WebhookSink { client: super::client()?, url: url.into() })
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn send(&self, event: &Event) -> flux_core::Result<()> {
        super::post(&self.client, &self.url, &event.to_json()).await
    }
}
