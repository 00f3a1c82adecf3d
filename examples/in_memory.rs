//! The sync loop, all in memory: YAML manifests in a Source, synced to a Cluster by the
//! SyncEngine; a change committed and synced; a manifest removed and garbage-collected.
//!
//! Run it with `cargo run -p examples --example in_memory`.

use std::sync::Arc;

use flux_core::generate::ManifestGenerator;
use flux_core::memory::{MemoryCluster, MemorySource};
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{ApplyOutcome, Author, CommitRequest, FileChange, Source, SyncIdentity};

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";

fn settings(colour: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\ndata:\n  colour: {colour}\n"
    )
}

fn print(title: &str, report: &SyncReport) {
    println!("{title} (revision {}):", report.revision.short());
    for r in &report.applied {
        let verb = match &r.outcome {
            ApplyOutcome::Created => "created".to_owned(),
            ApplyOutcome::Configured => "configured".to_owned(),
            ApplyOutcome::Unchanged => "unchanged".to_owned(),
            ApplyOutcome::Failed { reason } => format!("failed: {reason}"),
            ApplyOutcome::Interrupted { reason } => format!("not applied: {reason}"),
        };
        println!("  {} {verb}", r.id);
    }
    for p in &report.pruned {
        println!("  {} pruned", p.id);
    }
    println!("  {} already as desired (nothing sent for them); errors: {:?}", report.unchanged, report.errors);
}

async fn commit(source: &MemorySource, changes: Vec<FileChange>, message: &str) -> flux_core::Result<()> {
    let base = source.refresh().await?;
    let author = Author::new("Jane", "jane@example.com");
    source.commit(&CommitRequest { base, changes, author, message: message.into() }).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> flux_core::Result<()> {
    let source = MemorySource::with_files([
        ("deploy/settings.yaml", settings("blue")),
        ("deploy/extra.yaml", settings("x").replace("settings", "extra")),
        ("deploy/namespace.yaml", NAMESPACE.to_owned()),
    ])?;
    let cluster = MemoryCluster::new();
    let mut config = SyncConfig::new(SyncIdentity::new("demo")?, ["deploy"]);
    config.garbage_collection = GarbageCollection::On;
    let engine = SyncEngine::new(
        Arc::new(source.clone()),
        Arc::new(cluster.clone()),
        Arc::new(ManifestGenerator::default()),
        config,
    );

    print("first sync", &engine.sync_head().await?);
    print("second sync, nothing changed", &engine.sync_head().await?);
    commit(&source, vec![FileChange::write("deploy/settings.yaml", settings("green"))], "Paint it green").await?;
    print("after a commit", &engine.sync_head().await?);
    commit(&source, vec![FileChange::delete("deploy/extra.yaml")], "Drop extra").await?;
    print("after removing a manifest", &engine.sync_head().await?);
    println!("writes to the cluster: {:?}", cluster.writes());
    Ok(())
}
