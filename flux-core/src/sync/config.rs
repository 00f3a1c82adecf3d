//! What one sync unit is: its identity, paths, garbage collection and restrictions.

use std::collections::BTreeSet;

use crate::cluster::SyncIdentity;
use crate::object::KubeObject;

/// What happens to objects this identity applied that are no longer in git.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarbageCollection {
    /// Left alone (Flux v1's default).
    #[default]
    Off,
    /// Reported as what would be deleted, not deleted.
    DryRun,
    /// Deleted.
    On,
}

/// One sync unit: a set of paths in a source, applied under one identity.
///
/// Several units can run side by side in one process (for several repositories, or several
/// paths of one) as long as their identities differ: each unit only ever prunes objects carrying
/// its own identity.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The identity marked on every object applied (`fluxcd.io/sync-gc-mark`).
    pub identity: SyncIdentity,
    /// The paths in the source whose manifests are the desired state (empty: the root).
    pub paths: Vec<String>,
    /// Garbage collection of objects that left git.
    pub garbage_collection: GarbageCollection,
    /// Apply what could be read from an unusable revision (one with errors). Nothing is ever
    /// pruned on the basis of an unusable revision, whatever this says. Default: off.
    pub apply_unusable: bool,
    /// Let a revision with no objects at all prune everything this identity applied. Without
    /// it, an empty result where objects are managed makes the revision unusable: an empty
    /// result is far more often a broken generator or a wrong path than intent.
    pub allow_empty: bool,
    /// How many apply calls run at once within a stage.
    pub concurrency: usize,
    /// When set, only objects in these namespaces are applied or pruned; others are refused.
    pub allowed_namespaces: Option<BTreeSet<String>>,
    /// With `allowed_namespaces` set, whether cluster-scoped objects are still allowed (Flux v1's
    /// rule: all of them but Namespaces, which are allowed only when listed).
    pub allow_cluster_scoped: bool,
    /// Resources never applied nor pruned, case-insensitive: Flux v1's `group/version/kind` globs
    /// (`apps/v1/Deployment`, `v1/Event`, `*metrics.k8s.io/*`; `*` any text, `?` one character),
    /// `Kind` (any group) or `group/Kind`. A pattern matches when it matches any of the three
    /// forms of the object's type (`apiVersion/Kind`, `group/Kind`, `Kind`).
    pub denied_kinds: Vec<String>,
    /// Move the source's "last synced" marker after a successful sync (off for read-only sources).
    pub move_marker: bool,
    /// Flux v1 sync-set names ([`flux_v1_sync_set_name`]) whose marks this unit recognises as its
    /// own: objects Flux v1 applied are then managed (re-marked at their next apply, collected
    /// when they leave git) instead of orphaned or taken over blindly. With any set here,
    /// listing the unit's objects selects every marked object in the cluster (Flux v1's objects
    /// carry no unit label), not only this unit's. Default: none.
    pub legacy_sync_sets: Vec<String>,
    /// Garbage-collect the objects of paths no longer in [`SyncConfig::paths`] too. Without it
    /// (Flux v1's behaviour: the paths were part of its sync set) such objects are orphaned:
    /// left in the cluster and listed in the report. Default: off.
    pub prune_removed_paths: bool,
    /// Stops a sync that would prune a large share of the unit's objects before it deletes
    /// anything, until one prune is allowed ([`SyncEngine::allow_prune_once`](crate::sync::SyncEngine::allow_prune_once)).
    /// `None`: no guard. Default: [`PruneGuard::default`] (over 50%, and at least 10 objects).
    pub prune_guard: Option<PruneGuard>,
}

/// When a sync's garbage collection is held: it would delete at least
/// [`min_objects`](PruneGuard::min_objects) objects, and more than
/// [`max_percent`](PruneGuard::max_percent) percent of the objects the unit manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneGuard {
    /// The share of the unit's managed objects, in percent (1 to 100), that a sync may delete.
    pub max_percent: u8,
    /// Fewer deletions than this are never held, whatever their share.
    pub min_objects: usize,
}

impl Default for PruneGuard {
    /// Over 50% of the unit's objects, and at least 10.
    fn default() -> Self {
        PruneGuard { max_percent: 50, min_objects: 10 }
    }
}

impl PruneGuard {
    /// Whether deleting `pruning` of the `managed` objects a unit manages is held.
    pub fn holds(&self, pruning: usize, managed: usize) -> bool {
        pruning >= self.min_objects.max(1)
            && pruning.saturating_mul(100) > managed.saturating_mul(self.max_percent.into())
    }
}

