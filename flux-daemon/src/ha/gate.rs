//! The write gate: what a replica may write for, checked before every write, and the
//! [`Cluster`] and [`Source`] wrappers that consult it.
//!
//! A unit is open for writes until an instant of the local monotonic clock (the last renewal's
//! send time plus the renew deadline, see [`super::LeaseCoordinator`]). A write starts only
//! while the gate is open and is cut off (its future dropped, so no further request is sent)
//! the moment the gate closes by expiry or loss. A unit being handed over is closed to new
//! writes, and its lease is released only once the writes in flight are done.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use flux_core::cluster::{ApplyResult, DeleteResult, Lookup, ManagedObject, WriteOptions};
use flux_core::source::{CommitRequest, SourceFile};
use flux_core::{Cluster, Error, KubeObject, ObjectRef, Result, Revision, Source, SyncIdentity, Workload};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// One unit's hold, as far as this replica knows.
#[derive(Debug, Default, Clone, Copy)]
struct Hold {
    /// Until when writes may start (local monotonic clock); `None`: not held.
    until: Option<Instant>,
    /// Being released: no new write starts, the ones in flight finish.
    closing: bool,
    /// Writes running now.
    in_flight: usize,
}

/// Which units this replica may write for, now. Clones share the gate.
#[derive(Clone)]
pub struct WriteGate {
    replica: Arc<str>,
    holds: Arc<Mutex<BTreeMap<String, Hold>>>,
    changed: Arc<watch::Sender<()>>,
}

impl fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGate").field("replica", &self.replica).field("held", &self.held()).finish()
    }
}

impl WriteGate {
    /// A gate of replica `replica`, closed for every unit.
    pub fn new(replica: impl Into<String>) -> Self {
        let (changed, _) = watch::channel(());
        WriteGate {
            replica: Arc::from(replica.into()),
            holds: Arc::new(Mutex::new(BTreeMap::new())),
            changed: Arc::new(changed),
        }
    }

