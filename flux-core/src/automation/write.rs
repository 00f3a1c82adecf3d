//! Turning planned image changes into file edits and one commit, retried on conflicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::automation::config::AutomationConfig;
use crate::automation::state::RepoState;
use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::manifest::edit::set_container_image;
use crate::resource::ResourceId;
use crate::source::{Author, CommitRequest, FileChange, Revision, Source};

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

/// Applies `changes` to the files of `state` with the lossless editor, file by file.
/// Returns the file changes and the image changes that could not be made, with why.
pub(crate) fn edit_files(state: &RepoState, changes: &[ImageChange]) -> (Vec<FileChange>, Vec<(ImageChange, Error)>) {
    let mut by_file: BTreeMap<&str, Vec<&ImageChange>> = BTreeMap::new();
    let mut failed = Vec::new();
    for change in changes {
        match state.workload(&change.workload) {
            Some(w) => by_file.entry(w.file.as_str()).or_default().push(change),
            None => failed.push((change.clone(), Error::not_found(format!("workload {}", change.workload)))),
        }
    }
    let mut files = Vec::new();
    for (file, changes) in by_file {
        let mut text = match state.text(file) {
            Ok(t) => t.to_owned(),
            Err(e) => {
                let reason = e.to_string();
                failed.extend(changes.into_iter().map(|c| (c.clone(), Error::other(reason.clone()))));
                continue;
            }
        };
        let original = text.clone();
        for change in changes {
            match set_container_image(file, &text, &change.workload, &change.container, &change.to) {
                Ok(edited) => text = edited,
                Err(e) => failed.push((change.clone(), e)),
            }
        }
        if text != original {
            files.push(FileChange::write(file, text));
        }
    }
    (files, failed)
}

/// The list of changes that follows a commit's first line.
pub(crate) fn change_list(changes: &[ImageChange]) -> String {
    let mut s = String::new();
    for c in changes {
        let _ = writeln!(s, " - {} ({}): {} -> {}", c.workload, c.container, c.from, c.to);
    }
    s
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

/// What a planning step wants committed.
pub(crate) struct Planned<T> {
    pub(crate) files: Vec<FileChange>,
    pub(crate) message: String,
    pub(crate) author: Author,
    pub(crate) outcome: T,
}

/// Reads the head, plans, commits on it; on a conflict reads the new head and plans again, up
/// to `config.max_conflict_retries` times. Returns the new revision (`None` when the plan
/// changed no file, or `dry_run`), the outcome of the plan that was committed, and the state
/// it was planned on.
/// `first` is a state already read, used for the first attempt.
pub(crate) async fn plan_and_commit<T>(
    source: &dyn Source,
    config: &AutomationConfig,
    dry_run: bool,
    mut first: Option<RepoState>,
    mut plan: impl FnMut(&RepoState) -> Result<Planned<T>>,
) -> Result<(Option<Revision>, T, RepoState)> {
    let mut attempt = 0;
    loop {
        let state = match first.take() {
            Some(state) => state,
            None => RepoState::read(source, config).await?,
        };
        let planned = plan(&state)?;
        if planned.files.is_empty() || dry_run {
            return Ok((None, planned.outcome, state));
        }
        let request = CommitRequest {
            base: state.head.clone(),
            changes: planned.files,
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
