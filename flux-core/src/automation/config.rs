//! How automation commits and which images it looks at.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Location, Result};
use crate::image::{ImageRef, ImageRepo};
use crate::manifest::ManifestOptions;
use crate::source::Author;

/// Which image repositories are scanned: those the automated workloads use (for listing: those
/// any workload uses), kept only if they match `include` (when given) and no `exclude`.
/// Globs match the normalised repository (`docker.io/library/nginx`) and the reference as
/// written in the manifest (`nginx`).
#[derive(Debug, Clone, Default)]
pub struct ImageScope {
    /// When not empty, only repositories matching one of these globs.
    pub include: Vec<String>,
    /// Repositories matching any of these globs are never scanned.
    pub exclude: Vec<String>,
}

/// [`ImageScope`] compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledScope {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl ImageScope {
    pub(crate) fn compile(&self) -> Result<CompiledScope> {
        let set = |globs: &[String]| -> Result<GlobSet> {
            let mut builder = GlobSetBuilder::new();
            for g in globs {
                let glob =
                    Glob::new(g).map_err(|e| Error::invalid(Location::file(g), format!("invalid image glob: {e}")))?;
                builder.add(glob);
            }
            builder.build().map_err(|e| Error::other(format!("image globs: {e}")))
        };
        let include = if self.include.is_empty() { None } else { Some(set(&self.include)?) };
        Ok(CompiledScope { include, exclude: set(&self.exclude)? })
    }
}

impl CompiledScope {
    /// Whether a repository, as normalised and as written, is in scope.
    pub(crate) fn admits(&self, repo: &ImageRepo, written: Option<&ImageRef>) -> bool {
        let normal = repo.to_string();
        let as_written = written.map(|w| match w.domain() {
            Some(domain) => format!("{domain}/{}", w.path()),
            None => w.path().to_owned(),
        });
        let names: Vec<&str> = std::iter::once(normal.as_str()).chain(as_written.as_deref()).collect();
        let included = self.include.as_ref().is_none_or(|inc| names.iter().any(|n| inc.is_match(n)));
        included && !names.iter().any(|n| self.exclude.is_match(n))
    }
}

/// Commit messages. `{image}`, `{count}`, `{workloads}` are replaced; the list of changes
/// (`- workload (container): old -> new`) always follows the first line.
#[derive(Debug, Clone)]
pub struct CommitTemplate {
    /// An automation commit with one image: default `Auto-release {image}`.
    pub automation_single: String,
    /// An automation commit with several: default `Auto-release multiple ({count}) images`.
    pub automation_multiple: String,
    /// A release: default `Release {image} to {workloads}`.
    pub release: String,
}

impl Default for CommitTemplate {
    fn default() -> Self {
        CommitTemplate {
            automation_single: "Auto-release {image}".into(),
            automation_multiple: "Auto-release multiple ({count}) images".into(),
            release: "Release {image} to {workloads}".into(),
        }
    }
}

/// What automation needs to know besides its ports.
#[derive(Debug, Clone)]
pub struct AutomationConfig {
    /// The paths in the source holding the manifests (empty: the root).
    pub paths: Vec<String>,
    /// How manifests are read.
    pub manifest_options: ManifestOptions,
    /// The author of automation commits (and of releases that name no user).
    pub author: Author,
    /// Commit messages.
    pub template: CommitTemplate,
    /// Add `[ci skip]` to commit messages.
    pub ci_skip: bool,
    /// How many times a commit is re-planned on a new head after a conflict.
    pub max_conflict_retries: usize,
    /// Which repositories are scanned.
    pub scope: ImageScope,
    /// How many registry calls run at once.
    pub registry_concurrency: usize,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            paths: Vec::new(),
            manifest_options: ManifestOptions::default(),
            author: Author::default(),
            template: CommitTemplate::default(),
            ci_skip: false,
            max_conflict_retries: 3,
            scope: ImageScope::default(),
            registry_concurrency: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_matches_normalised_and_written_names() {
        let scope = ImageScope {
            include: vec!["docker.io/library/*".into(), "ghcr.io/team/*".into()],
            exclude: vec!["*/nginx".into()],
        };
        let s = scope.compile().unwrap();
        let repo = |r: &str| r.parse::<ImageRef>().unwrap();
        assert!(s.admits(&repo("redis").repository(), Some(&repo("redis:7"))));
        assert!(!s.admits(&repo("nginx").repository(), Some(&repo("nginx:1"))), "excluded by the written form too");
        assert!(s.admits(&repo("ghcr.io/team/app").repository(), None));
        assert!(!s.admits(&repo("quay.io/x/y").repository(), None), "not included");
        assert!(ImageScope { include: vec![], exclude: vec!["[".into()] }.compile().is_err());
    }
}