/// Flux v1's sync-set name for a repository: what its `makeGitConfigHash` made of `--git-url`,
/// `--git-branch` and `--git-path`: the unpadded URL-safe base64 of SHA-256(safe URL + branch +
/// each path, as given). The safe URL is the URL as Go's `giturls.Parse` read it, without a
/// password: `user@host:path` becomes `ssh://user@host/path`, a bare local path `file://path`.
pub fn flux_v1_sync_set_name(git_url: &str, branch: &str, paths: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(flux_v1_safe_url(git_url).as_bytes());
    hasher.update(branch.as_bytes());
    for path in paths {
        hasher.update(path.as_bytes());
    }
    crate::cluster::base64_url_nopad(&hasher.finalize())
}

/// Flux v1's `Remote.SafeURL`: git-urls v1.0.0's parse (a known transport scheme, else scp-like
/// `user@host:path`, else a local path), the password dropped, printed as Go's `url.URL` does
/// for the forms git URLs take.
fn flux_v1_safe_url(url: &str) -> String {
    const TRANSPORTS: [&str; 9] = ["ssh", "git", "git+ssh", "http", "https", "ftp", "ftps", "rsync", "file"];
    if let Some((scheme, rest)) = url.split_once(':') {
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        let scheme = scheme.to_ascii_lowercase();
        if scheme_ok && TRANSPORTS.contains(&scheme.as_str()) {
            let Some(rest) = rest.strip_prefix("//") else {
                // `file:/x` is printed `file:///x`; an opaque `scheme:x` as it is.
                return if rest.starts_with('/') { format!("{scheme}://{rest}") } else { format!("{scheme}:{rest}") };
            };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => format!("{}@{host}", user.split_once(':').map_or(user, |(name, _)| name)),
                None => authority.to_owned(),
            };
            return format!("{scheme}://{authority}{tail}");
        }
    }
    // git-urls' scpSyntax: ^([a-zA-Z0-9_]+@)?([a-zA-Z0-9._-]+):([a-zA-Z0-9./._-]+)(?:\?||$)(.*)$
    let word =
        |s: &str, extra: &[char]| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if let Some((head, path)) = url.split_once(':') {
        let (user, host) = match head.split_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, head),
        };
        let path_len = path.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-')));
        let (path, query) = match path_len {
            Some(n) => (&path[..n], path[n..].strip_prefix('?').unwrap_or(&path[n..])),
            None => (path, ""),
        };
        if user.is_none_or(|u| word(u, &['_'])) && word(host, &['.', '_', '-']) && !path.is_empty() {
            let user = user.map(|u| format!("{u}@")).unwrap_or_default();
            let slash = if path.starts_with('/') { "" } else { "/" };
            let query = if query.is_empty() { String::new() } else { format!("?{query}") };
            return format!("ssh://{user}{host}{slash}{path}{query}");
        }
    }
    format!("file://{url}")
}

impl SyncConfig {
    /// A unit for `paths` under `identity`: no garbage collection, 8 concurrent applies, no
    /// restrictions, marker moved, the default [`PruneGuard`].
    pub fn new(identity: SyncIdentity, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        SyncConfig {
            identity,
            paths: paths.into_iter().map(Into::into).collect(),
            garbage_collection: GarbageCollection::Off,
            apply_unusable: false,
            allow_empty: false,
            concurrency: 8,
            allowed_namespaces: None,
            allow_cluster_scoped: false,
            denied_kinds: Vec::new(),
            move_marker: true,
            legacy_sync_sets: Vec::new(),
            prune_removed_paths: false,
            prune_guard: Some(PruneGuard::default()),
        }
    }

