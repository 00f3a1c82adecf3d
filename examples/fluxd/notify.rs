//! Outgoing notifications of sync and release outcomes: JSON to generic webhooks, text to a
//! Slack-compatible incoming webhook. Sent in the background; a failure is logged, never fatal.

use flux_core::automation::ReleaseResult;
use flux_core::sync::SyncReport;
use serde_json::json;

/// Where notifications go. Its `Debug` does not show the URLs (Slack's carry a secret).
#[derive(Clone, Default)]
pub(crate) struct Notifier {
    client: reqwest::Client,
    webhooks: Vec<String>,
    slack: Option<String>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("webhooks", &self.webhooks.len())
            .field("slack", &self.slack.is_some())
            .finish()
    }
}

impl Notifier {
    /// Notifies `webhooks` (JSON) and `slack` (text).
    pub(crate) fn new(webhooks: Vec<String>, slack: Option<String>) -> Self {
        Notifier { client: reqwest::Client::new(), webhooks, slack }
    }

    /// A sync that changed something or failed (quiet syncs are not announced).
    pub(crate) fn sync(&self, report: &SyncReport) {
        if report.is_success() && report.applied.is_empty() && report.pruned.is_empty() {
            return;
        }
        let outcome = if report.is_success() { "succeeded" } else { "failed" };
        let text = format!(
            "Sync of {} {outcome}: {} applied, {} pruned, {} errors",
            report.revision.short(),
            report.applied.len(),
            report.pruned.len(),
            report.errors.len()
        );
        let body = json!({"event": "sync", "outcome": outcome, "summary": text, "report": report});
        self.send(body, text);
    }

    /// A release that changed something (or would, for a dry run it is not announced).
    pub(crate) fn release(&self, result: &ReleaseResult) {
        if result.dry_run {
            return;
        }
        let updated: Vec<String> = result.updated().map(|w| w.workload.to_string()).collect();
        let text = match &result.revision {
            Some(rev) => format!("Released {} in {}", updated.join(", "), rev.short()),
            None => "Release: nothing to change".to_owned(),
        };
        let body = json!({"event": "release", "summary": text, "result": result});
        self.send(body, text);
    }

    fn send(&self, body: serde_json::Value, text: String) {
        let targets: Vec<(String, serde_json::Value)> = self
            .webhooks
            .iter()
            .map(|url| (url.clone(), body.clone()))
            .chain(self.slack.iter().map(|url| (url.clone(), json!({"text": text}))))
            .collect();
        for (url, payload) in targets {
            let client = self.client.clone();
            tokio::spawn(async move {
                let sent = client.post(&url).json(&payload).send().await.and_then(|r| r.error_for_status());
                if let Err(e) = sent {
                    // Without the URL: a Slack URL is a secret.
                    tracing::warn!(error = %e.without_url(), "notification not delivered");
                }
            });
        }
    }
}
