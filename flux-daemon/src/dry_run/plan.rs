//! The diff plan: what syncing a revision and one automation pass would change, object by
//! object and field by field, with nothing written anywhere (`fluxd --dry-run`,
//! `POST /api/v1/plan`).
//!
//! For each object the sync would apply, the live object ([`Cluster::get`]) is compared with what
//! the cluster says the apply would store ([`Cluster::preview_apply`]: a server-side apply with
//! `dryRun=All`, so defaults and mutating webhooks are accounted for), both without the fields
//! the server writes on every object ([`strip_server_fields`]) and without flux-rs's own marks
//! (`fluxcd.io/sync-checksum`, `fluxcd.io/sync-path`, `fluxcd.io/sync-gc-mark`,
//! `fluxcd.io/sync-unit`). The plan also has the prune list, what garbage collection keeps,
//! whether the prune guard would hold, and the commits automation would make.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use flux_core::automation::AutomationEngine;
use flux_core::cluster::{
    CHECKSUM_ANNOTATION, Cluster, GC_MARK_LABEL, ObjectRef, Preview, SYNC_PATH_ANNOTATION, SYNC_UNIT_LABEL,
};
use flux_core::diff::{FieldChange, diff, fields, remove_annotation, strip_server_fields};
use flux_core::sync::{GarbageCollection, Kept, PlannedApply, PruneHold, Refusal, SyncEngine};
use flux_core::{KubeObject, Registry, ResourceId, Revision, Source};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RecordingSource, commit_diff};
use crate::unit::SyncUnit;

/// How many objects are compared at once (two reads of the cluster each).
const CONCURRENCY: usize = 8;

/// What a sync would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// It does not exist: it would be created.
    Create,
    /// It exists: these fields would change.
    Update,
}

/// One object the sync would apply, and how it would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDiff {
    /// The object.
    pub id: ResourceId,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Created or updated.
    pub action: Action,
    /// The fields that would change (every field, for an object created).
    pub fields: Vec<FieldChange>,
    /// What the fields do not say: why the server's answer is not shown, or that only
    /// flux-rs's own marks change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ObjectDiff {
    /// Whether applying it would change a field of the object.
    pub fn changes(&self) -> bool {
        self.action == Action::Create || !self.fields.is_empty()
    }
}

/// A commit automation would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationCommit {
    /// Its message's first line.
    pub message: String,
    /// The lines it would change, as `-`/`+` pairs per file.
    pub diff: String,
}

/// What automation would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationPlan {
    /// Each image update: `workload (container): from -> to`.
    pub updates: Vec<String>,
    /// The commits it would make.
    pub commits: Vec<AutomationCommit>,
    /// Its failures (a workload that cannot be updated, a registry that did not answer).
    pub errors: Vec<String>,
}

/// What syncing one revision and one automation pass would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The unit.
    pub unit: String,
    /// The revision planned.
    pub revision: String,
    /// Whether the revision could be read completely (an unusable one prunes nothing).
    pub usable: bool,
    /// The objects the sync would apply, in apply order.
    pub objects: Vec<ObjectDiff>,
    /// How many objects are as desired (nothing would be sent).
    pub unchanged: usize,
    /// The garbage collection mode: objects in `prune` are deleted only when it is `on`.
    pub garbage_collection: GarbageCollection,
    /// What garbage collection would delete (or, in its dry-run mode, report), in deletion order.
    pub prune: Vec<ObjectRef>,
    /// What left git and is kept (`fluxcd.io/prune`, protected kinds).
    pub kept: Vec<Kept>,
    /// Set when the prune guard would hold the deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_hold: Option<PruneHold>,
    /// Objects the unit's restrictions keep out.
    pub refused: Vec<Refusal>,
    /// Every problem: with the revision, reading the cluster, or an object the server would
    /// refuse.
    pub errors: Vec<String>,
    /// What automation would do, when it was planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation: Option<AutomationPlan>,
}

impl Plan {
    /// Whether the sync or automation would change anything: an object created or a field
    /// changed, an object deleted (garbage collection on), or a commit.
    pub fn has_changes(&self) -> bool {
        self.objects.iter().any(ObjectDiff::changes)
            || (self.garbage_collection == GarbageCollection::On && !self.prune.is_empty())
            || self.automation.as_ref().is_some_and(|a| !a.commits.is_empty())
    }

