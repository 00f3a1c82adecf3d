//! The running daemon: its parts, its job queue, what it last saw, and the work each job does.
//! Everything that writes (sync, automation, releases, policy changes) runs through the one
//! job queue, so two writers never race for the branch.

use std::sync::{Arc, Mutex, PoisonError};

use flux_core::automation::{ReleaseSpec, tag_all_containers};
use flux_core::jobs::{JobFn, JobId, JobQueue, JobStatus};
use flux_core::{ChangeCause, PolicyUpdate, Revision, TagFilter};
use futures::FutureExt;
use tokio::sync::Notify;

use crate::api_types::{JobResult, JobView, PolicyRequest, Status, SyncSummary};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::wiring::Parts;

/// Wakes a loop before its interval is up.
#[derive(Debug, Default)]
pub(crate) struct Triggers {
    /// Fetch the repository now.
    pub git: Notify,
    /// Sync now.
    pub sync: Notify,
    /// Run an automation pass now.
    pub automation: Notify,
}

/// The daemon's shared state, behind an `Arc` in every loop and handler.
pub(crate) struct Daemon {
    /// Adapters and engines.
    pub parts: Parts,
    /// The one queue of writing work.
    pub jobs: JobQueue<JobResult>,
    /// Loop wake-ups.
    pub triggers: Triggers,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Outgoing notifications.
    pub notifier: Notifier,
    /// The branch synced (webhooks for other branches are ignored).
    pub branch: String,
    /// Record the asking user as commit author.
    pub set_author: bool,
    /// No registry scanning at all.
    pub scanning_disabled: bool,
    status: Mutex<Status>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    /// A daemon over `parts`; `jobs` is the queue whose worker the caller runs.
    pub(crate) fn new(
        parts: Parts,
        jobs: JobQueue<JobResult>,
        metrics: Metrics,
        notifier: Notifier,
        branch: String,
        set_author: bool,
        scanning_disabled: bool,
    ) -> Self {
        Daemon {
            parts,
            jobs,
            triggers: Triggers::default(),
            metrics,
            notifier,
            branch,
            set_author,
            scanning_disabled,
            status: Mutex::new(Status::default()),
        }
    }

    /// Where the daemon stands.
    pub(crate) fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Records the head seen at a refresh.
    pub(crate) fn saw_head(&self, head: &Revision) -> bool {
        let mut status = lock(&self.status);
        let changed = status.head.as_deref() != Some(head.as_str());
        status.head = Some(head.as_str().to_owned());
        changed
    }

    /// Records a sync (called for every report the sync engine emits).
    pub(crate) fn synced(&self, summary: SyncSummary) {
        lock(&self.status).last_sync = Some(summary);
    }

    /// Queues `work` and returns its id.
    pub(crate) fn submit<F>(&self, work: F) -> flux_core::Result<JobId>
    where
        F: std::future::Future<Output = flux_core::Result<JobResult>> + Send + 'static,
    {
        let job: JobFn<JobResult> = Box::new(move || work.boxed());
        self.jobs.submit(job)
    }

    /// Queues `work` and waits for its outcome.
    pub(crate) async fn run<F>(&self, work: F) -> flux_core::Result<JobResult>
    where
        F: std::future::Future<Output = flux_core::Result<JobResult>> + Send + 'static,
    {
        let id = self.submit(work)?;
        match self.jobs.wait(&id).await {
            Some(JobStatus::Succeeded { result }) => Ok(result),
            Some(JobStatus::Failed { error }) => Err(flux_core::Error::other(error)),
            _ => Err(flux_core::Error::other("the job was forgotten before it finished")),
        }
    }

    /// The API's view of a job.
    pub(crate) fn job(&self, id: &str) -> Option<JobView> {
        Some(match self.jobs.status(&JobId::new(id))? {
            JobStatus::Queued => JobView::Queued,
            JobStatus::Running => JobView::Running,
            JobStatus::Succeeded { result } => JobView::Succeeded { result: Box::new(result) },
            JobStatus::Failed { error } => JobView::Failed { error },
        })
    }

    /// A sync of the head: fetch, then sync. The report reaches status, metrics and
    /// notifications through the engine's subscription.
    pub(crate) fn sync_work(
        self: &Arc<Self>,
    ) -> impl std::future::Future<Output = flux_core::Result<JobResult>> + Send + use<> {
        let daemon = self.clone();
        async move {
            let head = daemon.parts.source.refresh().await?;
            daemon.saw_head(&head);
            let report = daemon.parts.sync.sync(&head).await;
            Ok(JobResult::Sync(SyncSummary::from(&report)))
        }
    }

    /// One automation pass; a commit wakes the sync loop.
    pub(crate) fn automation_work(
        self: &Arc<Self>,
    ) -> impl std::future::Future<Output = flux_core::Result<JobResult>> + Send + use<> {
        let daemon = self.clone();
        async move {
            let report = daemon.parts.automation.automate().await?;
            daemon.metrics.automation_updates(report.changes.len());
            daemon.metrics.registry_http_requests(daemon.parts.oci.request_count());
            if report.revision.is_some() {
                daemon.triggers.sync.notify_one();
            }
            Ok(JobResult::Automation(report))
        }
    }

    /// A release; a commit wakes the sync loop and is announced.
    pub(crate) fn release_work(
        self: &Arc<Self>,
        mut spec: ReleaseSpec,
    ) -> impl std::future::Future<Output = flux_core::Result<JobResult>> + Send + use<> {
        let daemon = self.clone();
        async move {
            spec.job = None;
            let engine = daemon.parts.automation_as(spec.cause.user.as_deref(), daemon.set_author);
            let result = engine.release(&spec).await?;
            if result.revision.is_some() {
                daemon.triggers.sync.notify_one();
            }
            daemon.notifier.release(&result);
            Ok(JobResult::Release(result))
        }
    }

    /// A policy change, committed as one revision.
    pub(crate) fn policy_work(
        self: &Arc<Self>,
        request: PolicyRequest,
    ) -> impl std::future::Future<Output = flux_core::Result<JobResult>> + Send + use<> {
        let daemon = self.clone();
        async move {
            let mut changes = request.changes.clone();
            if let Some(filter) = &request.tag_all {
                let state = daemon.parts.automation.state().await?;
                let workload = state.workload(&request.workload).ok_or_else(|| {
                    flux_core::Error::not_found(format!("workload {} is not in git", request.workload))
                })?;
                let filter = filter.as_deref().map(TagFilter::new).transpose()?;
                changes.extend(tag_all_containers(workload, filter.as_ref()));
            }
            let cause = ChangeCause { user: request.user.clone(), message: request.message.clone() };
            let store = daemon.parts.policies_as(cause.user.as_deref(), daemon.set_author);
            let update = PolicyUpdate { workload: request.workload.clone(), changes };
            let diffs = flux_core::PolicyStore::update(store.as_ref(), &[update], &cause).await?;
            let revision = if diffs.is_empty() {
                None
            } else {
                daemon.triggers.sync.notify_one();
                Some(daemon.parts.source.refresh().await?.as_str().to_owned())
            };
            Ok(JobResult::Policy { revision, diffs })
        }
    }
}
