//! The discovery cache on disk against a real kube-apiserver (v1.20), discovery requests counted
//! from the audit log: a restarted handle makes none while the cache is fresh; a kind that became
//! known (a CRD applied) is written to the cache; a corrupt file is ignored and rewritten.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use flux_core::{ApplyOutcome, Cluster, SyncIdentity};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use serde_json::json;

fn cached(dir: &Path) -> ClusterOptions {
    ClusterOptions { discovery_cache_dir: Some(dir.to_owned()), ..ClusterOptions::default() }
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map_or_else(
        |_| Vec::new(),
        |entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
                .collect()
        },
    );
    files.sort();
    files
}

/// GETs (discovery documents and the inventory) made by `work`.
async fn gets<F: std::future::Future>(server: &KubeApiServer, work: F) -> (usize, F::Output) {
    let before = server.requests(ADMIN, &["get"]);
    let output = work.await;
    (server.requests(ADMIN, &["get"]) - before, output)
}

#[test]
fn a_restarted_handle_discovers_nothing_while_the_cache_is_fresh() {
    let Some(server) = KubeApiServer::start() else { return };
    let dir = std::env::temp_dir().join(format!("flux-k8s-discovery-cache-{}", std::process::id()));
    runtime().block_on(async {
        let identity = SyncIdentity::new("cached").expect("valid identity");
        let first = cluster(&server, ADMIN, cached(&dir)).await;
        let (discovered, managed) = gets(&server, first.managed(&identity)).await;
        managed.expect("managed");
        assert!(discovered > 10, "the first handle discovers ({discovered} GETs)");
        let files = cache_files(&dir);
        assert_eq!(files.len(), 1, "one file for the server: {files:?}");

        let second = cluster(&server, ADMIN, cached(&dir)).await;
        let (made, managed) = gets(&server, second.managed(&identity)).await;
        managed.expect("managed");
        assert_eq!(made, 1, "a restart reads the view from disk: only the inventory's GET");

        // A kind that becomes known refreshes at once, and the cache learns it.
        let crd = object(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.cache.flux.example.com"},
            "spec": {
                "group": "cache.flux.example.com", "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        }));
        let gadget = object(json!({"apiVersion": "cache.flux.example.com/v1", "kind": "Gadget",
            "metadata": {"name": "g", "namespace": "default"}, "spec": {"size": 1}}));
        assert_eq!(apply_ok(&second, &[crd, gadget.clone()]).await, [ApplyOutcome::Created, ApplyOutcome::Created]);
        let third = cluster(&server, ADMIN, cached(&dir)).await;
        let (made, applied) = gets(&server, third.apply(&[gadget], flux_core::WriteOptions::default())).await;
        let applied = outcomes(&applied.expect("apply"));
        assert!(matches!(applied[..], [ApplyOutcome::Unchanged | ApplyOutcome::Configured]), "{applied:?}");
        assert_eq!(made, 0, "the custom kind is known from the cache: no discovery");

        // A corrupt file is ignored (discovery runs) and rewritten.
        std::fs::write(&files[0], b"{\"format\": 1, \"kinds\": [").expect("corrupt the cache");
        let fourth = cluster(&server, ADMIN, cached(&dir)).await;
        let (discovered, managed) = gets(&server, fourth.managed(&identity)).await;
        managed.expect("managed despite a corrupt cache");
        assert!(discovered > 10, "a corrupt cache means discovery ({discovered} GETs)");
        let fifth = cluster(&server, ADMIN, cached(&dir)).await;
        let (made, managed) = gets(&server, fifth.managed(&identity)).await;
        managed.expect("managed");
        assert_eq!(made, 1, "the rewritten cache is used");

        // Expired: discovery again.
        let stale = ClusterOptions { discovery_cache_ttl: std::time::Duration::ZERO, ..cached(&dir) };
        let sixth = cluster(&server, ADMIN, stale).await;
        let (discovered, _) = gets(&server, sixth.managed(&identity)).await;
        assert!(discovered > 10, "an expired cache is not used ({discovered} GETs)");

        // A bare client does not know its server: no cache.
        let bare = KubeCluster::new(first.client().clone(), cached(&dir));
        let (discovered, _) = gets(&server, bare.managed(&identity)).await;
        assert!(discovered > 10, "KubeCluster::new discovers ({discovered} GETs)");
    });
    std::fs::remove_dir_all(&dir).expect("clean up");
}
