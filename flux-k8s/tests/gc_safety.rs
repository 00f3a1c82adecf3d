//! Garbage-collection safety of the sync engine with this adapter, against a real kube-apiserver:
//! a pre-existing ignored object is never overwritten nor pruned, a hand-made copy carrying the
//! GC labels survives GC, objects marked by Flux v1 are recognised (re-marked, collected), and
//! removing a path orphans its objects unless opted in.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::cluster::{CHECKSUM_ANNOTATION, GC_MARK_LABEL, SYNC_PATH_ANNOTATION, SYNC_UNIT_LABEL, gc_mark};
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, flux_v1_sync_set_name};
use flux_core::{Author, Cluster, CommitRequest, FileChange, ResourceId, Source, SyncIdentity};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const NS: &str = "gc-safety";

fn yaml(documents: &[Value]) -> String {
    documents.iter().map(|d| format!("---\n{d}\n")).collect()
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": {"v": value}})
}

fn annotated(mut v: Value, key: &str, value: &str) -> Value {
    v["metadata"]["annotations"] = json!({key: value});
    v
}

fn config_maps(cluster: &KubeCluster) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    Api::namespaced_with(cluster.client().clone(), NS, &resource)
}

/// Creates `object` as `kubectl create` would (another field manager, no flux-rs apply).
async fn by_hand(api: &Api<DynamicObject>, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).expect("a valid object");
    let params = PostParams { field_manager: Some("kubectl".into()), ..PostParams::default() };
    api.create(&params, &object).await.expect("created by hand");
}

fn unit(paths: &[&str], legacy: &str, prune_removed_paths: bool) -> SyncConfig {
    let mut config = SyncConfig::new(SyncIdentity::new("gc-e2e").expect("valid identity"), paths.iter().copied());
    config.garbage_collection = GarbageCollection::On;
    config.legacy_sync_sets = vec![legacy.to_owned()];
    config.prune_removed_paths = prune_removed_paths;
    config
}

