//! Per-workload policies (automated, locked, tag filters) and the `PolicyStore` port.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Location, Result};
use crate::resource::ResourceId;

/// The kinds of tag filter, by their prefix in `fluxcd.io/tag.<container>`.
pub const TAG_FILTER_PREFIXES: [&str; 6] = ["glob", "semver", "regex", "regexp", "alphabetical", "numerical"];

/// Which image tags a container may be updated to, as written in its annotation:
/// `glob:1.*` (or just `1.*`), `semver:~1.0`, `regex:^v\d+$`, `alphabetical:asc`, `numerical:desc`.
///
/// Construction checks the pattern (see [`TagFilter::compile`]), so a filter that exists is
/// valid: an invalid one can never be written into a repository.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagFilter(String);

impl TagFilter {
    /// A filter from its annotation text. Text with no known `kind:` prefix is a glob.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the text when it is empty or its pattern is invalid.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(Error::invalid(Location::file(text), "an empty tag filter"));
        }
        let filter = TagFilter(text);
        filter.compile()?;
        Ok(filter)
    }

    /// The filter that matches every tag (`glob:*`); automation still never picks `latest`.
    pub fn any() -> Self {
        TagFilter("glob:*".to_owned())
    }

    /// The annotation text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind (`glob`, `semver`, …) and the pattern after the prefix.
    pub fn kind_and_pattern(&self) -> (&str, &str) {
        match self.0.split_once(':') {
            Some((kind, pattern)) if TAG_FILTER_PREFIXES.contains(&kind) => (kind, pattern),
            _ => ("glob", &self.0),
        }
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagFilter({})", self.0)
    }
}

impl TryFrom<String> for TagFilter {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        TagFilter::new(s)
    }
}

impl From<TagFilter> for String {
    fn from(f: TagFilter) -> String {
        f.0
    }
}

/// Who locked a workload and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lock {
    /// `fluxcd.io/locked_msg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `fluxcd.io/locked_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `fluxcd.io/ignore`: what the sync engine leaves alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ignore {
    /// `"true"`: never applied, never deleted.
    All,
    /// `sync_only`: applied, never garbage-collected.
    SyncOnly,
}

/// The policies of one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policies {
    /// `fluxcd.io/automated: "true"`: new images are released automatically.
    #[serde(default)]
    pub automated: bool,
    /// `fluxcd.io/locked: "true"`: nothing releases to it, by automation or by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<Lock>,
    /// `fluxcd.io/tag.<container>`: per-container tag filters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_filters: BTreeMap<String, TagFilter>,
    /// `fluxcd.io/ignore`; read from the manifests, not changed through [`PolicyStore::update`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Ignore>,
}

impl Policies {
    /// Whether automation may update this workload: automated and not locked.
    pub fn is_automatable(&self) -> bool {
        self.automated && self.locked.is_none()
    }

    /// The filter for `container`, or [`TagFilter::any`].
    pub fn tag_filter(&self, container: &str) -> TagFilter {
        self.tag_filters.get(container).cloned().unwrap_or_else(TagFilter::any)
    }

    /// These policies with `change` made.
    pub fn with(mut self, change: &PolicyChange) -> Self {
        match change {
            PolicyChange::Automate => self.automated = true,
            PolicyChange::Deautomate => self.automated = false,
            PolicyChange::Lock(lock) => self.locked = Some(lock.clone()),
            PolicyChange::Unlock => self.locked = None,
            PolicyChange::SetTagFilter { container, filter } => {
                self.tag_filters.insert(container.clone(), filter.clone());
            }
            PolicyChange::ClearTagFilter { container } => {
                self.tag_filters.remove(container);
            }
        }
        self
    }
}

/// One change to a workload's policies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PolicyChange {
    /// Turn automation on.
    Automate,
    /// Turn automation off.
    Deautomate,
    /// Lock, with an optional message and user (relocking replaces them).
    Lock(Lock),
    /// Unlock.
    Unlock,
    /// Set one container's tag filter.
    SetTagFilter {
        /// The container.
        container: String,
        /// The filter.
        filter: TagFilter,
    },
    /// Remove one container's tag filter (back to "any tag but latest").
    ClearTagFilter {
        /// The container.
        container: String,
    },
}

/// Changes to one workload's policies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyUpdate {
    /// The workload.
    pub workload: ResourceId,
    /// The changes, made in order.
    pub changes: Vec<PolicyChange>,
}

/// Who asked for a change and why; a git-backed store writes it into the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeCause {
    /// The person or system asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Their message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A workload whose policies an update changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyDiff {
    /// The workload.
    pub workload: ResourceId,
    /// Its policies before.
    pub before: Policies,
    /// Its policies after.
    pub after: Policies,
}

/// Where workload policies are kept.
///
/// # Contract
///
/// Every implementation guarantees:
///
/// - [`PolicyStore::policies`] returns an entry for every workload the store knows, with
///   [`Policies::default`] for workloads that have none set, sorted by id.
/// - [`PolicyStore::update`] makes every change of every update, or none: if any update names a
///   workload the store does not know it fails with [`Error::NotFound`] naming it, and nothing
///   changes. Changes are made in order, with [`Policies::with`]'s meaning.
/// - It returns one [`PolicyDiff`] per workload whose policies changed, in the order the
///   workloads first appear in `updates`; a workload whose changes leave its policies as they
///   were is not listed, and the store writes nothing for it. Updating with changes that are
///   already in effect therefore writes nothing at all and returns an empty list.
/// - After `update` returns, `policies` reflects it, through this or any other handle on the same
///   store. If another writer changed the store meanwhile in a way the implementation cannot
///   reconcile, it fails with [`Error::Conflict`] and changes nothing.
/// - Handles are safe to use from several tasks at once.
///
/// `flux_core::testkit::policy_store` checks all of this against any implementation.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Every known workload's policies.
    async fn policies(&self) -> Result<BTreeMap<ResourceId, Policies>>;

    /// Makes all `updates`, or none.
    async fn update(&self, updates: &[PolicyUpdate], cause: &ChangeCause) -> Result<Vec<PolicyDiff>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filter_kinds() {
        assert_eq!(TagFilter::new("semver:~1.0").unwrap().kind_and_pattern(), ("semver", "~1.0"));
        assert_eq!(TagFilter::new("1.*").unwrap().kind_and_pattern(), ("glob", "1.*"));
        assert_eq!(TagFilter::new("regexp:^v(\\d+)$").unwrap().kind_and_pattern(), ("regexp", "^v(\\d+)$"));
        assert!(TagFilter::new(" ").is_err());
        assert!(TagFilter::new("semver:not a range").is_err());
        assert!(serde_json::from_str::<TagFilter>("\"regex:(\"").is_err());
    }

    #[test]
    fn changes_compose() {
        let p = Policies::default().with(&PolicyChange::Automate).with(&PolicyChange::SetTagFilter {
            container: "app".into(),
            filter: TagFilter::new("semver:^1").unwrap(),
        });
        assert!(p.is_automatable());
        assert_eq!(p.tag_filter("app").as_str(), "semver:^1");
        assert_eq!(p.tag_filter("sidecar"), TagFilter::any());
        let locked = p.with(&PolicyChange::Lock(Lock { message: Some("incident".into()), user: None }));
        assert!(!locked.is_automatable());
        assert_eq!(locked.with(&PolicyChange::Unlock).locked, None);
    }
}
