//! The repository as automation sees it: the head, what it generates, the workloads.

use std::sync::Arc;

use crate::automation::config::AutomationConfig;
use crate::error::Result;
use crate::generate::{Generated, Generator, Snapshot};
use crate::manifest::{ManifestErrors, WorkloadManifest, workloads_of_objects};
use crate::resource::ResourceId;
use crate::source::{Revision, Source};

/// The head revision of the source, what the generator made of it, and its workloads.
#[derive(Debug, Clone)]
pub struct RepoState {
    /// The revision read.
    pub head: Revision,
    /// Its files.
    pub snapshot: Snapshot,
    /// What the generator made of them (no errors: automation never works on an unusable revision).
    pub generated: Arc<Generated>,
    /// Every workload among the objects.
    pub workloads: Vec<WorkloadManifest>,
}

impl RepoState {
    /// Refreshes `source`, reads its head under the configured paths and generates its objects.
    ///
    /// # Errors
    /// What the source says, or [`Error::InvalidInput`](crate::Error::InvalidInput) at the first
    /// problem (with the count of all) when the generator reports any or a workload is invalid:
    /// automation never writes on top of a revision it cannot read completely.
    pub async fn read(source: &Arc<dyn Source>, config: &AutomationConfig, generator: &dyn Generator) -> Result<Self> {
        let head = source.refresh().await?;
        let snapshot = Snapshot::read(source.clone(), head.clone(), &config.paths).await?;
        let mut generated = generator.generate(&snapshot).await;
        if !generated.is_usable() {
            let mut errors = ManifestErrors::new();
            generated.errors.drain(..).for_each(|e| errors.push_error(e));
            return Err(errors.into());
        }
        let workloads = workloads_of_objects(&generated.objects)?;
        Ok(RepoState { head, snapshot, generated: Arc::new(generated), workloads })
    }

    /// A workload by id.
    pub fn workload(&self, id: &ResourceId) -> Option<&WorkloadManifest> {
        self.workloads.iter().find(|w| &w.id == id)
    }
}
