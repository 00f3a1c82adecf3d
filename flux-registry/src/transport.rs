//! HTTP to registries: scheme per host (HTTPS, or plain HTTP for the listed insecure hosts),
//! credentials and bearer tokens, per-host pacing, bounded retries, and a request count.
//!
//! oci-client performs the token handshake; the requests themselves go through the same reqwest
//! stack directly, because this adapter needs response headers oci-client does not expose
//! (`Link` for pagination, `Retry-After`, `Docker-Content-Digest`) and must not pay an extra
//! `/v2/` probe per request, which oci-client makes for registries that need no token.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use flux_core::{Error, ImageRepo};
use oci_client::RegistryOperation;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::credentials::{Credential, Credentials};
use crate::rate_limit::{Backoff, RateLimits};

/// A registry's answer: status, headers and the whole body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// How to reach registries.
pub(crate) struct TransportConfig {
    pub(crate) insecure_hosts: Vec<String>,
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) timeout: Duration,
    pub(crate) rps: f64,
    pub(crate) burst: u32,
    pub(crate) backoff: Backoff,
}

pub(crate) struct Transport {
    /// Built at the first request: building them loads the system's root certificates (about
    /// 10 ms), which a daemon that never scans (or a `fluxd --once`) should not pay.
    clients: OnceLock<Clients>,
    certs: Vec<reqwest::Certificate>,
    ca_pem: Vec<u8>,
    timeout: Duration,
    insecure: HashSet<String>,
    limits: RateLimits,
    backoff: Backoff,
    pub(crate) credentials: Credentials,
    /// Bearer tokens by (host, repository path, credential identity): a token got with one
    /// workload's pull secret is never used for another's requests.
    tokens: Mutex<HashMap<(String, String, String), String>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("insecure", &self.insecure)
            .field("limits", &self.limits)
            .field("backoff", &self.backoff)
            .field("credentials", &self.credentials)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// The HTTP clients: requests, and oci-client for the token handshake.
struct Clients {
    http: reqwest::Client,
    oci: oci_client::Client,
}

impl Transport {
    /// Checks the CA bundle now; the clients are built at the first request.
    pub(crate) fn new(config: TransportConfig, credentials: Credentials) -> Result<Self, Error> {
        let certs = if config.ca_pem.is_empty() {
            Vec::new()
        } else {
            reqwest::Certificate::from_pem_bundle(&config.ca_pem)
                .map_err(|e| Error::other_with("the CA bundle is not valid PEM", e))?
        };
        Ok(Transport {
            clients: OnceLock::new(),
            certs,
            ca_pem: config.ca_pem,
            timeout: config.timeout,
            insecure: config.insecure_hosts.into_iter().collect(),
            limits: RateLimits::new(config.rps, config.burst),
            backoff: config.backoff,
            credentials,
            tokens: Mutex::default(),
            requests: AtomicU64::new(0),
        })
    }

