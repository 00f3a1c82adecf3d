//! What each page shows, gathered from a unit's service into plain values (the templates in
//! [`super::pages`] only lay them out).

use std::collections::BTreeMap;
use std::time::Duration;

use flux_core::automation::{AutomationReport, ContainerImages, ContainerOutcome, HeadProblem, ReleaseResult};
use flux_core::sync::GarbageCollection;
use flux_core::{Policies, PolicyDiff, ResourceId, WorkloadStatus};
use jiff::Timestamp;

use crate::jobs::JobId;
use crate::results::{JobResult, JobView, SyncRecord};
use crate::service::UnitService;

/// Something a person should look at first.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    /// What is wrong, in a few words.
    pub(crate) title: String,
    /// The full text (file:line and the server's message, where known).
    pub(crate) detail: String,
    /// Since when it has been so, when known.
    pub(crate) since: Option<Timestamp>,
}

/// One unit on the overview.
#[derive(Debug)]
pub(crate) struct UnitOverview {
    pub(crate) name: String,
    pub(crate) branch: Option<String>,
    pub(crate) paths: Vec<String>,
    /// The head at the last refresh.
    pub(crate) head: Option<String>,
    /// The last sync.
    pub(crate) last_sync: Option<SyncRecord>,
    pub(crate) next_sync: Option<Timestamp>,
    pub(crate) next_automation: Option<Timestamp>,
    pub(crate) sync_interval: Duration,
    /// `None` when registry scanning is off.
    pub(crate) automation_interval: Option<Duration>,
    /// Jobs queued or running.
    pub(crate) pending: Vec<(JobId, JobView)>,
    /// The last finished jobs.
    pub(crate) recent: Vec<JobEntry>,
    pub(crate) attention: Vec<Attention>,
    /// How many more need attention than are shown (at most [`MAX_ATTENTION`] are).
    pub(crate) hidden_attention: usize,
    pub(crate) workloads: Option<usize>,
}

/// How many things needing attention the overview shows per unit (the first; a count of the
/// rest follows): a sync failing for thousands of objects still gives a small page.
pub(crate) const MAX_ATTENTION: usize = 25;

/// A job as the pages list it.
#[derive(Debug, Clone)]
pub(crate) struct JobEntry {
    pub(crate) id: JobId,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub(crate) state: &'static str,
    /// `sync`, `automation`, `release`, `release (dry run)`, `policy`; empty while not done.
    pub(crate) kind: &'static str,
    /// The commit it made, if any.
    pub(crate) revision: Option<String>,
    /// What it changed (or would change), one line each.
    pub(crate) changes: Vec<String>,
    /// The workloads it changed.
    pub(crate) workloads: Vec<ResourceId>,
    pub(crate) error: Option<String>,
}

/// Describes a job.
pub(crate) fn job_entry(id: &JobId, view: &JobView) -> JobEntry {
    let mut entry = JobEntry {
        id: id.clone(),
        state: "",
        kind: "",
        revision: None,
        changes: Vec::new(),
        workloads: Vec::new(),
        error: None,
    };
    match view {
        JobView::Queued => entry.state = "queued",
        JobView::Running => entry.state = "running",
        JobView::Failed { error } => {
            entry.state = "failed";
            entry.error = Some(error.clone());
        }
        JobView::Succeeded { result } => {
            entry.state = "succeeded";
            match result.as_ref() {
                JobResult::Sync(s) => {
                    entry.kind = "sync";
                    entry.changes.push(format!(
                        "{}: {} applied, {} unchanged, {} pruned, {} errors",
                        short(&s.revision),
                        s.applied.len(),
                        s.unchanged,
                        s.pruned.len(),
                        s.errors.len()
                    ));
                }
                JobResult::Automation(report) => {
                    entry.kind = "automation";
                    entry.revision = report.revision.as_ref().map(|r| r.as_str().to_owned());
                    for c in &report.changes {
                        entry.changes.push(format!("{} {}: {} → {}", c.workload, c.container, c.from, c.to));
                        entry.workloads.push(c.workload.clone());
                    }
                }
                JobResult::Release(result) => {
                    entry.kind = if result.dry_run { "release (dry run)" } else { "release" };
                    entry.revision = result.revision.as_ref().map(|r| r.as_str().to_owned());
                    (entry.changes, entry.workloads) = release_lines(result);
                }
                JobResult::Policy { revision, diffs } => {
                    entry.kind = "policy";
                    entry.revision = revision.clone();
                    for d in diffs {
                        entry.changes.extend(policy_lines(d));
                        entry.workloads.push(d.workload.clone());
                    }
                }
            }
        }
    }
    entry.workloads.dedup();
    entry
}

