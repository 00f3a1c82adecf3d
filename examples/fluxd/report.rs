//! Reports for people: sync reports, plans and automation passes as text lines, and in logs.

use std::fmt::Write as _;

use flux_core::automation::AutomationReport;
use flux_core::sync::{GarbageCollection, SyncPlan, SyncReport};
use flux_core::{ApplyOutcome, DeleteOutcome};

/// A sync report, one line per object.
pub(crate) fn sync_text(report: &SyncReport) -> String {
    let mut out = String::new();
    let verdict = if report.is_success() { "ok" } else { "FAILED" };
    let _ = writeln!(out, "sync of {} {verdict} in {:?}", report.revision.short(), report.duration);
    for a in &report.applied {
        let what = match &a.outcome {
            ApplyOutcome::Created => "created".to_owned(),
            ApplyOutcome::Configured => "configured".to_owned(),
            ApplyOutcome::Unchanged => "unchanged".to_owned(),
            ApplyOutcome::Failed { reason } => format!("FAILED: {reason}"),
        };
        let _ = writeln!(out, "  {} {what}", a.id);
    }
    let pruned = if report.garbage_collection == GarbageCollection::DryRun { "would be pruned" } else { "pruned" };
    for d in &report.pruned {
        let what = match &d.outcome {
            DeleteOutcome::Failed { reason } => format!("prune FAILED: {reason}"),
            _ => pruned.to_owned(),
        };
        let _ = writeln!(out, "  {} {what}", d.id);
    }
    let _ = writeln!(out, "  {} unchanged", report.unchanged);
    for e in &report.errors {
        let _ = writeln!(out, "  error: {}", e.message);
    }
    out
}

/// A sync plan: what a sync would do.
pub(crate) fn plan_text(plan: &SyncPlan) -> String {
    let mut out = String::new();
    let usable = if plan.usable { "" } else { " (UNUSABLE: nothing would be pruned)" };
    let _ = writeln!(out, "sync of {} would{usable}:", plan.revision.short());
    for a in &plan.apply {
        let _ = writeln!(out, "  apply {} ({:?})", a.object.id(), a.reason);
    }
    for p in &plan.prune {
        let _ = writeln!(out, "  prune {}", p.id);
    }
    for r in &plan.refused {
        let _ = writeln!(out, "  refuse {}: {}", r.id, r.reason);
    }
    let _ = writeln!(out, "  {} unchanged", plan.unchanged.len());
    for e in &plan.errors {
        let _ = writeln!(out, "  error: {}", e.message);
    }
    out
}

/// An automation pass.
pub(crate) fn automation_text(report: &AutomationReport, dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would update" } else { "updated" };
    if report.changes.is_empty() {
        let _ = writeln!(out, "automation: no image to update");
    }
    for c in &report.changes {
        let _ = writeln!(out, "automation {verb} {} ({}): {} -> {}", c.workload, c.container, c.from, c.to);
    }
    if let (Some(rev), false) = (&report.revision, dry_run) {
        let _ = writeln!(out, "automation committed {}", rev.short());
    }
    for f in &report.failed {
        let _ = writeln!(out, "automation FAILED for {} ({}): {}", f.change.workload, f.change.container, f.error);
    }
    for f in &report.registry_errors {
        let _ = writeln!(out, "registry error for {}: {}", f.repository, f.error);
    }
    out
}

/// Logs a sync report: one line, plus one per failure.
pub(crate) fn log_sync(report: &SyncReport) {
    let failed = report.applied.iter().filter(|a| matches!(a.outcome, ApplyOutcome::Failed { .. })).count();
    if report.is_success() {
        tracing::info!(
            revision = report.revision.short(),
            applied = report.applied.len(),
            pruned = report.pruned.len(),
            unchanged = report.unchanged,
            "sync done"
        );
    } else {
        tracing::error!(revision = report.revision.short(), failed, errors = report.errors.len(), "sync FAILED");
        for e in &report.errors {
            tracing::error!(error = %e.message, "sync error");
        }
    }
}
