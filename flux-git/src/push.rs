//! Publishing a ref update. gix cannot push yet (GitoxideLabs/gitoxide#306), so [`GitCli`] runs
//! `git push --porcelain` with a lease, as jj and GitButler do; everything else talks to
//! [`Pusher`], so a gix implementation can replace it in one place.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::{Error, Result};
use gix::ObjectId;

use crate::remote::Remote;

/// One ref to move on the remote.
#[derive(Debug, Clone)]
pub(crate) struct RefUpdate {
    /// The full remote ref name.
    pub(crate) name: String,
    /// The object to point it at (present in the local mirror).
    pub(crate) new: ObjectId,
    /// What it must point to now (the lease), or `None` to move it whatever it points to.
    pub(crate) expected: Option<ObjectId>,
}

/// Pushes ref updates to the remote.
pub(crate) trait Pusher: Send + Sync {
    /// Moves `update.name` to `update.new`; `Conflict` when the lease does not hold or the update
    /// is not a fast-forward, leaving the remote as it was.
    fn push(&self, mirror: &Path, update: &RefUpdate) -> Result<()>;
}

/// [`Pusher`] on the `git` command line.
#[derive(Debug, Clone)]
pub(crate) struct GitCli {
    pub(crate) git: PathBuf,
    pub(crate) remote: Remote,
    pub(crate) ssh_command: Option<String>,
}

/// Environment variables that carry HTTPS credentials to the credential helper below, so they
/// never appear on a command line.
const USER_VAR: &str = "FLUX_GIT_USERNAME";
const PASSWORD_VAR: &str = "FLUX_GIT_PASSWORD";
const CREDENTIAL_HELPER: &str =
    "!f() { test \"$1\" = get && echo \"username=$FLUX_GIT_USERNAME\" && echo \"password=$FLUX_GIT_PASSWORD\"; }; f";

impl GitCli {
    /// The `git` command with the mirror, ssh and credentials set up and prompts disabled.
    pub(crate) fn command(&self, mirror: &Path) -> Command {
        let mut command = Command::new(&self.git);
        command.arg("--git-dir").arg(mirror).env("GIT_TERMINAL_PROMPT", "0").env("GCM_INTERACTIVE", "never");
        if let Some(ssh) = &self.ssh_command {
            command.arg("-c").arg(format!("core.sshCommand={ssh}"));
        }
        if let Some((username, password)) = self.remote.credentials.http_account() {
            command
                .args(["-c", "credential.helper=", "-c"])
                .arg(format!("credential.helper={CREDENTIAL_HELPER}"))
                .env(USER_VAR, username)
                .env(PASSWORD_VAR, password);
        }
        command
    }
}

impl Pusher for GitCli {
    fn push(&self, mirror: &Path, update: &RefUpdate) -> Result<()> {
        let mut command = self.command(mirror);
        command.args(["push", "--porcelain", "--no-verify"]);
        match update.expected {
            Some(expected) => command.arg(format!("--force-with-lease={}:{expected}", update.name)),
            None => command.arg("--force"),
        };
        command.arg(&self.remote.url).arg(format!("{}:{}", update.new, update.name));
        let what = format!("pushing {} to {}", update.name, self.remote.url);
        self.remote.begin();
        let output = command.output().map_err(|e| Error::other(format!("{what}: cannot run git: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let status_line = stdout.lines().find(|l| l.split('\t').nth(1).is_some_and(|s| s.ends_with(&update.name)));
        if output.status.success() && status_line.is_some_and(|l| !l.starts_with('!')) {
            tracing::debug!(name = %update.name, new = %update.new, "pushed");
            return Ok(());
        }
        if let Some(line) = status_line.filter(|l| l.starts_with('!')) {
            let reason = line.split('\t').nth(2).unwrap_or("rejected");
            // A lease or fast-forward check that failed before sending, or the server's own
            // compare-and-swap of the ref losing a race with another push.
            let raced = ["stale info", "fetch first", "non-fast-forward", "already exists", "failed to update ref"]
                .iter()
                .any(|r| reason.contains(r))
                || stderr.contains("cannot lock ref");
            if raced {
                return Err(Error::conflict(format!(
                    "{} on {} moved meanwhile ({reason}); refresh and try again",
                    update.name, self.remote.url
                )));
            }
            return Err(Error::other(
                self.remote.redactor.redact(&format!("{what}: rejected: {reason}: {}", stderr.trim())),
            ));
        }
        Err(self.remote.fail(&what, &stderr.trim()))
    }
}
