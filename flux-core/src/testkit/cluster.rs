//! The [`Cluster`] contract.
//!
//! [`run`] needs a handle allowed to create namespaces, CustomResourceDefinitions and objects in
//! the namespaces it creates. It works in fresh namespaces named `flux-conformance-…` and
//! deletes them at the end; the CustomResourceDefinition it installs
//! (`widgets.conformance.flux.example.com`) is left in place so that runs can repeat.

use serde_json::{Value, json};

use crate::cluster::{
    ApplyOutcome, CHECKSUM_ANNOTATION, Cluster, DeleteOutcome, GC_MARK_LABEL, LiveObject, Lookup, ObjectRef,
    SYNC_UNIT_LABEL, SyncIdentity, WriteOptions, gc_mark,
};
use crate::object::KubeObject;
use crate::testkit::unique;

const WRITE: WriteOptions = WriteOptions { dry_run: false };
const DRY_RUN: WriteOptions = WriteOptions { dry_run: true };

fn object(value: Value) -> KubeObject {
    KubeObject::from_value(value, None).expect("valid conformance object")
}

fn owned(mut o: KubeObject, identity: &SyncIdentity, checksum: &str) -> KubeObject {
    o.set_label(GC_MARK_LABEL, &gc_mark(identity.as_str(), o.id()));
    o.set_label(SYNC_UNIT_LABEL, identity.as_str());
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

    // A preview is what the apply would store, and persists nothing (not even a drift mark).
    let Ok(crate::cluster::Preview::Object(would)) = cluster.preview_apply(&settings).await else {
        panic!("a preview of a valid object must be the would-be object")
    };
    assert_eq!(would.pointer(&["data", "colour"]), Some(&json!("blue")), "a preview holds the new value");
    assert_eq!(would.id(), settings.id());
    let live = cluster.get(&ObjectRef::of(&settings)).await.expect("get").expect("settings exists");
    assert_eq!(live.pointer(&["data", "colour"]), Some(&json!("green")), "a preview must persist nothing");
    let Ok(crate::cluster::Preview::Object(new)) = cluster.preview_apply(&ghost).await else {
        panic!("a preview of a new object must be the would-be object")
    };
    assert_eq!(new.pointer(&["data", "colour"]), Some(&json!("grey")));
    assert!(cluster.get(&ObjectRef::of(&ghost)).await.expect("get").is_none(), "a preview must create nothing");
    let nowhere = config_map(&unique("flux-conformance-absent"), "nowhere", "red");
    assert!(
        matches!(cluster.preview_apply(&nowhere).await, Ok(crate::cluster::Preview::Refused { .. })),
        "a preview into a missing namespace is refused"
    );

    // One refused object does not stop the others.
    let orphan = config_map(&unique("flux-conformance-absent"), "orphan", "red");
    let unknown = object(
        json!({"apiVersion": "nowhere.example.com/v1", "kind": "Nothing", "metadata": {"name": "n", "namespace": ns}}),
    );
    let theirs = owned(config_map(&ns, "theirs", "black"), &other, "t1");
    let mixed = cluster.apply(&[orphan, unknown.clone(), theirs.clone()], WRITE).await.expect("apply");
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
    assert_eq!(cm.mark(), Some(gc_mark(identity.as_str(), settings.id()).as_str()), "managed reports the labels");

    // Every marked object, whichever unit (or none: Flux v1's objects carry only the mark).
    let mut v1 = config_map(&ns, "from-flux-v1", "white");
    v1.set_label(GC_MARK_LABEL, &gc_mark("flux-v1-set", v1.id()));
    let unmarked = config_map(&ns, "unmarked", "none");
    let applied = cluster.apply(&[v1.clone(), unmarked.clone()], WRITE).await.expect("apply");
    assert_eq!(outcomes(&applied), [ApplyOutcome::Created, ApplyOutcome::Created]);
    let marked = cluster.marked().await.expect("marked");
    for wanted in [settings.id(), theirs.id(), v1.id()] {
        assert!(marked.iter().any(|m| &m.reference.id == wanted), "marked must list {wanted}");
    }
    assert!(marked.iter().all(|m| &m.reference.id != unmarked.id()), "marked lists only marked objects");
    assert!(marked.windows(2).all(|w| w[0].reference.id <= w[1].reference.id), "marked is sorted by id");
    assert!(
        cluster.managed(&identity).await.expect("managed").iter().all(|m| &m.reference.id != v1.id()),
        "an object without the unit label is not the unit's"
    );
    let legacy = cluster.legacy_marked(&identity).await.expect("legacy_marked");
    assert!(legacy.iter().any(|m| &m.reference.id == v1.id()), "legacy_marked lists Flux v1's objects: {legacy:?}");
    assert!(
        legacy.iter().all(|m| !m.labels.contains_key(SYNC_UNIT_LABEL) && &m.reference.id != unmarked.id()),
        "legacy_marked lists only marked objects without a unit label: {legacy:?}"
    );

    // Metadata look-ups, in input order, many of one kind and namespace included.
    let mut references = vec![
        ObjectRef::of(&v1),
        ObjectRef::of(&ghost),
        ObjectRef::of(&namespace),
        ObjectRef { api_version: "nowhere.example.com/v1".into(), id: unknown.id().clone() },
    ];
    references.extend((0..6).map(|i| ObjectRef::of(&config_map(&ns, &format!("absent-{i}"), "x"))));
    references.push(ObjectRef::of(&settings));
    let lookups = cluster.metadata(&references).await.expect("metadata");
    assert_eq!(lookups.len(), references.len(), "one look-up per reference");
    match &lookups[0] {
        Lookup::Found(meta) => {
            assert_eq!(meta.labels.get(GC_MARK_LABEL), v1.label(GC_MARK_LABEL).map(str::to_owned).as_ref())
        }
        other => panic!("an existing object must be found: {other:?}"),
    }
    assert_eq!(lookups[1], Lookup::Absent, "a missing object is absent");
    assert!(matches!(lookups[2], Lookup::Found(_)), "cluster-scoped objects are found: {:?}", lookups[2]);
    assert_eq!(lookups[3], Lookup::Absent, "an unknown kind has no objects");
    assert!(lookups[4..10].iter().all(|l| *l == Lookup::Absent), "{:?}", &lookups[4..10]);
    match &lookups[10] {
        Lookup::Found(meta) => {
            assert_eq!(meta.annotations.get(CHECKSUM_ANNOTATION).map(String::as_str), Some("c2"), "annotations")
        }
        other => panic!("settings must be found: {other:?}"),
    }
    let batch: Vec<ObjectRef> = [&settings, &theirs, &v1, &unmarked, &web].iter().map(|o| ObjectRef::of(o)).collect();
    let lookups = cluster.metadata(&batch).await.expect("metadata");
    assert!(lookups.iter().all(|l| matches!(l, Lookup::Found(_))), "a batch of one kind is found: {lookups:?}");

    // Live objects (for health), in input order, Secrets without their data, batches included.
    let secret = object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns},
        "stringData": {"token": "conformance-secret-value"}}));
    cluster.apply(std::slice::from_ref(&secret), WRITE).await.expect("apply secret");
    let mut asked: Vec<ObjectRef> = [&web, &ghost, &secret, &namespace].iter().map(|o| ObjectRef::of(o)).collect();
    asked.extend(batch.iter().cloned());
    let live = cluster.live(&asked).await.expect("live");
    assert_eq!(live.len(), asked.len(), "one answer per reference");
    match &live[0] {
        LiveObject::Found(o) => {
            assert_eq!(o.id(), web.id());
            assert_eq!(o.pointer(&["spec", "replicas"]), Some(&json!(1)), "the whole object");
        }
        other => panic!("the Deployment must be found: {other:?}"),
    }
    assert_eq!(live[1], LiveObject::Absent, "a missing object is absent");
    match &live[2] {
        LiveObject::Found(o) => assert!(
            o.pointer(&["data"]).is_none() && o.pointer(&["stringData"]).is_none(),
            "a Secret is read without its data: {o:?}"
        ),
        other => panic!("the Secret must be found: {other:?}"),
    }
    assert!(matches!(&live[3], LiveObject::Found(o) if o.id() == namespace.id()), "{:?}", live[3]);
    for (answer, reference) in live[4..].iter().zip(&batch) {
        assert!(matches!(answer, LiveObject::Found(o) if o.id() == &reference.id), "{answer:?} for {reference:?}");
    }

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
    // Applies of other kinds since do not hide it: `managed` finds every kind the unit applied.
    let bluer = owned(config_map(&ns, "settings", "blue"), &identity, "c3");
    assert_eq!(outcomes(&cluster.apply(&[bluer], WRITE).await.expect("apply")), [ApplyOutcome::Configured]);
    let managed = cluster.managed(&identity).await.expect("managed");
    for wanted in [widget.id(), namespace.id(), web.id(), settings.id()] {
        assert!(managed.iter().any(|m| &m.reference.id == wanted), "managed must list {wanted}: {managed:?}");
    }

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
