//! The units' inventories against a real kube-apiserver (v1.20): `managed` lists only the kinds a
//! unit applied, counted from the audit log; a kind that left git is still listed (and its
//! objects collected) by a restarted process, until none of its objects remains; without a
//! record every kind is listed and the record is rebuilt from that listing.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine};
use flux_core::{Author, Cluster, CommitRequest, DeleteOutcome, FileChange, ObjectRef, Source, SyncIdentity};
use flux_k8s::{ClusterOptions, KINDS_ANNOTATION, KubeCluster, LEGACY_ANNOTATION, inventory_name};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

fn engine(source: &MemorySource, cluster: &KubeCluster, identity: &str) -> SyncEngine {
    let mut config = SyncConfig::new(SyncIdentity::new(identity).expect("valid identity"), ["deploy"]);
    config.garbage_collection = GarbageCollection::On;
    SyncEngine::new(Arc::new(source.clone()), Arc::new(cluster.clone()), Arc::new(ManifestGenerator::default()), config)
}

/// The recorded kinds of `identity`, as the annotation says.
async fn recorded(cluster: &KubeCluster, identity: &str) -> Option<String> {
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client().clone(), "default");
    let name = inventory_name(&SyncIdentity::new(identity).expect("valid identity"));
    let map = maps.get_opt(&name).await.expect("get the inventory")?;
    map.metadata.annotations.and_then(|a| a.get(KINDS_ANNOTATION).cloned())
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: inv\n";
const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: inv\ndata:\n  a: '1'\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: inv\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n";

#[test]
fn a_restarted_process_lists_only_the_units_kinds_and_still_collects_a_kind_that_left_git() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let source = MemorySource::with_files([
            ("deploy/namespace.yaml", NAMESPACE),
            ("deploy/settings.yaml", SETTINGS),
            ("deploy/service.yaml", SERVICE),
        ])
        .expect("a repository");
        let first = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let report = engine(&source, &first, "inv").sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(recorded(&first, "inv").await.as_deref(), Some("ConfigMap,Namespace,Service"));

        // A restart: a new handle lists the three recorded kinds, plus one GET of the record.
        let second = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let identity = SyncIdentity::new("inv").expect("valid identity");
        second.managed(&identity).await.expect("warm the view of the API"); // discovery
        let (lists, gets) = (server.requests(ADMIN, &["list"]), server.requests(ADMIN, &["get"]));
        let managed = second.managed(&identity).await.expect("managed");
        assert_eq!(managed.len(), 3, "{managed:?}");
        assert_eq!(server.requests(ADMIN, &["list"]) - lists, 3, "one list per recorded kind");
        assert_eq!(server.requests(ADMIN, &["get"]) - gets, 1, "one GET of the record");

        // The Service leaves git; a restarted process still finds and prunes it.
        let base = source.refresh().await.expect("head");
        let request = CommitRequest {
            base,
            changes: vec![FileChange::delete("deploy/service.yaml")],
            author: Author::default(),
            message: "no service".into(),
        };
        source.commit(&request).await.expect("commit");
        let third = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let pruned = engine(&source, &third, "inv").sync_head().await.expect("sync");
        assert!(pruned.is_success(), "{:?}", pruned.errors);
        let gone: Vec<_> = pruned.pruned.iter().map(|r| (r.id.to_string(), r.outcome.clone())).collect();
        assert_eq!(gone, [("inv:service/web".to_owned(), DeleteOutcome::Deleted)], "the Service is collected");
        assert_eq!(
            recorded(&third, "inv").await.as_deref(),
            Some("ConfigMap,Namespace,Service"),
            "kept while its objects may remain"
        );

        // Once a listing found none left, the next apply drops the kind from the record.
        let unchanged = engine(&source, &third, "inv").sync_head().await.expect("sync");
        assert!(unchanged.is_success() && unchanged.applied.is_empty(), "{unchanged:?}");
        let base = source.refresh().await.expect("head");
        let request = CommitRequest {
            base,
            changes: vec![FileChange::write("deploy/settings.yaml", SETTINGS.replace("'1'", "'2'"))],
            author: Author::default(),
            message: "change".into(),
        };
        source.commit(&request).await.expect("commit");
        let changed = engine(&source, &third, "inv").sync_head().await.expect("sync");
        assert!(changed.is_success(), "{:?}", changed.errors);
        assert_eq!(recorded(&third, "inv").await.as_deref(), Some("ConfigMap,Namespace"));
    });
}

