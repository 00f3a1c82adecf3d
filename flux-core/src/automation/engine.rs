use std::sync::{Arc, Mutex, PoisonError};

use crate::automation::config::{AutomationConfig, CompiledScope};
use crate::automation::release::{
    ContainerOutcome, ContainerRelease, ImageSelector, ReleaseResult, ReleaseSpec, WorkloadOutcome, WorkloadRelease,
    WorkloadSelector,
};
use crate::automation::scan::{ImageCatalog, Wanted, scan};
use crate::automation::state::RepoState;
use crate::automation::write::{
    CommitAs, ImageChange, Planned, Proposal, Trailers, change_list, image_edits, message, plan_and_commit,
    split_failed,
};
use crate::error::Result;
use crate::generate::Generator;
use crate::image::ImageRepo;
use crate::manifest::{ContainerManifest, WorkloadManifest};
use crate::policy::{Ignore, TagFilter};
use crate::registry::{Registry, WorkloadRegistries};
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
    /// Workloads left alone, and why: automated ones marked `fluxcd.io/ignore: "true"`
    /// (`ignore`), and every workload whose manifest has errors (their text).
    #[serde(default)]
    pub skipped: Vec<SkippedWorkload>,
}

/// A workload an automation pass left alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedWorkload {
    /// The workload.
    pub workload: crate::ResourceId,
    /// Why: `ignore`, or its errors (`file:line: workload: message; ...`).
    pub reason: String,
}

/// The head revision could not be used; a listing answers from the last usable revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadProblem {
    /// The head, when the source could be refreshed.
    pub revision: Option<Revision>,
    /// Why it cannot be used.
    pub error: String,
}

/// What a listing (`fluxctl list-workloads`, `list-images`) answers from.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The head when it is usable, else the last usable revision.
    pub state: RepoState,
    /// Why the head is not what is listed, when it is not.
    pub head_problem: Option<HeadProblem>,
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
    /// Its containers (those whose image cannot be read are in `error` instead).
    pub containers: Vec<ContainerImages>,
    /// What is wrong with its manifest, when something is (`file:line: workload: message; ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Registry → git: automation passes and releases. See [the module docs](crate::automation).
pub struct AutomationEngine {
    source: Arc<dyn Source>,
    registry: Arc<dyn Registry>,
    generator: Arc<dyn Generator>,
    config: AutomationConfig,
    /// The last usable revision read, for listings while the head is unusable.
    last_usable: Mutex<Option<RepoState>>,
    /// What was wrong with the head at the last read, if anything.
    head_problem: Mutex<Option<HeadProblem>>,
    /// Per-workload registry views (pull secrets), if any.
    workload_registries: Option<Arc<dyn WorkloadRegistries>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

fn choose(
    catalog: &ImageCatalog,
    workload: &WorkloadManifest,
    container: &ContainerManifest,
    filter: &TagFilter,
) -> Choice {
    let Ok(compiled) = filter.compile() else { return Choice::None };
    match catalog.tags_for(&workload.id, &container.image.repository()) {
        None => Choice::NotScanned,
        Some(Err(e)) => Choice::RegistryError(e.to_string()),
        Some(Ok(tags)) => compiled.latest(tags).map_or(Choice::None, |c| Choice::Latest(c.tag.clone())),
    }
}

impl AutomationEngine {
    /// An engine writing to `source` what `registry` offers, finding workloads with `generator`
    /// and writing changes through it: give it the generator the sync engine uses, so that
    /// automation sees the workloads the cluster gets (plain manifests:
    /// [`ManifestGenerator`](crate::generate::ManifestGenerator)).
    pub fn new(
        source: Arc<dyn Source>,
        registry: Arc<dyn Registry>,
        generator: Arc<dyn Generator>,
        config: AutomationConfig,
    ) -> Self {
        AutomationEngine {
            source,
            registry,
            generator,
            config,
            last_usable: Mutex::default(),
            head_problem: Mutex::default(),
            workload_registries: None,
        }
    }

