//! What may hold a unit's sync back: the units it depends on (`depends-on`) and suspension
//! (of the unit, or of one workload's automation), with the suspensions kept in the state
//! directory across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use flux_core::health::HealthReport;
use flux_core::{Error, Location, ResourceId, Result};
use serde::{Deserialize, Serialize};

use crate::service::UnitService;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Who suspended something, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// Who asked (fluxctl's `--user`), if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why (fluxctl's `-m`), if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When.
    pub since: jiff::Timestamp,
}

impl Suspension {
    /// `suspended by USER: MESSAGE`, with what is known.
    pub fn describe(&self) -> String {
        let mut text = "suspended".to_owned();
        if let Some(user) = &self.user {
            text.push_str(&format!(" by {user}"));
        }
        text.push_str(&format!(" at {}", self.since));
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(&format!(": {message}"));
        }
        text
    }
}

/// One workload whose automation is suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSuspension {
    /// The workload.
    pub workload: ResourceId,
    /// Who, why, when.
    #[serde(flatten)]
    pub suspension: Suspension,
}

/// Why a sync was not applied: held by a unit it depends on, or by its own suspension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The unit holding it: a dependency, or the unit itself when suspended.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// What the state directory keeps of a unit's suspensions (`suspend-<unit>.json`; with high
/// availability also the unit's Lease, [`crate::ha::SUSPENSION_ANNOTATION`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Suspensions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<Suspension>,
    #[serde(default)]
    workloads: BTreeMap<ResourceId, Suspension>,
}

/// A unit's gate: its suspensions, its readiness for the units depending on it, its last
/// health report, and its links to the units it depends on and that depend on it.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    suspensions: Mutex<Suspensions>,
    /// Where the suspensions are kept, if anywhere.
    file: Option<PathBuf>,
    /// `Ok(revision)` once a sync of `revision` applied everything (and was healthy, when the
    /// unit waits); `Err(why)` after one that did not; `None` before the first.
    readiness: Mutex<Option<std::result::Result<String, String>>>,
    /// Why the last sync was held, if it was.
    held: Mutex<Option<Held>>,
    /// The health report of the last sync that waited, with its revision.
    health: Mutex<Option<(String, HealthReport)>>,
    depends_on: OnceLock<Vec<Arc<UnitService>>>,
    dependents: OnceLock<Vec<Weak<UnitService>>>,
    /// Serialises the changes published before they are kept ([`Gate::one_change`]).
    changing: tokio::sync::Mutex<()>,
}

impl Gate {
    /// A gate whose suspensions are kept in `file` (read now), or in memory only.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file when it cannot be read or parsed.
    pub(crate) fn open(file: Option<PathBuf>) -> Result<Self> {
        let suspensions = match &file {
            Some(path) => read(path)?,
            None => Suspensions::default(),
        };
        Ok(Gate { suspensions: Mutex::new(suspensions), file, ..Gate::default() })
    }

    /// Links the gate to the services it depends on and those depending on it (once).
    pub(crate) fn link(&self, depends_on: Vec<Arc<UnitService>>, dependents: Vec<Weak<UnitService>>) {
        let _ = self.depends_on.set(depends_on);
        let _ = self.dependents.set(dependents);
    }

    /// The unit's suspension, if it is suspended.
    pub(crate) fn suspension(&self) -> Option<Suspension> {
        lock(&self.suspensions).unit.clone()
    }

    /// The workloads whose automation is suspended.
    pub(crate) fn suspended_workloads(&self) -> Vec<WorkloadSuspension> {
        lock(&self.suspensions)
            .workloads
            .iter()
            .map(|(workload, suspension)| WorkloadSuspension {
                workload: workload.clone(),
                suspension: suspension.clone(),
            })
            .collect()
    }

    /// The suspended workloads with the reason automation reports for each.
    pub(crate) fn automation_skips(&self) -> flux_core::automation::Suspended {
        lock(&self.suspensions).workloads.iter().map(|(id, s)| (id.clone(), s.describe())).collect()
    }

    /// Suspends the unit (`workload: None`) or one workload's automation; written to the state
    /// file before it answers. Suspending again replaces who and why.
    ///
    /// # Errors
    /// [`Error::Other`] when the state file cannot be written (nothing changed then).
    #[cfg(test)]
    pub(crate) fn suspend(&self, workload: Option<ResourceId>, suspension: Suspension) -> Result<()> {
        self.replace(self.after_suspend(workload, suspension))
    }

    /// The suspensions once `workload` (`None`: the unit) is suspended; nothing changes yet.
    pub(crate) fn after_suspend(&self, workload: Option<ResourceId>, suspension: Suspension) -> Suspensions {
        let mut next = lock(&self.suspensions).clone();
        match workload {
            Some(id) => {
                next.workloads.insert(id, suspension);
            }
            None => next.unit = Some(suspension),
        }
        next
    }

