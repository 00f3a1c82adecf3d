//! Lossless edits of YAML text: each function changes the bytes of the values it targets and
//! nothing else, or fails and changes nothing.
//!
//! A value is replaced within the exact byte span of the old scalar, in the old quote style
//! (plain, single- or double-quoted) unless the new value cannot be written in it, then
//! double-quoted. Comments, blank lines, key order, flow and block style, block scalars, CRLF
//! line endings, a BOM and other documents stay as they are. After every edit the text is parsed
//! again and must equal the old one with exactly the intended values changed; otherwise the
//! function returns an error.
//!
//! Values behind an alias, a merge key or an anchor, and block scalars (`|`, `>`), are not
//! edited: the error says so.
//!
//! Every function takes the file's path, only to name it in errors.

use serde_json::Value;
use serde_saphyr::granit_parser::ScalarStyle;

use super::helm::{helm_images, is_helm_release};
use super::reader::ManifestOptions;
use super::yaml::{self, Node, NodeKind, Step, Tree};
use crate::error::{Error, Location, Result};
use crate::image::ImageRef;
use crate::object::KubeObject;
use crate::resource::ResourceId;
use crate::workload::{CONTAINER_FIELDS, pod_spec_path};

/// Sets the image of `container` in `workload`. For a HelmRelease, `container` is an image name
/// as [`workloads`](super::workloads) reports it, and each part of the image (registry,
/// repository, tag) is written where it is kept.
///
/// # Errors
/// [`Error::NotFound`] when the workload or container is not in the text;
/// [`Error::InvalidInput`] naming the file when the text is not valid YAML, the image is written
/// in a way that cannot be edited in place, or the edit would change anything else.
pub fn set_container_image(
    file: &str,
    text: &str,
    workload: &ResourceId,
    container: &str,
    image: &ImageRef,
) -> Result<String> {
    let doc = Document::parse(file, text)?;
    let (index, base) = doc.find_workload(workload)?;
    let object = doc.json_at(index, &base);
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let paths = match pod_spec_path(kind) {
        Some(spec) => {
            if container_count(&object, spec, container) > 1 {
                return Err(doc.error(format!(
                    "{workload} has more than one container named {container}; container names must be unique"
                )));
            }
            vec![(pod_image_path(&object, spec, container), image.to_string())]
        }
        None => doc.helm_image_paths(object, workload, container, image)?,
    };
    let mut changes = Vec::new();
    for (path, value) in paths {
        let path = path.ok_or_else(|| Error::not_found(format!("container {container} of {workload} in {file}")))?;
        changes.push(Change { document: index, path: base.iter().cloned().chain(path).collect(), value });
    }
    doc.set_scalars(changes)
}

/// How many containers and init containers are named `container` (the API server refuses
/// more than one; an edit by name would pick one of them).
fn container_count(object: &Value, spec: &[&str], container: &str) -> usize {
    let Some(pod) = spec.iter().try_fold(object, |v, k| v.get(k)) else { return 0 };
    CONTAINER_FIELDS
        .iter()
        .filter_map(|field| pod.get(field)?.as_array())
        .flatten()
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(container))
        .count()
}

/// The path of `container`'s image in a pod workload, from the object's root.
fn pod_image_path(object: &Value, spec: &[&str], container: &str) -> Option<Vec<Step>> {
    let pod = spec.iter().try_fold(object, |v, k| v.get(k))?;
    CONTAINER_FIELDS.iter().find_map(|field| {
        let list = pod.get(field)?.as_array()?;
        let i = list.iter().position(|c| c.get("name").and_then(Value::as_str) == Some(container))?;
        let mut path: Vec<Step> = spec.iter().map(|k| Step::Key((*k).to_owned())).collect();
        path.extend([Step::Key((*field).to_owned()), Step::Index(i), Step::Key("image".to_owned())]);
        Some(path)
    })
}

