//! The health wait after a sync (`wait: true`): which objects it waits for, and waiting.

use std::collections::BTreeSet;
use std::time::Duration;

use flux_core::health::{HealthReport, wait_until_healthy};
use flux_core::sync::ignore_of;
use flux_core::{ObjectRef, ResourceId, Result, Revision};

use crate::unit::{Engines, SyncUnit};

/// Waits until every object of `revision` the unit applies (when it waits,
/// [`SyncUnit::wait`]) and every one of its [health checks](SyncUnit::health_checks) is healthy,
/// at most `timeout`.
///
/// The unit's objects are those of the revision (a plan of it: the last usable revision's objects are
/// cached, so nothing is read or generated again) that the unit manages, as listed with their
/// API versions and proven by their marks; objects left in the cluster but no longer in git, and
/// those ignored with `fluxcd.io/ignore`, are not waited for.
///
/// # Errors
/// When the cluster cannot list the unit's objects.
pub async fn wait_for_health(
    unit: &SyncUnit,
    engines: &Engines,
    revision: &Revision,
    timeout: Duration,
) -> Result<HealthReport> {
    let mut refs: Vec<ObjectRef> = Vec::new();
    if unit.wait().is_some() {
        refs = applied(unit, engines, revision).await?;
    }
    for check in unit.health_checks() {
        if !refs.iter().any(|r| r.id == check.id && r.api_version == check.api_version) {
            refs.push(check.clone());
        }
    }
    Ok(wait_until_healthy(unit.cluster().as_ref(), &refs, timeout).await)
}

/// The objects of `revision` the unit manages (see [`wait_for_health`]).
async fn applied(unit: &SyncUnit, engines: &Engines, revision: &Revision) -> Result<Vec<ObjectRef>> {
    let plan = engines.sync.plan(revision).await;
    let mut desired: BTreeSet<ResourceId> = plan.unchanged.iter().cloned().collect();
    let mut refs: Vec<ObjectRef> = Vec::new();
    for planned in &plan.apply {
        desired.insert(planned.object.id().clone());
    }
    let identity = &unit.sync_config().identity;
    let managed = unit.cluster().managed(identity).await?;
    let mut listed = BTreeSet::new();
    for m in managed {
        let proven = m.mark() == Some(flux_core::cluster::gc_mark(identity.as_str(), &m.reference.id).as_str());
        let ignored = ignore_of(|k| m.annotations.get(k).cloned()) == Some(flux_core::policy::Ignore::All);
        if proven && !ignored && desired.contains(&m.reference.id) {
            listed.insert(m.reference.id.clone());
            refs.push(m.reference);
        }
    }
    // Objects still to apply (their apply failed) are waited for too: they are not there.
    refs.extend(plan.apply.iter().map(|p| ObjectRef::of(&p.object)).filter(|r| !listed.contains(&r.id)));
    Ok(refs)
}
