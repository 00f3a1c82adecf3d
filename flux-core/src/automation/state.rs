//! The repository as automation sees it: the head, the files under the paths, the workloads.

use crate::automation::config::AutomationConfig;
use crate::error::{Error, Result};
use crate::manifest::{WorkloadManifest, read_manifests, workloads};
use crate::resource::ResourceId;
use crate::source::{Revision, Source, SourceFile, normalize_path};

/// The head revision of the source, its manifest files and workloads.
#[derive(Debug, Clone)]
pub struct RepoState {
    /// The revision read.
    pub head: Revision,
    /// Every file under the paths.
    pub files: Vec<SourceFile>,
    /// Every workload in them.
    pub workloads: Vec<WorkloadManifest>,
}

impl RepoState {
    /// Refreshes `source` and reads its head.
    ///
    /// # Errors
    /// What the source says, or [`Error::InvalidInput`] at the first bad manifest (with the count
    /// of all): automation never writes on top of a revision it cannot read completely.
    pub async fn read(source: &dyn Source, config: &AutomationConfig) -> Result<Self> {
        let head = source.refresh().await?;
        let paths = if config.paths.is_empty() {
            vec![String::new()]
        } else {
            config.paths.iter().map(|p| normalize_path(p)).collect::<Result<_>>()?
        };
        let files = source.files(&head, &paths).await?;
        let manifests = read_manifests(&files, &config.manifest_options)?;
        let workloads = workloads(&manifests)?;
        Ok(RepoState { head, files, workloads })
    }

    /// A workload by id.
    pub fn workload(&self, id: &ResourceId) -> Option<&WorkloadManifest> {
        self.workloads.iter().find(|w| &w.id == id)
    }

    /// The text of a file.
    pub(crate) fn text(&self, path: &str) -> Result<&str> {
        let file =
            self.files.iter().find(|f| f.path == path).ok_or_else(|| Error::not_found(format!("file {path}")))?;
        std::str::from_utf8(&file.content).map_err(|_| Error::invalid(crate::Location::file(path), "not UTF-8"))
    }
}
