//! `kustomize build` of one directory of a checkout.

use std::path::Path;
use std::time::Duration;

use flux_core::source::normalize_path;
use flux_core::{Error, Location, Result};

use crate::command::{CommandRunner, DEFAULT_TIMEOUT, ShellCommand};

/// Builds kustomizations with a configurable program: `kustomize build <dir>` or
/// `kubectl kustomize <dir>`, run through a [`CommandRunner`] (clean environment, timeout).
#[derive(Debug, Clone)]
pub struct Kustomize {
    command: Vec<String>,
    timeout: Duration,
    runner: CommandRunner,
}

impl Kustomize {
    /// `kustomize build` when a `kustomize` binary is on the `PATH` commands get, else
    /// `kubectl kustomize`; [`DEFAULT_TIMEOUT`] and a default [`CommandRunner`].
    pub fn detect() -> Self {
        Self::detect_with(CommandRunner::default())
    }

    /// [`Kustomize::detect`], looking on `runner`'s `PATH` and running through `runner`.
    pub fn detect_with(runner: CommandRunner) -> Self {
        let standalone = std::env::split_paths(runner.path()).any(|dir| dir.join("kustomize").is_file());
        let command = if standalone { ["kustomize", "build"] } else { ["kubectl", "kustomize"] };
        Kustomize { command: command.map(str::to_owned).to_vec(), timeout: DEFAULT_TIMEOUT, runner }
    }

    /// An explicit program and its arguments; the directory to build is appended.
    pub fn with_command(command: Vec<String>) -> Self {
        Kustomize { command, timeout: DEFAULT_TIMEOUT, runner: CommandRunner::default() }
    }

    /// How long one build may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs builds through `runner` (its `PATH` and output limits).
    pub fn with_runner(mut self, runner: CommandRunner) -> Self {
        self.runner = runner;
        self
    }

    /// The program and arguments the directory is appended to.
    pub fn command(&self) -> &[String] {
        &self.command
    }

    /// Builds the kustomization in `dir` (a repository path; `""` is the root) of the checkout
    /// at `root`, and returns the YAML it prints.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `dir` when it leaves the repository or the build fails
    /// (with the end of kustomize's stderr), or when the output is too large or not UTF-8;
    /// [`Error::Transient`] on timeout; [`Error::Other`] when the program cannot be started.
    pub async fn build(&self, root: &Path, dir: &str) -> Result<String> {
        let dir = normalize_path(dir)?;
        let shown_dir = if dir.is_empty() { "." } else { dir.as_str() };
        if self.command.is_empty() {
            return Err(Error::other("the kustomize command is empty"));
        }
        let words: Vec<String> = self.command.iter().map(String::as_str).chain([shown_dir]).map(shell_quote).collect();
        let mut cmd = ShellCommand::new(words.join(" "), root, Location::file(shown_dir));
        cmd.timeout = self.timeout;
        let output = self.runner.run(&cmd).await.map_err(|e| without_root(e, root))?;
        Ok(output.stdout)
    }
}

/// The error with the checkout's temporary path taken out of its message: kustomize names files
/// by absolute path (with links resolved), which means nothing to the user.
fn without_root(error: Error, root: &Path) -> Error {
    match error {
        Error::InvalidInput { location, mut message } => {
            let resolved = root.canonicalize().unwrap_or_else(|_| root.to_owned());
            for root in [resolved.as_path(), root] {
                message = message.replace(&format!("{}/", root.display()), "");
            }
            Error::invalid(location, message)
        }
        other => other,
    }
}

/// `word` quoted for `sh` when it holds anything but plainly safe characters.
pub(crate) fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("overlays/prod"), "overlays/prod");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