    /// Whether everything could be planned: a usable revision, no error.
    pub fn is_ok(&self) -> bool {
        self.usable && self.errors.is_empty() && self.automation.as_ref().is_none_or(|a| a.errors.is_empty())
    }

    /// The plan as text, for a terminal or a log.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let usable = if self.usable { "" } else { " (UNUSABLE: nothing would be pruned)" };
        let _ = writeln!(out, "sync of {} would{usable}:", short(&self.revision));
        for o in &self.objects {
            let action = match o.action {
                Action::Create => "create",
                Action::Update => "update",
            };
            let _ = writeln!(out, "  apply {} ({action})", o.id);
            for f in &o.fields {
                let _ = writeln!(out, "      {f}");
            }
            if let Some(note) = &o.note {
                let _ = writeln!(out, "      ({note})");
            }
        }
        let prune = if self.garbage_collection == GarbageCollection::On { "prune" } else { "prune (dry run)" };
        for p in &self.prune {
            let _ = writeln!(out, "  {prune} {}", p.id);
        }
        for k in &self.kept {
            let _ = writeln!(out, "  {k}");
        }
        if let Some(hold) = &self.prune_hold {
            let _ = writeln!(out, "  HELD: {hold}");
        }
        for r in &self.refused {
            let _ = writeln!(out, "  refuse {}: {}", r.id, r.reason);
        }
        let _ = writeln!(out, "  {} unchanged", self.unchanged);
        for e in &self.errors {
            let _ = writeln!(out, "  error: {e}");
        }
        if let Some(automation) = &self.automation {
            if automation.updates.is_empty() {
                let _ = writeln!(out, "automation: no image to update");
            }
            for u in &automation.updates {
                let _ = writeln!(out, "automation would update {u}");
            }
            for c in &automation.commits {
                let _ = writeln!(out, "automation would commit \"{}\":", c.message);
                out.push_str(&c.diff);
            }
            for e in &automation.errors {
                let _ = writeln!(out, "automation error: {e}");
            }
        }
        let _ = writeln!(out, "{}", if self.has_changes() { "changes: yes" } else { "no changes" });
        out
    }

    /// The plan as Markdown, for a pull-request comment: a summary line, one `diff` block per
    /// changed object, the prune list, what is kept, automation's commits and the errors.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let changed = self.objects.iter().filter(|o| o.changes()).count();
        let _ = writeln!(out, "### flux-rs plan: unit `{}` at `{}`\n", self.unit, short(&self.revision));
        if !self.has_changes() && self.is_ok() {
            let _ = writeln!(out, "No changes: {} objects as desired.", self.unchanged);
            return out;
        }
        let pruning = if self.garbage_collection == GarbageCollection::On { self.prune.len() } else { 0 };
        let _ = writeln!(
            out,
            "**{changed} to apply, {pruning} to prune, {} kept, {} unchanged**\n",
            self.kept.len(),
            self.unchanged
        );
        if !self.usable {
            let _ = writeln!(out, "> **The revision is unusable**: nothing would be pruned.\n");
        }
        for o in self.objects.iter().filter(|o| o.changes()) {
            let action = match o.action {
                Action::Create => "create",
                Action::Update => "update",
            };
            let _ = writeln!(
                out,
                "<details open><summary><code>{}</code> ({action})</summary>\n",
                escaped(&o.id.to_string())
            );
            let mut lines = String::new();
            for f in &o.fields {
                if let Some(before) = &f.before {
                    let _ = writeln!(lines, "- {}: {before}", f.path);
                }
                if let Some(after) = &f.after {
                    let _ = writeln!(lines, "+ {}: {after}", f.path);
                }
            }
            out.push_str(&fenced("diff", &lines));
            if let Some(note) = &o.note {
                let _ = writeln!(out, "\n_{}_", escaped(note));
            }
            let _ = writeln!(out, "</details>\n");
        }
        if !self.prune.is_empty() {
            let title = if self.garbage_collection == GarbageCollection::On { "Prune" } else { "Prune (dry run)" };
            let _ = writeln!(out, "#### {title}\n");
            for p in &self.prune {
                let _ = writeln!(out, "- `{}`", p.id);
            }
            let _ = writeln!(out);
        }
        if let Some(hold) = &self.prune_hold {
            let _ = writeln!(out, "> **Held by the prune guard**: {}\n", escaped(&hold.to_string()));
        }
        if !self.kept.is_empty() {
            let _ = writeln!(out, "#### Kept\n");
            for k in &self.kept {
                let _ = writeln!(out, "- {}", escaped(&k.to_string()));
            }
            let _ = writeln!(out);
        }
        if let Some(automation) = self.automation.as_ref().filter(|a| !a.commits.is_empty() || !a.errors.is_empty()) {
            let _ = writeln!(out, "#### Automation\n");
            for u in &automation.updates {
                let _ = writeln!(out, "- {}", escaped(u));
            }
            for c in &automation.commits {
                let _ = writeln!(out, "\n{}\n", escaped(&c.message));
                out.push_str(&fenced("diff", &c.diff));
            }
            for e in &automation.errors {
                let _ = writeln!(out, "- error: {}", escaped(e));
            }
            let _ = writeln!(out);
        }
        if !self.errors.is_empty() || !self.refused.is_empty() {
            let _ = writeln!(out, "#### Problems\n");
            for r in &self.refused {
                let _ = writeln!(out, "- `{}` refused: {}", r.id, escaped(&r.reason));
            }
            for e in &self.errors {
                let _ = writeln!(out, "- {}", escaped(e));
            }
        }
        out
    }
}

