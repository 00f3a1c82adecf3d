//! Flux v1 patch files (`.flux.yaml` with `patchUpdated`): applying them to generated objects,
//! and writing image and annotation changes into them.
//!
//! A patch file holds YAML documents, each a partial object: `apiVersion`, `kind`,
//! `metadata.name` (and `metadata.namespace` for a namespaced target) plus the fields to
//! override. A patch applies to the generated object with the same API group, kind, name and
//! namespace; a patch that names no namespace applies to a cluster-scoped object or one in the
//! `default` namespace.
//!
//! # Merge rules
//!
//! A documented subset of Kubernetes' strategic merge patch:
//!
//! - mappings merge key by key, recursively; a `null` value deletes the key;
//! - lists of mappings under these keys merge item by item on a merge key, when every item of
//!   the patch's list has it: `name` for `containers`, `initContainers`, `ephemeralContainers`,
//!   `volumes`, `env` and `imagePullSecrets`; `mountPath` for `volumeMounts`; `containerPort`
//!   for `ports`. A patch item with `$patch: delete` removes the matching item; an item that
//!   matches none is appended;
//! - every other list, and every other value, is replaced;
//! - keys starting with `$` are directives, never copied into objects;
//! - `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` of the target stay.
//!
//! The editing functions keep the file's other documents byte for byte. They change a value in
//! place when the patch already holds it (as [`edit`](super::edit) does); otherwise they rewrite
//! the target's document from its data (losing that document's comments) or append one. Each
//! result is checked: applied to the target, it must give the target as patched before with
//! exactly the requested change.

use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::edit::{Change, Document, Edit, set_in};
use super::reader::{ManifestOptions, yaml_error};
use super::workloads::{ContainerLocator, ContainerManifest};
use super::yaml::{NodeKind, Step};
use crate::error::{Error, Location, Result};
use crate::image::ImageRef;
use crate::kinds::api_group;
use crate::object::KubeObject;
use crate::workload::pod_spec_path;

/// The lists merged item by item, and the key that identifies an item.
const MERGE_KEYS: [(&str, &str); 8] = [
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("volumes", "name"),
    ("env", "name"),
    ("imagePullSecrets", "name"),
    ("volumeMounts", "mountPath"),
    ("ports", "containerPort"),
];

/// One document of a patch file.
struct Patch {
    line: usize,
    body: Map<String, Value>,
}

/// Applies the patch file `text` to `objects`, returning them in the same order with their
/// origins.
///
/// # Errors
/// [`Error::InvalidInput`] naming `file` and the line: invalid YAML, a document that is not a
/// mapping with `apiVersion`, `kind` and `metadata.name`, or a patch that matches none of
/// `objects`. An empty or comment-only file patches nothing.
pub fn apply_patch_file(file: &str, text: &str, objects: Vec<KubeObject>) -> Result<Vec<KubeObject>> {
    let patches = parse_patches(file, text)?;
    let mut objects = objects;
    for patch in &patches {
        let i = objects.iter().position(|o| matches(&patch.body, o)).ok_or_else(|| {
            Error::invalid(
                Location::line(file, patch.line),
                format!("the patch for {} matches no generated object", describe(&patch.body)),
            )
        })?;
        objects[i] = patched(&objects[i], &patch.body)?;
    }
    Ok(objects)
}

/// Writes into the patch file `text` what makes `container` of `target` (the generated object,
/// before patching) run `image`: for a pod workload the container's `image`, by container name;
/// for a HelmRelease each part of the image at its value path.
///
/// # Errors
/// [`Error::InvalidInput`] naming `file` when the text is not a valid patch file, the image
/// cannot be expressed in the HelmRelease's values, or the result would not have exactly that
/// effect; [`Error::NotFound`] when the container is not in the patched target.
pub fn set_patch_image(
    file: &str,
    text: &str,
    target: &KubeObject,
    container: &ContainerManifest,
    image: &ImageRef,
) -> Result<String> {
    let before = patched_target(file, text, target)?;
    let invalid = |message: String| Error::invalid(Location::file(file), format!("{}: {message}", target.id()));
    let change = match &container.locator {
        ContainerLocator::Pod { field, .. } => {
            let spec = pod_spec_path(target.kind()).ok_or_else(|| invalid("not a pod workload".into()))?;
            if pod_container(&before, spec, field, &container.name).is_none() {
                return Err(Error::not_found(format!("container {} of {} in {file}", container.name, target.id())));
            }
            Requirement::PodImage { spec, field, name: &container.name, image: image.to_string() }
        }
        ContainerLocator::Helm(paths) => {
            let current = paths.read(&before).map_err(&invalid)?;
            let wanted =
                paths.parts_for(&current, image).map_err(|e| invalid(format!("image {}: {e}", container.name)))?;
            let mut values = vec![(paths.image.clone(), wanted.image)];
            values.extend(paths.tag.clone().zip(wanted.tag));
            values.extend(paths.registry.clone().zip(wanted.registry));
            // Parts that keep their value need not be in the patch.
            values.retain(|(path, value)| before.pointer(&keys(path)).and_then(Value::as_str) != Some(value));
            Requirement::Values(values)
        }
    };
    write_requirement(file, text, target, &before, &change)
}

