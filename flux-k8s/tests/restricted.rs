//! A least-privilege identity: RBAC lets it work in two namespaces only. It syncs and prunes
//! there, never sees nor touches the rest.

mod common;

use common::*;
use flux_core::{ApplyOutcome, Cluster, DeleteOutcome, ObjectRef, SyncIdentity, WriteOptions};
use flux_k8s::ClusterOptions;
use flux_testenv::KubeApiServer;
use flux_testenv::kube::{ADMIN, RESTRICTED};
use serde_json::json;

fn role_binding(ns: &str) -> [flux_core::KubeObject; 2] {
    [
        object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "flux", "namespace": ns},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})),
        object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "flux", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "flux"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": RESTRICTED}]})),
    ]
}

#[test]
fn a_restricted_identity_syncs_and_prunes_only_its_namespaces() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let admin = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let mut setup = vec![namespace("team-a"), namespace("team-b"), namespace("team-c")];
        setup.extend(role_binding("team-a"));
        setup.extend(role_binding("team-b"));
        apply_ok(&admin, &setup).await;

        let identity = SyncIdentity::new("teams").expect("valid identity");
        // The same identity's object where the restricted handle may not look: not its to prune.
        let elsewhere = owned(config_map("team-c", "outside", "x"), &identity, "o");
        apply_ok(&admin, std::slice::from_ref(&elsewhere)).await;

        let restricted =
            cluster(&server, RESTRICTED, ClusterOptions::default().restricted_to(["team-a", "team-b"])).await;
        let keep = owned(deployment("team-a", "web", "nginx:1.25"), &identity, "w");
        let prune = owned(config_map("team-b", "old", "1"), &identity, "o1");
        let settings = owned(config_map("team-b", "settings", "1"), &identity, "s1");
        let forbidden = owned(config_map("team-c", "nope", "1"), &identity, "n");
        let results = restricted
            .apply(&[keep.clone(), prune.clone(), settings.clone(), forbidden.clone()], WriteOptions::default())
            .await
            .expect("apply");
        assert_eq!(outcomes(&results[..3]), vec![ApplyOutcome::Created; 3]);
        assert!(
            matches!(&results[3].outcome, ApplyOutcome::Failed { reason } if reason.contains("forbidden")),
            "{:?}",
            results[3]
        );

        let managed = restricted.managed(&identity).await.expect("managed works without cluster-wide rights");
        let ids: Vec<_> = managed.iter().map(|m| m.reference.id.to_string()).collect();
        assert_eq!(ids, ["team-a:deployment/web", "team-b:configmap/old", "team-b:configmap/settings"]);

        // Prune what git no longer holds: only in its namespaces.
        let deleted = restricted.delete(&[ObjectRef::of(&prune)], WriteOptions::default()).await.expect("delete");
        assert_eq!(deleted[0].outcome, DeleteOutcome::Deleted);
        let outside = restricted.delete(&[ObjectRef::of(&elsewhere)], WriteOptions::default()).await.expect("delete");
        assert!(matches!(outside[0].outcome, DeleteOutcome::Failed { .. }), "{outside:?}");
        let after: Vec<_> =
            restricted.managed(&identity).await.expect("managed").iter().map(|m| m.reference.id.to_string()).collect();
        assert_eq!(after, ["team-a:deployment/web", "team-b:configmap/settings"]);
        assert!(admin.get(&ObjectRef::of(&elsewhere)).await.expect("get").is_some(), "team-c untouched");

        let workloads = restricted.workloads(None).await.expect("workloads in its namespaces");
        assert_eq!(workloads.iter().map(|w| w.id.to_string()).collect::<Vec<_>>(), ["team-a:deployment/web"]);
    });
}

#[test]
fn a_sibling_handle_shares_the_client_but_keeps_its_own_options() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let admin = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let mut setup = vec![namespace("team-a"), namespace("team-b")];
        setup.push(deployment("team-a", "web", "nginx:1.25"));
        setup.push(deployment("team-b", "api", "nginx:1.25"));
        apply_ok(&admin, &setup).await;

        let team_a = admin.sibling(ClusterOptions::default().restricted_to(["team-a"]));
        let ids = |w: Vec<flux_core::Workload>| w.iter().map(|w| w.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(team_a.workloads(None).await.expect("workloads")), ["team-a:deployment/web"]);
        assert_eq!(
            ids(admin.workloads(None).await.expect("workloads")),
            ["team-a:deployment/web", "team-b:deployment/api"],
            "the first handle keeps its own (unrestricted) options"
        );

        // The sibling applies and lists its unit's objects through the shared client.
        let identity = SyncIdentity::new("team-a").expect("valid identity");
        let mine = owned(config_map("team-a", "settings", "1"), &identity, "s1");
        let results = team_a.apply(std::slice::from_ref(&mine), WriteOptions::default()).await.expect("apply");
        assert_eq!(outcomes(&results), vec![ApplyOutcome::Created]);
        let managed = team_a.managed(&identity).await.expect("managed");
        assert_eq!(
            managed.iter().map(|m| m.reference.id.to_string()).collect::<Vec<_>>(),
            ["team-a:configmap/settings"]
        );
        assert!(admin.get(&ObjectRef::of(&mine)).await.expect("get").is_some(), "one API server behind both");
    });
}
