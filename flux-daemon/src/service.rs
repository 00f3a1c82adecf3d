//! One unit at run time: its engines, its job queue, what it last saw, and the work each job
//! does. This is the service layer the HTTP API is a thin skin on: plain Rust, unit-tested with
//! flux-core's in-memory adapters. Everything that writes to the unit's branch (sync,
//! automation, releases, policy changes) runs through the unit's one job queue, so two writers
//! never race for the branch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use flux_core::automation::{CommitAs, Listing, ReleaseSpec, tag_all_containers};
use flux_core::sync::SyncReport;
use flux_core::{ChangeCause, Error, ObjectRef, PolicyUpdate, ResourceId, Result, Revision, TagFilter};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Notify, watch};

use crate::events::{Event, Sinks};
use crate::jobs::{JobFn, JobId, JobQueue, JobStatus};
use crate::metrics::Metrics;
use crate::results::{ContainerInfo, JobResult, JobView, PolicyRequest, Status, SyncRecord, SyncSummary, WorkloadInfo};
use crate::unit::{Engines, SyncUnit};

/// Wakes a loop before its interval is up.
#[derive(Debug, Default)]
pub(crate) struct Triggers {
    /// Fetch the repository now.
    pub(crate) git: Notify,
    /// Sync now.
    pub(crate) sync: Notify,
    /// Run an automation pass now.
    pub(crate) automation: Notify,
}

/// A unit's work, given its job id.
type Work = Box<dyn FnOnce(JobId) -> BoxFuture<'static, Result<JobResult>> + Send>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records when an automation pass ended, however it ended (on drop).
struct AutomationEnd<'a>(&'a Mutex<Option<jiff::Timestamp>>);

impl Drop for AutomationEnd<'_> {
    fn drop(&mut self) {
        *lock(self.0) = Some(jiff::Timestamp::now());
    }
}

/// A job's status as the API answers it.
fn job_view(status: JobStatus<JobResult>) -> JobView {
    match status {
        JobStatus::Queued => JobView::Queued,
        JobStatus::Running => JobView::Running,
        JobStatus::Succeeded { result } => JobView::Succeeded { result: Box::new(result) },
        JobStatus::Failed { error } => JobView::Failed { error: error.to_string() },
    }
}

/// One running unit: the service behind every API route about it.
pub struct UnitService {
    unit: SyncUnit,
    engines: Engines,
    jobs: JobQueue<JobResult>,
    pub(crate) triggers: Triggers,
    sinks: Sinks,
    metrics: Option<Metrics>,
    /// List running workloads that are not in this unit's git (the daemon has only this unit).
    list_unmanaged: bool,
    status: Mutex<Status>,
    /// The last syncs, newest first, at most [`SYNC_HISTORY`].
    sync_history: Mutex<VecDeque<SyncRecord>>,
    /// Counts recorded syncs, for watchers.
    syncs_seen: watch::Sender<u64>,
    /// When the last automation pass ended (done, failed or skipped).
    last_automation: Mutex<Option<jiff::Timestamp>>,
    /// What may hold its syncs (dependencies, suspension), and its health and readiness.
    gate: crate::gate::Gate,
}

/// How many syncs a unit remembers ([`UnitService::sync_history`]).
pub const SYNC_HISTORY: usize = 20;

/// Wakes when something about a unit changed: a job was queued, started or finished, or a sync
/// was recorded ([`UnitService::changes`]).
#[derive(Debug)]
pub struct UnitChanges {
    jobs: watch::Receiver<u64>,
    syncs: watch::Receiver<u64>,
}

impl UnitChanges {
    /// How many changes there have been so far (a value that moves with every change: equal
    /// counts mean nothing changed in between).
    pub fn count(&self) -> u64 {
        self.jobs.borrow().wrapping_add(*self.syncs.borrow())
    }