    /// The suspensions once `workload` (`None`: the unit) is resumed, and whether it was
    /// suspended; nothing changes yet.
    pub(crate) fn after_resume(&self, workload: Option<&ResourceId>) -> (Suspensions, bool) {
        let mut next = lock(&self.suspensions).clone();
        let was = match workload {
            Some(id) => next.workloads.remove(id).is_some(),
            None => next.unit.take().is_some(),
        };
        (next, was)
    }

    /// Keeps `next`: written to the state file first; a failed write changes nothing.
    ///
    /// # Errors
    /// [`Error::Other`] when the state file cannot be written.
    pub(crate) fn replace(&self, next: Suspensions) -> Result<()> {
        self.change(|s| *s = next)
    }

    /// One change at a time, for changes published (to the unit's Lease) before they are kept.
    pub(crate) async fn one_change(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changing.lock().await
    }

    /// `suspensions` as the unit's Lease keeps them (compact JSON).
    ///
    /// # Errors
    /// [`Error::Other`] when they cannot be written as JSON.
    pub(crate) fn to_json(suspensions: &Suspensions) -> Result<String> {
        serde_json::to_string(suspensions).map_err(|e| Error::other(format!("cannot write JSON: {e}")))
    }

    /// Takes the suspensions `json` records (the unit's Lease: the owner's) in place of these;
    /// whether they differed. In force at once; then written to the state file.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `json` is not a suspension record (nothing changes);
    /// [`Error::Other`] when the state file cannot be written (they are in force all the same).
    pub(crate) fn adopt(&self, json: &str) -> Result<bool> {
        let next: Suspensions = serde_json::from_str(json)
            .map_err(|e| Error::invalid(Location::file("the unit's Lease"), format!("not a suspension record: {e}")))?;
        let mut current = lock(&self.suspensions);
        if *current == next {
            return Ok(false);
        }
        *current = next.clone();
        match &self.file {
            Some(path) => write(path, &next).map(|()| true),
            None => Ok(true),
        }
    }

    /// Resumes the unit or one workload's automation; whether it was suspended.
    ///
    /// # Errors
    /// As [`Gate::suspend`].
    #[cfg(test)]
    pub(crate) fn resume(&self, workload: Option<&ResourceId>) -> Result<bool> {
        let (next, was) = self.after_resume(workload);
        self.replace(next)?;
        Ok(was)
    }

    /// Applies `edit` to a copy, writes it, then keeps it: a failed write changes nothing.
    fn change(&self, edit: impl FnOnce(&mut Suspensions)) -> Result<()> {
        let mut current = lock(&self.suspensions);
        let mut next = current.clone();
        edit(&mut next);
        if let Some(path) = &self.file {
            write(path, &next)?;
        }
        *current = next;
        Ok(())
    }

    /// Why a sync of unit `name` at `head` of `source` would be held now, if it would: its
    /// suspension, else the first unit it depends on that has not synced its current revision
    /// (healthy, when that unit waits). The current revision of a dependency on the same
    /// source (the same handle: a shared mirror) is `head`; of another, its source's head now
    /// (one refresh: its last look may be old).
    pub(crate) async fn hold(&self, name: &str, source: &Arc<dyn flux_core::Source>, head: &str) -> Option<Held> {
        if let Some(suspension) = self.suspension() {
            return Some(Held { by: name.to_owned(), reason: suspension.describe() });
        }
        for dependency in self.depends_on.get().into_iter().flatten() {
            let by = dependency.name().to_owned();
            let readiness = lock(&dependency.gate().readiness).clone();
            let reason = match readiness {
                None => format!("{by} has not synced yet"),
                Some(Err(why)) => format!("{by} is not ready: {why}"),
                Some(Ok(revision)) => {
                    let theirs = dependency.unit().source();
                    let current = if Arc::ptr_eq(theirs, source) {
                        Ok(head.to_owned())
                    } else {
                        theirs.refresh().await.map(|r| r.as_str().to_owned())
                    };
                    match current {
                        Ok(current) if current == revision => continue,
                        Ok(current) => format!(
                            "{by} has not synced its head {} yet (last synced {})",
                            short(&current),
                            short(&revision)
                        ),
                        Err(e) => format!("cannot tell whether {by} synced its head: {e}"),
                    }
                }
            };
            return Some(Held { by, reason });
        }
        None
    }

    /// Records that the last sync was held (`Some`) or ran (`None`). A unit held by a
    /// dependency is not ready for its own dependents; a suspended one keeps its readiness.
    pub(crate) fn set_held(&self, name: &str, held: Option<Held>) {
        if let Some(h) = &held
            && h.by != name
        {
            *lock(&self.readiness) = Some(Err(format!("held by {}: {}", h.by, h.reason)));
        }
        *lock(&self.held) = held;
    }

