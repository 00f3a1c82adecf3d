//! The smallest whole loop, all in memory: a revision of files in a Source, its objects applied
//! to a Cluster, a change committed, applied again.
//!
//! Run it with `cargo run -p examples --example in_memory`.

use flux_core::memory::{MemoryCluster, MemorySource};
use flux_core::{ApplyOutcome, Author, Cluster, CommitRequest, FileChange, KubeObject, Location, Source, WriteOptions};

/// Reads every `.json` object under `path` at the head of `source` and applies it.
async fn sync(source: &MemorySource, cluster: &MemoryCluster, path: &str) -> flux_core::Result<()> {
    let head = source.refresh().await?;
    let mut objects = Vec::new();
    for file in source.files(&head, &[path.to_owned()]).await? {
        let at = Location::file(&file.path);
        let value =
            serde_json::from_slice(&file.content).map_err(|e| flux_core::Error::invalid(at.clone(), e.to_string()))?;
        objects.push(KubeObject::from_value(value, Some(at))?);
    }
    for result in cluster.apply(&objects, WriteOptions::default()).await? {
        let verb = match result.outcome {
            ApplyOutcome::Created => "created".to_owned(),
            ApplyOutcome::Configured => "configured".to_owned(),
            ApplyOutcome::Unchanged => "unchanged".to_owned(),
            ApplyOutcome::Failed { reason } => format!("failed: {reason}"),
        };
        println!("  {} {verb}", result.id);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> flux_core::Result<()> {
    let config = |colour: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "demo"},
            "data": {"colour": colour}
        })
        .to_string()
    };
    let namespace = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}"#;
    let source = MemorySource::with_files([
        ("deploy/00-namespace.json", namespace.to_owned()),
        ("deploy/settings.json", config("blue")),
    ])?;
    let cluster = MemoryCluster::new();

    println!("first sync:");
    sync(&source, &cluster, "deploy").await?;
    println!("second sync, nothing changed:");
    sync(&source, &cluster, "deploy").await?;

    let head = source.refresh().await?;
    let request = CommitRequest {
        base: head,
        changes: vec![FileChange::write("deploy/settings.json", config("green"))],
        author: Author::new("Jane", "jane@example.com"),
        message: "Paint it green".into(),
    };
    let revision = source.commit(&request).await?;
    println!("committed {}; third sync:", revision.short());
    sync(&source, &cluster, "deploy").await?;
    println!("writes to the cluster: {:?}", cluster.writes());
    Ok(())
}
