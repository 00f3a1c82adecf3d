//! [`OciRegistry`]: the [`Registry`] port over the OCI distribution API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use flux_core::{Error, ImageInfo, ImageRef, ImageRepo, Platform, Registry, Result};
use jiff::Timestamp;
use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, StatusCode};

use crate::cache::{Cache, Manifest, TagDigest, TagList};
use crate::config::RegistryConfig;
use crate::credentials::{Credential, Credentials, PullCredentials, identity};
use crate::manifest::{self, ACCEPT_MANIFESTS, Parsed};
use crate::rate_limit::Backoff;
use crate::scope::{LabelTimes, Scope};
use crate::transport::{Reply, Transport, TransportConfig};

/// A registry that keeps on paginating without end is refused rather than followed forever.
const MAX_TAG_PAGES: usize = 100_000;

/// The [`Registry`] port on OCI registries. Cheap to share (`Arc`), safe from many tasks.
///
/// Every metadata lookup goes through the cache first: a tag whose digest was checked within
/// [`RegistryConfig::digest_recheck`] costs no request, an older one a single `HEAD`; metadata
/// of a digest is fetched once, ever.
#[derive(Debug)]
pub struct OciRegistry {
    transport: Transport,
    cache: Cache,
    scope: Scope,
    /// The repositories whose image times come from labels.
    label_times: LabelTimes,
    platforms: Vec<Platform>,
    page_size: Option<usize>,
    digest_recheck: std::time::Duration,
}

impl OciRegistry {
    /// A registry client with `config`. Fails on an unreadable CA bundle, an invalid glob, or a
    /// cache directory that cannot be used (a corrupt cache file is replaced, not an error).
    pub fn new(config: RegistryConfig) -> Result<Self> {
        let mut ca_pem = Vec::new();
        for path in &config.ca_bundles {
            let pem = std::fs::read(path)
                .map_err(|e| Error::other_with(format!("reading CA bundle {}", path.display()), e))?;
            ca_pem.extend_from_slice(&pem);
            ca_pem.push(b'\n');
        }
        let credentials = Credentials::new(&config.credentials, config.docker_config.clone());
        let transport = Transport::new(
            TransportConfig {
                insecure_hosts: config.insecure_hosts.clone(),
                ca_pem,
                timeout: config.timeout,
                rps: config.rps,
                burst: config.burst,
                backoff: Backoff { max_retries: config.max_retries, base: config.backoff, max: config.max_backoff },
            },
            credentials,
        )?;
        let cache = match &config.cache_dir {
            Some(dir) => Cache::open(dir)?,
            None => Cache::in_memory()?,
        };
        Ok(OciRegistry {
            transport,
            cache,
            scope: Scope::new(&config.include_images, &config.exclude_images, &config.exclude_tags)?,
            label_times: LabelTimes::new(&config.use_labels)?,
            platforms: config.platforms,
            page_size: config.page_size,
            digest_recheck: config.digest_recheck,
        })
    }

    /// Adds the credentials of a `kubernetes.io/dockerconfigjson` pull secret (the bytes of its
    /// `.dockerconfigjson` key), named `name` in errors. They take precedence over configured
    /// credentials and `config.json` for the hosts they name, which are returned.
    pub fn add_pull_secret(&self, name: &str, dockerconfigjson: &[u8]) -> Result<Vec<String>> {
        self.transport.credentials.add_pull_secret(name, dockerconfigjson)
    }

    /// How many HTTP requests this handle has sent to registries (bearer-token requests aside).
    pub fn request_count(&self) -> u64 {
        self.transport.request_count()
    }

    /// A view of this registry that authenticates with `credentials` for their hosts (and as
    /// the handle does for the others), sharing its connections, rate limits and cache file;
    /// what it fetches with them is cached apart from what was fetched with other credentials.
    /// Cheap: make one per workload and scan.
    pub fn with_pull_credentials(self: &Arc<Self>, credentials: &PullCredentials) -> WithPullCredentials {
        let hosts = credentials
            .iter()
            .map(|(host, c)| (host.to_owned(), (c.clone(), identity(self.cache.salt(), host, c))))
            .collect();
        WithPullCredentials { inner: Arc::clone(self), hosts }
    }

