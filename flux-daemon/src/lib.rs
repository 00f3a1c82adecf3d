//! flux-daemon: the application layer of flux-rs as a library — what `fluxd` is made of.
//!
//! A [`SyncUnit`] is one repository's paths synced into a cluster under one identity, with its
//! generator, intervals, garbage collection and restrictions; it builds its sync, automation and
//! policy engines (one generator for all three). A [`Daemon`] runs many units in one process:
//! each has its loops (git poll, sync, automation) and its own job queue (writes to one unit are
//! serialised, different units run in parallel, bounded), and the HTTP API of [`flux_api::v1`]
//! serves them all (`?unit=NAME`). What units do is announced to [`EventSink`]s ([`sinks`] has a
//! webhook and a Slack sink) and counted in [`Metrics`] (with a `unit` label).
//!
//! The service layer ([`UnitService`]: workloads, images, release, policy, export, status,
//! sync) is plain Rust; the HTTP layer on it is thin.
//!
//! # Embedding
//!
//! A daemon over flux-core's in-memory adapters, in place of git, a registry and a cluster
//! (use flux-git, flux-registry and flux-k8s, or your own adapters, the same way):
//!
//! ```
//! use std::sync::Arc;
//! use flux_core::generate::ManifestGenerator;
//! use flux_core::memory::{MemoryCluster, MemoryRegistry, MemorySource};
//! use flux_core::sync::SyncConfig;
//! use flux_core::SyncIdentity;
//! use flux_daemon::{Daemon, SyncUnit};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> flux_core::Result<()> {
//! let source = Arc::new(MemorySource::with_files([("deploy/cm.yaml".to_owned(),
//!     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello, namespace: default}\n".to_owned())])?);
//! let cluster = Arc::new(MemoryCluster::new());
//! let generator = Arc::new(ManifestGenerator::new(Default::default()));
//! let config = SyncConfig::new(SyncIdentity::new("flux-shop")?, vec!["deploy".to_owned()]);
//! let unit = SyncUnit::new("shop", source, cluster.clone(), Arc::new(MemoryRegistry::new()), generator, config)?;
//! let daemon = Arc::new(Daemon::builder().unit(unit).build()?);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(daemon.clone().run(async { let _ = stopped.await; }));
//! let shop = daemon.select(Some("shop"))?.clone();
//! let job = shop.submit_sync()?;
//! shop.wait(&job).await;
//! assert!(shop.status().last_sync.is_some_and(|s| s.success));
//! let _ = stop.send(());
//! running.await.expect("joined")?;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod daemon;
mod deploy_key;
pub mod dry_run;
mod events;
mod gate;
pub mod ha;
pub mod jobs;
mod loops;
mod metrics;
pub mod results;
mod service;
pub mod sinks;
pub mod ui;
mod unit;
mod wait;
mod webhooks;
mod wire;

pub use auth::{ApiAuth, ApiToken, GithubSecret};
pub use daemon::{ApiSettings, Daemon, DaemonBuilder};
pub use deploy_key::{DeployKey, fingerprint};
pub use events::{Event, EventSink};
pub use gate::{check_dependencies, dependency_order};
pub use metrics::{MeteredRegistry, Metrics};
pub use service::{SYNC_HISTORY, UnitChanges, UnitService};
pub use unit::{Engines, Intervals, SyncUnit, check_unit_name};
pub use wait::wait_for_health;

/// The version of this crate (the workspace's), what `fluxd --version` and `GET /version` say.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
