use std::collections::BTreeMap;
use std::sync::Arc;

use crate::automation::config::{AutomationConfig, CompiledScope};
use crate::automation::release::{
    ContainerOutcome, ContainerRelease, ImageSelector, ReleaseResult, ReleaseSpec, WorkloadOutcome, WorkloadRelease,
    WorkloadSelector,
};
use crate::automation::scan::{ImageCatalog, scan};
use crate::automation::state::RepoState;
use crate::automation::write::{
    ImageChange, Planned, Proposal, Trailers, change_list, image_edits, message, plan_and_commit, split_failed,
};
use crate::error::Result;
use crate::generate::{Generator, ManifestGenerator};
use crate::image::ImageRepo;
use crate::manifest::{ContainerManifest, WorkloadManifest};
use crate::policy::TagFilter;
use crate::registry::Registry;
use crate::source::{Revision, Source};

/// An image change that could not be written, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedChange {
    /// The change.
    pub change: ImageChange,
    /// Why it failed.
    pub error: String,
}

/// A repository the registry could not tell about; its workloads were not updated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistryFailure {
    /// The repository.
    pub repository: ImageRepo,
    /// What the registry said.
    pub error: String,
}

/// What one automation pass did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AutomationReport {
    /// The revision committed, if anything changed.
    pub revision: Option<Revision>,
    /// The images changed, all in that one revision.
    pub changes: Vec<ImageChange>,
    /// Changes that could not be written.
    pub failed: Vec<FailedChange>,
    /// Repositories the registry could not tell about.
    pub registry_errors: Vec<RegistryFailure>,
}

/// One tag of a repository, as listed for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AvailableTag {
    /// The tag.
    pub tag: String,
    /// When its image was built, if it says.
    pub created: Option<jiff::Timestamp>,
}

/// One container's image and what its repository offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerImages {
    /// The container.
    pub container: String,
    /// Its image in git.
    pub current: crate::ImageRef,
    /// Its tag filter.
    pub filter: TagFilter,
    /// The tag its filter would choose now, if any.
    pub latest: Option<String>,
    /// Every tag of the repository, newest first (undated ones last, by name).
    pub available: Vec<AvailableTag>,
    /// Why the repository could not be listed, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A workload's containers and their images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadImages {
    /// The workload.
    pub workload: crate::ResourceId,
    /// Its containers.
    pub containers: Vec<ContainerImages>,
}

/// Registry → git: automation passes and releases. See [the module docs](crate::automation).
pub struct AutomationEngine {
    source: Arc<dyn Source>,
    registry: Arc<dyn Registry>,
    generator: Arc<dyn Generator>,
    config: AutomationConfig,
}

impl std::fmt::Debug for AutomationEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutomationEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What a container's filter chooses from a catalog.
enum Choice {
    Latest(String),
    None,
    RegistryError(String),
    NotScanned,
}

fn choose(catalog: &ImageCatalog, container: &ContainerManifest, filter: &TagFilter) -> Choice {
    let Ok(compiled) = filter.compile() else { return Choice::None };
    match catalog.tags(&container.image.repository()) {
        None => Choice::NotScanned,
        Some(Err(e)) => Choice::RegistryError(e.to_owned()),
        Some(Ok(tags)) => compiled.latest(tags).map_or(Choice::None, |c| Choice::Latest(c.tag.clone())),
    }
}

impl AutomationEngine {
    /// An engine writing to `source` what `registry` offers.
    /// Workloads are read from plain manifests ([`ManifestGenerator`] with the config's options);
    /// see [`AutomationEngine::with_generator`] for Kustomize and `.flux.yaml`.
    pub fn new(source: Arc<dyn Source>, registry: Arc<dyn Registry>, config: AutomationConfig) -> Self {
        let generator = Arc::new(ManifestGenerator::new(config.manifest_options.clone()));
        AutomationEngine { source, registry, generator, config }
    }

