//! Writing image changes into Kustomize apps.

use std::collections::BTreeMap;

use flux_core::generate::{EditChange, Snapshot, Updated, WorkloadEdit};
use flux_core::manifest::edit::{image_markers, set_marker_images};
use flux_core::manifest::kustomize::{add_patch, find_image, parse_kustomization, set_image};
use flux_core::manifest::patch::set_patch_annotation;
use flux_core::manifest::{PREFIX, is_manifest_path};
use flux_core::source::{FileChange, path_is_under};
use flux_core::{Error, ImageRef, KubeObject, Location, ResourceId, Result};

use crate::generator::workloads_of;
use crate::layout::{KustomizeRoot, app_directories, kustomizations};

/// One edit of a Kustomize app's workload: its index, the edit, the app.
pub(crate) type KustomizeEdit<'a> = (usize, &'a WorkloadEdit, &'a KustomizeRoot);

/// The texts of the repository's files, as edits change them.
struct Texts {
    original: BTreeMap<String, String>,
    edited: BTreeMap<String, String>,
}

impl Texts {
    fn get(&self, path: &str) -> Result<&str> {
        self.edited
            .get(path)
            .or_else(|| self.original.get(path))
            .map(String::as_str)
            .ok_or_else(|| Error::not_found(format!("file {path}")))
    }
}

/// Makes `edits` in the apps' files (images in `images:` entries or markers, policies in the
/// apps' own patches), edits to one file accumulating across apps.
pub(crate) async fn update(snapshot: &Snapshot, objects: &[KubeObject], edits: &[KustomizeEdit<'_>]) -> Updated {
    let mut updated = Updated::default();
    let files = match snapshot.all_files().await {
        Ok(files) => files,
        Err(e) => {
            let reason = e.to_string();
            updated.failed = edits.iter().map(|(i, _, _)| (*i, Error::other(reason.clone()))).collect();
            return updated;
        }
    };
    let (apps, _) = kustomizations(&files);
    // Only the files of the apps edited and of what they use can change.
    let dirs = app_directories(&apps, edits.iter().map(|(_, _, root)| root.dir.as_str()));
    let original = files
        .iter()
        .filter(|f| dirs.iter().any(|d| path_is_under(&f.path, d)))
        .filter(|f| is_manifest_path(&f.path) || apps.values().any(|(file, _)| file == &f.path))
        .filter_map(|f| Some((f.path.clone(), String::from_utf8(f.content.clone()).ok()?)))
        .collect();
    let mut texts = Texts { original, edited: BTreeMap::new() };
    for (i, edit, root) in edits {
        let result = match &edit.change {
            EditChange::Image { container, image } => {
                let app = app_directories(&apps, [root.dir.as_str()]);
                set_app_image(&mut texts, &app, root, objects, edit, container, image)
            }
            EditChange::Annotation { key, value } => {
                set_app_annotation(&mut texts, root, objects, edit, key, value.as_deref())
            }
        };
        if let Err(e) = result {
            updated.failed.push((*i, e));
        }
    }
    updated.files = texts
        .edited
        .into_iter()
        .filter(|(path, text)| texts.original.get(path) != Some(text))
        .map(|(path, text)| FileChange::write(path, text))
        .collect();
    updated
}

/// Sets one container's image: in the app's own `images:` entry for it, else in the
/// `$imagepolicy` markers for the workload, else in a new entry of the app's kustomization.
fn set_app_image(
    texts: &mut Texts,
    app: &[String],
    root: &KustomizeRoot,
    objects: &[KubeObject],
    edit: &WorkloadEdit,
    container: &str,
    image: &ImageRef,
) -> Result<()> {
    let object = objects.iter().find(|o| o.id() == &edit.workload);
    let workload = object.and_then(|o| workloads_of(std::slice::from_ref(o)).into_iter().next());
    let current = workload
        .as_ref()
        .and_then(|w| w.container(container))
        .map(|c| c.image.clone())
        .ok_or_else(|| Error::not_found(format!("container {container} of {}", edit.workload)))?;
    let text = texts.get(&root.file)?.to_owned();
    let kustomization = parse_kustomization(&root.file, &text)?;
    let written_name = match current.domain() {
        Some(domain) => format!("{domain}/{}", current.path()),
        None => current.path().to_owned(),
    };
    let entry = find_image(&kustomization, &current).map(|e| e.name.clone());
    if entry.is_none() {
        let policy = format!("{}:{}", edit.workload.namespace().unwrap_or_default(), edit.workload.name());
        if set_markers(texts, app, &policy, image)? {
            return Ok(());
        }
    }
    let edited = set_image(&root.file, &text, entry.as_deref().unwrap_or(&written_name), image)?;
    texts.edited.insert(root.file.clone(), edited);
    Ok(())
}

/// The directory, in an app, of the patches policies are written into.
const POLICY_PATCHES: &str = "flux-patches";

/// Sets (or removes) a policy annotation of a workload of the app: in the app's own patch for
/// the workload, `flux-patches/<kind>-<name>.yaml`, which a `patches:` entry of the app's
/// kustomization applies to it by kind and name (as its resources name it, before the app's
/// `namePrefix`/`nameSuffix`); both are created on first use. Removing a policy the workload
/// gets from elsewhere (a base) writes `null`, which deletes it.
fn set_app_annotation(
    texts: &mut Texts,
    root: &KustomizeRoot,
    objects: &[KubeObject],
    edit: &WorkloadEdit,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    let object = objects
        .iter()
        .find(|o| o.id() == &edit.workload)
        .ok_or_else(|| Error::not_found(format!("workload {}", edit.workload)))?;
    let kustomization_text = texts.get(&root.file)?.to_owned();
    let kustomization = parse_kustomization(&root.file, &kustomization_text)?;
    let name = kustomization.name_before(object.name()).ok_or_else(|| {
        Error::invalid(
            Location::file(&root.file),
            format!(
                "{}: its name does not carry the app's namePrefix/nameSuffix; cannot target a patch",
                edit.workload
            ),
        )
    })?;
    let relative = format!("{POLICY_PATCHES}/{}-{name}.yaml", object.kind().to_lowercase());
    let path = crate::layout::join(&root.dir, &relative);
    // What the patch targets: the workload as the app's resources name it (kustomize selects it
    // by the `patches:` entry's target, in whatever namespace it has there).
    let mut body = object.to_value();
    if let Some(metadata) = body.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
        metadata.insert("name".into(), serde_json::Value::String(name.clone()));
        metadata.remove("namespace");
    }
    let patch = texts.get(&path).map(str::to_owned).unwrap_or_default();
    let in_patch = patched_annotation(&path, &patch, object.kind(), &name, key).is_some();
    let value = match value {
        // Kustomize turns a `null` annotation in a targeted patch into the string "null", so a
        // policy the workload gets from elsewhere (a base) is switched off by value, or refused.
        None if !in_patch && object.annotation(key).is_some() => Some(switched_off(&edit.workload, &root.file, key)?),
        other => other,
    };
    if value.is_none() {
        // Only the patch has it: taking it out of the patch is enough.
        if let Some(annotations) = body.pointer_mut("/metadata/annotations").and_then(serde_json::Value::as_object_mut)
        {
            annotations.remove(key);
        }
    }
    let target = KubeObject::from_value(body, object.origin().cloned())?;
    let patched = set_patch_annotation(&path, &patch, &target, key, value)?;
    texts.edited.insert(path, patched);
    let with_entry = add_patch(&root.file, &kustomization_text, &relative, object.kind(), &name)?;
    if with_entry != kustomization_text {
        texts.edited.insert(root.file.clone(), with_entry);
    }
    Ok(())
}