/// Sets the string at `path` (keys from the object's root, e.g.
/// `["spec", "values", "image", "tag"]`) in `workload`: for HelmRelease values and other
/// fields automation owns.
///
/// # Errors
/// As [`set_container_image`]; the value must already exist and be a scalar.
pub fn set_value(file: &str, text: &str, workload: &ResourceId, path: &[&str], value: &str) -> Result<String> {
    let doc = Document::parse(file, text)?;
    let (index, base) = doc.find_workload(workload)?;
    let path = base.into_iter().chain(path.iter().map(|k| Step::Key((*k).to_owned()))).collect();
    doc.set_scalars(vec![Change { document: index, path, value: value.to_owned() }])
}

/// Sets (`Some`) or removes (`None`) the annotation `key` of `workload`.
///
/// A new annotation goes after the last existing one, with their indentation; when the object
/// has no `metadata.annotations`, it is added after the last field of `metadata`, indented as
/// `metadata`'s fields are. Removing the last annotation of a block mapping removes
/// `annotations:` too. Removing an annotation that is not there, or setting one to the value it
/// has, returns the text unchanged.
///
/// # Errors
/// As [`set_container_image`]; also when `metadata` or `metadata.annotations` is not a mapping
/// written in the text.
pub fn set_annotation(file: &str, text: &str, workload: &ResourceId, key: &str, value: Option<&str>) -> Result<String> {
    let doc = Document::parse(file, text)?;
    let (index, base) = doc.find_workload(workload)?;
    doc.set_annotation_at(index, &base, &workload.to_string(), key, value)
}

/// Where a workload's annotations are, or would go, in the text.
struct AnnotationPlace<'t> {
    text: &'t str,
    root: &'t Node,
    metadata: &'t Node,
    eol: &'static str,
}

impl AnnotationPlace<'_> {
    /// `metadata.annotations`: its key node and its value node.
    fn field(&self) -> Option<&(Node, Node)> {
        self.metadata.entry("annotations")
    }

    /// The edit that sets `key` to `value`.
    fn set(&self, key: &str, value: &str) -> Option<Edit> {
        let Some((field_key, annotations)) = self.field() else { return Some(self.create(key, value)) };
        if is_empty_value(annotations) {
            // `annotations:` with nothing after it: the entry goes on the next line.
            let pad = " ".repeat(field_key.col + indent_unit(self.root, self.metadata));
            let entry = format!("{pad}{}: {}{}", render_key(key, self.metadata), quoted(value), self.eol);
            return Some(insert_after_line(self.text, field_key.end, &entry, self.eol));
        }
        let NodeKind::Map { flow, entries, .. } = &annotations.kind else { return None };
        if let Some((_, node)) = entries.iter().find(|(k, _)| k.scalar() == Some(key)) {
            let replacement = render_scalar(node, value, *flow)?;
            return Some(Edit { start: node.start, end: node.end, text: replacement });
        }
        let entry = format!("{}: {}", render_key(key, annotations), quoted(value));
        if *flow {
            Some(insert_flow(annotations, &entry))
        } else {
            let pad = " ".repeat(annotations.entries_indent());
            Some(insert_block(self.text, annotations, &format!("{pad}{entry}{}", self.eol), self.eol))
        }
    }

    /// The edit that adds `metadata.annotations` holding `key: value`.
    fn create(&self, key: &str, value: &str) -> Edit {
        let entry = format!("{}: {}", render_key(key, self.metadata), quoted(value));
        if let NodeKind::Map { flow: true, .. } = self.metadata.kind {
            return insert_flow(self.metadata, &format!("{}: {{{entry}}}", render_key("annotations", self.metadata)));
        }
        let unit = " ".repeat(indent_unit(self.root, self.metadata));
        let pad = " ".repeat(self.metadata.entries_indent());
        let eol = self.eol;
        insert_block(self.text, self.metadata, &format!("{pad}annotations:{eol}{pad}{unit}{entry}{eol}"), eol)
    }

    /// Whether removing the last annotation removes the `annotations:` field too (block style).
    fn removing_empties_the_field(&self) -> bool {
        self.field().is_some_and(|(_, a)| matches!(a.kind, NodeKind::Map { flow: false, .. }))
    }

    /// The edit that removes `key`, which is there.
    fn remove(&self, key: &str) -> Option<Edit> {
        let (field_key, annotations) = self.field()?;
        let NodeKind::Map { flow, entries, .. } = &annotations.kind else { return None };
        let i = entries.iter().position(|(k, _)| k.scalar() == Some(key))?;
        if *flow {
            Some(remove_flow(entries, i))
        } else if entries.len() == 1 {
            remove_lines(self.text, field_key.start, annotations.end)
        } else {
            remove_lines(self.text, entries[i].0.start, entries[i].1.end)
        }
    }
}

