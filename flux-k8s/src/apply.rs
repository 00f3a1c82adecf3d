//! Writing objects: server-side apply, get and delete, in the caller's order with bounded
//! concurrency.
//!
//! Objects are applied in waves: a run of consecutive Namespaces and CustomResourceDefinitions is
//! one wave, a run of any other kinds another, and a wave starts only when the one before it is
//! done (a CRD wave also waits for its definitions to be Established and served). Inside a wave
//! requests run concurrently, up to [`ClusterOptions::concurrency`](crate::ClusterOptions).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flux_core::cluster::{Preview, SYNC_UNIT_LABEL};
use flux_core::{ApplyOutcome, ApplyResult, DeleteOutcome, DeleteResult, KubeObject, ObjectRef, Result, SyncIdentity};
use futures::{StreamExt, stream};
use kube::api::{DeleteParams, GetParams, Patch, PatchParams};
use serde_json::Value;

use crate::cluster::Shared;
use crate::errors::{Refusal, is_immutable};
use crate::inventory::GroupKind;
use crate::options::RECREATE_ANNOTATION;
use crate::request::{Response, send};
use crate::target::Target;

/// How long to wait for a CRD to be Established, or a deleted object to be gone.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Kinds later objects may need to exist first: (API group, kind).
fn is_foundation(group: &str, kind: &str) -> bool {
    matches!((group, kind), ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition"))
}

/// Splits `items` into runs of foundation and other kinds, keeping the order.
pub(crate) fn waves<T>(items: &[T], foundation: impl Fn(&T) -> bool) -> Vec<&[T]> {
    let mut waves = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || foundation(&items[i]) != foundation(&items[start]) {
            waves.push(&items[start..i]);
            start = i;
        }
    }
    waves
}

impl Shared {
    /// Applies `objects`, one result per object in input order. A refusal of one object is its
    /// `Failed`; a failure of the whole call (connection lost, credentials refused, rate limited,
    /// discovery failed) stops it: objects already applied keep their outcomes, the one whose
    /// request failed and those not yet sent are `Interrupted`, and no later request is made.
    pub(crate) async fn apply_all(&self, objects: &[KubeObject], dry_run: bool) -> Vec<ApplyResult> {
        if dry_run {
            return self.apply_recorded(objects, dry_run, &BTreeMap::new()).await;
        }
        // The units' inventories hold the kinds first (see `crate::inventory`).
        let mut units: BTreeMap<String, BTreeSet<GroupKind>> = BTreeMap::new();
        for object in objects {
            if let Some(unit) = object.label(SYNC_UNIT_LABEL) {
                units.entry(unit.to_owned()).or_default().insert(GroupKind::new(object.group(), object.kind()));
            }
        }
        let mut unrecorded: BTreeMap<(String, GroupKind), String> = BTreeMap::new();
        let units: Vec<(SyncIdentity, BTreeSet<GroupKind>)> =
            units.into_iter().filter_map(|(unit, kinds)| Some((SyncIdentity::new(unit).ok()?, kinds))).collect();
        for (identity, kinds) in &units {
            if let Some((lacking, reason)) = self.record_kinds(identity, kinds).await {
                for kind in lacking {
                    unrecorded.insert((identity.as_str().to_owned(), kind), reason.clone());
                }
            }
        }
        let results = self.apply_recorded(objects, dry_run, &unrecorded).await;
        for (identity, kinds) in &units {
            self.applied_kinds(identity, kinds).await;
        }
        results
    }

    /// [`Shared::apply_all`] once the inventories are written: objects of a kind their unit's
    /// inventory could not record are `Failed`.
    async fn apply_recorded(
        &self,
        objects: &[KubeObject],
        dry_run: bool,
        unrecorded: &BTreeMap<(String, GroupKind), String>,
    ) -> Vec<ApplyResult> {
        let stop = Stop::default();
        let mut results = Vec::with_capacity(objects.len());
        for wave in waves(objects, |o| is_foundation(o.group(), o.kind())) {
            let applies: Vec<_> = wave
                .iter()
                .map(|o| {
                    let key = o.label(SYNC_UNIT_LABEL).map(|u| (u.to_owned(), GroupKind::new(o.group(), o.kind())));
                    let refused = key.and_then(|k| unrecorded.get(&k));
                    let stop = &stop;
                    async move {
                        match refused {
                            Some(reason) => ApplyOutcome::Failed {
                                reason: format!(
                                    "not applied: its kind could not be recorded in the unit's inventory: {reason}"
                                ),
                            },
                            None => self.apply_unless_stopped(o, dry_run, stop).await,
                        }
                    }
                })
                .collect();
            let outcomes: Vec<ApplyOutcome> = stream::iter(applies).buffered(self.options.concurrency).collect().await;
            let start = results.len();
            results.extend(wave.iter().zip(outcomes).map(|(o, outcome)| ApplyResult { id: o.id().clone(), outcome }));
            if !dry_run {
                let crds = wave
                    .iter()
                    .zip(&results[start..])
                    .filter(|(o, r)| o.kind() == "CustomResourceDefinition" && !r.outcome.is_failure())
                    .map(|(o, _)| o);
                for crd in crds {
                    if stop.reason().is_some() {
                        break;
                    }
                    if let Err(e) = self.await_crd(crd).await {
                        stop.set(&e);
                    }
                }
            }
        }
        results
    }

