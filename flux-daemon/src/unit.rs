//! [`SyncUnit`]: one unit's source, paths, generator, identity, intervals, garbage collection and
//! restrictions, and the engines built from them.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use flux_core::automation::{AutomationConfig, AutomationEngine, ManifestPolicyStore};
use flux_core::generate::Generator;
use flux_core::sync::{SyncConfig, SyncEngine};
use flux_core::{Cluster, Error, Location, Registry, Result, Source, WorkloadRegistries};

/// How often a unit's loops run (each is also woken early by webhooks and the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// How often the source is fetched (`--git-poll-interval`).
    pub git_poll: Duration,
    /// How often the cluster is synced even when git did not change (`--sync-interval`).
    pub sync: Duration,
    /// How often automated workloads are checked for new images (`--automation-interval`).
    pub automation: Duration,
}

impl Default for Intervals {
    /// Flux v1's defaults: five minutes each.
    fn default() -> Self {
        let five = Duration::from_secs(300);
        Intervals { git_poll: five, sync: five, automation: five }
    }
}

/// Checks a unit name: 1 to 63 characters of `[a-z0-9-]`, not starting or ending with `-`
/// (it is a label value, a file name and a URL query value as it is).
///
/// # Errors
/// [`Error::InvalidInput`] naming the name and what is wrong with it.
pub fn check_unit_name(name: &str) -> Result<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > 63 || !ok_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(Error::invalid(
            Location::file(format!("unit {name:?}")),
            "a unit name is 1 to 63 characters of [a-z0-9-], not starting or ending with '-'",
        ));
    }
    Ok(())
}

/// One sync unit: a source and the paths in it, applied to a cluster under one identity, with
/// the images of its workloads kept up to date from a registry.
///
/// A unit owns everything its engines are built from, so that sync, automation and policy
/// changes see the same workloads: there is one [`Generator`] for all three, by construction.
/// Units in one daemon must have distinct names and distinct sync identities (each prunes only
/// what carries its own identity; see [`SyncConfig`]).
pub struct SyncUnit {
    name: String,
    source: Arc<dyn Source>,
    cluster: Arc<dyn Cluster>,
    registry: Arc<dyn Registry>,
    generator: Arc<dyn Generator>,
    sync: SyncConfig,
    automation: AutomationConfig,
    intervals: Intervals,
    branch: Option<String>,
    workload_registries: Option<Arc<dyn WorkloadRegistries>>,
    public_key: Option<String>,
    deploy_key: Option<Arc<dyn crate::DeployKey>>,
    scanning: bool,
    set_author: bool,
    keep_alive: Vec<Arc<dyn Any + Send + Sync>>,
    wait: Option<Duration>,
    depends_on: Vec<String>,
    health_checks: Vec<flux_core::ObjectRef>,
    health_timeout: Duration,
    ownership: Option<Arc<dyn crate::ha::Ownership>>,
}

impl std::fmt::Debug for SyncUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncUnit")
            .field("name", &self.name)
            .field("paths", &self.sync.paths)
            .field("identity", &self.sync.identity)
            .field("intervals", &self.intervals)
            .finish_non_exhaustive()
    }
}

/// A unit's engines, built by [`SyncUnit::engines`].
#[derive(Clone)]
pub struct Engines {
    /// git → cluster.
    pub sync: Arc<SyncEngine>,
    /// registry → git: automation passes, releases, listings.
    pub automation: Arc<AutomationEngine>,
    /// Policies as annotations in the unit's manifests.
    pub policies: Arc<ManifestPolicyStore>,
}