/// Writes into the patch file `text` what sets (`Some`) or removes (`None`) the annotation `key`
/// of `target` (the generated object, before patching).
///
/// To remove an annotation the generated object has, the patch says `key: null`; one only the
/// patch adds is taken out of the patch (with `annotations:` when that empties it).
///
/// # Errors
/// [`Error::InvalidInput`] naming `file` when the text is not a valid patch file or the result
/// would not have exactly that effect.
pub fn set_patch_annotation(
    file: &str,
    text: &str,
    target: &KubeObject,
    key: &str,
    value: Option<&str>,
) -> Result<String> {
    let before = patched_target(file, text, target)?;
    let change = match value {
        Some(value) => Requirement::Annotation { key, value: Value::String(value.to_owned()) },
        None if target.annotation(key).is_some() => Requirement::Annotation { key, value: Value::Null },
        None => Requirement::Unannotated { key },
    };
    write_requirement(file, text, target, &before, &change)
}

/// What the target's patch document must say.
enum Requirement<'a> {
    /// The container `name` in the pod spec's `field` runs `image`.
    PodImage { spec: &'static [&'static str], field: &'a str, name: &'a str, image: String },
    /// Each path from the object's root holds its string.
    Values(Vec<(Vec<String>, String)>),
    /// `metadata.annotations.key` is `value` (a string, or `null` to delete it).
    Annotation { key: &'a str, value: Value },
    /// The patch does not mention the annotation `key`.
    Unannotated { key: &'a str },
}

impl Requirement<'_> {
    /// `object` (the patched target) as it must be afterwards.
    fn applied_to(&self, object: &KubeObject) -> Value {
        let mut value = object.to_value();
        match self {
            Requirement::PodImage { spec, field, name, image } => {
                let list = value.pointer_mut(&pointer(spec, field)).and_then(Value::as_array_mut);
                let item = list.into_iter().flatten().find(|c| c.get("name").and_then(Value::as_str) == Some(name));
                if let Some(Value::Object(item)) = item {
                    item.insert("image".into(), Value::String(image.clone()));
                }
            }
            Requirement::Values(values) => {
                for (path, v) in values {
                    set_in(&mut value, &keys(path), Value::String(v.clone()));
                }
            }
            Requirement::Annotation { key, value: Value::String(v) } => {
                set_in(&mut value, &["metadata", "annotations", key], Value::String(v.clone()));
            }
            Requirement::Annotation { key, .. } | Requirement::Unannotated { key } => {
                remove_annotation(&mut value, key);
            }
        }
        value
    }

    /// Changes the patch document `doc` (as data) to say what is required.
    fn write_into(&self, doc: &mut Value) {
        match self {
            Requirement::PodImage { spec, field, name, image } => {
                let mut path = spec.to_vec();
                path.push(field);
                let entry = serde_json::json!({ "name": name, "image": image });
                match doc.pointer_mut(&pointer(spec, field)) {
                    Some(Value::Array(list)) => {
                        match list.iter_mut().find(|c| c.get("name").and_then(Value::as_str) == Some(name)) {
                            Some(Value::Object(item)) => {
                                item.insert("image".into(), Value::String(image.clone()));
                            }
                            _ => list.push(entry),
                        }
                    }
                    _ => set_in(doc, &path, Value::Array(vec![entry])),
                }
            }
            Requirement::Values(values) => {
                for (path, v) in values {
                    set_in(doc, &keys(path), Value::String(v.clone()));
                }
            }
            Requirement::Annotation { key, value } => set_in(doc, &["metadata", "annotations", key], value.clone()),
            Requirement::Unannotated { key } => {
                let metadata = doc.get_mut("metadata").and_then(Value::as_object_mut);
                if let Some(metadata) = metadata {
                    let annotations = metadata.get_mut("annotations").and_then(Value::as_object_mut);
                    if annotations.is_some_and(|a| {
                        a.remove(*key);
                        a.is_empty()
                    }) {
                        metadata.remove("annotations");
                    }
                }
            }
        }
    }

    /// The in-place edit of patch document `index`, when the patch already holds the values.
    fn in_place(&self, doc: &Document<'_>, index: usize, label: &str) -> Option<Result<String>> {
        let json = doc.json.get(index)?;
        let change = |path: Vec<Step>, value: &str| Change { document: index, path, value: value.to_owned() };
        match self {
            Requirement::PodImage { spec, field, name, image } => {
                let list = json.pointer(&pointer(spec, field))?.as_array()?;
                let i = list.iter().position(|c| c.get("name").and_then(Value::as_str) == Some(name))?;
                list[i].get("image")?.as_str()?;
                let mut path: Vec<Step> = spec.iter().map(|k| Step::Key((*k).to_owned())).collect();
                path.extend([Step::Key((*field).to_owned()), Step::Index(i), Step::Key("image".into())]);
                Some(doc.set_scalars(vec![change(path, image)]))
            }
            Requirement::Values(values) => {
                let mut changes = Vec::new();
                for (path, value) in values {
                    let at: Vec<Step> = path.iter().map(|k| Step::Key(k.clone())).collect();
                    let pointer: String = path.iter().map(|k| format!("/{}", escape(k))).collect();
                    json.pointer(&pointer)?.as_str()?;
                    changes.push(change(at, value));
                }
                Some(doc.set_scalars(changes))
            }
            Requirement::Annotation { key, value: Value::String(value) } => {
                let metadata = doc.tree.documents.get(index)?.get("metadata")?;
                matches!(metadata.kind, NodeKind::Map { .. })
                    .then(|| doc.set_annotation_at(index, &[], label, key, Some(value)))
            }
            Requirement::Annotation { .. } => None,
            Requirement::Unannotated { key } => {
                json.pointer("/metadata/annotations")?.get(*key)?;
                Some(doc.set_annotation_at(index, &[], label, key, None))
            }
        }
    }
}

