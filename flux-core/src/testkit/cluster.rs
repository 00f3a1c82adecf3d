//! The [`Cluster`] contract.
//!
//! [`run`] needs a handle allowed to create namespaces, CustomResourceDefinitions and objects in
//! the namespaces it creates. It works in fresh namespaces named `flux-conformance-…` and
//! deletes them at the end; the CustomResourceDefinition it installs
//! (`widgets.conformance.flux.example.com`) is left in place so that runs can repeat.

use serde_json::{Value, json};

use crate::cluster::{
    ApplyOutcome, CHECKSUM_ANNOTATION, Cluster, DeleteOutcome, GC_MARK_LABEL, ObjectRef, SyncIdentity, WriteOptions,
};
use crate::object::KubeObject;
use crate::testkit::unique;

const WRITE: WriteOptions = WriteOptions { dry_run: false };
const DRY_RUN: WriteOptions = WriteOptions { dry_run: true };

fn object(value: Value) -> KubeObject {
    KubeObject::from_value(value, None).expect("valid conformance object")
}

fn owned(mut o: KubeObject, identity: &SyncIdentity, checksum: &str) -> KubeObject {
    o.set_label(GC_MARK_LABEL, identity.as_str());
    o.set_annotation(CHECKSUM_ANNOTATION, checksum);
    o
}

fn config_map(ns: &str, name: &str, colour: &str) -> KubeObject {
    object(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"colour": colour}}),
    )
}

fn deployment(ns: &str, image: &str) -> KubeObject {
    object(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "busybox:1.36"}],
                    "containers": [
                        {"name": "app", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "envoyproxy/envoy:v1.30.0"}
                    ]
                }
            }
        }
    }))
}

fn outcomes(results: &[crate::ApplyResult]) -> Vec<ApplyOutcome> {
    results.iter().map(|r| r.outcome.clone()).collect()
}

