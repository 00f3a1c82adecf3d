//! Against a real kube-apiserver: the sync engine's prune guard (100 of 150 objects leaving git
//! are held, zero deletes in the audit log, then deleted once allowed) and the protected kinds
//! (a Namespace leaving git is kept and reported); and `Cluster::preview_apply` (a server-side
//! dry run): the would-be object with the server's defaults, nothing persisted, refusals named.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::cluster::Preview;
use flux_core::diff::{diff, strip_server_fields};
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{GarbageCollection, KeepReason, SyncConfig, SyncEngine};
use flux_core::{Author, Cluster, CommitRequest, DeleteOutcome, FileChange, ObjectRef, Source, SyncIdentity};
use flux_k8s::ClusterOptions;
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use serde_json::{Value, json};

const NS: &str = "guarded";

fn yaml(documents: &[Value]) -> String {
    documents.iter().map(|d| format!("---\n{d}\n")).collect()
}

/// The namespaces and config maps `c-000`..: what the repository holds.
fn manifests(namespaces: &[&str], count: usize) -> String {
    let mut documents: Vec<Value> =
        namespaces.iter().map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})).collect();
    documents.extend((0..count).map(|i| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c-{i:03}"), "namespace": NS},
            "data": {"v": "x"}})
    }));
    yaml(&documents)
}