impl SyncUnit {
    /// A unit named `name` syncing `sync`'s paths of `source` into `cluster`, reading manifests
    /// with `generator`, scanning `registry`. Automation uses the default [`AutomationConfig`]
    /// with the unit's paths until [`SyncUnit::with_automation`] says otherwise.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `name` is not a unit name ([`check_unit_name`]).
    pub fn new(
        name: &str,
        source: Arc<dyn Source>,
        cluster: Arc<dyn Cluster>,
        registry: Arc<dyn Registry>,
        generator: Arc<dyn Generator>,
        sync: SyncConfig,
    ) -> Result<Self> {
        check_unit_name(name)?;
        let automation = AutomationConfig { paths: sync.paths.clone(), ..AutomationConfig::default() };
        Ok(SyncUnit {
            name: name.to_owned(),
            source,
            cluster,
            registry,
            generator,
            sync,
            automation,
            intervals: Intervals::default(),
            branch: None,
            workload_registries: None,
            public_key: None,
            deploy_key: None,
            scanning: true,
            set_author: false,
            keep_alive: Vec::new(),
            wait: None,
            depends_on: Vec::new(),
            health_checks: Vec::new(),
            health_timeout: Duration::from_secs(300),
            ownership: None,
        })
    }

    /// Shares the unit with other replicas (high availability): its cluster and source write
    /// only while `ownership`'s gate is open for the unit ([`crate::ha::GatedCluster`],
    /// [`crate::ha::GatedSource`]), its loops run only then, and the API refuses writes for it
    /// elsewhere, naming the owner. Give every unit of the daemon the same `ownership`.
    pub fn with_ownership(mut self, ownership: Arc<dyn crate::ha::Ownership>) -> Self {
        let gate = ownership.gate().clone();
        self.cluster = Arc::new(crate::ha::GatedCluster::new(&self.name, gate.clone(), self.cluster));
        self.source = Arc::new(crate::ha::GatedSource::new(&self.name, gate, self.source));
        self.ownership = Some(ownership);
        self
    }

    /// Who writes for which unit, when the unit is shared with other replicas.
    pub fn ownership(&self) -> Option<&Arc<dyn crate::ha::Ownership>> {
        self.ownership.as_ref()
    }

    /// Automation settings (author, commit templates, scope, ...); its paths are always the
    /// unit's sync paths, whatever `config` says.
    pub fn with_automation(mut self, config: AutomationConfig) -> Self {
        self.automation = AutomationConfig { paths: self.sync.paths.clone(), ..config };
        self
    }

    /// How often its loops run.
    pub fn with_intervals(mut self, intervals: Intervals) -> Self {
        self.intervals = intervals;
        self
    }