/// Writes `requirement` into the patch file and checks the result.
fn write_requirement(
    file: &str,
    text: &str,
    target: &KubeObject,
    before: &KubeObject,
    requirement: &Requirement<'_>,
) -> Result<String> {
    let expected = requirement.applied_to(before);
    let doc = Document::parse(file, text)?;
    let index = doc.json.iter().rposition(|d| d.as_object().is_some_and(|d| matches(d, target)));
    if expected == before.to_value() {
        return Ok(text.to_owned());
    }
    let label = target.id().to_string();
    let in_place = index.and_then(|i| requirement.in_place(&doc, i, &label)).and_then(Result::ok);
    let out = match in_place {
        Some(out) => out,
        None => rewrite(&doc, index, target, requirement)?,
    };
    let after = patched_target(file, &out, target)?;
    if after.to_value() != expected {
        return Err(Error::invalid(
            Location::file(file),
            format!("{label}: the patch could not be written to have exactly the intended effect"),
        ));
    }
    Ok(out)
}

/// Rewrites document `index` (or appends one for `target`) from its data with `requirement`
/// written in; the other documents stay byte for byte.
fn rewrite(
    doc: &Document<'_>,
    index: Option<usize>,
    target: &KubeObject,
    requirement: &Requirement<'_>,
) -> Result<String> {
    let text = doc.text;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut data = match index {
        Some(i) => doc.json[i].clone(),
        None => identity_of(target),
    };
    requirement.write_into(&mut data);
    let yaml = serde_saphyr::to_string(&Ordered(&data))
        .map_err(|e| doc.error(format!("{}: the patch could not be written: {e}", target.id())))?;
    let yaml = yaml.trim_end_matches('\n').replace('\n', eol);
    let mut expected = doc.json.clone();
    let edit = match index {
        Some(i) => {
            expected[i] = data;
            let root = &doc.tree.documents[i];
            let line_start = text[..root.start].rfind('\n').map_or(0, |n| n + 1);
            let inline = !text[line_start..root.start].trim().is_empty();
            let before = if inline { eol } else { "" };
            let after = if text[..root.end].ends_with('\n') { eol } else { "" };
            // A comment after the last value goes with the rest of the document's comments,
            // rather than end up on another line of the rewritten document.
            let line_end = text[root.end..].find(['\r', '\n']).map_or(text.len(), |i| root.end + i);
            let rest = text[root.end..line_end].trim_start();
            let end = if after.is_empty() && rest.starts_with('#') { line_end } else { root.end };
            // An indented document is rewritten from the start of its line, at column 0.
            let start = if inline { root.start } else { line_start };
            Edit { start, end, text: format!("{before}{yaml}{after}") }
        }
        None => {
            expected.push(data);
            let newline = if text.is_empty() || text.ends_with('\n') { "" } else { eol };
            let separator = if doc.json.is_empty() { "" } else { "---" };
            let separator = if separator.is_empty() { String::new() } else { format!("{separator}{eol}") };
            Edit { start: text.len(), end: text.len(), text: format!("{newline}{separator}{yaml}{eol}") }
        }
    };
    doc.apply_and_verify(vec![edit], &expected)
}

