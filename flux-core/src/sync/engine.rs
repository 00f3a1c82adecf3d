use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::broadcast;

use crate::cluster::{
    ApplyOutcome, ApplyResult, CHECKSUM_ANNOTATION, Cluster, DeleteOutcome, GC_MARK_LABEL, ManagedObject, ObjectRef,
    WriteOptions,
};
use crate::error::Result;
use crate::generate::{Generator, Snapshot};
use crate::kinds::api_group;
use crate::object::KubeObject;
use crate::policy::Ignore;
use crate::source::{Revision, Source};
use crate::sync::checksum::checksum;
use crate::sync::config::{GarbageCollection, SyncConfig};
use crate::sync::order::stage;
use crate::sync::report::{ApplyReason, PlannedApply, Refusal, SyncError, SyncPlan, SyncReport};

/// The annotation that makes the sync engine leave an object alone.
pub const IGNORE_ANNOTATION: &str = "fluxcd.io/ignore";
const LEGACY_IGNORE_ANNOTATION: &str = "flux.weave.works/ignore";

/// What `fluxcd.io/ignore` (or its legacy `flux.weave.works/` form) says on an object.
pub fn ignore_of(annotation: impl Fn(&str) -> Option<String>) -> Option<Ignore> {
    let value = annotation(IGNORE_ANNOTATION).or_else(|| annotation(LEGACY_IGNORE_ANNOTATION))?;
    match value.trim() {
        "true" => Some(Ignore::All),
        "sync_only" => Some(Ignore::SyncOnly),
        _ => None,
    }
}

/// (API group, id): how the engine matches desired objects with live ones.
type Key = (String, crate::ResourceId);

fn key_of(api_version: &str, id: &crate::ResourceId) -> Key {
    (api_group(api_version).to_owned(), id.clone())
}

/// Makes a cluster match one revision of one sync unit. See [the module docs](crate::sync).
pub struct SyncEngine {
    source: Arc<dyn Source>,
    cluster: Arc<dyn Cluster>,
    generator: Arc<dyn Generator>,
    config: SyncConfig,
    events: broadcast::Sender<Arc<SyncReport>>,
    /// The desired objects of the last usable revision read. Revisions are immutable, so syncing
    /// an unchanged head again costs no source reads and no generation.
    last_desired: std::sync::Mutex<Option<(Revision, Arc<Vec<KubeObject>>)>>,
}

impl std::fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SyncEngine {
    /// An engine for the unit `config`, reading `source`, generating objects with `generator`
    /// and applying them to `cluster`.
    pub fn new(
        source: Arc<dyn Source>,
        cluster: Arc<dyn Cluster>,
        generator: Arc<dyn Generator>,
        config: SyncConfig,
    ) -> Self {
        let (events, _) = broadcast::channel(16);
        SyncEngine { source, cluster, generator, config, events, last_desired: Default::default() }
    }