    /// One object's apply, `Interrupted` once the call has failed as a whole.
    async fn apply_unless_stopped(&self, object: &KubeObject, dry_run: bool, stop: &Stop) -> ApplyOutcome {
        if let Some(reason) = stop.reason() {
            return ApplyOutcome::Interrupted { reason: format!("not applied: {reason}") };
        }
        match self.apply_one(object, dry_run).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(object = %object.id(), error = %e, "the apply call failed as a whole");
                stop.set(&e);
                ApplyOutcome::Interrupted { reason: e.to_string() }
            }
        }
    }

    async fn apply_one(&self, object: &KubeObject, dry_run: bool) -> Result<ApplyOutcome> {
        let target = match Target::of(&self.kinds, object.api_version(), object.id()).await? {
            Ok(target) => target,
            Err(reason) => return Ok(ApplyOutcome::Failed { reason }),
        };
        let body = applicable(object);
        let prior = if dry_run {
            match self.fetch(&target).await {
                Ok(prior) => prior,
                Err(Refusal::Fatal(e)) => return Err(e),
                Err(refusal) => return Ok(ApplyOutcome::Failed { reason: refusal.reason() }),
            }
        } else {
            None
        };
        match self.server_side_apply(&target, &body, dry_run).await {
            Ok(response) if dry_run => Ok(dry_run_outcome(prior.as_ref(), &response)),
            Ok(response) => Ok(self.outcome(object.group(), &target, &response)),
            Err(Refusal::Fatal(e)) => Err(e),
            Err(Refusal::Object(status))
                if is_immutable(&status) && object.annotation(RECREATE_ANNOTATION) == Some("true") =>
            {
                if dry_run {
                    return Ok(ApplyOutcome::Configured);
                }
                tracing::info!(object = %object.id(), "an immutable field changed: deleting and re-creating");
                self.recreate(object.group(), &target, &body).await
            }
            Err(refusal) => Ok(ApplyOutcome::Failed { reason: refusal.reason() }),
        }
    }

    /// What a server-side apply of `object` would store (`dryRun=All`: defaults, mutating
    /// admission and other managers' fields included). Persists and records nothing.
    pub(crate) async fn preview(&self, object: &KubeObject) -> Result<Preview> {
        let target = match Target::of(&self.kinds, object.api_version(), object.id()).await? {
            Ok(target) => target,
            Err(reason) => return Ok(Preview::Refused { reason }),
        };
        match self.server_side_apply(&target, &applicable(object), true).await {
            Ok(response) => KubeObject::from_value(response.body, object.origin().cloned()).map(Preview::Object),
            Err(Refusal::Fatal(e)) => Err(e),
            Err(refusal) => Ok(Preview::Refused { reason: refusal.reason() }),
        }
    }

    async fn server_side_apply(&self, target: &Target, body: &Value, dry_run: bool) -> Result<Response, Refusal> {
        let mut params = PatchParams::apply(&self.options.field_manager);
        params.force = self.options.force_conflicts;
        params.dry_run = dry_run;
        let request = target
            .request()
            .patch(&target.name, &params, &Patch::Apply(body))
            .map_err(|e| Refusal::Fatal(flux_core::Error::other_with("cannot build an apply request", e)))?;
        send(&self.client, request).await
    }

    /// Created when the server says so (201). Unchanged when the object's resourceVersion is the
    /// last one this handle saw (listed by `managed` or left by an apply): nothing was written;
    /// or when our field manager's `managedFields` entry is older than the second before the
    /// response: this apply changed none of our fields. Configured otherwise, which includes the
    /// rare no-op whose object someone else wrote within a second of our previous change, since
    /// the last time this handle looked.
    fn outcome(&self, group: &str, target: &Target, response: &Response) -> ApplyOutcome {
        let id = target.id();
        let version = resource_version(&response.body);
        self.applied.set(group, &id, version.clone());
        let previous = self.seen.set(group, &id, version.clone());
        if response.code == 201 {
            return ApplyOutcome::Created;
        }
        if previous.is_some() && previous == version {
            return ApplyOutcome::Unchanged;
        }
        let ours = manager_time(&response.body, &self.options.field_manager, "Apply");
        match (ours, response.date) {
            // Timestamps have whole seconds: older than the second before the response means
            // this apply did not touch our entry.
            (Some(ours), Some(date)) if ours < date - jiff::SignedDuration::from_secs(1) => ApplyOutcome::Unchanged,
            _ => ApplyOutcome::Configured,
        }
    }

    /// The object as it is, `None` when absent.
    pub(crate) async fn fetch(&self, target: &Target) -> Result<Option<Value>, Refusal> {
        let request = target
            .request()
            .get(&target.name, &GetParams::default())
            .map_err(|e| Refusal::Fatal(flux_core::Error::other_with("cannot build a get request", e)))?;
        match send(&self.client, request).await {
            Ok(response) => Ok(Some(response.body)),
            Err(refusal) if refusal.code() == 404 => Ok(None),
            Err(refusal) => Err(refusal),
        }
    }

    async fn recreate(&self, group: &str, target: &Target, body: &Value) -> Result<ApplyOutcome> {
        if let Err(refusal) = self.delete_target(target, false).await {
            return match refusal {
                Refusal::Fatal(e) => Err(e),
                r if r.code() == 404 => Ok(ApplyOutcome::Failed { reason: r.reason() }),
                r => Ok(ApplyOutcome::Failed { reason: format!("cannot delete to re-create: {}", r.reason()) }),
            };
        }
        let gone = self.poll(|| async { matches!(self.fetch(target).await, Ok(None)) }).await;
        if !gone {
            return Ok(ApplyOutcome::Failed {
                reason: format!("deleted to re-create, but still there after {SETTLE_TIMEOUT:?}"),
            });
        }
        match self.server_side_apply(target, body, false).await {
            Ok(response) => {
                let version = resource_version(&response.body);
                self.applied.set(group, &target.id(), version.clone());
                self.seen.set(group, &target.id(), version);
                Ok(ApplyOutcome::Configured)
            }
            Err(Refusal::Fatal(e)) => Err(e),
            Err(r) => Ok(ApplyOutcome::Failed { reason: format!("deleted to re-create, but: {}", r.reason()) }),
        }
    }

    /// Waits until a just-applied CRD is Established and its kind is served.
    async fn await_crd(&self, crd: &KubeObject) -> Result<()> {
        let Ok(Ok(target)) = Target::of(&self.kinds, crd.api_version(), crd.id()).await else { return Ok(()) };
        let established = self
            .poll(|| async {
                let Ok(Some(live)) = self.fetch(&target).await else { return false };
                // The server's own status writes are not changes of ours: remember where it is.
                self.seen.set(crd.group(), &target.id(), resource_version(&live));
                live.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Established")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
            .await;
        let text = |path: &str| crd.to_value().pointer(path).and_then(Value::as_str).map(str::to_owned);
        let (Some(group), Some(kind)) = (text("/spec/group"), text("/spec/names/kind")) else { return Ok(()) };
        let versions = crd.to_value().pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
        let Some(version) = versions.iter().find_map(|v| v.get("name").and_then(Value::as_str)).map(str::to_owned)
        else {
            return Ok(());
        };
        if !established {
            tracing::warn!(crd = crd.name(), "CustomResourceDefinition not Established after {SETTLE_TIMEOUT:?}");
            return Ok(());
        }
        let api_version = format!("{group}/{version}");
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while self.kinds.lookup(&api_version, &kind).await?.is_none() && tokio::time::Instant::now() < deadline {
            self.kinds.refresh_after(self.kinds.generation()).await?;
            if self.kinds.lookup(&api_version, &kind).await?.is_none() {
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    async fn poll<F, Fut>(&self, mut done: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            if done().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn get(&self, reference: &ObjectRef) -> Result<Option<KubeObject>> {
        let Ok(target) = Target::of(&self.kinds, &reference.api_version, &reference.id).await? else { return Ok(None) };
        match self.fetch(&target).await {
            Ok(Some(body)) => {
                let group = flux_core::kinds::api_group(&reference.api_version);
                self.seen.set(group, &target.id(), resource_version(&body));
                KubeObject::from_value(body, None).map(Some)
            }
            Ok(None) => Ok(None),
            Err(refusal) => Err(refusal.into_error(&reference.id.to_string())),
        }
    }

    pub(crate) async fn delete_all(&self, references: &[ObjectRef], dry_run: bool) -> Result<Vec<DeleteResult>> {
        let mut results = Vec::with_capacity(references.len());
        let foundation = |r: &ObjectRef| {
            r.id.is_kind("Namespace") && flux_core::kinds::api_group(&r.api_version).is_empty()
                || r.id.is_kind("CustomResourceDefinition")
        };
        for wave in waves(references, foundation) {
            let deletes: Vec<_> = wave.iter().map(|r| self.delete_one(r, dry_run)).collect();
            let outcomes: Vec<Result<DeleteOutcome>> =
                stream::iter(deletes).buffered(self.options.concurrency).collect().await;
            for (reference, outcome) in wave.iter().zip(outcomes) {
                results.push(DeleteResult { id: reference.id.clone(), outcome: outcome? });
            }
        }
        Ok(results)
    }

    async fn delete_one(&self, reference: &ObjectRef, dry_run: bool) -> Result<DeleteOutcome> {
        // A kind the server does not serve has no objects.
        let Ok(target) = Target::of(&self.kinds, &reference.api_version, &reference.id).await? else {
            return Ok(DeleteOutcome::Absent);
        };
        match self.delete_target(&target, dry_run).await {
            Ok(()) => {
                if !dry_run {
                    let group = flux_core::kinds::api_group(&reference.api_version);
                    self.applied.set(group, &target.id(), None);
                    self.seen.set(group, &target.id(), None);
                }
                Ok(DeleteOutcome::Deleted)
            }
            Err(Refusal::Fatal(e)) => Err(e),
            Err(r) if r.code() == 404 => Ok(DeleteOutcome::Absent),
            Err(r) => Ok(DeleteOutcome::Failed { reason: r.reason() }),
        }
    }

    async fn delete_target(&self, target: &Target, dry_run: bool) -> Result<(), Refusal> {
        let params = DeleteParams {
            dry_run,
            propagation_policy: Some(self.options.propagation.clone()),
            ..DeleteParams::default()
        };
        let request = target
            .request()
            .delete(&target.name, &params)
            .map_err(|e| Refusal::Fatal(flux_core::Error::other_with("cannot build a delete request", e)))?;
        send(&self.client, request).await.map(drop)
    }
}

/// What ended an apply call, once something did: shared by the call's concurrent requests.
#[derive(Default)]
struct Stop(std::sync::Mutex<Option<String>>);

impl Stop {
    fn set(&self, error: &flux_core::Error) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| error.to_string());
    }

    fn reason(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What is sent: the manifest without server-owned fields (`status` is written by controllers
/// through its subresource; the others are the server's bookkeeping), with the
/// [defaults the server requires](fill_port_protocols) filled in.
fn applicable(object: &KubeObject) -> Value {
    let mut body = object.to_value();
    if let Some(map) = body.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"] {
            metadata.remove(field);
        }
    }
    fill_port_protocols(object.group(), object.kind(), &mut body);
    body
}

/// Sets `protocol: TCP` on every port that names no protocol, in a Service's `spec.ports` and in
/// the containers' and init containers' `ports` of a Pod and of the pod templates of
/// ReplicationControllers, PodTemplates, Deployments, StatefulSets, DaemonSets, ReplicaSets,
/// Jobs and CronJobs (any version).
///
/// TCP is what Kubernetes defaults there, so the object means the same; but `protocol` is a key
/// of those lists, and server-side apply on some servers (Kubernetes 1.20 for Service ports)
/// refuses a port without it ("associative list with keys has an element that omits key field
/// protocol"). Every server accepts an explicit TCP, so it is always filled. Only what is sent
/// changes: the checksum the sync engine records is of the object as in git.
fn fill_port_protocols(group: &str, kind: &str, body: &mut Value) {
    let pod_spec = match (group, kind) {
        ("", "Service") => {
            fill_ports(body.pointer_mut("/spec/ports"));
            return;
        }
        ("", "Pod") => "/spec",
        ("", "PodTemplate") => "/template/spec",
        ("", "ReplicationController")
        | ("apps" | "extensions", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return,
    };
    let Some(spec) = body.pointer_mut(pod_spec).and_then(Value::as_object_mut) else { return };
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten();
        for container in containers {
            fill_ports(container.get_mut("ports"));
        }
    }
}

fn fill_ports(ports: Option<&mut Value>) {
    let ports = ports.and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut);
    for port in ports {
        if port.get("protocol").is_none_or(Value::is_null) {
            port.insert("protocol".into(), Value::from("TCP"));
        }
    }
}

/// A dry run's outcome: compare the object the server would store with the one it has.
fn dry_run_outcome(prior: Option<&Value>, response: &Response) -> ApplyOutcome {
    match prior {
        None => ApplyOutcome::Created,
        Some(_) if response.code == 201 => ApplyOutcome::Created,
        Some(prior) if comparable(prior) == comparable(&response.body) => ApplyOutcome::Unchanged,
        Some(_) => ApplyOutcome::Configured,
    }
}

/// An object without the fields every write changes.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["resourceVersion", "managedFields", "generation"] {
            metadata.remove(field);
        }
    }
    object
}