    fn clients(&self) -> Result<&Clients, Error> {
        if let Some(clients) = self.clients.get() {
            return Ok(clients);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(self.certs.clone())
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("flux-registry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::other_with("building the HTTP client", e))?;
        let mut insecure: Vec<String> = self.insecure.iter().cloned().collect();
        insecure.sort();
        let oci = oci_client::Client::try_from(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            extra_root_certificates: if self.ca_pem.is_empty() {
                Vec::new()
            } else {
                vec![Certificate { encoding: CertificateEncoding::Pem, data: self.ca_pem.clone() }]
            },
            read_timeout: Some(self.timeout),
            connect_timeout: Some(self.timeout.min(Duration::from_secs(10))),
            platform_resolver: None,
            ..ClientConfig::default()
        })
        .map_err(|e| Error::other_with("building the OCI client", e))?;
        // Two first requests at once may both build; one pair is kept.
        Ok(self.clients.get_or_init(|| Clients { http, oci }))
    }

    /// How many HTTP requests went to registries so far (token requests excluded).
    pub(crate) fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `https://host` or, for an insecure host, `http://host`; Docker Hub's API host for `docker.io`.
    fn base_url(&self, host: &str) -> String {
        let scheme = if self.insecure.contains(host) { "http" } else { "https" };
        let api_host = if host == flux_core::image::DOCKER_HUB { "registry-1.docker.io" } else { host };
        format!("{scheme}://{api_host}")
    }

    /// Sends `method` to `path_and_query` (starting `/v2/`) of `repo`'s registry, with pacing,
    /// credentials and retries; returns any final answer, successful or not, except those that
    /// map to an error kind on their own (refused credentials, rate limits, server errors).
    /// `pull` is a view's credential for the host and its identity; `None` uses the handle's own.
    pub(crate) async fn send(
        &self,
        method: Method,
        repo: &ImageRepo,
        path_and_query: &str,
        accept: &[&str],
        pull: Option<(&Credential, &str)>,
    ) -> Result<Reply, Error> {
        let host = repo.registry();
        let url = format!("{}{path_and_query}", self.base_url(host));
        let http = &self.clients()?.http;
        let (credential, identity) = match pull {
            Some((credential, identity)) => (credential.clone(), identity),
            None => (self.credentials.for_host(host).await?, ""),
        };
        let token_key = (host.to_owned(), repo.path().to_owned(), identity.to_owned());
        let mut refreshed_token = false;
        let mut attempt = 0;
        loop {
            self.limits.acquire(host).await;
            let mut request = http.request(method.clone(), &url).header(ACCEPT, accept.join(", "));
            let token = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&token_key).cloned();
            request = match (&token, &credential) {
                (Some(token), _) => request.bearer_auth(token),
                (None, Credential::Basic { username, password }) => request.basic_auth(username, Some(password)),
                (None, _) => request,
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(_) if status == StatusCode::UNAUTHORIZED && !refreshed_token => {
                            // The first refusal may be a bearer challenge: fetch a token, once.
                            refreshed_token = true;
                            if self.fetch_token(repo, &credential, &token_key).await? {
                                continue;
                            }
                            return Err(self.refused(repo, &credential));
                        }
                        Ok(_) if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
                            return Err(self.refused(repo, &credential));
                        }
                        Ok(_) if status == StatusCode::TOO_MANY_REQUESTS => {
                            let retry_after = retry_after(&headers);
                            self.limits.slow_down(host, retry_after);
                            Failure::RateLimited(retry_after)
                        }
                        Ok(_) if status.is_server_error() => {
                            Failure::Transient(format!("{method} {url}: the registry answered {status}"))
                        }
                        Ok(body) => {
                            self.limits.succeeded(host);
                            return Ok(Reply { status, headers, body: body.to_vec() });
                        }
                        Err(e) => Failure::Transient(format!("{method} {url}: reading the answer: {e}")),
                    }
                }
                Err(e) => Failure::Transient(format!("{method} {url}: {}", without_url(&e))),
            };
            if attempt >= self.backoff.max_retries {
                return Err(match failure {
                    Failure::RateLimited(retry_after) => Error::RateLimited { retry_after },
                    Failure::Transient(message) => Error::transient(message),
                });
            }
            let delay = match failure {
                Failure::RateLimited(Some(after)) => after.min(self.backoff.max),
                _ => self.backoff.delay(attempt),
            };
            tracing::debug!(%host, attempt, ?delay, "retrying a registry request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Runs the bearer-token handshake for `repo` (oci-client follows the challenge); whether
    /// there is now a token to retry with.
    async fn fetch_token(
        &self,
        repo: &ImageRepo,
        credential: &Credential,
        key: &(String, String, String),
    ) -> Result<bool, Error> {
        let reference: oci_client::Reference = format!("{}/{}:latest", repo.registry(), repo.path())
            .parse()
            .map_err(|e| Error::other(format!("{repo}: not a valid OCI reference: {e}")))?;
        match self.clients()?.oci.auth(&reference, &credential.to_oci(), RegistryOperation::Pull).await {
            Ok(Some(token)) => {
                self.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), token);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(oci_client::errors::OciDistributionError::AuthenticationFailure(_)) => {
                Err(self.refused(repo, credential))
            }
            Err(e) => Err(Error::transient(format!("{repo}: getting a registry token failed: {}", token_error(&e)))),
        }
    }

    fn refused(&self, repo: &ImageRepo, credential: &Credential) -> Error {
        let who = match credential {
            Credential::Anonymous => "anonymous access".to_owned(),
            Credential::Basic { username, .. } => format!("user {username:?}"),
            Credential::Token(_) => "the configured token".to_owned(),
        };
        Error::unauthorized(format!("{repo}: the registry refused {who}"))
    }
}

enum Failure {
    RateLimited(Option<Duration>),
    Transient(String),
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries and treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// A reqwest error's description without its URL's query (which holds no secret here, but may
/// be long) — and without any credential, which reqwest never puts in it.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// oci-client's token errors may quote the token endpoint's body; keep only the kind.
fn token_error(e: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::RequestError(r) => without_url(r),
        E::RegistryTokenDecodeError(_) => "the token endpoint's answer is not a token".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