/// Completed deletions in the audit log, by anyone.
fn deletions(server: &KubeApiServer) -> Vec<String> {
    server.requests(ADMIN, &["delete"]);
    server
        .audit_log()
        .lines()
        .filter(|l| l.contains("\"stage\":\"ResponseComplete\"") && l.contains("\"verb\":\"delete\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|event| {
            let target = &event["objectRef"];
            let namespace = target["namespace"].as_str().unwrap_or("<cluster>");
            format!(
                "{namespace}:{}/{}",
                target["resource"].as_str().unwrap_or("?"),
                target["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn the_prune_guard_holds_100_of_150_until_allowed_once_and_a_namespace_is_kept() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let source = MemorySource::with_files([("deploy/all.yaml".to_owned(), manifests(&[NS, "leaving"], 150))])
            .expect("a repository");
        let mut config = SyncConfig::new(SyncIdentity::new("guard").expect("identity"), ["deploy"]);
        config.garbage_collection = GarbageCollection::On;
        let engine = SyncEngine::new(
            Arc::new(source.clone()),
            Arc::new(cluster.clone()),
            Arc::new(ManifestGenerator::default()),
            config,
        );
        let first = engine.sync_head().await.expect("sync");
        assert!(first.is_success(), "{:?}", first.errors);
        assert_eq!(first.applied.len(), 152);

        // 100 of the 150 config maps and the namespace `leaving` leave git.
        let base = source.refresh().await.expect("head");
        let changes = vec![FileChange::write("deploy/all.yaml", manifests(&[NS], 50))];
        let request = CommitRequest { base, changes, author: Author::default(), message: "fewer".into() };
        let revision = source.commit(&request).await.expect("commit");

        let held = engine.sync(&revision).await;
        let hold = held.prune_held.as_ref().expect("the guard holds the prune");
        assert_eq!((hold.pruning, hold.managed, hold.max_percent), (100, 152, 50));
        let message = held.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n");
        assert!(
            message.contains("prune guard: not pruning 100 of the 152 objects this unit manages (over 50%)")
                && message.contains("guarded:configmap/c-050")
                && message.contains("and 95 more")
                && message.contains("fluxctl sync --allow-prune"),
            "{message}"
        );
        assert!(!held.is_success() && !held.marker_moved && held.pruned.is_empty());
        assert_eq!(deletions(&server), Vec::<String>::new(), "the audit log shows a deletion");

        // Allowed once: exactly those 100 go; the namespace that left git is kept and reported.
        engine.allow_prune_once();
        let allowed = engine.sync(&revision).await;
        assert!(allowed.is_success(), "{:?}", allowed.errors);
        let expected: Vec<String> = (50..150).rev().map(|i| format!("{NS}:configmap/c-{i:03}")).collect();
        let mut pruned: Vec<String> = allowed.pruned.iter().map(|d| d.id.to_string()).collect();
        pruned.sort_by(|a, b| b.cmp(a));
        assert_eq!(pruned, expected);
        assert!(allowed.pruned.iter().all(|d| d.outcome == DeleteOutcome::Deleted), "{:?}", allowed.pruned);
        let mut deleted = deletions(&server);
        deleted.sort_by(|a, b| b.cmp(a));
        let expected_log: Vec<String> = (50..150).rev().map(|i| format!("{NS}:configmaps/c-{i:03}")).collect();
        assert_eq!(deleted, expected_log, "the audit log has exactly those deletions");
        let kept: Vec<(String, KeepReason)> =
            allowed.kept.iter().map(|k| (k.reference.id.to_string(), k.reason)).collect();
        assert_eq!(kept, [("<cluster>:namespace/leaving".to_owned(), KeepReason::ProtectedKind)]);
        let leaving = ObjectRef { api_version: "v1".into(), id: "<cluster>:namespace/leaving".parse().expect("id") };
        assert!(cluster.get(&leaving).await.expect("get").is_some(), "the namespace is still there");
        assert!(!engine.prune_allowance(), "the allowance was taken");
        let again = engine.sync(&revision).await;
        assert!(again.is_success() && again.pruned.is_empty(), "{:?}", again.errors);
        assert_eq!(again.kept.len(), 1, "still kept and reported at every sync");
    });
}

#[test]
fn preview_apply_is_the_servers_would_be_object_and_persists_nothing() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        apply_ok(&cluster, &[namespace("preview")]).await;
        let web = deployment("preview", "web", "nginx:1.25");
        apply_ok(&cluster, std::slice::from_ref(&web)).await;
        let reference = ObjectRef::of(&web);
        let live = cluster.get(&reference).await.expect("get").expect("live");

        let mut scaled = web.to_value();
        scaled["spec"]["replicas"] = json!(3);
        let Preview::Object(would) = cluster.preview_apply(&object(scaled)).await.expect("preview") else {
            panic!("refused")
        };
        let would = would.to_value();
        assert_eq!(would["spec"]["replicas"], 3);
        assert_eq!(would["spec"]["strategy"]["type"], "RollingUpdate", "the server's defaults are filled in");
        assert_eq!(
            would["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        let (mut before, mut after) = (live.to_value(), would);
        strip_server_fields(&mut before);
        strip_server_fields(&mut after);
        let changes: Vec<String> = diff(&before, &after).iter().map(ToString::to_string).collect();
        assert_eq!(changes, ["spec.replicas: 1 -> 3"], "only the field changed");

        let after_preview = cluster.get(&reference).await.expect("get").expect("live");
        assert_eq!(after_preview.to_value()["spec"]["replicas"], 1, "nothing persisted");
        assert_eq!(
            after_preview.to_value()["metadata"]["resourceVersion"],
            live.to_value()["metadata"]["resourceVersion"]
        );

        // A new object: the server's copy of it; refusals carry the server's reason.
        let fresh = config_map("preview", "fresh", "v");
        let Preview::Object(created) = cluster.preview_apply(&fresh).await.expect("preview") else { panic!("refused") };
        assert_eq!(created.to_value()["data"]["value"], "v");
        assert!(created.to_value()["metadata"]["uid"].is_string(), "as the server would store it");
        assert!(cluster.get(&ObjectRef::of(&fresh)).await.expect("get").is_none(), "not created");
        match cluster.preview_apply(&config_map("nowhere", "c", "v")).await.expect("preview") {
            Preview::Refused { reason } => assert!(reason.contains("nowhere"), "{reason}"),
            other => panic!("a missing namespace: {other:?}"),
        }
        let unknown = object(json!({"apiVersion": "nope.example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}));
        assert!(matches!(cluster.preview_apply(&unknown).await.expect("preview"), Preview::Refused { .. }));
    });
}
