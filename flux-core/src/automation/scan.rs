//! Asking the registry about the repositories automation needs, and no more.
//!
//! Tags are listed once per repository. Created times (one metadata call per tag, which a
//! caching Registry answers from its cache after the first time) are fetched only for tags that
//! a time-ordered filter (glob, regex) in use for that repository could choose; semver,
//! alphabetical and numerical filters order by the tag alone.

use std::collections::BTreeMap;

use futures::StreamExt;

use std::sync::Arc;

use crate::error::Error;
use crate::image::ImageRepo;
use crate::manifest::{CompiledFilter, TagCandidate};
use crate::policy::TagFilter;
use crate::registry::{Registry, RegistryView};
use crate::resource::ResourceId;

/// A repository as scanned through one view: the identity of the view's credentials for its
/// host (empty for the engine's own registry) and the repository.
type ViewedRepo = (String, ImageRepo);

/// What the registry said of each repository asked about, per credentials it was asked with.
#[derive(Debug, Clone, Default)]
pub struct ImageCatalog {
    repos: BTreeMap<ViewedRepo, Result<Vec<TagCandidate>, Error>>,
    /// Per workload with a view of its own: host → identity of the view's credentials.
    identities: BTreeMap<ResourceId, BTreeMap<String, String>>,
}

impl ImageCatalog {
    /// The tags of `repo` as the engine's own registry listed them (with created times where
    /// they were needed), its error, or `None` if it was not scanned so.
    pub fn tags(&self, repo: &ImageRepo) -> Option<Result<&[TagCandidate], &Error>> {
        self.viewed(String::new(), repo)
    }

    /// The tags of `repo` as `workload` sees them: through its [`RegistryView`] when it has one
    /// for the repository's host, else as [`ImageCatalog::tags`].
    pub fn tags_for(&self, workload: &ResourceId, repo: &ImageRepo) -> Option<Result<&[TagCandidate], &Error>> {
        let identity = self.identities.get(workload).and_then(|hosts| hosts.get(repo.registry()));
        self.viewed(identity.cloned().unwrap_or_default(), repo)
    }

    fn viewed(&self, identity: String, repo: &ImageRepo) -> Option<Result<&[TagCandidate], &Error>> {
        let result = self.repos.get(&(identity, repo.clone()))?;
        Some(result.as_ref().map(Vec::as_slice))
    }

    /// Every repository whose scan failed (through any view), with the error (its kind kept:
    /// a rate limit is not a refusal); the same error for the same repository once.
    pub fn errors(&self) -> impl Iterator<Item = (&ImageRepo, &Error)> {
        let mut seen = std::collections::BTreeSet::new();
        self.repos
            .iter()
            .filter_map(|((_, repo), r)| r.as_ref().err().map(|e| (repo, e)))
            .filter(move |(repo, e)| seen.insert((*repo, e.to_string())))
    }
}

/// The repositories a scan asks about, each with the filters that will choose among its tags,
/// routed per workload through its [`RegistryView`] when it has one for the repository's host.
#[derive(Default)]
pub(crate) struct Wanted {
    views: BTreeMap<ResourceId, RegistryView>,
    repos: BTreeMap<ViewedRepo, Vec<TagFilter>>,
    registries: BTreeMap<String, Arc<dyn Registry>>,
}

impl Wanted {
    /// Nothing wanted yet; workloads in `views` are scanned through them.
    pub(crate) fn new(views: BTreeMap<ResourceId, RegistryView>) -> Self {
        Wanted { views, ..Wanted::default() }
    }

    /// `workload` uses `repo`, choosing among its tags with `filters`.
    pub(crate) fn add(&mut self, workload: &ResourceId, repo: ImageRepo, filters: impl IntoIterator<Item = TagFilter>) {
        let view = self.views.get(workload).and_then(|v| Some((v.identities.get(repo.registry())?, &v.registry)));
        let identity = match view {
            Some((identity, registry)) => {
                self.registries.entry(identity.clone()).or_insert_with(|| Arc::clone(registry));
                identity.clone()
            }
            None => String::new(),
        };
        let list = self.repos.entry((identity, repo)).or_default();
        for filter in filters {
            if !list.contains(&filter) {
                list.push(filter);
            }
        }
    }
}

/// Scans each repository of `wanted` for the filters that will choose among its tags.
///
/// Any error for a repository (listing its tags, or the metadata of a tag a time-ordered filter
/// could choose) marks the whole repository failed: a partial view could choose an older image
/// than the one running. Other repositories carry on.
/// Repositories wanted through a workload's view are asked of that view's registry, the others
/// of `registry`.
pub(crate) async fn scan(registry: &dyn Registry, wanted: Wanted, concurrency: usize) -> ImageCatalog {
    let concurrency = concurrency.max(1);
    let Wanted { views, repos, registries } = wanted;
    let registries = &registries;
    let scans = repos.into_iter().map(|((identity, repo), filters)| async move {
        let through = registries.get(&identity).map_or(registry, |r| r.as_ref());
        let result = scan_one(through, &repo, &filters, concurrency).await;
        ((identity, repo), result)
    });
    let repos = futures::stream::iter(scans).buffer_unordered(concurrency).collect().await;
    let identities = views.into_iter().map(|(id, view)| (id, view.identities)).collect();
    ImageCatalog { repos, identities }
}

async fn scan_one(
    registry: &dyn Registry,
    repo: &ImageRepo,
    filters: &[TagFilter],
    concurrency: usize,
) -> Result<Vec<TagCandidate>, Error> {
    let tags = registry.tags(repo).await.map_err(|e| e.context(format_args!("listing tags of {repo}")))?;
    let timed: Vec<CompiledFilter> =
        filters.iter().filter_map(|f| f.compile().ok()).filter(CompiledFilter::orders_by_time).collect();
    let needs_time = |tag: &str| timed.iter().any(|f| f.matches(tag));
    let lookups = tags.into_iter().map(|tag| async move {
        if !needs_time(&tag) {
            return Ok(TagCandidate::new(tag, None));
        }
        match registry.image_info(&repo.tagged(&tag)).await {
            Ok(info) => Ok(TagCandidate::new(tag, info.created)),
            Err(e) => Err(e.context(format_args!("metadata of {repo}:{tag}"))),
        }
    });
    futures::stream::iter(lookups).buffered(concurrency).collect::<Vec<_>>().await.into_iter().collect()
}
