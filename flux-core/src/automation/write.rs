//! Turning planned changes into workload edits and one commit, retried on conflicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::automation::config::AutomationConfig;
use crate::automation::state::RepoState;
use crate::error::{Error, Result};
use crate::generate::{EditChange, Generator, Updated, WorkloadEdit};
use crate::image::ImageRef;
use crate::resource::ResourceId;
use crate::source::{Author, CommitRequest, Revision, Source};

/// One image to change in one container of one workload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageChange {
    /// The workload.
    pub workload: ResourceId,
    /// The container (for a HelmRelease, the image's name).
    pub container: String,
    /// The image now in git.
    pub from: ImageRef,
    /// The image to write.
    pub to: ImageRef,
}

/// The edits that make `changes`, in the same order.
pub(crate) fn image_edits(changes: &[ImageChange]) -> Vec<WorkloadEdit> {
    changes
        .iter()
        .map(|c| WorkloadEdit {
            workload: c.workload.clone(),
            change: EditChange::Image { container: c.container.clone(), image: c.to.clone() },
        })
        .collect()
}

/// Splits `changes` into those made and those that failed (by index, as [`Updated::failed`]
/// reports them).
pub(crate) fn split_failed(
    changes: Vec<ImageChange>,
    failed: Vec<(usize, Error)>,
) -> (Vec<ImageChange>, Vec<(ImageChange, Error)>) {
    let mut failed: BTreeMap<usize, Error> = failed.into_iter().collect();
    let mut done = Vec::new();
    let mut not_done = Vec::new();
    for (i, change) in changes.into_iter().enumerate() {
        match failed.remove(&i) {
            Some(e) => not_done.push((change, e)),
            None => done.push(change),
        }
    }
    (done, not_done)
}

/// The list of changes that follows a commit's first line.
pub(crate) fn change_list(changes: &[ImageChange]) -> String {
    let mut s = String::new();
    for c in changes {
        let _ = writeln!(s, " - {} ({}): {} -> {}", c.workload, c.container, c.from, c.to);
    }
    s
}

/// Who a commit is by and which job made it, given per call so that one engine serves every
/// request: `author` (default: [`AutomationConfig::author`]) is the commit's author, `job` is
/// written as the `Flux-Job:` trailer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitAs {
    /// The commit's author, instead of the configured one.
    pub author: Option<Author>,
    /// The id of the job making the commit (`Flux-Job: <id>`).
    pub job: Option<String>,
}

impl CommitAs {
    /// The author to write: this one's, else `config`'s.
    pub(crate) fn author_or(&self, config: &AutomationConfig) -> Author {
        self.author.clone().unwrap_or_else(|| config.author.clone())
    }
}

/// Who and why, written as trailers so that the history of releases survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trailers {
    pub(crate) kind: &'static str,
    pub(crate) job: Option<String>,
    pub(crate) user: Option<String>,
}

/// A whole commit message: first line, optional body, change list, `[ci skip]`, trailers.
pub(crate) fn message(
    config: &AutomationConfig,
    title: &str,
    body: Option<&str>,
    list: &str,
    trailers: &Trailers,
) -> String {
    let mut m = title.trim().to_owned();
    m.push_str("\n\n");
    if let Some(body) = body.filter(|b| !b.trim().is_empty()) {
        m.push_str(body.trim());
        m.push_str("\n\n");
    }
    if !list.is_empty() {
        m.push_str(list);
        m.push('\n');
    }
    if config.ci_skip {
        m.push_str("[ci skip]\n\n");
    }
    let _ = writeln!(m, "Flux-Change: {}", trailers.kind);
    if let Some(job) = &trailers.job {
        let _ = writeln!(m, "Flux-Job: {job}");
    }
    if let Some(user) = &trailers.user {
        let _ = writeln!(m, "Flux-User: {}", user.replace('\n', " "));
    }
    m
}

/// The edits a planning step wants made, and what it decided.
pub(crate) struct Proposal<T> {
    pub(crate) edits: Vec<WorkloadEdit>,
    pub(crate) outcome: T,
}

/// What a planning step wants committed, once it knows which edits could be made.
pub(crate) struct Planned<T> {
    pub(crate) message: String,
    pub(crate) author: Author,
    pub(crate) outcome: T,
}

/// Reads the head, plans the edits (`plan`), has the generator write them, describes the commit
/// (`finish`, told which edits failed), commits on the head; on a conflict reads the new head and
/// plans again, up to `config.max_conflict_retries` times. Returns the new revision (`None` when
/// no file changed, or `dry_run`), the outcome of the plan that was committed, and the state it
/// was planned on. `first` is a state already read, used for the first attempt.
pub(crate) async fn plan_and_commit<T>(
    source: &Arc<dyn Source>,
    generator: &dyn Generator,
    config: &AutomationConfig,
    dry_run: bool,
    mut first: Option<RepoState>,
    mut plan: impl FnMut(&RepoState) -> Result<Proposal<T>>,
    mut finish: impl FnMut(&RepoState, T, Vec<(usize, Error)>) -> Result<Planned<T>>,
) -> Result<(Option<Revision>, T, RepoState)> {
    let mut attempt = 0;
    loop {
        let state = match first.take() {
            Some(state) => state,
            None => RepoState::read(source, config, generator).await?,
        };
        let proposal = plan(&state)?;
        let updated = if proposal.edits.is_empty() {
            Updated::default()
        } else {
            generator.update(&state.snapshot, &state.generated, &proposal.edits).await
        };
        let planned = finish(&state, proposal.outcome, updated.failed)?;
        if updated.files.is_empty() || dry_run {
            return Ok((None, planned.outcome, state));
        }
        let request = CommitRequest {
            base: state.head.clone(),
            changes: updated.files,
            author: planned.author,
            message: planned.message,
        };
        match source.commit(&request).await {
            Ok(revision) => return Ok((Some(revision), planned.outcome, state)),
            Err(e) if e.is_conflict() && attempt < config.max_conflict_retries => {
                attempt += 1;
                tracing::info!(attempt, "the source moved while committing; planning again on the new head");
            }
            Err(e) => return Err(e),
        }
    }
}
