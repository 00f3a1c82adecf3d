//! Publishing a ref update. gix cannot push yet (GitoxideLabs/gitoxide#306), so [`GitCli`] runs
//! `git push --porcelain` with a lease, as jj and GitButler do; everything else talks to
//! [`Pusher`], so a gix implementation can replace it in one place.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    /// What it must point to now (the lease), or `None` to move it whatever it points to
    /// (unless `fast_forward_only`).
    pub(crate) expected: Option<ObjectId>,
    /// Refuse (as `Conflict`) an update that is not a fast-forward of what the remote has.
    pub(crate) fast_forward_only: bool,
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
    /// How long a network command (push) may run before its process group is killed.
    pub(crate) timeout: Duration,
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
            Some(expected) => {
                command.arg(format!("--force-with-lease={}:{expected}", update.name));
            }
            None if update.fast_forward_only => {}
            None => {
                command.arg("--force");
            }
        }
        command.arg(&self.remote.url).arg(format!("{}:{}", update.new, update.name));
        let what = format!("pushing {} to {}", update.name, self.remote.url);
        self.remote.begin();
        let output = output_within(command, self.timeout)
            .map_err(|e| Error::other(format!("{what}: cannot run git: {e}")))?
            .ok_or_else(|| timed_out(&what, self.timeout))?;
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

/// The error for a network operation `what` (which names the remote, without credentials) that
/// did not finish within `timeout`.
pub(crate) fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::transient(format!("{what}: timed out after {timeout:?} (the git timeout, --git-timeout)"))
}

/// Runs `command` in its own process group and collects its output; `None` when it did not end
/// within `timeout`, in which case the whole group (git, ssh, helpers) has been killed.
pub(crate) fn output_within(mut command: Command, timeout: Duration) -> std::io::Result<Option<Output>> {
    command.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let group = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw);
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_group(group);
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
    };
    // Also after a normal exit: whatever git left behind (an ssh still holding the pipes) goes,
    // so the readers below end.
    kill_group(group);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(status.map(|status| Output { status, stdout, stderr }))
}

fn kill_group(group: Option<rustix::process::Pid>) {
    // Never Pid::INIT: `kill(-1)` would signal every process we may signal.
    if let Some(pid) = group.filter(|pid| !pid.is_init()) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_hangs_is_killed_with_its_children() {
        let dir = tempfile::tempdir().expect("temp dir");
        let marker = dir.path().join("child-survived");
        let mut command = Command::new("sh");
        // The grandchild would write the marker after the parent is gone, were it not killed.
        command.arg("-c").arg(format!("(sleep 2; touch '{}') & sleep 600", marker.display()));
        let output = output_within(command, Duration::from_millis(200)).expect("runs");
        assert!(output.is_none(), "the command was not reported as timed out");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "a process of the group outlived the timeout");
    }

    #[test]
    fn a_quick_command_gives_its_output() {
        let mut command = Command::new("sh");
        command.arg("-c").arg("echo out; echo err >&2; exit 3");
        let output = output_within(command, Duration::from_secs(20)).expect("runs").expect("finished");
        assert_eq!((output.stdout.as_slice(), output.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
        assert_eq!(output.status.code(), Some(3));
    }
}