/// The value of annotation `key` in the patch for `kind`/`name` in the patch file `text`, if set.
fn patched_annotation(path: &str, text: &str, kind: &str, name: &str, key: &str) -> Option<String> {
    let file = flux_core::SourceFile { path: path.to_owned(), content: text.as_bytes().to_vec() };
    let manifests = flux_core::manifest::read_manifests(&[file], &Default::default()).ok()?;
    let patch = manifests.into_iter().find(|m| m.object.kind() == kind && m.object.name() == name)?;
    patch.object.annotation(key).map(str::to_owned)
}

/// The value that switches policy `key` off when it cannot be removed: `"false"` for
/// `automated` and `locked`, empty for a lock's message and user; other policies (tag filters)
/// must be removed where they are set.
fn switched_off(workload: &ResourceId, file: &str, key: &str) -> Result<&'static str> {
    match key.strip_prefix(PREFIX) {
        Some("automated" | "locked") => Ok("false"),
        Some("locked_msg" | "locked_user") => Ok(""),
        _ => Err(Error::invalid(
            Location::file(file),
            format!("{workload}: {key} is set in the app's resources (a base), not by Flux; remove it there"),
        )),
    }
}

/// Writes `image` into every marker for `policy` in the files of the app and the bases it uses.
/// Whether there was any.
fn set_markers(texts: &mut Texts, dirs: &[String], policy: &str, image: &ImageRef) -> Result<bool> {
    let paths: Vec<String> =
        texts.original.keys().filter(|p| dirs.iter().any(|d| path_is_under(p, d))).cloned().collect();
    let mut found = false;
    for path in paths {
        let text = texts.get(&path)?.to_owned();
        let Ok(markers) = image_markers(&path, &text) else { continue };
        if markers.iter().any(|m| m.policy == policy) {
            let edited = set_marker_images(&path, &text, policy, image)?;
            texts.edited.insert(path, edited);
            found = true;
        }
    }
    Ok(found)
}
