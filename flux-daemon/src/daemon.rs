//! [`Daemon`]: units, event sinks, metrics and the API settings, composed by
//! [`Daemon::builder`]; [`Daemon::run`] runs each unit's loops and job queue and serves the API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use flux_core::{Error, Location, Result};
use tokio::sync::{Semaphore, watch};

use crate::auth::{ApiAuth, GithubSecret};
use crate::events::{EventSink, Sinks};
use crate::jobs::{JobQueue, JobWorker};
use crate::metrics::Metrics;
use crate::results::JobResult;
use crate::service::UnitService;
use crate::unit::SyncUnit;

/// Where and how the HTTP API is served.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The address it listens on.
    pub listen: SocketAddr,
    /// Who may use the routes but health, metrics and the GitHub webhook: the bearer token, and
    /// loopback clients when opted in.
    pub auth: ApiAuth,
    /// The secret of GitHub push webhooks; without it that route answers 404.
    pub github_secret: Option<GithubSecret>,
}

/// Composes a [`Daemon`]; see [`Daemon::builder`].
#[derive(Debug, Default)]
pub struct DaemonBuilder {
    units: Vec<SyncUnit>,
    sinks: Vec<Arc<dyn EventSink>>,
    metrics: Option<(Metrics, Option<SocketAddr>)>,
    api: Option<ApiSettings>,
    state_dir: Option<PathBuf>,
    parallel: Option<usize>,
    retain: Option<usize>,
    ui: crate::ui::UiSettings,
}

impl DaemonBuilder {
    /// Adds a unit.
    pub fn unit(mut self, unit: SyncUnit) -> Self {
        self.units.push(unit);
        self
    }

    /// Adds an event sink: every unit's events go to every sink.
    pub fn sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Records metrics in `metrics` (with a `unit` label), served on `listen` if given.
    pub fn metrics(mut self, metrics: Metrics, listen: Option<SocketAddr>) -> Self {
        self.metrics = Some((metrics, listen));
        self
    }

    /// Serves the HTTP API as `settings` say (without it, [`Daemon::run`] serves nothing: the
    /// embedder can mount [`Daemon::router`] itself).
    pub fn api(mut self, settings: ApiSettings) -> Self {
        self.api = Some(settings);
        self
    }

    /// Keeps each unit's job journal (`jobs-<unit>.json`, the last finished jobs) in `dir`, so
    /// job ids stay answerable after a restart; without it results live in memory only.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// How many units may run a job at once (default 4; writes to one unit are always
    /// serialised).
    pub fn parallel_units(mut self, n: usize) -> Self {
        self.parallel = Some(n.max(1));
        self
    }

    /// How the status page (`/ui/`) is served (default: on, 8-hour sessions, no TLS).
    pub fn ui(mut self, settings: crate::ui::UiSettings) -> Self {
        self.ui = settings;
        self
    }

    /// How many finished jobs each unit remembers (default 100).
    pub fn retain_jobs(mut self, n: usize) -> Self {
        self.retain = Some(n.max(1));
        self
    }

    /// The daemon.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there is no unit, two units share a name or a sync identity,
    /// a unit depends on a unit that is not there or the units depend on each other in a cycle
    /// (naming it: `a -> b -> a`), or a unit's job journal or suspension record cannot be read;
    /// [`Error::Other`] when the state directory cannot be created.
    pub fn build(self) -> Result<Daemon> {
        if self.units.is_empty() {
            return Err(Error::invalid(Location::file("units"), "no unit: a daemon needs at least one"));
        }
        let mut identities = BTreeMap::new();
        for unit in &self.units {
            let identity = unit.sync_config().identity.as_str().to_owned();
            if let Some(other) = identities.insert(identity.clone(), unit.name()) {
                return Err(Error::invalid(
                    Location::file(format!("unit {}", unit.name())),
                    format!("units {other} and {} have the same sync identity {identity}", unit.name()),
                ));
            }
        }
        crate::gate::check_dependencies(self.units.iter().map(|u| (u.name(), u.depends_on())))?;
        if let Some(dir) = &self.state_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::other(format!("cannot create the state directory {}: {e}", dir.display())))?;
        }
        let sinks = Sinks::new(self.sinks);
        let only_one = self.units.len() == 1;
        let retain = self.retain.unwrap_or(100);
        let metrics = self.metrics.as_ref().map(|(m, _)| m.clone());
        let mut units = BTreeMap::new();
        let mut workers = Vec::new();
        for unit in self.units {
            let name = unit.name().to_owned();
            let (queue, worker) = match &self.state_dir {
                Some(dir) => JobQueue::with_journal(retain, &dir.join(format!("jobs-{name}.json")))?,
                None => JobQueue::new(retain),
            };
            let gate =
                crate::gate::Gate::open(self.state_dir.as_ref().map(|d| d.join(format!("suspend-{name}.json"))))?;
            let service =
                Arc::new(UnitService::new(unit, queue, sinks.clone(), metrics.clone(), only_one).with_gate(gate));
            if units.insert(name.clone(), service.clone()).is_some() {
                return Err(Error::invalid(Location::file(format!("unit {name}")), "two units have this name"));
            }
            workers.push((service, worker));
        }
        // Each unit's links to the units it depends on, and to those depending on it.
        for service in units.values() {
            let depends_on = service.unit().depends_on().iter().filter_map(|d| units.get(d).cloned()).collect();
            let dependents = units
                .values()
                .filter(|u| u.unit().depends_on().iter().any(|d| d == service.name()))
                .map(Arc::downgrade)
                .collect();
            service.gate().link(depends_on, dependents);
        }
        Ok(Daemon {
            units,
            workers: Mutex::new(workers),
            api: self.api,
            metrics: self.metrics,
            parallel: Arc::new(Semaphore::new(self.parallel.unwrap_or(4))),
            ui: self.ui,
            stopping: watch::channel(false).0,
        })
    }
}