    /// Waits for the next change (changes since the last call count at once; several
    /// coalesce into one). Never returns while the unit runs but nothing changes.
    pub async fn changed(&mut self) {
        let closed = tokio::select! {
            r = self.jobs.changed() => r.is_err(),
            r = self.syncs.changed() => r.is_err(),
        };
        if closed {
            std::future::pending::<()>().await;
        }
    }
}

impl std::fmt::Debug for UnitService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitService").field("unit", &self.unit).finish_non_exhaustive()
    }
}

impl UnitService {
    pub(crate) fn new(
        unit: SyncUnit,
        jobs: JobQueue<JobResult>,
        sinks: Sinks,
        metrics: Option<Metrics>,
        list_unmanaged: bool,
    ) -> Self {
        let engines = unit.engines();
        UnitService {
            unit,
            engines,
            jobs,
            triggers: Triggers::default(),
            sinks,
            metrics,
            list_unmanaged,
            status: Mutex::new(Status::default()),
            sync_history: Mutex::new(VecDeque::new()),
            syncs_seen: watch::channel(0).0,
            last_automation: Mutex::new(None),
            gate: crate::gate::Gate::default(),
        }
    }

    /// The same service with `gate` (its suspensions read from the state directory).
    pub(crate) fn with_gate(mut self, gate: crate::gate::Gate) -> Self {
        self.gate = gate;
        self
    }

    /// Its gate.
    pub(crate) fn gate(&self) -> &crate::gate::Gate {
        &self.gate
    }

    /// The unit.
    pub fn unit(&self) -> &SyncUnit {
        &self.unit
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.unit.name()
    }

    /// Its engines.
    pub fn engines(&self) -> &Engines {
        &self.engines
    }

    /// Where the unit stands (`GET /status`).
    pub fn status(&self) -> Status {
        self.adopt_shared_suspensions();
        let mut status = lock(&self.status).clone();
        status.head_error = self.engines.automation.head_problem();
        status.suspended = self.gate.suspension();
        status.suspended_workloads = self.gate.suspended_workloads();
        status.held = self.gate.held();
        if let Some(last) = status.last_sync.take() {
            let health = self.gate.health_of(&last.revision);
            status.last_sync = Some(match health {
                Some(health) if last.health.is_none() => last.with_health(health),
                _ => last,
            });
        }
        status
    }

    /// Suspends the unit (`workload: None`: its syncs apply nothing and its automation stops)
    /// or one workload's automation, as `user` asks for the reason `message`; kept in the state
    /// directory across restarts and, with high availability, in the unit's Lease, where the
    /// next owner takes it from.
    ///
    /// # Errors
    /// When the state directory or the unit's Lease cannot be written (nothing is suspended
    /// then); [`Error::Conflict`] naming the owner when another replica writes for the unit.
    pub async fn suspend(
        &self,
        workload: Option<ResourceId>,
        user: Option<String>,
        message: Option<String>,
    ) -> Result<()> {
        self.check_writes_here()?;
        let suspension = crate::gate::Suspension { user, message, since: jiff::Timestamp::now() };
        let described = (workload.as_ref().map(ToString::to_string), suspension.describe());
        let _one = self.gate.one_change().await;
        self.adopt_shared_suspensions();
        let next = self.gate.after_suspend(workload, suspension);
        self.publish_suspensions(&next).await?;
        self.gate.replace(next)?;
        tracing::info!(unit = self.name(), workload = ?described.0, reason = %described.1, "suspended");
        Ok(())
    }

    /// Resumes the unit or one workload's automation; whether it was suspended. Resuming the
    /// unit wakes its sync.
    ///
    /// # Errors
    /// As [`UnitService::suspend`].
    pub async fn resume(&self, workload: Option<&ResourceId>, user: Option<&str>) -> Result<bool> {
        self.check_writes_here()?;
        let _one = self.gate.one_change().await;
        self.adopt_shared_suspensions();
        let (next, was) = self.gate.after_resume(workload);
        self.publish_suspensions(&next).await?;
        self.gate.replace(next)?;
        tracing::info!(unit = self.name(), workload = ?workload.map(ToString::to_string), user, was_suspended = was, "resumed");
        if workload.is_none() && was {
            self.triggers.sync.notify_one();
        }
        Ok(was)
    }

