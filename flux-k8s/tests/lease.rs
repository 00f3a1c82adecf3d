//! KubeLeases against a real kube-apiserver: creates, resourceVersion-guarded changes (a stale
//! view loses with a Conflict), releases, annotations written with them, and lists of one group
//! only; and a user without RBAC for Leases is refused.

mod common;

use std::time::Duration;

use common::*;
use flux_k8s::{ClusterOptions, KubeLeases};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::{ADMIN, RESTRICTED};

const DURATION: Duration = Duration::from_secs(15);

#[test]
fn lease_writes_are_guarded_by_the_version_seen() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let leases = KubeLeases::new(&cluster, "default", "fluxd");
        let other_group = KubeLeases::new(&cluster, "default", "other");

        let created = leases.write("flux-unit-shop", None, Some("r1"), DURATION).await.expect("created");
        assert_eq!(created.holder.as_deref(), Some("r1"));
        let again = leases.write("flux-unit-shop", None, Some("r2"), DURATION).await;
        assert!(matches!(again, Err(flux_core::Error::Conflict { .. })), "a second create loses: {again:?}");

        // r1 renews from what it saw; r2, from the same stale view, loses.
        let renewed = leases.write("flux-unit-shop", Some(&created), Some("r1"), DURATION).await.expect("renewed");
        assert_ne!(renewed.version, created.version, "every write makes a new version");
        let stale = leases.write("flux-unit-shop", Some(&created), Some("r2"), DURATION).await;
        assert!(matches!(stale, Err(flux_core::Error::Conflict { .. })), "a stale view loses: {stale:?}");

        let released = leases.write("flux-unit-shop", Some(&renewed), None, DURATION).await.expect("released");
        assert_eq!(released.holder, None);
        let taken = leases.write("flux-unit-shop", Some(&released), Some("r2"), DURATION).await.expect("taken");
        assert_eq!(taken.holder.as_deref(), Some("r2"));

        other_group.write("flux-unit-blog", None, Some("x"), DURATION).await.expect("another group's Lease");
        leases.write("flux-replica-r2", None, Some("r2"), DURATION).await.expect("a member Lease");
        let listed = leases.list().await.expect("listed");
        let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["flux-replica-r2", "flux-unit-shop"], "only this group's Leases, sorted");
        assert_eq!(listed[1], taken, "the list shows the last write");

        // Annotations ride along in the same guarded write; those not named are kept, `None`
        // removes one.
        let address = |a: &str| [("fluxcd.io/api-address".to_owned(), Some(a.to_owned()))].into();
        let member = listed[0].clone();
        let advertised = leases
            .write_annotated("flux-replica-r2", Some(&member), Some("r2"), &address("10.0.0.2:3030"), DURATION)
            .await
            .expect("annotated");
        assert_eq!(advertised.annotations.get("fluxcd.io/api-address").map(String::as_str), Some("10.0.0.2:3030"));
        let stale =
            leases.write_annotated("flux-replica-r2", Some(&member), Some("r2"), &address("x:1"), DURATION).await;
        assert!(matches!(stale, Err(flux_core::Error::Conflict { .. })), "annotations are version-guarded too");
        let renewed = leases.write("flux-replica-r2", Some(&advertised), Some("r2"), DURATION).await.expect("renewed");
        assert_eq!(renewed.annotations, advertised.annotations, "a write naming no annotation keeps them");
        let removed: std::collections::BTreeMap<String, Option<String>> =
            [("fluxcd.io/api-address".to_owned(), None)].into();
        let released = leases
            .write_annotated("flux-replica-r2", Some(&renewed), None, &removed, DURATION)
            .await
            .expect("released");
        assert!(!released.annotations.contains_key("fluxcd.io/api-address"), "removed: {:?}", released.annotations);
        let created = leases
            .write_annotated("flux-replica-r3", None, Some("r3"), &address("10.0.0.3:3030"), DURATION)
            .await
            .expect("created with an annotation");
        let listed = leases.list().await.expect("listed");
        assert_eq!(listed.iter().find(|l| l.name == "flux-replica-r3"), Some(&created), "listed with its annotations");

        let restricted = cluster_as(&server, RESTRICTED).await;
        let refused = KubeLeases::new(&restricted, "default", "fluxd").list().await;
        assert!(matches!(refused, Err(flux_core::Error::Unauthorized { .. })), "no RBAC, no Leases: {refused:?}");
    });
}

async fn cluster_as(server: &KubeApiServer, user: &str) -> flux_k8s::KubeCluster {
    cluster(server, user, ClusterOptions::default()).await
}
