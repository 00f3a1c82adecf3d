use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::broadcast;

use crate::cluster::{
    ApplyOutcome, ApplyResult, Cluster, DeleteOutcome, Lookup, ManagedObject, ObjectRef, SYNC_PATH_ANNOTATION,
    SYNC_UNIT_LABEL, WriteOptions, gc_mark,
};
use crate::error::{Error, Location, Result};
use crate::generate::{Generator, Snapshot};
use crate::kinds::api_group;
use crate::manifest::Skipped;
use crate::object::KubeObject;
use crate::policy::Ignore;
use crate::source::{Revision, Source, normalize_path, path_is_under};
use crate::sync::checksum::checksum;
use crate::sync::config::{GarbageCollection, SyncConfig};
use crate::sync::order::stage;
use crate::sync::report::{
    ApplyReason, KeepReason, Kept, Marks, PlannedApply, PruneHold, Refusal, SyncError, SyncPlan, SyncReport,
};

/// The annotation that makes the sync engine leave an object alone.
pub const IGNORE_ANNOTATION: &str = "fluxcd.io/ignore";
const LEGACY_IGNORE_ANNOTATION: &str = "flux.weave.works/ignore";

/// The annotation that says whether garbage collection may delete an object: `"false"` keeps
/// any object, `"true"` lets a protected kind (Namespace, CustomResourceDefinition,
/// PersistentVolumeClaim) be deleted.
pub const PRUNE_ANNOTATION: &str = "fluxcd.io/prune";

/// Why garbage collection keeps an object of `api_version` and `kind` whose live annotations
/// are `annotation`, if it does: annotated `fluxcd.io/prune: "false"`, or a Namespace,
/// CustomResourceDefinition or PersistentVolumeClaim not annotated `fluxcd.io/prune: "true"`.
pub fn keep_reason(api_version: &str, kind: &str, annotation: impl Fn(&str) -> Option<String>) -> Option<KeepReason> {
    let value = annotation(PRUNE_ANNOTATION);
    match value.as_deref().map(str::trim) {
        Some("false") => return Some(KeepReason::Annotated),
        Some("true") => return None,
        _ => {}
    }
    let protected = match api_group(api_version) {
        "" => kind.eq_ignore_ascii_case("Namespace") || kind.eq_ignore_ascii_case("PersistentVolumeClaim"),
        "apiextensions.k8s.io" => kind.eq_ignore_ascii_case("CustomResourceDefinition"),
        _ => false,
    };
    protected.then_some(KeepReason::ProtectedKind)
}

/// What `fluxcd.io/ignore` (or its legacy `flux.weave.works/` form) says on an object.
pub fn ignore_of(annotation: impl Fn(&str) -> Option<String>) -> Option<Ignore> {
    let value = annotation(IGNORE_ANNOTATION).or_else(|| annotation(LEGACY_IGNORE_ANNOTATION))?;
    match value.trim() {
        "true" => Some(Ignore::All),
        "sync_only" => Some(Ignore::SyncOnly),
        _ => None,
    }
}

/// What [`SYNC_PATH_ANNOTATION`] records for `object`: the configured path its origin is under
/// (the deepest, when paths nest), or the only path; when the origin tells nothing (a generator
/// above the paths), every configured path, so that removing any of them orphans it.
pub(super) fn recorded_paths(object: &KubeObject, configured: &[String]) -> String {
    let shown = |p: &String| if p.is_empty() { ".".to_owned() } else { p.clone() };
    if let [only] = configured {
        return shown(only);
    }
    let within =
        object.origin().and_then(|o| configured.iter().filter(|p| path_is_under(&o.file, p)).max_by_key(|p| p.len()));
    match within {
        Some(path) => shown(path),
        None => configured.iter().map(shown).collect::<Vec<_>>().join(","),
    }
}

/// Whether a path `m` was applied from is no longer configured. Objects without the annotation
/// (marked by Flux v1, whose sync set name already holds its paths) are of the current paths.
fn path_removed(m: &ManagedObject, configured: &[String]) -> bool {
    let Some(recorded) = m.annotations.get(SYNC_PATH_ANNOTATION) else { return false };
    recorded.split(',').any(|p| normalize_path(p).map_or(true, |p| !configured.contains(&p)))
}

/// (API group, id): how the engine matches desired objects with live ones.
type Key = (String, crate::ResourceId);