/// What a release did (or would do), one line per container, and the workloads it changed.
pub(crate) fn release_lines(result: &ReleaseResult) -> (Vec<String>, Vec<ResourceId>) {
    let mut lines = Vec::new();
    let mut changed = Vec::new();
    for w in &result.workloads {
        match &w.outcome {
            flux_core::automation::WorkloadOutcome::Skipped { reason } => {
                lines.push(format!("{}: skipped ({reason})", w.workload));
            }
            flux_core::automation::WorkloadOutcome::Failed { error } => {
                lines.push(format!("{}: failed: {error}", w.workload));
            }
            _ => {}
        }
        for c in &w.containers {
            let line = match &c.outcome {
                ContainerOutcome::Updated { to } => {
                    changed.push(w.workload.clone());
                    format!("{} {}: {} → {to}", w.workload, c.container, c.current)
                }
                ContainerOutcome::UpToDate => format!("{} {}: up to date", w.workload, c.container),
                ContainerOutcome::DoesNotUseImage => continue,
                ContainerOutcome::FilterExcludes { filter } => {
                    format!("{} {}: its filter {filter} excludes this tag", w.workload, c.container)
                }
                ContainerOutcome::NotInRegistry => {
                    format!("{} {}: the tag is not in the registry", w.workload, c.container)
                }
                ContainerOutcome::NoCandidate => format!("{} {}: no tag passes its filter", w.workload, c.container),
                ContainerOutcome::RegistryError { error } => {
                    format!("{} {}: registry error: {error}", w.workload, c.container)
                }
                ContainerOutcome::EditFailed { error } => {
                    format!("{} {}: cannot edit: {error}", w.workload, c.container)
                }
            };
            lines.push(line);
        }
    }
    changed.dedup();
    (lines, changed)
}

/// What a policy change changed, one line per policy.
pub(crate) fn policy_lines(diff: &PolicyDiff) -> Vec<String> {
    let id = &diff.workload;
    let (before, after) = (&diff.before, &diff.after);
    let mut lines = Vec::new();
    if before.automated != after.automated {
        lines.push(format!("{id}: {}", if after.automated { "automated" } else { "deautomated" }));
    }
    if before.locked != after.locked {
        lines.push(match &after.locked {
            Some(_) => format!("{id}: {}", lock_text(after)),
            None => format!("{id}: unlocked"),
        });
    }
    let containers: std::collections::BTreeSet<&String> =
        before.tag_filters.keys().chain(after.tag_filters.keys()).collect();
    for c in containers {
        let (a, b) = (before.tag_filters.get(c), after.tag_filters.get(c));
        if a != b {
            let show = |f: Option<&flux_core::TagFilter>| f.map_or_else(|| "none".to_owned(), ToString::to_string);
            lines.push(format!("{id}: tag filter of {c}: {} → {}", show(a), show(b)));
        }
    }
    lines
}

/// `locked`, with its message and user when they are set.
pub(crate) fn lock_text(policies: &Policies) -> String {
    if policies.locked.is_none() {
        return String::new();
    }
    let detail = lock_detail(policies);
    if detail.is_empty() { "locked".to_owned() } else { format!("locked: {detail}") }
}

/// A lock's message (quoted) and user, when set: `“why” by who`.
pub(crate) fn lock_detail(policies: &Policies) -> String {
    let Some(lock) = &policies.locked else { return String::new() };
    let mut parts = Vec::new();
    if let Some(message) = &lock.message {
        parts.push(format!("\u{201c}{message}\u{201d}"));
    }
    if let Some(user) = &lock.user {
        parts.push(format!("by {user}"));
    }
    parts.join(" ")
}

/// The first 7 characters of a revision.
pub(crate) fn short(revision: &str) -> &str {
    revision.get(..7).unwrap_or(revision)
}

/// The newest automation report among `jobs`.
fn last_automation(jobs: &[(JobId, JobView)]) -> Option<&AutomationReport> {
    jobs.iter().find_map(|(_, view)| match view {
        JobView::Succeeded { result } => match result.as_ref() {
            JobResult::Automation(report) => Some(report),
            _ => None,
        },
        _ => None,
    })
}

