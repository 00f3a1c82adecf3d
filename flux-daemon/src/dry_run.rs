//! Dry runs: a [`Source`] whose commits are recorded and never made, and the diff
//! [`plan`](mod@plan) of a sync and an automation pass.

pub mod plan;

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use flux_core::{CommitRequest, Revision, Source, SourceFile};

/// Wraps a source; `commit` records the request and answers a revision named `dry-run`.
pub struct RecordingSource {
    inner: Arc<dyn Source>,
    commits: Mutex<Vec<CommitRequest>>,
}

impl RecordingSource {
    /// Records commits meant for `inner`.
    pub fn new(inner: Arc<dyn Source>) -> Self {
        RecordingSource { inner, commits: Mutex::new(Vec::new()) }
    }

    /// The commits that would have been made.
    pub fn commits(&self) -> Vec<CommitRequest> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Source for RecordingSource {
    async fn refresh(&self) -> flux_core::Result<Revision> {
        self.inner.refresh().await
    }

    async fn files(&self, revision: &Revision, paths: &[String]) -> flux_core::Result<Vec<SourceFile>> {
        self.inner.files(revision, paths).await
    }

    async fn read_file(&self, revision: &Revision, path: &str) -> flux_core::Result<Vec<u8>> {
        self.inner.read_file(revision, path).await
    }

    async fn commit(&self, request: &CommitRequest) -> flux_core::Result<Revision> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner).push(request.clone());
        Ok(Revision::new("dry-run"))
    }

    async fn sync_marker(&self) -> flux_core::Result<Option<Revision>> {
        self.inner.sync_marker().await
    }

    async fn set_sync_marker(&self, _revision: &Revision) -> flux_core::Result<()> {
        Ok(())
    }
}

/// The lines a commit would change, as `-`/`+` pairs per file.
pub async fn commit_diff(source: &dyn Source, request: &CommitRequest) -> String {
    let mut out = String::new();
    for change in &request.changes {
        let before = source.read_file(&request.base, &change.path).await.unwrap_or_default();
        let before = String::from_utf8_lossy(&before);
        let after = change.content.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        out.push_str(&format!("--- {}\n+++ {}\n", change.path, change.path));
        let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
        if old.len() == new.len() {
            for (o, n) in old.iter().zip(&new).filter(|(o, n)| o != n) {
                out.push_str(&format!("-{o}\n+{n}\n"));
            }
        } else {
            old.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
            new.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        }
    }
    out
}
