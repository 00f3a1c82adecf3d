//! Whether applied objects are healthy, judged from their live JSON by kstatus' rules (the
//! rules of `sigs.k8s.io/cli-utils/pkg/kstatus`, which Flux v2's health checks and
//! `kubectl wait` use), and waiting until they are.
//!
//! # The rules
//!
//! First, for every kind:
//!
//! - `metadata.deletionTimestamp` set: **in progress** (being deleted).
//! - `status.observedGeneration` below `metadata.generation`: **in progress** (the controller
//!   has not seen the latest spec yet).
//! - A `Stalled` condition `True`: **failed**; a `Reconciling` condition `True`: **in progress**.
//!
//! Then by kind:
//!
//! | kind | current when | failed when |
//! |---|---|---|
//! | `apps` Deployment | `status.replicas`, `updatedReplicas`, `readyReplicas` reach `spec.replicas` (default 1), no old replicas left, `availableReplicas` reach `updatedReplicas`, the `Available` condition is `True` and (with a progress deadline) `Progressing` is `True` with `NewReplicaSetAvailable` | `Progressing` has reason `ProgressDeadlineExceeded` |
//! | `apps` StatefulSet | `OnDelete` strategy; else `replicas` and `readyReplicas` reach `spec.replicas`, none extra, and with a partition `updatedReplicas` reach `replicas - partition`, without one `currentReplicas` reach it and `currentRevision` is `updateRevision` | |
//! | `apps` DaemonSet | `desiredNumberScheduled` is set and `currentNumberScheduled`, `updatedNumberScheduled`, `numberAvailable` and `numberReady` reach it | |
//! | `apps` ReplicaSet, ReplicationController | `replicas`, `readyReplicas`, `availableReplicas` reach `spec.replicas` | a `ReplicaFailure` condition `True` |
//! | `batch` Job | the `Complete` condition is `True` (kstatus counts a started Job as current; here a Job must have finished, as `kubectl wait --for=condition=complete`) | the `Failed` condition is `True` |
//! | CustomResourceDefinition | the `Established` condition is `True` | `NamesAccepted` is `False` |
//! | Namespace | `status.phase` is `Active` (or not set) | |
//! | PersistentVolumeClaim | `status.phase` is `Bound` | `status.phase` is `Lost` |
//! | Pod | `status.phase` is `Succeeded`, or `Running` with the `Ready` condition `True` | `status.phase` is `Failed` |
//! | Service | not of type `LoadBalancer`, or `status.loadBalancer.ingress` is not empty | |
//! | any other | no `status` (nothing reconciles it: ConfigMaps, Secrets, RBAC...), no `Ready` condition, or `Ready` is `True` | see above (`Stalled`) |
//!
//! Anything else is **in progress**, with the reason saying what is missing (`Available:
//! 0/1`, `Ready condition is False: ...`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Cluster, LiveObject, ObjectRef};
use crate::object::KubeObject;
use crate::resource::ResourceId;

/// How an object stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "health", rename_all = "snake_case")]
pub enum Health {
    /// Reconciled: what it says is what runs.
    Current,
    /// Not there yet.
    InProgress {
        /// What is missing.
        reason: String,
    },
    /// It will not get there by itself.
    Failed {
        /// Why, from its status.
        reason: String,
    },
}

impl Health {
    fn in_progress(reason: impl Into<String>) -> Self {
        Health::InProgress { reason: reason.into() }
    }

    fn failed(reason: impl Into<String>) -> Self {
        Health::Failed { reason: reason.into() }
    }

    /// Whether it is [`Health::Current`].
    pub fn is_current(&self) -> bool {
        matches!(self, Health::Current)
    }

    /// The reason, when not current.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Current => None,
            Health::InProgress { reason } | Health::Failed { reason } => Some(reason),
        }
    }
}

/// One object's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectHealth {
    /// The object.
    pub id: ResourceId,
    /// How it stands.
    #[serde(flatten)]
    pub health: Health,
}

/// An integer field, `default` when absent.
fn int(object: &KubeObject, path: &[&str], default: i64) -> i64 {
    object.pointer(path).and_then(Value::as_i64).unwrap_or(default)
}

fn text<'a>(object: &'a KubeObject, path: &[&str]) -> Option<&'a str> {
    object.pointer(path).and_then(Value::as_str)
}