    /// The same engine, scanning each workload's images through the view `registries` gives it
    /// (its image pull secrets, say), asked once per pass, listing or release; workloads without
    /// one, and hosts a view has no credentials of its own for, use the engine's registry.
    /// Results got through different credentials are never mixed.
    pub fn with_workload_registries(mut self, registries: Arc<dyn WorkloadRegistries>) -> Self {
        self.workload_registries = Some(registries);
        self
    }

    /// What to scan for: nothing yet, routed through the views of `workloads` (if any).
    async fn wanted(&self, state: &RepoState, workloads: &[&WorkloadManifest]) -> Wanted {
        let Some(registries) = &self.workload_registries else { return Wanted::default() };
        let ids: std::collections::BTreeSet<&crate::ResourceId> = workloads.iter().map(|w| &w.id).collect();
        let objects: Vec<&crate::KubeObject> =
            state.generated.objects.iter().filter(|o| ids.contains(o.id())).collect();
        if objects.is_empty() {
            return Wanted::default();
        }
        Wanted::new(registries.views(&objects).await)
    }

    /// Its configuration.
    pub fn config(&self) -> &AutomationConfig {
        &self.config
    }

    /// The head of the source as this engine sees it: its files, objects and workloads. Every
    /// read is remembered: a usable head for [`AutomationEngine::listing`], a problem for
    /// [`AutomationEngine::head_problem`]. A head already read is not read again: revisions are
    /// immutable (the [`Source`](crate::Source) contract), so its files, objects and workloads are the same.
    ///
    /// # Errors
    /// As [`RepoState::read`].
    pub async fn state(&self) -> Result<RepoState> {
        let head = self.source.refresh().await;
        let revision = head.as_ref().ok().cloned();
        if let Some(known) = lock(&self.last_usable).as_ref().filter(|s| Some(&s.head) == revision.as_ref()) {
            *lock(&self.head_problem) = None;
            return Ok(known.clone());
        }
        let read = match head {
            Ok(head) => RepoState::read_at(&self.source, head, &self.config, self.generator.as_ref()).await,
            Err(e) => Err(e),
        };
        match read {
            Ok(state) => {
                *lock(&self.last_usable) = Some(state.clone());
                *lock(&self.head_problem) = None;
                Ok(state)
            }
            Err(e) => {
                *lock(&self.head_problem) = Some(HeadProblem { revision, error: e.to_string() });
                Err(e)
            }
        }
    }

    /// What was wrong with the head the last time this engine read it (a listing, an automation
    /// pass, a release), if anything.
    pub fn head_problem(&self) -> Option<HeadProblem> {
        lock(&self.head_problem).clone()
    }

    /// What listings answer from: the head when it is usable; else the last usable revision
    /// this engine read (or, after a restart, the source's sync marker, which only a fully
    /// successful sync moves), with the head's problem. Only listings do this: automation,
    /// releases and policy changes refuse an unusable head.
    ///
    /// # Errors
    /// The head's error, when no usable revision is known.
    pub async fn listing(&self) -> Result<Listing> {
        let error = match self.state().await {
            Ok(state) => return Ok(Listing { state, head_problem: None }),
            Err(e) => e,
        };
        let head_problem = self.head_problem();
        let last = lock(&self.last_usable).clone();
        let last = match last {
            Some(state) => Some(state),
            None => self.marked_state(head_problem.as_ref().and_then(|p| p.revision.as_ref())).await,
        };
        match last {
            Some(state) => {
                let head = head_problem.as_ref().and_then(|p| p.revision.as_ref()).map(Revision::short);
                tracing::debug!(?head, listed = state.head.short(), %error, "listing the last usable revision");
                Ok(Listing { state, head_problem })
            }
            None => Err(error),
        }
    }

