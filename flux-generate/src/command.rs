//! Runs one shell command from a user's repository, as Flux v1 ran `.flux.yaml` commands.
//!
//! The command runs as `/bin/sh -c <command>` in a directory of a [`Checkout`](crate::Checkout)
//! with a **clean environment**: only `PATH` (the runner's), `HOME` (a fresh, empty temporary
//! directory), `LANG=C.UTF-8` and the command's own variables. Nothing of the daemon's
//! environment (tokens, `SSH_AUTH_SOCK`, `KUBECONFIG`, `AWS_*`, …) reaches it. Its stdin is
//! `/dev/null`.
//!
//! The command runs in a process group of its own. When it times out, and whenever the run ends
//! (done, failed or cancelled), the whole group is killed, so nothing it started outlives it:
//! `sleep 600 | cat` leaves no `sleep` behind. (A command that leaves a background process
//! holding its stdout open is waited for until it times out.) A process that leaves the group
//! on purpose (`setsid`) escapes it: containing those takes a cgroup or a sandbox around the
//! daemon.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use flux_core::{Error, Location, Result};
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a command's stdout is read before it fails: 64 MiB.
pub const DEFAULT_MAX_STDOUT: usize = 64 << 20;
/// How much of a command's stderr is kept, from its end: 4 KiB.
pub const DEFAULT_STDERR_TAIL: usize = 4 << 10;
/// How long a command may run by default: one minute, as Flux v1's `--sync-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The `PATH` used when the daemon has none.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Commands longer than this are shortened in error messages.
const SHOWN_COMMAND_CHARS: usize = 200;

/// One command to run.
#[derive(Clone, PartialEq, Eq)]
pub struct ShellCommand {
    /// The shell text, run as `/bin/sh -c <command>`.
    pub command: String,
    /// The working directory.
    pub dir: PathBuf,
    /// Variables set on top of the clean environment (they win over `PATH`, `HOME`, `LANG`).
    pub env: Vec<(String, String)>,
    /// How long it may run before its process group is killed.
    pub timeout: Duration,
    /// Where the command was written (e.g. `.flux.yaml:5`), named in errors.
    pub origin: Location,
}

impl ShellCommand {
    /// `command` in `dir`, written at `origin`, with no extra variables and [`DEFAULT_TIMEOUT`].
    pub fn new(command: impl Into<String>, dir: impl Into<PathBuf>, origin: Location) -> Self {
        ShellCommand { command: command.into(), dir: dir.into(), env: Vec::new(), timeout: DEFAULT_TIMEOUT, origin }
    }

    /// The command shortened to one line for messages.
    fn shown(&self) -> String {
        let first = self.command.trim().lines().next().unwrap_or_default();
        let mut shown: String = first.chars().take(SHOWN_COMMAND_CHARS).collect();
        if shown.len() < self.command.trim().len() {
            shown.push('…');
        }
        shown
    }
}

impl fmt::Debug for ShellCommand {
    /// Variables by name only: their values are the caller's business.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellCommand")
            .field("command", &self.command)
            .field("dir", &self.dir)
            .field("env", &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("origin", &self.origin)
            .finish()
    }
}

/// What a successful command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Everything on stdout.
    pub stdout: String,
    /// The end of stderr (see [`CommandRunner::with_stderr_tail`]), lossily decoded.
    pub stderr: String,
}

/// Runs [`ShellCommand`]s with a configured `PATH` and output limits.
#[derive(Debug, Clone)]
pub struct CommandRunner {
    path: OsString,
    max_stdout: usize,
    stderr_tail: usize,
}

impl Default for CommandRunner {
    /// The daemon's own `PATH`, [`DEFAULT_MAX_STDOUT`] and [`DEFAULT_STDERR_TAIL`].
    fn default() -> Self {
        CommandRunner {
            path: std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into()),
            max_stdout: DEFAULT_MAX_STDOUT,
            stderr_tail: DEFAULT_STDERR_TAIL,
        }
    }
}

impl CommandRunner {
    /// A runner with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commands get `path` as their `PATH`.
    pub fn with_path(mut self, path: impl Into<OsString>) -> Self {
        self.path = path.into();
        self
    }

    /// A command printing more than `bytes` on stdout fails.
    pub fn with_max_stdout(mut self, bytes: usize) -> Self {
        self.max_stdout = bytes;
        self
    }

    /// Keeps the last `bytes` of stderr, for [`Output::stderr`] and error messages.
    pub fn with_stderr_tail(mut self, bytes: usize) -> Self {
        self.stderr_tail = bytes;
        self
    }

    /// The `PATH` commands get.
    pub fn path(&self) -> &OsStr {
        &self.path
    }

