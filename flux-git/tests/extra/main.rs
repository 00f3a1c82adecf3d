//! flux-git's behaviour beyond the Source contract, against real remotes: racing writers,
//! cheap refreshes, shallow mirrors, links, read-only mode, host keys, signatures, secrets.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

mod faults;
mod secrets;
mod signatures;
mod timeouts;
mod transport;
mod v1_git;
mod writers;

use flux_core::{Author, CommitRequest, FileChange, Revision};
use flux_git::{GitConfig, GitSource};

/// Opens a source, panicking on failure.
fn open(config: GitConfig) -> GitSource {
    GitSource::open(config).expect("open git source")
}

/// A request writing `changes` on `base`.
fn request(base: &Revision, changes: Vec<FileChange>, message: &str) -> CommitRequest {
    CommitRequest {
        base: base.clone(),
        changes,
        author: Author::new("Test", "test@example.com"),
        message: message.into(),
    }
}
