//! The repository as automation sees it: the head, what it generates, the workloads.

use std::sync::Arc;

use crate::automation::config::AutomationConfig;
use crate::error::{Error, Result};
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
    /// Every workload among the objects, each with its own errors (a workload with errors is
    /// listed but never edited).
    pub workloads: Vec<WorkloadManifest>,
}

impl RepoState {
    /// Refreshes `source`, reads its head under the configured paths and generates its objects.
    ///
    /// # Errors
    /// As [`RepoState::read_at`], or what the source says when it cannot be refreshed.
    pub async fn read(source: &Arc<dyn Source>, config: &AutomationConfig, generator: &dyn Generator) -> Result<Self> {
        let head = source.refresh().await?;
        Self::read_at(source, head, config, generator).await
    }

    /// Reads `revision` under the configured paths and generates its objects.
    ///
    /// # Errors
    /// What the source says, or [`Error::InvalidInput`](crate::Error::InvalidInput) at the first
    /// problem (with the count of all) when the generator reports any: automation never writes
    /// on top of a revision it cannot read completely. A workload with errors does not make the
    /// revision unusable; it carries them (see [`WorkloadManifest::errors`]).
    pub async fn read_at(
        source: &Arc<dyn Source>,
        revision: Revision,
        config: &AutomationConfig,
        generator: &dyn Generator,
    ) -> Result<Self> {
        let snapshot = Snapshot::read(source.clone(), revision.clone(), &config.paths).await?;
        let mut generated = generator.generate(&snapshot).await;
        if !generated.is_usable() {
            let mut errors = ManifestErrors::new();
            generated.errors.drain(..).for_each(|e| errors.push_error(e));
            return Err(errors.into());
        }
        let workloads = workloads_of_objects(&generated.objects);
        Ok(RepoState { head: revision, snapshot, generated: Arc::new(generated), workloads })
    }

    /// A workload by id, when it can be edited: [`Error::NotFound`](crate::Error::NotFound)
    /// when it is not in the repository, [`Error::InvalidInput`](crate::Error::InvalidInput) at
    /// its file and line, naming it and every error, when it has errors.
    pub fn editable_workload(&self, id: &ResourceId) -> Result<&WorkloadManifest> {
        let workload = self.workload(id).ok_or_else(|| Error::not_found(format!("workload {id}")))?;
        match workload.errors.first() {
            None => Ok(workload),
            Some(first) => Err(Error::invalid(
                first.location.clone(),
                format!("{id} cannot be changed until its manifest is fixed: {}", workload.error_messages()),
            )),
        }
    }

    /// A workload by id.
    pub fn workload(&self, id: &ResourceId) -> Option<&WorkloadManifest> {
        self.workloads.iter().find(|w| &w.id == id)
    }
}
