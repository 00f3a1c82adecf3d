//! High availability and horizontal scale: several replicas of one daemon share the units of one
//! configuration, one writer per unit, coordinated through leases (on Kubernetes, the
//! `coordination.k8s.io/v1` Leases of flux-k8s's `KubeLeases`; this crate knows only the
//! [`LeaseStore`] port).
//!
//! - **Membership**: each replica holds a lease of its own ([`member_lease`]); the live replicas
//!   are those whose lease is held and was seen to change within the lease duration.
//! - **Assignment**: units go to live replicas by consistent hashing with bounded loads
//!   ([`assign`]): no replica owns more than ceil(1.25 × units / replicas).
//! - **Ownership**: a replica writes for a unit only while it holds the unit's lease
//!   ([`unit_lease`], written when acquired) and its member lease is renewed, checked before
//!   every write by the [`WriteGate`] ([`GatedCluster`], [`GatedSource`]). A steady round writes
//!   only the member lease: one write per replica, however many units.
//!
//! No decision reads a wall clock: a member lease counts as gone when the observer has seen it
//! unchanged for the lease duration on its own monotonic clock (and marks it so, version-guarded,
//! before taking its units), and a replica stops writing a third of the duration earlier,
//! counted from when it *sent* its last successful renewal. So a partitioned replica, or one
//! whose clock is off, stops before anyone can take its units.

mod assign;
mod coordinator;
pub(crate) mod forward;
mod gate;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flux_core::Result;
use futures::future::BoxFuture;
use tokio::sync::watch;

pub use assign::{assign, capacity};
pub use coordinator::{LeaseCoordinator, LeaseTiming};
pub use forward::{FORWARDED_BY, FORWARDED_TO};
pub use gate::{GatedCluster, GatedSource, WriteGate, WriteTicket};

/// The annotation of a member lease giving the replica's API address (`HOST:PORT`, or an
/// `http://` or `https://` URL): where the other replicas forward writes for its units.
pub const API_ADDRESS_ANNOTATION: &str = "fluxcd.io/api-address";

/// The annotation of a unit lease holding the unit's suspensions (JSON, as the state
/// directory's `suspend-<unit>.json`), written by the owner, read by the next one.
pub const SUSPENSION_ANNOTATION: &str = "fluxcd.io/suspension";

/// The name of the lease saying replica `replica` is alive.
pub fn member_lease(replica: &str) -> String {
    format!("flux-replica-{replica}")
}

/// The name of the lease of unit `unit`: its holder alone writes for the unit.
pub fn unit_lease(unit: &str) -> String {
    format!("flux-unit-{unit}")
}