/// Which part of an image a marker comment stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerField {
    /// `ns:name`: the whole reference.
    Image,
    /// `ns:name:tag`: the tag.
    Tag,
    /// `ns:name:name`: the reference without tag.
    Name,
}

/// A Flux v2 image policy marker, `# {"$imagepolicy": "ns:name[:tag|:name]"}`, on a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMarker {
    /// The policy, `namespace:name`.
    pub policy: String,
    /// The part of the image it holds.
    pub field: MarkerField,
    /// The 1-based line.
    pub line: usize,
    /// The scalar's current value.
    pub value: String,
}

/// Every image policy marker in `text`, in file order.
///
/// # Errors
/// [`Error::InvalidInput`] at the marker's line when it is not on a scalar value or names no
/// `namespace:name` policy, and when the text is not valid YAML.
pub fn image_markers(file: &str, text: &str) -> Result<Vec<ImageMarker>> {
    Ok(Document::parse(file, text)?.markers()?.into_iter().map(|(marker, _)| marker).collect())
}

/// Writes `image` into every scalar marked for `policy` (`namespace:name`): the whole reference,
/// its tag or its name, as each marker says. Returns the text unchanged if nothing is marked.
///
/// # Errors
/// As [`image_markers`]; also when a `:tag` marker is asked to hold an image without a tag.
pub fn set_marker_images(file: &str, text: &str, policy: &str, image: &ImageRef) -> Result<String> {
    let doc = Document::parse(file, text)?;
    let mut changes = Vec::new();
    for (marker, change) in doc.markers()? {
        if marker.policy != policy {
            continue;
        }
        let value = match marker.field {
            MarkerField::Image => image.to_string(),
            MarkerField::Tag => image
                .tag()
                .ok_or_else(|| Error::invalid(Location::line(file, marker.line), format!("{image} has no tag")))?
                .to_owned(),
            MarkerField::Name => match image.domain() {
                Some(domain) => format!("{domain}/{}", image.path()),
                None => image.path().to_owned(),
            },
        };
        changes.push(Change { value, ..change });
    }
    doc.set_scalars(changes)
}

/// One scalar to set: where, and its new value.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub(super) document: usize,
    pub(super) path: Vec<Step>,
    pub(super) value: String,
}

/// Bytes to put in place of `start..end`.
#[derive(Debug, Clone)]
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: String,
}

/// A file's text, its documents as data and its syntax tree.
pub(super) struct Document<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) json: Vec<Value>,
    pub(super) tree: Tree,
}

impl<'a> Document<'a> {
    pub(super) fn parse(file: &'a str, text: &'a str) -> Result<Self> {
        let json = parse_json(file, text)?;
        let tree = yaml::parse(text)
            .map_err(|e| Error::invalid(Location::line(file, e.line.max(1)), format!("invalid YAML: {}", e.message)))?;
        if tree.documents.len() != json.len() {
            return Err(Error::invalid(Location::file(file), "documents could not be matched to the text"));
        }
        Ok(Document { file, text, json, tree })
    }

