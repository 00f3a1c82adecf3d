//! The environment Flux v1 gave `.flux.yaml` updaters, naming the workload and the change.

use flux_core::generate::EditChange;
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

impl From<&EditChange> for UpdaterChange {
    /// An annotation edit is the policy it stands for (`fluxcd.io/` taken off).
    fn from(change: &EditChange) -> Self {
        match change {
            EditChange::Image { container, image } => {
                UpdaterChange::Image { container: container.clone(), image: image.clone() }
            }
            EditChange::Annotation { key, value } => {
                UpdaterChange::Policy { name: key.strip_prefix(PREFIX).unwrap_or(key).to_owned(), value: value.clone() }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use flux_core::policy::{Lock, TagFilter};

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn image_change() {
        let workload = ResourceId::namespaced("prod", "Deployment", "web");
        let image: ImageRef = "registry.local:5000/team/web:2.1.0".parse().unwrap();
        let env = updater_env(&workload, &UpdaterChange::Image { container: "app".into(), image });
        let expected = [
            ("FLUX_WORKLOAD", "prod:deployment/web"),
            ("FLUX_WL_NS", "prod"),
            ("FLUX_WL_KIND", "deployment"),
            ("FLUX_WL_NAME", "web"),
            ("FLUX_CONTAINER", "app"),
            ("FLUX_IMG", "registry.local:5000/team/web"),
            ("FLUX_TAG", "2.1.0"),
        ];
        assert_eq!(env, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let hub = updater_env(
            &workload,
            &UpdaterChange::Image { container: "c".into(), image: "nginx:1.25".parse().unwrap() },
        );
        assert_eq!((get(&hub, "FLUX_IMG"), get(&hub, "FLUX_TAG")), (Some("nginx"), Some("1.25")));
    }

    #[test]
    fn policy_changes() {
        let workload = ResourceId::cluster_scoped("ClusterRole", "viewer");
        let set = updater_env(
            &workload,
            &UpdaterChange::Policy { name: "fluxcd.io/automated".into(), value: Some("true".into()) },
        );
        assert_eq!(get(&set, "FLUX_WORKLOAD"), Some("<cluster>:clusterrole/viewer"));
        assert_eq!(get(&set, "FLUX_WL_NS"), Some("<cluster>"));
        assert_eq!(get(&set, "FLUX_POLICY"), Some("automated"));
        assert_eq!(get(&set, "FLUX_POLICY_VALUE"), Some("true"));
        assert_eq!(get(&set, "FLUX_CONTAINER"), None);
        let removed = updater_env(&workload, &UpdaterChange::Policy { name: "locked".into(), value: None });
        assert_eq!(get(&removed, "FLUX_POLICY"), Some("locked"));
        assert_eq!(get(&removed, "FLUX_POLICY_VALUE"), None);
    }

    #[test]
    fn policy_changes_become_one_updater_change_per_policy() {
        let policy = |name: &str, value: Option<&str>| UpdaterChange::Policy {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        };
        assert_eq!(UpdaterChange::policies(&PolicyChange::Automate), [policy("automated", Some("true"))]);
        assert_eq!(UpdaterChange::policies(&PolicyChange::Deautomate), [policy("automated", None)]);
        let lock = PolicyChange::Lock(Lock { message: Some("incident 42".into()), user: None });
        assert_eq!(
            UpdaterChange::policies(&lock),
            [policy("locked", Some("true")), policy("locked_msg", Some("incident 42")), policy("locked_user", None)]
        );
        let filter =
            PolicyChange::SetTagFilter { container: "app".into(), filter: TagFilter::new("semver:^1").unwrap() };
        assert_eq!(UpdaterChange::policies(&filter), [policy("tag.app", Some("semver:^1"))]);
    }
}