    /// The sync marker's revision, read, when it is not `head` and is usable.
    async fn marked_state(&self, head: Option<&Revision>) -> Option<RepoState> {
        let marker = self.source.sync_marker().await.ok().flatten().filter(|m| Some(m) != head)?;
        let state = RepoState::read_at(&self.source, marker, &self.config, self.generator.as_ref()).await.ok()?;
        *lock(&self.last_usable) = Some(state.clone());
        Some(state)
    }

    /// Every workload's (or one workload's) containers with the tags their repositories offer,
    /// newest first: what `fluxctl list-images` shows, from [`AutomationEngine::listing`]'s
    /// revision (see [`AutomationEngine::images_in`] to know which it was).
    ///
    /// # Errors
    /// As [`AutomationEngine::images_in`].
    pub async fn images(&self, only: Option<&crate::ResourceId>) -> Result<Vec<WorkloadImages>> {
        let listing = self.listing().await?;
        self.images_in(&listing.state, only).await
    }

    /// Every workload's (or one workload's) containers in `state` with the tags their
    /// repositories offer, newest first. Repositories outside the scope are listed without
    /// tags; a workload with errors is listed with them, its readable containers scanned.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a workload `only` that is not there;
    /// registry errors are per container.
    pub async fn images_in(&self, state: &RepoState, only: Option<&crate::ResourceId>) -> Result<Vec<WorkloadImages>> {
        let scope = self.config.scope.compile()?;
        let chosen: Vec<&WorkloadManifest> =
            state.workloads.iter().filter(|w| only.is_none_or(|id| &w.id == id)).collect();
        if let Some(id) = only.filter(|_| chosen.is_empty()) {
            return Err(crate::Error::not_found(format!("workload {id}")));
        }
        let mut wanted = self.wanted(state, &chosen).await;
        for w in &chosen {
            for c in w.containers.iter().filter(|c| scope.admits(&c.image.repository(), Some(&c.image))) {
                wanted.add(&w.id, c.image.repository(), [TagFilter::any()]);
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
                        let (available, error) = match catalog.tags_for(&w.id, &c.image.repository()) {
                            Some(Ok(tags)) => {
                                let mut list: Vec<AvailableTag> = tags
                                    .iter()
                                    .map(|t| AvailableTag { tag: t.tag.clone(), created: t.created })
                                    .collect();
                                list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.tag.cmp(&b.tag)));
                                (list, None)
                            }
                            Some(Err(e)) => (Vec::new(), Some(e.to_string())),
                            None => (Vec::new(), None),
                        };
                        let latest = match choose(&catalog, w, c, &filter) {
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
                error: (!w.is_valid()).then(|| w.error_text()),
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
        self.automate_as(&CommitAs::default()).await
    }

    /// [`AutomationEngine::automate`], committing as `commit` says (author, `Flux-Job:`).
    ///
    /// # Errors
    /// As [`AutomationEngine::automate`].
    pub async fn automate_as(&self, commit: &CommitAs) -> Result<AutomationReport> {
        self.automate_skipping(commit, &Suspended::new()).await
    }

    /// [`AutomationEngine::automate_as`], leaving alone the workloads in `suspended` (their
    /// automation suspended by someone): each automated one is reported skipped, with the
    /// reason given for it.
    ///
    /// # Errors
    /// As [`AutomationEngine::automate`].
    pub async fn automate_skipping(&self, commit: &CommitAs, suspended: &Suspended) -> Result<AutomationReport> {
        let scope = self.config.scope.compile()?;
        let state = self.state().await?;
        let mut skipped = skipped_by_automation(&state);
        for w in state.workloads.iter().filter(|w| is_automated(w)) {
            if let Some(reason) = suspended.get(&w.id) {
                skipped.push(SkippedWorkload { workload: w.id.clone(), reason: reason.clone() });
            }
        }
        let automated: Vec<&WorkloadManifest> =
            state.workloads.iter().filter(|w| is_automated(w) && !suspended.contains_key(&w.id)).collect();
        let mut wanted = self.wanted(&state, &automated).await;
        for w in automated {
            for c in &w.containers {
                let repo = c.image.repository();
                if scope.admits(&repo, Some(&c.image)) {
                    wanted.add(&w.id, repo, [w.policies.tag_filter(&c.name)]);
                }
            }
        }
        let catalog = scan(self.registry.as_ref(), wanted, self.config.registry_concurrency).await;
        let registry_errors: Vec<RegistryFailure> = catalog
            .errors()
            .map(|(repository, error)| RegistryFailure { repository: repository.clone(), error: error.to_string() })
            .collect();

        let (revision, (changes, failed), _) = plan_and_commit(
            &self.source,
            self.generator.as_ref(),
            &self.config,
            false,
            Some(state),
            |state| {
                let planned = automation_changes(state, &catalog, &scope, suspended);
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
                let trailers = Trailers { kind: "automation", job: commit.job.clone(), user: None };
                let message = message(&self.config, &title, None, &change_list(&changes), &trailers);
                Ok(Planned { message, author: commit.author_or(&self.config), outcome: (changes, failed) })
            },
        )
        .await?;
        if revision.is_some() {
            self.forget_read();
        }
        Ok(AutomationReport { revision, changes, failed, registry_errors, skipped })
    }

    /// After a commit: the revision last read is no longer the head, so it is let go of rather
    /// than held beside the new head's objects while the sync reads those (at 1,000 workloads,
    /// that was the peak of fluxd's memory). The new head is an edit of a usable revision,
    /// verified by the generator, so listings read it; a listing of a head broken later falls
    /// back to the sync marker's revision.
    fn forget_read(&self) {
        *lock(&self.last_usable) = None;
    }

    /// A manual release. Locked workloads are refused unless forced; the result says, per
    /// workload and container, what happened and why.
    ///
    /// # Errors
    /// As [`AutomationEngine::automate`]. Per-workload problems are in the result, not errors.
    pub async fn release(&self, spec: &ReleaseSpec) -> Result<ReleaseResult> {
        self.release_as(spec, &CommitAs::default()).await
    }

    /// [`AutomationEngine::release`], committing as `commit` says (author, `Flux-Job:`).
    ///
    /// # Errors
    /// As [`AutomationEngine::automate`].
    pub async fn release_as(&self, spec: &ReleaseSpec, commit: &CommitAs) -> Result<ReleaseResult> {
        let scope = self.config.scope.compile()?;
        let state = self.state().await?;
        let releasing: Vec<&WorkloadManifest> =
            selected(&state, spec).filter(|w| skip_reason(w, spec).is_none() && w.is_valid()).collect();
        let mut wanted = self.wanted(&state, &releasing).await;
        for w in releasing {
            for c in &w.containers {
                let repo = c.image.repository();
                match &spec.image {
                    // The image's repository, through each workload's own view of it.
                    ImageSelector::Image(image) if image.repository() == repo => wanted.add(&w.id, repo, []),
                    ImageSelector::Image(_) => {}
                    ImageSelector::AllLatest if scope.admits(&repo, Some(&c.image)) => {
                        wanted.add(&w.id, repo, [w.policies.tag_filter(&c.name)]);
                    }
                    ImageSelector::AllLatest => {}
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
                let trailers = Trailers { kind: "release", job: commit.job.clone(), user: spec.cause.user.clone() };
                let message =
                    message(&self.config, &title, spec.cause.message.as_deref(), &change_list(&done), &trailers);
                Ok(Planned { message, author: commit.author_or(&self.config), outcome: (results, Vec::new()) })
            },
        )
        .await?;
        if revision.is_some() {
            self.forget_read();
        }
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

/// Whether `w` is ignored (`fluxcd.io/ignore: "true"`): neither synced nor edited.
fn is_ignored(w: &WorkloadManifest) -> bool {
    w.policies.ignore == Some(Ignore::All)
}

/// Whether an automation pass moves `w`'s images: automated, unlocked, not ignored, no errors.
/// Workloads whose automation is suspended, with the reason reported for each.
pub type Suspended = std::collections::BTreeMap<crate::ResourceId, String>;

fn is_automated(w: &WorkloadManifest) -> bool {
    w.policies.is_automatable() && !is_ignored(w) && w.is_valid()
}

/// The workloads an automation pass on `state` leaves alone, and why.
fn skipped_by_automation(state: &RepoState) -> Vec<SkippedWorkload> {
    let skipped = |w: &WorkloadManifest, reason: String| SkippedWorkload { workload: w.id.clone(), reason };
    state
        .workloads
        .iter()
        .filter_map(|w| {
            if !w.is_valid() {
                Some(skipped(w, w.error_text()))
            } else if w.policies.is_automatable() && is_ignored(w) {
                Some(skipped(w, IGNORE.to_owned()))
            } else {
                None
            }
        })
        .collect()
}

/// Flux v1's reason for a workload skipped because it is ignored.
const IGNORE: &str = "ignore";

/// The changes an automation pass makes on `state`.
fn automation_changes(
    state: &RepoState,
    catalog: &ImageCatalog,
    scope: &CompiledScope,
    suspended: &Suspended,
) -> Vec<ImageChange> {
    let mut changes = Vec::new();
    for w in state.workloads.iter().filter(|w| is_automated(w) && !suspended.contains_key(&w.id)) {
        for c in &w.containers {
            if !scope.admits(&c.image.repository(), Some(&c.image)) {
                continue;
            }
            if let Choice::Latest(tag) = choose(catalog, w, c, &w.policies.tag_filter(&c.name))
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
    if let Some(reason) = skip_reason(w, spec) {
        return WorkloadRelease {
            workload: w.id.clone(),
            outcome: WorkloadOutcome::Skipped { reason: reason.to_owned() },
            containers: Vec::new(),
        };
    }
    if !w.is_valid() {
        return WorkloadRelease {
            workload: w.id.clone(),
            outcome: WorkloadOutcome::Failed { error: w.error_text() },
            containers: Vec::new(),
        };
    }
    let containers: Vec<ContainerRelease> = w
        .containers
        .iter()
        .map(|c| {
            let filter = w.policies.tag_filter(&c.name);
            let outcome = match &spec.image {
                ImageSelector::Image(image) => release_image(w, c, image, &filter, spec.force, catalog),
                ImageSelector::AllLatest if !scope.admits(&c.image.repository(), Some(&c.image)) => {
                    ContainerOutcome::NoCandidate
                }
                ImageSelector::AllLatest => match choose(catalog, w, c, &filter) {
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

/// Why a release leaves `w` out, as Flux v1 said it: `excluded`; `locked` unless forced;
/// `ignore` (`fluxcd.io/ignore: "true"`) unless forced for workloads named one by one.
fn skip_reason(w: &WorkloadManifest, spec: &ReleaseSpec) -> Option<&'static str> {
    if spec.excludes.contains(&w.id) {
        Some("excluded")
    } else if w.policies.locked.is_some() && !spec.force {
        Some("locked")
    } else if is_ignored(w) && !(spec.force && matches!(spec.workloads, WorkloadSelector::Only(_))) {
        Some(IGNORE)
    } else {
        None
    }
}

fn release_image(
    w: &WorkloadManifest,
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
    match catalog.tags_for(&w.id, &image.repository()) {
        Some(Ok(tags)) if tags.iter().any(|t| t.tag == tag) => ContainerOutcome::Updated { to },
        Some(Ok(_)) => ContainerOutcome::NotInRegistry,
        Some(Err(error)) => ContainerOutcome::RegistryError { error: error.to_string() },
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
