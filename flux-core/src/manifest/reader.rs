//! Parsing a revision's manifest files into Kubernetes objects.

use std::collections::HashMap;

use serde_json::Value;
use serde_saphyr::Spanned;

use super::errors::ManifestErrors;
use super::skip::{SkipReason, Skipped};
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
        // Nothing reads comments through serde (the editor keeps them from the text); not
        // collecting them is a third of the parse (measured: `manifests` bench).
        options.emit_comments = false;
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

/// Reads every object in `files`, sorted by file then document: for output that must be
/// objects through and through (a generator's); hand-written files are read with
/// [`read_repository_manifests`].
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
/// `metadata.name`, an annotation or label whose value is not a string (`true`, `1` unquoted:
/// the API server refuses them), and one id defined twice (naming both places). Any error makes
/// the revision unusable.
pub fn read_manifests(files: &[SourceFile], options: &ManifestOptions) -> Result<Vec<Manifest>, ManifestErrors> {
    let (manifests, _, errors) = read(files, options, Documents::AllObjects);
    errors.into_result(manifests)
}

/// What [`read_repository_manifests`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepositoryManifests {
    /// The objects, sorted by file then document.
    pub manifests: Vec<Manifest>,
    /// The documents that are not Kubernetes objects, by file and line.
    pub skipped: Vec<Skipped>,
}

/// Reads hand-written manifest files as [`read_manifests`] does, except that a document that
/// is not a mapping (a JSON array, a scalar), or a mapping with neither `apiVersion` nor `kind`
/// (a CI workflow, a Grafana dashboard, a data file), is skipped and listed, as Flux v1 skipped
/// documents without a `kind`. A document with either key is meant to be an object and is
/// checked as one; a sequence of such mappings is an error (no tool reads that form).
///
/// Which files to read at all (hidden directories, Helm charts) is
/// [`select_manifest_files`](super::select_manifest_files)'s part.
///
/// # Errors
/// As [`read_manifests`].
pub fn read_repository_manifests(
    files: &[SourceFile],
    options: &ManifestOptions,
) -> Result<RepositoryManifests, ManifestErrors> {
    let (manifests, skipped, errors) = read(files, options, Documents::SkipNonObjects);
    errors.into_result(RepositoryManifests { manifests, skipped })
}

/// What to do with a document that is not a Kubernetes object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Documents {
    /// It is an error.
    AllObjects,
    /// It is skipped when it has neither `apiVersion` nor `kind`, or is not a mapping.
    SkipNonObjects,
}