    /// [`set_annotation`] on the object at `base` in document `index`; `label` names it in errors.
    pub(super) fn set_annotation_at(
        &self,
        index: usize,
        base: &[Step],
        label: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<String> {
        let text = self.text;
        let mut expected = self.json.clone();
        let object =
            step_into(&mut expected[index], base).ok_or_else(|| self.error("workload not found in its document"))?;
        let current = object.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str);
        if current == value {
            return Ok(text.to_owned());
        }
        let root = self.node(index, base)?;
        let metadata = root.get("metadata").filter(|m| matches!(m.kind, NodeKind::Map { .. }));
        let metadata = metadata.ok_or_else(|| self.error(format!("{label}: metadata is not a mapping in the text")))?;
        let place = AnnotationPlace { text, root, metadata, eol: if text.contains("\r\n") { "\r\n" } else { "\n" } };
        let edit = match value {
            Some(value) => {
                set_in(object, &["metadata", "annotations", key], Value::String(value.to_owned()));
                place.set(key, value)
            }
            None => {
                let annotations = object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut);
                let emptied = annotations.is_some_and(|a| {
                    a.remove(key);
                    a.is_empty()
                });
                if emptied && place.removing_empties_the_field() {
                    object.get_mut("metadata").and_then(Value::as_object_mut).map(|m| m.remove("annotations"));
                }
                place.remove(key)
            }
        };
        let edit = edit.ok_or_else(|| self.error(format!("{label}: annotation {key} cannot be edited in place")))?;
        self.apply_and_verify(vec![edit], &expected)
    }

    pub(super) fn error(&self, message: impl Into<String>) -> Error {
        Error::invalid(Location::file(self.file), message)
    }

    /// The document and path of `workload`; a namespace left out in the text matches any.
    fn find_workload(&self, workload: &ResourceId) -> Result<(usize, Vec<Step>)> {
        let mut exact = Vec::new();
        let mut defaulted = Vec::new();
        for (index, doc) in self.json.iter().enumerate() {
            let items = match doc.get("items").and_then(Value::as_array) {
                Some(items) if doc.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) => items
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (vec![Step::Key("items".into()), Step::Index(i)], o))
                    .collect(),
                _ => vec![(Vec::new(), doc)],
            };
            for (base, object) in items {
                let text = |p: &str| object.pointer(p).and_then(Value::as_str);
                if !text("/kind").is_some_and(|k| workload.is_kind(k))
                    || text("/metadata/name") != Some(workload.name())
                {
                    continue;
                }
                match (text("/metadata/namespace").filter(|ns| !ns.is_empty()), workload.namespace()) {
                    (Some(ns), Some(want)) if ns == want => exact.push((index, base)),
                    (Some(_), None) | (None, _) => defaulted.push((index, base)),
                    (Some(_), Some(_)) => {}
                }
            }
        }
        let candidates = if exact.is_empty() { defaulted } else { exact };
        match candidates.len() {
            1 => Ok(candidates.into_iter().next().unwrap_or_default()),
            0 => Err(Error::not_found(format!("{workload} in {}", self.file))),
            _ => Err(self.error(format!("{workload} is defined more than once"))),
        }
    }

    /// The paths and new values of a HelmRelease image's parts; `None` paths when `image_name`
    /// is not one of its images.
    fn helm_image_paths(
        &self,
        object: Value,
        workload: &ResourceId,
        image_name: &str,
        image: &ImageRef,
    ) -> Result<Vec<(Option<Vec<Step>>, String)>> {
        let object = KubeObject::from_value(object, None)?;
        if !is_helm_release(&object) {
            return Err(self.error(format!("{workload} is not a workload")));
        }
        let images = helm_images(&object).map_err(|errors| {
            let first = errors.first().map(|e| format!("{}: {}", e.annotation, e.message)).unwrap_or_default();
            self.error(format!("{workload}: {first}"))
        })?;
        let Some(paths) = images.get(image_name) else { return Ok(vec![(None, String::new())]) };
        let current = paths.read(&object).map_err(|e| self.error(format!("{workload}: {e}")))?;
        let wanted =
            paths.parts_for(&current, image).map_err(|e| self.error(format!("{workload}: image {image_name}: {e}")))?;
        let steps = |keys: &Vec<String>| Some(keys.iter().map(|k| Step::Key(k.clone())).collect());
        let parts = [
            (Some(&paths.image), Some(wanted.image)),
            (paths.tag.as_ref(), wanted.tag),
            (paths.registry.as_ref(), wanted.registry),
        ];
        Ok(parts.into_iter().filter_map(|(path, value)| Some((steps(path?), value?))).collect())
    }

    fn json_at(&self, index: usize, path: &[Step]) -> Value {
        let mut doc = self.json[index].clone();
        step_into(&mut doc, path).map(|v| v.take()).unwrap_or(Value::Null)
    }

    pub(super) fn node(&self, index: usize, path: &[Step]) -> Result<&Node> {
        self.tree.documents[index]
            .at(path)
            .ok_or_else(|| self.error(format!("{} is behind an alias or merge key", describe(path))))
    }

    /// Sets each scalar, verifying that nothing else changed.
    pub(super) fn set_scalars(&self, changes: Vec<Change>) -> Result<String> {
        let mut expected = self.json.clone();
        let mut edits = Vec::new();
        for change in changes {
            let target = step_into(&mut expected[change.document], &change.path)
                .ok_or_else(|| self.error(format!("{} does not exist", describe(&change.path))))?;
            if target.as_str() == Some(change.value.as_str()) {
                continue;
            }
            *target = Value::String(change.value.clone());
            let node = self.node(change.document, &change.path)?;
            let flow = self.in_flow(change.document, &change.path);
            let text = render_scalar(node, &change.value, flow).ok_or_else(|| {
                self.error(format!("{} is not a plain or quoted scalar written in place", describe(&change.path)))
            })?;
            edits.push(Edit { start: node.start, end: node.end, text });
        }
        if edits.is_empty() {
            return Ok(self.text.to_owned());
        }
        self.apply_and_verify(edits, &expected)
    }

    /// Whether the node at `path` sits inside a flow collection.
    fn in_flow(&self, document: usize, path: &[Step]) -> bool {
        (0..path.len()).any(|n| {
            self.tree.documents[document].at(&path[..n]).is_some_and(|node| {
                matches!(node.kind, NodeKind::Map { flow: true, .. } | NodeKind::Seq { flow: true, .. })
            })
        })
    }

    pub(super) fn apply_and_verify(&self, mut edits: Vec<Edit>, expected: &[Value]) -> Result<String> {
        edits.sort_by_key(|e| e.start);
        let mut out = String::with_capacity(self.text.len() + 64);
        let mut at = 0;
        for edit in &edits {
            if edit.start < at || edit.end > self.text.len() {
                return Err(self.error("overlapping edits"));
            }
            out.push_str(&self.text[at..edit.start]);
            out.push_str(&edit.text);
            at = edit.end;
        }
        out.push_str(&self.text[at..]);
        let actual =
            parse_json(self.file, &out).map_err(|e| self.error(format!("the edit would break the file: {e}")))?;
        if actual != expected {
            let at = first_difference(&actual, expected).unwrap_or_default();
            return Err(self.error(format!(
                "the edit would also change {at} (through an anchor or merge key); the file is left alone"
            )));
        }
        Ok(out)
    }

    /// The markers with the change that sets each one's scalar.
    fn markers(&self) -> Result<Vec<(ImageMarker, Change)>> {
        let mut scalars = Vec::new();
        for (document, root) in self.tree.documents.iter().enumerate() {
            let mut found = Vec::new();
            root.scalars(&mut Vec::new(), &mut found);
            scalars.extend(found.into_iter().map(|(path, node)| (document, path, node)));
        }
        let mut markers = Vec::new();
        for comment in &self.tree.comments {
            let Some(policy) = marker_policy(&comment.text) else { continue };
            let at = Location::line(self.file, comment.line);
            let (policy, field) = match policy.split(':').collect::<Vec<_>>()[..] {
                [ns, name] if !ns.is_empty() && !name.is_empty() => (policy.clone(), MarkerField::Image),
                [ns, name, "tag"] if !ns.is_empty() && !name.is_empty() => (format!("{ns}:{name}"), MarkerField::Tag),
                [ns, name, "name"] if !ns.is_empty() && !name.is_empty() => (format!("{ns}:{name}"), MarkerField::Name),
                _ => {
                    return Err(Error::invalid(
                        at,
                        format!("image policy marker {policy:?} is not namespace:name[:tag|:name]"),
                    ));
                }
            };
            let scalar = scalars
                .iter()
                .filter(|(_, _, node)| node.line == comment.line && node.end <= comment.start)
                .max_by_key(|(_, _, node)| node.end);
            let Some((document, path, node)) = scalar else {
                return Err(Error::invalid(at, "image policy marker is not on a line with a scalar value"));
            };
            let value = node.scalar().unwrap_or_default().to_owned();
            let change = Change { document: *document, path: path.clone(), value: value.clone() };
            markers.push((ImageMarker { policy, field, line: comment.line, value }, change));
        }
        Ok(markers)
    }
}