    async fn get(&self, who: Who<'_>, repo: &ImageRepo, path: &str, accept: &[&str]) -> Result<Reply> {
        self.transport.send(Method::GET, repo, path, accept, who.for_host(repo.registry())).await
    }

    /// Resolves a tag to its current digest with one `HEAD` (or a `GET` when the registry does
    /// not say the digest), recording it.
    async fn head_digest(&self, who: Who<'_>, repo: &ImageRepo, image: &ImageRef, tag: &str) -> Result<String> {
        let path = format!("/v2/{}/manifests/{tag}", repo.path());
        let credential = who.for_host(repo.registry());
        let reply = self.transport.send(Method::HEAD, repo, &path, &ACCEPT_MANIFESTS, credential).await?;
        check_status(&reply, image)?;
        match reply.headers.get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            Some(digest) if is_sha256(digest) => Ok(digest.to_owned()),
            _ => Ok(self.fetch_manifest(who, repo, image, tag).await?.0),
        }
    }

    /// The manifest `reference` (tag or digest) names: from the cache for a known digest, else
    /// fetched, with its config for an image, and stored by digest.
    async fn manifest(
        &self,
        who: Who<'_>,
        repo: &ImageRepo,
        image: &ImageRef,
        reference: &str,
    ) -> Result<(String, Manifest)> {
        if let Some(m) = self.cache.manifest(who.identity(repo.registry()), reference) {
            return Ok((reference.to_owned(), m));
        }
        self.fetch_manifest(who, repo, image, reference).await
    }

    async fn fetch_manifest(
        &self,
        who: Who<'_>,
        repo: &ImageRepo,
        image: &ImageRef,
        reference: &str,
    ) -> Result<(String, Manifest)> {
        let path = format!("/v2/{}/manifests/{reference}", repo.path());
        let cached_as = who.identity(repo.registry());
        let reply = self.get(who, repo, &path, &ACCEPT_MANIFESTS).await?;
        check_status(&reply, image)?;
        let computed = manifest::sha256(&reply.body);
        let digest = match reply.headers.get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            Some(header) if header.starts_with("sha256:") && header != computed => {
                return Err(Error::other(format!(
                    "{image}: the registry says digest {header}, the manifest's content is {computed}"
                )));
            }
            Some(header) => header.to_owned(),
            None => computed,
        };
        if reference.contains(':') && reference != digest {
            return Err(Error::other(format!("{image}: asked for {reference}, the registry served {digest}")));
        }
        if let Some(m) = self.cache.manifest(cached_as, &digest) {
            return Ok((digest, m));
        }
        let parsed =
            manifest::parse(&reply.body).map_err(|why| Error::other(format!("{image}: manifest {digest}: {why}")))?;
        let m = match parsed {
            Parsed::Index(index) => index,
            Parsed::Image { config_digest } => {
                let path = format!("/v2/{}/blobs/{config_digest}", repo.path());
                let reply = self.get(who, repo, &path, &["application/json", "*/*"]).await?;
                check_status(&reply, image)?;
                if manifest::sha256(&reply.body) != config_digest && config_digest.starts_with("sha256:") {
                    return Err(Error::other(format!("{image}: config {config_digest} does not match its content")));
                }
                let (created, labelled) = manifest::config_times(&reply.body);
                Manifest::Image { created, labelled }
            }
        };
        self.cache.put_manifest(cached_as, &digest, &m);
        Ok((digest, m))
    }

    /// The digest `tag` points at now, from the cache when checked recently enough.
    async fn tag_digest(&self, who: Who<'_>, repo: &ImageRepo, image: &ImageRef, tag: &str) -> Result<String> {
        let now = Timestamp::now();
        let cached_as = who.identity(repo.registry());
        let known = self.cache.tag_digest(cached_as, repo, tag);
        let recheck = i64::try_from(self.digest_recheck.as_secs()).unwrap_or(i64::MAX);
        let digest = match known {
            Some(k) if now.as_second().saturating_sub(k.checked.as_second()) < recheck => return Ok(k.digest),
            // Known but due for a check: a HEAD says whether it moved.
            Some(_) => self.head_digest(who, repo, image, tag).await?,
            // New: one GET gives digest and content at once.
            None => self.fetch_manifest(who, repo, image, tag).await?.0,
        };
        self.cache.put_tag_digest(cached_as, repo, tag, &TagDigest { digest: digest.clone(), checked: now });
        Ok(digest)
    }

    async fn tags_as(&self, who: Who<'_>, repository: &ImageRepo) -> Result<Vec<String>> {
        self.scope.check(repository)?;
        let first = match self.page_size {
            Some(n) => format!("/v2/{}/tags/list?n={n}", repository.path()),
            None => format!("/v2/{}/tags/list", repository.path()),
        };
        let mut all = BTreeSet::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > MAX_TAG_PAGES {
                return Err(Error::other(format!(
                    "{repository}: the tag list did not end after {MAX_TAG_PAGES} pages"
                )));
            }
            let reply = self.get(who, repository, &path, &["application/json"]).await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Err(Error::not_found(format!("repository {repository}")));
            }
            if !reply.status.is_success() {
                return Err(Error::other(format!("{repository}: listing tags answered {}", reply.status)));
            }
            #[derive(serde::Deserialize)]
            struct Page {
                tags: Option<Vec<String>>,
            }
            let page: Page = serde_json::from_slice(&reply.body)
                .map_err(|e| Error::other(format!("{repository}: the tag list is not valid JSON: {e}")))?;
            let page = page.tags.unwrap_or_default();
            let before = all.len();
            let page_full = self.page_size.is_some_and(|n| page.len() >= n);
            let last = page.iter().max().cloned();
            all.extend(page);
            if all.len() == before {
                break; // nothing new: the end, or a registry ignoring `last`
            }
            next = next_page(&reply.headers, repository).or_else(|| {
                // No Link: the spec says that is the end, unless the page came back full.
                let (n, last) = (self.page_size?, last?);
                page_full.then(|| format!("/v2/{}/tags/list?n={n}&last={last}", repository.path()))
            });
        }
        let tags: Vec<String> = all.into_iter().filter(|t| self.scope.keeps_tag(t)).collect();
        let cached_as = who.identity(repository.registry());
        self.cache.put_tag_list(cached_as, repository, &TagList { tags: tags.clone(), listed: Timestamp::now() });
        Ok(tags)
    }

    async fn image_info_as(&self, who: Who<'_>, image: &ImageRef) -> Result<ImageInfo> {
        let repo = image.repository();
        self.scope.check(&repo)?;
        let digest = match image.digest() {
            Some(d) => d.to_owned(),
            None => self.tag_digest(who, &repo, image, image.tag().unwrap_or("latest")).await?,
        };
        let (digest, m) = self.manifest(who, &repo, image, &digest).await?;
        // Flux v1's --registry-use-labels: the label's time, when there is one, for the matching
        // repositories.
        let use_labels = self.label_times.applies(&repo);
        let time = |created: Option<Timestamp>, labelled: Option<Timestamp>| match labelled {
            Some(t) if use_labels => Some(t),
            _ => created,
        };
        let (created, platforms) = match m {
            Manifest::Image { created, labelled } => (time(created, labelled), Vec::new()),
            Manifest::Index { entries } => {
                let created = match manifest::choose(&entries, &self.platforms) {
                    Some(entry) => match self.manifest(who, &repo, image, entry).await?.1 {
                        Manifest::Image { created, labelled } => time(created, labelled),
                        Manifest::Index { .. } => {
                            return Err(Error::other(format!("{image}: index entry {entry} is itself an index")));
                        }
                    },
                    None => None,
                };
                let platforms: BTreeSet<Platform> = entries.into_iter().map(|(p, _)| p).collect();
                (created, platforms.into_iter().collect())
            }
        };
        Ok(ImageInfo { image: image.clone(), digest, created, platforms })
    }
}

