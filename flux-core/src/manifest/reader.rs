//! Parsing a revision's manifest files into Kubernetes objects.

use std::collections::HashMap;

use serde_json::Value;
use serde_saphyr::Spanned;

use super::errors::ManifestErrors;
use crate::error::Location;
use crate::kinds::{Scope, api_group, builtin_scope};
use crate::object::KubeObject;
use crate::resource::ResourceId;
use crate::source::{SourceFile, normalize_path};

/// Limits and defaults for [`read_manifests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestOptions {
    /// The namespace of namespaced objects that name none (`default`).
    pub default_namespace: String,
    /// Files larger than this are an error (4 MiB).
    pub max_file_bytes: usize,
    /// The most YAML events aliases may replay in one file, against alias bombs (100,000).
    pub max_alias_expansion: usize,
    /// The most documents in one file (10,000).
    pub max_documents: usize,
    /// The deepest nesting of mappings and sequences (64).
    pub max_depth: usize,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            default_namespace: "default".to_owned(),
            max_file_bytes: 4 << 20,
            max_alias_expansion: 100_000,
            max_documents: 10_000,
            max_depth: 64,
        }
    }
}

impl ManifestOptions {
    /// The serde-saphyr options these limits stand for.
    pub(crate) fn yaml_options(&self) -> serde_saphyr::Options {
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        options.alias_limits.max_total_replayed_events = self.max_alias_expansion;
        if let Some(budget) = options.budget.as_mut() {
            budget.max_documents = self.max_documents;
            budget.max_depth = self.max_depth;
        }
        options
    }
}

/// One object read from a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The object; its origin is the file and line it starts at, and a namespaced object that
    /// names no namespace has the default one filled in.
    pub object: KubeObject,
    /// The file, relative to the repository root.
    pub file: String,
    /// The index of its document among the file's non-empty documents (objects flattened out
    /// of a `List` share their list's index).
    pub document: usize,
}

impl Manifest {
    /// The object's id.
    pub fn id(&self) -> &ResourceId {
        self.object.id()
    }

    /// The file and line the object starts at.
    pub fn location(&self) -> Location {
        self.object.origin().cloned().unwrap_or_else(|| Location::file(&self.file))
    }
}

/// Whether a path names a manifest file: `*.yaml`, `*.yml` or `*.json`, in any case.
pub fn is_manifest_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".yaml", ".yml", ".json"].iter().any(|ext| lower.ends_with(ext))
}

/// Reads every object in `files`, sorted by file then document.
///
/// Files that are not manifests (see [`is_manifest_path`]) are ignored. Multi-document files
/// are split, `List` kinds (`kind: List` and any `*List` with `items`) are flattened and empty
/// documents are skipped. Namespaced objects without a namespace get
/// [`ManifestOptions::default_namespace`]; a kind's scope comes from
/// [`kinds`](crate::kinds) for built-in kinds, from any CustomResourceDefinition among `files` for
/// custom ones, and is namespaced otherwise. Cluster-scoped objects lose any namespace they name,
/// as the API server ignores it.
///
/// # Errors
/// Every problem in every file, each naming file and line: a path that leaves the repository,
/// a file over the size limit or not UTF-8, invalid YAML (including duplicate keys and alias
/// expansion over the limit), a document that is not an object with `apiVersion`, `kind` and
/// `metadata.name`, and one id defined twice (naming both places). Any error makes the
/// revision unusable.
pub fn read_manifests(files: &[SourceFile], options: &ManifestOptions) -> Result<Vec<Manifest>, ManifestErrors> {
    let mut errors = ManifestErrors::new();
    let mut raw = Vec::new();
    for file in files.iter().filter(|f| is_manifest_path(&f.path)) {
        match parse_file(file, options) {
            Ok(objects) => raw.extend(objects),
            Err(e) => errors.extend(e),
        }
    }
    let scopes = custom_scopes(&raw);
    let mut manifests = Vec::with_capacity(raw.len());
    for object in raw {
        let location = object.location.clone();
        match object.into_manifest(&scopes, &options.default_namespace) {
            Ok(m) => manifests.push(m),
            Err(e) => errors.push_error(e.located_at(location)),
        }
    }
    manifests.sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
    let mut seen: HashMap<&ResourceId, Location> = HashMap::new();
    for m in &manifests {
        if let Some(first) = seen.insert(m.id(), m.location()) {
            errors.push(m.location(), format!("{} is defined twice: at {first} and at {}", m.id(), m.location()));
        }
    }
    errors.sort();
    errors.into_result(manifests)
}

/// An object as parsed, before its scope is known.
struct RawObject {
    body: Value,
    file: String,
    document: usize,
    location: Location,
}