    /// The same engine, finding workloads with `generator` and writing changes through it: use the
    /// generator the sync engine uses, so that automation sees the workloads the cluster gets.
    pub fn with_generator(mut self, generator: Arc<dyn Generator>) -> Self {
        self.generator = generator;
        self
    }

    /// Its configuration.
    pub fn config(&self) -> &AutomationConfig {
        &self.config
    }

    /// The head of the source as this engine sees it: its files, objects and workloads.
    ///
    /// # Errors
    /// As [`RepoState::read`].
    pub async fn state(&self) -> Result<RepoState> {
        RepoState::read(&self.source, &self.config, self.generator.as_ref()).await
    }

    /// Every workload's (or one workload's) containers with the tags their repositories offer,
    /// newest first: what `fluxctl list-images` shows. Repositories outside the scope are listed
    /// without tags.
    ///
    /// # Errors
    /// When the repository cannot be read; registry errors are per container.
    pub async fn images(&self, only: Option<&crate::ResourceId>) -> Result<Vec<WorkloadImages>> {
        let scope = self.config.scope.compile()?;
        let state = RepoState::read(&self.source, &self.config, self.generator.as_ref()).await?;
        let chosen: Vec<&WorkloadManifest> =
            state.workloads.iter().filter(|w| only.is_none_or(|id| &w.id == id)).collect();
        if let Some(id) = only.filter(|_| chosen.is_empty()) {
            return Err(crate::Error::not_found(format!("workload {id}")));
        }
        let mut wanted: BTreeMap<ImageRepo, Vec<TagFilter>> = BTreeMap::new();
        for c in chosen.iter().flat_map(|w| &w.containers) {
            if scope.admits(&c.image.repository(), Some(&c.image)) {
                wanted.insert(c.image.repository(), vec![TagFilter::any()]);
            }
        }
        let catalog = scan(self.registry.as_ref(), wanted, self.config.registry_concurrency).await;
        Ok(chosen
            .into_iter()
            .map(|w| WorkloadImages {
                workload: w.id.clone(),
                containers: w
                    .containers
                    .iter()
                    .map(|c| {
                        let filter = w.policies.tag_filter(&c.name);
                        let (available, error) = match catalog.tags(&c.image.repository()) {
                            Some(Ok(tags)) => {
                                let mut list: Vec<AvailableTag> = tags
                                    .iter()
                                    .map(|t| AvailableTag { tag: t.tag.clone(), created: t.created })
                                    .collect();
                                list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.tag.cmp(&b.tag)));
                                (list, None)
                            }
                            Some(Err(e)) => (Vec::new(), Some(e.to_owned())),
                            None => (Vec::new(), None),
                        };
                        let latest = match choose(&catalog, c, &filter) {
                            Choice::Latest(tag) => Some(tag),
                            _ => None,
                        };
                        ContainerImages {
                            container: c.name.clone(),
                            current: c.image.clone(),
                            filter,
                            latest,
                            available,
                            error,
                        }
                    })
                    .collect(),
            })
            .collect())
    }

    /// One automation pass: every automated, unlocked workload's containers are moved to the
    /// latest image their filter allows, all in one commit. A conflict with another writer
    /// re-plans on the new head (the registry is not asked again).
    ///
    /// # Errors
    /// When the repository cannot be read (an unreadable manifest anywhere stops the pass: it
    /// never commits on top of a revision it cannot read), or the commit fails for good.
    pub async fn automate(&self) -> Result<AutomationReport> {
        let scope = self.config.scope.compile()?;
        let state = RepoState::read(&self.source, &self.config, self.generator.as_ref()).await?;
        let mut wanted: BTreeMap<ImageRepo, Vec<TagFilter>> = BTreeMap::new();
        for w in state.workloads.iter().filter(|w| w.policies.is_automatable()) {
            for c in &w.containers {
                let repo = c.image.repository();
                if scope.admits(&repo, Some(&c.image)) {
                    wanted.entry(repo).or_default().push(w.policies.tag_filter(&c.name));
                }
            }
        }
        let catalog = scan(self.registry.as_ref(), wanted, self.config.registry_concurrency).await;
        let registry_errors: Vec<RegistryFailure> = catalog
            .errors()
            .map(|(repository, error)| RegistryFailure { repository: repository.clone(), error: error.to_owned() })
            .collect();

        let (revision, (changes, failed), _) = plan_and_commit(
            &self.source,
            self.generator.as_ref(),
            &self.config,
            false,
            Some(state),
            |state| {
                let planned = automation_changes(state, &catalog, &scope);
                Ok(Proposal { edits: image_edits(&planned), outcome: (planned, Vec::new()) })
            },
            |_, (planned, _), failed| {
                let (changes, failed) = split_failed(planned, failed);
                let failed =
                    failed.into_iter().map(|(change, e)| FailedChange { change, error: e.to_string() }).collect();
                let title = match changes.as_slice() {
                    [one] => self.config.template.automation_single.replace("{image}", &one.to.to_string()),
                    many => self.config.template.automation_multiple.replace("{count}", &many.len().to_string()),
                };
                let trailers = Trailers { kind: "automation", ..Default::default() };
                let message = message(&self.config, &title, None, &change_list(&changes), &trailers);
                Ok(Planned { message, author: self.config.author.clone(), outcome: (changes, failed) })
            },
        )
        .await?;
        Ok(AutomationReport { revision, changes, failed, registry_errors })
    }

    /// A manual release. Locked workloads are refused unless forced; the result says, per
    /// workload and container, what happened and why.
    ///
    /// # Errors
    /// As [`AutomationEngine::automate`]. Per-workload problems are in the result, not errors.
    pub async fn release(&self, spec: &ReleaseSpec) -> Result<ReleaseResult> {
        let scope = self.config.scope.compile()?;
        let state = RepoState::read(&self.source, &self.config, self.generator.as_ref()).await?;
        let mut wanted: BTreeMap<ImageRepo, Vec<TagFilter>> = BTreeMap::new();
        match &spec.image {
            ImageSelector::Image(image) => {
                wanted.insert(image.repository(), Vec::new());
            }
            ImageSelector::AllLatest => {
                for w in selected(&state, spec).filter(|w| spec.force || w.policies.locked.is_none()) {
                    for c in &w.containers {
                        let repo = c.image.repository();
                        if scope.admits(&repo, Some(&c.image)) {
                            wanted.entry(repo).or_default().push(w.policies.tag_filter(&c.name));
                        }
                    }
                }
            }
        }
        let catalog = scan(self.registry.as_ref(), wanted, self.config.registry_concurrency).await;

        let (revision, workloads, _) = plan_and_commit(
            &self.source,
            self.generator.as_ref(),
            &self.config,
            spec.dry_run,
            Some(state),
            |state| {
                let results = release_plan(state, spec, &catalog, &scope);
                let changes: Vec<ImageChange> = results.iter().flat_map(changes_of).collect();
                Ok(Proposal { edits: image_edits(&changes), outcome: (results, changes) })
            },
            |_, (mut results, changes), failed| {
                let (done, failed) = split_failed(changes, failed);
                for (change, error) in &failed {
                    mark_edit_failed(&mut results, change, &error.to_string());
                }
                let image = match &spec.image {
                    ImageSelector::Image(i) => i.to_string(),
                    ImageSelector::AllLatest => "latest images".to_owned(),
                };
                let names: Vec<String> = results
                    .iter()
                    .filter(|r| r.outcome == WorkloadOutcome::Updated)
                    .map(|r| r.workload.to_string())
                    .collect();
                let title =
                    self.config.template.release.replace("{image}", &image).replace("{workloads}", &summarise(&names));
                let trailers = Trailers {
                    kind: "release",
                    job: spec.job.as_ref().map(ToString::to_string),
                    user: spec.cause.user.clone(),
                };
                let message =
                    message(&self.config, &title, spec.cause.message.as_deref(), &change_list(&done), &trailers);
                Ok(Planned { message, author: self.config.author.clone(), outcome: (results, Vec::new()) })
            },
        )
        .await?;
        let (workloads, _) = workloads;
        Ok(ReleaseResult { revision, workloads, dry_run: spec.dry_run })
    }
}