    /// Runs `cmd` to completion and returns its output.
    ///
    /// # Errors
    /// - [`Error::InvalidInput`] at `cmd.origin` when it exits non-zero (with the status and the
    ///   end of its stderr), prints more than the stdout limit, or prints stdout that is not UTF-8;
    /// - [`Error::Transient`] when it runs out of time (it is killed with its process group);
    /// - [`Error::Other`] when it cannot be started or its output cannot be read.
    pub async fn run(&self, cmd: &ShellCommand) -> Result<Output> {
        tracing::debug!(command = %cmd.shown(), origin = %cmd.origin, dir = %cmd.dir.display(), "running a command");
        let home = tempfile::Builder::new()
            .prefix("flux-cmd-home-")
            .tempdir()
            .map_err(|e| Error::other_with("cannot create a HOME directory for a command", e))?;
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd.command)
            .current_dir(&cmd.dir)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", home.path())
            .env("LANG", "C.UTF-8")
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::other_with(
                    format!("cannot start `{}` (from {}) in {}", cmd.shown(), cmd.origin, cmd.dir.display()),
                    e,
                )
            })?;
        // With `process_group(0)` the group id is the child's pid; dropping the guard kills it.
        let mut group = ProcessGroup(child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::other(format!("`{}` (from {}): no output pipes", cmd.shown(), cmd.origin)));
        };
        let run = async {
            tokio::try_join!(
                read_capped(stdout, self.max_stdout),
                async { Ok(read_tail(stderr, self.stderr_tail).await) },
                async { child.wait().await.map_err(Failure::Io) },
            )
        };
        let outcome = tokio::time::timeout(cmd.timeout, run).await;
        // After a normal exit too, so background strays go. A group id is not reused while any
        // member lives; once the group is empty the kill finds nothing.
        group.kill();
        let (stdout, stderr, status) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(Failure::TooMuchOutput)) => {
                return Err(Error::invalid(
                    cmd.origin.clone(),
                    format!("`{}` printed more than {} bytes on stdout", cmd.shown(), self.max_stdout),
                ));
            }
            Ok(Err(Failure::Io(e))) => {
                return Err(Error::other_with(format!("running `{}` (from {})", cmd.shown(), cmd.origin), e));
            }
            Err(_elapsed) => {
                // Reap the killed shell now rather than leave it to tokio's background reaper.
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                return Err(Error::transient(format!(
                    "`{}` (from {}) timed out after {} and was killed with every process it started; \
                     the timeout is configurable (fluxd flag --sync-timeout)",
                    cmd.shown(),
                    cmd.origin,
                    humantime::format_duration(cmd.timeout)
                )));
            }
        };
        check_status(cmd, status, &stderr)?;
        let stdout = String::from_utf8(stdout).map_err(|e| {
            Error::invalid(
                cmd.origin.clone(),
                format!(
                    "`{}` printed stdout that is not UTF-8 (at byte {})",
                    cmd.shown(),
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        Ok(Output { stdout, stderr })
    }
}

fn check_status(cmd: &ShellCommand, status: ExitStatus, stderr: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let stderr = stderr.trim();
    let said = if stderr.is_empty() { " and printed nothing on stderr".to_owned() } else { format!(": {stderr}") };
    Err(Error::invalid(cmd.origin.clone(), format!("`{}` failed ({status}){said}", cmd.shown())))
}

/// Why reading a command's output stopped early.
enum Failure {
    TooMuchOutput,
    Io(std::io::Error),
}

/// All of `reader`, or [`Failure::TooMuchOutput`] past `max` bytes.
async fn read_capped(reader: impl AsyncRead + Unpin, max: usize) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut bytes).await.map_err(Failure::Io)?;
    if bytes.len() > max { Err(Failure::TooMuchOutput) } else { Ok(bytes) }
}

/// The last `keep` bytes of `reader`, lossily decoded; `…` marks a cut. Read errors end it.
async fn read_tail(mut reader: impl AsyncRead + Unpin, keep: usize) -> String {
    let mut tail = Vec::new();
    let mut cut = false;
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > keep {
            tail.drain(..tail.len() - keep);
            cut = true;
        }
    }
    let text = String::from_utf8_lossy(&tail);
    if cut { format!("…{text}") } else { text.into_owned() }
}

/// A command's process group, killed (once) on [`ProcessGroup::kill`] or drop.
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    fn kill(&mut self) {
        // Never Pid::INIT: `kill(-1)` would signal every process we may signal.
        if let Some(pid) = self.0.take().filter(|p| !p.is_init()) {
            // ESRCH: nothing is left in the group, which is the point.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
