//! The kinds each sync unit's objects are of, recorded in the cluster, so that
//! [`managed`](flux_core::Cluster::managed) lists those kinds only, not every kind the server
//! serves.
//!
//! One ConfigMap per unit ([`inventory_name`], in
//! [`ClusterOptions::inventory_namespace`](crate::ClusterOptions::inventory_namespace)) carries
//! the annotation [`KINDS_ANNOTATION`]: the API groups and kinds, as `Kind` or `Kind.group`,
//! comma-separated (kubectl's ApplySet `contains-group-kinds` format). The invariant: every kind
//! of which an object labelled with the unit exists, applied through any handle, is in the
//! record. It holds because:
//!
//! - an apply records the kinds of the unit's objects **before** sending them; an object whose
//!   kind cannot be recorded in an existing record is `Failed`, never applied unrecorded;
//! - a record is created only from a listing of **every** kind (the first sync, after an
//!   upgrade or migration, or after the record was deleted);
//! - a kind leaves the record only when this handle's last listing of it succeeded and found
//!   no object of the unit, and no apply of that kind was in flight or finished since that
//!   listing began.
//!
//! Without a record (none yet, or the identity may not read it), `managed` lists every kind,
//! as before. Objects given the unit's labels by other means than an apply are listed only if
//! the unit applied their kind.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flux_core::{Error, Result, SyncIdentity};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::Mutex;

use crate::cluster::Shared;
use crate::errors::from_kube;

/// The annotation of a unit's inventory ConfigMap listing its kinds.
pub const KINDS_ANNOTATION: &str = "fluxcd.io/sync-kinds";
/// The annotation of a unit's inventory ConfigMap saying a listing of every kind found no
/// object marked by Flux v1 (a GC mark without a unit label) left: `"none"`. Written once, by
/// its own field manager, so that recording kinds keeps it.
pub const LEGACY_ANNOTATION: &str = "fluxcd.io/sync-legacy-marks";

/// A kind, whatever its version: its API group (empty for the core group) and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupKind {
    // Kind first: sets read in the order they are written.
    pub(crate) kind: String,
    pub(crate) group: String,
}

impl GroupKind {
    pub(crate) fn new(group: &str, kind: &str) -> Self {
        GroupKind { kind: kind.to_owned(), group: group.to_owned() }
    }

    /// `Deployment.apps` → (`apps`, `Deployment`); `ConfigMap` → (``, `ConfigMap`). A kind has
    /// no dot, so the first one ends it.
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (kind, group) = s.split_once('.').unwrap_or((s, ""));
        (!kind.is_empty()).then(|| GroupKind::new(group, kind))
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() { f.write_str(&self.kind) } else { write!(f, "{}.{}", self.kind, self.group) }
    }
}

/// The annotation's value.
fn format_kinds(kinds: &BTreeSet<GroupKind>) -> String {
    kinds.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn parse_kinds(value: &str) -> BTreeSet<GroupKind> {
    value.split(',').filter_map(GroupKind::parse).collect()
}

/// The name of the inventory ConfigMap of `identity`: `flux-inventory-<identity>`, lower-cased
/// with `_` as `-`, and a hash of the identity appended when that changed it (so `A` and `a`
/// differ).
pub fn inventory_name(identity: &SyncIdentity) -> String {
    let id = identity.as_str();
    let name: String = id.chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect();
    if name == id {
        format!("flux-inventory-{name}")
    } else {
        // FNV-1a: stable across versions and platforms; uniqueness, not secrecy.
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        format!("flux-inventory-{name}-{:08x}", hash as u32)
    }
}

/// A unit's record as read from the cluster.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// No record (none yet, or the handle may not read it).
    Absent,
    /// The recorded kinds, at this `resourceVersion`.
    Kinds { kinds: BTreeSet<GroupKind>, version: String },
}

impl Record {
    fn kinds(&self) -> Option<&BTreeSet<GroupKind>> {
        match self {
            Record::Absent => None,
            Record::Kinds { kinds, .. } => Some(kinds),
        }
    }
}

