//! flux-core's [`Source`](flux_core::Source) on git: [`GitSource`].
//!
//! - **Transports**: local paths and `file://`, `git://`, `ssh://` and scp-like
//!   `git@host:org/repo.git` (a deploy key, host keys checked unless explicitly turned off),
//!   `https://` with basic or token credentials. Credentials never appear in logs, errors or
//!   `Debug` output.
//! - **Refresh** lists the remote branch and marker tag (one request) and fetches a pack only
//!   when one of them moved; optionally shallow. gix's blocking client runs on `spawn_blocking`.
//! - **Reads** come straight from the object database of a local bare mirror: no checkout.
//! - **Commits** are built with gix's tree editor and pushed with `git push --force-with-lease`
//!   (gix cannot push yet); a push that lost a race is [`flux_core::Error::Conflict`]. Optional
//!   signing (GPG or ssh) and `[ci skip]`.
//! - **Sync marker**: an annotated tag (`flux-sync` by default, message `Sync pointer`, as Flux
//!   v1's), signed with the signing key when one is set, force-moved and pushed (a lightweight
//!   tag left by an older flux-rs is replaced); a read-only source never pushes.
//! - **Notes**: with [`GitConfig::notes_ref`], every commit made gets a git note (JSON naming
//!   its job, as Flux v1's `--git-notes-ref`), pushed right after the commit.
//! - **GPG keys** from files or directories are imported into a private [`GnupgHome`] (Flux
//!   v1's `--git-gpg-key-import`), used for signing and verification.
//! - **Verification**: with [`VerifyMode::Head`] or [`VerifyMode::AllFirstParent`], a revision
//!   with a commit not signed by a trusted key is refused by `refresh`, naming the commit.
//! - **Timeouts**: every fetch, push and ref listing (and ssh's connection) ends after
//!   [`GitConfig::timeout`] (default 20 s, Flux v1's `--git-timeout`), with a `Transient` error
//!   naming the remote; a server that accepts and then hangs never stalls the caller.
//!
//! ```no_run
//! use flux_core::Source;
//! use flux_git::{Credentials, GitConfig, GitSource, HostKeyCheck};
//!
//! # async fn example() -> flux_core::Result<()> {
//! let config = GitConfig::new("git@github.com:org/fleet.git", "main")
//!     .with_credentials(Credentials::SshKey { private_key: "/etc/flux/deploy-key".into() })
//!     .with_host_key_check(HostKeyCheck::KnownHostsFile("/etc/flux/known_hosts".into()));
//! let source = GitSource::open(config)?;
//! let head = source.refresh().await?;
//! let manifests = source.files(&head, &["deploy".to_owned()]).await?;
//! # Ok(()) }
//! ```

mod config;
mod errors;
mod fetch;
mod gpg;
mod mirror;
mod notes;
mod push;
mod read;
mod remote;
mod sign;
mod source;
mod tag;
mod verify;
mod write;

pub use config::{Credentials, DEFAULT_GIT_TIMEOUT, GitConfig, HostKeyCheck, Secret, Signing, TrustedKeys, VerifyMode};
pub use gpg::GnupgHome;
pub use source::{FetchStats, GitSource};
