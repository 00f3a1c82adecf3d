//! Flux v1's `--git-secret`: files hidden with [git-secret](https://git-secret.io) are revealed
//! with `git secret reveal -f` and read as if they were in the revision.
//!
//! flux-rs reads revisions from git's object database, with no work tree, so the reveal runs in
//! a temporary directory made a git repository (`git secret` asks `git rev-parse` where its
//! root is) holding only the revision's `.gitsecret/` directory and its `*.secret` files. It is
//! run as every repository command is ([`CommandRunner`]): a clean environment plus
//! `GNUPGHOME` (the keys the unit imported with `--git-gpg-key-import`, or a mounted keyring),
//! bounded by the generator's timeout, its process group killed. The revealed files are the
//! plaintext next to each `*.secret` file; they never reach a log line or an error: on failure
//! git-secret's stderr is shown with the temporary directory and any revealed line removed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use flux_core::generate::Snapshot;
use flux_core::{Error, FileChange, Location, Result, SourceFile};

use crate::checkout::Checkout;
use crate::command::{CommandRunner, ShellCommand};

/// git-secret's directory (its `SECRETS_DIR` default).
pub const SECRETS_DIR: &str = ".gitsecret";
/// The suffix of a hidden file (git-secret's `SECRETS_EXTENSION` default).
pub const SECRETS_EXTENSION: &str = ".secret";
/// What is run in the temporary repository.
const REVEAL: &str = "git init -q . && git secret reveal -f";
/// Revealed lines shorter than this are not redacted from stderr (they would blank out words
/// such as `gpg`); such short lines hold no secret worth the name.
const MIN_REDACTED_LINE: usize = 6;

/// How hidden files are revealed: for which repository (named in errors), with which keys.
#[derive(Clone)]
pub struct GitSecret {
    repository: String,
    gnupg_home: Option<PathBuf>,
}

impl fmt::Debug for GitSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSecret").field("repository", &self.repository).field("gnupg_home", &self.gnupg_home).finish()
    }
}

impl GitSecret {
    /// Reveals files of `repository` (its URL without credentials, or any name the operator
    /// knows it by), with the keys of the daemon's own `GNUPGHOME` (else `$HOME/.gnupg`).
    pub fn new(repository: impl Into<String>) -> Self {
        let gnupg_home = std::env::var_os("GNUPGHOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".gnupg")));
        GitSecret { repository: repository.into(), gnupg_home }
    }

    /// Uses the keys in this GnuPG home (where `--git-gpg-key-import` put them).
    pub fn with_gnupg_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.gnupg_home = Some(home.into());
        self
    }

    /// The repository named in errors.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The files `git secret reveal -f` reveals in `snapshot`'s revision, each at the path of
    /// its `*.secret` file without the suffix; run by `runner` for at most `timeout`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] at `.gitsecret` naming the repository and revision when the
    /// revision has no `.gitsecret/` or the reveal fails (with git-secret's stderr, scrubbed);
    /// [`Error::Transient`] when it runs past `timeout`; what the source says when the
    /// revision cannot be read.
    pub async fn reveal(
        &self,
        snapshot: &Snapshot,
        runner: &CommandRunner,
        timeout: Duration,
    ) -> Result<Vec<SourceFile>> {
        let all = snapshot.all_files().await?;
        let prefix = format!("{SECRETS_DIR}/");
        let hidden: Vec<SourceFile> = all
            .iter()
            .filter(|f| f.path.starts_with(&prefix) || f.path.ends_with(SECRETS_EXTENSION))
            .cloned()
            .collect();
        let at = || Location::file(SECRETS_DIR);
        let revision = snapshot.revision().short();
        if !hidden.iter().any(|f| f.path.starts_with(&prefix)) {
            return Err(Error::invalid(
                at(),
                format!(
                    "git-secret is on (fluxd --git-secret) but revision {revision} of {} has no {SECRETS_DIR}/ \
                     directory (git secret init makes it)",
                    self.repository
                ),
            ));
        }
        let checkout = Checkout::new(&hidden)?;
        let mut env = Vec::new();
        if let Some(home) = &self.gnupg_home {
            env.push(("GNUPGHOME".to_owned(), home.to_string_lossy().into_owned()));
        }
        let command =
            ShellCommand { command: REVEAL.to_owned(), dir: checkout.path().to_owned(), env, timeout, origin: at() };
        let outcome = runner.run(&command).await;
        let revealed = revealed(&checkout, &hidden);
        match outcome {
            Ok(_) => revealed,
            Err(e) => {
                let plaintext = revealed.unwrap_or_default();
                let said = match &e {
                    Error::InvalidInput { message, .. } | Error::Transient { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let why = scrub(&said, &checkout.path().to_string_lossy(), &plaintext);
                let message =
                    format!("git secret reveal -f failed for revision {revision} of {}: {why}", self.repository);
                Err(match e {
                    Error::Transient { .. } => Error::transient(message),
                    _ => Error::invalid(at(), message),
                })
            }
        }
    }
}

/// `files` with `revealed` among them (a revealed file replaces a committed one of its path),
/// sorted by path.
pub(crate) fn overlay(files: &[SourceFile], revealed: &[SourceFile]) -> Vec<SourceFile> {
    let mut all: Vec<SourceFile> =
        files.iter().filter(|f| !revealed.iter().any(|r| r.path == f.path)).cloned().collect();
    all.extend(revealed.iter().cloned());
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all
}

/// The files the reveal wrote next to a `*.secret` file of `hidden`.
fn revealed(checkout: &Checkout, hidden: &[SourceFile]) -> Result<Vec<SourceFile>> {
    let changes = checkout.changes(hidden)?;
    let secret = |path: &str| hidden.iter().any(|f| f.path == format!("{path}{SECRETS_EXTENSION}"));
    Ok(changes
        .into_iter()
        .filter_map(|FileChange { path, content }| match content {
            Some(content) if secret(&path) => Some(SourceFile { path, content }),
            _ => None,
        })
        .collect())
}

/// `text` without the temporary directory's path and without any line of `plaintext`.
fn scrub(text: &str, dir: &str, plaintext: &[SourceFile]) -> String {
    let mut text = text.replace(&format!("{dir}/"), "").replace(dir, ".");
    for file in plaintext {
        for line in String::from_utf8_lossy(&file.content).lines().map(str::trim) {
            if line.len() >= MIN_REDACTED_LINE {
                text = text.replace(line, "[redacted]");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_the_directory_and_revealed_lines() {
        let plaintext = [SourceFile { path: "a.yaml".into(), content: b"  password: hunter2-value\nx: 1\n".to_vec() }];
        let text = "gpg: failed /tmp/flux-checkout-x/b.yaml\npassword: hunter2-value\nin /tmp/flux-checkout-x";
        let scrubbed = scrub(text, "/tmp/flux-checkout-x", &plaintext);
        assert_eq!(scrubbed, "gpg: failed b.yaml\n[redacted]\nin .");
    }
}
