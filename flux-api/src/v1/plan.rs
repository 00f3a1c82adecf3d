//! `POST /plan`: what a sync of a revision (and an automation pass) would change, field by field.

use serde::{Deserialize, Serialize};

use super::ids::ResourceId;
use super::sync::GarbageCollection;

/// The query of `POST /sync`: `?allow_prune=true` lets that sync (or the next one that prunes)
/// delete past the prune guard, once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncQuery {
    /// Allow one prune past the prune guard (`allow-prune` is read too).
    #[serde(default, alias = "allow-prune", skip_serializing_if = "std::ops::Not::not")]
    pub allow_prune: bool,
}

/// The body of `POST /plan` (all optional; `{}` plans the unit's head).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// A revision (commit id) to plan; it must be in the unit's repository mirror (a commit of
    /// its branch). Default: the head of the unit's branch, fetched now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A branch whose head to plan: only the unit's own branch is fetched (another is refused
    /// with 400). Excludes `revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Also plan one automation pass (on the unit's head; its commits are recorded, never
    /// made). Default: true when planning the head and the unit scans registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation: Option<bool>,
}

/// One field that would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Where: `spec.replicas`, `metadata.labels["app"]`, `spec.template.spec.containers[name=app].image`.
    pub path: String,
    /// The value before, as compact JSON; absent when the field is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after, as compact JSON; absent when the field is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What a sync would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Created.
    Create,
    /// Updated.
    Update,
}

/// One object the sync would apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDiff {
    /// The object.
    pub id: ResourceId,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Created or updated.
    pub action: Action,
    /// The fields that would change (all of them for an object created), between the live
    /// object and the server's dry-run apply, without server-set fields and flux-rs's marks.
    pub fields: Vec<FieldChange>,
    /// What the fields do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A commit automation would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationCommit {
    /// The first line of its message.
    pub message: String,
    /// The lines it would change, `-`/`+` per file.
    pub diff: String,
}

/// What automation would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationPlan {
    /// Each image update: `workload (container): from -> to`.
    pub updates: Vec<String>,
    /// The commits it would make.
    pub commits: Vec<AutomationCommit>,
    /// Its failures.
    pub errors: Vec<String>,
}

/// The answer of `POST /plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The unit.
    pub unit: String,
    /// The revision planned.
    pub revision: String,
    /// Whether anything would change (an object created or changed, one deleted, a commit).
    pub has_changes: bool,
    /// Whether everything could be planned (a usable revision, no error).
    pub ok: bool,
    /// Whether the revision could be read completely.
    pub usable: bool,
    /// The objects the sync would apply, in apply order.
    pub objects: Vec<ObjectDiff>,
    /// How many objects are as desired.
    pub unchanged: usize,
    /// The garbage collection mode (`prune` is deleted only when `on`).
    pub garbage_collection: GarbageCollection,
    /// What garbage collection would delete, in deletion order.
    pub prune: Vec<ResourceId>,
    /// What left git and is kept, and why, one line each.
    pub kept: Vec<String>,
    /// The prune guard's message, when it would hold the deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_hold: Option<String>,
    /// Objects the unit's restrictions keep out, with why.
    pub refused: Vec<String>,
    /// Every problem.
    pub errors: Vec<String>,
    /// What automation would do, when planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation: Option<AutomationPlan>,
    /// The plan as text.
    pub text: String,
    /// The plan as Markdown, for a pull-request comment.
    pub markdown: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_query_reads_both_spellings_and_defaults_to_no_allowance() {
        let read = |json: &str| serde_json::from_str::<SyncQuery>(json).expect("reads");
        assert!(read(r#"{"allow_prune": true}"#).allow_prune);
        assert!(read(r#"{"allow-prune": true}"#).allow_prune);
        assert!(!read("{}").allow_prune);
        let empty: PlanRequest = serde_json::from_str("{}").expect("an empty plan request");
        assert_eq!(empty, PlanRequest::default());
    }
}
