//! An embedder's view: code written against `Arc<dyn Cluster>` driven by flux-core's
//! `MockCluster` (feature `mock`), to inject a failure no real server would give on demand.

use std::sync::Arc;

use flux_core::{ApplyOutcome, ApplyResult, Cluster, Error, KubeObject, MockCluster, WriteOptions};

/// Embedder code: applies objects and counts those the cluster refused.
async fn apply_and_count_failures(cluster: Arc<dyn Cluster>, objects: &[KubeObject]) -> Result<usize, Error> {
    let results = cluster.apply(objects, WriteOptions::default()).await?;
    Ok(results.iter().filter(|r| matches!(r.outcome, ApplyOutcome::Failed { .. })).count())
}

fn config_map(name: &str) -> KubeObject {
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}});
    KubeObject::from_value(body, None).expect("valid object")
}

#[tokio::test]
async fn a_mock_cluster_drives_code_written_against_the_trait() {
    let mut mock = MockCluster::new();
    mock.expect_apply().times(1).withf(|objects, options| objects.len() == 2 && !options.dry_run).returning(
        |objects, _| {
            Ok(vec![
                ApplyResult { id: objects[0].id().clone(), outcome: ApplyOutcome::Created },
                ApplyResult {
                    id: objects[1].id().clone(),
                    outcome: ApplyOutcome::Failed { reason: "quota exceeded".into() },
                },
            ])
        },
    );
    let failures = apply_and_count_failures(Arc::new(mock), &[config_map("a"), config_map("b")]).await.unwrap();
    assert_eq!(failures, 1);
}

#[tokio::test]
async fn a_mock_cluster_injects_a_whole_call_failure() {
    let mut mock = MockCluster::new();
    mock.expect_apply().returning(|_, _| Err(Error::transient("connection reset")));
    let err = apply_and_count_failures(Arc::new(mock), &[config_map("a")]).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
