//! Events as text to a Slack-compatible incoming webhook (`--notify-slack-url`).

use async_trait::async_trait;
use serde_json::json;

use crate::events::{Event, EventSink};

/// Posts `{"text": summary}` for each event. Its `Debug` does not show the URL (it is a secret).
#[derive(Clone)]
pub struct SlackSink {
    client: reqwest::Client,
    url: String,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackSink(***)")
    }
}

impl SlackSink {
    /// A sink posting to the incoming webhook `url`.
    ///
    /// # Errors
    /// When no HTTP client can be built.
    pub fn new(url: impl Into<String>) -> flux_core::Result<Self> {
        Ok(SlackSink { client: super::client()?, url: url.into() })
    }
}

#[async_trait]
impl EventSink for SlackSink {
    async fn send(&self, event: &Event) -> flux_core::Result<()> {
        super::post(&self.client, &self.url, &json!({"text": event.summary()})).await
    }
}
