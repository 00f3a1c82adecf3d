//! Signature verification of fetched revisions with `git verify-commit`, which checks OpenPGP
//! signatures against a GnuPG keyring and ssh signatures against an allowed-signers file.

use std::collections::HashSet;
use std::path::Path;

use flux_core::{Error, Result};
use gix::ObjectId;

use crate::config::{TrustedKeys, VerifyMode};
use crate::errors::local_error;
use crate::push::GitCli;

/// The commits `mode` requires to be signed for `head`: the head, its first-parent chain down to
/// (not including) `stop_at`, the root, or the shallow boundary, or every commit reachable from
/// it and not from `stop_at`.
pub(crate) fn commits_to_check(
    repo: &gix::Repository,
    head: ObjectId,
    mode: VerifyMode,
    stop_at: Option<ObjectId>,
) -> Result<Vec<ObjectId>> {
    match mode {
        VerifyMode::None => Ok(Vec::new()),
        VerifyMode::Head => Ok(vec![head]),
        VerifyMode::AllFirstParent => {
            let mut out = Vec::new();
            let mut next = Some(head);
            while let Some(id) = next.filter(|id| Some(*id) != stop_at) {
                let Ok(commit) = repo.find_commit(id) else { break }; // shallow boundary
                out.push(id);
                next = commit.parent_ids().next().map(|p| p.detach());
            }
            if out.is_empty() && stop_at != Some(head) {
                return Err(local_error("verifying signatures", &format!("commit {head} is missing from the mirror")));
            }
            Ok(out)
        }
        VerifyMode::All => {
            if stop_at == Some(head) {
                return Ok(Vec::new());
            }
            let fail =
                |e: &dyn std::fmt::Display| local_error("verifying signatures", &format!("listing commits: {e}"));
            let walk = repo.rev_walk([head]).with_hidden(stop_at);
            let mut out = Vec::new();
            for info in walk.all().map_err(|e| fail(&e))? {
                out.push(info.map_err(|e| fail(&e))?.id);
            }
            if out.is_empty() {
                return Err(local_error("verifying signatures", &format!("commit {head} is missing from the mirror")));
            }
            Ok(out)
        }
    }
}

/// Checks each of `commits` not yet in `verified`; the first one without a valid signature by a
/// trusted key is refused, naming it.
pub(crate) fn verify(
    git: &GitCli,
    mirror: &Path,
    trusted: &TrustedKeys,
    commits: &[ObjectId],
    verified: &mut HashSet<ObjectId>,
) -> Result<()> {
    for id in commits {
        if verified.contains(id) {
            continue;
        }
        let mut command = git.command(mirror);
        if let Some(signers) = &trusted.ssh_allowed_signers {
            command.arg("-c").arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()));
        }
        if let Some(home) = &trusted.gnupg_home {
            command.env("GNUPGHOME", home);
        }
        let output = command
            .arg("verify-commit")
            .arg(id.to_string())
            .output()
            .map_err(|e| Error::other(format!("verifying commit {id}: cannot run git: {e}")))?;
        if !output.status.success() {
            let why = String::from_utf8_lossy(&output.stderr);
            let why = why.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no signature").trim().to_owned();
            return Err(Error::unauthorized(format!(
                "commit {id} is not signed by a trusted key ({why}); it will not be synced"
            )));
        }
        verified.insert(*id);
    }
    Ok(())
}