    /// The replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Hold>) -> T) -> T {
        f(&mut self.holds.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn hold(&self, unit: &str) -> Hold {
        self.with(|h| h.get(unit).copied().unwrap_or_default())
    }

    /// Whether a write for `unit` may start now.
    pub fn is_open(&self, unit: &str) -> bool {
        let hold = self.hold(unit);
        !hold.closing && hold.until.is_some_and(|until| Instant::now() < until)
    }

    /// The units open now, sorted.
    pub fn held(&self) -> Vec<String> {
        let now = Instant::now();
        self.with(|h| {
            h.iter()
                .filter(|(_, hold)| !hold.closing && hold.until.is_some_and(|u| now < u))
                .map(|(n, _)| n.clone())
                .collect()
        })
    }

    /// A receiver that sees every change of the gate (grants, losses, hand-overs).
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Opens `unit` until `until` (a renewal sent before it succeeded).
    pub(crate) fn grant(&self, unit: &str, until: Instant) {
        self.with(|h| {
            let hold = h.entry(unit.to_owned()).or_default();
            hold.until = Some(until);
            hold.closing = false;
        });
        self.changed.send_replace(());
    }

    /// Closes `unit` at once: its lease is lost (taken, or this replica cannot tell it holds it);
    /// writes in flight are cut off.
    pub(crate) fn lose(&self, unit: &str) {
        let had = self.with(|h| h.get_mut(unit).map(|hold| hold.until.take().is_some()).unwrap_or(false));
        if had {
            self.changed.send_replace(());
        }
    }

    /// Closes `unit` to new writes before its lease is released; writes in flight go on.
    pub(crate) fn close(&self, unit: &str) {
        self.with(|h| h.entry(unit.to_owned()).or_default().closing = true);
        self.changed.send_replace(());
    }

    /// Waits until no write for `unit` is in flight.
    pub(crate) async fn drained(&self, unit: &str) {
        let mut changes = self.subscribe();
        while self.hold(unit).in_flight > 0 {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Starts a write for `unit`: a ticket while it runs, or why it may not.
    ///
    /// # Errors
    /// [`Error::Transient`] naming the replica and the unit when the gate is not open for it.
    pub fn begin(&self, unit: &str) -> Result<WriteTicket> {
        let now = Instant::now();
        let opened = self.with(|h| {
            let hold = h.entry(unit.to_owned()).or_default();
            let open = !hold.closing && hold.until.is_some_and(|u| now < u);
            if open {
                hold.in_flight += 1;
            }
            open
        });
        if !opened {
            return Err(Error::transient(format!(
                "replica {} does not hold the lease of unit {unit} (high availability): the write is not sent",
                self.replica
            )));
        }
        Ok(WriteTicket { gate: self.clone(), unit: unit.to_owned() })
    }

    /// Runs `write` for `unit` if the gate is open, cutting it off when the gate closes by
    /// expiry or loss (not by a hand-over, which waits for it).
    ///
    /// # Errors
    /// As [`WriteGate::begin`]; [`Error::Transient`] when cut off; else `write`'s.
    pub async fn guard<T>(&self, unit: &str, write: impl Future<Output = Result<T>>) -> Result<T> {
        let ticket = self.begin(unit)?;
        tokio::select! {
            biased;
            () = ticket.lost() => Err(Error::transient(format!(
                "replica {} lost the lease of unit {unit} during a write: the rest is not sent",
                self.replica
            ))),
            done = write => done,
        }
    }
}

/// A write in flight; dropping it ends the write.
#[derive(Debug)]
pub struct WriteTicket {
    gate: WriteGate,
    unit: String,
}

impl WriteTicket {
    /// Resolves when the unit's lease is lost or its validity has passed.
    pub async fn lost(&self) {
        let mut changes = self.gate.subscribe();
        loop {
            let Some(until) = self.gate.hold(&self.unit).until else { return };
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                () = sleep_until(until) => {}
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }
}

impl Drop for WriteTicket {
    fn drop(&mut self) {
        self.gate.with(|h| {
            if let Some(hold) = h.get_mut(&self.unit) {
                hold.in_flight = hold.in_flight.saturating_sub(1);
            }
        });
        self.gate.changed.send_replace(());
    }
}

/// A [`Cluster`] whose writes for one unit go through the gate; reads pass straight through.
pub struct GatedCluster {
    unit: String,
    gate: WriteGate,
    inner: Arc<dyn Cluster>,
}

impl GatedCluster {
    /// `inner`, writing for `unit` only while `gate` is open for it.
    pub fn new(unit: impl Into<String>, gate: WriteGate, inner: Arc<dyn Cluster>) -> Self {
        GatedCluster { unit: unit.into(), gate, inner }
    }
}

impl fmt::Debug for GatedCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedCluster").field("unit", &self.unit).finish_non_exhaustive()
    }
}

#[async_trait]
impl Cluster for GatedCluster {
    async fn apply(&self, objects: &[KubeObject], options: WriteOptions) -> Result<Vec<ApplyResult>> {
        if options.dry_run {
            return self.inner.apply(objects, options).await;
        }
        self.gate.guard(&self.unit, self.inner.apply(objects, options)).await
    }

    async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        self.inner.managed(identity).await
    }

    async fn marked(&self) -> Result<Vec<ManagedObject>> {
        self.inner.marked().await
    }

    async fn legacy_marked(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        // May record, with the cluster, that no Flux v1 object is left: a write.
        self.gate.guard(&self.unit, self.inner.legacy_marked(identity)).await
    }

    async fn metadata(&self, references: &[ObjectRef]) -> Result<Vec<Lookup>> {
        self.inner.metadata(references).await
    }

    async fn get(&self, reference: &ObjectRef) -> Result<Option<KubeObject>> {
        self.inner.get(reference).await
    }

    async fn live(&self, references: &[ObjectRef]) -> Result<Vec<flux_core::LiveObject>> {
        self.inner.live(references).await
    }

    /// A preview writes nothing (a dry run): any replica may plan.
    async fn preview_apply(&self, object: &KubeObject) -> Result<flux_core::cluster::Preview> {
        self.inner.preview_apply(object).await
    }

    async fn delete(&self, objects: &[ObjectRef], options: WriteOptions) -> Result<Vec<DeleteResult>> {
        if options.dry_run {
            return self.inner.delete(objects, options).await;
        }
        self.gate.guard(&self.unit, self.inner.delete(objects, options)).await
    }

    async fn workloads<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<Workload>> {
        self.inner.workloads(namespace).await
    }
}

/// A [`Source`] whose commits and marker moves for one unit go through the gate; fetches and
/// reads pass straight through (every replica keeps its mirror current, to answer reads).
pub struct GatedSource {
    unit: String,
    gate: WriteGate,
    inner: Arc<dyn Source>,
}

impl GatedSource {
    /// `inner`, written to for `unit` only while `gate` is open for it.
    pub fn new(unit: impl Into<String>, gate: WriteGate, inner: Arc<dyn Source>) -> Self {
        GatedSource { unit: unit.into(), gate, inner }
    }
}

impl fmt::Debug for GatedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedSource").field("unit", &self.unit).finish_non_exhaustive()
    }
}