/// "a, b, c" or "a, b and 3 more".
fn summarise(names: &[String]) -> String {
    match names.len() {
        0..=3 => names.join(", "),
        n => format!("{} and {} more", names[..2].join(", "), n - 2),
    }
}

/// The changes an automation pass makes on `state`.
fn automation_changes(state: &RepoState, catalog: &ImageCatalog, scope: &CompiledScope) -> Vec<ImageChange> {
    let mut changes = Vec::new();
    for w in state.workloads.iter().filter(|w| w.policies.is_automatable()) {
        for c in &w.containers {
            if !scope.admits(&c.image.repository(), Some(&c.image)) {
                continue;
            }
            if let Choice::Latest(tag) = choose(catalog, c, &w.policies.tag_filter(&c.name))
                && c.image.tag() != Some(tag.as_str())
            {
                changes.push(ImageChange {
                    workload: w.id.clone(),
                    container: c.name.clone(),
                    from: c.image.clone(),
                    to: c.image.with_tag(&tag),
                });
            }
        }
    }
    changes
}

fn selected<'a>(state: &'a RepoState, spec: &'a ReleaseSpec) -> impl Iterator<Item = &'a WorkloadManifest> {
    state.workloads.iter().filter(move |w| match &spec.workloads {
        WorkloadSelector::All => true,
        WorkloadSelector::Only(ids) => ids.contains(&w.id),
    })
}

