//! The HTTP client of fluxd's API: authenticated JSON requests, errors as one readable line.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api_types::{ApiError, JobAccepted, JobResult, JobView, PREFIX};

/// A client of one fluxd.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the fluxd at `url`, authenticating with `token`.
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Client { http, base: format!("{}{PREFIX}", url.trim_end_matches('/')), token })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| format!("cannot reach fluxd at {}: {e}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ApiError>(&body).map(|e| e.error).unwrap_or(body);
        Err(format!("fluxd answered {status}: {}", message.trim()))
    }

    /// `GET path?query`, as JSON.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, String> {
        let response = self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await?;
        response.json().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))
    }

    /// `POST path` with a JSON body; the job it queued.
    pub(crate) async fn post_job<B: Serialize>(&self, path: &str, body: &B) -> Result<String, String> {
        let response = self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await?;
        let accepted: JobAccepted = response.json().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))?;
        Ok(accepted.job_id)
    }

    /// Polls job `id` until it is done; its result, or its error.
    pub(crate) async fn wait_job(&self, id: &str, timeout: Duration) -> Result<JobResult, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.get::<JobView>(&format!("/jobs/{id}"), &[]).await? {
                JobView::Succeeded { result } => return Ok(*result),
                JobView::Failed { error } => return Err(format!("job {id} failed: {error}")),
                JobView::Queued | JobView::Running => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("job {id} is not done after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
