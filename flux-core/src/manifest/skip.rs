//! What under the sync paths is not read as Kubernetes objects, and why.
//!
//! Flux v1 skipped YAML documents without a `kind` and directories holding a Helm chart; these
//! rules are the same, stated exactly (see the README's "What is read, what is skipped"):
//!
//! - files that are not `*.yaml`, `*.yml` or `*.json` are not read (and not listed);
//! - a file under a directory whose name starts with `.` below the sync path (`.github/`,
//!   `.vscode/`) is skipped: the directory is listed once;
//! - every file in a directory with a `Chart.yaml` (a Helm chart: its templates are not
//!   manifests) is skipped: the chart directory is listed once;
//! - in the files read, a document that is not a mapping (a JSON array, a scalar), or a mapping
//!   with neither `apiVersion` nor `kind` (a CI workflow, a dashboard, a data file), is skipped
//!   and listed with its line. A document with either key is meant to be an object: whatever
//!   is wrong with it is an error of the revision.

use std::collections::BTreeSet;
use std::fmt;

use crate::source::{SourceFile, normalize_path, path_is_under};

use super::reader::is_manifest_path;

/// The file that makes a directory a Helm chart.
pub const CHART_FILE: &str = "Chart.yaml";

/// Something under the sync paths that was not read as Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// The file, or the directory (ending in `/`), relative to the repository root.
    pub path: String,
    /// The line of the document skipped, for documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Why.
    pub reason: SkipReason,
}

/// Why something was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A mapping with neither `apiVersion` nor `kind`.
    NotAnObject,
    /// A document that is not a mapping (a sequence, a scalar).
    NotAMapping,
    /// A directory with a `Chart.yaml`.
    HelmChart,
    /// A directory whose name starts with `.`.
    HiddenDirectory,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NotAnObject => "not a Kubernetes object (no apiVersion and no kind)",
            SkipReason::NotAMapping => "not a Kubernetes object (not a mapping)",
            SkipReason::HelmChart => "a Helm chart (it has a Chart.yaml): Helm renders it, not flux",
            SkipReason::HiddenDirectory => "a hidden directory",
        })
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

/// The manifest files among `files` (all under `paths`, `""` the root) that are read, and the
/// hidden and chart directories skipped (the rules are in the README, "What is read, what is skipped"). Files keep their order.
///
/// A path that leaves the repository (`..`, absolute: no honest [`Source`](crate::Source)
/// gives one) is never skipped, so that the reader refuses it by name.
pub fn select_manifest_files<'a>(files: &'a [SourceFile], paths: &[String]) -> (Vec<&'a SourceFile>, Vec<Skipped>) {
    let escapes = |f: &SourceFile| normalize_path(&f.path).is_err();
    let mut skipped_dirs: BTreeSet<(String, SkipReason)> = BTreeSet::new();
    let candidates: Vec<&SourceFile> = files.iter().filter(|f| is_manifest_path(&f.path)).collect();
    let mut visible = Vec::with_capacity(candidates.len());
    for file in candidates {
        if escapes(file) {
            visible.push(file);
            continue;
        }
        match hidden_directory(&file.path, paths) {
            Some(dir) => {
                skipped_dirs.insert((dir, SkipReason::HiddenDirectory));
            }
            None => visible.push(file),
        }
    }
    let charts: BTreeSet<&str> =
        visible.iter().filter(|f| !escapes(f)).filter_map(|f| chart_directory(&f.path)).collect();
    // The outermost charts: a sub-chart goes with its parent.
    let outermost: Vec<&str> =
        charts.iter().copied().filter(|c| !charts.iter().any(|o| o != c && path_is_under(c, o))).collect();
    let mut read = Vec::with_capacity(visible.len());
    for file in visible {
        if escapes(file) {
            read.push(file);
            continue;
        }
        match outermost.iter().find(|chart| path_is_under(&file.path, chart)) {
            Some(chart) => {
                skipped_dirs.insert((dir_path(chart), SkipReason::HelmChart));
            }
            None => read.push(file),
        }
    }
    let skipped = skipped_dirs.into_iter().map(|(path, reason)| Skipped { path, line: None, reason }).collect();
    (read, skipped)
}

/// `dir/`, or `./` for the root.
fn dir_path(dir: &str) -> String {
    if dir.is_empty() { "./".to_owned() } else { format!("{dir}/") }
}

/// The directory `path/Chart.yaml` makes a chart, if `path` is a chart file.
fn chart_directory(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some((dir, CHART_FILE)) => Some(dir),
        None if path == CHART_FILE => Some(""),
        _ => None,
    }
}

/// The first directory below the sync path `file` is under (the longest that contains it)
/// whose name starts with `.`, as `dir/`.
fn hidden_directory(file: &str, paths: &[String]) -> Option<String> {
    let base =
        paths.iter().filter(|p| path_is_under(file, p)).map(String::as_str).max_by_key(|p| p.len()).unwrap_or("");
    let relative = if base.is_empty() { file } else { file.strip_prefix(base)?.trim_start_matches('/') };
    let (dirs, _name) = relative.rsplit_once('/')?;
    let mut end = file.len() - relative.len();
    for component in dirs.split('/') {
        end += component.len();
        if component.starts_with('.') {
            return Some(format!("{}/", &file[..end]));
        }
        end += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> Vec<SourceFile> {
        paths.iter().map(|p| SourceFile { path: (*p).to_owned(), content: Vec::new() }).collect()
    }

    fn select(all: &[&str], paths: &[&str]) -> (Vec<String>, Vec<String>) {
        let files = files(all);
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        let (read, skipped) = select_manifest_files(&files, &paths);
        (read.iter().map(|f| f.path.clone()).collect(), skipped.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn hidden_directories_and_charts_are_skipped_once_each() {
        let (read, skipped) = select(
            &[
                ".github/workflows/ci.yml",
                ".github/dependabot.yml",
                ".gitlab-ci.yml",
                "README.md",
                "apps/web.yaml",
                "apps/.hidden/x.yaml",
                "charts/podinfo/Chart.yaml",
                "charts/podinfo/values.yaml",
                "charts/podinfo/templates/deployment.yaml",
                "charts/podinfo/charts/redis/Chart.yaml",
                "charts/podinfo/charts/redis/templates/a.yaml",
                "charts/README.md",
                "dashboards/web.json",
            ],
            &[""],
        );
        assert_eq!(read, [".gitlab-ci.yml", "apps/web.yaml", "dashboards/web.json"]);
        assert_eq!(
            skipped,
            [
                ".github/: a hidden directory",
                "apps/.hidden/: a hidden directory",
                "charts/podinfo/: a Helm chart (it has a Chart.yaml): Helm renders it, not flux",
            ]
        );
    }

    #[test]
    fn a_hidden_sync_path_itself_is_read() {
        let (read, skipped) =
            select(&[".deploy/a.yaml", ".deploy/.x/b.yaml", "other/.y/c.yaml"], &[".deploy", "other"]);
        assert_eq!(read, [".deploy/a.yaml"]);
        assert_eq!(skipped, [".deploy/.x/: a hidden directory", "other/.y/: a hidden directory"]);
    }

    #[test]
    fn a_chart_at_the_root_takes_everything() {
        let (read, skipped) = select(&["Chart.yaml", "templates/a.yaml", "values.yaml"], &[""]);
        assert!(read.is_empty());
        assert_eq!(skipped, ["./: a Helm chart (it has a Chart.yaml): Helm renders it, not flux"]);
    }
}
