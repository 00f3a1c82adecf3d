use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::error::{Error, Result};
use crate::image::{ImageRef, ImageRepo};
use crate::registry::{ImageInfo, Platform, Registry};

/// An image as pushed to a [`MemoryRegistry`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MemoryImage {
    /// The config's `created` time.
    pub created: Option<jiff::Timestamp>,
    /// For an index, its platforms; empty for a single image.
    pub platforms: Vec<Platform>,
}

impl MemoryImage {
    /// A single-platform image created at `created`.
    pub fn created(created: jiff::Timestamp) -> Self {
        MemoryImage { created: Some(created), platforms: Vec::new() }
    }

    /// The digest of this content: the same content always has the same digest.
    fn digest(&self) -> String {
        let mut hex = String::from("sha256:");
        for seed in 0u8..4 {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (seed, self).hash(&mut h);
            hex.push_str(&format!("{:016x}", h.finish()));
        }
        hex
    }
}

/// A [`Registry`] kept in memory. Clones share the same repositories.
///
/// [`MemoryRegistry::requests`] counts the calls a real registry would have answered.
#[derive(Clone, Default)]
pub struct MemoryRegistry {
    repos: Arc<Mutex<HashMap<ImageRepo, BTreeMap<String, MemoryImage>>>>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRegistry").field("repositories", &lock(&self.repos).len()).finish()
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes `image` as `repository:tag`, replacing what the tag pointed at.
    pub fn push(&self, repository: &ImageRepo, tag: &str, image: MemoryImage) {
        lock(&self.repos).entry(repository.clone()).or_default().insert(tag.to_owned(), image);
    }

    /// Deletes a tag; returns whether it existed.
    pub fn delete_tag(&self, repository: &ImageRepo, tag: &str) -> bool {
        lock(&self.repos).get_mut(repository).is_some_and(|tags| tags.remove(tag).is_some())
    }

    /// How many calls were made through [`Registry`].
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn tags(&self, repository: &ImageRepo) -> Result<Vec<String>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let repos = lock(&self.repos);
        let tags = repos.get(repository).ok_or_else(|| Error::not_found(format!("repository {repository}")))?;
        Ok(tags.keys().cloned().collect())
    }

    async fn image_info(&self, image: &ImageRef) -> Result<ImageInfo> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let repos = lock(&self.repos);
        let tags = repos.get(&image.repository());
        let found = match (image.digest(), image.tag()) {
            (Some(digest), _) => tags.and_then(|t| t.values().find(|i| i.digest() == digest)),
            (None, tag) => tags.and_then(|t| t.get(tag.unwrap_or("latest"))),
        };
        let found = found.ok_or_else(|| Error::not_found(format!("image {image}")))?;
        let mut platforms = found.platforms.clone();
        platforms.sort();
        Ok(ImageInfo { image: image.clone(), digest: found.digest(), created: found.created, platforms })
    }
}