    /// Why the last sync was held, if it was.
    pub(crate) fn held(&self) -> Option<Held> {
        lock(&self.held).clone()
    }

    /// Records the outcome of a sync that ran: ready at `revision`, or not and why. The units
    /// depending on this one are woken to sync (or to say why they are held).
    pub(crate) fn set_ready(&self, revision: &str, outcome: std::result::Result<(), String>) {
        *lock(&self.readiness) = Some(outcome.map(|()| revision.to_owned()));
        for dependent in self.dependents.get().into_iter().flatten().filter_map(Weak::upgrade) {
            dependent.triggers.sync.notify_one();
        }
    }

    /// Forgets the last health report (a new sync is starting).
    pub(crate) fn clear_health(&self) {
        *lock(&self.health) = None;
    }

    /// Records the health report of a sync of `revision`.
    pub(crate) fn set_health(&self, revision: &str, report: HealthReport) {
        *lock(&self.health) = Some((revision.to_owned(), report));
    }

    /// The health report of the last sync that waited, if it was of `revision`.
    pub(crate) fn health_of(&self, revision: &str) -> Option<HealthReport> {
        lock(&self.health).as_ref().filter(|(r, _)| r == revision).map(|(_, h)| h.clone())
    }
}

fn short(revision: &str) -> &str {
    revision.get(..7).unwrap_or(revision)
}

fn read(path: &Path) -> Result<Suspensions> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(Location::file(path.display().to_string()), format!("not a suspension record: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Suspensions::default()),
        Err(e) => Err(Error::invalid(Location::file(path.display().to_string()), format!("cannot read: {e}"))),
    }
}

/// Writes `suspensions` to `path` so that a crash leaves the old file or the new one, never a
/// part: a temporary file in the same directory, written and fsynced, renamed over `path`, then
/// the directory fsynced (so the rename itself is durable).
fn write(path: &Path, suspensions: &Suspensions) -> Result<()> {
    use std::io::Write;
    let failed = |what: &str, e: std::io::Error| Error::other(format!("cannot {what} {}: {e}", path.display()));
    let json = serde_json::to_vec_pretty(suspensions).map_err(|e| Error::other(format!("cannot write JSON: {e}")))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| failed("create a temporary file for", e))?;
    file.write_all(&json).and_then(|()| file.sync_all()).map_err(|e| failed("write", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| failed("replace", e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| failed("sync the directory of", e))?;
    Ok(())
}

/// Checks the units' dependencies: every name a unit depends on is a unit, none depends on
/// itself, and there is no cycle.
///
/// # Errors
/// [`Error::InvalidInput`] naming the unit and the unknown dependency, or the cycle
/// (`a -> b -> a`).
pub fn check_dependencies<'a>(units: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Result<()> {
    let graph: BTreeMap<&str, &[String]> = units.into_iter().collect();
    for (unit, deps) in &graph {
        if let Some(unknown) = deps.iter().find(|d| !graph.contains_key(d.as_str())) {
            let known = graph.keys().copied().collect::<Vec<_>>().join(", ");
            return Err(Error::invalid(
                Location::file(format!("unit {unit}")),
                format!("depends on {unknown:?}, which is not a unit (the units are: {known})"),
            ));
        }
    }
    // Depth-first, keeping the path: a unit met again on the path closes a cycle.
    fn visit<'a>(
        unit: &'a str,
        graph: &BTreeMap<&'a str, &'a [String]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|u| *u == unit) {
            let mut cycle = path[at..].to_vec();
            cycle.push(unit);
            return Some(cycle);
        }
        if done.contains(unit) {
            return None;
        }
        path.push(unit);
        for dep in graph.get(unit).copied().unwrap_or_default() {
            if let Some(cycle) = visit(dep, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(unit);
        None
    }
    let mut done = BTreeSet::new();
    for unit in graph.keys() {
        if let Some(cycle) = visit(unit, &graph, &mut Vec::new(), &mut done) {
            return Err(Error::invalid(
                Location::file(format!("unit {}", cycle[0])),
                format!("the units depend on each other in a cycle: {}", cycle.join(" -> ")),
            ));
        }
    }
    Ok(())
}