impl Plan {
    /// The plan as `POST /plan` answers it: with its text and Markdown forms.
    ///
    /// # Errors
    /// When an id does not read as the wire's (an internal error).
    pub fn to_wire(&self) -> flux_core::Result<flux_api::v1::Plan> {
        use flux_api::v1 as wire;
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        let id = |id: &ResourceId| crate::wire::convert::<ResourceId, wire::ResourceId>(id);
        let objects = self
            .objects
            .iter()
            .map(|o| {
                Ok(wire::ObjectDiff {
                    id: id(&o.id)?,
                    api_version: o.api_version.clone(),
                    action: match o.action {
                        Action::Create => wire::Action::Create,
                        Action::Update => wire::Action::Update,
                    },
                    fields: o
                        .fields
                        .iter()
                        .map(|f| wire::FieldChange {
                            path: f.path.clone(),
                            before: json(&f.before),
                            after: json(&f.after),
                        })
                        .collect(),
                    note: o.note.clone(),
                })
            })
            .collect::<flux_core::Result<Vec<_>>>()?;
        let automation = self.automation.as_ref().map(|a| wire::AutomationPlan {
            updates: a.updates.clone(),
            commits: a
                .commits
                .iter()
                .map(|c| wire::AutomationCommit { message: c.message.clone(), diff: c.diff.clone() })
                .collect(),
            errors: a.errors.clone(),
        });
        Ok(wire::Plan {
            unit: self.unit.clone(),
            revision: self.revision.clone(),
            has_changes: self.has_changes(),
            ok: self.is_ok(),
            usable: self.usable,
            objects,
            unchanged: self.unchanged,
            garbage_collection: match self.garbage_collection {
                GarbageCollection::Off => wire::GarbageCollection::Off,
                GarbageCollection::DryRun => wire::GarbageCollection::DryRun,
                GarbageCollection::On => wire::GarbageCollection::On,
            },
            prune: self.prune.iter().map(|p| id(&p.id)).collect::<flux_core::Result<_>>()?,
            kept: self.kept.iter().map(ToString::to_string).collect(),
            prune_hold: self.prune_hold.as_ref().map(ToString::to_string),
            refused: self.refused.iter().map(|r| format!("{}: {}", r.id, r.reason)).collect(),
            errors: self.errors.clone(),
            automation,
            text: self.text(),
            markdown: self.markdown(),
        })
    }
}

