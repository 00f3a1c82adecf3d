//! Kustomize overlays: reading a `kustomization.yaml` and editing its `images:` list in place.
//!
//! Only what automation needs is read: the entries that point at other directories
//! (`resources`, `bases`, `components`) and the image overrides (`images`). Other fields are
//! accepted and ignored. [`set_image`] changes an override as [`edit`](super::edit) changes a
//! value: only the bytes it must, verified by parsing the result again.

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::edit::{Document, Edit, insert_after_node, quoted, remove_lines, render_scalar};
use super::reader::{ManifestOptions, yaml_error};
use super::yaml::{Node, NodeKind};
use crate::error::{Error, Location, Result};
use crate::image::{ImageRef, ImageRepo};

/// The file names Kustomize looks for in a directory, in its order of preference.
pub const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The parts of a `kustomization.yaml` automation uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kustomization {
    /// `resources`: files, directories or remote targets.
    pub resources: Vec<String>,
    /// `bases` (deprecated in Kustomize, still read).
    pub bases: Vec<String>,
    /// `components`.
    pub components: Vec<String>,
    /// `images`: the image overrides.
    pub images: Vec<KustomizeImage>,
    /// `namePrefix`: put before the names of the resources it builds.
    pub name_prefix: Option<String>,
    /// `nameSuffix`: put after them.
    pub name_suffix: Option<String>,
}

impl Kustomization {
    /// The name a resource this kustomization built as `built` had before its own
    /// `namePrefix`/`nameSuffix` (the name its patches target), if it has them.
    pub fn name_before(&self, built: &str) -> Option<String> {
        let name = built.strip_prefix(self.name_prefix.as_deref().unwrap_or_default())?;
        let name = name.strip_suffix(self.name_suffix.as_deref().unwrap_or_default())?;
        (!name.is_empty()).then(|| name.to_owned())
    }
}

/// One entry of `images:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeImage {
    /// `name`: the image name it applies to, as written in the resources.
    pub name: String,
    /// `newName`: the name to use instead.
    pub new_name: Option<String>,
    /// `newTag`: the tag to use instead.
    pub new_tag: Option<String>,
    /// `digest`: the digest to use instead of a tag.
    pub digest: Option<String>,
    /// The 1-based line the entry starts at.
    pub line: usize,
}

impl KustomizeImage {
    /// The image name this entry produces: `newName`, or `name` when there is none.
    pub fn result_name(&self) -> &str {
        self.new_name.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Deserialize, Default)]
struct RawKustomization {
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    bases: Option<Vec<String>>,
    #[serde(default)]
    components: Option<Vec<String>>,
    #[serde(default)]
    images: Option<Vec<Spanned<RawImage>>>,
    #[serde(default, rename = "namePrefix")]
    name_prefix: Option<String>,
    #[serde(default, rename = "nameSuffix")]
    name_suffix: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImage {
    name: String,
    #[serde(default)]
    new_name: Option<String>,
    #[serde(default)]
    new_tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// Parses the text of a kustomization file.
///
/// # Errors
/// [`Error::InvalidInput`] at the file and line when the text is not valid YAML, holds more
/// than one document, or a field read here has the wrong type (e.g. an `images` entry without
/// `name`).
pub fn parse_kustomization(file: &str, text: &str) -> Result<Kustomization> {
    let documents: Vec<Option<RawKustomization>> =
        serde_saphyr::from_multiple_with_options(text, ManifestOptions::default().yaml_options())
            .map_err(|e| yaml_error(file, &e))?;
    let mut documents = documents.into_iter().flatten();
    let raw = documents.next().unwrap_or_default();
    if documents.next().is_some() {
        return Err(Error::invalid(Location::file(file), "a kustomization file holds one document"));
    }
    let images = raw.images.unwrap_or_default().into_iter().map(|image| {
        let line = image.referenced.line().max(1) as usize;
        let RawImage { name, new_name, new_tag, digest } = image.value;
        KustomizeImage { name, new_name, new_tag, digest, line }
    });
    Ok(Kustomization {
        resources: raw.resources.unwrap_or_default(),
        bases: raw.bases.unwrap_or_default(),
        components: raw.components.unwrap_or_default(),
        images: images.collect(),
        name_prefix: raw.name_prefix,
        name_suffix: raw.name_suffix,
    })
}

/// The local entries of `resources`, `bases` and `components`, as repository paths resolved
/// against `dir` (the kustomization's directory): the candidates for directories to build.
///
/// Remote targets are left out: URLs (`://`), `git@host:...`, `host.tld/...` references (e.g.
/// `github.com/org/repo//path`), and anything with a `?ref=` or `?version=` query. So are
/// absolute paths and paths that would leave the repository. The order is the file's, without
/// duplicates.
pub fn local_directories(dir: &str, k: &Kustomization) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for entry in k.resources.iter().chain(&k.bases).chain(&k.components) {
        if is_remote(entry) || entry.starts_with('/') {
            continue;
        }
        if let Some(path) = resolve(dir, entry).filter(|p| !found.contains(p)) {
            found.push(path);
        }
    }
    found
}

/// Whether a kustomization entry names something outside the repository.
fn is_remote(entry: &str) -> bool {
    if entry.contains("://") || entry.contains("?ref=") || entry.contains("?version=") || entry.starts_with("git@") {
        return true;
    }
    // `github.com/org/repo`: a first segment that is a host name (has a dot, is not `.`/`..`)
    // followed by a path. Local directories named like hosts are rare in kustomize trees.
    let first = entry.split('/').next().unwrap_or_default();
    let host_like = first.contains('.')
        && !first.starts_with('.')
        && first.rsplit('.').next().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
        && !["yaml", "yml", "json"].contains(&first.rsplit('.').next().unwrap_or_default());
    (host_like && entry.contains('/')) || entry.contains("//")
}

/// `entry` joined to `dir` with `.` and `..` resolved; `None` when it leaves the repository.
fn resolve(dir: &str, entry: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/').chain(entry.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The `images:` entry whose result name is the same repository as `image`
/// (`nginx` = `docker.io/library/nginx` = `index.docker.io/library/nginx`).
pub fn find_image<'a>(k: &'a Kustomization, image: &ImageRef) -> Option<&'a KustomizeImage> {
    let wanted = image.repository();
    k.images.iter().find(|entry| same_repository(entry.result_name(), &wanted))
}