#[async_trait]
impl Registry for OciRegistry {
    async fn tags(&self, repository: &ImageRepo) -> Result<Vec<String>> {
        self.tags_as(Who::default(), repository).await
    }

    async fn image_info(&self, image: &ImageRef) -> Result<ImageInfo> {
        self.image_info_as(Who::default(), image).await
    }
}

/// Whose credentials a request uses: a view's pull credentials (with each host's identity) for
/// their hosts, the handle's own otherwise (`Who::default()`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Who<'a>(Option<&'a BTreeMap<String, (Credential, String)>>);

impl<'a> Who<'a> {
    /// The credential and identity to use for `host`, `None` for the handle's own.
    fn for_host(self, host: &str) -> Option<(&'a Credential, &'a str)> {
        self.0.and_then(|hosts| hosts.get(host)).map(|(c, id)| (c, id.as_str()))
    }

    /// The identity cache entries for `host` belong to: empty for the handle's own credentials.
    fn identity(self, host: &str) -> &'a str {
        self.for_host(host).map_or("", |(_, id)| id)
    }
}

/// An [`OciRegistry`] seen with one workload's pull credentials: see
/// [`OciRegistry::with_pull_credentials`]. `Debug` shows the hosts, never the credentials.
#[derive(Clone)]
pub struct WithPullCredentials {
    inner: Arc<OciRegistry>,
    hosts: BTreeMap<String, (Credential, String)>,
}

