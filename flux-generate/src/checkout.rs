//! A revision's files in a temporary directory, for commands to read and change.
//!
//! [`SourceFile`] has no executable bit, so every file is written non-executable: a script in
//! the repository is run as `sh script.sh`, not `./script.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flux_core::source::normalize_path;
use flux_core::{Error, FileChange, Location, Result, SourceFile};

/// A temporary directory holding a revision's files; removed on drop.
///
/// Its methods do blocking file I/O: from async code, call them in
/// `tokio::task::spawn_blocking` when the revision is large.
#[derive(Debug)]
pub struct Checkout {
    dir: tempfile::TempDir,
}

impl Checkout {
    /// Writes `files` into a new temporary directory.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a path that is empty or leaves the repository
    /// (see [`normalize_path`]); [`Error::Other`] when a file cannot be written (for instance
    /// when one path is both a file and a directory).
    pub fn new(files: &[SourceFile]) -> Result<Checkout> {
        let dir = tempfile::Builder::new()
            .prefix("flux-checkout-")
            .tempdir()
            .map_err(|e| Error::other_with("cannot create a checkout directory", e))?;
        let checkout = Checkout { dir };
        for file in files {
            let path = checkout.join(&file.path)?;
            if path == checkout.path() {
                return Err(Error::invalid(Location::file(&file.path), "a file needs a path"));
            }
            let write = || {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, &file.content)
            };
            write().map_err(|e| Error::other_with(format!("cannot write {} into the checkout", file.path), e))?;
        }
        Ok(checkout)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of a repository path (`""` is the root).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `repo_path` leaves the repository.
    pub fn join(&self, repo_path: &str) -> Result<PathBuf> {
        let normalized = normalize_path(repo_path)?;
        Ok(if normalized.is_empty() { self.path().to_owned() } else { self.path().join(normalized) })
    }

    /// What commands changed, compared with the `original` files the checkout was made from:
    /// a write for every new or modified regular file, a delete for every file gone, sorted by
    /// path. Symbolic links and special files are ignored (never followed).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a file whose name is not UTF-8 or is not a valid repository
    /// path (a backslash in it, say); [`Error::Other`] when the directory cannot be read.
    pub fn changes(&self, original: &[SourceFile]) -> Result<Vec<FileChange>> {
        let mut before = BTreeMap::new();
        for file in original {
            before.insert(normalize_path(&file.path)?, file.content.as_slice());
        }
        let mut after = BTreeMap::new();
        self.walk(self.path(), &mut after)?;
        let mut changes: BTreeMap<&str, FileChange> = BTreeMap::new();
        for (path, content) in &after {
            if before.get(path) != Some(&content.as_slice()) {
                changes.insert(path, FileChange::write(path.clone(), content.clone()));
            }
        }
        for path in before.keys().filter(|p| !after.contains_key(*p)) {
            changes.insert(path, FileChange::delete(path.clone()));
        }
        Ok(changes.into_values().collect())
    }

    /// Every regular file under `dir`, by repository path.
    fn walk(&self, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        let io = |path: &Path, e: std::io::Error| Error::other_with(format!("cannot read {}", path.display()), e);
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| io(&path, e))?;
            if kind.is_dir() {
                self.walk(&path, files)?;
            } else if kind.is_file() {
                let relative = path.strip_prefix(self.path()).unwrap_or(&path);
                let Some(name) = relative.to_str() else {
                    let shown = relative.to_string_lossy();
                    return Err(Error::invalid(
                        Location::file(shown),
                        "a command wrote a file whose name is not UTF-8",
                    ));
                };
                let name = normalize_path(name)?;
                files.insert(name, std::fs::read(&path).map_err(|e| io(&path, e))?);
            }
        }
        Ok(())
    }
}