fn key_of(api_version: &str, id: &crate::ResourceId) -> Key {
    (api_group(api_version).to_owned(), id.clone())
}

/// What a usable revision is made of, kept for syncing it again.
#[derive(Debug)]
struct Desired {
    objects: Vec<KubeObject>,
    skipped: Vec<Skipped>,
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
    last_desired: std::sync::Mutex<Option<(Revision, Arc<Desired>)>>,
    /// The last revision whose skipped files were logged: once per revision, not every sync.
    skips_logged: std::sync::Mutex<Option<Revision>>,
    /// One prune allowed past the prune guard, taken by the next sync that prunes.
    prune_allowed: std::sync::atomic::AtomicBool,
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
        SyncEngine {
            source,
            cluster,
            generator,
            config,
            events,
            last_desired: Default::default(),
            skips_logged: Default::default(),
            prune_allowed: Default::default(),
        }
    }

    /// Lets the next sync that prunes delete what it would delete even if the
    /// [prune guard](SyncConfig::prune_guard) would hold it. The allowance is taken by that
    /// sync, held or not, and is kept in memory only (a restart drops it).
    pub fn allow_prune_once(&self) {
        self.prune_allowed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a prune is allowed past the guard and not taken yet.
    pub fn prune_allowance(&self) -> bool {
        self.prune_allowed.load(std::sync::atomic::Ordering::SeqCst)
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
            kept: Vec::new(),
            managed: 0,
            prune_hold: None,
            skipped: Vec::new(),
            orphaned: Vec::new(),
            foreign_copies: Vec::new(),
        };
        let unusable = |plan: &mut SyncPlan, id, error: Error| {
            plan.usable = false;
            plan.errors.push(SyncError::new(id, error));
        };

        // Desired state.
        let (desired, errors) = self.desired(revision).await;
        plan.skipped = desired.skipped.clone();
        for error in errors {
            unusable(&mut plan, None, error);
        }

        // Live state: the objects whose mark proves this unit (or the Flux v1 sync sets it
        // succeeds) applied them. Flux v1's objects carry no unit label: with legacy sets, the
        // marked objects without one are listed too.
        let listed = match self.cluster.managed(&self.config.identity).await {
            Ok(mut listed) if !self.config.legacy_sync_sets.is_empty() => {
                self.cluster.legacy_marked(&self.config.identity).await.map(|legacy| {
                    listed.extend(legacy);
                    listed
                })
            }
            listed => listed,
        };
        let listed = listed.unwrap_or_else(|e| {
            unusable(&mut plan, None, e.context("listing managed objects"));
            Vec::new()
        });
        let (managed, copies) = self.proven(listed);
        plan.foreign_copies = copies;
        plan.managed = managed.len();
        if plan.usable && desired.objects.is_empty() && !managed.is_empty() && !self.config.allow_empty {
            unusable(
                &mut plan,
                None,
                Error::invalid(
                    Location::file(if self.config.paths.is_empty() {
                        ".".to_owned()
                    } else {
                        self.config.paths.join(", ")
                    }),
                    format!(
                        "revision {} has no objects under {:?} while {} are managed; refusing to prune everything \
                         (set allow_empty if this is intended)",
                        revision.short(),
                        self.config.paths,
                        managed.len()
                    ),
                ),
            );
        }
        let live: BTreeMap<Key, &ManagedObject> =
            managed.iter().map(|m| (key_of(&m.reference.api_version, &m.reference.id), m)).collect();
        let configured = self.configured_paths();

        let mut in_git: BTreeSet<Key> = BTreeSet::new();
        // Desired objects this unit does not manage yet, with their checksum and paths.
        let mut unmanaged: Vec<(KubeObject, String, String)> = Vec::new();
        // By reference: only what is applied is copied (a no-op copies nothing).
        for object in &desired.objects {
            let key = key_of(object.api_version(), object.id());
            if !in_git.insert(key.clone()) {
                let error = match object.origin() {
                    Some(origin) => {
                        Error::invalid(origin.clone(), format!("{} is defined more than once", object.id()))
                    }
                    None => Error::invalid(Location::file(object.id().to_string()), "defined more than once"),
                };
                unusable(&mut plan, Some(object.id().clone()), error);
                continue;
            }
            let id = object.id().clone();
            if let Some(reason) = self.config.refuses(object) {
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
            let sum = checksum(object);
            let paths = recorded_paths(object, &configured);
            let Some(m) = live else {
                unmanaged.push((object.clone(), sum, paths));
                continue;
            };
            let mark = gc_mark(self.config.identity.as_str(), &id);
            let reason = if m.checksum.as_deref() != Some(sum.as_str())
                || m.annotations.get(SYNC_PATH_ANNOTATION) != Some(&paths)
                || m.mark() != Some(mark.as_str())
                || m.labels.get(SYNC_UNIT_LABEL).map(String::as_str) != Some(self.config.identity.as_str())
            {
                // Changed in git, moved to another path, or marked by Flux v1: (re-)marked now.
                Some(ApplyReason::Changed)
            } else if m.drifted {
                Some(ApplyReason::Drifted)
            } else {
                None
            };
            match reason {
                None => plan.unchanged.push(id),
                Some(reason) => plan.apply.push(self.planned(object.clone(), sum, paths, reason)),
            }
        }

        // An object this unit does not manage may exist already, marked `fluxcd.io/ignore` by
        // whoever made it: one batched, metadata-only look-up tells before anything is applied.
        if !unmanaged.is_empty() {
            let references: Vec<ObjectRef> = unmanaged.iter().map(|(o, ..)| ObjectRef::of(o)).collect();
            let lookups = match self.cluster.metadata(&references).await {
                Ok(lookups) if lookups.len() == references.len() => lookups,
                Ok(lookups) => {
                    let reason = format!("the cluster answered {} look-ups for {}", lookups.len(), references.len());
                    vec![Lookup::Failed { reason }; references.len()]
                }
                Err(e) => vec![Lookup::Failed { reason: e.to_string() }; references.len()],
            };
            for ((object, sum, paths), lookup) in unmanaged.into_iter().zip(lookups) {
                let id = object.id().clone();
                match lookup {
                    Lookup::Found(live) if ignore_of(|k| live.annotations.get(k).cloned()) == Some(Ignore::All) => {
                        plan.ignored.push(id);
                    }
                    Lookup::Failed { reason } => plan.errors.push(SyncError::new(
                        Some(id.clone()),
                        Error::transient(format!(
                            "not applying {id}: cannot tell whether the cluster's copy is marked fluxcd.io/ignore: {reason}"
                        )),
                    )),
                    Lookup::Found(_) | Lookup::Absent => {
                        plan.apply.push(self.planned(object, sum, paths, ApplyReason::Missing));
                    }
                }
            }
        }
        plan.apply.sort_by(|a, b| {
            let rank = |p: &PlannedApply| (stage(p.object.api_version(), p.object.kind()), p.object.id().clone());
            rank(a).cmp(&rank(b))
        });

        // Garbage: proven this unit's, gone from git, not protected; orphaned when its path is no
        // longer configured.
        if plan.usable && self.config.garbage_collection != GarbageCollection::Off {
            for m in &managed {
                let r = &m.reference;
                if in_git.contains(&key_of(&r.api_version, &r.id))
                    || ignore_of(|k| m.annotations.get(k).cloned()).is_some()
                    || self.config.refusal(&r.api_version, r.id.kind(), r.id.namespace(), r.id.name()).is_some()
                {
                    continue;
                }
                if !self.config.prune_removed_paths && path_removed(m, &configured) {
                    plan.orphaned.push(r.clone());
                } else if let Some(reason) = keep_reason(&r.api_version, r.id.kind(), |k| m.annotations.get(k).cloned())
                {
                    plan.kept.push(Kept { reference: r.clone(), reason });
                } else {
                    plan.prune.push(r.clone());
                }
            }
            plan.prune.sort_by(|a, b| {
                let rank = |r: &ObjectRef| (std::cmp::Reverse(stage(&r.api_version, r.id.kind())), r.id.clone());
                rank(a).cmp(&rank(b))
            });
            // A dry run of garbage collection deletes nothing: nothing to hold.
            let guard = self.config.prune_guard.filter(|_| self.config.garbage_collection == GarbageCollection::On);
            plan.prune_hold = guard.filter(|g| g.holds(plan.prune.len(), plan.managed)).map(|g| PruneHold {
                pruning: plan.prune.len(),
                managed: plan.managed,
                max_percent: g.max_percent,
                examples: plan.prune.iter().take(PruneHold::EXAMPLES).map(|r| r.id.clone()).collect(),
            });
        }
        plan
    }

    /// Splits listed objects into those whose mark proves this unit (or one of its legacy Flux
    /// v1 sync sets) applied that very object, and the references of those carrying this unit's
    /// label with a mark that is not theirs (copies). Other units' objects are dropped.
    fn proven(&self, listed: Vec<ManagedObject>) -> (Vec<ManagedObject>, Vec<ObjectRef>) {
        let unit = self.config.identity.as_str();
        let mut proven = Vec::new();
        let mut copies = Vec::new();
        for m in listed {
            let id = &m.reference.id;
            let ours = m.mark().is_some_and(|mark| {
                mark == gc_mark(unit, id) || self.config.legacy_sync_sets.iter().any(|set| mark == gc_mark(set, id))
            });
            if ours {
                proven.push(m);
            } else if m.labels.get(SYNC_UNIT_LABEL).map(String::as_str) == Some(unit) {
                copies.push(m.reference);
            }
        }
        (proven, copies)
    }

    /// The unit's paths, normalised (`""` is the root).
    fn configured_paths(&self) -> Vec<String> {
        if self.config.paths.is_empty() {
            return vec![String::new()];
        }
        self.config.paths.iter().filter_map(|p| normalize_path(p).ok()).collect()
    }

    /// `object` to apply, with this unit's mark, unit, checksum and paths to mark it with.
    fn planned(&self, object: KubeObject, checksum: String, paths: String, reason: ApplyReason) -> PlannedApply {
        let unit = self.config.identity.as_str();
        let marks = Marks { gc_mark: gc_mark(unit, object.id()), unit: unit.to_owned(), checksum, paths };
        PlannedApply { object, reason, marks }
    }

    /// The desired objects of `revision`, every problem found (with file and line) and what was
    /// skipped as not Kubernetes objects, from the cache when it is the last usable revision
    /// read. With problems, the objects are what could be generated (applied only with
    /// [`SyncConfig::apply_unusable`]), and nothing is cached. What was skipped is logged once
    /// per revision.
    async fn desired(&self, revision: &Revision) -> (Arc<Desired>, Vec<Error>) {
        {
            let mut last = crate::memory_lock(&self.last_desired);
            if let Some((cached, desired)) = last.as_ref()
                && cached == revision
            {
                return (desired.clone(), Vec::new());
            }
            // Another revision: the old one's objects are not kept while the new one is read and
            // generated (one copy of every object fewer at the peak of a sync that moves on).
            *last = None;
        }
        let snapshot = match Snapshot::read(self.source.clone(), revision.clone(), &self.config.paths).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                let nothing = Desired { objects: Vec::new(), skipped: Vec::new() };
                return (Arc::new(nothing), vec![e.context(format_args!("reading revision {}", revision.short()))]);
            }
        };
        let generated = self.generator.generate(&snapshot).await;
        self.log_skipped(revision, &generated.skipped);
        if !generated.is_usable() {
            return (Arc::new(Desired { objects: generated.objects, skipped: generated.skipped }), generated.errors);
        }
        let desired = Arc::new(Desired { objects: generated.objects, skipped: generated.skipped });
        *crate::memory_lock(&self.last_desired) = Some((revision.clone(), desired.clone()));
        (desired, Vec::new())
    }

    /// Logs what `revision` skipped, unless it was the last revision logged.
    fn log_skipped(&self, revision: &Revision, skipped: &[Skipped]) {
        let mut logged = crate::memory_lock(&self.skips_logged);
        if skipped.is_empty() || logged.as_ref() == Some(revision) {
            return;
        }
        *logged = Some(revision.clone());
        let list = skipped.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        tracing::info!(revision = revision.short(), count = skipped.len(), skipped = %list, "not Kubernetes objects: not read");
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
            failed: 0,
            unchanged: plan.unchanged.len(),
            refused: plan.refused,
            ignored: plan.ignored,
            skipped: plan.skipped,
            garbage_collection: self.config.garbage_collection,
            pruned: Vec::new(),
            orphaned: plan.orphaned,
            foreign_copies: plan.foreign_copies,
            kept: plan.kept,
            prune_held: None,
            errors: plan.errors,
            marker_moved: false,
            duration: Default::default(),
        };

        // Results are per object: a refused object is its own failure (file, line, the
        // cluster's reason) and is retried next sync, as nothing of it was recorded; only a
        // call that failed as a whole means the cluster cannot be trusted for pruning.
        let mut cluster_unreachable = false;
        let mut not_applied: BTreeSet<crate::ResourceId> = BTreeSet::new();
        if plan.usable || self.config.apply_unusable {
            for (result, origin) in self.apply_in_stages(plan.apply).await {
                match &result.outcome {
                    // The cluster refused what the file says: wrong input, at its file and line.
                    ApplyOutcome::Failed { reason } => {
                        let message = format!("{}: {reason}", result.id);
                        let error = match origin {
                            Some(at) => Error::invalid(at, message),
                            None => Error::other(message),
                        };
                        report.errors.push(SyncError::new(Some(result.id.clone()), error));
                    }
                    ApplyOutcome::Interrupted { reason } => {
                        cluster_unreachable = true;
                        let at = origin.map(|o| format!("{o}: ")).unwrap_or_default();
                        let message =
                            format!("{at}{}: not applied, the apply call failed as a whole: {reason}", result.id);
                        report.errors.push(SyncError::new(Some(result.id.clone()), Error::transient(message)));
                    }
                    ApplyOutcome::Created | ApplyOutcome::Configured | ApplyOutcome::Unchanged => {}
                }
                if result.outcome.is_failure() {
                    report.failed += 1;
                    not_applied.insert(result.id.clone());
                }
                report.applied.push(result);
            }
        }

        if !report.kept.is_empty() {
            let kept = report.kept.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            tracing::info!(unit = %self.config.identity, count = report.kept.len(), %kept, "left git, not pruned");
        }
        let held = if plan.usable && !cluster_unreachable && !plan.prune.is_empty() {
            self.held(plan.prune_hold)
        } else {
            None
        };
        if plan.usable && cluster_unreachable && !plan.prune.is_empty() {
            report.errors.push(SyncError::new(
                None,
                Error::transient(format!("not pruning {} objects: an apply call failed as a whole", plan.prune.len())),
            ));
        } else if let Some(hold) = held {
            tracing::warn!(unit = %self.config.identity, pruning = hold.pruning, managed = hold.managed, "{hold}");
            report.errors.push(SyncError::new(None, Error::other(hold.to_string())));
            report.prune_held = Some(hold);
        } else if plan.usable && !plan.prune.is_empty() {
            // A failed object is in git, so it is not garbage; only its live copy under another
            // API group (say an Ingress moving from extensions to networking.k8s.io) could be in
            // the prune set, and it is kept until the object applies.
            let (blocked, prune): (Vec<ObjectRef>, Vec<ObjectRef>) =
                plan.prune.into_iter().partition(|r| not_applied.contains(&r.id));
            for r in blocked {
                report.errors.push(SyncError::new(
                    Some(r.id.clone()),
                    Error::other(format!(
                        "not pruning {} ({}): applying it failed, so its live copy is kept",
                        r.id, r.api_version
                    )),
                ));
            }
            let dry_run = self.config.garbage_collection == GarbageCollection::DryRun;
            match self.cluster.delete(&prune, WriteOptions { dry_run }).await {
                Ok(results) => {
                    for r in &results {
                        if let DeleteOutcome::Failed { reason } = &r.outcome {
                            let error = Error::other(format!("pruning {}: {reason}", r.id));
                            report.errors.push(SyncError::new(Some(r.id.clone()), error));
                        }
                    }
                    report.pruned = results;
                }
                Err(e) => report.errors.push(SyncError::new(None, e.context("pruning"))),
            }
        }

        // As Flux v1, the marker is written only when it moves: a no-op sync writes nothing to
        // git (a marker the source cannot read is written again).
        if report.is_success() && self.config.move_marker {
            let already_there = matches!(self.source.sync_marker().await, Ok(Some(m)) if m == *revision);
            let moved = if already_there { Ok(()) } else { self.source.set_sync_marker(revision).await };
            match moved {
                Ok(()) => report.marker_moved = true,
                Err(e) => report.errors.push(SyncError::new(None, e.context("moving the sync marker"))),
            }
        }
        report.duration = started.elapsed();
        let _no_subscribers = self.events.send(Arc::new(report.clone()));
        report
    }

    /// The guard's hold of a sync about to delete (`hold`, from the plan), if it holds. A dry run
    /// of garbage collection deletes nothing, so it is never held. Otherwise the sync takes the
    /// allowance, if one was given, held or not.
    fn held(&self, hold: Option<PruneHold>) -> Option<PruneHold> {
        if self.config.garbage_collection != GarbageCollection::On {
            return None;
        }
        let allowed = self.prune_allowed.swap(false, std::sync::atomic::Ordering::SeqCst);
        match hold {
            Some(hold) if allowed => {
                tracing::info!(unit = %self.config.identity, pruning = hold.pruning, managed = hold.managed, "prune allowed once past the prune guard");
                None
            }
            hold => hold,
        }
    }

    /// Applies planned objects stage by stage; within a stage, up to `concurrency` calls at once,
    /// of at most [`CALL_SIZE`] objects each. Yields one result per object, in apply order, with
    /// the file and line it came from. Once a call failed as a whole, later stages are not sent:
    /// their objects are `Interrupted`.
    async fn apply_in_stages(&self, planned: Vec<PlannedApply>) -> Vec<(ApplyResult, Option<Location>)> {
        let mut stages: BTreeMap<u8, Vec<PlannedApply>> = BTreeMap::new();
        for p in planned {
            stages.entry(stage(p.object.api_version(), p.object.kind())).or_default().push(p);
        }
        let concurrency = self.config.concurrency.max(1);
        let mut out: Vec<(ApplyResult, Option<Location>)> = Vec::new();
        for planned in stages.into_values() {
            if let Some(reason) = out.iter().find_map(|(r, _)| match &r.outcome {
                ApplyOutcome::Interrupted { reason } => Some(reason.clone()),
                _ => None,
            }) {
                out.extend(planned.iter().map(|p| {
                    let outcome = ApplyOutcome::Interrupted { reason: format!("not sent: {reason}") };
                    (ApplyResult { id: p.object.id().clone(), outcome }, p.object.origin().cloned())
                }));
                continue;
            }
            let size = planned.len().div_ceil(concurrency).clamp(1, CALL_SIZE);
            // Each call owns its chunk and a handle on the cluster: a closure borrowing a slice
            // here would make the sync future impossible to prove `Send` (rust-lang/rust#100013).
            // The planned objects are moved into the chunks, not copied.
            let mut chunks: Vec<Vec<PlannedApply>> = Vec::new();
            for p in planned {
                match chunks.last_mut() {
                    Some(chunk) if chunk.len() < size => chunk.push(p),
                    _ => chunks.push(vec![p]),
                }
            }
            let calls = chunks.into_iter().map(|chunk| {
                let cluster = self.cluster.clone();
                async move { apply_chunk(cluster.as_ref(), chunk).await }
            });
            // `buffered` keeps input order, so reports read in apply order.
            let results = futures::stream::iter(calls).buffered(concurrency).collect::<Vec<_>>().await;
            out.extend(results.into_iter().flatten());
        }
        out
    }
}