    /// The unit's configuration.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Reports of every sync from now on. A slow subscriber misses old reports rather than
    /// slowing syncs down (the channel keeps the last 16).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SyncReport>> {
        self.events.subscribe()
    }

    /// Refreshes the source and syncs its head.
    pub async fn sync_head(&self) -> Result<SyncReport> {
        let head = self.source.refresh().await?;
        Ok(self.sync(&head).await)
    }

    /// What syncing `revision` would do, with nothing written anywhere. Costs one
    /// [`Cluster::managed`] call, plus the source reads when `revision` is not the last usable
    /// revision read.
    pub async fn plan(&self, revision: &Revision) -> SyncPlan {
        let mut plan = SyncPlan {
            revision: revision.clone(),
            usable: true,
            errors: Vec::new(),
            apply: Vec::new(),
            unchanged: Vec::new(),
            refused: Vec::new(),
            ignored: Vec::new(),
            prune: Vec::new(),
        };
        let unusable = |plan: &mut SyncPlan, id, message: String| {
            plan.usable = false;
            plan.errors.push(SyncError::new(id, message));
        };

        // Desired state.
        let (desired, errors) = self.desired(revision).await;
        for error in errors {
            unusable(&mut plan, None, error);
        }

        // Live state: what this identity manages.
        let managed = match self.cluster.managed(&self.config.identity).await {
            Ok(m) => m,
            Err(e) => {
                unusable(&mut plan, None, format!("listing managed objects: {e}"));
                Vec::new()
            }
        };
        if plan.usable && desired.is_empty() && !managed.is_empty() && !self.config.allow_empty {
            unusable(
                &mut plan,
                None,
                format!(
                    "revision {} has no objects under {:?} while {} are managed; refusing to prune everything \
                     (set allow_empty if this is intended)",
                    revision.short(),
                    self.config.paths,
                    managed.len()
                ),
            );
        }
        let live: BTreeMap<Key, &ManagedObject> =
            managed.iter().map(|m| (key_of(&m.reference.api_version, &m.reference.id), m)).collect();

        let mut in_git: BTreeSet<Key> = BTreeSet::new();
        for mut object in desired {
            let key = key_of(object.api_version(), object.id());
            if !in_git.insert(key.clone()) {
                let at = object.origin().map(|o| format!(" at {o}")).unwrap_or_default();
                unusable(
                    &mut plan,
                    Some(object.id().clone()),
                    format!("{} is defined more than once{at}", object.id()),
                );
                continue;
            }
            let id = object.id().clone();
            if let Some(reason) = self.config.refuses(&object) {
                plan.refused.push(Refusal { id, reason });
                continue;
            }
            let live = live.get(&key);
            let ignored_in_git = ignore_of(|k| object.annotation(k).map(str::to_owned));
            let ignored_live = live.and_then(|m| ignore_of(|k| m.annotations.get(k).cloned()));
            if ignored_in_git == Some(Ignore::All) || ignored_live == Some(Ignore::All) {
                plan.ignored.push(id);
                continue;
            }
            let sum = checksum(&object);
            let reason = match live {
                None => Some(ApplyReason::Missing),
                Some(m) if m.checksum.as_deref() != Some(sum.as_str()) => Some(ApplyReason::Changed),
                Some(m) if m.drifted => Some(ApplyReason::Drifted),
                Some(_) => None,
            };
            match reason {
                None => plan.unchanged.push(id),
                Some(reason) => {
                    object.set_label(GC_MARK_LABEL, self.config.identity.as_str());
                    object.set_annotation(CHECKSUM_ANNOTATION, &sum);
                    plan.apply.push(PlannedApply { object, reason });
                }
            }
        }
        plan.apply.sort_by(|a, b| {
            let rank = |p: &PlannedApply| (stage(p.object.api_version(), p.object.kind()), p.object.id().clone());
            rank(a).cmp(&rank(b))
        });

        // Garbage: managed here, gone from git, not protected.
        if plan.usable && self.config.garbage_collection != GarbageCollection::Off {
            plan.prune = managed
                .iter()
                .filter(|m| !in_git.contains(&key_of(&m.reference.api_version, &m.reference.id)))
                .filter(|m| ignore_of(|k| m.annotations.get(k).cloned()).is_none())
                .filter(|m| {
                    let r = &m.reference;
                    self.config.refusal(&r.api_version, r.id.kind(), r.id.namespace()).is_none()
                })
                .map(|m| m.reference.clone())
                .collect();
            plan.prune.sort_by(|a, b| {
                let rank = |r: &ObjectRef| (std::cmp::Reverse(stage(&r.api_version, r.id.kind())), r.id.clone());
                rank(a).cmp(&rank(b))
            });
        }
        plan
    }

    /// The desired objects of `revision` and every problem found (with file and line), from the
    /// cache when it is the last usable revision read. With problems, the objects are what could
    /// be generated (applied only with [`SyncConfig::apply_unusable`]), and nothing is cached.
    async fn desired(&self, revision: &Revision) -> (Vec<KubeObject>, Vec<String>) {
        if let Some((cached, objects)) = crate::memory_lock(&self.last_desired).as_ref()
            && cached == revision
        {
            return (objects.as_ref().clone(), Vec::new());
        }
        let snapshot = match Snapshot::read(self.source.clone(), revision.clone(), &self.config.paths).await {
            Ok(snapshot) => snapshot,
            Err(e) => return (Vec::new(), vec![format!("reading revision {}: {e}", revision.short())]),
        };
        let generated = self.generator.generate(&snapshot).await;
        if !generated.is_usable() {
            return (generated.objects, generated.errors.iter().map(ToString::to_string).collect());
        }
        let objects = Arc::new(generated.objects);
        *crate::memory_lock(&self.last_desired) = Some((revision.clone(), objects.clone()));
        (objects.as_ref().clone(), Vec::new())
    }

    /// Syncs `revision`: applies what changed or drifted, stage by stage, prunes what left git
    /// (when garbage collection is on and the revision is usable), moves the marker, and emits
    /// the report to subscribers. Never fails as a whole: every problem is in the report.
    pub async fn sync(&self, revision: &Revision) -> SyncReport {
        let started = Instant::now();
        let plan = self.plan(revision).await;
        let mut report = SyncReport {
            identity: self.config.identity.clone(),
            revision: revision.clone(),
            usable: plan.usable,
            applied: Vec::new(),
            unchanged: plan.unchanged.len(),
            refused: plan.refused,
            ignored: plan.ignored,
            garbage_collection: self.config.garbage_collection,
            pruned: Vec::new(),
            errors: plan.errors,
            marker_moved: false,
            duration: Default::default(),
        };

        let mut failed_kinds = BTreeSet::new();
        let mut cluster_unreachable = false;
        if plan.usable || self.config.apply_unusable {
            for (results, whole_call_error) in self.apply_in_stages(plan.apply).await {
                for result in &results {
                    if let ApplyOutcome::Failed { reason } = &result.outcome {
                        report.errors.push(SyncError::new(Some(result.id.clone()), format!("{}: {reason}", result.id)));
                    }
                }
                if let Some(e) = whole_call_error {
                    cluster_unreachable = true;
                    report.errors.push(SyncError::new(None, format!("applying: {e}")));
                }
                report.applied.extend(results);
            }
            // By kind name across groups: when in doubt, prune less.
            failed_kinds = report
                .applied
                .iter()
                .filter(|r| matches!(r.outcome, ApplyOutcome::Failed { .. }))
                .map(|r| r.id.kind().to_owned())
                .collect();
        }

        if plan.usable && !cluster_unreachable && !plan.prune.is_empty() {
            let (prune, blocked): (Vec<ObjectRef>, Vec<ObjectRef>) =
                plan.prune.into_iter().partition(|r| !failed_kinds.contains(r.id.kind()));
            for r in blocked {
                report.errors.push(SyncError::new(
                    Some(r.id.clone()),
                    format!("not pruning {}: applying other {} objects failed", r.id, r.id.kind()),
                ));
            }
            let dry_run = self.config.garbage_collection == GarbageCollection::DryRun;
            match self.cluster.delete(&prune, WriteOptions { dry_run }).await {
                Ok(results) => {
                    for r in &results {
                        if let DeleteOutcome::Failed { reason } = &r.outcome {
                            report
                                .errors
                                .push(SyncError::new(Some(r.id.clone()), format!("pruning {}: {reason}", r.id)));
                        }
                    }
                    report.pruned = results;
                }
                Err(e) => report.errors.push(SyncError::new(None, format!("pruning: {e}"))),
            }
        }

        if report.is_success() && self.config.move_marker {
            match self.source.set_sync_marker(revision).await {
                Ok(()) => report.marker_moved = true,
                Err(e) => report.errors.push(SyncError::new(None, format!("moving the sync marker: {e}"))),
            }
        }
        report.duration = started.elapsed();
        let _no_subscribers = self.events.send(Arc::new(report.clone()));
        report
    }

    /// Applies planned objects stage by stage; within a stage, up to `concurrency` calls at once.
    /// Yields each call's results, and the error if the whole call failed (its objects are then
    /// reported failed).
    async fn apply_in_stages(&self, planned: Vec<PlannedApply>) -> Vec<(Vec<ApplyResult>, Option<crate::Error>)> {
        let mut stages: BTreeMap<u8, Vec<KubeObject>> = BTreeMap::new();
        for p in planned {
            stages.entry(stage(p.object.api_version(), p.object.kind())).or_default().push(p.object);
        }
        let concurrency = self.config.concurrency.max(1);
        let mut out = Vec::new();
        for objects in stages.into_values() {
            let size = objects.len().div_ceil(concurrency).max(1);
            // Each call owns its chunk and a handle on the cluster: a closure borrowing a slice
            // here would make the sync future impossible to prove `Send` (rust-lang/rust#100013).
            let calls = objects.chunks(size).map(<[KubeObject]>::to_vec).map(|chunk| {
                let cluster = self.cluster.clone();
                async move { apply_chunk(cluster.as_ref(), chunk).await }
            });
            // `buffered` keeps input order, so reports read in apply order.
            out.extend(futures::stream::iter(calls).buffered(concurrency).collect::<Vec<_>>().await);
        }
        out
    }
}

/// One apply call; if it fails as a whole, every object of the chunk is reported failed.
async fn apply_chunk(cluster: &dyn Cluster, chunk: Vec<KubeObject>) -> (Vec<ApplyResult>, Option<crate::Error>) {
    match cluster.apply(&chunk, WriteOptions::default()).await {
        Ok(results) => (results, None),
        Err(e) => {
            let failed = chunk
                .iter()
                .map(|o| ApplyResult {
                    id: o.id().clone(),
                    outcome: ApplyOutcome::Failed { reason: format!("not applied: {e}") },
                })
                .collect();
            (failed, Some(e))
        }
    }
}
