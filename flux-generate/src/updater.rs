//! The environment Flux v1 gave `.flux.yaml` updaters, naming the workload and the change.

use flux_core::manifest::{PREFIX, annotation_edits};
use flux_core::{ImageRef, PolicyChange, ResourceId};

/// One change an updater command is run for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdaterChange {
    /// A container's image changes (the `containerImage` updater).
    Image {
        /// The container's name.
        container: String,
        /// The image it changes to.
        image: ImageRef,
    },
    /// A policy is set or removed (the `policy` updater).
    Policy {
        /// The policy's name, without `fluxcd.io/` (e.g. `automated`, `tag.app`).
        name: String,
        /// The new value, or `None` to remove the policy.
        value: Option<String>,
    },
}

impl UpdaterChange {
    /// The policy changes that make `change`, one per policy set or removed, as Flux v1 ran its
    /// policy updater once per annotation (`Lock` sets `locked` and sets or removes
    /// `locked_msg` and `locked_user`).
    pub fn policies(change: &PolicyChange) -> Vec<UpdaterChange> {
        annotation_edits(change)
            .into_iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(PREFIX)?;
                Some(UpdaterChange::Policy { name: name.to_owned(), value })
            })
            .collect()
    }
}

/// The variables an updater runs with: `FLUX_WORKLOAD` (`namespace:kind/name`, the kind lower
/// case), `FLUX_WL_NS`, `FLUX_WL_KIND`, `FLUX_WL_NAME`; for an image `FLUX_CONTAINER`,
/// `FLUX_IMG` (the image as written, without tag or digest) and `FLUX_TAG` (empty when the
/// reference has none); for a policy `FLUX_POLICY` and, unless it is removed, `FLUX_POLICY_VALUE`.
///
/// A cluster-scoped workload's namespace is `<cluster>`, as in its id.
pub fn updater_env(workload: &ResourceId, change: &UpdaterChange) -> Vec<(String, String)> {
    let id = workload.to_string();
    let namespace = id.split_once(':').map_or("", |(ns, _)| ns).to_owned();
    let mut env = vec![
        ("FLUX_WORKLOAD".to_owned(), id.clone()),
        ("FLUX_WL_NS".to_owned(), namespace),
        ("FLUX_WL_KIND".to_owned(), workload.kind().to_owned()),
        ("FLUX_WL_NAME".to_owned(), workload.name().to_owned()),
    ];
    match change {
        UpdaterChange::Image { container, image } => {
            let name = match image.domain() {
                Some(domain) => format!("{domain}/{}", image.path()),
                None => image.path().to_owned(),
            };
            env.push(("FLUX_CONTAINER".to_owned(), container.clone()));
            env.push(("FLUX_IMG".to_owned(), name));
            env.push(("FLUX_TAG".to_owned(), image.tag().unwrap_or_default().to_owned()));
        }
        UpdaterChange::Policy { name, value } => {
            let name = name.strip_prefix(PREFIX).unwrap_or(name);
            env.push(("FLUX_POLICY".to_owned(), name.to_owned()));
            if let Some(value) = value {
                env.push(("FLUX_POLICY_VALUE".to_owned(), value.clone()));
            }
        }
    }
    env
}