/// The plan `request` asks for (`POST /plan`): of its revision, or of the head of the unit's
/// branch fetched now (with an automation pass unless the request says otherwise).
///
/// # Errors
/// [`flux_core::Error::InvalidInput`] for a request naming another branch, or both a revision
/// and a branch; the source's error when the head cannot be fetched.
pub async fn plan_request(
    unit: &SyncUnit,
    engine: &SyncEngine,
    request: &flux_api::v1::PlanRequest,
) -> flux_core::Result<Plan> {
    let invalid = |message: String| flux_core::Error::invalid(flux_core::Location::file("plan request"), message);
    if let (Some(branch), Some(own)) = (&request.branch, unit.branch())
        && branch != own
    {
        return Err(invalid(format!(
            "unit {} follows branch {own}; only its branch is fetched, so {branch} cannot be planned \
             (give a revision of {own}, or run a unit on {branch})",
            unit.name()
        )));
    }
    let (revision, at_head) = match (&request.revision, &request.branch) {
        (Some(_), Some(_)) => return Err(invalid("give a revision or a branch, not both".into())),
        (Some(revision), None) => (Revision::new(revision.trim()), false),
        (None, _) => (unit.source().refresh().await?, true),
    };
    if !at_head {
        // A revision that is not in the mirror is a clear 404, not an unusable plan (the
        // engine reads these files next anyway).
        unit.source().files(&revision, &unit.sync_config().paths).await?;
    }
    Ok(plan(unit, engine, &revision, request.automation.unwrap_or(at_head)).await)
}

/// `text` as Markdown and HTML text: `<cluster>` in an id would otherwise read as a tag and
/// vanish.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `body` (whole lines) as a fenced code block whose fence no run of backticks in it can close.
fn fenced(info: &str, body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let newline = if body.is_empty() || body.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{info}\n{body}{newline}{fence}\n")
}

fn short(revision: &str) -> &str {
    revision.get(..7).unwrap_or(revision)
}

/// The plan of syncing `revision` with `engine` (the unit's sync engine) and, with `automate`,
/// of one automation pass on the unit's head (its commits recorded, never made).
pub async fn plan(unit: &SyncUnit, engine: &SyncEngine, revision: &Revision, automate: bool) -> Plan {
    let sync = engine.plan(revision).await;
    let cluster = unit.cluster().clone();
    // Each call owns what it needs: futures borrowing from here would not be provably `Send`
    // (rust-lang/rust#100013), and the API serves plans from a multi-threaded runtime.
    let created = Arc::new(Foundations::of(&sync.apply));
    let calls = sync.apply.iter().cloned().map(|planned| {
        let (cluster, created) = (cluster.clone(), created.clone());
        async move { compare(cluster.as_ref(), &planned, &created).await }
    });
    let compared: Vec<Result<ObjectDiff, String>> = futures::stream::iter(calls).buffered(CONCURRENCY).collect().await;
    let mut errors: Vec<String> = sync.errors.iter().map(|e| e.message()).collect();
    let mut objects = Vec::new();
    for c in compared {
        match c {
            Ok(diff) => objects.push(diff),
            Err(e) => errors.push(e),
        }
    }
    let automation = if automate && unit.scanning() { Some(automation(unit).await) } else { None };
    Plan {
        unit: unit.name().to_owned(),
        revision: revision.as_str().to_owned(),
        usable: sync.usable,
        objects,
        unchanged: sync.unchanged.len(),
        garbage_collection: engine.config().garbage_collection,
        prune: sync.prune,
        kept: sync.kept,
        prune_hold: sync.prune_hold,
        refused: sync.refused,
        errors,
        automation,
    }
}

/// The namespaces and custom kinds a sync creates before the objects that need them: the server
/// cannot dry-run those objects until they exist.
#[derive(Debug, Default)]
struct Foundations {
    namespaces: BTreeSet<String>,
    /// (API group, kind in lower case), from the CustomResourceDefinitions created.
    kinds: BTreeSet<(String, String)>,
}

impl Foundations {
    fn of(apply: &[PlannedApply]) -> Self {
        let mut created = Foundations::default();
        for p in apply {
            let object = &p.object;
            if object.group().is_empty() && object.id().is_kind("Namespace") {
                created.namespaces.insert(object.name().to_owned());
            } else if object.group() == "apiextensions.k8s.io" && object.id().is_kind("CustomResourceDefinition") {
                let text = |path: &[&str]| object.pointer(path).and_then(Value::as_str).map(str::to_owned);
                if let (Some(group), Some(kind)) = (text(&["spec", "group"]), text(&["spec", "names", "kind"])) {
                    created.kinds.insert((group, kind.to_ascii_lowercase()));
                }
            }
        }
        created
    }