fn release_plan(
    state: &RepoState,
    spec: &ReleaseSpec,
    catalog: &ImageCatalog,
    scope: &CompiledScope,
) -> Vec<WorkloadRelease> {
    let mut results: Vec<WorkloadRelease> =
        selected(state, spec).map(|w| release_workload(w, spec, catalog, scope)).collect();
    if let WorkloadSelector::Only(ids) = &spec.workloads {
        for id in ids.iter().filter(|id| state.workload(id).is_none()) {
            results.push(WorkloadRelease {
                workload: id.clone(),
                outcome: WorkloadOutcome::Failed { error: "not found among the repository's workloads".into() },
                containers: Vec::new(),
            });
        }
    }
    results
}

fn release_workload(
    w: &WorkloadManifest,
    spec: &ReleaseSpec,
    catalog: &ImageCatalog,
    scope: &CompiledScope,
) -> WorkloadRelease {
    let skipped = |reason: &str| WorkloadRelease {
        workload: w.id.clone(),
        outcome: WorkloadOutcome::Skipped { reason: reason.to_owned() },
        containers: Vec::new(),
    };
    if spec.excludes.contains(&w.id) {
        return skipped("excluded");
    }
    if w.policies.locked.is_some() && !spec.force {
        return skipped("locked");
    }
    let containers: Vec<ContainerRelease> = w
        .containers
        .iter()
        .map(|c| {
            let filter = w.policies.tag_filter(&c.name);
            let outcome = match &spec.image {
                ImageSelector::Image(image) => release_image(c, image, &filter, spec.force, catalog),
                ImageSelector::AllLatest if !scope.admits(&c.image.repository(), Some(&c.image)) => {
                    ContainerOutcome::NoCandidate
                }
                ImageSelector::AllLatest => match choose(catalog, c, &filter) {
                    Choice::Latest(tag) if c.image.tag() == Some(tag.as_str()) => ContainerOutcome::UpToDate,
                    Choice::Latest(tag) => ContainerOutcome::Updated { to: c.image.with_tag(&tag) },
                    Choice::None | Choice::NotScanned => ContainerOutcome::NoCandidate,
                    Choice::RegistryError(error) => ContainerOutcome::RegistryError { error },
                },
            };
            ContainerRelease { container: c.name.clone(), current: c.image.clone(), outcome }
        })
        .collect();
    WorkloadRelease { workload: w.id.clone(), outcome: overall(&containers, &spec.image), containers }
}

