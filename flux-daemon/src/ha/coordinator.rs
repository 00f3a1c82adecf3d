//! [`LeaseCoordinator`]: the lease protocol over a [`LeaseStore`]. Every round (a quarter of the
//! lease duration) a replica lists the leases and renews its own member lease, the only write of
//! a steady round. A replica whose member lease was seen unchanged for the duration is marked
//! gone (its lease released, version-guarded) before its units are taken. Then the assignment
//! over the live members says, for each unit, whether to keep it (open until the member
//! renewal's deadline), acquire it (a version-guarded write of the unit's lease: it must be
//! free, or held by a gone replica) or hand it over (close, drain, release).
//!
//! A unit is open only if this replica wrote its lease since its member lease was last taken
//! (its epoch): a replica marked gone and back re-writes each unit's lease, and loses it if
//! another replica took it first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flux_core::{Error, Result};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use super::{
    API_ADDRESS_ANNOTATION, AnnotationChanges, LeaseRecord, LeaseStore, Ownership, WriteGate, assign, member_lease,
    unit_lease,
};

/// How many lease writes one replica has in flight at once.
const PARALLEL_WRITES: usize = 16;

/// The protocol's times, all derived from the lease duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease seen unchanged stays another replica's (default 15 s).
    pub duration: Duration,
}

impl LeaseTiming {
    /// Times for a lease duration of `duration` (at least 1 s).
    pub fn new(duration: Duration) -> Self {
        LeaseTiming { duration: duration.max(Duration::from_secs(1)) }
    }

    /// The period of the protocol's rounds: a quarter of the duration.
    pub fn round(&self) -> Duration {
        self.duration / 4
    }

    /// How long after *sending* a member renewal that succeeded the replica may start writes for
    /// its units: two thirds of the duration, so a third is left for a write in flight to land
    /// before anyone else can mark it gone (a full duration after *seeing* the renewal).
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// The bound of one call to the store: a third of the duration (a renewal that times out
    /// leaves time for one more before the deadline).
    pub fn call_timeout(&self) -> Duration {
        self.duration / 3
    }
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming::new(Duration::from_secs(15))
    }
}