    /// Why the server cannot dry-run `object` yet, if this sync creates what it needs.
    fn needed_by(&self, object: &KubeObject) -> Option<&'static str> {
        if self.kinds.contains(&(object.group().to_owned(), object.kind().to_ascii_lowercase())) {
            Some(
                "its kind is defined by a CustomResourceDefinition this sync creates: shown as in git, without the server's defaults",
            )
        } else if object.namespace().is_some_and(|ns| self.namespaces.contains(ns)) {
            Some("its namespace is created by this sync: shown as in git, without the server's defaults")
        } else {
            None
        }
    }
}

/// The live object and the server's would-be object of one planned apply, compared.
async fn compare(cluster: &dyn Cluster, planned: &PlannedApply, created: &Foundations) -> Result<ObjectDiff, String> {
    let marked = planned.marked();
    let object = &marked;
    let id = object.id();
    let live = cluster.get(&ObjectRef::of(object)).await.map_err(|e| format!("{id}: cannot read it: {e}"))?;
    let preview = cluster.preview_apply(object).await.map_err(|e| format!("{id}: cannot preview its apply: {e}"))?;
    let action = if live.is_some() { Action::Update } else { Action::Create };
    let (would, note) = match preview {
        Preview::Object(would) => (would, None),
        // Not before this same sync created its namespace or kind.
        Preview::Refused { .. } if live.is_none() && created.needed_by(object).is_some() => {
            (object.clone(), created.needed_by(object).map(str::to_owned))
        }
        Preview::Refused { reason } => return Err(format!("{id}: the server would refuse it: {reason}")),
    };
    let after = comparable(&would);
    let fields = match &live {
        Some(live) => diff(&comparable(live), &after),
        None => fields(&after),
    };
    let fields = if object.group().is_empty() && object.id().is_kind("Secret") { redacted(fields) } else { fields };
    let note = note.or_else(|| {
        (action == Action::Update && fields.is_empty()).then(|| "no field changes: only flux-rs's own marks".to_owned())
    });
    Ok(ObjectDiff { id: id.clone(), api_version: object.api_version().to_owned(), action, fields, note })
}

/// What a plan shows of a Secret's changes: which keys of `data` and `stringData` change, never
/// their values (a plan goes to logs and pull-request comments).
fn redacted(fields: Vec<FieldChange>) -> Vec<FieldChange> {
    const HIDDEN: &str = "(secret value hidden)";
    fields
        .into_iter()
        .map(|f| {
            let secret = ["data", "stringData"].iter().any(|top| {
                f.path == *top || f.path.starts_with(&format!("{top}.")) || f.path.starts_with(&format!("{top}["))
            });
            if !secret {
                return f;
            }
            let hide = |v: Option<Value>| v.map(|_| Value::String(HIDDEN.to_owned()));
            FieldChange { path: f.path, before: hide(f.before), after: hide(f.after) }
        })
        .collect()
}

/// `object` as compared: without the server's fields and flux-rs's marks.
fn comparable(object: &KubeObject) -> Value {
    let mut value = object.to_value();
    strip_server_fields(&mut value);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        remove_annotation(metadata, CHECKSUM_ANNOTATION);
        remove_annotation(metadata, SYNC_PATH_ANNOTATION);
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(GC_MARK_LABEL);
            labels.remove(SYNC_UNIT_LABEL);
            if labels.is_empty() {
                metadata.remove("labels");
            }
        }
    }
    value
}

