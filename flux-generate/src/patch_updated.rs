//! Writing edits into a `.flux.yaml` `patchUpdated` patch file.

use flux_core::generate::{EditChange, Snapshot, Updated, WorkloadEdit};
use flux_core::manifest::patch::{set_patch_annotation, set_patch_image};
use flux_core::source::FileChange;
use flux_core::{Error, KubeObject, Location, Result};

use crate::generator::workloads_of;

/// Makes `edits` in the patch file at `path` (created when missing). `unpatched` are the
/// generators' objects, `patched` the objects after the patch (where containers are found).
pub(crate) async fn update(
    snapshot: &Snapshot,
    path: &str,
    unpatched: &[KubeObject],
    patched: &[KubeObject],
    edits: &[(usize, &WorkloadEdit)],
) -> Updated {
    let mut updated = Updated::default();
    let original = match snapshot.read_file(path).await {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                let e = Error::invalid(Location::file(path), "not UTF-8");
                updated.failed = edits.iter().map(|(i, _)| (*i, Error::other(e.to_string()))).collect();
                return updated;
            }
        },
        Err(e) if e.is_not_found() => String::new(),
        Err(e) => {
            let reason = e.to_string();
            updated.failed = edits.iter().map(|(i, _)| (*i, Error::other(reason.clone()))).collect();
            return updated;
        }
    };
    let mut text = original.clone();
    for (i, edit) in edits {
        match patch_one(path, &text, unpatched, patched, edit) {
            Ok(edited) => text = edited,
            Err(e) => updated.failed.push((*i, e)),
        }
    }
    if text != original {
        updated.files.push(FileChange::write(path, text));
    }
    updated
}

fn patch_one(
    path: &str,
    text: &str,
    unpatched: &[KubeObject],
    patched: &[KubeObject],
    edit: &WorkloadEdit,
) -> Result<String> {
    let find = |objects: &[KubeObject]| objects.iter().find(|o| o.id() == &edit.workload).cloned();
    let target = find(unpatched).ok_or_else(|| Error::not_found(format!("workload {}", edit.workload)))?;
    match &edit.change {
        EditChange::Image { container, image } => {
            let now = find(patched).unwrap_or_else(|| target.clone());
            let workload = workloads_of(std::slice::from_ref(&now)).into_iter().next();
            let container = workload
                .as_ref()
                .and_then(|w| w.container(container))
                .ok_or_else(|| Error::not_found(format!("container {container} of {}", edit.workload)))?;
            set_patch_image(path, text, &target, container, image)
        }
        EditChange::Annotation { key, value } => set_patch_annotation(path, text, &target, key, value.as_deref()),
    }
}