fn release_image(
    c: &ContainerManifest,
    image: &crate::ImageRef,
    filter: &TagFilter,
    force: bool,
    catalog: &ImageCatalog,
) -> ContainerOutcome {
    if c.image.repository() != image.repository() {
        return ContainerOutcome::DoesNotUseImage;
    }
    let to = c.image.with_tag(image.tag().unwrap_or("latest"));
    if c.image.same_image(&to) {
        return ContainerOutcome::UpToDate;
    }
    let tag = to.tag().unwrap_or_default();
    if !force && !filter.compile().is_ok_and(|f| f.matches(tag)) {
        return ContainerOutcome::FilterExcludes { filter: filter.to_string() };
    }
    match catalog.tags(&image.repository()) {
        Some(Ok(tags)) if tags.iter().any(|t| t.tag == tag) => ContainerOutcome::Updated { to },
        Some(Ok(_)) => ContainerOutcome::NotInRegistry,
        Some(Err(error)) => ContainerOutcome::RegistryError { error: error.to_owned() },
        None => ContainerOutcome::RegistryError { error: "the repository was not scanned".into() },
    }
}

fn overall(containers: &[ContainerRelease], image: &ImageSelector) -> WorkloadOutcome {
    let any = |f: fn(&ContainerOutcome) -> bool| containers.iter().any(|c| f(&c.outcome));
    if any(|o| matches!(o, ContainerOutcome::Updated { .. })) {
        WorkloadOutcome::Updated
    } else if let Some(error) = containers.iter().find_map(|c| match &c.outcome {
        ContainerOutcome::RegistryError { error } | ContainerOutcome::EditFailed { error } => Some(error.clone()),
        _ => None,
    }) {
        WorkloadOutcome::Failed { error }
    } else if matches!(image, ImageSelector::Image(_))
        && containers.iter().all(|c| c.outcome == ContainerOutcome::DoesNotUseImage)
    {
        WorkloadOutcome::Skipped { reason: "does not use the image".into() }
    } else if any(|o| matches!(o, ContainerOutcome::FilterExcludes { .. } | ContainerOutcome::NotInRegistry)) {
        let reason = containers
            .iter()
            .find_map(|c| match &c.outcome {
                ContainerOutcome::FilterExcludes { filter } => Some(format!("tag filter {filter} excludes the tag")),
                ContainerOutcome::NotInRegistry => Some("image not in the registry".into()),
                _ => None,
            })
            .unwrap_or_default();
        WorkloadOutcome::Skipped { reason }
    } else {
        WorkloadOutcome::UpToDate
    }
}

fn changes_of(r: &WorkloadRelease) -> Vec<ImageChange> {
    r.containers
        .iter()
        .filter_map(|c| match &c.outcome {
            ContainerOutcome::Updated { to } => Some(ImageChange {
                workload: r.workload.clone(),
                container: c.container.clone(),
                from: c.current.clone(),
                to: to.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn mark_edit_failed(results: &mut [WorkloadRelease], change: &ImageChange, error: &str) {
    for r in results.iter_mut().filter(|r| r.workload == change.workload) {
        for c in r.containers.iter_mut().filter(|c| c.container == change.container) {
            c.outcome = ContainerOutcome::EditFailed { error: error.to_owned() };
        }
        r.outcome = overall(&r.containers, &ImageSelector::AllLatest);
    }
}