/// A unit's overview: where it stands and what needs attention.
pub(crate) async fn overview(unit: &UnitService, cache: &RowCache) -> UnitOverview {
    let status = unit.status();
    let history = unit.sync_history();
    let jobs = unit.jobs();
    let mut attention = Vec::new();
    if let Some(HeadProblem { revision, error }) = &status.head_error {
        let head = revision.as_ref().map_or("?", |r| r.short());
        attention.push(Attention {
            title: format!("The head {head} cannot be used"),
            detail: error.clone(),
            since: None,
        });
    }
    if let Some(last) = history.first() {
        let since = history.iter().take_while(|r| !r.summary.success).last().map(|r| r.finished_at);
        if !last.summary.success && last.summary.errors.is_empty() {
            let title = format!("The sync of {} failed", short(&last.summary.revision));
            attention.push(Attention { title, detail: String::new(), since });
        }
        for e in &last.summary.errors {
            let title = match &e.id {
                Some(id) => format!("{id} did not sync"),
                None => format!("The sync of {} failed", short(&last.summary.revision)),
            };
            attention.push(Attention { title, detail: e.message(), since });
        }
        if last.summary.garbage_collection == GarbageCollection::DryRun {
            for p in &last.summary.pruned {
                let title = format!("Garbage collection would delete {}", p.id);
                let detail = "--sync-garbage-collection-dry is on: nothing was deleted".to_owned();
                attention.push(Attention { title, detail, since: None });
            }
        }
    }
    let workloads = match cache.rows(unit).await {
        Ok(rows) => {
            for w in &rows.rows {
                if let Some(WorkloadStatus::Failed { message }) = &w.status {
                    let title = format!("The rollout of {} failed", w.id);
                    attention.push(Attention { title, detail: message.clone(), since: None });
                }
                if let Some(error) = &w.error {
                    let title = format!("The manifest of {} has errors", w.id);
                    attention.push(Attention { title, detail: error.clone(), since: None });
                }
            }
            Some(rows.rows.len())
        }
        Err(e) => {
            let title = "The workloads cannot be listed".to_owned();
            attention.push(Attention { title, detail: e, since: None });
            None
        }
    };
    if let Some(report) = last_automation(&jobs) {
        for f in &report.registry_errors {
            let title = format!("The registry cannot be read for {}", f.repository);
            attention.push(Attention { title, detail: f.error.clone(), since: None });
        }
        for f in &report.failed {
            let title = format!("An image update of {} could not be written", f.change.workload);
            attention.push(Attention { title, detail: f.error.clone(), since: None });
        }
    }
    let finished: Vec<JobEntry> = jobs
        .iter()
        .filter(|(_, v)| matches!(v, JobView::Succeeded { .. } | JobView::Failed { .. }))
        .take(8)
        .map(|(id, v)| job_entry(id, v))
        .collect();
    for job in finished.iter().filter(|j| j.error.is_some()).take(3) {
        let title = format!("Job {} failed", job.id);
        attention.push(Attention { title, detail: job.error.clone().unwrap_or_default(), since: None });
    }
    let hidden = attention.len().saturating_sub(MAX_ATTENTION);
    attention.truncate(MAX_ATTENTION);
    let pending = jobs.into_iter().filter(|(_, v)| matches!(v, JobView::Queued | JobView::Running)).collect();
    let intervals = unit.unit().intervals();
    UnitOverview {
        name: unit.name().to_owned(),
        branch: unit.unit().branch().map(str::to_owned),
        paths: unit.unit().sync_config().paths.clone(),
        head: status.head,
        last_sync: history.into_iter().next(),
        next_sync: unit.next_sync_due(),
        next_automation: unit.next_automation_due(),
        sync_interval: intervals.sync,
        automation_interval: unit.unit().scanning().then_some(intervals.automation),
        pending,
        recent: finished,
        attention,
        hidden_attention: hidden,
        workloads,
    }
}

/// The workloads page's filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkloadFilter {
    /// Text the id or an image must contain (case-insensitive); empty: any.
    pub(crate) text: String,
    /// The namespace; empty: any.
    pub(crate) namespace: String,
    /// The page, from 1.
    pub(crate) page: usize,
}

/// One container in the workloads table.
#[derive(Debug, Clone)]
pub(crate) struct ContainerRow {
    pub(crate) name: String,
    /// Its image in git, when the workload is in git.
    pub(crate) in_git: Option<String>,
    /// The image running, when the workload runs.
    pub(crate) running: Option<String>,
    pub(crate) error: Option<String>,
}

