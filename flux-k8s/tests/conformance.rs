//! flux-core's Cluster conformance suite against a real kube-apiserver, and the write budget of a
//! no-op sync counted from the server's audit log.

mod common;

use common::*;
use flux_core::{Cluster, SyncIdentity};
use flux_k8s::ClusterOptions;
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;

#[test]
fn keeps_the_cluster_contract_against_a_real_api_server() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        flux_core::testkit::cluster::run(&cluster).await;
        // The suite runs again on the same server: the CRD it left and fresh names must not matter.
        flux_core::testkit::cluster::run(&cluster).await;
    });
}

#[test]
fn a_no_op_sync_makes_zero_writes() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let identity = SyncIdentity::new("noop").expect("valid identity");
        let mut objects = vec![owned(namespace("quiet"), &identity, "n")];
        for i in 0..20 {
            objects.push(owned(config_map("quiet", &format!("c{i}"), "v"), &identity, &format!("c{i}")));
            objects.push(owned(deployment("quiet", &format!("d{i}"), "nginx:1.25"), &identity, &format!("d{i}")));
        }
        apply_ok(&cluster, &objects).await;
        let before = server.write_requests(ADMIN);
        assert!(before >= objects.len(), "the audit log counts our applies ({before})");

        // What a sync does when nothing changed: list what it manages, find every checksum
        // recorded and nothing drifted, and so apply nothing.
        for fresh in [false, true] {
            let handle =
                if fresh { common::cluster(&server, ADMIN, ClusterOptions::default()).await } else { cluster.clone() };
            let managed = handle.managed(&identity).await.expect("managed");
            assert_eq!(managed.len(), objects.len());
            assert!(managed.iter().all(|m| !m.drifted), "nothing drifted (fresh handle: {fresh}): {managed:?}");
            for object in &objects {
                let listed = managed.iter().find(|m| &m.reference.id == object.id()).expect("listed");
                assert_eq!(listed.checksum.as_deref(), object.annotation(flux_core::cluster::CHECKSUM_ANNOTATION));
            }
        }
        assert_eq!(server.write_requests(ADMIN), before, "listing managed objects writes nothing");

        // The request budget of `managed`: one label-selected metadata list per kind the unit's
        // inventory records (Namespace, ConfigMap, Deployment), and one GET of the record.
        let (lists, gets) = (server.requests(ADMIN, &["list"]), server.requests(ADMIN, &["get"]));
        cluster.managed(&identity).await.expect("managed");
        let budget = server.requests(ADMIN, &["list"]) - lists;
        eprintln!("managed() made {budget} list requests");
        assert_eq!(budget, 3, "one list per kind the unit applied");
        assert_eq!(server.requests(ADMIN, &["get"]) - gets, 1, "one GET of the record");
    });
}
