//! From flux-core's types to flux-api's wire types and back. The wire types have the same JSON
//! shape as the engines' (flux-api's contract), so the conversion goes through that JSON; a
//! mismatch is an internal error, and the unit tests below pin the shapes.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` as the type of the other side.
pub(crate) fn convert<T: Serialize, U: DeserializeOwned>(value: &T) -> flux_core::Result<U> {
    let json = serde_json::to_value(value)
        .map_err(|e| flux_core::Error::other(format!("cannot write {} as JSON: {e}", std::any::type_name::<T>())))?;
    serde_json::from_value(json).map_err(|e| {
        flux_core::Error::invalid(
            flux_core::Location::file("request"),
            format!("{} does not read as {}: {e}", std::any::type_name::<T>(), std::any::type_name::<U>()),
        )
    })
}

#[cfg(test)]
mod tests {
    use flux_core::sync::{GarbageCollection, SyncError};
    use flux_core::{Error, Location};

    use super::convert;
    use crate::results::{JobResult, JobView, SyncSummary};

    #[test]
    fn errors_reach_the_wire_with_their_kind_and_location() {
        let error = Error::invalid(Location::line("deploy/app.yaml", 3), "invalid YAML");
        let summary = SyncSummary {
            revision: "1a2b3c4".into(),
            success: false,
            applied: Vec::new(),
            unchanged: 0,
            pruned: Vec::new(),
            garbage_collection: GarbageCollection::On,
            health: None,
            held: None,
            kept: vec![flux_core::sync::Kept {
                reference: flux_core::ObjectRef {
                    api_version: "v1".into(),
                    id: "<cluster>:namespace/old".parse().expect("id"),
                },
                reason: flux_core::sync::KeepReason::ProtectedKind,
            }],
            prune_held: Some(Box::new(flux_core::sync::PruneHold {
                pruning: 12,
                managed: 14,
                max_percent: 50,
                examples: vec!["demo:configmap/c-00".parse().expect("id")],
            })),
            errors: vec![serde_json::from_value(serde_json::json!({"message": "old"})).expect("an old error reads")],
        };
        let mut summary = summary;
        summary.errors.push(SyncError { id: None, error });
        let view = JobView::Succeeded { result: Box::new(JobResult::Sync(Box::new(summary))) };
        let wire: flux_api::v1::JobView = convert(&view).expect("converts");
        let flux_api::v1::JobView::Succeeded { result } = wire else { panic!("not succeeded") };
        let flux_api::v1::JobResult::Sync(sync) = *result else { panic!("not a sync") };
        assert_eq!(sync.errors[0].message, "old");
        assert_eq!(sync.errors[1].message, "deploy/app.yaml:3: invalid YAML");
        let detail = sync.errors[1].error.as_ref().expect("the kind is on the wire");
        assert_eq!(detail.kind, "invalid_input");
        assert_eq!(detail.location.as_ref().map(|l| (l.file.as_str(), l.line)), Some(("deploy/app.yaml", Some(3))));
    }

    #[test]
    fn health_holds_and_suspensions_reach_the_wire() {
        use flux_core::health::{Health, HealthReport, ObjectHealth, WaitOutcome};
        let web: flux_core::ResourceId = "shop:deployment/web".parse().expect("id");
        let report = HealthReport {
            outcome: WaitOutcome::TimedOut { id: web.clone(), reason: "available: 0/1".into() },
            objects: vec![ObjectHealth {
                id: web.clone(),
                health: Health::InProgress { reason: "available: 0/1".into() },
            }],
            waited_ms: 300_000,
        };
        let summary = SyncSummary {
            revision: "1a2b3c4".into(),
            success: true,
            applied: Vec::new(),
            unchanged: 1,
            pruned: Vec::new(),
            garbage_collection: GarbageCollection::On,
            errors: Vec::new(),
            health: None,
            held: Some(crate::results::Held { by: "db".into(), reason: "db has not synced yet".into() }),
            kept: Vec::new(),
            prune_held: None,
        }
        .with_health(report);
        assert!(!summary.success, "not healthy: failed");
        let since = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let suspension = crate::results::Suspension { user: Some("ana".into()), message: None, since };
        let status = crate::results::Status {
            last_sync: Some(summary),
            suspended: Some(suspension.clone()),
            suspended_workloads: vec![crate::results::WorkloadSuspension { workload: web, suspension }],
            ..Default::default()
        };
        let wire: flux_api::v1::Status = convert(&status).expect("converts");
        let last = wire.last_sync.expect("last sync");
        let health = last.health.expect("health on the wire");
        assert!(
            matches!(&health.outcome, flux_api::v1::WaitOutcome::TimedOut { id, reason } if id.to_string() == "shop:deployment/web" && reason == "available: 0/1")
        );
        assert_eq!(health.objects[0].health, flux_api::v1::Health::InProgress { reason: "available: 0/1".into() });
        assert_eq!(last.held.map(|h| h.by).as_deref(), Some("db"));
        assert!(last.errors.iter().any(|e| e.message.contains("timed out after 300.0s")), "{:?}", last.errors);
        let suspended = wire.suspended.expect("suspended");
        assert_eq!(suspended.user.as_deref(), Some("ana"));
        assert!(suspended.since.starts_with("2027-01-15"), "RFC 3339: {}", suspended.since);
        assert_eq!(wire.suspended_workloads.len(), 1);
    }
}