/// What one listing of a unit's objects saw.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// When it began (the handle's clock).
    pub(crate) started: u64,
    /// Whether every listable kind was listed.
    pub(crate) full: bool,
    /// The kinds listed (successfully or not).
    pub(crate) listed: BTreeSet<GroupKind>,
    /// The kinds that may hold objects: objects were found, or the list was refused.
    pub(crate) found: BTreeSet<GroupKind>,
}

#[derive(Default)]
struct UnitState {
    /// The record as last read or written by this handle.
    known: Option<Record>,
    /// Whether the record says no Flux v1 object is left, as last read (`None`: not read).
    no_legacy: Option<bool>,
    listing: Option<Listing>,
    in_flight: HashMap<GroupKind, usize>,
    finished: HashMap<GroupKind, u64>,
}

impl UnitState {
    /// Kinds applied while or since `listing` ran.
    fn recent(&self, since: u64) -> impl Iterator<Item = &GroupKind> {
        let flying = self.in_flight.iter().filter(|(_, n)| **n > 0).map(|(k, _)| k);
        flying.chain(self.finished.iter().filter(move |(_, t)| **t >= since).map(|(k, _)| k))
    }
}

/// One unit's state, and the lock that makes its writes one at a time.
#[derive(Default)]
struct Unit {
    state: Mutex<UnitState>,
    writer: Mutex<()>,
}

impl std::ops::Deref for Unit {
    type Target = Mutex<UnitState>;
    fn deref(&self) -> &Mutex<UnitState> {
        &self.state
    }
}

/// Every unit's state in this handle.
#[derive(Default)]
pub(crate) struct Inventories {
    units: std::sync::Mutex<HashMap<String, Arc<Unit>>>,
    clock: AtomicU64,
}

/// How often a record changed by another writer between our read and write is read again.
const WRITE_ATTEMPTS: usize = 3;

impl Inventories {
    fn unit(&self, identity: &str) -> Arc<Unit> {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        units.entry(identity.to_owned()).or_default().clone()
    }

    /// The handle's clock: strictly increasing.
    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::AcqRel) + 1
    }
}