/// The objects of `files`, the documents skipped and every error.
pub(crate) fn read<'a>(
    files: impl IntoIterator<Item = &'a SourceFile>,
    options: &ManifestOptions,
    documents: Documents,
) -> (Vec<Manifest>, Vec<Skipped>, ManifestErrors) {
    let mut errors = ManifestErrors::new();
    let mut skipped = Vec::new();
    let mut raw = Vec::new();
    for file in files.into_iter().filter(|f| is_manifest_path(&f.path)) {
        match parse_file(file, options, documents, &mut skipped) {
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
    skipped.sort();
    (manifests, skipped, errors)
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
fn parse_file(
    file: &SourceFile,
    options: &ManifestOptions,
    documents_are: Documents,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<RawObject>, ManifestErrors> {
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
    let mut errors = ManifestErrors::new();
    for (index, document) in documents.into_iter().enumerate() {
        let line = document.referenced.line().max(1) as usize;
        if document.value.is_null() {
            continue;
        }
        if documents_are == Documents::SkipNonObjects {
            match not_an_object(&document.value) {
                Ok(Some(reason)) => {
                    skipped.push(Skipped { path: path.clone(), line: Some(line), reason });
                    continue;
                }
                Ok(None) => {}
                Err(message) => {
                    errors.push(at(line), message);
                    continue;
                }
            }
        }
        let items = is_list(&document.value).then(|| document.value.get("items").cloned()).flatten();
        let Some(Value::Array(items)) = items else {
            if let Err(e) = check_string_maps(&document.value, text, &path, line) {
                errors.push_error(e);
            }
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
            if let Err(e) = check_string_maps(&item, text, &path, item_line) {
                errors.push_error(e);
            }
            objects.push(RawObject { body: item, file: path.clone(), document: index, location: at(item_line) });
        }
    }
    errors.into_result(objects)
}

/// Why a document is not a Kubernetes object and is skipped, `None` when it is meant to be one,
/// or an error for a sequence of objects (which neither kubectl nor the API server reads).
fn not_an_object(value: &Value) -> Result<Option<SkipReason>, String> {
    let meant_as_object = |v: &Value| v.get("apiVersion").is_some() || v.get("kind").is_some();
    match value {
        Value::Object(_) if meant_as_object(value) => Ok(None),
        Value::Object(_) => Ok(Some(SkipReason::NotAnObject)),
        Value::Array(items) if items.iter().any(meant_as_object) => {
            Err("a sequence of Kubernetes objects, which kubectl does not read either: write them as documents \
             separated by `---`, or as the items of a `kind: List`"
                .to_owned())
        }
        _ => Ok(Some(SkipReason::NotAMapping)),
    }
}

/// Annotation and label values must be strings: the API server refuses `true` or `1` unquoted,
/// and reading them as text here would make flux act on a policy the cluster never holds.
fn check_string_maps(object: &Value, text: &str, file: &str, line: usize) -> Result<(), crate::Error> {
    let Some(metadata) = object.get("metadata").and_then(Value::as_object) else { return Ok(()) };
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let what = if name.is_empty() { kind } else { format!("{kind}/{name}") };
    for field in ["annotations", "labels"] {
        let singular = field.trim_end_matches('s');
        let values = match metadata.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(values)) => values,
            Some(_) => {
                return Err(crate::Error::invalid(
                    Location::line(file, line),
                    format!("{what}: metadata.{field} must be a mapping of strings"),
                ));
            }
        };
        for (key, value) in values {
            let found = match value {
                Value::String(_) | Value::Null => continue,
                Value::Bool(b) => format!("the boolean {b}; quote it: \"{b}\""),
                Value::Number(n) => format!("the number {n}; quote it: \"{n}\""),
                Value::Array(_) => "a sequence".to_owned(),
                Value::Object(_) => "a mapping".to_owned(),
            };
            return Err(crate::Error::invalid(
                Location::line(file, line_of_key(text, line, key)),
                format!(
                    "{what}: {singular} {key} is {found} (the API server accepts only strings as {singular} values)"
                ),
            ));
        }
    }
    Ok(())
}

/// The line of `key:` at or after `from` in its document (`from` when not found).
fn line_of_key(text: &str, from: usize, key: &str) -> usize {
    let forms = [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':"), format!("\"{key}\" :")];
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .take_while(|(i, l)| *i + 1 == from || !l.starts_with("---"))
        .find(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ");
            forms.iter().any(|f| l.starts_with(f.as_str()))
        })
        .map_or(from, |(i, _)| i + 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile { path: path.to_owned(), content: text.as_bytes().to_vec() }
    }

    fn repository(files: &[SourceFile]) -> Result<RepositoryManifests, ManifestErrors> {
        read_repository_manifests(files, &ManifestOptions::default())
    }

    fn first_error(errors: ManifestErrors) -> String {
        errors.errors()[0].to_string()
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n";

    #[test]
    fn documents_without_api_version_and_kind_are_skipped_with_their_line() {
        let files = [
            file(".gitlab-ci.yml", "stages: [test]\ntest:\n  script: [make]\n"),
            file("dashboards/web.json", r#"{"title": "web", "panels": [{"type": "graph"}]}"#),
            file("dashboards/list.json", r#"[{"title": "a"}, 3]"#),
            file(
                "mixed.yaml",
                &format!("{CM}---\nnameReference:\n- kind: ConfigMap\n  fieldSpecs: []\n---\njust text\n"),
            ),
        ];
        let read = repository(&files).expect("no errors");
        let ids: Vec<String> = read.manifests.iter().map(|m| m.id().to_string()).collect();
        assert_eq!(ids, ["default:configmap/cm"]);
        let skipped: Vec<String> = read.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            [
                ".gitlab-ci.yml:1: not a Kubernetes object (no apiVersion and no kind)",
                "dashboards/list.json:1: not a Kubernetes object (not a mapping)",
                "dashboards/web.json:1: not a Kubernetes object (no apiVersion and no kind)",
                "mixed.yaml:5: not a Kubernetes object (no apiVersion and no kind)",
                "mixed.yaml:9: not a Kubernetes object (not a mapping)",
            ]
        );
        let strict = read_manifests(&files, &ManifestOptions::default()).expect_err("generated output must be objects");
        assert!(strict.len() >= 4, "{strict}");
    }

    #[test]
    fn a_document_meant_as_an_object_but_broken_is_an_error_at_its_line() {
        for (text, expected) in [
            ("apiVersion: v1\nmetadata: {name: x}\n", "x.yaml:1: object has no kind"),
            ("kind: ConfigMap\nmetadata: {name: x}\n", "x.yaml:1: object has no apiVersion"),
            ("apiVersion: v1\nkind: ''\nmetadata: {name: x}\n", "x.yaml:1: object has no kind"),
            ("apiVersion: v1\nkind:\nmetadata: {name: x}\n", "x.yaml:1: object has no kind"),
            ("apiVersion: v1\nkind: ConfigMap\n", "x.yaml:1: object has no metadata.name"),
            (
                &format!("{CM}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: [s]\n"),
                "x.yaml:5: object has no metadata.name",
            ),
            (
                "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n",
                "x.yaml:1: a sequence of Kubernetes objects",
            ),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {a: [b]\n", "x.yaml:5: invalid YAML"),
        ] {
            let error = first_error(repository(&[file("x.yaml", text)]).expect_err(text));
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn an_annotation_or_label_that_is_not_a_string_is_an_error_at_its_line() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\n  annotations:\n    fluxcd.io/tag.app: semver:~1\n    fluxcd.io/automated: true\nspec: {}\n";
        let error = first_error(repository(&[file("apps/web.yaml", text)]).expect_err("refused"));
        assert_eq!(
            error,
            "apps/web.yaml:8: deployment/web: annotation fluxcd.io/automated is the boolean true; quote it: \"true\" \
             (the API server accepts only strings as annotation values)"
        );
        let text = format!(
            "{CM}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: s\n    labels:\n      tier: 3\n"
        );
        let error =
            first_error(read_manifests(&[file("l.yaml", &text)], &ManifestOptions::default()).expect_err("refused"));
        assert!(error.starts_with("l.yaml:13: secret/s: label tier is the number 3"), "{error}");
        let json =
            r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j", "annotations": {"a": {"b": "c"}}}}"#;
        let error = first_error(repository(&[file("j.json", json)]).expect_err("refused"));
        assert!(error.starts_with("j.json:1: configmap/j: annotation a is a mapping"), "{error}");
        let fine =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nn\n  annotations:\n    empty:\n    quoted: 'true'\n";
        let read = repository(&[file("n.yaml", fine)]);
        assert!(read.is_ok(), "null and string values are as before: {:?}", read.err());
    }
}