fn same_repository(name: &str, repository: &ImageRepo) -> bool {
    name.parse::<ImageRef>().is_ok_and(|r| &r.repository() == repository)
}

/// Sets the override for the image `entry_name` in a kustomization file's text to `to`.
///
/// In the entry whose `name` is `entry_name`: with a digest in `to`, `digest:` is set (or
/// added) and `newTag:` removed; otherwise `newTag:` is set (or added) and `digest:` removed.
/// `newName:` is set (or added) only when `to` names another repository than the entry produces
/// now. Without such an entry, one is appended to `images:` in the list's indentation; without
/// `images:`, the list is added at the end of the file. Everything else stays byte for byte.
///
/// # Errors
/// [`Error::InvalidInput`] naming the file (and the line, where there is one) when the text is
/// not valid YAML, `to` has neither tag nor digest, or the place to edit is written in a way
/// that cannot be edited in place: a flow collection (`images: [...]`), an alias or anchor, a
/// block scalar. The text is never partly changed.
pub fn set_image(file: &str, text: &str, entry_name: &str, to: &ImageRef) -> Result<String> {
    if to.tag().is_none() && to.digest().is_none() {
        return Err(Error::invalid(Location::file(file), format!("{to} has neither tag nor digest")));
    }
    let doc = Document::parse(file, text)?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let to_name = match to.domain() {
        Some(domain) => format!("{domain}/{}", to.path()),
        None => to.path().to_owned(),
    };
    let at = |node: &Node, what: &str| Error::invalid(Location::line(file, node.line), what.to_owned());
    let verify = |edits: Vec<Edit>, expected: &Value, line: usize| verify_at(&doc, edits, expected, line);
    // Found by the names kustomize reads (strings: `name: n` is the image `n`, not YAML 1.1's
    // false), so an entry is edited, never appended a second time.
    let position = parse_kustomization(file, text)?.images.iter().position(|i| i.name == entry_name);
    let Some(index) = position else {
        let lines = entry_lines(entry_name, &to_name, to);
        return append_entry(&doc, text, "images", &lines, new_entry(entry_name, &to_name, to));
    };
    let root = root_map(&doc)?;
    let json = doc.json.first().ok_or_else(|| doc.error("no document"))?;
    let mut expected = json.clone();
    let Some(expected_map) = expected.as_object_mut() else {
        return Err(at(root, "the kustomization is not a mapping"));
    };
    let Some((images_key, images)) = root.entry("images") else {
        return Err(at(root, "images is not in the text"));
    };
    let (items, images_json) = match (&images.kind, expected_map.get_mut("images")) {
        (NodeKind::Seq { flow: false, items }, Some(Value::Array(list))) => (items, list),
        _ => return Err(at(images, "images is not a block sequence; it cannot be edited in place")),
    };
    let item = items.get(index).ok_or_else(|| at(images, "images entries cannot be edited in place"))?;
    let NodeKind::Map { flow: false, entries, .. } = &item.kind else {
        return Err(at(item, "this images entry is not a block mapping; it cannot be edited in place"));
    };
    let Some(Value::Object(entry_json)) = images_json.get_mut(index) else {
        return Err(at(item, "this images entry is not a mapping"));
    };
    let result_name = entry_json.get("newName").or_else(|| entry_json.get("name")).and_then(Value::as_str);
    let needs_name = match (result_name, to_name.parse::<ImageRef>()) {
        (Some(current), Ok(wanted)) => !same_repository(current, &wanted.repository()),
        _ => true,
    };
    let mut wanted: Vec<(&str, Option<String>)> = Vec::new();
    if needs_name {
        wanted.push(("newName", Some(to_name.clone())));
    }
    match to.digest() {
        Some(digest) => wanted.extend([("digest", Some(digest.to_owned())), ("newTag", None)]),
        None => wanted.extend([("newTag", to.tag().map(str::to_owned)), ("digest", None)]),
    }
    let mut edits = Vec::new();
    let mut added = Vec::new();
    for (key, value) in wanted {
        let existing = entries.iter().find(|(k, _)| k.scalar() == Some(key));
        match (existing, value) {
            (Some((k, node)), Some(value)) => {
                if entry_json.get(key).and_then(Value::as_str) == Some(value.as_str()) {
                    continue;
                }
                let replacement =
                    render_scalar(node, &value, false).ok_or_else(|| at(k, &cannot_edit(key, entry_name)))?;
                edits.push(Edit { start: node.start, end: node.end, text: replacement });
                entry_json.insert(key.to_owned(), Value::String(value));
            }
            (Some((k, node)), None) => {
                let edit = remove_lines(text, k.start, node.end).ok_or_else(|| at(k, &cannot_edit(key, entry_name)))?;
                edits.push(edit);
                entry_json.remove(key);
            }
            (None, Some(value)) => {
                added.push(format!("{}{key}: {}{eol}", " ".repeat(item.entries_indent()), scalar_text(&value)));
                entry_json.insert(key.to_owned(), Value::String(value));
            }
            (None, None) => {}
        }
    }
    if !added.is_empty() {
        edits.push(insert_after_node(text, item.end, &added.concat(), eol));
    }
    if edits.is_empty() {
        return Ok(text.to_owned());
    }
    verify(edits, &expected, images_key.line)
}

