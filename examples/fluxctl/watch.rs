//! Waiting after a release, as Flux v1's fluxctl waited: until fluxd has applied the release's
//! commit, then (`--watch`) until the new images run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::Client;
use flux_api::v1::{ContainerOutcome, ReleaseResult, Revision, Status, WorkloadInfo, WorkloadStatus};

const POLL: Duration = Duration::from_millis(500);

/// Waits until `revision` (or a later one) is synced: `Ok(true)` when it is, `Ok(false)` when
/// `timeout` passed first, an error when its sync failed.
pub(crate) async fn applied(client: &Client, revision: &Revision, timeout: Duration) -> Result<bool, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    // Only a head seen after ours is known to contain it: before fluxd has read our commit, its
    // head and last sync are both the older revision, which must not count as "later".
    let mut head_was_ours = false;
    loop {
        let status: Status = client.get("/status", &[]).await?;
        head_was_ours |= status.head.as_deref() == Some(revision.as_str());
        match status.last_sync {
            Some(s) if s.revision == revision.as_str() && s.success => return Ok(true),
            Some(s) if s.revision == revision.as_str() => {
                let first = s.errors.first().map(|e| e.message.clone()).unwrap_or_default();
                return Err(format!("sync of {} failed: {first}", revision.short()));
            }
            // A later revision synced (someone pushed after the release): it contains ours.
            Some(s) if head_was_ours && s.success && status.head.as_deref() == Some(&s.revision) => {
                return Ok(true);
            }
            _ => {}
        }
        if tokio::time::Instant::now() + POLL > deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every container `result` updated runs its new image and its workload is ready,
/// printing each workload's state as it changes.
pub(crate) async fn rollout(client: &Client, result: &ReleaseResult, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
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
    let mut said = String::new();
    loop {
        let list: Vec<WorkloadInfo> = client.get("/workloads", &[]).await?;
        let mut pending = Vec::new();
        for ((workload, container), image) in &wanted {
            let Some(w) = list.iter().find(|w| &w.id.to_string() == workload) else {
                pending.push(format!("{workload}: not running"));
                continue;
            };
            if let Some(WorkloadStatus::Failed { message }) = &w.status {
                return Err(format!("There was a problem releasing {workload}: {message}"));
            }
            let runs = w.containers.iter().any(|c| &c.name == container && &c.image == image);
            // Nothing reconciles a workload whose status is Unknown: running the image is all
            // that can be judged.
            let settled = matches!(w.status, Some(WorkloadStatus::Ready | WorkloadStatus::Unknown));
            if !runs || !settled {
                let state = if runs { "rolling out" } else { "not updated yet" };
                pending.push(format!("{workload} ({container}): {state}"));
            }
        }
        if pending.is_empty() {
            eprintln!("All workloads ready.");
            return Ok(());
        }
        let now = pending.join("; ");
        if now != said {
            eprintln!("{now}");
            said = now;
        }
        if tokio::time::Instant::now() + POLL > deadline {
            return Err(format!("not rolled out after {timeout:?}: {said}"));
        }
        tokio::time::sleep(POLL).await;
    }
}
