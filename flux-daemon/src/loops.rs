//! A unit's loops: git poll, sync and automation, each on its interval or woken early by a
//! webhook or the API, each stopping when shutdown is asked. Their work runs as the unit's jobs.
//! Every failure is logged with the unit's name and the loop goes on: one unit whose repository
//! is unreachable does not stop the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};

use crate::service::UnitService;

/// Waits for the interval, a wake-up, or shutdown; `false` on shutdown.
async fn next_round(interval: Duration, wake: &Notify, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = sleep_until(Instant::now() + interval) => true,
        () = wake.notified() => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

/// Fetches the repository; a new head wakes the sync loop.
pub(crate) async fn git_poll(unit: Arc<UnitService>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    while next_round(interval, &unit.triggers.git, &mut shutdown).await {
        match unit.refreshed(unit.unit().source().refresh().await) {
            Ok(head) if unit.saw_head(&head) => {
                tracing::info!(unit = unit.name(), revision = head.short(), "new revision in git");
                unit.triggers.sync.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(unit = unit.name(), error = %e, "git fetch failed"),
        }
    }
}

/// Syncs at once, then on every interval or wake-up.
pub(crate) async fn sync(unit: Arc<UnitService>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        // With high availability, only the replica holding the unit's lease syncs it.
        if unit.writes_here()
            && let Err(e) = unit.sync_now().await
        {
            tracing::warn!(unit = unit.name(), error = %e, "sync failed");
        }
        if !next_round(interval, &unit.triggers.sync, &mut shutdown).await {
            return;
        }
    }
}

/// Runs an automation pass on every interval or wake-up (a registry webhook).
pub(crate) async fn automation(unit: Arc<UnitService>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    while next_round(interval, &unit.triggers.automation, &mut shutdown).await {
        if !unit.writes_here() {
            continue;
        }
        match unit.automate_now().await {
            Ok(crate::results::JobResult::Automation(report)) => {
                for c in &report.changes {
                    tracing::info!(unit = unit.name(), workload = %c.workload, container = %c.container, from = %c.from, to = %c.to, "automated image update");
                }
                for f in &report.registry_errors {
                    tracing::warn!(unit = unit.name(), repository = %f.repository, error = %f.error, "registry scan failed");
                }
                for s in &report.skipped {
                    tracing::info!(unit = unit.name(), workload = %s.workload, reason = %s.reason, "automation skipped a workload");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(unit = unit.name(), error = %e, "automation pass failed"),
        }
    }
}

/// Records every sync report of the unit: status, metrics, logs, events.
pub(crate) async fn watch_syncs(unit: Arc<UnitService>, mut shutdown: watch::Receiver<bool>) {
    let mut reports = unit.engines().sync.subscribe();
    loop {
        let report = tokio::select! {
            r = reports.recv() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match report {
            Ok(report) => {
                log_sync(unit.name(), &report);
                unit.synced(&report);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(unit = unit.name(), missed = n, "sync reports were missed");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Logs a sync: one line, objects refused by the restrictions, and every error.
fn log_sync(unit: &str, report: &flux_core::sync::SyncReport) {
    let revision = report.revision.short();
    for r in &report.refused {
        tracing::warn!(unit, object = %r.id, reason = %r.reason, "not synced: refused by the restrictions");
    }
    if report.is_success() {
        tracing::info!(
            unit,
            revision,
            applied = report.applied.len(),
            pruned = report.pruned.len(),
            unchanged = report.unchanged,
            "sync done"
        );
    } else {
        tracing::error!(unit, revision, failed = report.failed, errors = report.errors.len(), "sync FAILED");
        for e in &report.errors {
            tracing::error!(unit, error = %e.error, kind = e.error.kind(), "sync error");
        }
    }
}
