//! `--once` (one full round, then exit) and `--dry-run` (plan only, write nothing).

use flux_daemon::SyncUnit;
use flux_daemon::dry_run::plan;

use crate::flags::DryRunFormat;
use crate::report::{automation_text, sync_text};

/// Fetch, sync, one automation pass, sync again if it committed. `Ok(true)` when all went well.
pub(crate) async fn once(unit: &SyncUnit) -> flux_core::Result<bool> {
    let parts = unit.engines();
    let scanning = unit.scanning();
    let head = unit.source().refresh().await?;
    let report = parts.sync.sync(&head).await;
    print!("{}", sync_text(&report));
    let mut ok = report.is_success();
    if let Some(timeout) = unit.health_wait()
        && ok
    {
        let health = flux_daemon::wait_for_health(unit, &parts, &head, timeout).await?;
        println!("health: {}", health.summary());
        ok &= health.is_healthy();
    }
    if scanning {
        // An automation error (an unreadable manifest, say) fails the round, it does not abort it.
        let auto = match parts.automation.automate().await {
            Ok(auto) => auto,
            Err(e) => {
                println!("automation FAILED: {e}");
                return Ok(false);
            }
        };
        print!("{}", automation_text(&auto, false));
        ok &= auto.failed.is_empty() && auto.registry_errors.is_empty();
        if auto.revision.is_some() {
            let head = unit.source().refresh().await?;
            let again = parts.sync.sync(&head).await;
            print!("{}", sync_text(&again));
            ok &= again.is_success();
        }
    }
    Ok(ok)
}

/// What a sync of the head and an automation pass would change, with nothing written anywhere
/// (the diff [plan](flux_daemon::dry_run::plan)), printed in `format`. The exit code `kubectl
/// diff` gives: 0 no changes, 1 changes, 2 when something could not be planned.
pub(crate) async fn dry_run(unit: &SyncUnit, format: DryRunFormat) -> flux_core::Result<u8> {
    let parts = unit.engines();
    let head = unit.source().refresh().await?;
    let plan = plan::plan(unit, &parts.sync, &head, true).await;
    match format {
        DryRunFormat::Text => print!("{}", plan.text()),
        DryRunFormat::Markdown => print!("{}", plan.markdown()),
    }
    Ok(if !plan.is_ok() {
        2
    } else if plan.has_changes() {
        1
    } else {
        0
    })
}