impl Node {
    /// The column of a mapping's keys.
    pub(super) fn entries_indent(&self) -> usize {
        match &self.kind {
            NodeKind::Map { entries, .. } => entries.first().map_or(self.col, |(k, _)| k.col),
            _ => self.col,
        }
    }
}

/// The policy a comment marks, if it is a `{"$imagepolicy": "..."}` marker.
fn marker_policy(comment: &str) -> Option<String> {
    let text = comment.trim();
    if !text.starts_with('{') || !text.contains("$imagepolicy") {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    value.get("$imagepolicy")?.as_str().map(str::to_owned)
}

pub(super) fn parse_json(file: &str, text: &str) -> Result<Vec<Value>> {
    serde_saphyr::from_multiple_with_options(text, ManifestOptions::default().yaml_options())
        .map_err(|e| super::reader::yaml_error(file, &e))
}

/// Where two lists of documents first differ: `document N: a.b.0`.
fn first_difference(actual: &[Value], expected: &[Value]) -> Option<String> {
    fn walk(a: &Value, b: &Value, path: &mut Vec<Step>) -> bool {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) if x.len() == y.len() => x.iter().any(|(k, v)| {
                path.push(Step::Key(k.clone()));
                let differs = y.get(k).is_none_or(|w| walk(v, w, path));
                if !differs {
                    path.pop();
                }
                differs
            }),
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                x.iter().zip(y).enumerate().any(|(i, (v, w))| {
                    path.push(Step::Index(i));
                    let differs = walk(v, w, path);
                    if !differs {
                        path.pop();
                    }
                    differs
                })
            }
            _ => a != b,
        }
    }
    if actual.len() != expected.len() {
        return Some("the number of documents".to_owned());
    }
    actual.iter().zip(expected).enumerate().find_map(|(n, (a, b))| {
        let mut path = Vec::new();
        walk(a, b, &mut path).then(|| format!("document {n}: {}", describe(&path)))
    })
}