impl Shared {
    fn inventory_api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.inventory_namespace())
    }

    /// Where records live: the option, else the client's default namespace (the first allowed
    /// one when the handle is restricted to others).
    pub(crate) fn inventory_namespace(&self) -> String {
        if let Some(ns) = &self.options.inventory_namespace {
            return ns.clone();
        }
        let default = self.client.default_namespace();
        match &self.options.namespaces {
            Some(allowed) if !allowed.iter().any(|ns| ns == default) => {
                allowed.first().cloned().unwrap_or_else(|| default.to_owned())
            }
            _ => default.to_owned(),
        }
    }

    /// Reads the record of `identity` (one GET). A record the handle may not read is `Absent`.
    pub(crate) async fn read_inventory(&self, identity: &SyncIdentity) -> Result<Record> {
        if !self.options.inventory {
            return Ok(Record::Absent);
        }
        let mut no_legacy = false;
        let record = match self.inventory_api().get_opt(&inventory_name(identity)).await {
            Ok(None) => Record::Absent,
            Ok(Some(map)) => {
                no_legacy = map
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(LEGACY_ANNOTATION))
                    .is_some_and(|v| v == "none");
                let kinds = map.metadata.annotations.as_ref().and_then(|a| a.get(KINDS_ANNOTATION));
                match (kinds, map.metadata.resource_version) {
                    (Some(kinds), Some(version)) => Record::Kinds { kinds: parse_kinds(kinds), version },
                    _ => Record::Absent,
                }
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::debug!(unit = %identity, "may not read the unit's inventory: every kind is listed");
                Record::Absent
            }
            Err(e) => return Err(from_kube(e).into_error("reading the unit's inventory")),
        };
        let unit = self.inventories.unit(identity.as_str());
        let mut state = unit.lock().await;
        state.known = Some(record.clone());
        state.no_legacy = Some(no_legacy);
        Ok(record)
    }

    /// Whether `identity`'s record says no Flux v1 object is left (from the last read, made
    /// now if there was none). Only ever goes from no to yes, so the last read is enough.
    pub(crate) async fn no_legacy_left(&self, identity: &SyncIdentity) -> bool {
        if !self.options.inventory {
            return false;
        }
        let unit = self.inventories.unit(identity.as_str());
        let known = unit.lock().await.no_legacy;
        if known.is_none() {
            // Unreadable: not known, so listed.
            let _unknown = self.read_inventory(identity).await;
        }
        unit.lock().await.no_legacy == Some(true)
    }

    /// Records that a listing of every kind found no Flux v1 object left (best effort: without
    /// the record, the next call lists again).
    pub(crate) async fn record_no_legacy(&self, identity: &SyncIdentity) {
        if !self.options.inventory {
            return;
        }
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": inventory_name(identity),
            "labels": {flux_core::cluster::SYNC_UNIT_LABEL: identity.as_str()},
            "annotations": {LEGACY_ANNOTATION: "none"},
        }});
        let params = PatchParams::apply(&format!("{}-legacy", self.options.field_manager)).force();
        match self.inventory_api().patch(&inventory_name(identity), &params, &Patch::Apply(&body)).await {
            Ok(_) => self.inventories.unit(identity.as_str()).lock().await.no_legacy = Some(true),
            Err(e) => tracing::debug!(unit = %identity, error = %e, "cannot record that no Flux v1 object is left"),
        }
    }

    /// Remembers what a listing of `identity`'s objects saw.
    pub(crate) async fn listed(&self, identity: &SyncIdentity, listing: Listing) {
        self.inventories.unit(identity.as_str()).lock().await.listing = Some(listing);
    }

    /// Before applying objects of `kinds` labelled with `identity`: makes sure the record holds
    /// them (dropping kinds proven empty, when a write is made anyway). Marks the kinds in
    /// flight; [`Shared::applied_kinds`] ends that. Returns the kinds that could not be recorded
    /// while a record exists (their objects must not be applied), with the reason.
    pub(crate) async fn record_kinds(
        &self,
        identity: &SyncIdentity,
        kinds: &BTreeSet<GroupKind>,
    ) -> Option<(BTreeSet<GroupKind>, String)> {
        let unit = self.inventories.unit(identity.as_str());
        {
            let mut state = unit.lock().await;
            for kind in kinds {
                *state.in_flight.entry(kind.clone()).or_default() += 1;
            }
        }
        if !self.options.inventory {
            return None;
        }
        let _writer = unit.writer.lock().await;
        let state = unit.lock().await;
        let covered = state.known.as_ref().and_then(Record::kinds).is_some_and(|known| kinds.is_subset(known));
        let droppable = match (&state.listing, state.known.as_ref().and_then(Record::kinds)) {
            (Some(listing), Some(known)) => {
                let recent: BTreeSet<&GroupKind> = state.recent(listing.started).collect();
                known.iter().any(|k| {
                    (listing.full || listing.listed.contains(k)) && !listing.found.contains(k) && !recent.contains(k)
                })
            }
            _ => false,
        };
        if covered && !droppable {
            return None;
        }
        drop(state);
        let mut attempt = 1;
        loop {
            match self.write_kinds(identity, kinds, &unit).await {
                Ok(()) => return None,
                Err((_, Error::Conflict { .. })) if attempt < WRITE_ATTEMPTS => attempt += 1,
                Err((unrecorded, e)) => {
                    tracing::warn!(unit = %identity, error = %e, "cannot record the unit's kinds");
                    return (!unrecorded.is_empty()).then(|| (unrecorded, e.to_string()));
                }
            }
        }
    }

    /// Reads the record again and writes it with `kinds` added and kinds proven empty dropped.
    /// On failure, the kinds of `kinds` the record (if any) lacks.
    async fn write_kinds(
        &self,
        identity: &SyncIdentity,
        kinds: &BTreeSet<GroupKind>,
        unit: &Unit,
    ) -> std::result::Result<(), (BTreeSet<GroupKind>, Error)> {
        let fresh = self.read_inventory(identity).await.map_err(|e| (kinds.clone(), e))?;
        let lacking = |record: &Record| match record.kinds() {
            Some(recorded) => kinds.difference(recorded).cloned().collect(),
            None => BTreeSet::new(),
        };
        // A record is made from a listing of every kind only.
        let needs_full = {
            let state = unit.lock().await;
            matches!(fresh, Record::Absent) && !state.listing.as_ref().is_some_and(|l| l.full)
        };
        if needs_full {
            let started = self.inventories.tick();
            let listing = self.list_unit_kinds(identity, None, started).await.map_err(|e| (lacking(&fresh), e))?;
            self.listed(identity, listing).await;
        }
        let mut state = unit.lock().await;
        let mut next: BTreeSet<GroupKind> = match (&state.listing, fresh.kinds()) {
            (Some(listing), _) if listing.full => listing.found.clone(),
            (Some(listing), Some(recorded)) => recorded
                .iter()
                .filter(|k| !listing.listed.contains(*k) || listing.found.contains(*k))
                .cloned()
                .collect(),
            (None, Some(recorded)) => recorded.clone(),
            (_, None) => return Err((BTreeSet::new(), Error::other("no listing of every kind to make a record from"))),
        };
        if let Some(listing) = &state.listing {
            next.extend(state.recent(listing.started).cloned());
        }
        next.extend(kinds.iter().cloned());
        if fresh.kinds() == Some(&next) {
            return Ok(());
        }
        let version = match &fresh {
            Record::Kinds { version, .. } => Some(version.clone()),
            Record::Absent => None,
        };
        let mut metadata = json!({
            "name": inventory_name(identity),
            "labels": {flux_core::cluster::SYNC_UNIT_LABEL: identity.as_str()},
            "annotations": {KINDS_ANNOTATION: format_kinds(&next)},
        });
        if let Some(version) = version {
            // Written over exactly what was read: a concurrent writer makes this a conflict.
            metadata["resourceVersion"] = json!(version);
        }
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
        let params = PatchParams::apply(&format!("{}-inventory", self.options.field_manager)).force();
        match self.inventory_api().patch(&inventory_name(identity), &params, &Patch::Apply(&body)).await {
            Ok(map) => {
                let version = map.metadata.resource_version.unwrap_or_default();
                tracing::debug!(unit = %identity, kinds = %format_kinds(&next), "recorded the unit's kinds");
                state.known = Some(Record::Kinds { kinds: next, version });
                Ok(())
            }
            Err(e) => {
                state.known = None;
                Err((lacking(&fresh), from_kube(e).into_error("recording the unit's kinds")))
            }
        }
    }

    /// After the applies [`Shared::record_kinds`] announced: no longer in flight.
    pub(crate) async fn applied_kinds(&self, identity: &SyncIdentity, kinds: &BTreeSet<GroupKind>) {
        let now = self.inventories.tick();
        let unit = self.inventories.unit(identity.as_str());
        let mut state = unit.lock().await;
        for kind in kinds {
            if let Some(n) = state.in_flight.get_mut(kind) {
                *n = n.saturating_sub(1);
            }
            state.finished.insert(kind.clone(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_written() {
        let kinds: BTreeSet<GroupKind> = [
            GroupKind::new("", "ConfigMap"),
            GroupKind::new("apps", "Deployment"),
            GroupKind::new("conformance.flux.example.com", "Widget"),
        ]
        .into();
        let written = format_kinds(&kinds);
        assert_eq!(written, "ConfigMap,Deployment.apps,Widget.conformance.flux.example.com");
        assert_eq!(parse_kinds(&written), kinds);
        assert_eq!(parse_kinds(" ConfigMap, ,.apps"), [GroupKind::new("", "ConfigMap")].into(), "junk is skipped");
    }

    #[test]
    fn names_are_valid_and_distinct() {
        let name = |s: &str| inventory_name(&SyncIdentity::new(s).expect("valid identity"));
        assert_eq!(name("prod.main-1"), "flux-inventory-prod.main-1");
        assert_ne!(name("Prod_1"), name("prod-1"));
        assert_ne!(name("Prod_1"), name("prod_1"));
        assert!(name("Prod_1").starts_with("flux-inventory-prod-1-"));
        assert!(name(&"X".repeat(63)).len() <= 253);
    }
}
