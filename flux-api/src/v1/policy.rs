//! Workload policies on the wire (`fluxcd.io/automated`, `locked`, `tag.<container>`, `ignore`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{ResourceId, TagFilter};

/// Who locked a workload and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// `fluxcd.io/locked_msg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `fluxcd.io/locked_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `fluxcd.io/ignore`: what the sync leaves alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ignore {
    /// `"true"`: never applied, never deleted.
    All,
    /// `sync_only`: applied, never garbage-collected.
    SyncOnly,
}

/// The policies of one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Automated: new images are released automatically.
    #[serde(default)]
    pub automated: bool,
    /// Locked: nothing releases to it unless forced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<Lock>,
    /// Per-container tag filters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_filters: BTreeMap<String, TagFilter>,
    /// `fluxcd.io/ignore`, as read from the manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Ignore>,
}

/// One change to a workload's policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PolicyChange {
    /// Turn automation on.
    Automate,
    /// Turn automation off.
    Deautomate,
    /// Lock, with an optional message and user.
    Lock(Lock),
    /// Unlock.
    Unlock,
    /// Set one container's tag filter.
    SetTagFilter {
        /// The container.
        container: String,
        /// The filter.
        filter: TagFilter,
    },
    /// Remove one container's tag filter.
    ClearTagFilter {
        /// The container.
        container: String,
    },
}

/// Who asked for a change and why; written into the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCause {
    /// The person or system asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Their message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A workload whose policies an update changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDiff {
    /// The workload.
    pub workload: ResourceId,
    /// Its policies before.
    pub before: Policies,
    /// Its policies after.
    pub after: Policies,
}
