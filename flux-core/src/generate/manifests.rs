//! The plain generator: manifest files read as they are, and edited in place.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{EditChange, Generated, Generator, Snapshot, Updated, WorkloadEdit};
use crate::error::Error;
use crate::manifest::edit::{set_annotation, set_container_image};
use crate::manifest::reader::{Documents, read};
use crate::manifest::{ManifestOptions, read_repository_manifests, select_manifest_files};
use crate::object::KubeObject;
use crate::source::{FileChange, SourceFile};

/// The plain generator: the manifest files under the paths that
/// [`select_manifest_files`] keeps (not in hidden directories nor Helm charts) are read with
/// [`read_repository_manifests`] (documents that are not Kubernetes objects skipped); edits go
/// into the file (and document) each workload is defined in, with the lossless editor.
///
/// When the revision has errors, [`Generated::objects`] still holds the objects of every file
/// that reads cleanly on its own, for callers that opted in to applying an unusable revision.
/// (Read alone, such a file cannot see CustomResourceDefinitions in other files, so a custom
/// kind's scope may be guessed wrong; such objects are still never pruned on.)
#[derive(Debug, Clone, Default)]
pub struct ManifestGenerator {
    options: ManifestOptions,
}

impl ManifestGenerator {
    /// A generator with these reading options.
    pub fn new(options: ManifestOptions) -> Self {
        ManifestGenerator { options }
    }

    /// What `files` (any subset of a revision, already selected) make: their objects and the
    /// documents skipped, or every error.
    pub fn read(&self, files: &[SourceFile]) -> Generated {
        self.read_files(files.iter())
    }

    fn read_files<'a>(&self, files: impl Iterator<Item = &'a SourceFile> + Clone) -> Generated {
        let (manifests, skipped, errors) = read(files.clone(), &self.options, Documents::SkipNonObjects);
        if errors.is_empty() {
            return Generated {
                objects: manifests.into_iter().map(|m| m.object).collect(),
                errors: Vec::new(),
                skipped,
            };
        }
        let objects = files
            .filter_map(|f| read_repository_manifests(std::slice::from_ref(f), &self.options).ok())
            .flat_map(|read| read.manifests)
            .map(|m| m.object)
            .collect();
        Generated { objects, errors: errors.into_errors(), skipped }
    }
}

#[async_trait]
impl Generator for ManifestGenerator {
    async fn generate(&self, snapshot: &Snapshot) -> Generated {
        let (files, mut skipped) = select_manifest_files(snapshot.files(), snapshot.paths());
        let mut generated = self.read_files(files.into_iter());
        skipped.append(&mut generated.skipped);
        skipped.sort();
        generated.skipped = skipped;
        generated
    }

    async fn update(&self, snapshot: &Snapshot, generated: &Generated, edits: &[WorkloadEdit]) -> Updated {
        update_manifest_files(snapshot, &generated.objects, edits.iter().enumerate())
    }
}

/// Makes `edits` (with their indices) in the manifest files the workloads among `objects` were
/// read from (their [`origin`](KubeObject::origin)), with the lossless editor; edits to one
/// file accumulate. For composite generators whose plain part is manifest files.
pub fn update_manifest_files<'a>(
    snapshot: &Snapshot,
    objects: &[KubeObject],
    edits: impl IntoIterator<Item = (usize, &'a WorkloadEdit)>,
) -> Updated {
    let mut updated = Updated::default();
    let mut by_file: BTreeMap<&str, Vec<(usize, &WorkloadEdit)>> = BTreeMap::new();
    for (i, edit) in edits {
        let file = objects
            .iter()
            .find(|o| o.id() == &edit.workload)
            .and_then(|o| o.origin())
            .map(|origin| origin.file.as_str());
        match file {
            Some(file) => by_file.entry(file).or_default().push((i, edit)),
            None => updated.failed.push((i, Error::not_found(format!("workload {}", edit.workload)))),
        }
    }
    for (file, edits) in by_file {
        let mut text = match snapshot.text(file) {
            Ok(t) => t.to_owned(),
            Err(e) => {
                let reason = e.to_string();
                updated.failed.extend(edits.into_iter().map(|(i, _)| (i, Error::other(reason.clone()))));
                continue;
            }
        };
        let original = text.clone();
        for (i, edit) in edits {
            let result = match &edit.change {
                EditChange::Image { container, image } => {
                    set_container_image(file, &text, &edit.workload, container, image)
                }
                EditChange::Annotation { key, value } => {
                    set_annotation(file, &text, &edit.workload, key, value.as_deref())
                }
            };
            match result {
                Ok(edited) => text = edited,
                Err(e) => updated.failed.push((i, e)),
            }
        }
        if text != original {
            updated.files.push(FileChange::write(file, text));
        }
    }
    updated.failed.sort_by_key(|(i, _)| *i);
    updated
}