/// The application: units with their loops and job queues, the API on them, events to sinks.
pub struct Daemon {
    units: BTreeMap<String, Arc<UnitService>>,
    workers: Mutex<Vec<(Arc<UnitService>, JobWorker<JobResult>)>>,
    api: Option<ApiSettings>,
    metrics: Option<(Metrics, Option<SocketAddr>)>,
    parallel: Arc<Semaphore>,
    ui: crate::ui::UiSettings,
    /// True once [`Daemon::run`] is shutting down.
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("units", &self.units.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Daemon {
    /// Starts composing a daemon: add units, sinks, metrics and API settings, then `build`.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// Every unit, by name.
    pub fn units(&self) -> impl Iterator<Item = &Arc<UnitService>> {
        self.units.values()
    }

    /// The unit `name` names, or the only one when `name` is `None` (the API's `?unit=`).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown name, [`Error::InvalidInput`] for `None` with several
    /// units; both name the choices.
    pub fn select(&self, name: Option<&str>) -> Result<&Arc<UnitService>> {
        let choices = || self.units.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        match name {
            Some(name) => self
                .units
                .get(name)
                .ok_or_else(|| Error::not_found(format!("no unit {name:?}; the units are: {}", choices()))),
            None if self.units.len() == 1 => self.units.values().next().ok_or_else(|| Error::other("no unit")),
            None => Err(Error::invalid(
                Location::file("?unit="),
                format!("several units: name one with ?unit= (fluxctl --unit); the units are: {}", choices()),
            )),
        }
    }

    /// The HTTP API over this daemon, to serve or mount elsewhere, with `/metrics` when the
    /// daemon records metrics. `auth`'s loopback opt-in needs the peer's address: serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (else every peer needs the token).
    pub fn router(self: &Arc<Self>, auth: ApiAuth, github_secret: Option<GithubSecret>) -> axum::Router {
        crate::api::router(self.clone(), auth, github_secret)
    }

    /// How its status page is served.
    pub fn ui_settings(&self) -> &crate::ui::UiSettings {
        &self.ui
    }

    /// A receiver that turns `true` when the daemon starts shutting down (long-lived answers,
    /// such as the status page's event stream, end then, so the server can stop).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The metrics it records into, if any.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref().map(|(m, _)| m)
    }

    /// Runs every unit's job worker and loops (git poll, sync, automation unless scanning is
    /// off), the API and the metrics server when configured, until `shutdown` completes; then
    /// lets each unit finish the job it is running (never a half-pushed commit) and returns.
    /// A unit whose source fails keeps retrying on its interval; the others are unaffected.
    ///
    /// # Errors
    /// [`Error::Other`] when it runs a second time, or the API's address cannot be bound.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        if workers.is_empty() {
            return Err(Error::other("the daemon is already running (or has run)"));
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let listener = match &self.api {
            Some(api) => Some(
                tokio::net::TcpListener::bind(api.listen)
                    .await
                    .map_err(|e| Error::other(format!("cannot listen on {}: {e}", api.listen)))?,
            ),
            None => None,
        };
        // High availability: the units' shared ownership, released at shutdown.
        tasks.spawn(crate::ha::run(self.units.values().cloned().collect(), stopped.clone()));
        for (unit, worker) in workers {
            let mut rx = stopped.clone();
            tasks.spawn(worker.run(self.parallel.clone(), async move {
                let _ = rx.wait_for(|s| *s).await;
            }));
            let intervals = unit.unit().intervals();
            tasks.spawn(crate::loops::watch_syncs(unit.clone(), stopped.clone()));
            tasks.spawn(crate::loops::git_poll(unit.clone(), intervals.git_poll, stopped.clone()));
            tasks.spawn(crate::loops::sync(unit.clone(), intervals.sync, stopped.clone()));
            if unit.unit().scanning() {
                tasks.spawn(crate::loops::automation(unit.clone(), intervals.automation, stopped.clone()));
            }
        }
        if let Some((metrics, Some(addr))) = self.metrics.clone() {
            let stopped = stopped.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::metrics::serve(metrics, addr, stopped).await {
                    tracing::error!(error = %e, %addr, "metrics server failed");
                }
            });
        }
        if let (Some(api), Some(listener)) = (&self.api, listener) {
            tracing::info!(listen = %api.listen, units = self.units.len(), "API listening");
            let app = self.router(api.auth.clone(), api.github_secret.clone());
            let mut rx = stopped.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "API server failed");
                }
            });
        }
        shutdown.await;
        tracing::info!("shutting down: finishing the jobs running");
        let _ = stop.send(true);
        self.stopping.send_replace(true);
        while tasks.join_next().await.is_some() {}
        tracing::info!("stopped");
        Ok(())
    }
}