#[test]
fn without_a_record_every_kind_is_listed_and_the_record_is_rebuilt_from_that_listing() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let identity = SyncIdentity::new("rebuilt").expect("valid identity");
        let handle = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let objects = [
            owned(namespace("rebuilt"), &identity, "n"),
            owned(config_map("rebuilt", "c", "v"), &identity, "c"),
            owned(deployment("rebuilt", "d", "nginx:1.25"), &identity, "d"),
        ];
        apply_ok(&handle, &objects).await;
        assert_eq!(recorded(&handle, "rebuilt").await.as_deref(), Some("ConfigMap,Deployment.apps,Namespace"));

        // The record is deleted (say by hand): a new handle lists every kind and finds all.
        let maps: Api<ConfigMap> = Api::namespaced(handle.client().clone(), "default");
        maps.delete(&inventory_name(&identity), &Default::default()).await.expect("delete the record");
        let fresh = cluster(&server, ADMIN, ClusterOptions::default()).await;
        fresh.managed(&identity).await.expect("warm the view of the API");
        let lists = server.requests(ADMIN, &["list"]);
        let managed = fresh.managed(&identity).await.expect("managed");
        let listed = server.requests(ADMIN, &["list"]) - lists;
        assert!(listed >= 30, "every kind is listed without a record ({listed})");
        assert_eq!(managed.len(), 3, "{managed:?}");
        assert_eq!(recorded(&fresh, "rebuilt").await, None, "listing writes nothing");

        // The next apply, of one kind only, records every kind that listing found.
        apply_ok(&fresh, &[owned(config_map("rebuilt", "c", "w"), &identity, "c2")]).await;
        assert_eq!(recorded(&fresh, "rebuilt").await.as_deref(), Some("ConfigMap,Deployment.apps,Namespace"));

        // Off, no record is read or written and every kind is listed.
        let off = cluster(&server, ADMIN, ClusterOptions { inventory: false, ..ClusterOptions::default() }).await;
        let other = SyncIdentity::new("unrecorded").expect("valid identity");
        apply_ok(&off, &[owned(config_map("rebuilt", "u", "v"), &other, "u")]).await;
        assert_eq!(recorded(&off, "unrecorded").await, None);
        let found = off.managed(&other).await.expect("managed");
        assert_eq!(
            found.iter().map(|m| m.reference.clone()).collect::<Vec<_>>(),
            [ObjectRef { api_version: "v1".into(), id: "rebuilt:configmap/u".parse().expect("valid id") }]
        );
    });
}

#[test]
fn once_no_flux_v1_object_is_left_a_migrating_unit_stops_listing_every_kind() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let identity = SyncIdentity::new("migrating").expect("valid identity");
        let handle = cluster(&server, ADMIN, ClusterOptions::default()).await;
        apply_ok(&handle, &[namespace("legacy")]).await;
        let mut v1 = config_map("legacy", "from-v1", "v");
        v1.set_label(flux_core::cluster::GC_MARK_LABEL, &flux_core::cluster::gc_mark("v1-set", v1.id()));
        apply_ok(&handle, std::slice::from_ref(&v1)).await;

        let found = handle.legacy_marked(&identity).await.expect("legacy_marked");
        assert_eq!(found.iter().map(|m| m.reference.id.to_string()).collect::<Vec<_>>(), ["legacy:configmap/from-v1"]);
        let marks = |map: Option<ConfigMap>| map.and_then(|m| m.metadata.annotations?.get(LEGACY_ANNOTATION).cloned());
        let maps: Api<ConfigMap> = Api::namespaced(handle.client().clone(), "default");
        let name = inventory_name(&identity);
        assert_eq!(marks(maps.get_opt(&name).await.expect("get")), None, "Flux v1's objects are left");

        // Re-marked by the unit (as its next apply does): none left, recorded once.
        apply_ok(&handle, &[owned(v1.clone(), &identity, "c")]).await;
        assert!(handle.legacy_marked(&identity).await.expect("legacy_marked").is_empty());
        assert_eq!(marks(maps.get_opt(&name).await.expect("get")).as_deref(), Some("none"));
        assert_eq!(
            recorded(&handle, "migrating").await.as_deref(),
            Some("ConfigMap"),
            "recording kinds and the legacy mark keep each other"
        );

        // A restarted process: managed's GET of the record tells, no list is made.
        let fresh = cluster(&server, ADMIN, ClusterOptions::default()).await;
        fresh.managed(&identity).await.expect("managed");
        let requests = server.requests(ADMIN, &["get", "list"]);
        assert!(fresh.legacy_marked(&identity).await.expect("legacy_marked").is_empty());
        assert_eq!(server.requests(ADMIN, &["get", "list"]) - requests, 0, "no request once none is left");
    });
}
