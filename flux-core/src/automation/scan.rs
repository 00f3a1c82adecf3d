//! Asking the registry about the repositories automation needs, and no more.
//!
//! Tags are listed once per repository. Created times (one metadata call per tag, which a
//! caching Registry answers from its cache after the first time) are fetched only for tags that
//! a time-ordered filter (glob, regex) in use for that repository could choose; semver,
//! alphabetical and numerical filters order by the tag alone.

use std::collections::BTreeMap;

use futures::StreamExt;

use crate::image::ImageRepo;
use crate::manifest::{CompiledFilter, TagCandidate};
use crate::policy::TagFilter;
use crate::registry::Registry;

/// What the registry said of each repository asked about.
#[derive(Debug, Clone, Default)]
pub struct ImageCatalog {
    repos: BTreeMap<ImageRepo, Result<Vec<TagCandidate>, String>>,
}

impl ImageCatalog {
    /// The tags of `repo` (with created times where they were needed), the registry's error for
    /// it, or `None` if it was not scanned.
    pub fn tags(&self, repo: &ImageRepo) -> Option<Result<&[TagCandidate], &str>> {
        self.repos.get(repo).map(|r| r.as_ref().map(Vec::as_slice).map_err(String::as_str))
    }

    /// Every repository whose scan failed, with the error.
    pub fn errors(&self) -> impl Iterator<Item = (&ImageRepo, &str)> {
        self.repos.iter().filter_map(|(repo, r)| r.as_ref().err().map(|e| (repo, e.as_str())))
    }
}

/// Scans each repository of `wanted` for the filters that will choose among its tags.
///
/// Any error for a repository (listing its tags, or the metadata of a tag a time-ordered filter
/// could choose) marks the whole repository failed: a partial view could choose an older image
/// than the one running. Other repositories carry on.
pub(crate) async fn scan(
    registry: &dyn Registry,
    wanted: BTreeMap<ImageRepo, Vec<TagFilter>>,
    concurrency: usize,
) -> ImageCatalog {
    let concurrency = concurrency.max(1);
    let scans = wanted.into_iter().map(|(repo, filters)| async move {
        let result = scan_one(registry, &repo, &filters, concurrency).await;
        (repo, result)
    });
    ImageCatalog { repos: futures::stream::iter(scans).buffer_unordered(concurrency).collect().await }
}

async fn scan_one(
    registry: &dyn Registry,
    repo: &ImageRepo,
    filters: &[TagFilter],
    concurrency: usize,
) -> Result<Vec<TagCandidate>, String> {
    let tags = registry.tags(repo).await.map_err(|e| format!("listing tags of {repo}: {e}"))?;
    let timed: Vec<CompiledFilter> =
        filters.iter().filter_map(|f| f.compile().ok()).filter(CompiledFilter::orders_by_time).collect();
    let needs_time = |tag: &str| timed.iter().any(|f| f.matches(tag));
    let lookups = tags.into_iter().map(|tag| async move {
        if !needs_time(&tag) {
            return Ok(TagCandidate::new(tag, None));
        }
        match registry.image_info(&repo.tagged(&tag)).await {
            Ok(info) => Ok(TagCandidate::new(tag, info.created)),
            Err(e) => Err(format!("metadata of {repo}:{tag}: {e}")),
        }
    });
    futures::stream::iter(lookups).buffered(concurrency).collect::<Vec<_>>().await.into_iter().collect()
}