/// A lease as last seen, and since when it has been so (local monotonic clock).
#[derive(Debug, Clone)]
struct Seen {
    record: LeaseRecord,
    since: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One replica's side of the lease protocol; implements [`Ownership`].
#[derive(Debug)]
pub struct LeaseCoordinator {
    store: Arc<dyn LeaseStore>,
    gate: WriteGate,
    timing: LeaseTiming,
    seen: Mutex<BTreeMap<String, Seen>>,
    owners: Mutex<BTreeMap<String, Option<String>>>,
    /// Units whose lease this replica wrote since its member lease was last (re)taken.
    confirmed: Mutex<std::collections::BTreeSet<String>>,
    /// The last successful member renewal's send time plus the renew deadline.
    deadline: Mutex<Option<Instant>>,
    /// The API address this replica advertises in its member lease.
    address: Option<String>,
    /// The other members' advertised API addresses, as last listed (held member leases only).
    addresses: Mutex<BTreeMap<String, String>>,
    /// Each unit lease's annotations: as last written here for the units this replica holds
    /// (only the holder writes them), as last listed for the others.
    unit_annotations: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl LeaseCoordinator {
    /// Replica `replica` (see [`super::check_replica_id`]) over `store`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an invalid replica id.
    pub fn new(replica: &str, store: Arc<dyn LeaseStore>, timing: LeaseTiming) -> Result<Self> {
        super::check_replica_id(replica)?;
        Ok(LeaseCoordinator {
            store,
            gate: WriteGate::new(replica),
            timing,
            seen: Mutex::new(BTreeMap::new()),
            owners: Mutex::new(BTreeMap::new()),
            confirmed: Mutex::new(std::collections::BTreeSet::new()),
            deadline: Mutex::new(None),
            address: None,
            addresses: Mutex::new(BTreeMap::new()),
            unit_annotations: Mutex::new(BTreeMap::new()),
        })
    }

    /// Advertises `address` (`HOST:PORT` or an `http(s)://` URL) as this replica's API in its
    /// member lease ([`API_ADDRESS_ANNOTATION`]), so the others forward writes for its units.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// The protocol's times.
    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    fn me(&self) -> &str {
        self.gate.replica()
    }

    /// Records what `listed` shows, seen at `now`; the leases by name.
    fn observe(&self, listed: Vec<LeaseRecord>, now: Instant) -> BTreeMap<String, LeaseRecord> {
        let records: BTreeMap<String, LeaseRecord> = listed.into_iter().map(|r| (r.name.clone(), r)).collect();
        let mut seen = lock(&self.seen);
        seen.retain(|name, _| records.contains_key(name));
        for (name, record) in &records {
            let changed = seen.get(name).is_none_or(|s| s.record != *record);
            if changed {
                seen.insert(name.clone(), Seen { record: record.clone(), since: now });
            }
        }
        records
    }

    /// Whether lease `name` may be taken: free, or held but seen unchanged for the duration.
    fn takeable(&self, name: &str, now: Instant) -> bool {
        match lock(&self.seen).get(name) {
            None => true,
            Some(seen) => seen.record.holder.is_none() || now.duration_since(seen.since) >= self.timing.duration,
        }
    }

    /// Writes lease `name` with the store's bound (an error when it timed out); this replica's
    /// member lease carries its API address while held.
    async fn write(&self, name: &str, previous: Option<&LeaseRecord>, holder: Option<&str>) -> Result<LeaseRecord> {
        self.write_annotated(name, previous, holder, AnnotationChanges::new()).await
    }

    /// As [`LeaseCoordinator::write`], also setting or removing `annotations`.
    async fn write_annotated(
        &self,
        name: &str,
        previous: Option<&LeaseRecord>,
        holder: Option<&str>,
        mut annotations: AnnotationChanges,
    ) -> Result<LeaseRecord> {
        if name == member_lease(self.me()) {
            let address = holder.and(self.address.clone());
            annotations.insert(API_ADDRESS_ANNOTATION.to_owned(), address);
        }
        let call = self.store.write(name, previous, holder, &annotations, self.timing.duration);
        match timeout(self.timing.call_timeout(), call).await {
            Ok(written) => written,
            Err(_) => {
                Err(Error::transient(format!("writing Lease {name} took longer than {:?}", self.timing.call_timeout())))
            }
        }
    }

    /// Forgets every unit this replica confirmed: its membership was broken, or it (re)joins.
    /// Until it writes a unit's lease again, it writes nothing for the unit.
    fn new_epoch(&self) {
        let confirmed = std::mem::take(&mut *lock(&self.confirmed));
        for unit in confirmed {
            self.gate.lose(&unit);
        }
    }

    /// One round: list; renew this replica's member lease; break the member leases of replicas
    /// seen unchanged for the duration; assign; then acquire, keep or hand over every unit.
    async fn round(&self, units: &[String]) -> Result<()> {
        let listed = timeout(self.timing.call_timeout(), self.store.list()).await.map_err(|_| {
            Error::transient(format!("listing Leases took longer than {:?}", self.timing.call_timeout()))
        })??;
        let now = Instant::now();
        let records = self.observe(listed, now);
        let me = self.me().to_owned();
        {
            // A unit lease this replica holds changes only by its own writes, recorded as made
            // (a list sent before one of them must not undo it).
            let mut annotations = lock(&self.unit_annotations);
            for record in records.values().filter(|r| r.holder.as_deref() != Some(me.as_str())) {
                if let Some(unit) = record.name.strip_prefix("flux-unit-") {
                    annotations.insert(unit.to_owned(), record.annotations.clone());
                }
            }
        }
        let member = member_lease(&me);
        let own = records.get(&member);
        if own.and_then(|r| r.holder.as_deref()) != Some(me.as_str()) {
            self.new_epoch();
        }
        let sent = Instant::now();
        match self.write(&member, own, Some(&me)).await {
            Ok(_) => *lock(&self.deadline) = Some(sent + self.timing.renew_deadline()),
            Err(Error::Conflict { .. }) => {
                // Another replica declared this one gone (or the lease moved): start over.
                self.new_epoch();
                return Err(Error::conflict(format!("the member Lease {member} changed: rejoining")));
            }
            Err(e) => tracing::warn!(replica = %me, error = %e, "cannot renew this replica's member Lease"),
        }
        // Members: live, or gone (released, or broken here after being seen unchanged for the
        // duration: their writes stopped a third of the duration before).
        let mut live = vec![me.clone()];
        let mut gone = std::collections::BTreeSet::new();
        for record in records.values().filter(|r| r.name.starts_with("flux-replica-") && r.name != member) {
            let id = record.name.trim_start_matches("flux-replica-").to_owned();
            match &record.holder {
                None => {
                    gone.insert(id);
                }
                Some(holder) if self.takeable(&record.name, now) => {
                    match self.write(&record.name, Some(record), None).await {
                        Ok(_) => {
                            tracing::warn!(replica = %me, gone = %holder, "a replica's member Lease went unrenewed for the lease duration: its units are taken over");
                            gone.insert(holder.clone());
                        }
                        Err(e) => {
                            tracing::info!(replica = %me, other = %holder, error = %e, "could not mark a replica gone")
                        }
                    }
                }
                Some(holder) => live.push(holder.clone()),
            }
        }
        let members: std::collections::BTreeSet<String> =
            records.keys().filter_map(|n| n.strip_prefix("flux-replica-")).map(str::to_owned).collect();
        *lock(&self.addresses) = records
            .values()
            .filter(|r| r.name != member && r.holder.is_some())
            .filter_map(|r| {
                let id = r.name.strip_prefix("flux-replica-").filter(|id| !gone.contains(*id))?;
                Some((id.to_owned(), r.annotations.get(API_ADDRESS_ANNOTATION)?.clone()))
            })
            .collect();
        let assignment = assign(units, &live);
        let deadline = *lock(&self.deadline);
        let tended: Vec<_> = units
            .iter()
            .map(|unit| {
                let mine = assignment.get(unit) == Some(&me);
                let record = records.get(&unit_lease(unit));
                // A holder whose member Lease is released, broken or missing writes no more.
                let holder_gone = record
                    .and_then(|r| r.holder.as_deref())
                    .is_some_and(|h| h != me && (gone.contains(h) || !members.contains(h)));
                self.tend(unit, record, mine, holder_gone, deadline)
            })
            .collect();
        let owners: Vec<(String, Option<String>)> =
            futures::stream::iter(tended).buffer_unordered(PARALLEL_WRITES).collect().await;
        lock(&self.owners).extend(owners);
        Ok(())
    }

    /// Keeps, acquires or hands over `unit`'s lease (`record`, as listed); its holder afterwards.
    /// A unit this replica confirmed in this epoch is kept open until `deadline` (the member
    /// lease's) without a write; any other is written first (version-guarded).
    async fn tend(
        &self,
        unit: &str,
        record: Option<&LeaseRecord>,
        mine: bool,
        holder_gone: bool,
        deadline: Option<Instant>,
    ) -> (String, Option<String>) {
        let name = unit_lease(unit);
        let me = self.me();
        let holder = record.and_then(|r| r.holder.clone());
        let held = holder.as_deref() == Some(me);
        if held && !mine {
            // Handing over: no new write, the ones in flight finish, then the lease is free.
            self.gate.close(unit);
            self.gate.drained(unit).await;
            let released = self.write(&name, record, None).await;
            lock(&self.confirmed).remove(unit);
            self.gate.lose(unit);
            return match released {
                Ok(_) => {
                    tracing::info!(replica = me, unit, "unit handed over: Lease released");
                    (unit.to_owned(), None)
                }
                Err(e) => {
                    tracing::warn!(replica = me, unit, error = %e, "cannot release the unit's Lease");
                    (unit.to_owned(), holder)
                }
            };
        }
        if !held {
            lock(&self.confirmed).remove(unit);
            self.gate.lose(unit);
        }
        let confirmed = held && lock(&self.confirmed).contains(unit);
        if confirmed {
            if let Some(deadline) = deadline {
                self.gate.grant(unit, deadline);
            }
            return (unit.to_owned(), holder);
        }
        let free = record.is_none() || holder.is_none() || holder_gone;
        if !(mine && (held || free)) {
            return (unit.to_owned(), holder);
        }
        match self.write(&name, record, Some(me)).await {
            Ok(written) => {
                lock(&self.unit_annotations).insert(unit.to_owned(), written.annotations);
                if !held {
                    tracing::info!(replica = me, unit, previous = ?holder, "unit acquired");
                }
                lock(&self.confirmed).insert(unit.to_owned());
                if let Some(deadline) = *lock(&self.deadline) {
                    self.gate.grant(unit, deadline);
                }
                (unit.to_owned(), Some(me.to_owned()))
            }
            Err(Error::Conflict { .. }) => {
                self.gate.lose(unit);
                (unit.to_owned(), holder.filter(|h| h != me))
            }
            Err(e) => {
                tracing::warn!(replica = me, unit, error = %e, "cannot write the unit's Lease");
                (unit.to_owned(), holder)
            }
        }
    }

    /// Sets (or removes) annotation `key` of `unit`'s lease, as a write for the unit: only while
    /// the gate is open for it, cut off if it closes, guarded by the version just listed.
    async fn annotate(&self, unit: &str, key: &str, value: Option<String>) -> Result<()> {
        let name = unit_lease(unit);
        let me = self.me();
        let write = async {
            let listed = timeout(self.timing.call_timeout(), self.store.list()).await.map_err(|_| {
                Error::transient(format!("listing Leases took longer than {:?}", self.timing.call_timeout()))
            })??;
            let record = listed.into_iter().find(|r| r.name == name && r.holder.as_deref() == Some(me));
            let record = record.ok_or_else(|| {
                Error::conflict(format!("replica {me} no longer holds the Lease of unit {unit}: nothing written"))
            })?;
            let changes = AnnotationChanges::from([(key.to_owned(), value)]);
            let written = self.write_annotated(&name, Some(&record), Some(me), changes).await?;
            lock(&self.unit_annotations).insert(unit.to_owned(), written.annotations);
            Ok(())
        };
        self.gate.guard(unit, write).await
    }

    /// Closes the gate and releases every lease this replica holds, at once.
    async fn release_all(&self, units: &[String]) {
        for unit in units {
            self.gate.close(unit);
        }
        let listed = match timeout(self.timing.call_timeout(), self.store.list()).await {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list Leases to release them: they expire");
                units.iter().for_each(|u| self.gate.lose(u));
                return;
            }
            Err(_) => {
                tracing::warn!("listing Leases to release them timed out: they expire");
                units.iter().for_each(|u| self.gate.lose(u));
                return;
            }
        };
        let me = self.me();
        let (members, ours): (Vec<LeaseRecord>, Vec<LeaseRecord>) = listed
            .into_iter()
            .filter(|r| r.holder.as_deref() == Some(me))
            .partition(|r| r.name.starts_with("flux-replica-"));
        let releases: Vec<_> = ours.iter().map(|record| self.release(record)).collect();
        futures::stream::iter(releases).buffer_unordered(PARALLEL_WRITES).collect::<Vec<()>>().await;
        units.iter().for_each(|u| self.gate.lose(u));
        // The member lease last: others take a gone replica's units at once.
        for record in &members {
            self.release(record).await;
        }
        lock(&self.owners).values_mut().for_each(|o| {
            if o.as_deref() == Some(me) {
                *o = None;
            }
        });
    }