impl RawObject {
    fn into_manifest(
        self,
        scopes: &HashMap<(String, String), Scope>,
        default_namespace: &str,
    ) -> crate::Result<Manifest> {
        let mut body = self.body;
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        let group = api_group(body.get("apiVersion").and_then(Value::as_str).unwrap_or_default()).to_owned();
        let scope = builtin_scope(&group, &kind)
            .or_else(|| scopes.get(&(group, kind.to_ascii_lowercase())).copied())
            .unwrap_or(Scope::Namespaced);
        if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            // `namespace: ""` means the default namespace to kubectl too.
            let has_namespace = metadata.get("namespace").is_some_and(|ns| !ns.is_null() && ns.as_str() != Some(""));
            match scope {
                Scope::Namespaced if !has_namespace => {
                    metadata.insert("namespace".to_owned(), Value::String(default_namespace.to_owned()));
                }
                Scope::Cluster => {
                    metadata.remove("namespace");
                }
                Scope::Namespaced => {}
            }
        }
        let object = KubeObject::from_value(body, Some(self.location))?;
        Ok(Manifest { object, file: self.file, document: self.document })
    }
}

trait LocatedAt {
    fn located_at(self, location: Location) -> crate::Error;
}

impl LocatedAt for crate::Error {
    /// Keeps an [`crate::Error::InvalidInput`] as it is, locates anything else.
    fn located_at(self, location: Location) -> crate::Error {
        match self {
            e @ crate::Error::InvalidInput { .. } => e,
            other => crate::Error::invalid(location, other.to_string()),
        }
    }
}

/// The scopes CustomResourceDefinitions declare, by (group, lower-cased kind).
fn custom_scopes(objects: &[RawObject]) -> HashMap<(String, String), Scope> {
    let mut scopes = HashMap::new();
    for o in objects.iter().filter(|o| o.body.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")) {
        let text = |path: &str| o.body.pointer(path).and_then(Value::as_str);
        if let (Some(group), Some(kind), Some(scope)) =
            (text("/spec/group"), text("/spec/names/kind"), text("/spec/scope"))
        {
            let scope = if scope.eq_ignore_ascii_case("Cluster") { Scope::Cluster } else { Scope::Namespaced };
            scopes.insert((group.to_owned(), kind.to_ascii_lowercase()), scope);
        }
    }
    scopes
}

/// Only the `items` of a list document, each with its place.
#[derive(serde::Deserialize)]
struct ListItems {
    #[serde(default)]
    items: Option<Vec<Spanned<Value>>>,
}

/// The objects in one file, in document order.
fn parse_file(file: &SourceFile, options: &ManifestOptions) -> Result<Vec<RawObject>, ManifestErrors> {
    let path = checked_path(&file.path)?;
    let at = |line: usize| Location::line(path.clone(), line);
    if file.content.len() > options.max_file_bytes {
        return Err(crate::Error::invalid(
            Location::file(&path),
            format!("file is {} bytes, over the limit of {} bytes", file.content.len(), options.max_file_bytes),
        )
        .into());
    }
    let text = std::str::from_utf8(&file.content).map_err(|e| {
        let line = 1 + file.content[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count();
        crate::Error::invalid(at(line), "file is not valid UTF-8")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, options.yaml_options()).map_err(|e| yaml_error(&path, &e))?;
    let mut lists: Option<Vec<ListItems>> = None;
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let line = document.referenced.line().max(1) as usize;
        if document.value.is_null() {
            continue;
        }
        let items = is_list(&document.value).then(|| document.value.get("items").cloned()).flatten();
        let Some(Value::Array(items)) = items else {
            objects.push(RawObject { body: document.value, file: path.clone(), document: index, location: at(line) });
            continue;
        };
        // Lines of list items need a second, spanned look at the file; lists are rare.
        let lists = lists.get_or_insert_with(|| {
            serde_saphyr::from_multiple_with_options(text, options.yaml_options()).unwrap_or_default()
        });
        let spanned = lists.get(index).and_then(|l| l.items.as_ref());
        for (i, item) in items.into_iter().enumerate() {
            let item_line = spanned.and_then(|s| s.get(i)).map_or(line, |s| s.referenced.line().max(1) as usize);
            objects.push(RawObject { body: item, file: path.clone(), document: index, location: at(item_line) });
        }
    }
    Ok(objects)
}

/// Whether a document is a list of objects: `kind: List` or any `*List` kind with `items`.
fn is_list(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) && value.get("items").is_some()
}

/// A path that stays in the repository, as written; anything else is an error naming it.
fn checked_path(path: &str) -> Result<String, crate::Error> {
    let normalized = normalize_path(path)?;
    if normalized.is_empty() {
        return Err(crate::Error::invalid(Location::file(path), "a manifest file needs a path"));
    }
    Ok(normalized)
}

/// A YAML error at its file and line, in one line of text.
pub(crate) fn yaml_error(file: &str, error: &serde_saphyr::Error) -> crate::Error {
    let line = error.location().map_or(1, |l| l.line().max(1) as usize);
    let text = error.without_snippet().to_string();
    let message = text.lines().next().unwrap_or("invalid YAML").trim_start_matches("error: ").to_owned();
    crate::Error::invalid(Location::line(file, line), format!("invalid YAML: {message}"))
}