/// One workload in the table.
#[derive(Debug, Clone)]
pub(crate) struct WorkloadRow {
    pub(crate) id: ResourceId,
    pub(crate) containers: Vec<ContainerRow>,
    pub(crate) policies: Policies,
    pub(crate) status: Option<WorkloadStatus>,
    pub(crate) in_git: bool,
    pub(crate) error: Option<String>,
    /// Where its manifest starts (`file:line`).
    pub(crate) location: Option<String>,
}

/// One page of workloads.
#[derive(Debug)]
pub(crate) struct WorkloadList {
    pub(crate) unit: String,
    pub(crate) filter: WorkloadFilter,
    pub(crate) rows: Vec<WorkloadRow>,
    /// How many match the filter.
    pub(crate) matching: usize,
    /// How many there are.
    pub(crate) total: usize,
    pub(crate) pages: usize,
    pub(crate) namespaces: Vec<String>,
    /// The revision listed.
    pub(crate) revision: Option<String>,
    pub(crate) head_problem: Option<HeadProblem>,
    pub(crate) error: Option<String>,
}

/// The unit's workloads as rows (git's images beside the running ones), in id order.
async fn read_rows(unit: &UnitService) -> Result<Rows, String> {
    let (listing, list) = unit.workloads(None).await.map_err(|e| e.to_string())?;
    let in_git: BTreeMap<&ResourceId, &flux_core::manifest::WorkloadManifest> =
        listing.state.workloads.iter().map(|w| (&w.id, w)).collect();
    let rows = list
        .into_iter()
        .map(|w| {
            let manifest = in_git.get(&w.id);
            let running = w.status.is_some();
            let mut containers: Vec<ContainerRow> = w
                .containers
                .iter()
                .map(|c| ContainerRow {
                    name: c.name.clone(),
                    in_git: manifest
                        .and_then(|m| m.containers.iter().find(|g| g.name == c.name))
                        .map(|g| g.image.to_string()),
                    running: running.then(|| c.image.clone()),
                    error: c.error.clone(),
                })
                .collect();
            if let Some(m) = manifest {
                for g in m.containers.iter().filter(|g| !w.containers.iter().any(|c| c.name == g.name)) {
                    let row = ContainerRow {
                        name: g.name.clone(),
                        in_git: Some(g.image.to_string()),
                        running: None,
                        error: None,
                    };
                    containers.push(row);
                }
            }
            WorkloadRow {
                location: manifest.map(|m| m.location.to_string()),
                id: w.id,
                containers,
                policies: w.policies,
                status: w.status,
                in_git: w.in_git,
                error: w.error,
            }
        })
        .collect();
    Ok(Rows { rows, revision: listing.state.head.as_str().to_owned(), head_problem: listing.head_problem })
}

/// A unit's workloads as the pages list them, and the revision they are from.
#[derive(Debug)]
pub(crate) struct Rows {
    pub(crate) rows: Vec<WorkloadRow>,
    /// The revision listed.
    pub(crate) revision: String,
    /// Why the head is not the revision listed, when it is not.
    pub(crate) head_problem: Option<HeadProblem>,
}

/// A unit's rows, the change count they were read at, and when.
type CachedRows = (u64, std::time::Instant, std::sync::Arc<Rows>);

/// Each unit's rows, read once and reused while nothing changed in the unit (no job, no
/// sync: [`crate::UnitChanges::count`]) and for at most `ttl` (rollout status changes in the
/// cluster without either): paging through 5,000 workloads reads git and the cluster once.
#[derive(Debug)]
pub(crate) struct RowCache {
    ttl: Duration,
    by_unit: std::sync::Mutex<std::collections::HashMap<String, CachedRows>>,
}

impl RowCache {
    /// An empty cache whose entries last at most `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        RowCache { ttl, by_unit: std::sync::Mutex::default() }
    }

    /// `unit`'s rows: the cached ones when still current, else read anew.
    pub(crate) async fn rows(&self, unit: &UnitService) -> Result<std::sync::Arc<Rows>, String> {
        let changes = unit.changes().count();
        let lock = || self.by_unit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((count, at, rows)) = lock().get(unit.name())
            && *count == changes
            && at.elapsed() < self.ttl
        {
            return Ok(rows.clone());
        }
        let rows = std::sync::Arc::new(read_rows(unit).await?);
        lock().insert(unit.name().to_owned(), (changes, std::time::Instant::now(), rows.clone()));
        Ok(rows)
    }
}

