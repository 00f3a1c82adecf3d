//! Workload policies as annotations: reading them, and the annotation edits a change needs.
//!
//! Keys are read under `fluxcd.io/` and the legacy `flux.weave.works/`; when both spell the same
//! policy, `fluxcd.io/` wins. A tag filter may also be written `filter.fluxcd.io/<container>`
//! (Flux v1's spelling for HelmReleases); `fluxcd.io/tag.<container>` wins over it. Edits always
//! write `fluxcd.io/` keys and remove the other spellings.

use std::collections::BTreeMap;

use crate::policy::{Ignore, Lock, Policies, PolicyChange, TagFilter};

/// The annotation prefix policies are written under.
pub const PREFIX: &str = "fluxcd.io/";
/// Flux v1's older prefix, still read.
pub const LEGACY_PREFIX: &str = "flux.weave.works/";
/// Flux v1's other spelling of a tag filter: `filter.fluxcd.io/<container>`.
pub const FILTER_PREFIX: &str = "filter.fluxcd.io/";

const AUTOMATED: &str = "automated";
const LOCKED: &str = "locked";
const LOCKED_MSG: &str = "locked_msg";
const LOCKED_USER: &str = "locked_user";
const IGNORE: &str = "ignore";
const TAG: &str = "tag.";

/// A policy annotation that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The annotation key, as written.
    pub annotation: String,
    /// What is wrong with its value.
    pub message: String,
}

/// The value of a policy under either prefix, `fluxcd.io/` first, with the key it was found at.
fn lookup<'a>(annotations: &'a BTreeMap<String, String>, name: &str) -> Option<(String, &'a str)> {
    [PREFIX, LEGACY_PREFIX].iter().find_map(|prefix| {
        let key = format!("{prefix}{name}");
        annotations.get(&key).map(|v| (key, v.as_str()))
    })
}