/// The top-level list `key` of the kustomization, as data (empty when there is none).
fn top_level_list<'d>(doc: &'d Document<'_>, key: &str) -> &'d [Value] {
    doc.json.first().and_then(|k| k.get(key)).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Applies `edits` and checks that the result reads as `expected`; a failed check (an alias
/// elsewhere would change too) is reported at `line`, the key being edited.
fn verify_at(doc: &Document<'_>, edits: Vec<Edit>, expected: &Value, line: usize) -> Result<String> {
    doc.apply_and_verify(edits, std::slice::from_ref(expected)).map_err(|e| match e {
        Error::InvalidInput { location, message } if location.line.is_none() => {
            Error::invalid(Location::line(doc.file, line), message)
        }
        other => other,
    })
}

/// The kustomization's single document as a block mapping.
fn root_map<'d>(doc: &'d Document<'_>) -> Result<&'d Node> {
    match doc.tree.documents.as_slice() {
        [root] if matches!(root.kind, NodeKind::Map { flow: false, .. }) => Ok(root),
        [root] => Err(Error::invalid(
            Location::line(doc.file, root.line),
            "the kustomization is not a block mapping; it cannot be edited in place",
        )),
        _ => Err(doc.error("a kustomization file holds one document")),
    }
}

/// Appends an entry to the top-level block sequence `key` (creating `key` at the end of the
/// file when it is missing or empty), in the file's sequence style. `lines` are the entry's
/// lines without indentation beyond their own nesting; `entry` is the entry as data, for the
/// verification that nothing else changed.
fn append_entry(doc: &Document<'_>, text: &str, key: &str, lines: &[String], entry: Value) -> Result<String> {
    let file = doc.file;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let item = |pad: &str, dash: &str| {
        let rest = " ".repeat(dash.len());
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("{pad}{}{line}{eol}", if i == 0 { dash } else { &rest }))
            .collect::<String>()
    };
    if doc.tree.documents.is_empty() {
        let sep = if text.is_empty() || text.ends_with('\n') { "" } else { eol };
        let appended = format!("{text}{sep}{key}:{eol}{}", item("", "- "));
        // A file of comments reads as one mapping after this; one holding an explicit null
        // document (`~`, `null`, `--- ~`) would not.
        let expected = Value::Object(Map::from_iter([(key.to_owned(), Value::Array(vec![entry]))]));
        return match super::edit::parse_json(file, &appended) {
            Ok(json) if json == [expected] => Ok(appended),
            _ => {
                Err(doc
                    .error(format!("the file holds only an empty document; `{key}:` cannot be added to it in place")))
            }
        };
    }
    let root = root_map(doc)?;
    let at = |node: &Node, what: String| Error::invalid(Location::line(file, node.line), what);
    let mut expected = doc.json.first().cloned().unwrap_or(Value::Null);
    let Some(map) = expected.as_object_mut() else {
        return Err(at(root, "the kustomization is not a mapping".into()));
    };
    let verify = |edit: Edit, expected: &Value, line: usize| verify_at(doc, vec![edit], expected, line);
    let dash = sequence_style(text, root);
    let dash = if dash.is_empty() { "- ".to_owned() } else { dash };
    match root.entry(key) {
        None => {
            map.insert(key.to_owned(), Value::Array(vec![entry]));
            let block = format!("{}{key}:{eol}{}", " ".repeat(root.entries_indent()), item("", &dash));
            verify(insert_after_node(text, root.end, &block, eol), &expected, root.line)
        }
        Some((key_node, value)) => match (&value.kind, map.get_mut(key)) {
            (NodeKind::Scalar { .. }, Some(Value::Null)) if super::edit::is_empty_value(value) => {
                map.insert(key.to_owned(), Value::Array(vec![entry]));
                let block = item(&" ".repeat(key_node.col), &dash);
                verify(insert_after_node(text, key_node.end, &block, eol), &expected, key_node.line)
            }
            (NodeKind::Seq { flow: false, items }, Some(Value::Array(list))) => {
                let last = items.last().ok_or_else(|| at(value, format!("{key} cannot be edited in place")))?;
                let (dash_col, gap) =
                    dash_of(text, last).ok_or_else(|| at(last, format!("{key} entries cannot be edited in place")))?;
                list.push(entry);
                let block = item(&" ".repeat(dash_col), &format!("-{}", " ".repeat(gap)));
                verify(insert_after_node(text, last.end, &block, eol), &expected, key_node.line)
            }
            _ => Err(at(value, format!("{key} is not a block sequence; it cannot be edited in place"))),
        },
    }
}

/// Makes sure `patches:` has an entry applying the patch file `path` (relative to the
/// kustomization) to the resources of `kind` named `name`; adds it (losslessly, at the end of
/// the list) when there is no entry for `path`.
///
/// # Errors
/// As [`set_image`]: invalid YAML, or `patches` written in a way that cannot be edited in place.
pub fn add_patch(file: &str, text: &str, path: &str, kind: &str, name: &str) -> Result<String> {
    let doc = Document::parse(file, text)?;
    let present = top_level_list(&doc, "patches").iter().any(|p| p.get("path").and_then(Value::as_str) == Some(path));
    if present {
        return Ok(text.to_owned());
    }
    let lines = vec![
        format!("path: {}", scalar_text(path)),
        "target:".to_owned(),
        format!("  kind: {}", scalar_text(kind)),
        format!("  name: {}", scalar_text(name)),
    ];
    let mut target = Map::new();
    target.insert("kind".into(), Value::String(kind.to_owned()));
    target.insert("name".into(), Value::String(name.to_owned()));
    let mut entry = Map::new();
    entry.insert("path".into(), Value::String(path.to_owned()));
    entry.insert("target".into(), Value::Object(target));
    append_entry(&doc, text, "patches", &lines, Value::Object(entry))
}

fn cannot_edit(key: &str, entry: &str) -> String {
    format!("{key} of image {entry} is written in a way that cannot be edited in place (anchor, alias or block scalar)")
}

/// A value as a new plain scalar when that reads back as the same string, else double-quoted.
fn scalar_text(value: &str) -> String {
    let plain = Node {
        start: 0,
        end: 0,
        col: 0,
        line: 1,
        kind: NodeKind::Scalar {
            value: String::new(),
            style: serde_saphyr::granit_parser::ScalarStyle::Plain,
            decorated: false,
        },
    };
    render_scalar(&plain, value, false).unwrap_or_else(|| quoted(value))
}

/// The `key: value` lines of a new entry, without indentation.
fn entry_lines(entry_name: &str, to_name: &str, to: &ImageRef) -> Vec<String> {
    let mut lines = vec![format!("name: {}", scalar_text(entry_name))];
    let entry = new_entry(entry_name, to_name, to);
    for key in ["newName", "newTag", "digest"] {
        if let Some(value) = entry.get(key).and_then(Value::as_str) {
            lines.push(format!("{key}: {}", scalar_text(value)));
        }
    }
    lines
}

/// A new entry as data: `newName` when `to` is not what `name` already produces.
fn new_entry(entry_name: &str, to_name: &str, to: &ImageRef) -> Value {
    let mut entry = Map::new();
    entry.insert("name".into(), Value::String(entry_name.to_owned()));
    if !to_name.parse::<ImageRef>().is_ok_and(|r| same_repository(entry_name, &r.repository())) {
        entry.insert("newName".into(), Value::String(to_name.to_owned()));
    }
    match to.digest() {
        Some(digest) => entry.insert("digest".into(), Value::String(digest.to_owned())),
        None => entry.insert("newTag".into(), Value::String(to.tag().unwrap_or_default().to_owned())),
    };
    Value::Object(entry)
}

/// How the file writes a sequence under a top-level key: the text from the key's column to the
/// first item (`"- "` or `"  - "`), from its first block sequence; `"- "` when it has none.
fn sequence_style(text: &str, root: &Node) -> String {
    let NodeKind::Map { entries, .. } = &root.kind else { return "- ".into() };
    entries
        .iter()
        .find_map(|(key, value)| match &value.kind {
            NodeKind::Seq { flow: false, items } => {
                let (dash_col, gap) = dash_of(text, items.first()?)?;
                let indent = dash_col.checked_sub(key.col)?;
                Some(format!("{}-{}", " ".repeat(indent), " ".repeat(gap)))
            }
            _ => None,
        })
        .unwrap_or_else(|| "- ".into())
}

/// The column of the dash before a block sequence item and the spaces between dash and item.
fn dash_of(text: &str, item: &Node) -> Option<(usize, usize)> {
    let before = text.get(..item.start)?;
    let dash = before.rfind('-')?;
    let gap = &before[dash + 1..];
    if !gap.chars().all(|c| c == ' ') {
        return None;
    }
    let line_start = before[..dash].rfind('\n').map_or(0, |i| i + 1);
    if !before[line_start..dash].chars().all(|c| c == ' ') {
        return None;
    }
    Some((dash - line_start, gap.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    #[test]
    fn remote_entries_are_recognised() {
        for remote in [
            "https://github.com/org/repo//deploy?ref=v1",
            "github.com/org/repo//deploy",
            "git@github.com:org/repo.git",
            "gitlab.com/org/repo/base",
            "repo//sub",
            "../base?ref=main",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in ["../base", "deployment.yaml", "./app", "v1.2/app", "my.app"] {
            assert!(!is_remote(local), "{local}");
        }
    }

    #[test]
    fn dash_style_is_read_from_the_text() {
        let text = "resources:\n  -   a.yaml\n";
        let doc = Document::parse("k", text).unwrap();
        assert_eq!(sequence_style(text, &doc.tree.documents[0]), "  -   ");
        let added = set_image("k", text, "x", &image("x:1")).unwrap();
        assert_eq!(added, "resources:\n  -   a.yaml\nimages:\n  -   name: x\n      newTag: \"1\"\n");
    }

    #[test]
    fn patches_are_added_once_in_the_files_style() {
        let text = "# app\nresources:\n  - ../base # shared\n";
        let added = add_patch("k", text, "flux/deployment-web.yaml", "Deployment", "web").unwrap();
        assert_eq!(
            added,
            "# app\nresources:\n  - ../base # shared\npatches:\n  - path: flux/deployment-web.yaml\n    target:\n      kind: Deployment\n      name: web\n"
        );
        assert_eq!(add_patch("k", &added, "flux/deployment-web.yaml", "Deployment", "web").unwrap(), added);
        let more = add_patch("k", &added, "flux/deployment-api.yaml", "Deployment", "api").unwrap();
        assert!(more.starts_with(&added), "appended after the last entry: {more}");
        assert!(
            more.ends_with(
                "  - path: flux/deployment-api.yaml\n    target:\n      kind: Deployment\n      name: api\n"
            )
        );
        assert_eq!(
            add_patch("k", "", "p.yaml", "Job", "j").unwrap(),
            "patches:\n- path: p.yaml\n  target:\n    kind: Job\n    name: j\n"
        );
        let flow = add_patch("k", "patches: [{path: x.yaml}]\n", "p.yaml", "Job", "j").unwrap_err();
        assert!(flow.to_string().contains("k:1"), "{flow}");
    }
}