    /// Why this unit may not touch `object`, if it may not.
    pub(crate) fn refusal(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<String> {
        let group = crate::kinds::api_group(api_version);
        let forms = [format!("{api_version}/{kind}"), format!("{group}/{kind}"), kind.to_owned()];
        let denied = self.denied_kinds.iter().any(|d| forms.iter().any(|form| glob_matches(d, form)));
        if denied {
            return Some(format!("kind {kind} is excluded from syncing"));
        }
        let allowed = self.allowed_namespaces.as_ref()?;
        match namespace {
            Some(ns) if !allowed.contains(ns) => Some(format!("namespace {ns} is not in the allowed namespaces")),
            None if !self.allow_cluster_scoped => {
                Some("cluster-scoped objects are not allowed when namespaces are restricted".to_owned())
            }
            None if group.is_empty() && kind.eq_ignore_ascii_case("Namespace") && !allowed.contains(name) => {
                Some(format!("namespace {name} is not in the allowed namespaces"))
            }
            _ => None,
        }
    }

    pub(crate) fn refuses(&self, object: &KubeObject) -> Option<String> {
        self.refusal(object.api_version(), object.kind(), object.namespace(), object.name())
    }
}

/// Whether `text` matches the glob `pattern` (`*` any text, `?` one character), ignoring case.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) =
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_resources_take_flux_v1_globs_and_kinds() {
        let mut config = SyncConfig::new(SyncIdentity::new("t").expect("identity"), Vec::<String>::new());
        config.denied_kinds =
            ["*metrics.k8s.io/*", "webhook.certmanager.k8s.io/*", "v1/Event", "secret", "apps/Deployment"]
                .map(str::to_owned)
                .to_vec();
        let refused = |api: &str, kind: &str| config.refusal(api, kind, Some("ns"), "x").is_some();
        assert!(refused("metrics.k8s.io/v1beta1", "PodMetrics"));
        assert!(refused("custom.metrics.k8s.io/v1beta2", "MetricValueList"));
        assert!(refused("webhook.certmanager.k8s.io/v1beta1", "MutatingWebhook"));
        assert!(refused("v1", "Event"), "v1's core group/version/kind form");
        assert!(!refused("events.k8s.io/v1", "Event"), "only the core Event");
        assert!(refused("v1", "Secret"), "a Kind, any group");
        assert!(refused("apps/v1", "Deployment"), "group/Kind");
        assert!(!refused("apps/v1", "StatefulSet"));
        assert!(!refused("v1", "ConfigMap"));
        assert!(glob_matches("a?c*", "abcdef") && !glob_matches("a?c", "abcd") && glob_matches("*", ""));
    }

    #[test]
    fn restricted_namespaces_allow_cluster_scoped_objects_but_unlisted_namespaces() {
        let mut config = SyncConfig::new(SyncIdentity::new("t").expect("identity"), Vec::<String>::new());
        config.allowed_namespaces = Some(["team".to_owned()].into());
        assert!(config.refusal("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r").is_some(), "off by default");
        config.allow_cluster_scoped = true;
        assert!(config.refusal("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r").is_none());
        assert!(config.refusal("v1", "Namespace", None, "team").is_none());
        assert!(config.refusal("v1", "Namespace", None, "other").is_some(), "Flux v1: a Namespace only when listed");
        assert!(config.refusal("v1", "ConfigMap", Some("other"), "c").is_some());
    }

    #[test]
    fn prune_guard_holds_over_its_share_from_its_minimum() {
        let guard = PruneGuard::default();
        assert!(guard.holds(100, 150), "two thirds");
        assert!(guard.holds(10, 19), "10 of 19 is over half");
        assert!(!guard.holds(10, 20), "exactly half is not over it");
        assert!(!guard.holds(9, 9), "under the minimum, even all of them");
        assert!(!guard.holds(0, 0));
        assert!(PruneGuard { max_percent: 100, min_objects: 10 }.holds(11, 10), "more than managed (a bad count)");
        assert!(!PruneGuard { max_percent: 100, min_objects: 10 }.holds(10, 10), "100% allows everything");
        assert!(PruneGuard { max_percent: 10, min_objects: 0 }.holds(1, 9), "a minimum of 0 counts as 1");
        assert!(!PruneGuard { max_percent: 10, min_objects: 0 }.holds(0, 9));
    }

    #[test]
    fn safe_urls_are_flux_v1s() {
        for (url, safe) in [
            ("git@github.com:org/fleet.git", "ssh://git@github.com/org/fleet.git"),
            ("github.com:org/fleet", "ssh://github.com/org/fleet"),
            ("ssh://git@github.com/org/fleet.git", "ssh://git@github.com/org/fleet.git"),
            ("https://user:secret@example.com:5050/repo.git", "https://user@example.com:5050/repo.git"),
            ("HTTPS://example.com/repo", "https://example.com/repo"),
            ("file:///srv/git/fleet", "file:///srv/git/fleet"),
            ("/srv/git/fleet", "file:///srv/git/fleet"),
        ] {
            assert_eq!(flux_v1_safe_url(url), safe, "{url}");
        }
    }

    #[test]
    fn sync_set_name_is_makegitconfighash() {
        // Independently: urlsafe_b64encode(sha256(b"ssh://git@github.com/org/fleet.git" + b"master" + b"deploy" + b"apps"))
        let name =
            flux_v1_sync_set_name("git@github.com:org/fleet.git", "master", &["deploy".to_owned(), "apps".to_owned()]);
        assert_eq!(name, "XQsK8nKAqfEjQKBcP6vwSL7SHDITBzQ1PS8bBjXR968");
        assert_ne!(flux_v1_sync_set_name("git@github.com:org/fleet.git", "master", &["deploy".to_owned()]), name);
    }
}