/// Checks a replica id: 1 to 200 characters of `a-z`, `0-9`, `-` and `.`, starting and ending
/// with a letter or digit (a Pod name or a host name, and part of a Lease name).
///
/// # Errors
/// [`flux_core::Error::InvalidInput`] naming the id.
pub fn check_replica_id(id: &str) -> Result<()> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if id.is_empty()
        || id.len() > 200
        || !id.chars().all(valid_char)
        || !edge(id.chars().next())
        || !edge(id.chars().last())
    {
        return Err(flux_core::Error::invalid(
            flux_core::Location::file("--ha-replica-id"),
            format!(
                "replica id {id:?}: 1-200 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// Checks an API address to advertise ([`LeaseCoordinator::with_address`]): `HOST:PORT`, or
/// an `http://` or `https://` URL without credentials, query or fragment.
///
/// # Errors
/// [`flux_core::Error::InvalidInput`] naming the address and what is wrong with it.
pub fn check_api_address(address: &str) -> Result<()> {
    forward::base_url(address).map(drop).map_err(|why| {
        flux_core::Error::invalid(
            flux_core::Location::file("--ha-advertise-address"),
            format!("API address {address:?}: {why} (HOST:PORT, or an http:// or https:// URL)"),
        )
    })
}

/// One lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Its name ([`member_lease`], [`unit_lease`]).
    pub name: String,
    /// The replica holding it; `None` when released.
    pub holder: Option<String>,
    /// Changes at every write (Kubernetes: the resourceVersion); compared, never interpreted.
    pub version: String,
    /// Its annotations (Kubernetes: `metadata.annotations`), e.g. [`API_ADDRESS_ANNOTATION`].
    pub annotations: BTreeMap<String, String>,
}

/// Annotations a write sets (`Some`) or removes (`None`); the lease's others are kept.
pub type AnnotationChanges = BTreeMap<String, Option<String>>;

/// Where leases live: the port of [`LeaseCoordinator`].
///
/// # Contract
///
/// - [`LeaseStore::list`] returns every lease of this daemon's group (names starting with
///   `flux-replica-` or `flux-unit-`), as of one consistent read made after the call started
///   (not from a cache): a write that succeeded before the call is in the answer.
/// - [`LeaseStore::write`] writes `holder` (`None`: released) and `annotations` (set or removed;
///   the lease's other annotations are kept) into lease `name` only if it is still as
///   `previous` says: with `previous` `None` it creates the lease and fails with
///   [`flux_core::Error::Conflict`] if it exists; otherwise it fails with `Conflict` unless the
///   lease's version is still `previous.version`. Two writes from the same `previous` never
///   both succeed. It returns the lease as written, with a new version. `duration` is recorded
///   for people (Kubernetes: `leaseDurationSeconds`), as may be the wall-clock time; no
///   decision of the coordinator reads either back.
/// - Every call is bounded in time: a request that cannot complete fails (then it may or may
///   not have been written; the next `list` tells).
#[async_trait]
pub trait LeaseStore: Send + Sync + fmt::Debug {
    /// Every lease of the group.
    async fn list(&self) -> Result<Vec<LeaseRecord>>;

    /// Writes lease `name` if it is still as `previous` says.
    async fn write(
        &self,
        name: &str,
        previous: Option<&LeaseRecord>,
        holder: Option<&str>,
        annotations: &AnnotationChanges,
        duration: Duration,
    ) -> Result<LeaseRecord>;
}

/// Which replica writes for which unit, as the daemon consults it.
///
/// # Contract
///
/// - [`Ownership::gate`] is open for a unit only while this replica holds the unit's lease and
///   no other replica can have taken it, by the local monotonic clock, whatever the wall clocks
///   say; a write starts only through it ([`WriteGate::guard`]) and is cut off when it closes.
/// - [`Ownership::owner`] is the holder of the unit's lease as last seen (another replica, or
///   this one only while its gate is open for the unit; `None` when free or not seen yet): for
///   status and error messages, not for writing.
/// - [`Ownership::address`] and [`Ownership::peers`] say where the other replicas' APIs are, as
///   they advertise them (for forwarding writes and finding jobs; never for deciding who
///   writes).
/// - [`Ownership::annotate_unit`] and [`Ownership::unit_annotation`] keep state that follows the
///   unit from owner to owner (its suspension), written only by the owner.
/// - [`Ownership::run`] takes part (membership, assignment, acquiring, renewing and handing over
///   units) for `units` until `shutdown` is true, then closes the gate, releases every lease
///   this replica holds at once (after the writes in flight) and returns.
pub trait Ownership: Send + Sync + fmt::Debug {
    /// This replica's id.
    fn replica(&self) -> &str;

    /// The write gate.
    fn gate(&self) -> &WriteGate;

    /// The holder of `unit`'s lease as last seen.
    fn owner(&self, unit: &str) -> Option<String>;

    /// The API address replica `replica` advertises (its member lease's
    /// [`API_ADDRESS_ANNOTATION`], as last listed); `None` when it advertises none or is not a
    /// member.
    fn address(&self, replica: &str) -> Option<String> {
        let _ = replica;
        None
    }

    /// The other members that advertise an API address, with it, as last listed.
    fn peers(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Annotation `key` of `unit`'s lease: as this replica last wrote it while it holds the
    /// unit, else as last listed; `None` when absent (or when nothing is shared, the default).
    fn unit_annotation(&self, unit: &str, key: &str) -> Option<String> {
        let _ = (unit, key);
        None
    }

    /// Sets (`Some`) or removes annotation `key` of `unit`'s lease, for the next owner to read:
    /// a write for the unit, made only while the gate is open for it (the default keeps nothing
    /// shared and succeeds).
    ///
    /// # Errors
    /// As [`WriteGate::guard`]; [`flux_core::Error::Conflict`] when the lease changed hands or
    /// was written meanwhile (nothing written); the store's errors.
    fn annotate_unit<'a>(&'a self, unit: &'a str, key: &'a str, value: Option<String>) -> BoxFuture<'a, Result<()>> {
        let _ = (unit, key, value);
        Box::pin(async { Ok(()) })
    }

    /// Takes part until shutdown, then releases.
    fn run(self: Arc<Self>, units: Vec<String>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()>;
}

impl crate::service::UnitService {
    /// The replica writing for this unit as last seen, when the unit is shared with other
    /// replicas ([`crate::SyncUnit::with_ownership`]); `None` otherwise, or while it is free.
    pub fn owner(&self) -> Option<String> {
        self.unit().ownership().and_then(|o| o.owner(self.name()))
    }

    /// Whether this replica writes for the unit now (always, without high availability).
    pub fn writes_here(&self) -> bool {
        self.unit().ownership().is_none_or(|o| o.gate().is_open(self.name()))
    }

    /// `Ok` when this replica writes for the unit, else why not, naming the owner.
    ///
    /// # Errors
    /// [`flux_core::Error::Conflict`] naming this replica and the owner (or saying the unit is
    /// between owners).
    pub(crate) fn check_writes_here(&self) -> Result<()> {
        let Some(ownership) = self.unit().ownership() else { return Ok(()) };
        if ownership.gate().is_open(self.name()) {
            return Ok(());
        }
        let me = ownership.replica();
        let unit = self.name();
        Err(flux_core::Error::conflict(match ownership.owner(unit).filter(|o| o != me) {
            Some(owner) => format!(
                "unit {unit} is written by replica {owner} (high availability), not by this replica {me}: send writes for it to {owner}"
            ),
            None => format!(
                "unit {unit} has no owner right now (high availability: it is being handed over); this replica {me} does not write for it, try again shortly"
            ),
        }))
    }
}

/// Runs the ownership the daemon's units share (if they do) until shutdown, and wakes the sync
/// of every unit this replica acquires, so a unit taken over is synced at once.
pub(crate) async fn run(units: Vec<Arc<crate::service::UnitService>>, shutdown: watch::Receiver<bool>) {
    let Some(ownership) = units.iter().find_map(|u| u.unit().ownership().cloned()) else { return };
    let names: Vec<String> =
        units.iter().filter(|u| u.unit().ownership().is_some()).map(|u| u.name().to_owned()).collect();
    let gate = ownership.gate().clone();
    let mut changes = gate.subscribe();
    let mut participating = ownership.run(names, shutdown.clone());
    let mut held: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            () = &mut participating => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        let now: std::collections::BTreeSet<String> = gate.held().into_iter().collect();
        for unit in units.iter().filter(|u| now.contains(u.name()) && !held.contains(u.name())) {
            unit.adopt_shared_suspensions();
            unit.triggers.sync.notify_one();
        }
        held = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_pod_or_host_names() {
        for good in ["fluxd-7d9f8-abcde", "node1.example.com", "r0"] {
            assert!(check_replica_id(good).is_ok(), "{good}");
        }
        for bad in ["", "Fluxd", "-a", "a-", "a_b", &"a".repeat(201)] {
            let e = check_replica_id(bad).expect_err(bad);
            assert!(e.to_string().contains("--ha-replica-id"), "{e}");
        }
        assert_eq!(member_lease("r0"), "flux-replica-r0");
        assert_eq!(unit_lease("shop"), "flux-unit-shop");
    }
}
