//! The files of one revision, as generators see them.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::error::{Error, Location, Result};
use crate::source::{Revision, Source, SourceFile, normalize_path, path_is_under};

/// The files of one revision of a source: those under the sync paths, read up front, and the
/// whole repository on demand (Kustomize bases and `.flux.yaml` files may live outside the paths).
///
/// Revisions are immutable, so a snapshot can be kept and shared; cloning it is cheap.
#[derive(Clone)]
pub struct Snapshot {
    source: Arc<dyn Source>,
    revision: Revision,
    paths: Vec<String>,
    files: Arc<Vec<SourceFile>>,
    everything: Arc<OnceCell<Arc<Vec<SourceFile>>>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("revision", &self.revision)
            .field("paths", &self.paths)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Reads the files under `paths` (empty: the root) of `revision`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a path that leaves the repository; what the source says
    /// otherwise (a path that does not exist is [`Error::NotFound`], never an empty snapshot).
    pub async fn read(source: Arc<dyn Source>, revision: Revision, paths: &[String]) -> Result<Self> {
        let paths = if paths.is_empty() {
            vec![String::new()]
        } else {
            paths.iter().map(|p| normalize_path(p)).collect::<Result<Vec<_>>>()?
        };
        let files = source.files(&revision, &paths).await?;
        Ok(Snapshot { source, revision, paths, files: Arc::new(files), everything: Default::default() })
    }

    /// A snapshot of files already read (for tests and embedders that hold files in memory);
    /// [`Snapshot::all_files`] still asks `source` for the rest of the repository.
    pub fn from_files(
        source: Arc<dyn Source>,
        revision: Revision,
        paths: Vec<String>,
        mut files: Vec<SourceFile>,
    ) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Snapshot { source, revision, paths, files: Arc::new(files), everything: Default::default() }
    }

    /// The revision.
    pub fn revision(&self) -> &Revision {
        &self.revision
    }

    /// The sync paths, normalised (`""` is the root).
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The files under the sync paths, sorted by path.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Every file of the revision, sorted by path; read from the source the first time.
    ///
    /// # Errors
    /// What the source says.
    pub async fn all_files(&self) -> Result<Arc<Vec<SourceFile>>> {
        if self.paths.iter().any(String::is_empty) {
            return Ok(self.files.clone());
        }
        let all = self
            .everything
            .get_or_try_init(|| async { self.source.files(&self.revision, &[String::new()]).await.map(Arc::new) })
            .await?;
        Ok(all.clone())
    }

    /// One file's bytes, from the files read when it is among them.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such file; what the source says otherwise.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let path = normalize_path(path)?;
        if let Some(file) = self.file(&path) {
            return Ok(file.content.clone());
        }
        if self.paths.iter().any(|p| path_is_under(&path, p)) {
            return Err(Error::not_found(format!("file {path} at {}", self.revision.short())));
        }
        self.source.read_file(&self.revision, &path).await
    }

    /// A file under the sync paths, by its normalised path.
    pub fn file(&self, path: &str) -> Option<&SourceFile> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }

    /// A file under the sync paths as UTF-8 text.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not among them, [`Error::InvalidInput`] when it is not UTF-8.
    pub fn text(&self, path: &str) -> Result<&str> {
        let file = self.file(path).ok_or_else(|| Error::not_found(format!("file {path}")))?;
        std::str::from_utf8(&file.content).map_err(|_| Error::invalid(Location::file(path), "not UTF-8"))
    }
}