    /// With high availability, writes `next` to the unit's Lease (before this replica keeps
    /// it), for the next owner.
    async fn publish_suspensions(&self, next: &crate::gate::Suspensions) -> Result<()> {
        let Some(ownership) = self.unit().ownership() else { return Ok(()) };
        let json = crate::gate::Gate::to_json(next)?;
        let key = crate::ha::SUSPENSION_ANNOTATION;
        ownership
            .annotate_unit(self.name(), key, Some(json))
            .await
            .map_err(|e| e.context("recording the suspension in the unit's Lease"))
    }

    /// With high availability, takes the suspensions the unit's Lease records (its owner's) in
    /// place of this replica's, when it has a record (a unit never suspended under high
    /// availability keeps this replica's).
    pub(crate) fn adopt_shared_suspensions(&self) {
        let Some(ownership) = self.unit().ownership() else { return };
        let Some(json) = ownership.unit_annotation(self.name(), crate::ha::SUSPENSION_ANNOTATION) else { return };
        match self.gate.adopt(&json) {
            Ok(true) => {
                tracing::info!(unit = self.name(), "suspensions as the unit's Lease records them (set by its owner)")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(unit = self.name(), error = %e, "the unit's Lease's suspension record"),
        }
    }

    /// The unit's last syncs (at most [`SYNC_HISTORY`]), newest first.
    pub fn sync_history(&self) -> Vec<SyncRecord> {
        lock(&self.sync_history).iter().cloned().collect()
    }

    /// When the sync loop runs next at the latest: the last sync's end plus the sync interval
    /// (a new revision, a webhook or the API wake it earlier); `None` before the first sync.
    pub fn next_sync_due(&self) -> Option<jiff::Timestamp> {
        let last = lock(&self.sync_history).front()?.finished_at;
        let interval = jiff::SignedDuration::try_from(self.unit.intervals().sync).ok()?;
        last.checked_add(interval).ok()
    }

    /// When the automation loop runs its next pass at the latest: the last pass's end plus the
    /// automation interval (a registry webhook wakes it earlier); `None` before the first pass
    /// or when registry scanning is off.
    pub fn next_automation_due(&self) -> Option<jiff::Timestamp> {
        if !self.unit.scanning() {
            return None;
        }
        let last = (*lock(&self.last_automation))?;
        let interval = jiff::SignedDuration::try_from(self.unit.intervals().automation).ok()?;
        last.checked_add(interval).ok()
    }

    /// The unit's jobs: queued and running first, then the finished ones remembered, newest
    /// first.
    pub fn jobs(&self) -> Vec<(JobId, JobView)> {
        self.jobs.jobs().into_iter().map(|(id, status)| (id, job_view(status))).collect()
    }

    /// A watch on the unit's jobs and syncs (what the status page's live updates wait on).
    pub fn changes(&self) -> UnitChanges {
        UnitChanges { jobs: self.jobs.subscribe(), syncs: self.syncs_seen.subscribe() }
    }

    /// Records the head seen at a refresh; whether it is new.
    pub(crate) fn saw_head(&self, head: &Revision) -> bool {
        let mut status = lock(&self.status);
        let changed = status.head.as_deref() != Some(head.as_str());
        status.head = Some(head.as_str().to_owned());
        changed
    }

    /// Records the outcome of a fetch of the unit's source (Flux v1's `flux_git_ready`).
    pub(crate) fn refreshed(&self, fetched: Result<Revision>) -> Result<Revision> {
        if let Some(metrics) = &self.metrics {
            metrics.git_ready(self.name(), fetched.is_ok());
        }
        fetched
    }

    /// Records a sync report (every report the sync engine emits): status, metrics, events.
    pub(crate) fn synced(&self, report: &Arc<SyncReport>) {
        let summary = SyncSummary::from(report.as_ref());
        lock(&self.status).last_sync = Some(summary.clone());
        {
            let mut history = lock(&self.sync_history);
            let record = SyncRecord {
                finished_at: jiff::Timestamp::now(),
                duration: report.duration,
                failed: report.failed,
                summary,
            };
            history.push_front(record);
            history.truncate(SYNC_HISTORY);
        }
        self.syncs_seen.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(metrics) = &self.metrics {
            metrics.sync(self.name(), report);
        }
        let unit = self.name().to_owned();
        if !report.is_success() {
            self.sinks.emit(Event::SyncFailed { unit, report: report.clone() });
        } else if !report.applied.is_empty() || !report.pruned.is_empty() {
            self.sinks.emit(Event::SyncCompleted { unit, report: report.clone() });
        }
    }

    /// Queues `work` on the unit's queue; its job id.
    ///
    /// # Errors
    /// When the unit's queue has stopped (the daemon is shutting down).
    fn submit(&self, work: Work) -> Result<JobId> {
        let Some(metrics) = self.metrics.clone() else {
            return self.jobs.submit(Box::new(work));
        };
        // Flux v1's queue and job metrics: the wait in the queue, the length, the run.
        let (unit, queued) = (self.name().to_owned(), std::time::Instant::now());
        metrics.job_queued(&unit);
        let job: JobFn<JobResult> = Box::new(move |id| {
            async move {
                metrics.job_started(&unit, queued.elapsed());
                let started = std::time::Instant::now();
                let result = work(id).await;
                metrics.job_finished(&unit, started.elapsed(), result.is_ok());
                result
            }
            .boxed()
        });
        self.jobs.submit(job)
    }

    /// Queues `work` and waits for its outcome.
    async fn run(&self, work: Work) -> Result<JobResult> {
        let id = self.submit(work)?;
        match self.jobs.wait(&id).await {
            Some(JobStatus::Succeeded { result }) => Ok(result),
            Some(JobStatus::Failed { error }) => Err(error),
            _ => Err(Error::other("the job was forgotten before it finished")),
        }
    }

    /// A job of this unit (`GET /jobs/{id}`), also one finished before a restart while the
    /// journal holds it; `None` when unknown.
    pub fn job(&self, id: &str) -> Option<JobView> {
        Some(job_view(self.jobs.status(&JobId::new(id))?))
    }

    /// Waits until job `id` is done; `None` when unknown.
    pub async fn wait(&self, id: &JobId) -> Option<JobView> {
        self.jobs.wait(id).await?;
        self.job(id.as_str())
    }

    /// Queues a sync of the head (`POST /sync`).
    ///
    /// # Errors
    /// When the unit's queue has stopped; [`Error::Conflict`] naming the owner when another
    /// replica writes for the unit (high availability).
    pub fn submit_sync(self: &Arc<Self>) -> Result<JobId> {
        self.check_writes_here()?;
        self.submit(self.sync_work())
    }

    /// Syncs the head through the queue and waits (the sync loop).
    pub(crate) async fn sync_now(self: &Arc<Self>) -> Result<JobResult> {
        self.run(self.sync_work()).await
    }

    /// Runs an automation pass through the queue and waits (the automation loop).
    pub(crate) async fn automate_now(self: &Arc<Self>) -> Result<JobResult> {
        self.run(self.automation_work()).await
    }

    /// Queues a release (`POST /release`).
    ///
    /// # Errors
    /// When the unit's queue has stopped; [`Error::Conflict`] naming the owner when another
    /// replica writes for the unit (high availability).
    pub fn submit_release(self: &Arc<Self>, spec: ReleaseSpec) -> Result<JobId> {
        self.check_writes_here()?;
        self.submit(self.release_work(spec))
    }

    /// Queues a policy change (`POST /policies`).
    ///
    /// # Errors
    /// When the unit's queue has stopped; [`Error::Conflict`] naming the owner when another
    /// replica writes for the unit (high availability).
    pub fn submit_policy(self: &Arc<Self>, request: PolicyRequest) -> Result<JobId> {
        self.check_writes_here()?;
        self.submit(self.policy_work(request))
    }

    /// Who writes a commit asked for by `user`, made by job `job`.
    fn commit_as(&self, user: Option<&str>, job: &JobId) -> CommitAs {
        let email = self.unit.automation_config().author.email.clone();
        let author = user.filter(|_| self.unit.set_author()).map(|user| flux_core::Author::new(user, email));
        CommitAs { author, job: Some(job.to_string()) }
    }

    fn sync_work(self: &Arc<Self>) -> Work {
        let unit = self.clone();
        Box::new(move |_job| {
            async move {
                let head = unit.refreshed(unit.unit.source().refresh().await)?;
                unit.saw_head(&head);
                // A unit taken over keeps the suspensions its previous owner recorded.
                unit.adopt_shared_suspensions();
                // Held by its suspension or a dependency not ready: nothing applied nor pruned.
                if let Some(held) = unit.gate.hold(unit.name(), unit.unit.source(), head.as_str()).await {
                    tracing::info!(unit = unit.name(), by = %held.by, reason = %held.reason, "sync held: nothing applied");
                    unit.gate.set_held(unit.name(), Some(held.clone()));
                    let summary = SyncSummary {
                        revision: head.as_str().to_owned(),
                        success: false,
                        applied: Vec::new(),
                        unchanged: 0,
                        pruned: Vec::new(),
                        garbage_collection: unit.unit.sync_config().garbage_collection,
                        errors: Vec::new(),
                        health: None,
                        held: Some(held),
                        kept: Vec::new(),
                        prune_held: None,
                    };
                    return Ok(JobResult::Sync(Box::new(summary)));
                }
                unit.gate.set_held(unit.name(), None);
                unit.gate.clear_health();
                let report = unit.engines.sync.sync(&head).await;
                let mut summary = SyncSummary::from(&report);
                if let Some(timeout) = unit.unit.health_wait()
                    && report.is_success()
                {
                    match crate::wait::wait_for_health(&unit.unit, &unit.engines, &head, timeout).await {
                        Ok(health) => {
                            tracing::info!(unit = unit.name(), revision = head.short(), healthy = health.is_healthy(), health = %health.summary(), "health wait done");
                            unit.gate.set_health(head.as_str(), health.clone());
                            if !health.is_healthy() {
                                let (name, revision) = (unit.name().to_owned(), head.as_str().to_owned());
                                let event = Event::HealthFailed { unit: name, revision, report: health.clone() };
                                unit.sinks.emit(event);
                            }
                            summary = summary.with_health(health);
                        }
                        Err(e) => {
                            summary.success = false;
                            let error = e.context("waiting for health");
                            summary.errors.push(flux_core::sync::SyncError { id: None, error });
                        }
                    }
                }
                let outcome = match summary.errors.first() {
                    _ if summary.success => Ok(()),
                    Some(e) => Err(e.message()),
                    None => Err("the revision could not be used".to_owned()),
                };
                // The status says what the job did by the time the job is done (the sync watcher
                // records the engine's report too, in its own time).
                lock(&unit.status).last_sync = Some(summary.clone());
                unit.gate.set_ready(head.as_str(), outcome);
                Ok(JobResult::Sync(Box::new(summary)))
            }
            .boxed()
        })
    }

    fn automation_work(self: &Arc<Self>) -> Work {
        let unit = self.clone();
        Box::new(move |job| {
            async move {
                let _ended = AutomationEnd(&unit.last_automation);
                unit.adopt_shared_suspensions();
                if let Some(suspension) = unit.gate.suspension() {
                    tracing::info!(unit = unit.name(), reason = %suspension.describe(), "automation pass skipped: the unit is suspended");
                    return Ok(JobResult::Automation(flux_core::automation::AutomationReport::default()));
                }
                let commit = unit.commit_as(None, &job);
                let skips = unit.gate.automation_skips();
                let report = unit.engines.automation.automate_skipping(&commit, &skips).await?;
                if let Some(metrics) = &unit.metrics {
                    metrics.automation_updates(unit.name(), report.changes.len());
                }
                if report.revision.is_some() {
                    unit.triggers.sync.notify_one();
                    let event = Event::AutomationCommitted {
                        unit: unit.name().to_owned(),
                        job: job.to_string(),
                        report: report.clone(),
                    };
                    unit.sinks.emit(event);
                }
                Ok(JobResult::Automation(report))
            }
            .boxed()
        })
    }

    fn release_work(self: &Arc<Self>, spec: ReleaseSpec) -> Work {
        let unit = self.clone();
        Box::new(move |job| {
            async move {
                let commit = unit.commit_as(spec.cause.user.as_deref(), &job);
                let result = unit.engines.automation.release_as(&spec, &commit).await?;
                if result.revision.is_some() {
                    unit.triggers.sync.notify_one();
                    let event = Event::ReleaseCompleted {
                        unit: unit.name().to_owned(),
                        job: job.to_string(),
                        result: result.clone(),
                    };
                    unit.sinks.emit(event);
                }
                Ok(JobResult::Release(result))
            }
            .boxed()
        })
    }

    fn policy_work(self: &Arc<Self>, request: PolicyRequest) -> Work {
        let unit = self.clone();
        Box::new(move |job| {
            async move {
                let mut changes = request.changes.clone();
                if let Some(filter) = &request.tag_all {
                    let state = unit.engines.automation.state().await?;
                    let workload = state
                        .workload(&request.workload)
                        .ok_or_else(|| Error::not_found(format!("workload {} is not in git", request.workload)))?;
                    let filter = filter.as_deref().map(TagFilter::new).transpose()?;
                    changes.extend(tag_all_containers(workload, filter.as_ref()));
                }
                let cause = ChangeCause { user: request.user.clone(), message: request.message.clone() };
                let commit = unit.commit_as(cause.user.as_deref(), &job);
                let update = PolicyUpdate { workload: request.workload.clone(), changes };
                let diffs = unit.engines.policies.update_as(&[update], &cause, &commit).await?;
                let revision = if diffs.is_empty() {
                    None
                } else {
                    unit.triggers.sync.notify_one();
                    let revision = unit.unit.source().refresh().await?.as_str().to_owned();
                    let event = Event::PolicyChanged {
                        unit: unit.name().to_owned(),
                        job: job.to_string(),
                        revision: revision.clone(),
                        diffs: diffs.clone(),
                    };
                    unit.sinks.emit(event);
                    Some(revision)
                };
                Ok(JobResult::Policy { revision, diffs })
            }
            .boxed()
        })
    }

    /// Workloads in git (with their policies and errors) and in the cluster (with what runs and
    /// its status), in `namespace` or all (`GET /workloads`). While the head is unusable, git's
    /// side is the last usable revision (the listing says which). With several units in the
    /// daemon, a unit lists only the running workloads it has in git.
    ///
    /// # Errors
    /// When the cluster cannot be asked or no revision was ever usable.
    pub async fn workloads(&self, namespace: Option<&str>) -> Result<(Listing, Vec<WorkloadInfo>)> {
        let running = self.unit.cluster().workloads(namespace).await?;
        let listing = self.engines.automation.listing().await?;
        let mut out: BTreeMap<ResourceId, WorkloadInfo> = BTreeMap::new();
        let mut container_errors: BTreeMap<(ResourceId, String), String> = BTreeMap::new();
        let in_namespace = |id: &ResourceId| namespace.is_none() || id.namespace() == namespace;
        for w in listing.state.workloads.iter().filter(|w| in_namespace(&w.id)) {
            let mut containers: Vec<ContainerInfo> = w
                .containers
                .iter()
                .map(|c| ContainerInfo { name: c.name.clone(), image: c.image.to_string(), init: c.init, error: None })
                .collect();
            for e in &w.errors {
                let Some(name) = &e.container else { continue };
                container_errors.insert((w.id.clone(), name.clone()), e.to_string());
                if let Some(raw) = &e.value {
                    let error = Some(e.to_string());
                    containers.push(ContainerInfo { name: name.clone(), image: raw.clone(), init: false, error });
                }
            }
            let error = (!w.is_valid()).then(|| w.error_text());
            let policies = w.policies.clone();
            out.insert(
                w.id.clone(),
                WorkloadInfo { id: w.id.clone(), containers, status: None, policies, in_git: true, error },
            );
        }
        for w in running {
            if !self.list_unmanaged && !out.contains_key(&w.id) {
                continue;
            }
            let entry = out.entry(w.id.clone()).or_insert_with(|| WorkloadInfo {
                id: w.id.clone(),
                containers: Vec::new(),
                status: None,
                policies: Default::default(),
                in_git: false,
                error: None,
            });
            entry.containers = w
                .containers
                .into_iter()
                .map(|c| {
                    let error = container_errors.get(&(w.id.clone(), c.name.clone())).cloned();
                    ContainerInfo { name: c.name, image: c.image, init: c.init, error }
                })
                .collect();
            entry.status = Some(w.status);
        }
        Ok((listing, out.into_values().collect()))
    }

    /// The images the workloads run and the tags available (`GET /images`), for `only` one
    /// workload or all.
    ///
    /// # Errors
    /// [`Error::Transient`] when scanning is off for this unit; as
    /// [`UnitService::workloads`] otherwise.
    pub async fn images(
        &self,
        only: Option<&ResourceId>,
    ) -> Result<(Listing, Vec<flux_core::automation::WorkloadImages>)> {
        if !self.unit.scanning() {
            return Err(Error::transient("registry scanning is disabled (--registry-disable-scanning)"));
        }
        let listing = self.engines.automation.listing().await?;
        let images = self.engines.automation.images_in(&listing.state, only).await?;
        Ok((listing, images))
    }

    /// The objects this unit manages, as they are in the cluster, as one YAML stream with the
    /// fields the server sets left out (`GET /export`).
    ///
    /// # Errors
    /// When the cluster cannot be asked.
    pub async fn export(&self) -> Result<String> {
        /// Fields the server sets, left out of an export so it can be applied elsewhere.
        const SERVER_FIELDS: [&str; 5] = ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"];
        let cluster = self.unit.cluster();
        let identity = &self.engines.sync.config().identity;
        let managed = cluster.managed(identity).await?;
        // Only what the unit's mark proves it applied: a hand-made copy carries the unit's label
        // but the original's mark, and is not the unit's to export.
        let mut refs: Vec<ObjectRef> = managed
            .into_iter()
            .filter(|m| m.mark() == Some(flux_core::cluster::gc_mark(identity.as_str(), &m.reference.id).as_str()))
            .map(|m| m.reference)
            .collect();
        refs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut yaml = String::new();
        for reference in refs {
            let Some(object) = cluster.get(&reference).await? else { continue };
            let mut value = object.to_value();
            if let Some(obj) = value.as_object_mut() {
                obj.remove("status");
                if let Some(meta) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                    SERVER_FIELDS.iter().for_each(|f| {
                        meta.remove(*f);
                    });
                }
            }
            let doc = serde_saphyr::to_string(&value)
                .map_err(|e| Error::other(format!("cannot write {} as YAML: {e}", reference.id)))?;
            yaml.push_str("---\n");
            yaml.push_str(&doc);
        }
        Ok(yaml)
    }
}
