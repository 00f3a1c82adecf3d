//! Which repositories and tags are looked at: include/exclude globs on image repositories
//! (`docker.io/library/*`, `*/team/*`), and tags excluded by glob (by default the signature,
//! attestation and SBOM tags cosign writes: `*.sig`, `*.att`, `*.sbom`).

use flux_core::{Error, ImageRepo, Location};
use globset::{Glob, GlobSet, GlobSetBuilder};

/// The tag globs excluded unless configured otherwise.
pub const DEFAULT_EXCLUDED_TAGS: [&str; 3] = ["*.sig", "*.att", "*.sbom"];

#[derive(Debug)]
pub(crate) struct Scope {
    include_images: Option<GlobSet>,
    exclude_images: GlobSet,
    exclude_tags: GlobSet,
}

impl Scope {
    pub(crate) fn new(
        include_images: &[String],
        exclude_images: &[String],
        exclude_tags: &[String],
    ) -> Result<Self, Error> {
        Ok(Scope {
            include_images: if include_images.is_empty() {
                None
            } else {
                Some(globs("include image", include_images)?)
            },
            exclude_images: globs("exclude image", exclude_images)?,
            exclude_tags: globs("exclude tag", exclude_tags)?,
        })
    }

    /// Fails with [`Error::InvalidInput`] naming `repo` when the configuration leaves it out.
    pub(crate) fn check(&self, repo: &ImageRepo) -> Result<(), Error> {
        let name = repo.to_string();
        let included = self.include_images.as_ref().is_none_or(|g| g.is_match(&name));
        if included && !self.exclude_images.is_match(&name) {
            Ok(())
        } else {
            Err(Error::invalid(Location::file(name), "excluded from scanning by the registry's image globs"))
        }
    }

    pub(crate) fn keeps_tag(&self, tag: &str) -> bool {
        !self.exclude_tags.is_match(tag)
    }
}

/// The repositories whose image times come from labels (`use_labels`).
#[derive(Debug)]
pub(crate) struct LabelTimes(GlobSet);

impl LabelTimes {
    pub(crate) fn new(patterns: &[String]) -> Result<Self, Error> {
        Ok(LabelTimes(globs("use-labels image", patterns)?))
    }

    /// Whether `repo` matches, by its name or, on Docker Hub, by Flux v1's `index.docker.io/...`.
    pub(crate) fn applies(&self, repo: &ImageRepo) -> bool {
        let name = repo.to_string();
        self.0.is_match(&name)
            || (repo.registry() == flux_core::image::DOCKER_HUB
                && name
                    .strip_prefix("docker.io/")
                    .is_some_and(|rest| self.0.is_match(format!("index.docker.io/{rest}"))))
    }
}

fn globs(what: &str, patterns: &[String]) -> Result<GlobSet, Error> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::invalid(Location::file(p), format!("invalid {what} glob: {e}")))?;
        set.add(glob);
    }
    set.build().map_err(|e| Error::other(format!("building the {what} globs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cosign_tags_are_excluded_by_default() {
        let scope = Scope::new(&[], &[], &strings(&DEFAULT_EXCLUDED_TAGS)).unwrap();
        assert!(scope.keeps_tag("1.2.3"));
        for t in ["sha256-0123abcd.sig", "sha256-0123abcd.att", "sha256-0123abcd.sbom"] {
            assert!(!scope.keeps_tag(t), "{t}");
        }
    }

    #[test]
    fn image_globs_include_and_exclude() {
        let scope = Scope::new(&strings(&["ghcr.io/*"]), &strings(&["ghcr.io/private/*"]), &[]).unwrap();
        let repo = |s: &str| s.parse::<ImageRepo>().unwrap();
        assert!(scope.check(&repo("ghcr.io/team/app")).is_ok());
        let err = scope.check(&repo("ghcr.io/private/app")).unwrap_err();
        assert!(err.to_string().contains("ghcr.io/private/app"), "{err}");
        assert!(scope.check(&repo("nginx")).is_err(), "not included");
    }

    #[test]
    fn a_bad_glob_is_named() {
        let err = Scope::new(&[], &strings(&["a[b"]), &[]).unwrap_err();
        assert!(err.to_string().contains("a[b"), "{err}");
    }

    #[test]
    fn label_times_match_docker_hub_as_flux_v1_named_it() {
        let labels = LabelTimes::new(&strings(&["index.docker.io/fluxcd/*", "ghcr.io/team/*"])).unwrap();
        let repo = |s: &str| s.parse::<ImageRepo>().unwrap();
        assert!(labels.applies(&repo("fluxcd/flux")));
        assert!(labels.applies(&repo("docker.io/fluxcd/helm-operator")));
        assert!(labels.applies(&repo("ghcr.io/team/app")));
        assert!(!labels.applies(&repo("weaveworks/flux")));
        assert!(!labels.applies(&repo("quay.io/fluxcd/flux")));
        assert!(LabelTimes::new(&strings(&["a[b"])).unwrap_err().to_string().contains("a[b"));
    }
}