pub(super) fn describe(path: &[Step]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => i.to_string(),
        })
        .collect();
    parts.join(".")
}

pub(super) fn step_into<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.as_object_mut()?.get_mut(k),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// Sets `value` at `keys`, creating mappings on the way.
pub(super) fn set_in(object: &mut Value, keys: &[&str], value: Value) {
    let Some((last, parents)) = keys.split_last() else { return };
    let mut at = object;
    for key in parents {
        let Some(map) = at.as_object_mut() else { return };
        at = map.entry((*key).to_owned()).or_insert_with(|| Value::Object(Default::default()));
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.insert((*last).to_owned(), value);
    }
}

/// `value` written in `node`'s style, or double-quoted when that style cannot hold it; `None`
/// for nodes that are not plain or quoted scalars, or carry an anchor or tag.
pub(super) fn render_scalar(node: &Node, value: &str, flow: bool) -> Option<String> {
    let NodeKind::Scalar { style, decorated: false, .. } = &node.kind else { return None };
    match style {
        ScalarStyle::Plain if plain_is_safe(value, flow) => Some(value.to_owned()),
        ScalarStyle::SingleQuoted if !value.contains(['\n', '\r']) => Some(format!("'{}'", value.replace('\'', "''"))),
        ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Some(quoted(value)),
        _ => None,
    }
}

/// The file's indentation step, as `metadata`'s fields are indented under `metadata:` (at
/// least 2).
fn indent_unit(root: &Node, metadata: &Node) -> usize {
    let parent = root.entry("metadata").map_or(0, |(k, _)| k.col);
    metadata.entries_indent().saturating_sub(parent).max(2)
}

/// Whether a block value is left empty (`key:` and nothing else: null).
pub(super) fn is_empty_value(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Scalar { style: ScalarStyle::Plain, decorated: false, .. } if node.start == node.end)
}

/// A double-quoted YAML scalar (JSON's string escapes are YAML's).
pub(super) fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{}\"", value.escape_default()))
}