pub(crate) fn resource_version(object: &Value) -> Option<String> {
    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_owned)
}

/// When `manager` last changed the fields it owns through `operation`, from `managedFields`.
fn manager_time(object: &Value, manager: &str, operation: &str) -> Option<jiff::Timestamp> {
    object.pointer("/metadata/managedFields")?.as_array()?.iter().find_map(|entry| {
        let is = |k: &str, v: &str| entry.get(k).and_then(Value::as_str) == Some(v);
        if is("manager", manager) && is("operation", operation) {
            entry.get("time")?.as_str()?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_split_foundations_from_the_rest_in_order() {
        let items = [true, true, false, false, true, false];
        let waves = waves(&items, |b| *b);
        assert_eq!(waves, [&[true, true][..], &[false, false], &[true], &[false]]);
        assert!(super::waves(&[] as &[bool], |b| *b).is_empty());
    }

    fn body(value: Value) -> Value {
        applicable(&KubeObject::from_value(value, None).expect("valid object"))
    }

    #[test]
    fn ports_without_a_protocol_are_sent_with_tcp() {
        let service = body(serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}, {"port": 81, "protocol": null}]}}));
        assert_eq!(
            service["spec"]["ports"],
            serde_json::json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, {"port": 81, "protocol": "TCP"}])
        );
        let pod_spec = serde_json::json!({
            "initContainers": [{"name": "i", "image": "x", "ports": [{"containerPort": 1}]}],
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 2}, {"containerPort": 3, "protocol": "SCTP"}]}]
        });
        let filled = serde_json::json!({
            "initContainers": [{"name": "i", "image": "x", "ports": [{"containerPort": 1, "protocol": "TCP"}]}],
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 2, "protocol": "TCP"}, {"containerPort": 3, "protocol": "SCTP"}]}]
        });
        let meta = serde_json::json!({"name": "w", "namespace": "n"});
        let pod = body(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}));
        assert_eq!(pod["spec"], filled);
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "ReplicaSet"),
            ("batch/v1", "Job"),
            ("v1", "ReplicationController"),
        ] {
            let workload = body(serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": meta,
                "spec": {"template": {"spec": pod_spec}}}));
            assert_eq!(workload["spec"]["template"]["spec"], filled, "{kind}");
        }
        for api_version in ["batch/v1", "batch/v1beta1"] {
            let cron = body(serde_json::json!({"apiVersion": api_version, "kind": "CronJob", "metadata": meta,
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}}));
            assert_eq!(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"], filled, "{api_version}");
        }
        let custom = body(serde_json::json!({"apiVersion": "example.com/v1", "kind": "Service", "metadata": meta,
            "spec": {"ports": [{"port": 80}]}}));
        assert_eq!(custom["spec"]["ports"], serde_json::json!([{"port": 80}]), "other groups' kinds are left alone");
    }

    #[test]
    fn server_fields_are_not_sent() {
        let object = KubeObject::from_value(
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n", "resourceVersion": "7", "uid": "u", "managedFields": []},
                "data": {"a": "b"}, "status": {"x": 1}}),
            None,
        )
        .expect("valid object");
        let body = applicable(&object);
        assert_eq!(
            body,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "b"}})
        );
    }
}