/// The units in an order where each comes after the units it depends on (file order kept
/// where dependencies allow), as `fluxd --once` runs them.
///
/// # Errors
/// As [`check_dependencies`].
pub fn dependency_order<'a>(units: &[(&'a str, &'a [String])]) -> Result<Vec<&'a str>> {
    check_dependencies(units.iter().copied())?;
    let graph: BTreeMap<&str, &[String]> = units.iter().copied().collect();
    fn place<'a>(unit: &'a str, graph: &BTreeMap<&'a str, &'a [String]>, out: &mut Vec<&'a str>) {
        if out.contains(&unit) {
            return;
        }
        for dep in graph.get(unit).copied().unwrap_or_default() {
            if let Some((name, _)) = graph.get_key_value(dep.as_str()) {
                place(name, graph, out);
            }
        }
        out.push(unit);
    }
    let mut out = Vec::with_capacity(units.len());
    for (unit, _) in units {
        place(unit, &graph, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(units: &[(&str, &[&str])]) -> Result<()> {
        let owned: Vec<(String, Vec<String>)> =
            units.iter().map(|(u, d)| (u.to_string(), d.iter().map(|s| s.to_string()).collect())).collect();
        check_dependencies(owned.iter().map(|(u, d)| (u.as_str(), d.as_slice())))
    }

    #[test]
    fn dependencies_must_be_units_and_form_no_cycle() {
        check(&[("db", &[]), ("app", &["db"]), ("web", &["app", "db"])]).expect("a DAG");
        let e = check(&[("app", &["db"])]).expect_err("unknown");
        assert!(e.to_string().contains("unit app") && e.to_string().contains("\"db\""), "{e}");
        let e = check(&[("a", &["a"])]).expect_err("itself");
        assert!(e.to_string().contains("a -> a"), "{e}");
        let e = check(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]).expect_err("cycle");
        assert!(e.to_string().contains("a -> b -> c -> a"), "{e}");
        let e = check(&[("x", &[]), ("y", &["z"]), ("z", &["y"])]).expect_err("cycle");
        assert!(e.to_string().contains("y -> z -> y"), "{e}");
        let (web, app, db, logs) = (vec!["app".to_owned(), "db".to_owned()], vec!["db".to_owned()], vec![], vec![]);
        let units =
            [("web", web.as_slice()), ("app", app.as_slice()), ("db", db.as_slice()), ("logs", logs.as_slice())];
        assert_eq!(dependency_order(&units).expect("a DAG"), ["db", "app", "web", "logs"]);
    }

    #[tokio::test]
    async fn suspensions_survive_reopening_and_a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("suspend-shop.json");
        let gate = Gate::open(Some(file.clone())).expect("opens");
        let since = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let who = Suspension { user: Some("ana".into()), message: Some("incident 42".into()), since };
        gate.suspend(None, who.clone()).expect("suspended");
        let web: ResourceId = "shop:deployment/web".parse().expect("id");
        gate.suspend(Some(web.clone()), who.clone()).expect("workload suspended");
        assert!(!dir.path().join("suspend-shop.json.tmp").exists(), "no temporary file left");

        let again = Gate::open(Some(file.clone())).expect("reopens");
        assert_eq!(again.suspension(), Some(who.clone()));
        assert_eq!(again.suspended_workloads(), [WorkloadSuspension { workload: web.clone(), suspension: who }]);
        let source: Arc<dyn flux_core::Source> =
            Arc::new(flux_core::memory::MemorySource::with_files(Vec::<(String, String)>::new()).expect("a source"));
        let held = again.hold("shop", &source, "abc").await;
        assert!(held.is_some_and(|h| h.by == "shop" && h.reason.contains("ana") && h.reason.contains("incident 42")));
        assert!(again.resume(None).expect("resumed"));
        assert!(!again.resume(None).expect("resumed twice"), "not suspended any more");
        assert!(again.hold("shop", &source, "abc").await.is_none());
        assert_eq!(Gate::open(Some(file.clone())).expect("reopens").suspension(), None);

        let unwritable = Gate::open(Some(dir.path().join("missing-dir").join("suspend-x.json"))).expect("opens");
        let since = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        assert!(unwritable.suspend(None, Suspension { user: None, message: None, since }).is_err());
        assert_eq!(unwritable.suspension(), None, "a suspension that could not be kept is not in force");

        // A record taken from the unit's Lease (another replica's): in force and kept; the same
        // again changes nothing; a broken one changes nothing.
        let shared = Gate::open(Some(file.clone())).expect("opens");
        let record =
            Gate::to_json(&shared.after_suspend(None, Suspension { user: Some("bo".into()), message: None, since }))
                .expect("JSON");
        assert!(shared.adopt(&record).expect("adopted"), "it differed");
        assert_eq!(shared.suspension().and_then(|s| s.user).as_deref(), Some("bo"));
        assert!(!shared.adopt(&record).expect("adopted"), "the same record again");
        assert_eq!(
            Gate::open(Some(file.clone())).expect("reopens").suspension().and_then(|s| s.user).as_deref(),
            Some("bo")
        );
        assert!(shared.adopt("{ not json").is_err());
        assert!(shared.suspension().is_some(), "a broken record changes nothing");

        std::fs::write(&file, "{ not json").expect("written");
        let e = Gate::open(Some(file)).expect_err("corrupt");
        assert!(e.to_string().contains("suspend-shop.json"), "{e}");
    }
}
