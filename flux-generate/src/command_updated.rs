//! Running a `.flux.yaml` `commandUpdated` path's updaters.

use flux_core::generate::{EditChange, Snapshot, Updated, WorkloadEdit};
use flux_core::{Error, Location};

use crate::checkout::Checkout;
use crate::flux_yaml::Updater;
use crate::generator::RepoGenerator;
use crate::layout::FluxYamlUnit;

/// Runs, for each edit, every updater's `containerImage` (or `policy`) command in a fresh
/// checkout, with the edit in Flux v1's environment variables, and returns the files they
/// changed. A command that fails fails every edit of the path, and nothing of it is written:
/// a half-updated path is never committed.
pub(crate) async fn update(
    generator: &RepoGenerator,
    snapshot: &Snapshot,
    unit: &FluxYamlUnit,
    updaters: &[Updater],
    edits: &[(usize, &WorkloadEdit)],
) -> Updated {
    let fail_all = |reason: String| Updated {
        files: Vec::new(),
        failed: edits.iter().map(|(i, _)| (*i, Error::other(reason.clone()))).collect(),
    };
    let files = match snapshot.all_files().await {
        Ok(files) => files,
        Err(e) => return fail_all(e.to_string()),
    };
    let checkout = match Checkout::new(&files) {
        Ok(c) => c,
        Err(e) => return fail_all(e.to_string()),
    };
    let mut updated = Updated::default();
    for (i, edit) in edits {
        let (kind, commands): (&str, Vec<_>) = match &edit.change {
            EditChange::Image { .. } => {
                ("containerImage", updaters.iter().filter_map(|u| u.container_image.as_ref()).collect())
            }
            EditChange::Annotation { .. } => ("policy", updaters.iter().filter_map(|u| u.policy.as_ref()).collect()),
        };
        if commands.is_empty() {
            updated.failed.push((
                *i,
                Error::invalid(
                    Location::file(&unit.config.file),
                    format!("{} has no {kind} updater", unit.config.file),
                ),
            ));
            continue;
        }
        let env = crate::updater_env(&edit.workload, &(&edit.change).into());
        for command in commands {
            let origin = Location::line(&unit.config.file, command.line);
            let shell = generator.command(&command.command, checkout.path().join(&unit.target), origin, env.clone());
            if let Err(e) = generator.runner().run(&shell).await.map(drop) {
                return fail_all(format!("{}: {e}", edit.workload));
            }
        }
    }
    match checkout.changes(&files) {
        Ok(changes) => updated.files = changes,
        Err(e) => return fail_all(e.to_string()),
    }
    updated
}