/// The most objects one apply call sends. Each is marked (a copy of its body) only for its
/// call, so at most `concurrency` calls' worth of copies exist at once, whatever the revision's
/// size; calls this large keep the cluster's own concurrency busy.
const CALL_SIZE: usize = 256;

/// One apply call: a result for each object of the chunk, with its origin. A call that failed
/// as a whole makes every object `Interrupted`, as does an object the cluster reported nothing
/// for (a cluster breaking its contract is not trusted with pruning either).
async fn apply_chunk(cluster: &dyn Cluster, planned: Vec<PlannedApply>) -> Vec<(ApplyResult, Option<Location>)> {
    let chunk: Vec<KubeObject> = planned.iter().map(PlannedApply::marked).collect();
    drop(planned);
    let mut results = match cluster.apply(&chunk, WriteOptions::default()).await {
        Ok(results) => results,
        Err(e) => {
            let reason = format!("not applied: {e}");
            let outcome = ApplyOutcome::Interrupted { reason };
            chunk.iter().map(|o| ApplyResult { id: o.id().clone(), outcome: outcome.clone() }).collect()
        }
    };
    let in_order = results.len() == chunk.len() && results.iter().zip(&chunk).all(|(r, o)| &r.id == o.id());
    if !in_order {
        let mut given = std::mem::take(&mut results);
        results = chunk
            .iter()
            .map(|object| match given.iter().position(|r| &r.id == object.id()) {
                Some(at) => given.remove(at),
                None => ApplyResult {
                    id: object.id().clone(),
                    outcome: ApplyOutcome::Interrupted { reason: "the cluster reported no outcome for it".into() },
                },
            })
            .collect();
    }
    results.into_iter().zip(&chunk).map(|(result, object)| (result, object.origin().cloned())).collect()
}
