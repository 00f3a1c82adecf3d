//! Reports for people: sync reports, plans and automation passes as text lines, and in logs.

use std::fmt::Write as _;

use flux_core::automation::AutomationReport;
use flux_core::manifest::Skipped;
use flux_core::sync::{GarbageCollection, SyncReport};
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
            ApplyOutcome::Interrupted { reason } => format!("NOT APPLIED: {reason}"),
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
    for k in &report.kept {
        let _ = writeln!(out, "  {k}");
    }
    for r in &report.refused {
        let _ = writeln!(out, "  {} refused: {}", r.id, r.reason);
    }
    let _ = writeln!(out, "  {} unchanged", report.unchanged);
    skipped_text(&mut out, &report.skipped);
    for e in &report.errors {
        let _ = writeln!(out, "  error: {}", e.error);
    }
    out
}

/// What was not read as Kubernetes objects, one line each.
fn skipped_text(out: &mut String, skipped: &[Skipped]) {
    for s in skipped {
        let _ = writeln!(out, "  skipped {s}");
    }
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
    for s in &report.skipped {
        let _ = writeln!(out, "automation skipped {}: {}", s.workload, s.reason);
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

#[cfg(test)]
mod tests {
    use flux_core::manifest::SkipReason;

    use super::*;

    #[test]
    fn skipped_files_are_one_line_each() {
        let skipped = [
            Skipped { path: ".github/".into(), line: None, reason: SkipReason::HiddenDirectory },
            Skipped { path: "dash.json".into(), line: Some(1), reason: SkipReason::NotAnObject },
        ];
        let mut out = String::new();
        skipped_text(&mut out, &skipped);
        assert_eq!(
            out,
            "  skipped .github/: a hidden directory\n  skipped dash.json:1: not a Kubernetes object (no apiVersion and no kind)\n"
        );
    }
}
