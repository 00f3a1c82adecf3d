//! `completion bash|zsh|fish`: the shell completion script of every command and flag, as
//! Flux v1's `fluxctl completion SHELL` printed it (here by clap_complete).

use clap_complete::Shell;

/// The shells Flux v1 completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CompletionShell {
    /// Load with `source <(fluxctl completion bash)`.
    Bash,
    /// Load with `source <(fluxctl completion zsh)` (after `compinit`).
    Zsh,
    /// Load with `fluxctl completion fish | source`.
    Fish,
}

/// The completion script of `command` for `shell`.
pub(crate) fn script(shell: CompletionShell, command: &mut clap::Command) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut out = Vec::new();
    clap_complete::generate(shell, command, "fluxctl", &mut out);
    out
}
