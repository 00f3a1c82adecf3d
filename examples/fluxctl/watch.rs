//! `release --watch`: follows the sync of the release's commit, then the rollout, until the new
//! images run (or something fails).

use std::collections::BTreeMap;
use std::time::Duration;

use flux_core::WorkloadStatus;
use flux_core::automation::{ContainerOutcome, ReleaseResult};

use crate::api_types::{Status, WorkloadInfo};
use crate::client::Client;

const POLL: Duration = Duration::from_millis(500);

/// Waits until the revision of `result` is synced and every updated container runs its image.
pub(crate) async fn rollout(client: &Client, result: &ReleaseResult, timeout: Duration) -> Result<(), String> {
    let Some(revision) = &result.revision else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + timeout;
    let expired = || tokio::time::Instant::now() > deadline;
    eprintln!("Waiting for revision {} to be applied ...", revision.short());
    loop {
        let status: Status = client.get("/status", &[]).await?;
        match status.last_sync {
            Some(s) if s.revision == revision.as_str() && s.success => break,
            Some(s) if s.revision == revision.as_str() => {
                let first = s.errors.first().map(|e| e.message.clone()).unwrap_or_default();
                return Err(format!("sync of {} failed: {first}", revision.short()));
            }
            // A later revision synced (someone pushed after the release): it contains ours.
            Some(s) if s.success && status.head.as_deref() == Some(s.revision.as_str()) => break,
            _ => {}
        }
        if expired() {
            return Err(format!("revision {} not applied after {timeout:?}", revision.short()));
        }
        tokio::time::sleep(POLL).await;
    }
    eprintln!("Applied. Waiting for the workloads to roll out ...");
    let wanted: BTreeMap<(String, String), String> = result
        .updated()
        .flat_map(|w| {
            w.containers.iter().filter_map(move |c| match &c.outcome {
                ContainerOutcome::Updated { to } => {
                    Some(((w.workload.to_string(), c.container.clone()), to.to_string()))
                }
                _ => None,
            })
        })
        .collect();
    loop {
        let list: Vec<WorkloadInfo> = client.get("/workloads", &[]).await?;
        let mut pending = Vec::new();
        for ((workload, container), image) in &wanted {
            let Some(w) = list.iter().find(|w| &w.id.to_string() == workload) else {
                pending.push(format!("{workload}: not running"));
                continue;
            };
            if let Some(WorkloadStatus::Failed { message }) = &w.status {
                return Err(format!("{workload}: rollout failed: {message}"));
            }
            let runs = w.containers.iter().any(|c| &c.name == container && &c.image == image);
            // Nothing reconciles a workload whose status is Unknown: running the image is all
            // that can be judged.
            let settled = matches!(w.status, Some(WorkloadStatus::Ready | WorkloadStatus::Unknown));
            if !runs || !settled {
                pending.push(format!(
                    "{workload} ({container}): {}",
                    if runs { "rolling out" } else { "not updated yet" }
                ));
            }
        }
        if pending.is_empty() {
            eprintln!("Done: the new images are running.");
            return Ok(());
        }
        if expired() {
            return Err(format!("not rolled out after {timeout:?}: {}", pending.join("; ")));
        }
        tokio::time::sleep(POLL).await;
    }
}
