//! Manifests: the Kubernetes objects a repository's YAML and JSON files describe, the workloads
//! among them with their images and policies, tag filters, and lossless edits of the YAML text.
//!
//! Everything here is a pure function of file contents; nothing does I/O.
//!
//! - [`read_manifests`] parses every manifest file of a revision into [`Manifest`]s. Any error
//!   anywhere makes the whole revision unusable ([`ManifestErrors`]): a partial set of objects
//!   would make the sync engine prune what it failed to read. Hand-written files are read with
//!   [`read_repository_manifests`] after [`select_manifest_files`]: what is not a Kubernetes
//!   object (hidden directories, Helm charts, documents with neither `apiVersion` nor `kind`)
//!   is skipped and listed ([`Skipped`]).
//! - [`workloads`] finds the workloads among them, their containers' images and their
//!   [`Policies`](crate::Policies); [`workloads_with_errors`] keeps every workload, each with
//!   its own errors, so that one bad workload does not hide the others.
//! - [`CompiledFilter`] matches tags against a [`TagFilter`](crate::TagFilter) and picks the latest.
//! - [`edit`] changes one value in a file's text and nothing else.
//! - [`kustomize`] reads a `kustomization.yaml` and edits its `images:` overrides in place.
//! - [`patch`] applies Flux v1 patch files (`.flux.yaml` `patchUpdated`) to generated objects
//!   and writes image and annotation changes into them.
//!
//! # Example
//!
//! ```
//! use flux_core::manifest::{ManifestOptions, edit, read_manifests, workloads};
//! use flux_core::SourceFile;
//!
//! let yaml = "# the web app\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    fluxcd.io/tag.app: semver:~1.2\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: 'nginx:1.2.0' # pinned\n";
//! let files = [SourceFile { path: "apps/web.yaml".into(), content: yaml.into() }];
//! let manifests = read_manifests(&files, &ManifestOptions::default())?;
//! let web = &workloads(&manifests)?[0];
//! assert_eq!(web.id.to_string(), "default:deployment/web");
//!
//! let filter = web.policies.tag_filter("app").compile()?;
//! let tags = ["1.2.0", "1.2.7", "1.3.0", "latest"].map(|t| flux_core::manifest::TagCandidate::new(t, None));
//! let latest = filter.latest(&tags).expect("a match");
//! assert_eq!(latest.tag, "1.2.7");
//!
//! let image = web.container("app").expect("container").image.with_tag(&latest.tag);
//! let edited = edit::set_container_image("apps/web.yaml", yaml, &web.id, "app", &image)?;
//! assert_eq!(edited, yaml.replace("'nginx:1.2.0'", "'nginx:1.2.7'"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Symbolic links
//!
//! A [`SourceFile`](crate::SourceFile) carries a path and bytes, not whether the path was a link:
//! a [`Source`](crate::Source) adapter must refuse links that point out of the repository (its
//! contract says so). At this level every path is checked with
//! [`normalize_path`](crate::source::normalize_path): absolute paths and `..` are errors.

pub mod edit;
mod errors;
mod helm;
pub mod kustomize;
pub mod patch;
mod policies;
pub(crate) mod reader;
mod skip;
mod tags;
mod workloads;
mod yaml;

pub use errors::ManifestErrors;
pub use helm::{CHART_IMAGE, HelmImagePaths, is_helm_release};
pub use policies::{FILTER_PREFIX, LEGACY_PREFIX, PREFIX, PolicyError, annotation_edits, policies_from_annotations};
pub use reader::{
    Manifest, ManifestOptions, RepositoryManifests, is_manifest_path, read_manifests, read_repository_manifests,
};
pub use skip::{CHART_FILE, SkipReason, Skipped, select_manifest_files};
pub use tags::{CompiledFilter, LATEST, SortOrder, TagCandidate, parse_version};
pub use workloads::{
    ContainerLocator, ContainerManifest, WorkloadError, WorkloadManifest, workloads, workloads_of_objects,
    workloads_with_errors,
};