/// Reads a workload's policies from its annotations, checking every tag filter.
///
/// # Errors
/// One [`PolicyError`] per annotation with a bad value: a tag filter that does not compile, or
/// an `ignore` other than `true`, `false` or `sync_only`.
pub fn policies_from_annotations(annotations: &BTreeMap<String, String>) -> Result<Policies, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut policies =
        Policies { automated: lookup(annotations, AUTOMATED).is_some_and(|(_, v)| v == "true"), ..Policies::default() };
    if lookup(annotations, LOCKED).is_some_and(|(_, v)| v == "true") {
        let text = |name| lookup(annotations, name).map(|(_, v)| v.to_owned()).filter(|v| !v.is_empty());
        policies.locked = Some(Lock { message: text(LOCKED_MSG), user: text(LOCKED_USER) });
    }
    match lookup(annotations, IGNORE) {
        None | Some((_, "false")) => {}
        Some((_, "true")) => policies.ignore = Some(Ignore::All),
        Some((_, "sync_only")) => policies.ignore = Some(Ignore::SyncOnly),
        Some((key, other)) => errors.push(PolicyError {
            annotation: key,
            message: format!("must be \"true\", \"false\" or \"sync_only\", not {other:?}"),
        }),
    }
    // Weaker spellings first, so that fluxcd.io/tag. replaces them.
    let tag_keys = [(LEGACY_PREFIX, TAG), (FILTER_PREFIX, ""), (PREFIX, TAG)];
    for (prefix, tag) in tag_keys {
        for (key, value) in annotations {
            let Some(container) = key.strip_prefix(prefix).and_then(|k| k.strip_prefix(tag)) else { continue };
            if container.is_empty() {
                errors.push(PolicyError { annotation: key.clone(), message: "names no container".to_owned() });
                continue;
            }
            match TagFilter::new(value.as_str()) {
                Ok(filter) => {
                    policies.tag_filters.insert(container.to_owned(), filter);
                }
                Err(e) => errors.push(PolicyError { annotation: key.clone(), message: error_message(&e) }),
            }
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}

fn error_message(error: &crate::Error) -> String {
    match error {
        crate::Error::InvalidInput { location, message } => format!("{message} in {:?}", location.file),
        other => other.to_string(),
    }
}

/// The annotation edits that make `change`: `(key, Some(value))` sets, `(key, None)` removes.
///
/// Legacy `flux.weave.works/` and `filter.fluxcd.io/` spellings of the same keys are removed, so
/// the result reads back as intended whichever spelling the file used.
pub fn annotation_edits(change: &PolicyChange) -> Vec<(String, Option<String>)> {
    let set = |name: &str, value: &str| {
        vec![(format!("{LEGACY_PREFIX}{name}"), None), (format!("{PREFIX}{name}"), Some(value.to_owned()))]
    };
    let remove = |name: &str| vec![(format!("{LEGACY_PREFIX}{name}"), None), (format!("{PREFIX}{name}"), None)];
    match change {
        PolicyChange::Automate => set(AUTOMATED, "true"),
        PolicyChange::Deautomate => remove(AUTOMATED),
        PolicyChange::Lock(lock) => {
            let mut edits = set(LOCKED, "true");
            for (name, value) in [(LOCKED_MSG, &lock.message), (LOCKED_USER, &lock.user)] {
                match value {
                    Some(v) => edits.extend(set(name, v)),
                    None => edits.extend(remove(name)),
                }
            }
            edits
        }
        PolicyChange::Unlock => [LOCKED, LOCKED_MSG, LOCKED_USER].iter().flat_map(|n| remove(n)).collect(),
        PolicyChange::SetTagFilter { container, filter } => {
            let mut edits = vec![(format!("{FILTER_PREFIX}{container}"), None)];
            edits.extend(set(&format!("{TAG}{container}"), filter.as_str()));
            edits
        }
        PolicyChange::ClearTagFilter { container } => {
            let mut edits = vec![(format!("{FILTER_PREFIX}{container}"), None)];
            edits.extend(remove(&format!("{TAG}{container}")));
            edits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn reads_every_policy() {
        let p = policies_from_annotations(&map(&[
            ("fluxcd.io/automated", "true"),
            ("fluxcd.io/locked", "true"),
            ("fluxcd.io/locked_msg", "incident 42"),
            ("fluxcd.io/locked_user", "ada"),
            ("fluxcd.io/tag.app", "semver:~1.0"),
            ("fluxcd.io/tag.sidecar", "3.*"),
            ("fluxcd.io/ignore", "sync_only"),
        ]))
        .unwrap();
        assert!(p.automated);
        assert_eq!(p.locked, Some(Lock { message: Some("incident 42".into()), user: Some("ada".into()) }));
        assert_eq!(p.tag_filter("app").as_str(), "semver:~1.0");
        assert_eq!(p.tag_filter("sidecar").as_str(), "3.*");
        assert_eq!(p.ignore, Some(Ignore::SyncOnly));
        assert!(!p.is_automatable());
    }

    #[test]
    fn legacy_prefix_is_read_and_the_new_one_wins() {
        let p = policies_from_annotations(&map(&[
            ("flux.weave.works/automated", "true"),
            ("flux.weave.works/tag.app", "glob:1.*"),
            ("fluxcd.io/tag.app", "glob:2.*"),
            ("flux.weave.works/tag.db", "semver:^15"),
            ("filter.fluxcd.io/db", "semver:^16"),
            ("filter.fluxcd.io/app", "glob:3.*"),
            ("filter.fluxcd.io/cache", "glob:7.*"),
            ("flux.weave.works/ignore", "true"),
        ]))
        .unwrap();
        assert_eq!(p.tag_filter("cache").as_str(), "glob:7.*");
        assert!(p.automated);
        assert_eq!(p.tag_filter("app").as_str(), "glob:2.*");
        assert_eq!(p.tag_filter("db").as_str(), "semver:^16");
        assert_eq!(p.ignore, Some(Ignore::All));
        let p =
            policies_from_annotations(&map(&[("fluxcd.io/automated", "false"), ("fluxcd.io/locked", "no")])).unwrap();
        assert_eq!(p, Policies::default());
    }

    #[test]
    fn bad_values_name_their_annotation() {
        let errors = policies_from_annotations(&map(&[
            ("fluxcd.io/tag.app", "semver:~~1"),
            ("fluxcd.io/ignore", "yes"),
            ("fluxcd.io/tag.", "1.*"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.annotation.as_str()).collect();
        assert_eq!(keys, ["fluxcd.io/ignore", "fluxcd.io/tag.", "fluxcd.io/tag.app"]);
        assert!(errors[2].message.contains("invalid tag filter"), "{:?}", errors[2]);
    }

    #[test]
    fn edits_read_back_as_the_change() {
        let start = map(&[
            ("flux.weave.works/automated", "true"),
            ("flux.weave.works/tag.app", "1.*"),
            ("filter.fluxcd.io/app", "2.*"),
        ]);
        let changes = [
            PolicyChange::Deautomate,
            PolicyChange::Lock(Lock { message: Some("why".into()), user: None }),
            PolicyChange::SetTagFilter { container: "app".into(), filter: TagFilter::new("semver:^2").unwrap() },
            PolicyChange::Automate,
            PolicyChange::Unlock,
            PolicyChange::ClearTagFilter { container: "app".into() },
        ];
        let mut annotations = start.clone();
        let mut expected = policies_from_annotations(&start).unwrap();
        for change in &changes {
            for (key, value) in annotation_edits(change) {
                match value {
                    Some(v) => annotations.insert(key, v),
                    None => annotations.remove(&key),
                };
            }
            expected = expected.with(change);
            assert_eq!(policies_from_annotations(&annotations).unwrap(), expected, "after {change:?}");
        }
        assert_eq!(annotations, map(&[("fluxcd.io/automated", "true")]));
    }
}
