//! `--once` (one full round, then exit) and `--dry-run` (plan only, write nothing).

use std::sync::Arc;

use flux_core::automation::AutomationEngine;
use flux_core::{Registry, Source};

use crate::dry_run::{RecordingSource, commit_diff};
use crate::report::{automation_text, plan_text, sync_text};
use crate::wiring::Parts;

/// Fetch, sync, one automation pass, sync again if it committed. `Ok(true)` when all went well.
pub(crate) async fn once(parts: &Parts, scanning: bool) -> flux_core::Result<bool> {
    let head = parts.source.refresh().await?;
    let report = parts.sync.sync(&head).await;
    print!("{}", sync_text(&report));
    let mut ok = report.is_success();
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
            let head = parts.source.refresh().await?;
            let again = parts.sync.sync(&head).await;
            print!("{}", sync_text(&again));
            ok &= again.is_success();
        }
    }
    Ok(ok)
}

/// What a sync and an automation pass would change, with nothing written anywhere: the sync is
/// only planned, and automation commits into a [`RecordingSource`].
pub(crate) async fn dry_run(parts: &Parts, scanning: bool) -> flux_core::Result<bool> {
    let head = parts.source.refresh().await?;
    let plan = parts.sync.plan(&head).await;
    print!("{}", plan_text(&plan));
    let mut ok = plan.usable && plan.errors.is_empty();
    if scanning {
        let recording = Arc::new(RecordingSource::new(parts.source.clone()));
        let registry: Arc<dyn Registry> = parts.registry.clone();
        let engine =
            AutomationEngine::new(recording.clone() as Arc<dyn Source>, registry, parts.automation.config().clone())
                .with_generator(parts.generator.clone());
        let auto = match engine.automate().await {
            Ok(auto) => auto,
            Err(e) => {
                println!("automation FAILED: {e}");
                return Ok(false);
            }
        };
        print!("{}", automation_text(&auto, true));
        for commit in recording.commits() {
            println!("automation would commit \"{}\":", commit.message.lines().next().unwrap_or_default());
            print!("{}", commit_diff(parts.source.as_ref(), &commit).await);
        }
        ok &= auto.failed.is_empty() && auto.registry_errors.is_empty();
    }
    Ok(ok)
}