/// A new key for `map`: double-quoted if its keys are (as in JSON files) or if it must be.
pub(super) fn render_key(key: &str, map: &Node) -> String {
    let siblings_quoted = match &map.kind {
        NodeKind::Map { entries, .. } => entries
            .first()
            .is_some_and(|(k, _)| matches!(k.kind, NodeKind::Scalar { style: ScalarStyle::DoubleQuoted, .. })),
        _ => false,
    };
    if !siblings_quoted && plain_is_safe(key, true) { key.to_owned() } else { quoted(key) }
}

/// Whether `value` reads back as the same string when written plain.
fn plain_is_safe(value: &str, flow: bool) -> bool {
    const INDICATORS: &[char] =
        &['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`'];
    if value.is_empty()
        || value.starts_with(INDICATORS)
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
        || value.ends_with(':')
        || value.contains(": ")
        || value.contains(" #")
        || value.contains(|c: char| c.is_control())
        || (flow && value.contains([',', '[', ']', '{', '}']))
    {
        return false;
    }
    // Numbers, booleans, nulls and the like are not strings when plain.
    matches!(serde_saphyr::from_str::<Value>(&format!("k: {value}")), Ok(Value::Object(m)) if m.get("k") == Some(&Value::String(value.to_owned())))
}

/// Inserts a line (with its end) after the last entry of a block mapping.
fn insert_block(text: &str, map: &Node, line: &str, eol: &str) -> Edit {
    let last_end = match &map.kind {
        NodeKind::Map { entries, .. } => entries.last().map_or(map.end, |(_, v)| v.end),
        _ => map.end,
    };
    insert_after_node(text, last_end, line, eol)
}

/// Inserts a line (with its end) on the line after the one where a node ending at `last_end` ends.
pub(super) fn insert_after_node(text: &str, last_end: usize, line: &str, eol: &str) -> Edit {
    // A block scalar's span already ends at the start of the next line.
    let at = if text[..last_end].ends_with('\n') {
        last_end
    } else {
        text[last_end..].find('\n').map_or(text.len(), |i| last_end + i + 1)
    };
    let prefix = if at == text.len() && !text.ends_with('\n') { eol } else { "" };
    Edit { start: at, end: at, text: format!("{prefix}{line}") }
}

/// Inserts `line` (with its end) after the line holding byte `at`.
fn insert_after_line(text: &str, at: usize, line: &str, eol: &str) -> Edit {
    match text[at..].find('\n') {
        Some(i) => Edit { start: at + i + 1, end: at + i + 1, text: line.to_owned() },
        None => Edit { start: text.len(), end: text.len(), text: format!("{eol}{line}") },
    }
}

/// Inserts `key: value` into a flow mapping.
fn insert_flow(map: &Node, entry: &str) -> Edit {
    match &map.kind {
        NodeKind::Map { entries, close: Some(close), .. } => match entries.last() {
            Some((_, v)) => Edit { start: v.end, end: v.end, text: format!(", {entry}") },
            None => Edit { start: *close, end: *close, text: entry.to_owned() },
        },
        _ => Edit { start: map.end, end: map.end, text: String::new() },
    }
}

/// Removes entry `i` of a flow mapping with its comma.
fn remove_flow(entries: &[(Node, Node)], i: usize) -> Edit {
    if i > 0 {
        Edit { start: entries[i - 1].1.end, end: entries[i].1.end, text: String::new() }
    } else if let Some((next, _)) = entries.get(1) {
        Edit { start: entries[0].0.start, end: next.start, text: String::new() }
    } else {
        Edit { start: entries[0].0.start, end: entries[0].1.end, text: String::new() }
    }
}

/// Removes the whole lines from the one holding `start` to the one holding `end`, if nothing
/// but blanks precedes `start` on its line and nothing but blanks or a comment follows `end`.
pub(super) fn remove_lines(text: &str, start: usize, end: usize) -> Option<Edit> {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..start].chars().all(|c| c == ' ' || c == '\t') {
        return None;
    }
    let end = if text[..end].ends_with('\n') {
        end
    } else {
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        let rest = text[end..line_end].trim();
        if !(rest.is_empty() || rest.starts_with('#')) {
            return None;
        }
        line_end
    };
    Some(Edit { start: line_start, end, text: String::new() })
}
