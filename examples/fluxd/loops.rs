//! The daemon's loops: git poll, sync and automation, each on its interval or woken early by a
//! webhook or the API, each stopping when shutdown is asked. Their work runs as jobs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};

use crate::daemon::Daemon;

/// Waits for the interval, a wake-up, or shutdown; `false` on shutdown.
async fn next_round(interval: Duration, wake: &Notify, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = sleep_until(Instant::now() + interval) => true,
        () = wake.notified() => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

/// Fetches the repository; a new head wakes the sync loop.
pub(crate) async fn git_poll(daemon: Arc<Daemon>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    while next_round(interval, &daemon.triggers.git, &mut shutdown).await {
        match daemon.parts.source.refresh().await {
            Ok(head) if daemon.saw_head(&head) => {
                tracing::info!(revision = head.short(), "new revision in git");
                daemon.triggers.sync.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "git fetch failed"),
        }
    }
}

/// Syncs at once, then on every interval or wake-up.
pub(crate) async fn sync(daemon: Arc<Daemon>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = daemon.run(daemon.sync_work()).await {
            tracing::warn!(error = %e, "sync failed");
        }
        if !next_round(interval, &daemon.triggers.sync, &mut shutdown).await {
            return;
        }
    }
}

/// Runs an automation pass on every interval or wake-up (a registry webhook).
pub(crate) async fn automation(daemon: Arc<Daemon>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    while next_round(interval, &daemon.triggers.automation, &mut shutdown).await {
        match daemon.run(daemon.automation_work()).await {
            Ok(crate::api_types::JobResult::Automation(report)) => {
                for c in &report.changes {
                    tracing::info!(workload = %c.workload, container = %c.container, from = %c.from, to = %c.to, "automated image update");
                }
                for f in &report.registry_errors {
                    tracing::warn!(repository = %f.repository, error = %f.error, "registry scan failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "automation pass failed"),
        }
    }
}

/// Records every sync report: status, metrics, logs, notifications.
pub(crate) async fn watch_syncs(daemon: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) {
    let mut reports = daemon.parts.sync.subscribe();
    loop {
        let report = tokio::select! {
            r = reports.recv() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match report {
            Ok(report) => {
                crate::report::log_sync(&report);
                daemon.metrics.sync(&report);
                daemon.notifier.sync(&report);
                daemon.synced(crate::api_types::SyncSummary::from(report.as_ref()));
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "sync reports were missed");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