fn ids(refs: impl IntoIterator<Item = ResourceId>) -> Vec<String> {
    let mut ids: Vec<String> = refs.into_iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn garbage_collection_deletes_only_what_it_proves_it_applied() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let api = config_maps(&cluster);
        let v1_set =
            flux_v1_sync_set_name("git@example.com:org/fleet.git", "master", &["deploy".into(), "extra".into()]);

        // Before flux-rs: a namespace, two objects annotated ignore with `kubectl annotate`, and
        // two objects Flux v1 applied (its mark and a SHA-1 checksum).
        cluster.apply(&[namespace(NS)], flux_core::WriteOptions::default()).await.expect("namespace");
        by_hand(&api, annotated(cm("hands-off", "mine"), "fluxcd.io/ignore", "true")).await;
        by_hand(&api, annotated(cm("legacy-ignored", "mine"), "flux.weave.works/ignore", "true")).await;
        for name in ["from-v1", "v1-gone"] {
            let mut v1 = cm(name, "v1");
            let id: ResourceId = format!("{NS}:ConfigMap/{name}").parse().expect("id");
            v1["metadata"]["labels"] = json!({GC_MARK_LABEL: gc_mark(&v1_set, &id)});
            v1["metadata"]["annotations"] = json!({CHECKSUM_ANNOTATION: "da39a3ee5e6b4b0d3255bfef95601890afd80709"});
            by_hand(&api, v1).await;
        }

        let app = [
            cm("settings", "git"),
            cm("hands-off", "git"),
            cm("legacy-ignored", "git"),
            cm("from-v1", "git"),
            cm("c1", "1"),
            cm("c2", "1"),
            cm("c3", "1"),
        ];
        let source = MemorySource::with_files([
            ("deploy/ns.yaml".to_owned(), yaml(&[namespace(NS).to_value()])),
            ("deploy/app.yaml".to_owned(), yaml(&app)),
            ("extra/extra.yaml".to_owned(), yaml(&[cm("extra-1", "1")])),
        ])
        .expect("a repository");
        let engine_for = |config| {
            SyncEngine::new(
                Arc::new(source.clone()),
                Arc::new(cluster.clone()),
                Arc::new(ManifestGenerator::default()),
                config,
            )
        };
        let engine = engine_for(unit(&["deploy", "extra"], &v1_set, false));

        // Syncs: the ignored objects are neither overwritten nor taken over; Flux v1's object in
        // git is re-marked, the one that left git is collected.
        for round in 0..2 {
            let report = engine.sync_head().await.expect("sync");
            assert!(report.is_success(), "round {round}: {:?}", report.errors);
            assert_eq!(
                ids(report.ignored.clone()),
                [format!("{NS}:configmap/hands-off"), format!("{NS}:configmap/legacy-ignored")]
            );
            if round == 0 {
                let pruned = ids(report.pruned.iter().map(|p| p.id.clone()));
                assert_eq!(pruned, [format!("{NS}:configmap/v1-gone")], "a Flux v1 object that left git is collected");
            } else {
                assert!(report.applied.is_empty(), "steady state: {:?}", report.applied);
            }
        }
        for name in ["hands-off", "legacy-ignored"] {
            let live = api.get(name).await.expect("still there");
            assert_eq!(live.data["data"]["v"], "mine", "{name}: never overwritten");
            assert!(!live.metadata.labels.unwrap_or_default().contains_key(GC_MARK_LABEL), "{name}: never marked");
        }
        let from_v1 = api.get("from-v1").await.expect("from-v1");
        let labels = from_v1.metadata.labels.clone().unwrap_or_default();
        let id: ResourceId = format!("{NS}:ConfigMap/from-v1").parse().expect("id");
        assert_eq!(labels.get(GC_MARK_LABEL), Some(&gc_mark("gc-e2e", &id)), "re-marked with the unit's mark");
        assert_eq!(labels.get(SYNC_UNIT_LABEL).map(String::as_str), Some("gc-e2e"));
        assert_eq!(from_v1.data["data"]["v"], "git");
        let namespace_taken = cluster
            .managed(&SyncIdentity::new("gc-e2e").expect("identity"))
            .await
            .expect("managed")
            .iter()
            .any(|m| m.reference.id.to_string() == format!("<cluster>:namespace/{NS}"));
        assert!(namespace_taken, "a pre-existing object in git without ignore is taken over");

        // A hand-made copy of an applied object, labels and annotations included.
        let settings = api.get("settings").await.expect("settings");
        assert_eq!(
            settings.metadata.annotations.clone().unwrap_or_default().get(SYNC_PATH_ANNOTATION).map(String::as_str),
            Some("deploy")
        );
        let copy = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings-copy", "namespace": NS,
                "labels": settings.metadata.labels, "annotations": settings.metadata.annotations},
            "data": settings.data["data"]});
        by_hand(&api, copy).await;

        // settings and hands-off leave git: settings is collected; the copy and the ignored
        // object are not.
        let base = source.refresh().await.expect("head");
        let rest = [cm("legacy-ignored", "git"), cm("from-v1", "git"), cm("c1", "1"), cm("c2", "1"), cm("c3", "1")];
        let changes = vec![FileChange::write("deploy/app.yaml", yaml(&rest))];
        source
            .commit(&CommitRequest { base, changes, author: Author::default(), message: "less".into() })
            .await
            .expect("commit");
        let report = engine.sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(ids(report.pruned.iter().map(|p| p.id.clone())), [format!("{NS}:configmap/settings")]);
        assert_eq!(ids(report.foreign_copies.iter().map(|r| r.id.clone())), [format!("{NS}:configmap/settings-copy")]);
        assert!(api.get_opt("settings").await.expect("get").is_none(), "the original is collected");
        assert!(api.get_opt("settings-copy").await.expect("get").is_some(), "the copy survives");
        assert!(api.get_opt("hands-off").await.expect("get").is_some(), "the ignored object survives");

        // `extra` is removed from the paths: its object is orphaned, not deleted.
        let report = engine_for(unit(&["deploy"], &v1_set, false)).sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert!(report.pruned.is_empty(), "{:?}", report.pruned);
        assert_eq!(ids(report.orphaned.iter().map(|r| r.id.clone())), [format!("{NS}:configmap/extra-1")]);
        assert!(api.get_opt("extra-1").await.expect("get").is_some(), "orphaned, still in the cluster");

        // The opt-in deletes it.
        let report = engine_for(unit(&["deploy"], &v1_set, true)).sync_head().await.expect("sync");
        assert!(report.is_success(), "{:?}", report.errors);
        assert_eq!(ids(report.pruned.iter().map(|p| p.id.clone())), [format!("{NS}:configmap/extra-1")]);
        assert!(report.orphaned.is_empty());
        assert!(api.get_opt("extra-1").await.expect("get").is_none());
    });
}
