//! The building blocks that turn a revision into manifests by running programs: Flux v1's
//! `.flux.yaml` generators and updaters, and Kustomize.
//!
//! flux-core does no I/O; this crate does, in four steps that a generator composes:
//!
//! - [`checkout`]: a revision's files written to a temporary directory, and the changes
//!   commands made to it read back as [`FileChange`](flux_core::FileChange)s;
//! - [`command`]: one shell command run in that directory with a clean environment, a timeout
//!   that kills its whole process group, and capped output;
//! - [`kustomize`]: `kustomize build` (or `kubectl kustomize`) of one directory;
//! - [`flux_yaml`]: `.flux.yaml` files parsed and checked; [`updater`]: the environment its
//!   updater commands get;
//! - [`sops`]: SOPS-encrypted manifests decrypted (natively for age keys, else by the `sops`
//!   program) before they are read;
//! - [`git_secret`]: files hidden with git-secret revealed (`git secret reveal -f`) and read
//!   as if they were in the revision.
//!
//! Every error is a [`flux_core::Error`] naming the file, line or command at fault.
//!
//! # Example
//!
//! ```
//! use flux_core::{Location, SourceFile};
//! use flux_generate::{Checkout, CommandRunner, FluxYamlConfig, ShellCommand, parse_flux_yaml};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let text = "version: 1\ncommandUpdated:\n  generators:\n    - command: cat app.yaml\n";
//! let files = [
//!     SourceFile { path: ".flux.yaml".into(), content: text.into() },
//!     SourceFile { path: "app.yaml".into(), content: b"kind: ConfigMap\n".to_vec() },
//! ];
//! let flux_yaml = parse_flux_yaml(".flux.yaml", text)?;
//! let FluxYamlConfig::CommandUpdated { generators, .. } = &flux_yaml.config else { unreachable!() };
//! let checkout = Checkout::new(&files)?;
//! let generator = &generators[0];
//! let cmd = ShellCommand::new(&generator.command, checkout.path(), Location::line(".flux.yaml", generator.line));
//! let output = CommandRunner::new().run(&cmd).await?;
//! assert_eq!(output.stdout, "kind: ConfigMap\n");
//! # Ok::<(), flux_core::Error>(())
//! # }).unwrap();
//! ```

pub mod checkout;
pub mod command;
mod command_updated;
pub mod flux_yaml;
mod generator;
pub mod git_secret;
pub mod kustomize;
mod kustomize_edit;
mod layout;
mod patch_updated;
pub mod sops;
pub mod updater;

pub use checkout::Checkout;
pub use command::{CommandRunner, Output, ShellCommand};
pub use flux_yaml::{ConfigCommand, FluxYaml, FluxYamlConfig, Updater, parse_flux_yaml};
pub use generator::{GenerateConfig, RepoGenerator};
pub use git_secret::GitSecret;
pub use kustomize::Kustomize;
pub use sops::Sops;
pub use updater::{UpdaterChange, updater_env};