/// Whether `row` passes `filter`.
fn matches(row: &WorkloadRow, filter: &WorkloadFilter, text: &str) -> bool {
    if !filter.namespace.is_empty() && row.id.namespace() != Some(filter.namespace.as_str()) {
        return false;
    }
    if text.is_empty() {
        return true;
    }
    let contains = |s: &str| s.to_lowercase().contains(text);
    contains(&row.id.to_string())
        || row.containers.iter().any(|c| {
            c.in_git.as_deref().is_some_and(contains) || c.running.as_deref().is_some_and(contains) || contains(&c.name)
        })
}

/// One page of the unit's workloads passing `filter`, `page_size` a page.
pub(crate) async fn workloads(
    unit: &UnitService,
    cache: &RowCache,
    filter: &WorkloadFilter,
    page_size: usize,
) -> WorkloadList {
    let mut list = WorkloadList {
        unit: unit.name().to_owned(),
        filter: filter.clone(),
        rows: Vec::new(),
        matching: 0,
        total: 0,
        pages: 1,
        namespaces: Vec::new(),
        revision: None,
        head_problem: None,
        error: None,
    };
    let read = match cache.rows(unit).await {
        Ok(read) => read,
        Err(e) => {
            list.error = Some(e);
            return list;
        }
    };
    let all = &read.rows;
    list.total = all.len();
    list.revision = Some(read.revision.clone());
    list.head_problem = read.head_problem.clone();
    let mut namespaces: Vec<String> = all.iter().filter_map(|r| r.id.namespace().map(str::to_owned)).collect();
    namespaces.dedup();
    namespaces.sort();
    namespaces.dedup();
    list.namespaces = namespaces;
    let text = filter.text.to_lowercase();
    let matching: Vec<&WorkloadRow> = all.iter().filter(|r| matches(r, filter, &text)).collect();
    list.matching = matching.len();
    let page_size = page_size.max(1);
    list.pages = matching.len().div_ceil(page_size).max(1);
    list.filter.page = filter.page.clamp(1, list.pages);
    list.rows = matching.into_iter().skip((list.filter.page - 1) * page_size).take(page_size).cloned().collect();
    list
}

/// One workload's page.
#[derive(Debug)]
pub(crate) struct WorkloadDetail {
    pub(crate) unit: String,
    pub(crate) id: ResourceId,
    /// As in the table; `None` when the unit has no such workload.
    pub(crate) row: Option<WorkloadRow>,
    /// Its containers' images and available tags, or why they cannot be listed.
    pub(crate) images: Result<Vec<ContainerImages>, String>,
    /// The jobs that changed it, newest first.
    pub(crate) history: Vec<JobEntry>,
    pub(crate) error: Option<String>,
}

/// One workload: its row, its images and tags, the jobs that changed it.
pub(crate) async fn workload(unit: &UnitService, cache: &RowCache, id: &ResourceId) -> WorkloadDetail {
    let (row, error) = match cache.rows(unit).await {
        Ok(read) => (read.rows.iter().find(|r| &r.id == id).cloned(), None),
        Err(e) => (None, Some(e)),
    };
    let images = match unit.images(Some(id)).await {
        Ok((_, images)) => Ok(images.into_iter().find(|w| &w.workload == id).map(|w| w.containers).unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    };
    let history = unit
        .jobs()
        .iter()
        .map(|(job, view)| job_entry(job, view))
        .filter(|j| j.revision.is_some() && j.workloads.contains(id))
        .collect();
    WorkloadDetail { unit: unit.name().to_owned(), id: id.clone(), row, images, history, error }
}

/// The history page: the last syncs and jobs.
#[derive(Debug)]
pub(crate) struct History {
    pub(crate) unit: String,
    pub(crate) syncs: Vec<SyncRecord>,
    pub(crate) jobs: Vec<JobEntry>,
}

/// A unit's recent syncs and jobs (the commits among them with what they changed).
pub(crate) fn history(unit: &UnitService) -> History {
    History {
        unit: unit.name().to_owned(),
        syncs: unit.sync_history(),
        jobs: unit.jobs().iter().map(|(id, view)| job_entry(id, view)).collect(),
    }
}
