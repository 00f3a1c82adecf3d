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
//! - **Sync marker**: a tag (`flux-sync` by default), force-moved and pushed; a read-only source
//!   never pushes.
//! - **Verification**: with [`VerifyMode::Head`] or [`VerifyMode::AllFirstParent`], a revision
//!   with a commit not signed by a trusted key is refused by `refresh`, naming the commit.
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
mod mirror;
mod push;
mod read;
mod remote;
mod sign;
mod source;
mod verify;
mod write;

pub use config::{Credentials, GitConfig, HostKeyCheck, Secret, Signing, TrustedKeys, VerifyMode};
pub use source::{FetchStats, GitSource};