    /// Releases one lease this replica holds, after the writes in flight for its unit.
    async fn release(&self, record: &LeaseRecord) {
        let me = self.me();
        {
            let unit = record.name.strip_prefix("flux-unit-");
            if let Some(unit) = unit {
                self.gate.drained(unit).await;
            }
            match self.write(&record.name, Some(record), None).await {
                Ok(_) => tracing::info!(replica = me, lease = %record.name, "Lease released"),
                Err(e) => {
                    tracing::warn!(replica = me, lease = %record.name, error = %e, "cannot release a Lease: it expires")
                }
            }
        }
    }

    async fn run_until(self: Arc<Self>, units: Vec<String>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(replica = self.me(), units = units.len(), lease_duration = ?self.timing.duration, "high availability: taking part");
        loop {
            let started = Instant::now();
            tokio::select! {
                done = self.round(&units) => if let Err(e) = done {
                    tracing::warn!(replica = self.me(), error = %e, "lease round failed");
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            tokio::select! {
                () = sleep_until(started + self.timing.round()) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        self.release_all(&units).await;
    }
}

impl Ownership for LeaseCoordinator {
    fn replica(&self) -> &str {
        self.me()
    }

    fn gate(&self) -> &WriteGate {
        &self.gate
    }

    fn owner(&self, unit: &str) -> Option<String> {
        let owner = lock(&self.owners).get(unit).cloned().flatten()?;
        // This replica says it owns a unit only while it may write for it (a partitioned
        // replica's view of itself lapses with its gate).
        (owner != self.me() || self.gate.is_open(unit)).then_some(owner)
    }

    fn address(&self, replica: &str) -> Option<String> {
        lock(&self.addresses).get(replica).cloned()
    }

    fn peers(&self) -> Vec<(String, String)> {
        lock(&self.addresses).iter().map(|(id, address)| (id.clone(), address.clone())).collect()
    }

    fn unit_annotation(&self, unit: &str, key: &str) -> Option<String> {
        lock(&self.unit_annotations).get(unit)?.get(key).cloned()
    }

    fn annotate_unit<'a>(&'a self, unit: &'a str, key: &'a str, value: Option<String>) -> BoxFuture<'a, Result<()>> {
        self.annotate(unit, key, value).boxed()
    }

    fn run(self: Arc<Self>, units: Vec<String>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        self.run_until(units, shutdown).boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// One lease in [`Memory`].
    #[derive(Debug, Clone, Default)]
    struct Stored {
        holder: Option<String>,
        version: u64,
        annotations: BTreeMap<String, String>,
    }

    impl Stored {
        fn held_by(holder: &str, version: u64) -> Self {
            Stored { holder: Some(holder.to_owned()), version, annotations: BTreeMap::new() }
        }
    }

    /// Leases in memory, shared by the replicas of a test.
    #[derive(Debug, Default)]
    struct Memory {
        leases: Mutex<BTreeMap<String, Stored>>,
        next: AtomicUsize,
    }

    /// One replica's link to [`Memory`]; cut, every call hangs (a black-holed connection).
    #[derive(Debug)]
    struct Link {
        memory: Arc<Memory>,
        cut: AtomicBool,
    }

    impl Link {
        async fn reach(&self) {
            if self.cut.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
    }

    #[async_trait]
    impl LeaseStore for Link {
        async fn list(&self) -> Result<Vec<LeaseRecord>> {
            self.reach().await;
            let leases = lock(&self.memory.leases);
            Ok(leases
                .iter()
                .map(|(name, stored)| LeaseRecord {
                    name: name.clone(),
                    holder: stored.holder.clone(),
                    version: stored.version.to_string(),
                    annotations: stored.annotations.clone(),
                })
                .collect())
        }

        async fn write(
            &self,
            name: &str,
            previous: Option<&LeaseRecord>,
            holder: Option<&str>,
            changes: &AnnotationChanges,
            _duration: Duration,
        ) -> Result<LeaseRecord> {
            self.reach().await;
            let mut leases = lock(&self.memory.leases);
            let current = leases.get(name).map(|stored| stored.version.to_string());
            if current.as_deref() != previous.map(|p| p.version.as_str()) {
                return Err(Error::conflict(format!("Lease {name} changed")));
            }
            let version = self.memory.next.fetch_add(1, Ordering::SeqCst) as u64 + 1;
            let stored = leases.entry(name.to_owned()).or_default();
            stored.holder = holder.map(str::to_owned);
            stored.version = version;
            for (key, value) in changes {
                match value {
                    Some(value) => stored.annotations.insert(key.clone(), value.clone()),
                    None => stored.annotations.remove(key),
                };
            }
            Ok(LeaseRecord {
                name: name.to_owned(),
                holder: stored.holder.clone(),
                version: version.to_string(),
                annotations: stored.annotations.clone(),
            })
        }
    }

    struct Replica {
        coordinator: Arc<LeaseCoordinator>,
        link: Arc<Link>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    const TIMING: LeaseTiming = LeaseTiming { duration: Duration::from_millis(1200) };

    fn start(memory: &Arc<Memory>, id: &str, units: &[String]) -> Replica {
        let link = Arc::new(Link { memory: memory.clone(), cut: AtomicBool::new(false) });
        let coordinator = Arc::new(LeaseCoordinator::new(id, link.clone(), TIMING).expect("a valid id"));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(coordinator.clone().run(units.to_vec(), stopped));
        Replica { coordinator, link, stop, task }
    }

    fn units(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    /// Polls `done` every 20 ms for up to a minute.
    async fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Every unit open in exactly one of `replicas`' gates.
    fn each_held_once(replicas: &[&Replica], units: &[String]) -> bool {
        units.iter().all(|u| replicas.iter().filter(|r| r.coordinator.gate().is_open(u)).count() == 1)
    }

    /// Samples every gate every millisecond; counts moments where two gates were open for a unit.
    fn watch_for_two_writers(gates: Vec<WriteGate>, units: Vec<String>) -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
        let (violations, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (v, s) = (violations.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                for unit in &units {
                    if gates.iter().filter(|g| g.is_open(unit)).count() > 1 {
                        v.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        (violations, stop)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_units_one_writer_each_through_partition_and_shutdown() {
        let memory = Arc::new(Memory::default());
        let all = units(24);
        let (a, b, c) = (start(&memory, "a", &all), start(&memory, "b", &all), start(&memory, "c", &all));
        let gates = [&a, &b, &c].iter().map(|r| r.coordinator.gate().clone()).collect();
        let (violations, stop_watch) = watch_for_two_writers(gates, all.clone());
        // The first to start takes everything, then hands over as the others appear.
        let balanced = || {
            each_held_once(&[&a, &b, &c], &all)
                && [&a, &b, &c].iter().all(|r| r.coordinator.gate().held().len() <= super::super::capacity(24, 3))
        };
        assert!(eventually(balanced).await, "every unit held by one replica, within the bound");

        // Partition a: its renewals hang. It must close its gate before the others take over.
        let a_units = a.coordinator.gate().held();
        assert!(!a_units.is_empty());
        a.link.cut.store(true, Ordering::SeqCst);
        assert!(eventually(|| each_held_once(&[&b, &c], &all)).await, "b and c took over a's units");
        assert!(a.coordinator.gate().held().is_empty(), "the partitioned replica writes for nothing");
        assert_eq!(violations.load(Ordering::SeqCst), 0, "never two writers for a unit");

        // Healed, a comes back and gets a share again; still one writer at a time.
        a.link.cut.store(false, Ordering::SeqCst);
        assert!(eventually(|| !a.coordinator.gate().held().is_empty() && each_held_once(&[&a, &b, &c], &all)).await);

        // Shutdown releases at once: every lease of b is free when run returns.
        let _ = b.stop.send(true);
        b.task.await.expect("b stopped");
        let b_leases = lock(&memory.leases).values().filter(|l| l.holder.as_deref() == Some("b")).count();
        assert_eq!(b_leases, 0, "b released its leases on shutdown");
        assert!(b.coordinator.gate().held().is_empty());
        assert!(eventually(|| each_held_once(&[&a, &c], &all)).await, "a and c took over b's units");
        assert_eq!(violations.load(Ordering::SeqCst), 0, "never two writers for a unit");
        stop_watch.store(true, Ordering::SeqCst);
        for r in [a, c] {
            let _ = r.stop.send(true);
            r.task.await.expect("stopped");
        }
        assert!(lock(&memory.leases).values().all(|l| l.holder.is_none()), "everything released at the end");
    }

    #[tokio::test]
    async fn replicas_advertise_their_api_address_in_their_member_lease_while_they_hold_it() {
        let memory = Arc::new(Memory::default());
        let all = units(4);
        let start_at = |id: &str, address: Option<&str>| {
            let link = Arc::new(Link { memory: memory.clone(), cut: AtomicBool::new(false) });
            let mut coordinator = LeaseCoordinator::new(id, link.clone(), TIMING).expect("a valid id");
            if let Some(address) = address {
                coordinator = coordinator.with_address(address);
            }
            let coordinator = Arc::new(coordinator);
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(coordinator.clone().run(all.clone(), stopped));
            Replica { coordinator, link, stop, task }
        };
        let (a, b, c) =
            (start_at("a", Some("10.0.0.1:3030")), start_at("b", Some("http://b.flux:3030")), start_at("c", None));
        let annotation = |lease: &str| {
            lock(&memory.leases).get(lease).and_then(|l| l.annotations.get(API_ADDRESS_ANNOTATION).cloned())
        };
        assert!(eventually(|| a.coordinator.peers() == [("b".to_owned(), "http://b.flux:3030".to_owned())]).await);
        assert_eq!(annotation("flux-replica-a").as_deref(), Some("10.0.0.1:3030"));
        assert_eq!(annotation("flux-replica-c"), None, "c advertises nothing");
        assert_eq!(c.coordinator.address("a").as_deref(), Some("10.0.0.1:3030"));
        assert_eq!(c.coordinator.address("c"), None, "a replica does not list itself");
        assert!(eventually(|| each_held_once(&[&a, &b, &c], &all)).await);
        // The owner of each unit, as another replica sees it, has the address it advertises.
        let b_unit = b.coordinator.gate().held().into_iter().next().expect("b holds a unit");
        assert!(eventually(|| a.coordinator.owner(&b_unit).as_deref() == Some("b")).await);
        assert_eq!(a.coordinator.address("b").as_deref(), Some("http://b.flux:3030"));

        // Stopped, b releases its member lease and its address with it.
        let _ = b.stop.send(true);
        b.task.await.expect("b stopped");
        assert_eq!(annotation("flux-replica-b"), None, "a released member lease advertises nothing");
        assert!(eventually(|| a.coordinator.peers().is_empty() && a.coordinator.address("b").is_none()).await);
        for r in [a, c] {
            let _ = r.stop.send(true);
            r.task.await.expect("stopped");
        }
    }

    #[tokio::test]
    async fn a_unit_annotation_is_written_by_its_owner_alone_and_read_by_the_next_one() {
        let memory = Arc::new(Memory::default());
        let all = units(2);
        let a = start(&memory, "a", &all);
        assert!(eventually(|| all.iter().all(|u| a.coordinator.gate().is_open(u))).await);
        let key = super::super::SUSPENSION_ANNOTATION;
        a.coordinator.annotate_unit("u0", key, Some("{\"unit\":1}".into())).await.expect("the owner writes");
        assert_eq!(a.coordinator.unit_annotation("u0", key).as_deref(), Some("{\"unit\":1}"));
        let stored = lock(&memory.leases).get("flux-unit-u0").and_then(|l| l.annotations.get(key).cloned());
        assert_eq!(stored.as_deref(), Some("{\"unit\":1}"), "in the unit's lease");
        let refused = a.coordinator.annotate_unit("elsewhere", key, Some("x".into())).await;
        assert!(refused.is_err(), "not held, not written: {refused:?}");
        // A few rounds later (lists sent before the write) it is still what a wrote.
        tokio::time::sleep(TIMING.round() * 3).await;
        assert_eq!(a.coordinator.unit_annotation("u0", key).as_deref(), Some("{\"unit\":1}"));

        // a stops (releasing, the annotation stays); b takes the units and reads it.
        let _ = a.stop.send(true);
        a.task.await.expect("a stopped");
        let b = start(&memory, "b", &all);
        assert!(eventually(|| all.iter().all(|u| b.coordinator.gate().is_open(u))).await);
        assert_eq!(
            b.coordinator.unit_annotation("u0", key).as_deref(),
            Some("{\"unit\":1}"),
            "the next owner reads it"
        );
        assert_eq!(b.coordinator.unit_annotation("u1", key), None);
        b.coordinator.annotate_unit("u0", key, None).await.expect("removed by the new owner");
        assert_eq!(b.coordinator.unit_annotation("u0", key), None);
        let _ = b.stop.send(true);
        b.task.await.expect("b stopped");
    }

    #[tokio::test]
    async fn a_unit_held_by_a_live_replica_is_waited_for_and_a_gone_one_is_broken_first() {
        let memory = Arc::new(Memory::default());
        let all = units(3);
        let a = start(&memory, "a", &all);
        assert!(eventually(|| all.iter().all(|u| a.coordinator.gate().is_open(u))).await);
        assert_eq!(a.coordinator.owner("u1").as_deref(), Some("a"));
        // Another replica, "x", says it holds u1 (and is a member, for now): a stops writing u1.
        {
            let mut leases = lock(&memory.leases);
            leases.insert("flux-replica-x".to_owned(), Stored::held_by("x", 10_000));
            leases.insert("flux-unit-u1".to_owned(), Stored::held_by("x", 10_001));
        }
        assert!(eventually(|| !a.coordinator.gate().is_open("u1")).await, "a no longer writes u1");
        // x never renews: after the duration a marks it gone (its member Lease released) and
        // takes u1 back.
        assert!(eventually(|| a.coordinator.gate().is_open("u1")).await, "a took u1 back");
        let x = lock(&memory.leases).get("flux-replica-x").cloned();
        assert_eq!(x.map(|l| l.holder), Some(None), "x was marked gone before its unit was taken");
        let _ = a.stop.send(true);
        a.task.await.expect("stopped");
    }
}
