//! The JSON of v1, pinned: what fluxd answered before the wire types had a crate of their own.

use flux_api::v1::{ContainerOutcome, JobResult, JobView, PolicyChange, ReleaseSpec, UnitQuery, WorkloadOutcome};

#[test]
fn a_finished_release_reads_as_before() {
    let json = r#"{"status":"succeeded","result":{"kind":"release","revision":"0123456789abcdef",
        "dry_run":false,"workloads":[{"workload":"default:deployment/web","status":"updated",
        "containers":[{"container":"web","current":"127.0.0.1:5000/web:1.0","outcome":"updated",
        "to":"127.0.0.1:5000/web:1.1"}]},{"workload":"default:deployment/db","status":"skipped",
        "reason":"locked","containers":[]}]}}"#;
    let JobView::Succeeded { result } = serde_json::from_str::<JobView>(json).expect("reads") else {
        panic!("not succeeded")
    };
    let JobResult::Release(release) = *result else { panic!("not a release") };
    assert_eq!(release.revision.as_ref().map(|r| r.short()), Some("0123456"));
    assert_eq!(release.updated().count(), 1);
    let ContainerOutcome::Updated { to } = &release.workloads[0].containers[0].outcome else { panic!("not updated") };
    assert_eq!((to.domain(), to.path(), to.tag()), (Some("127.0.0.1:5000"), "web", Some("1.1")));
    assert_eq!(release.workloads[1].outcome, WorkloadOutcome::Skipped { reason: "locked".into() });
    let back =
        serde_json::to_value(JobView::Succeeded { result: Box::new(JobResult::Release(release)) }).expect("writes");
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).expect("json"));
}

#[test]
fn requests_write_what_the_daemon_reads() {
    let spec: ReleaseSpec = serde_json::from_str(
        r#"{"workloads":{"only":["default:deployment/web"]},"image":"all_latest","cause":{"user":"ann"}}"#,
    )
    .expect("reads");
    assert_eq!(spec.cause.user.as_deref(), Some("ann"));
    assert!(!spec.dry_run && !spec.force && spec.excludes.is_empty());
    let lock = serde_json::to_value(PolicyChange::Lock(Default::default())).expect("writes");
    assert_eq!(lock, serde_json::json!({"change": "lock"}));
    let tag = serde_json::to_value(PolicyChange::SetTagFilter {
        container: "web".into(),
        filter: flux_api::v1::TagFilter("semver:~1".into()),
    })
    .expect("writes");
    assert_eq!(tag, serde_json::json!({"change": "set_tag_filter", "container": "web", "filter": "semver:~1"}));
}

#[test]
fn the_unit_selector_is_an_optional_query_parameter() {
    assert_eq!(flux_api::v1::UNIT_PARAM, "unit");
    let none: UnitQuery = serde_json::from_str("{}").expect("reads");
    assert_eq!(none.unit, None);
    let shop: UnitQuery = serde_json::from_str(r#"{"unit":"shop"}"#).expect("reads");
    assert_eq!(shop.unit.as_deref(), Some("shop"));
}
