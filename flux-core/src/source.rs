//! The `Source` port: where the desired state lives, as files at revisions.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Location, Result};

/// An immutable revision of a [`Source`]: a git commit id, or any opaque id for other sources.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Revision(String);

impl Revision {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Revision(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 7 characters, as git prints short ids.
    pub fn short(&self) -> &str {
        self.0.get(..7).unwrap_or(&self.0)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revision({})", self.short())
    }
}

/// A file at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path from the repository root, `/`-separated, never starting with `/` or holding `..`.
    pub path: String,
    /// The exact bytes.
    pub content: Vec<u8>,
}

/// One change to one file in a [`CommitRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The path from the repository root (see [`normalize_path`]).
    pub path: String,
    /// The new bytes, or `None` to delete the file.
    pub content: Option<Vec<u8>>,
}

impl FileChange {
    /// Writes `content` at `path`.
    pub fn write(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        FileChange { path: path.into(), content: Some(content.into()) }
    }

    /// Deletes `path`.
    pub fn delete(path: impl Into<String>) -> Self {
        FileChange { path: path.into(), content: None }
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Author {
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
}

impl Author {
    /// An author.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Author { name: name.into(), email: email.into() }
    }
}

impl Default for Author {
    /// `Weave Flux <support@weave.works>`, as Flux v1 committed.
    fn default() -> Self {
        Author::new("Weave Flux", "support@weave.works")
    }
}

/// A set of file changes to publish as one new revision on top of `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    /// The revision the changes were computed against. If the source's head has moved past it,
    /// the commit fails with [`Error::Conflict`].
    pub base: Revision,
    /// The changes, applied in order (a later change to the same path wins).
    pub changes: Vec<FileChange>,
    /// Author (and committer) of the revision.
    pub author: Author,
    /// The full message; a git source uses it verbatim.
    pub message: String,
}

/// Where desired state lives: a git repository, or anything that has revisions of files.
///
/// # Contract
///
/// Every implementation guarantees:
///
/// - **Revisions are immutable.** Reading the same revision and paths always gives the same files,
///   byte for byte, whatever was committed since.
/// - **Paths** are relative to the repository root and `/`-separated. An empty path or `.` is the
///   root. A path that would leave the repository (`..`, an absolute path, or a symbolic link that
///   points outside) is [`Error::InvalidInput`]; implementations check with [`normalize_path`]
///   and never follow links out of the repository.
/// - [`Source::refresh`] fetches from the remote, if there is one, and returns the head revision
///   of the configured branch. With nothing new upstream it returns the same revision again and
///   should cost as little as the backend allows. A source that has no revision yet is
///   [`Error::NotFound`].
/// - [`Source::files`] returns every regular file under each given path (recursively; a path may
///   also name a single file), sorted by path, with no duplicates when paths overlap. A given path
///   that does not exist at the revision is [`Error::NotFound`] naming it, never an empty list:
///   an empty result would make the sync engine prune everything. An unknown revision is
///   [`Error::NotFound`].
/// - [`Source::read_file`] returns one file's bytes, or [`Error::NotFound`].
/// - [`Source::commit`] publishes all changes as **one** new revision whose parent is
///   `request.base`, and returns it; afterwards [`Source::refresh`] returns it (until someone
///   else moves the head). If the head is no longer `request.base` (someone pushed meanwhile,
///   or two writers raced), it fails with [`Error::Conflict`] and publishes nothing: a concurrent
///   writer is never overwritten. The caller refreshes, re-plans on the new head and tries again.
///   Changes that leave every file as it was publish nothing and return `request.base`. Deleting
///   a file that does not exist is [`Error::NotFound`]; a change to an invalid path is
///   [`Error::InvalidInput`]; either way nothing is published.
/// - [`Source::sync_marker`] returns the revision last passed to [`Source::set_sync_marker`]
///   by this handle, or by any handle on the same repository as of this handle's last
///   [`Source::refresh`]; `None` if there is none. Moving the marker
///   backwards or forwards is allowed. A read-only source fails `set_sync_marker` with
///   [`Error::Unauthorized`] and never writes.
/// - Handles are safe to use from several tasks at once (`Send + Sync`).
///
/// `flux_core::testkit::source` checks all of this against any implementation.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Source: Send + Sync {
    /// Fetches (when remote) and returns the head revision.
    async fn refresh(&self) -> Result<Revision>;

    /// Every file under `paths` at `revision`, sorted by path.
    async fn files(&self, revision: &Revision, paths: &[String]) -> Result<Vec<SourceFile>>;

    /// One file at `revision`.
    async fn read_file(&self, revision: &Revision, path: &str) -> Result<Vec<u8>>;

    /// Publishes `request.changes` as one revision on top of `request.base`.
    async fn commit(&self, request: &CommitRequest) -> Result<Revision>;

    /// The "last synced" marker.
    async fn sync_marker(&self) -> Result<Option<Revision>>;

    /// Moves the "last synced" marker to `revision`.
    async fn set_sync_marker(&self, revision: &Revision) -> Result<()>;
}

/// Checks and normalises a repository path: `/`-separated, relative, no `..`, no empty or `.`
/// components. The root is `""` (given as `""`, `.` or `./`).
///
/// # Errors
/// [`Error::InvalidInput`] naming the path when it is absolute, leaves the repository, or holds
/// a NUL or a backslash.
pub fn normalize_path(path: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(Location::file(path), format!("invalid repository path: {why}"));
    if path.starts_with('/') {
        return Err(bad("absolute paths are not allowed"));
    }
    if path.contains(['\0', '\\']) {
        return Err(bad("NUL and backslash are not allowed"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("'..' would leave the repository")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether `file` (normalised) is `dir` or lies under it; the root `""` holds everything.
pub fn path_is_under(file: &str, dir: &str) -> bool {
    dir.is_empty() || file == dir || (file.starts_with(dir) && file.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_path("").unwrap(), "");
        assert_eq!(normalize_path("./").unwrap(), "");
        assert_eq!(normalize_path("./apps//web/").unwrap(), "apps/web");
        for bad in ["/etc/passwd", "../x", "a/../../b", "a/..", "a\\b"] {
            let err = normalize_path(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}");
            assert!(err.to_string().starts_with(bad), "{err}");
        }
    }

    #[test]
    fn under_is_by_component() {
        assert!(path_is_under("apps/web.yaml", "apps"));
        assert!(path_is_under("apps", "apps"));
        assert!(!path_is_under("apps2/web.yaml", "apps"));
        assert!(path_is_under("anything", ""));
    }

    #[test]
    fn revision_short_form() {
        let r = Revision::new("0123456789abcdef");
        assert_eq!(r.short(), "0123456");
        assert_eq!(format!("{r:?}"), "Revision(0123456)");
        assert_eq!(Revision::new("ab").short(), "ab");
    }
}
