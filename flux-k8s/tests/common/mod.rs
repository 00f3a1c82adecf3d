//! Shared by the tests against a real API server.
#![allow(dead_code, unreachable_pub)]

use flux_core::cluster::{CHECKSUM_ANNOTATION, GC_MARK_LABEL, SYNC_UNIT_LABEL, gc_mark};
use flux_core::{ApplyOutcome, ApplyResult, KubeObject, SyncIdentity};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use serde_json::Value;

/// A runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// A handle for `user` on `server`.
pub async fn cluster(server: &KubeApiServer, user: &str, options: ClusterOptions) -> KubeCluster {
    KubeCluster::from_kubeconfig(&server.kubeconfig(user), options).await.expect("a client from the kubeconfig")
}

pub fn object(value: Value) -> KubeObject {
    KubeObject::from_value(value, None).expect("a valid test object")
}

/// `object` marked as synced by `identity` with `checksum`.
pub fn owned(mut object: KubeObject, identity: &SyncIdentity, checksum: &str) -> KubeObject {
    object.set_label(GC_MARK_LABEL, &gc_mark(identity.as_str(), object.id()));
    object.set_label(SYNC_UNIT_LABEL, identity.as_str());
    object.set_annotation(CHECKSUM_ANNOTATION, checksum);
    object
}

pub fn namespace(name: &str) -> KubeObject {
    object(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
}

pub fn config_map(ns: &str, name: &str, value: &str) -> KubeObject {
    object(
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"value": value}}),
    )
}

pub fn deployment(ns: &str, name: &str, image: &str) -> KubeObject {
    object(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}
        }
    }))
}

pub fn outcomes(results: &[ApplyResult]) -> Vec<ApplyOutcome> {
    results.iter().map(|r| r.outcome.clone()).collect()
}

/// Applies with `cluster` and asserts nothing failed.
pub async fn apply_ok(cluster: &KubeCluster, objects: &[KubeObject]) -> Vec<ApplyOutcome> {
    let results = flux_core::Cluster::apply(cluster, objects, flux_core::WriteOptions::default()).await.expect("apply");
    let outcomes = outcomes(&results);
    assert!(!outcomes.iter().any(|o| matches!(o, ApplyOutcome::Failed { .. })), "{results:?}");
    outcomes
}