/// Checks the whole contract.
pub async fn run(cluster: &dyn Cluster) {
    let ns = unique("flux-conformance");
    let identity = SyncIdentity::new(unique("conformance")).expect("valid identity");
    let other = SyncIdentity::new(unique("other")).expect("valid identity");
    let namespace =
        owned(object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})), &identity, "n1");
    let settings = owned(config_map(&ns, "settings", "blue"), &identity, "c1");
    let web = owned(deployment(&ns, "nginx:1.25"), &identity, "d1");

    // Create, then idempotence.
    let first = cluster.apply(&[namespace.clone(), settings.clone(), web.clone()], WRITE).await.expect("apply");
    assert_eq!(outcomes(&first), [ApplyOutcome::Created, ApplyOutcome::Created, ApplyOutcome::Created], "first apply");
    assert_eq!(
        first.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [namespace.id(), settings.id(), web.id()],
        "input order"
    );
    let again = cluster.apply(&[namespace.clone(), settings.clone(), web.clone()], WRITE).await.expect("apply");
    assert_eq!(
        outcomes(&again),
        [ApplyOutcome::Unchanged, ApplyOutcome::Unchanged, ApplyOutcome::Unchanged],
        "applying the same objects again changes nothing"
    );

    // Changes, and dry runs that persist nothing.
    let green = owned(config_map(&ns, "settings", "green"), &identity, "c2");
    let dry = cluster.apply(std::slice::from_ref(&green), DRY_RUN).await.expect("dry-run apply");
    assert_eq!(outcomes(&dry), [ApplyOutcome::Configured], "a dry run reports the change");
    let live = cluster.get(&ObjectRef::of(&settings)).await.expect("get").expect("settings exists");
    assert_eq!(live.pointer(&["data", "colour"]), Some(&json!("blue")), "a dry run must persist nothing");
    let ghost = owned(config_map(&ns, "ghost", "grey"), &identity, "g1");
    assert_eq!(
        outcomes(&cluster.apply(std::slice::from_ref(&ghost), DRY_RUN).await.expect("dry run")),
        [ApplyOutcome::Created]
    );
    assert!(cluster.get(&ObjectRef::of(&ghost)).await.expect("get").is_none(), "a dry-run create must persist nothing");
    let changed = cluster.apply(std::slice::from_ref(&green), WRITE).await.expect("apply");
    assert_eq!(outcomes(&changed), [ApplyOutcome::Configured]);
    let live = cluster.get(&ObjectRef::of(&settings)).await.expect("get").expect("settings exists");
    assert_eq!(live.pointer(&["data", "colour"]), Some(&json!("green")), "a configured object holds the new value");

    // One refused object does not stop the others.
    let orphan = config_map(&unique("flux-conformance-absent"), "orphan", "red");
    let unknown = object(
        json!({"apiVersion": "nowhere.example.com/v1", "kind": "Nothing", "metadata": {"name": "n", "namespace": ns}}),
    );
    let theirs = owned(config_map(&ns, "theirs", "black"), &other, "t1");
    let mixed = cluster.apply(&[orphan, unknown, theirs.clone()], WRITE).await.expect("apply");
    assert!(
        matches!(mixed[0].outcome, ApplyOutcome::Failed { .. }),
        "a missing namespace must fail the object: {:?}",
        mixed[0]
    );
    assert!(
        matches!(mixed[1].outcome, ApplyOutcome::Failed { .. }),
        "an unknown kind must fail the object: {:?}",
        mixed[1]
    );
    assert_eq!(mixed[2].outcome, ApplyOutcome::Created, "the other objects must still be applied");

    // Managed objects: only this identity's, sorted, with checksums.
    let managed = cluster.managed(&identity).await.expect("managed");
    let ids: Vec<_> = managed.iter().map(|m| m.reference.id.to_string()).collect();
    let mut expected = vec![namespace.id().to_string(), settings.id().to_string(), web.id().to_string()];
    expected.sort_by_key(|s| s.parse::<crate::ResourceId>().expect("valid id"));
    assert_eq!(ids, expected, "managed must list exactly this identity's objects, sorted by id");
    let cm = managed.iter().find(|m| &m.reference.id == settings.id()).expect("settings is managed");
    assert_eq!(cm.checksum.as_deref(), Some("c2"), "managed must report the recorded checksum");
    assert_eq!(cm.reference.api_version, "v1");
    assert!(managed.iter().all(|m| !m.drifted), "nothing was changed by another writer");
    assert_eq!(cm.annotations.get(CHECKSUM_ANNOTATION).map(String::as_str), Some("c2"));

    // Custom kinds become usable once their definition is applied.
    let crd = object(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.conformance.flux.example.com"},
        "spec": {
            "group": "conformance.flux.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }));
    let crd_result = cluster.apply(std::slice::from_ref(&crd), WRITE).await.expect("apply CRD");
    assert!(!matches!(crd_result[0].outcome, ApplyOutcome::Failed { .. }), "CRD: {:?}", crd_result[0]);
    let widget = owned(
        object(json!({"apiVersion": "conformance.flux.example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 3}})),
        &identity,
        "w1",
    );
    let applied = cluster.apply(std::slice::from_ref(&widget), WRITE).await.expect("apply custom resource");
    assert_eq!(outcomes(&applied), [ApplyOutcome::Created], "a custom resource after its definition");

    // Workloads.
    let workloads = cluster.workloads(Some(&ns)).await.expect("workloads");
    assert_eq!(workloads.len(), 1, "only the Deployment is a workload: {workloads:?}");
    let names: Vec<_> = workloads[0].containers.iter().map(|c| (c.name.as_str(), c.image.as_str(), c.init)).collect();
    assert_eq!(
        names,
        [
            ("migrate", "busybox:1.36", true),
            ("app", "nginx:1.25", false),
            ("sidecar", "envoyproxy/envoy:v1.30.0", false)
        ]
    );
    assert_eq!(&workloads[0].id, web.id());
    let everywhere = cluster.workloads(None).await.expect("workloads everywhere");
    assert!(everywhere.iter().any(|w| &w.id == web.id()), "workloads(None) covers every namespace");
    assert!(everywhere.windows(2).all(|w| w[0].id <= w[1].id), "workloads are sorted by id");

    // Deletion.
    let refs = [ObjectRef::of(&settings), ObjectRef::of(&ghost)];
    let dry = cluster.delete(&refs, DRY_RUN).await.expect("dry-run delete");
    assert_eq!(dry[0].outcome, DeleteOutcome::Deleted);
    assert!(cluster.get(&refs[0]).await.expect("get").is_some(), "a dry-run delete must persist nothing");
    let deleted = cluster.delete(&refs, WRITE).await.expect("delete");
    assert_eq!(
        deleted.iter().map(|d| d.outcome.clone()).collect::<Vec<_>>(),
        [DeleteOutcome::Deleted, DeleteOutcome::Absent]
    );
    assert!(cluster.get(&refs[0]).await.expect("get").is_none(), "a deleted object is gone");
    let managed = cluster.managed(&identity).await.expect("managed");
    assert!(managed.iter().all(|m| &m.reference.id != settings.id()), "a deleted object is no longer managed");
    let theirs_managed = cluster.managed(&other).await.expect("managed");
    assert_eq!(theirs_managed.len(), 1, "the other identity's object is untouched");

    // Clean up: deleting the namespace takes its contents.
    let gone = cluster.delete(&[ObjectRef::of(&namespace)], WRITE).await.expect("delete namespace");
    assert_eq!(gone[0].outcome, DeleteOutcome::Deleted);
}