    /// The branch its source follows: webhooks about other branches are ignored by this unit.
    pub fn with_branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = Some(branch.into());
        self
    }

    /// Per-workload registry views (image pull secrets) for automation and listings.
    pub fn with_workload_registries(mut self, registries: Arc<dyn WorkloadRegistries>) -> Self {
        self.workload_registries = Some(registries);
        self
    }

    /// The public half of its deploy key, answered by `GET /identity`.
    pub fn with_public_key(mut self, key: impl Into<String>) -> Self {
        self.public_key = Some(key.into());
        self
    }

    /// Its deploy key ring: `GET /identity` answers its public key (over
    /// [`SyncUnit::with_public_key`]'s) and `POST /identity/regenerate` replaces it.
    pub fn with_deploy_key(mut self, key: Arc<dyn crate::DeployKey>) -> Self {
        self.deploy_key = Some(key);
        self
    }

    /// No automation loop and no image listing (`--registry-disable-scanning`).
    pub fn without_scanning(mut self) -> Self {
        self.scanning = false;
        self
    }

    /// Record the user asking for a release or policy change as the commit's author
    /// (`--git-set-author`); otherwise the configured author writes every commit.
    pub fn with_set_author(mut self, set_author: bool) -> Self {
        self.set_author = set_author;
        self
    }

    /// After each sync that applied everything, wait until every object of the revision is
    /// healthy ([`flux_core::health`]), at most `timeout`; the sync counts as failed when one
    /// is not (`wait: true`, `timeout:`).
    pub fn with_wait(mut self, timeout: Duration) -> Self {
        self.wait = Some(timeout);
        self
    }

    /// The units (by name) that must have synced their current revisions, and be healthy when
    /// they wait, before this one is applied (`depends-on:`). The daemon refuses unknown names
    /// and cycles.
    pub fn with_depends_on(mut self, units: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.depends_on = units.into_iter().map(Into::into).collect();
        self
    }

    /// Objects whose health gates each sync besides (or, without [`SyncUnit::with_wait`],
    /// instead of) the unit's own, as Flux v2's `healthChecks`: after a sync that applied
    /// everything they must be healthy within `timeout` (with `wait`, its timeout), or the sync
    /// fails naming the one that is not (`health-check:`).
    pub fn with_health_checks(mut self, checks: Vec<flux_core::ObjectRef>, timeout: Duration) -> Self {
        self.health_checks = checks;
        self.health_timeout = timeout;
        self
    }

    /// How long it waits for health after a sync, when it does.
    pub fn wait(&self) -> Option<Duration> {
        self.wait
    }

    /// How long it waits for health after a sync, when it does: for its own objects
    /// ([`SyncUnit::with_wait`]) or its health checks only.
    pub fn health_wait(&self) -> Option<Duration> {
        self.wait.or_else(|| (!self.health_checks.is_empty()).then_some(self.health_timeout))
    }

    /// The extra objects whose health gates its syncs.
    pub fn health_checks(&self) -> &[flux_core::ObjectRef] {
        &self.health_checks
    }

    /// The units it depends on, by name.
    pub fn depends_on(&self) -> &[String] {
        &self.depends_on
    }

    /// Keeps `value` alive as long as the unit (a temporary mirror directory, say).
    pub fn keep_alive(mut self, value: Arc<dyn Any + Send + Sync>) -> Self {
        self.keep_alive.push(value);
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its source.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// Its cluster.
    pub fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    /// Its registry.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// Its generator, the one all its engines use.
    pub fn generator(&self) -> &Arc<dyn Generator> {
        &self.generator
    }

    /// Its sync settings (identity, paths, GC, restrictions).
    pub fn sync_config(&self) -> &SyncConfig {
        &self.sync
    }

    /// Its automation settings.
    pub fn automation_config(&self) -> &AutomationConfig {
        &self.automation
    }

    /// Its intervals.
    pub fn intervals(&self) -> Intervals {
        self.intervals
    }

    /// The branch it follows, if said.
    pub fn branch(&self) -> Option<&str> {
        self.branch.as_deref()
    }

    /// The public half of its deploy key, if given: its key ring's, else
    /// [`SyncUnit::with_public_key`]'s.
    pub fn public_key(&self) -> Option<String> {
        match &self.deploy_key {
            Some(ring) => ring.public_key(),
            None => self.public_key.clone(),
        }
    }

    /// Its deploy key ring, when the key can be regenerated.
    pub fn deploy_key(&self) -> Option<&Arc<dyn crate::DeployKey>> {
        self.deploy_key.as_ref()
    }

    /// Whether registries are scanned (automation, image listings).
    pub fn scanning(&self) -> bool {
        self.scanning
    }

    /// Whether the asking user authors releases and policy changes.
    pub fn set_author(&self) -> bool {
        self.set_author
    }

    /// Its engines, all built over its one generator (and automation over its workload
    /// registries, when given).
    pub fn engines(&self) -> Engines {
        let sync =
            SyncEngine::new(self.source.clone(), self.cluster.clone(), self.generator.clone(), self.sync.clone());
        let mut automation = AutomationEngine::new(
            self.source.clone(),
            self.registry.clone(),
            self.generator.clone(),
            self.automation.clone(),
        );
        if let Some(registries) = &self.workload_registries {
            automation = automation.with_workload_registries(registries.clone());
        }
        let policies = ManifestPolicyStore::new(self.source.clone(), self.generator.clone(), self.automation.clone());
        Engines { sync: Arc::new(sync), automation: Arc::new(automation), policies: Arc::new(policies) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_lower_case_letters_digits_and_dashes() {
        for good in ["shop", "shop-staging", "a", "team-1"] {
            assert!(check_unit_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Shop", "shop_prod", "-shop", "shop-", "a/b", &"x".repeat(64)] {
            let e = check_unit_name(bad).expect_err(bad);
            assert!(e.to_string().contains("[a-z0-9-]"), "{e}");
        }
    }
}
