//! The HTTP client of fluxd's API: authenticated JSON requests, errors as one readable line.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use flux_api::v1::{
    ApiError, HEAD_ERROR, HEAD_REVISION, JobAccepted, JobResult, JobView, LISTED_REVISION, PREFIX, UNIT_PARAM,
};

/// A client of one fluxd.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    unit: Option<String>,
}

/// `url` without a trailing `/`, and without Flux v1's API path (`/api/flux`) or this API's
/// prefix, so that Flux v1's `--url http://host:3030/api/flux` works.
pub(crate) fn base_url(url: &str) -> &str {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/api/flux").or_else(|| url.strip_suffix(PREFIX)).unwrap_or(url)
}

impl Client {
    /// A client of the fluxd at `url`, authenticating with `token`, asking about sync unit
    /// `unit` (`?unit=NAME` on every request; none: the daemon's only unit); every request
    /// gives up after `timeout`.
    pub(crate) fn new(
        url: &str,
        token: Option<String>,
        unit: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Client { http, base: format!("{}{PREFIX}", base_url(url)), token, unit })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let request = match &self.unit {
            Some(unit) => request.query(&[(UNIT_PARAM, unit)]),
            None => request,
        };
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

    /// `GET path` as text (the export's YAML).
    pub(crate) async fn get_text(&self, path: &str) -> Result<String, String> {
        let response = self.send(self.http.get(format!("{}{path}", self.base))).await?;
        response.text().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))
    }

    /// `GET path?query` of a listing, as JSON, and the warning to show when fluxd says the head is
    /// unusable (the listing is then of the last usable revision).
    pub(crate) async fn get_listing<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, Option<String>), String> {
        let response = self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let warning = header(HEAD_ERROR).map(|error| {
            let head = header(HEAD_REVISION).map(|h| format!(" {}", &h[..h.len().min(7)])).unwrap_or_default();
            let listed = header(LISTED_REVISION).map(|l| l[..l.len().min(7)].to_owned()).unwrap_or_default();
            format!("warning: the head{head} is unusable, listing {listed}, the last usable revision: {error}")
        });
        let body = response.json().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))?;
        Ok((body, warning))
    }

    /// `POST path` without a body, its answer as JSON.
    pub(crate) async fn post_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let response = self.send(self.http.post(format!("{}{path}", self.base))).await?;
        response.json().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))
    }

    /// `POST path` with a JSON body, its answer as JSON.
    pub(crate) async fn post_body<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, String> {
        let response = self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await?;
        response.json().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))
    }

    /// `POST path` with a JSON body; the job it queued.
    pub(crate) async fn post_job<B: Serialize>(&self, path: &str, body: &B) -> Result<String, String> {
        let response = self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await?;
        let accepted: JobAccepted = response.json().await.map_err(|e| format!("unexpected answer from fluxd: {e}"))?;
        Ok(accepted.job_id)
    }

    /// Polls job `id` until it is done (every 100ms at first, then less often, as Flux v1); its
    /// result, or its error.
    pub(crate) async fn wait_job(&self, id: &str, timeout: Duration) -> Result<JobResult, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            match self.get::<JobView>(&format!("/jobs/{id}"), &[]).await? {
                JobView::Succeeded { result } => return Ok(*result),
                JobView::Failed { error } => return Err(format!("job {id} failed: {error}")),
                JobView::Queued | JobView::Running => {}
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for job {id}: this does not necessarily mean it failed \
                     (check the cluster or the commit log); it is safe to retry"
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
