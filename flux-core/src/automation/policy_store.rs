//! The default [`PolicyStore`]: policies as annotations on the workloads' manifests in the
//! source, as Flux v1 kept them, edited losslessly and committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::automation::config::AutomationConfig;
use crate::automation::state::RepoState;
use crate::automation::write::{CommitAs, Planned, Proposal, Trailers, message, plan_and_commit};
use crate::error::Result;
use crate::generate::{EditChange, Generator, WorkloadEdit};
use crate::manifest::{WorkloadManifest, annotation_edits};
use crate::policy::{ChangeCause, Policies, PolicyChange, PolicyDiff, PolicyStore, PolicyUpdate, TagFilter};
use crate::resource::ResourceId;
use crate::source::Source;

/// Keeps policies as `fluxcd.io/*` annotations in the manifests of a [`Source`].
///
/// `policies` reads the head; `update` edits only the annotation lines of the workloads whose
/// policies change (a workload whose manifest has errors is refused, naming it and them; the
/// others are unaffected by it) and commits them as one revision (`Automated: ns:deployment/x`,
/// `Locked: …`, …, with the cause's message and trailers). A concurrent push is met by planning
/// again on the new head, up to [`AutomationConfig::max_conflict_retries`] times.
pub struct ManifestPolicyStore {
    source: Arc<dyn Source>,
    generator: Arc<dyn Generator>,
    config: AutomationConfig,
}

impl std::fmt::Debug for ManifestPolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestPolicyStore").field("paths", &self.config.paths).finish_non_exhaustive()
    }
}

impl ManifestPolicyStore {
    /// A store over the manifests under `config.paths` in `source`, finding workloads with
    /// `generator` and writing policies through it (into a Kustomize app's files, a `.flux.yaml`
    /// patch file or updater, ...): give it the generator the sync engine uses.
    pub fn new(source: Arc<dyn Source>, generator: Arc<dyn Generator>, config: AutomationConfig) -> Self {
        ManifestPolicyStore { source, generator, config }
    }

    /// [`PolicyStore::update`], committing as `commit` says (author, `Flux-Job:`).
    ///
    /// # Errors
    /// As [`PolicyStore::update`].
    pub async fn update_as(
        &self,
        updates: &[PolicyUpdate],
        cause: &ChangeCause,
        commit: &CommitAs,
    ) -> Result<Vec<PolicyDiff>> {
        let (_, diffs, _) = plan_and_commit(
            &self.source,
            self.generator.as_ref(),
            &self.config,
            false,
            None,
            |state| {
                let (diffs, edits) = plan_policies(state, updates)?;
                Ok(Proposal { edits, outcome: diffs })
            },
            |_, diffs, failed| {
                if let Some((_, error)) = failed.into_iter().next() {
                    return Err(error);
                }
                let changed: Vec<&PolicyUpdate> =
                    updates.iter().filter(|u| diffs.iter().any(|d| d.workload == u.workload)).collect();
                let verbs: Vec<&str> = changed.iter().flat_map(|u| u.changes.iter().map(verb)).collect();
                let verb = match verbs.first() {
                    Some(first) if verbs.iter().all(|v| v == first) => *first,
                    _ => "Updated policies",
                };
                let names: Vec<String> = diffs.iter().map(|d| d.workload.to_string()).collect();
                let title = format!("{verb}: {}", names.join(", "));
                let trailers = Trailers { kind: "policy", job: commit.job.clone(), user: cause.user.clone() };
                let message = message(&self.config, &title, cause.message.as_deref(), "", &trailers);
                Ok(Planned { message, author: commit.author_or(&self.config), outcome: diffs })
            },
        )
        .await?;
        Ok(diffs)
    }
}

/// The changes that set (`Some`) or clear (`None`) the tag filter of every container of
/// `workload` (what `fluxctl policy --tag-all` asks for).
pub fn tag_all_containers(workload: &WorkloadManifest, filter: Option<&TagFilter>) -> Vec<PolicyChange> {
    workload
        .containers
        .iter()
        .map(|c| match filter {
            Some(filter) => PolicyChange::SetTagFilter { container: c.name.clone(), filter: filter.clone() },
            None => PolicyChange::ClearTagFilter { container: c.name.clone() },
        })
        .collect()
}

fn verb(change: &PolicyChange) -> &'static str {
    match change {
        PolicyChange::Automate => "Automated",
        PolicyChange::Deautomate => "Deautomated",
        PolicyChange::Lock(_) => "Locked",
        PolicyChange::Unlock => "Unlocked",
        PolicyChange::SetTagFilter { .. } | PolicyChange::ClearTagFilter { .. } => "Updated tag filters",
    }
}

/// Plans the edits of `updates` on `state`: the diffs, and the annotation edits that make them.
fn plan_policies(state: &RepoState, updates: &[PolicyUpdate]) -> Result<(Vec<PolicyDiff>, Vec<WorkloadEdit>)> {
    let mut after: BTreeMap<&ResourceId, Policies> = BTreeMap::new();
    let mut order: Vec<&WorkloadManifest> = Vec::new();
    for update in updates {
        let workload = state.editable_workload(&update.workload)?;
        let current = after.remove(&workload.id).unwrap_or_else(|| {
            order.push(workload);
            workload.policies.clone()
        });
        after.insert(&workload.id, update.changes.iter().fold(current, Policies::with));
    }
    let mut diffs = Vec::new();
    let mut edits = Vec::new();
    for workload in order {
        let Some(new) = after.remove(&workload.id) else { continue };
        if new == workload.policies {
            continue;
        }
        let changes = updates.iter().filter(|u| u.workload == workload.id).flat_map(|u| &u.changes);
        edits.extend(changes.flat_map(annotation_edits).map(|(key, value)| WorkloadEdit {
            workload: workload.id.clone(),
            change: EditChange::Annotation { key, value },
        }));
        diffs.push(PolicyDiff { workload: workload.id.clone(), before: workload.policies.clone(), after: new });
    }
    Ok((diffs, edits))
}

#[async_trait]
impl PolicyStore for ManifestPolicyStore {
    async fn policies(&self) -> Result<BTreeMap<ResourceId, Policies>> {
        let state = RepoState::read(&self.source, &self.config, self.generator.as_ref()).await?;
        Ok(state.workloads.into_iter().map(|w| (w.id, w.policies)).collect())
    }

    async fn update(&self, updates: &[PolicyUpdate], cause: &ChangeCause) -> Result<Vec<PolicyDiff>> {
        self.update_as(updates, cause, &CommitAs::default()).await
    }
}