/// Keys written first, in this order, in every mapping of a rewritten document (the rest follow
/// in alphabetical order): the way Kubernetes objects are usually written.
const FIRST_KEYS: [&str; 5] = ["apiVersion", "kind", "metadata", "name", "namespace"];

/// A JSON value serialized with [`FIRST_KEYS`] first.
struct Ordered<'v>(&'v Value);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let rank = |k: &str| FIRST_KEYS.iter().position(|f| *f == k).unwrap_or(FIRST_KEYS.len());
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by_key(|(k, _)| rank(k));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k, &Ordered(v))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Ordered(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// A patch document naming `target` and nothing else.
fn identity_of(target: &KubeObject) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(target.name().to_owned()));
    if let Some(ns) = target.namespace() {
        metadata.insert("namespace".into(), Value::String(ns.to_owned()));
    }
    serde_json::json!({ "apiVersion": target.api_version(), "kind": target.kind(), "metadata": metadata })
}

/// `target` with every patch in `text` for it applied; patches for other objects are skipped.
fn patched_target(file: &str, text: &str, target: &KubeObject) -> Result<KubeObject> {
    let mut object = target.clone();
    for patch in parse_patches(file, text)?.iter().filter(|p| matches(&p.body, target)) {
        object = patched(&object, &patch.body)?;
    }
    Ok(object)
}

fn parse_patches(file: &str, text: &str) -> Result<Vec<Patch>> {
    let documents: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, ManifestOptions::default().yaml_options())
            .map_err(|e| yaml_error(file, &e))?;
    let mut patches = Vec::new();
    for document in documents {
        let line = document.referenced.line().max(1) as usize;
        let at = || Location::line(file, line);
        let body = match document.value {
            Value::Null => continue,
            Value::Object(body) => body,
            _ => return Err(Error::invalid(at(), "a patch must be a mapping")),
        };
        let name = body.get("metadata").and_then(|m| m.get("name"));
        for (what, value) in
            [("apiVersion", body.get("apiVersion")), ("kind", body.get("kind")), ("metadata.name", name)]
        {
            if value.and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                return Err(Error::invalid(at(), format!("a patch needs {what}")));
            }
        }
        patches.push(Patch { line, body });
    }
    Ok(patches)
}

/// Whether a patch document applies to `object`.
fn matches(patch: &Map<String, Value>, object: &KubeObject) -> bool {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let metadata = patch.get("metadata");
    let api_version = text(patch.get("apiVersion")).unwrap_or_default();
    let namespace = text(metadata.and_then(|m| m.get("namespace"))).filter(|ns| !ns.is_empty());
    api_group(&api_version) == object.group()
        && text(patch.get("kind")).is_some_and(|k| object.id().is_kind(&k))
        && text(metadata.and_then(|m| m.get("name"))).as_deref() == Some(object.name())
        && match namespace {
            Some(ns) => object.namespace() == Some(ns.as_str()),
            None => matches!(object.namespace(), None | Some("default")),
        }
}

/// `group/kind name[.namespace]` of a patch, for errors.
fn describe(patch: &Map<String, Value>) -> String {
    let text = |p: &str| Value::Object(patch.clone()).pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    let namespace = text("/metadata/namespace");
    let namespace = if namespace.is_empty() { String::new() } else { format!("{namespace}:") };
    format!("{namespace}{}/{}", text("/kind").to_ascii_lowercase(), text("/metadata/name"))
}

