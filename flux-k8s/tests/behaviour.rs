//! The adapter's behaviour beyond the shared contract, against a real kube-apiserver: drift
//! from another writer, re-creating on immutable fields, a CRD and its resources in one apply,
//! workloads with status and pull credentials, Events.

mod common;

use common::*;
use flux_core::{ApplyOutcome, Cluster, ObjectRef, SyncIdentity, WorkloadStatus, WriteOptions};
use flux_k8s::{ClusterOptions, KubeCluster, RECREATE_ANNOTATION};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;

#[test]
fn behaves_against_a_real_api_server() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        drift_from_another_writer_is_seen_and_cleared(&cluster).await;
        immutable_fields_fail_unless_annotated_for_recreate(&cluster).await;
        a_crd_and_its_resources_apply_in_one_call(&cluster).await;
        workloads_report_status_images_and_pull_credentials(&cluster).await;
        events_are_recorded_when_asked(&server).await;
    });
}

fn core(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn apps(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        api_version: "apps/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Another writer (a merge patch, as `kubectl edit` makes) under its own field manager.
async fn hand_edit(cluster: &KubeCluster, resource: &ApiResource, ns: &str, name: &str, patch: serde_json::Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client().clone(), ns, resource);
    let params = PatchParams { field_manager: Some("hand-edit".into()), ..PatchParams::default() };
    api.patch(name, &params, &Patch::Merge(&patch)).await.expect("hand edit");
}

async fn drift_from_another_writer_is_seen_and_cleared(cluster: &KubeCluster) {
    let identity = SyncIdentity::new("drift").expect("valid identity");
    let cm = owned(config_map("drift", "settings", "blue"), &identity, "c1");
    let web = owned(deployment("drift", "web", "nginx:1.25"), &identity, "d1");
    apply_ok(cluster, &[owned(namespace("drift"), &identity, "n1"), cm.clone(), web.clone()]).await;
    let drifted = |managed: &[flux_core::ManagedObject]| {
        managed.iter().filter(|m| m.drifted).map(|m| m.reference.id.to_string()).collect::<Vec<_>>()
    };
    assert!(drifted(&cluster.managed(&identity).await.expect("managed")).is_empty());

    // A status write (what controllers do) is not drift.
    let deployments: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().clone(), "drift", &apps("Deployment", "deployments"));
    let status = json!({"status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}});
    let params = PatchParams { field_manager: Some("kube-controller-manager".into()), ..PatchParams::default() };
    deployments.patch_status("web", &params, &Patch::Merge(&status)).await.expect("status write");
    assert!(drifted(&cluster.managed(&identity).await.expect("managed")).is_empty(), "status writes are not drift");

    // A hand edit is, for this handle and for a fresh one that never applied anything.
    hand_edit(cluster, &core("ConfigMap", "configmaps"), "drift", "settings", json!({"data": {"value": "red"}})).await;
    let expected = vec![cm.id().to_string()];
    assert_eq!(drifted(&cluster.managed(&identity).await.expect("managed")), expected);
    let fresh = KubeCluster::new(cluster.client().clone(), ClusterOptions::default());
    assert_eq!(
        drifted(&fresh.managed(&identity).await.expect("managed")),
        expected,
        "drift needs no memory of the handle"
    );

    // Applying puts the value back and clears the flag.
    assert_eq!(apply_ok(cluster, std::slice::from_ref(&cm)).await, [ApplyOutcome::Configured]);
    let live = cluster.get(&ObjectRef::of(&cm)).await.expect("get").expect("exists");
    assert_eq!(live.pointer(&["data", "value"]), Some(&json!("blue")), "drift put back");
    assert!(drifted(&cluster.managed(&identity).await.expect("managed")).is_empty(), "an apply clears drift");

    // A label added by hand (not a Kubernetes bookkeeping one) is drift; a no-op apply clears it.
    hand_edit(
        cluster,
        &apps("Deployment", "deployments"),
        "drift",
        "web",
        json!({"metadata": {"labels": {"team": "x"}}}),
    )
    .await;
    assert_eq!(drifted(&cluster.managed(&identity).await.expect("managed")), vec![web.id().to_string()]);
    assert_eq!(
        apply_ok(cluster, std::slice::from_ref(&web)).await,
        [ApplyOutcome::Unchanged],
        "our fields still match"
    );
    assert!(drifted(&cluster.managed(&identity).await.expect("managed")).is_empty());
}

async fn immutable_fields_fail_unless_annotated_for_recreate(cluster: &KubeCluster) {
    apply_ok(cluster, &[namespace("immutable"), deployment("immutable", "api", "nginx:1.25")]).await;
    let mut moved = deployment("immutable", "api", "nginx:1.25");
    let body = json!({"matchLabels": {"app": "api-v2"}});
    let mut value = moved.to_value();
    value["spec"]["selector"] = body;
    value["spec"]["template"]["metadata"]["labels"] = json!({"app": "api-v2"});
    moved = object(value);

    let refused = cluster.apply(std::slice::from_ref(&moved), WriteOptions::default()).await.expect("apply");
    match &refused[0].outcome {
        ApplyOutcome::Failed { reason } => assert!(reason.contains("immutable"), "{reason}"),
        other => panic!("a changed selector must fail without the annotation: {other:?}"),
    }

    moved.set_annotation(RECREATE_ANNOTATION, "true");
    let dry = cluster.apply(std::slice::from_ref(&moved), WriteOptions { dry_run: true }).await.expect("dry run");
    assert_eq!(outcomes(&dry), [ApplyOutcome::Configured]);
    let before = cluster.get(&ObjectRef::of(&moved)).await.expect("get").expect("exists");
    assert_eq!(
        before.pointer(&["spec", "selector", "matchLabels", "app"]),
        Some(&json!("api")),
        "a dry run re-creates nothing"
    );

    assert_eq!(apply_ok(cluster, std::slice::from_ref(&moved)).await, [ApplyOutcome::Configured]);
    let after = cluster.get(&ObjectRef::of(&moved)).await.expect("get").expect("re-created");
    assert_eq!(after.pointer(&["spec", "selector", "matchLabels", "app"]), Some(&json!("api-v2")));
    assert_ne!(after.pointer(&["metadata", "uid"]), before.pointer(&["metadata", "uid"]), "a new object");
    assert_eq!(apply_ok(cluster, std::slice::from_ref(&moved)).await, [ApplyOutcome::Unchanged]);
}

async fn a_crd_and_its_resources_apply_in_one_call(cluster: &KubeCluster) {
    let crd = object(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.flux.example.com"},
        "spec": {"group": "test.flux.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }));
    let gadget = |name: &str| {
        object(
            json!({"apiVersion": "test.flux.example.com/v1", "kind": "Gadget", "metadata": {"name": name, "namespace": "gadgets"}, "spec": {"size": 1}}),
        )
    };
    // Marked as the sync engine marks every object (an object with no field of ours at all
    // gets a `before-first-apply` entry written by its second apply on Kubernetes 1.20).
    let identity = SyncIdentity::new("gadgets").expect("valid identity");
    let objects = [namespace("gadgets"), crd, gadget("one"), gadget("two")].map(|o| owned(o, &identity, "g"));
    let outcomes = apply_ok(cluster, &objects).await;
    assert_eq!(outcomes, vec![ApplyOutcome::Created; 4]);
    assert_eq!(apply_ok(cluster, &objects).await, vec![ApplyOutcome::Unchanged; 4]);
}

async fn workloads_report_status_images_and_pull_credentials(cluster: &KubeCluster) {
    use base64::Engine;
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = |host: &str, user: &str, pass: &str| {
        encode(&json!({"auths": {host: {"auth": encode(&format!("{user}:{pass}"))}}}).to_string())
    };
    let secret = |name: &str, data: String| {
        object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "apps"},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": data}}))
    };
    let mut web = deployment("apps", "web", "registry.example.com/team/web:1.0");
    let mut value = web.to_value();
    value["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "pod-pull"}, {"name": "missing"}]);
    value["spec"]["template"]["spec"]["serviceAccountName"] = json!("builder");
    web = object(value);
    let account = object(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "apps"},
        "imagePullSecrets": [{"name": "sa-pull"}]}),
    );
    let job = object(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "apps"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox:1.36"}]}}}}),
    );
    let cron = object(
        json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "apps"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "t", "image": "alpine:3.20"}]}}}}}}),
    );
    apply_ok(
        cluster,
        &[
            namespace("apps"),
            secret("pod-pull", config("registry.example.com", "robot", "pod-secret-pw")),
            secret("sa-pull", config("https://index.docker.io/v1/", "hub", "sa-secret-pw")),
            account,
            web.clone(),
            job,
            cron,
        ],
    )
    .await;

    let workloads = cluster.workloads(Some("apps")).await.expect("workloads");
    let ids: Vec<_> = workloads.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(ids, ["apps:cronjob/tick", "apps:deployment/web", "apps:job/migrate"]);
    assert_eq!(workloads[0].containers[0].image, "alpine:3.20");
    assert_eq!(workloads[1].status, WorkloadStatus::Unknown, "no controller has written a status yet");

    // What a controller would write: the rollout is then done.
    let deployments: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().clone(), "apps", &apps("Deployment", "deployments"));
    let status = json!({"status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}});
    deployments.patch_status("web", &PatchParams::default(), &Patch::Merge(&status)).await.expect("status write");
    let workloads = cluster.workloads(Some("apps")).await.expect("workloads");
    assert_eq!(workloads[1].status, WorkloadStatus::Ready);
    let rolling =
        json!({"status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}});
    deployments.patch_status("web", &PatchParams::default(), &Patch::Merge(&rolling)).await.expect("status write");
    assert_eq!(cluster.workloads(Some("apps")).await.expect("workloads")[1].status, WorkloadStatus::RollingOut);

    let credentials = cluster.pull_credentials(&ObjectRef::of(&web)).await.expect("pull credentials");
    let hosts: Vec<_> = credentials.keys().map(String::as_str).collect();
    assert_eq!(hosts, ["docker.io", "registry.example.com"]);
    assert_eq!(credentials["registry.example.com"].username, "robot");
    assert_eq!(credentials["registry.example.com"].password, "pod-secret-pw");
    assert_eq!(credentials["docker.io"].password, "sa-secret-pw");
    let shown = format!("{credentials:?} {cluster:?}");
    assert!(!shown.contains("secret-pw") && !shown.contains("token"), "secrets must not show: {shown}");
}

async fn events_are_recorded_when_asked(server: &KubeApiServer) {
    let options = ClusterOptions { record_events: true, ..ClusterOptions::default() };
    let cluster = cluster(server, ADMIN, options).await;
    apply_ok(&cluster, &[namespace("evented"), config_map("evented", "settings", "a")]).await;
    apply_ok(&cluster, &[config_map("evented", "settings", "a")]).await;
    let events: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().clone(), "evented", &core("Event", "events"));
    let list = events.list(&ListParams::default()).await.expect("list events");
    let about: Vec<_> = list
        .items
        .iter()
        .filter(|e| e.data["involvedObject"]["name"] == "settings")
        .map(|e| e.data["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(about, ["SyncCreated"], "one Event for the creation, none for the unchanged apply");
}