impl std::fmt::Debug for WithPullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithPullCredentials").field("hosts", &self.hosts.keys().collect::<Vec<_>>()).finish()
    }
}

impl WithPullCredentials {
    /// For `host`, the identity of the credential this view uses (a salted fingerprint, safe to
    /// show and compare: equal for equal credentials), or `None` when it uses the handle's own.
    pub fn identity(&self, host: &str) -> Option<&str> {
        self.hosts.get(host).map(|(_, id)| id.as_str())
    }

    fn who(&self) -> Who<'_> {
        Who(Some(&self.hosts))
    }
}

#[async_trait]
impl Registry for WithPullCredentials {
    async fn tags(&self, repository: &ImageRepo) -> Result<Vec<String>> {
        self.inner.tags_as(self.who(), repository).await
    }

    async fn image_info(&self, image: &ImageRef) -> Result<ImageInfo> {
        self.inner.image_info_as(self.who(), image).await
    }
}

/// Maps a manifest or blob answer's status to an error naming `image`.
fn check_status(reply: &Reply, image: &ImageRef) -> Result<()> {
    match reply.status {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(Error::not_found(format!("image {image}"))),
        s => Err(Error::other(format!("{image}: the registry answered {s}"))),
    }
}

fn is_sha256(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The path and query of a `Link: <…>; rel="next"` header, kept on the same registry (an
/// absolute link elsewhere is not followed with our credentials).
fn next_page(headers: &HeaderMap, repo: &ImageRepo) -> Option<String> {
    for value in headers.get_all(LINK) {
        let value = value.to_str().ok()?;
        for link in value.split(',') {
            let (target, params) = link.split_once(';').unwrap_or((link, ""));
            if !params.split(';').any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next")) {
                continue;
            }
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            if target.starts_with('/') {
                return Some(target.to_owned());
            }
            let rest = target.split_once("://")?.1;
            let (host, path) = rest.split_once('/')?;
            if host == repo.registry() {
                return Some(format!("/{path}"));
            }
            tracing::warn!(%repo, link = target, "not following a tag page link to another host");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(link: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LINK, link.parse().unwrap());
        h
    }

    #[test]
    fn follows_next_links_on_the_same_host_only() {
        let repo: ImageRepo = "reg.example/team/app".parse().unwrap();
        assert_eq!(
            next_page(&headers(r#"</v2/team/app/tags/list?last=b&n=2>; rel="next""#), &repo).as_deref(),
            Some("/v2/team/app/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_page(&headers(r#"<https://reg.example/v2/team/app/tags/list?last=b>; rel="next""#), &repo).as_deref(),
            Some("/v2/team/app/tags/list?last=b")
        );
        assert_eq!(next_page(&headers(r#"<https://evil.example/v2/x>; rel="next""#), &repo), None);
        assert_eq!(next_page(&headers(r#"</v2/team/app/tags/list?last=a>; rel="prev""#), &repo), None);
        assert_eq!(next_page(&HeaderMap::new(), &repo), None);
    }
}