/// `object` with `patch` merged in; its identity stays.
fn patched(object: &KubeObject, patch: &Map<String, Value>) -> Result<KubeObject> {
    let mut body = object.body().clone();
    merge_map(&mut body, patch);
    body.insert("apiVersion".into(), Value::String(object.api_version().to_owned()));
    body.insert("kind".into(), Value::String(object.kind().to_owned()));
    let mut body = Value::Object(body);
    set_in(&mut body, &["metadata", "name"], Value::String(object.name().to_owned()));
    match object.namespace() {
        Some(ns) => set_in(&mut body, &["metadata", "namespace"], Value::String(ns.to_owned())),
        None => {
            body.get_mut("metadata").and_then(Value::as_object_mut).map(|m| m.remove("namespace"));
        }
    }
    KubeObject::from_value(body, object.origin().cloned())
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let merge_key = value.as_array().and_then(|items| merge_key(key, items));
        match (target.get_mut(key), value) {
            (Some(Value::Object(t)), Value::Object(p)) => merge_map(t, p),
            (Some(Value::Array(t)), Value::Array(p)) if merge_key.is_some() => {
                merge_list(t, p, merge_key.unwrap_or_default());
            }
            _ => {
                target.insert(key.clone(), cleaned(value));
            }
        }
    }
}

/// The merge key of the list `field` when every item of the patch's list has it.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let (_, key) = MERGE_KEYS.iter().find(|(f, _)| *f == field)?;
    items.iter().all(|i| i.get(key).is_some_and(|k| !k.is_null())).then_some(*key)
}

fn merge_list(target: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key);
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            target.retain(|t| t.get(key) != id);
            continue;
        }
        match (target.iter_mut().find(|t| t.get(key) == id), item) {
            (Some(Value::Object(t)), Value::Object(p)) => merge_map(t, p),
            _ => target.push(cleaned(item)),
        }
    }
}

/// A patch value as it goes into an object: without `null`s and `$` directives.
fn cleaned(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), cleaned(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items.iter().filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete")).map(cleaned).collect(),
        ),
        other => other.clone(),
    }
}

/// The container `name` in `field` of the pod spec at `spec`.
fn pod_container<'o>(object: &'o KubeObject, spec: &[&str], field: &str, name: &str) -> Option<&'o Value> {
    let list = object.pointer(spec)?.get(field)?.as_array()?;
    list.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

fn remove_annotation(object: &mut Value, key: &str) {
    if let Some(a) = object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove(key);
    }
}

/// A JSON pointer to `field` of the pod spec at `spec`.
fn pointer(spec: &[&str], field: &str) -> String {
    spec.iter().chain([&field]).map(|k| format!("/{}", escape(k))).collect()
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn keys(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(target: Value, patch: Value) -> Value {
        let (Value::Object(mut t), Value::Object(p)) = (target, patch) else { panic!("mappings") };
        merge_map(&mut t, &p);
        Value::Object(t)
    }

    #[test]
    fn lists_merge_only_when_every_patch_item_has_the_key() {
        let target = json!({"ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}]});
        let by_key = merged(target.clone(), json!({"ports": [{"containerPort": 80, "protocol": "TCP"}]}));
        assert_eq!(
            by_key,
            json!({"ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 9090}]})
        );
        let replaced = merged(target, json!({"ports": [{"containerPort": 81}, {"name": "no-key"}]}));
        assert_eq!(replaced, json!({"ports": [{"containerPort": 81}, {"name": "no-key"}]}));
        // Unknown lists are replaced even when their items have names.
        let other = merged(json!({"rules": [{"name": "a", "x": 1}]}), json!({"rules": [{"name": "a"}]}));
        assert_eq!(other, json!({"rules": [{"name": "a"}]}));
    }

    #[test]
    fn directives_and_nulls_never_reach_objects() {
        let patch = json!({"spec": {"$patch": "replace", "a": null, "b": {"c": null, "d": 1},
            "containers": [{"name": "x", "$patch": "delete"}, {"name": "y", "env": null}]}});
        assert_eq!(merged(json!({}), patch), json!({"spec": {"b": {"d": 1}, "containers": [{"name": "y"}]}}));
    }
}
