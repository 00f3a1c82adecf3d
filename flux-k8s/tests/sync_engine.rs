//! flux-core's sync engine with this adapter, end to end against a real kube-apiserver: a CRD
//! and its custom resources in one revision, ignore, drift put back, garbage collection, and a
//! no-op sync with zero writes counted from the server's audit log.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{
    ApplyOutcome, Author, Cluster, CommitRequest, DeleteOutcome, FileChange, ObjectRef, Source, SyncIdentity,
};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

/// A multi-document YAML file (JSON is YAML).
fn yaml(documents: &[Value]) -> String {
    documents.iter().map(|d| format!("---\n{d}\n")).collect()
}

fn gadget(name: &str) -> Value {
    json!({"apiVersion": "e2e.flux.example.com/v1", "kind": "Gadget", "metadata": {"name": name, "namespace": "shop"}, "spec": {"size": 1}})
}

fn repository() -> Vec<(String, String)> {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.e2e.flux.example.com"},
        "spec": {"group": "e2e.flux.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let settings = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"colour": "blue"}});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
    let mut ignored = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hands-off", "namespace": "shop"}, "data": {"a": "b"}});
    ignored["metadata"]["annotations"] = json!({"fluxcd.io/ignore": "true"});
    let mut sync_only = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me", "namespace": "shop"}, "data": {"a": "b"}});
    sync_only["metadata"]["annotations"] = json!({"fluxcd.io/ignore": "sync_only"});
    // Files in an order that would not work as is: the engine orders by stage.
    vec![
        ("deploy/a-gadgets.yaml".into(), yaml(&[gadget("one"), gadget("two")])),
        ("deploy/b-app.yaml".into(), yaml(&[deployment("shop", "web", "nginx:1.25").to_value(), service, settings])),
        ("deploy/c-crd.yaml".into(), yaml(&[crd])),
        ("deploy/d-extra.yaml".into(), yaml(&[ignored, sync_only])),
        (
            "deploy/z-namespace.yaml".into(),
            yaml(&[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})]),
        ),
    ]
}

fn applied(report: &SyncReport) -> Vec<(String, ApplyOutcome)> {
    report.applied.iter().map(|r| (r.id.to_string(), r.outcome.clone())).collect()
}

#[test]
fn the_sync_engine_keeps_a_real_cluster_in_step() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let source = MemorySource::with_files(repository()).expect("a repository");
        let mut config = SyncConfig::new(SyncIdentity::new("e2e").expect("valid identity"), ["deploy"]);
        config.garbage_collection = GarbageCollection::On;
        let engine = SyncEngine::new(
            Arc::new(source.clone()),
            Arc::new(cluster.clone()),
            Arc::new(ManifestGenerator::default()),
            config,
        );

        // First sync: everything but the ignored object, a CRD and its resources in one revision.
        let first = engine.sync_head().await.expect("sync");
        assert!(first.is_success(), "{:?}", first.errors);
        let ids: Vec<_> = applied(&first).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids.first().map(String::as_str), Some("<cluster>:namespace/shop"), "namespaces first: {ids:?}");
        assert_eq!(ids.len(), 8, "{ids:?}");
        assert!(first.applied.iter().all(|r| r.outcome == ApplyOutcome::Created), "{:?}", first.applied);
        assert_eq!(first.ignored.iter().map(|i| i.to_string()).collect::<Vec<_>>(), ["shop:configmap/hands-off"]);
        let hands_off = ObjectRef { api_version: "v1".into(), id: "shop:configmap/hands-off".parse().expect("id") };
        assert!(cluster.get(&hands_off).await.expect("get").is_none(), "an ignored object is not applied");

        // No change anywhere: nothing is sent, not one write reaches the server.
        let writes = server.write_requests(ADMIN);
        let noop = engine.sync_head().await.expect("sync");
        assert!(noop.is_success() && noop.applied.is_empty(), "{:?}", noop.applied);
        assert_eq!(noop.unchanged, 8);
        assert_eq!(server.write_requests(ADMIN), writes, "a no-op sync makes zero writes");

        // Someone edits an object by hand: the next sync puts it back, and only it.
        let config_maps = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client().clone(), "shop", &config_maps);
        let by_hand = PatchParams { field_manager: Some("kubectl-edit".into()), ..PatchParams::default() };
        api.patch("settings", &by_hand, &Patch::Merge(json!({"data": {"colour": "red"}}))).await.expect("hand edit");
        let put_back = engine.sync_head().await.expect("sync");
        assert_eq!(applied(&put_back), [("shop:configmap/settings".to_owned(), ApplyOutcome::Configured)]);
        let live = api.get("settings").await.expect("get");
        assert_eq!(live.data["data"]["colour"], "blue", "drift put back");
        let writes = server.write_requests(ADMIN);
        assert!(engine.sync_head().await.expect("sync").applied.is_empty(), "drift cleared");
        assert_eq!(server.write_requests(ADMIN), writes);

        // Objects leave git: pruned, except the one marked sync_only.
        let base = source.refresh().await.expect("head");
        let changes = vec![
            FileChange::write("deploy/a-gadgets.yaml", yaml(&[gadget("one")])),
            FileChange { path: "deploy/d-extra.yaml".into(), content: None },
        ];
        let request = CommitRequest { base, changes, author: Author::default(), message: "less".into() };
        source.commit(&request).await.expect("commit");
        let pruning = engine.sync_head().await.expect("sync");
        assert!(pruning.is_success(), "{:?}", pruning.errors);
        let pruned: Vec<_> = pruning.pruned.iter().map(|p| (p.id.to_string(), p.outcome.clone())).collect();
        assert_eq!(pruned, [("shop:gadget/two".to_owned(), DeleteOutcome::Deleted)]);
        let keep_me = ObjectRef { api_version: "v1".into(), id: "shop:configmap/keep-me".parse().expect("id") };
        assert!(cluster.get(&keep_me).await.expect("get").is_some(), "sync_only objects are never pruned");
        let two =
            ObjectRef { api_version: "e2e.flux.example.com/v1".into(), id: "shop:gadget/two".parse().expect("id") };
        assert!(cluster.get(&two).await.expect("get").is_none());
        let fresh = KubeCluster::new(cluster.client().clone(), ClusterOptions::default());
        let managed: Vec<_> = fresh
            .managed(&SyncIdentity::new("e2e").expect("valid identity"))
            .await
            .expect("managed")
            .into_iter()
            .map(|m| m.reference.id.to_string())
            .collect();
        assert!(
            !managed.contains(&"shop:gadget/two".to_owned()) && managed.contains(&"shop:gadget/one".to_owned()),
            "{managed:?}"
        );
    });
}