#[async_trait]
impl Source for GatedSource {
    async fn refresh(&self) -> Result<Revision> {
        self.inner.refresh().await
    }

    async fn files(&self, revision: &Revision, paths: &[String]) -> Result<Vec<SourceFile>> {
        self.inner.files(revision, paths).await
    }

    async fn read_file(&self, revision: &Revision, path: &str) -> Result<Vec<u8>> {
        self.inner.read_file(revision, path).await
    }

    async fn commit(&self, request: &CommitRequest) -> Result<Revision> {
        self.gate.guard(&self.unit, self.inner.commit(request)).await
    }

    async fn sync_marker(&self) -> Result<Option<Revision>> {
        self.inner.sync_marker().await
    }

    async fn set_sync_marker(&self, revision: &Revision) -> Result<()> {
        self.gate.guard(&self.unit, self.inner.set_sync_marker(revision)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn writes_start_only_while_open_and_are_cut_off_when_the_lease_is_lost() {
        let gate = WriteGate::new("r1");
        assert!(gate.begin("shop").is_err(), "closed until granted");
        gate.grant("shop", Instant::now() + Duration::from_secs(60));
        assert!(gate.is_open("shop"));
        assert_eq!(gate.held(), vec!["shop".to_owned()]);
        let lose = {
            let gate = gate.clone();
            async move {
                tokio::task::yield_now().await;
                gate.lose("shop");
            }
        };
        let (cut, ()) = tokio::join!(gate.guard("shop", std::future::pending::<Result<()>>()), lose);
        let error = cut.expect_err("a write outliving its lease is cut off");
        assert!(error.to_string().contains("lost the lease of unit shop"), "{error}");
        let refused = gate.begin("shop").expect_err("closed after the loss");
        assert!(refused.to_string().contains("replica r1 does not hold the lease of unit shop"), "{refused}");
    }

    #[tokio::test]
    async fn a_replica_without_the_lease_previews_but_does_not_apply() {
        let inner = Arc::new(flux_core::memory::MemoryCluster::new());
        let cluster = GatedCluster::new("shop", WriteGate::new("r1"), inner.clone());
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "plan", "namespace": "default"}, "data": {"a": "b"},
        });
        let object = KubeObject::from_value(body, None).expect("an object");
        let preview = cluster.preview_apply(&object).await.expect("a dry run needs no lease");
        assert!(matches!(preview, flux_core::cluster::Preview::Object(_)), "{preview:?}");
        let refused = cluster.apply(std::slice::from_ref(&object), WriteOptions::default()).await;
        assert!(refused.is_err(), "an apply needs the lease");
        assert!(inner.get(&ObjectRef::of(&object)).await.expect("read").is_none(), "nothing written");
    }

    #[tokio::test]
    async fn an_expired_grant_closes_by_itself_and_a_write_in_flight_stops_at_the_deadline() {
        let gate = WriteGate::new("r1");
        gate.grant("shop", Instant::now() + Duration::from_millis(50));
        let cut = gate.guard("shop", std::future::pending::<Result<()>>()).await;
        assert!(cut.is_err());
        assert!(!gate.is_open("shop"));
        assert!(gate.held().is_empty());
    }

    #[tokio::test]
    async fn a_hand_over_refuses_new_writes_and_waits_for_the_ones_in_flight() {
        let gate = WriteGate::new("r1");
        gate.grant("shop", Instant::now() + Duration::from_secs(60));
        let ticket = gate.begin("shop").expect("open");
        gate.close("shop");
        assert!(gate.begin("shop").is_err(), "no new write while handing over");
        let drained = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.drained("shop").await })
        };
        tokio::task::yield_now().await;
        assert!(!drained.is_finished(), "the write in flight is waited for");
        drop(ticket);
        drained.await.expect("drained once the write ended");
    }
}