/// One automation pass committing into a [`RecordingSource`]: what it would update and commit.
async fn automation(unit: &SyncUnit) -> AutomationPlan {
    let recording = Arc::new(RecordingSource::new(unit.source().clone()));
    let registry: Arc<dyn Registry> = unit.registry().clone();
    let engine = AutomationEngine::new(
        recording.clone() as Arc<dyn Source>,
        registry,
        unit.generator().clone(),
        unit.automation_config().clone(),
    );
    let mut plan = AutomationPlan::default();
    let report = match engine.automate().await {
        Ok(report) => report,
        Err(e) => {
            plan.errors.push(e.to_string());
            return plan;
        }
    };
    plan.updates =
        report.changes.iter().map(|c| format!("{} ({}): {} -> {}", c.workload, c.container, c.from, c.to)).collect();
    for commit in recording.commits() {
        let message = commit.message.lines().next().unwrap_or_default().to_owned();
        plan.commits.push(AutomationCommit { message, diff: commit_diff(unit.source().as_ref(), &commit).await });
    }
    plan.errors
        .extend(report.failed.iter().map(|f| format!("{} ({}): {}", f.change.workload, f.change.container, f.error)));
    plan.errors.extend(report.registry_errors.iter().map(|f| format!("registry {}: {}", f.repository, f.error)));
    plan
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Plan {
        Plan {
            unit: "default".into(),
            revision: "0123456789abcdef".into(),
            usable: true,
            objects: vec![ObjectDiff {
                id: "demo:deployment/web".parse().expect("id"),
                api_version: "apps/v1".into(),
                action: Action::Update,
                fields: vec![FieldChange {
                    path: "spec.replicas".into(),
                    before: Some(json!(1)),
                    after: Some(json!(3)),
                }],
                note: None,
            }],
            unchanged: 4,
            garbage_collection: GarbageCollection::On,
            prune: vec![ObjectRef { api_version: "v1".into(), id: "demo:configmap/old".parse().expect("id") }],
            kept: Vec::new(),
            prune_hold: None,
            refused: Vec::new(),
            errors: Vec::new(),
            automation: None,
        }
    }

    #[test]
    fn text_and_markdown_show_each_field_and_the_prune_list() {
        let plan = sample();
        assert!(plan.has_changes() && plan.is_ok());
        assert_eq!(
            plan.text(),
            "sync of 0123456 would:\n  apply demo:deployment/web (update)\n      spec.replicas: 1 -> 3\n  \
             prune demo:configmap/old\n  4 unchanged\nchanges: yes\n"
        );
        let markdown = plan.markdown();
        assert!(markdown.starts_with("### flux-rs plan: unit `default` at `0123456`\n"), "{markdown}");
        assert!(markdown.contains("**1 to apply, 1 to prune, 0 kept, 4 unchanged**"), "{markdown}");
        assert!(markdown.contains("```diff\n- spec.replicas: 1\n+ spec.replicas: 3\n```"), "{markdown}");
        assert!(markdown.contains("#### Prune\n\n- `demo:configmap/old`"), "{markdown}");
    }

    #[test]
    fn cluster_scoped_ids_survive_markdown() {
        let mut plan = sample();
        plan.objects[0].id = "<cluster>:namespace/web".parse().expect("id");
        plan.kept.push(Kept {
            reference: ObjectRef { api_version: "v1".into(), id: "<cluster>:namespace/old".parse().expect("id") },
            reason: flux_core::sync::KeepReason::ProtectedKind,
        });
        let markdown = plan.markdown();
        assert!(
            markdown.contains("<summary><code>&lt;cluster&gt;:namespace/web</code> (update)</summary>"),
            "{markdown}"
        );
        assert!(markdown.contains("- &lt;cluster&gt;:namespace/old kept: a Namespace"), "{markdown}");
    }

    #[test]
    fn a_value_with_backticks_cannot_close_its_code_block() {
        assert_eq!(fenced("diff", "+ a: 1\n"), "```diff\n+ a: 1\n```\n");
        assert_eq!(fenced("diff", "+ data.md: \"````x```\"\n"), "`````diff\n+ data.md: \"````x```\"\n`````\n");
        assert_eq!(fenced("", "no newline"), "```\nno newline\n```\n");
    }

    #[test]
    fn no_changes_is_said_so() {
        let mut plan = sample();
        plan.objects[0].fields.clear();
        plan.prune.clear();
        assert!(!plan.has_changes(), "an update of flux-rs's marks only changes nothing");
        assert!(plan.text().ends_with("no changes\n"));
        assert_eq!(
            plan.markdown(),
            "### flux-rs plan: unit `default` at `0123456`\n\nNo changes: 4 objects as desired.\n"
        );
        plan.garbage_collection = GarbageCollection::DryRun;
        plan.prune = sample().prune;
        assert!(!plan.has_changes(), "a dry run of garbage collection deletes nothing");
    }

    #[tokio::test]
    async fn a_first_sync_is_planned_through_what_it_creates_then_only_the_changed_field() {
        use flux_core::memory::{MemoryCluster, MemoryRegistry, MemorySource};
        use flux_core::sync::SyncConfig;
        use flux_core::{Author, CommitRequest, FileChange, SyncIdentity};

        let all = |colour: &str| {
            [
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": "widgets.example.com"},
                    "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"}}}),
                json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"},
                    "data": {"colour": colour}}),
            ]
            .iter()
            .map(|d| format!("---\n{d}\n"))
            .collect::<String>()
        };
        let source = MemorySource::with_files([("deploy/all.yaml".to_owned(), all("blue"))]).expect("source");
        let cluster = MemoryCluster::new();
        let config = SyncConfig::new(SyncIdentity::new("shop").expect("identity"), ["deploy"]);
        let unit = SyncUnit::new(
            "shop",
            Arc::new(source.clone()),
            Arc::new(cluster.clone()),
            Arc::new(MemoryRegistry::new()),
            Arc::new(flux_core::generate::ManifestGenerator::default()),
            config,
        )
        .expect("unit")
        .without_scanning();
        let engine = unit.engines().sync;
        let head = source.refresh().await.expect("head");

        let first = plan(&unit, &engine, &head, true).await;
        assert!(first.is_ok() && first.has_changes(), "{:?}", first.errors);
        assert!(first.objects.iter().all(|o| o.action == Action::Create));
        let notes: Vec<(String, bool)> = first.objects.iter().map(|o| (o.id.to_string(), o.note.is_some())).collect();
        assert_eq!(
            notes,
            [
                ("<cluster>:namespace/shop".to_owned(), false),
                ("<cluster>:customresourcedefinition/widgets.example.com".to_owned(), false),
                ("shop:configmap/c".to_owned(), true),
                ("default:widget/w".to_owned(), true),
            ],
            "objects needing what the sync creates are shown as in git"
        );
        assert!(first.automation.is_none(), "not scanning");
        assert!(cluster.objects().is_empty(), "a plan applies nothing");

        assert!(engine.sync(&head).await.is_success());
        assert!(!plan(&unit, &engine, &head, false).await.has_changes(), "synced");
        let request = CommitRequest {
            base: head,
            changes: vec![FileChange::write("deploy/all.yaml", all("green"))],
            author: Author::default(),
            message: "green".into(),
        };
        let green = source.commit(&request).await.expect("commit");
        let second = plan(&unit, &engine, &green, false).await;
        let changed: Vec<String> =
            second.objects.iter().flat_map(|o| o.fields.iter().map(move |f| format!("{} {f}", o.id))).collect();
        assert_eq!(changed, [r#"shop:configmap/c data.colour: "blue" -> "green""#]);
        assert!(second.has_changes() && second.is_ok());
    }

    #[test]
    fn secret_values_never_reach_a_plan() {
        let before = json!({"data": {"password": "c2VjcmV0", "user": "YQ=="}, "type": "Opaque"});
        let after = json!({"data": {"password": "bmV3", "token": "dA=="}, "type": "kubernetes.io/basic-auth"});
        let shown: Vec<String> = redacted(diff(&before, &after)).iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"data.password: "(secret value hidden)" -> "(secret value hidden)""#,
                r#"- data.user: "(secret value hidden)""#,
                r#"+ data.token: "(secret value hidden)""#,
                r#"type: "Opaque" -> "kubernetes.io/basic-auth""#,
            ]
        );
        let whole = redacted(fields(&json!({"stringData": {"k": "plain"}})));
        assert_eq!(whole[0].to_string(), r#"+ stringData.k: "(secret value hidden)""#);
    }

    #[test]
    fn flux_marks_and_server_fields_are_not_compared() {
        let object = KubeObject::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "d", "resourceVersion": "3",
                    "labels": {GC_MARK_LABEL: "sha256.x", SYNC_UNIT_LABEL: "u", "app": "a"},
                    "annotations": {CHECKSUM_ANNOTATION: "1", SYNC_PATH_ANNOTATION: "deploy"}},
                "data": {"k": "v"}}),
            None,
        )
        .expect("object");
        assert_eq!(
            comparable(&object),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "d", "labels": {"app": "a"}}, "data": {"k": "v"}})
        );
    }
}