/// The conditions of `status.conditions`, by type: (status, reason, message).
fn conditions(object: &KubeObject) -> BTreeMap<String, (String, String, String)> {
    let Some(list) = object.pointer(&["status", "conditions"]).and_then(Value::as_array) else {
        return BTreeMap::new();
    };
    let field = |c: &Value, name: &str| c.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    list.iter()
        .filter_map(|c| {
            Some((c.get("type")?.as_str()?.to_owned(), (field(c, "status"), field(c, "reason"), field(c, "message"))))
        })
        .collect()
}

/// `reason: message`, or whichever is there.
fn because(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_owned(),
        _ => message.to_owned(),
    }
}

/// How `object` (as the cluster has it, `status` included) stands, by the rules of
/// [the module](self).
pub fn health(object: &KubeObject) -> Health {
    if object.pointer(&["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return Health::in_progress("being deleted");
    }
    let generation = object.pointer(&["metadata", "generation"]).and_then(Value::as_i64);
    let observed = object.pointer(&["status", "observedGeneration"]).and_then(Value::as_i64);
    if let (Some(generation), Some(observed)) = (generation, observed)
        && observed < generation
    {
        return Health::in_progress(format!("generation {generation} is not observed yet (observed: {observed})"));
    }
    let conditions = conditions(object);
    let is = |kind: &str, status: &str| conditions.get(kind).is_some_and(|c| c.0 == status);
    if let Some((_, reason, message)) = conditions.get("Stalled").filter(|c| c.0 == "True") {
        return Health::failed(format!("stalled: {}", because(reason, message)));
    }
    if let Some((_, reason, message)) = conditions.get("Reconciling").filter(|c| c.0 == "True") {
        return Health::in_progress(format!("reconciling: {}", because(reason, message)));
    }
    let group = object.group();
    match (group, object.kind()) {
        ("apps", "Deployment") => deployment(object, &conditions),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => replica_set(object, &conditions),
        ("batch", "Job") => {
            if is("Failed", "True") {
                let (_, reason, message) = &conditions["Failed"];
                Health::failed(format!("Job failed: {}", because(reason, message)))
            } else if is("Complete", "True") {
                Health::Current
            } else if text(object, &["status", "startTime"]).is_none() {
                Health::in_progress("Job not started")
            } else {
                let count = |field: &str| int(object, &["status", field], 0);
                Health::in_progress(format!(
                    "Job in progress: succeeded {}, active {}, failed {}",
                    count("succeeded"),
                    count("active"),
                    count("failed")
                ))
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if is("NamesAccepted", "False") {
                let (_, reason, message) = &conditions["NamesAccepted"];
                Health::failed(format!("names not accepted: {}", because(reason, message)))
            } else if is("Established", "True") {
                Health::Current
            } else {
                Health::in_progress("not Established yet")
            }
        }
        ("", "Namespace") => match text(object, &["status", "phase"]) {
            None | Some("Active") => Health::Current,
            Some(phase) => Health::in_progress(format!("phase is {phase}, not Active")),
        },
        ("", "PersistentVolumeClaim") => match text(object, &["status", "phase"]) {
            Some("Bound") => Health::Current,
            Some("Lost") => Health::failed("the claim lost its volume (phase Lost)"),
            Some(phase) => Health::in_progress(format!("not Bound (phase {phase})")),
            None => Health::in_progress("not Bound"),
        },
        ("", "Pod") => match text(object, &["status", "phase"]) {
            Some("Succeeded") => Health::Current,
            Some("Failed") => Health::failed(format!(
                "Pod failed: {}",
                because(
                    text(object, &["status", "reason"]).unwrap_or(""),
                    text(object, &["status", "message"]).unwrap_or("")
                )
            )),
            Some("Running") if is("Ready", "True") => Health::Current,
            Some(phase) => Health::in_progress(format!("Pod {phase}, not Ready")),
            None => Health::in_progress("Pod not scheduled"),
        },
        ("", "Service") => {
            let balanced = text(object, &["spec", "type"]) != Some("LoadBalancer")
                || object
                    .pointer(&["status", "loadBalancer", "ingress"])
                    .and_then(Value::as_array)
                    .is_some_and(|i| !i.is_empty());
            if balanced { Health::Current } else { Health::in_progress("no load balancer ingress yet") }
        }
        _ => generic(object, &conditions),
    }
}

/// kstatus' rule for kinds it does not know: no status, or no `Ready` condition, is current.
fn generic(object: &KubeObject, conditions: &BTreeMap<String, (String, String, String)>) -> Health {
    if !object.pointer(&["status"]).is_some_and(Value::is_object) {
        return Health::Current;
    }
    match conditions.get("Ready") {
        None => Health::Current,
        Some((status, _, _)) if status == "True" => Health::Current,
        Some((status, reason, message)) => {
            Health::in_progress(format!("Ready condition is {status}: {}", because(reason, message)))
        }
    }
}

fn deployment(object: &KubeObject, conditions: &BTreeMap<String, (String, String, String)>) -> Health {
    let deadline = object.pointer(&["spec", "progressDeadlineSeconds"]).and_then(Value::as_i64);
    let mut progressing = deadline.is_none_or(|d| d == i64::from(i32::MAX));
    let mut available = false;
    if let Some((status, reason, message)) = conditions.get("Progressing") {
        if reason == "ProgressDeadlineExceeded" {
            return Health::failed(format!("progress deadline exceeded: {}", because(reason, message)));
        }
        progressing |= status == "True" && reason == "NewReplicaSetAvailable";
    }
    if let Some((status, _, _)) = conditions.get("Available") {
        available = status == "True";
    }
    let spec = int(object, &["spec", "replicas"], 1);
    let status = |field: &str| int(object, &["status", field], 0);
    let (replicas, updated, ready, avail) =
        (status("replicas"), status("updatedReplicas"), status("readyReplicas"), status("availableReplicas"));
    if spec > replicas {
        return Health::in_progress(format!("replicas: {replicas}/{spec}"));
    }
    if spec > updated {
        return Health::in_progress(format!("updated: {updated}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("pending termination: {}", replicas - spec));
    }
    if updated > avail {
        return Health::in_progress(format!("available: {avail}/{updated}"));
    }
    if spec > ready {
        return Health::in_progress(format!("ready: {ready}/{spec}"));
    }
    if !progressing {
        return Health::in_progress("ReplicaSet not available");
    }
    if !available {
        return Health::in_progress("Deployment not Available");
    }
    Health::Current
}

fn stateful_set(object: &KubeObject) -> Health {
    if text(object, &["spec", "updateStrategy", "type"]) == Some("OnDelete") {
        return Health::Current;
    }
    let spec = int(object, &["spec", "replicas"], 1);
    let status = |field: &str| int(object, &["status", field], 0);
    let (replicas, ready, current, updated) =
        (status("replicas"), status("readyReplicas"), status("currentReplicas"), status("updatedReplicas"));
    if spec > replicas {
        return Health::in_progress(format!("replicas: {replicas}/{spec}"));
    }
    if spec > ready {
        return Health::in_progress(format!("ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("pending termination: {}", replicas - spec));
    }
    if let Some(partition) =
        object.pointer(&["spec", "updateStrategy", "rollingUpdate", "partition"]).and_then(Value::as_i64)
    {
        let want = spec - partition;
        return if updated < want {
            Health::in_progress(format!("updated: {updated}/{want}"))
        } else {
            Health::Current
        };
    }
    if spec > current {
        return Health::in_progress(format!("current: {current}/{spec}"));
    }
    let (current_rev, update_rev) =
        (text(object, &["status", "currentRevision"]), text(object, &["status", "updateRevision"]));
    if current_rev != update_rev {
        return Health::in_progress(format!(
            "waiting for revision {} to replace {}",
            update_rev.unwrap_or("?"),
            current_rev.unwrap_or("?")
        ));
    }
    Health::Current
}

fn daemon_set(object: &KubeObject) -> Health {
    let status = |field: &str| object.pointer(&["status", field]).and_then(Value::as_i64);
    let Some(desired) = status("desiredNumberScheduled") else {
        return Health::in_progress("status.desiredNumberScheduled not set yet");
    };
    for (field, what) in [
        ("currentNumberScheduled", "scheduled"),
        ("updatedNumberScheduled", "updated"),
        ("numberAvailable", "available"),
        ("numberReady", "ready"),
    ] {
        let have = status(field).unwrap_or(0);
        if desired > have {
            return Health::in_progress(format!("{what}: {have}/{desired}"));
        }
    }
    Health::Current
}

fn replica_set(object: &KubeObject, conditions: &BTreeMap<String, (String, String, String)>) -> Health {
    if let Some((_, reason, message)) = conditions.get("ReplicaFailure").filter(|c| c.0 == "True") {
        return Health::failed(format!("replica failure: {}", because(reason, message)));
    }
    let spec = int(object, &["spec", "replicas"], 1);
    for (field, what) in [("replicas", "replicas"), ("readyReplicas", "ready"), ("availableReplicas", "available")] {
        let have = int(object, &["status", field], 0);
        if spec > have {
            return Health::in_progress(format!("{what}: {have}/{spec}"));
        }
    }
    Health::Current
}

/// How a wait for health ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WaitOutcome {
    /// Every object is current.
    Healthy,
    /// An object failed (the wait stops at the first failure: it will not heal by waiting).
    Failed {
        /// The object.
        id: ResourceId,
        /// Why.
        reason: String,
    },
    /// The timeout passed with objects not current yet: the first of them, and why.
    TimedOut {
        /// The object that blocked.
        id: ResourceId,
        /// What it was still missing.
        reason: String,
    },
}

/// What waiting for health found: the outcome and each object's last verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthReport {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: WaitOutcome,
    /// Each object's last verdict, sorted by id.
    pub objects: Vec<ObjectHealth>,
    /// How long it waited, in milliseconds.
    pub waited_ms: u64,
}

impl HealthReport {
    /// Whether every object was current.
    pub fn is_healthy(&self) -> bool {
        self.outcome == WaitOutcome::Healthy
    }

    /// One line: `healthy`, or which object blocked and why.
    pub fn summary(&self) -> String {
        match &self.outcome {
            WaitOutcome::Healthy => format!("{} objects healthy", self.objects.len()),
            WaitOutcome::Failed { id, reason } => format!("{id} failed: {reason}"),
            WaitOutcome::TimedOut { id, reason } => {
                format!("timed out after {:.1}s waiting for {id}: {reason}", self.waited_ms as f64 / 1000.0)
            }
        }
    }
}

/// The health of `live` as [`Cluster::live`] reported it: an absent object is in progress (it
/// was just applied: a cache lags, or something deleted it), one the cluster would not show is
/// in progress with the cluster's reason.
pub fn health_of(live: &LiveObject) -> Health {
    match live {
        LiveObject::Found(object) => health(object),
        LiveObject::Absent => Health::in_progress("not found in the cluster"),
        LiveObject::Failed { reason } => Health::in_progress(format!("cannot read its status: {reason}")),
    }
}

/// Polls the health of `objects` until every one is current, one fails, or `timeout` passes
/// (at least one look is always taken). Each round asks [`Cluster::live`] about the objects
/// not current yet; rounds are 0.5 s apart at first, then up to 2 s. A call that fails as a
/// whole counts as every object asked about being in progress, with the error as the reason.
pub async fn wait_until_healthy(cluster: &dyn Cluster, objects: &[ObjectRef], timeout: Duration) -> HealthReport {
    let started = tokio::time::Instant::now();
    let mut verdicts: BTreeMap<ResourceId, Health> =
        objects.iter().map(|r| (r.id.clone(), Health::in_progress("not looked at yet"))).collect();
    let mut pending: Vec<ObjectRef> = objects.to_vec();
    let mut pause = Duration::from_millis(500);
    let outcome = loop {
        let answers = match cluster.live(&pending).await {
            Ok(answers) if answers.len() == pending.len() => answers.iter().map(health_of).collect(),
            Ok(answers) => {
                let reason = format!("the cluster answered {} of {} objects", answers.len(), pending.len());
                vec![Health::in_progress(reason); pending.len()]
            }
            Err(e) => vec![Health::in_progress(format!("cannot read status: {e}")); pending.len()],
        };
        let mut still = Vec::new();
        let mut failed = None;
        for (reference, verdict) in pending.into_iter().zip(answers) {
            match &verdict {
                Health::Current => {}
                Health::Failed { reason } => {
                    failed.get_or_insert_with(|| (reference.id.clone(), reason.clone()));
                }
                Health::InProgress { .. } => still.push(reference.clone()),
            }
            verdicts.insert(reference.id, verdict);
        }
        if let Some((id, reason)) = failed {
            break WaitOutcome::Failed { id, reason };
        }
        if still.is_empty() {
            break WaitOutcome::Healthy;
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            let first = &still[0].id;
            let reason = verdicts.get(first).and_then(Health::reason).unwrap_or_default().to_owned();
            break WaitOutcome::TimedOut { id: first.clone(), reason };
        }
        tokio::time::sleep(pause.min(timeout - elapsed)).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        pending = still;
    };
    let objects = verdicts.into_iter().map(|(id, health)| ObjectHealth { id, health }).collect();
    let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    HealthReport { outcome, objects, waited_ms }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> KubeObject {
        KubeObject::from_value(value, None).expect("valid object")
    }

    fn deployment(status: Value) -> KubeObject {
        object(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "app", "generation": 2},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600},
            "status": status
        }))
    }

    fn available(replicas: i64) -> Value {
        json!({
            "observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        })
    }

    fn in_progress(h: Health) -> String {
        match h {
            Health::InProgress { reason } => reason,
            other => panic!("expected in progress, got {other:?}"),
        }
    }

    #[test]
    fn a_deployment_is_current_once_rolled_out_and_available() {
        assert_eq!(health(&deployment(available(2))), Health::Current);
        let no_controller = object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "app", "generation": 1}, "spec": {}}));
        assert_eq!(in_progress(health(&no_controller)), "replicas: 0/1", "spec.replicas defaults to 1");
        let mut old = available(2);
        old["observedGeneration"] = json!(1);
        assert!(in_progress(health(&deployment(old))).contains("generation 2 is not observed"));
        let mut rolling = available(2);
        rolling["updatedReplicas"] = json!(1);
        assert_eq!(in_progress(health(&deployment(rolling))), "updated: 1/2");
        let mut surplus = available(2);
        surplus["replicas"] = json!(3);
        assert_eq!(in_progress(health(&deployment(surplus))), "pending termination: 1");
        let mut unavailable = available(2);
        unavailable["availableReplicas"] = json!(0);
        assert_eq!(in_progress(health(&deployment(unavailable))), "available: 0/2");
        let mut not_available = available(2);
        not_available["conditions"][0]["status"] = json!("False");
        assert_eq!(in_progress(health(&deployment(not_available))), "Deployment not Available");
        let mut deadline = available(2);
        deadline["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"});
        assert!(matches!(health(&deployment(deadline)), Health::Failed { reason } if reason.contains("too slow")));
    }

    #[test]
    fn stateful_sets_and_daemon_sets_count_their_replicas() {
        let sts = |spec: Value, status: Value| {
            object(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": "app"}, "spec": spec, "status": status}))
        };
        let done = json!({"replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
            "currentRevision": "db-1", "updateRevision": "db-1"});
        assert_eq!(health(&sts(json!({"replicas": 3}), done.clone())), Health::Current);
        let mut rolling = done.clone();
        rolling["updateRevision"] = json!("db-2");
        assert!(in_progress(health(&sts(json!({"replicas": 3}), rolling.clone()))).contains("db-2"));
        let partitioned = json!({"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}});
        rolling["updatedReplicas"] = json!(1);
        assert_eq!(health(&sts(partitioned, rolling)), Health::Current, "1 of 3 - 2 updated");
        assert_eq!(health(&sts(json!({"updateStrategy": {"type": "OnDelete"}}), json!({}))), Health::Current);

        let ds = |status: Value| {
            object(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "agent", "namespace": "app"}, "status": status}))
        };
        assert!(in_progress(health(&ds(json!({})))).contains("desiredNumberScheduled"));
        let full = json!({"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2,
            "numberAvailable": 2, "numberReady": 2});
        assert_eq!(health(&ds(full.clone())), Health::Current);
        let mut short = full;
        short["numberReady"] = json!(1);
        assert_eq!(in_progress(health(&ds(short))), "ready: 1/2");
    }

    #[test]
    fn jobs_must_complete_and_fail_as_failed() {
        let job = |status: Value| {
            object(json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "migrate", "namespace": "app"}, "status": status}))
        };
        assert_eq!(in_progress(health(&job(json!({})))), "Job not started");
        assert!(
            in_progress(health(&job(json!({"startTime": "2026-01-01T00:00:00Z", "active": 1})))).contains("active 1")
        );
        let complete = json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1});
        assert_eq!(health(&job(complete)), Health::Current);
        let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]});
        assert!(matches!(health(&job(failed)), Health::Failed { reason } if reason.contains("BackoffLimitExceeded")));
    }

    #[test]
    fn crds_namespaces_claims_pods_and_services() {
        let crd = |conditions: Value| {
            object(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"}, "status": {"conditions": conditions}}))
        };
        assert_eq!(health(&crd(json!([{"type": "Established", "status": "True"}]))), Health::Current);
        assert_eq!(in_progress(health(&crd(json!([])))), "not Established yet");
        assert!(matches!(health(&crd(json!([{"type": "NamesAccepted", "status": "False"}]))), Health::Failed { .. }));

        let ns = |phase: &str| {
            object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}, "status": {"phase": phase}}),
            )
        };
        assert_eq!(health(&ns("Active")), Health::Current);
        assert!(in_progress(health(&ns("Terminating"))).contains("Terminating"));

        let pvc = |phase: &str| {
            object(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "app"}, "status": {"phase": phase}}))
        };
        assert_eq!(health(&pvc("Bound")), Health::Current);
        assert!(in_progress(health(&pvc("Pending"))).contains("Pending"));
        assert!(matches!(health(&pvc("Lost")), Health::Failed { .. }));

        let pod = |status: Value| {
            object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "app"}, "status": status}))
        };
        assert_eq!(
            health(&pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}))),
            Health::Current
        );
        assert!(in_progress(health(&pod(json!({"phase": "Running"})))).contains("not Ready"));
        assert!(matches!(health(&pod(json!({"phase": "Failed"}))), Health::Failed { .. }));

        let svc = |spec: Value, status: Value| {
            object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "app"}, "spec": spec, "status": status}))
        };
        assert_eq!(health(&svc(json!({"type": "ClusterIP"}), json!({}))), Health::Current);
        assert!(
            in_progress(health(&svc(json!({"type": "LoadBalancer"}), json!({"loadBalancer": {}}))))
                .contains("load balancer")
        );
    }

    #[test]
    fn other_kinds_by_their_ready_condition_and_kstatus_generic_rules() {
        let cm =
            object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "app"}}));
        assert_eq!(health(&cm), Health::Current, "no status: nothing reconciles it");
        let widget = |status: Value| {
            object(json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "app", "generation": 3}, "status": status}))
        };
        assert_eq!(health(&widget(json!({"observedGeneration": 3}))), Health::Current, "no Ready condition");
        let ready = |status: &str| json!({"observedGeneration": 3, "conditions": [{"type": "Ready", "status": status, "reason": "Waiting", "message": "for the database"}]});
        assert_eq!(health(&widget(ready("True"))), Health::Current);
        assert_eq!(in_progress(health(&widget(ready("False")))), "Ready condition is False: Waiting: for the database");
        assert!(in_progress(health(&widget(json!({"observedGeneration": 2})))).contains("generation 3"));
        let stalled = json!({"conditions": [{"type": "Stalled", "status": "True", "reason": "BadSpec"}]});
        assert!(matches!(health(&widget(stalled)), Health::Failed { reason } if reason.contains("BadSpec")));
        let reconciling = json!({"conditions": [{"type": "Reconciling", "status": "True"}]});
        assert!(in_progress(health(&widget(reconciling))).contains("reconciling"));
        let deleting = object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "app", "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert_eq!(in_progress(health(&deleting)), "being deleted");
    }

    #[tokio::test]
    async fn waiting_ends_healthy_failed_or_at_the_timeout_naming_the_object() {
        use crate::cluster::WriteOptions;
        use crate::memory::MemoryCluster;
        let cluster = MemoryCluster::new();
        let dep = object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}}));
        let cm =
            object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}));
        cluster.apply(&[dep.clone(), cm.clone()], WriteOptions::default()).await.expect("applied");
        let refs = [ObjectRef::of(&dep), ObjectRef::of(&cm)];

        let report = wait_until_healthy(&cluster, &refs, Duration::from_millis(50)).await;
        assert_eq!(
            report.outcome,
            WaitOutcome::TimedOut { id: dep.id().clone(), reason: "replicas: 0/1".into() },
            "{report:?}"
        );
        assert!(report.summary().contains(&dep.id().to_string()), "{}", report.summary());
        assert!(report.objects.iter().any(|o| o.id == *cm.id() && o.health.is_current()));

        let mut status = available(1);
        status["observedGeneration"] = json!(1);
        cluster.set_status(&refs[0], status).expect("status set");
        let report = wait_until_healthy(&cluster, &refs, Duration::from_secs(30)).await;
        assert!(report.is_healthy(), "{report:?}");

        let failing =
            json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        cluster.set_status(&refs[0], failing).expect("status set");
        let report = wait_until_healthy(&cluster, &refs, Duration::from_secs(30)).await;
        assert!(matches!(&report.outcome, WaitOutcome::Failed { id, .. } if id == dep.id()), "{report:?}");

        let gone = ObjectRef { api_version: "v1".into(), id: "default:ConfigMap/gone".parse().expect("id") };
        let report = wait_until_healthy(&cluster, &[gone], Duration::ZERO).await;
        assert!(report.summary().contains("not found"), "{}", report.summary());
    }
}
