//! Per-object results against a real kube-apiserver (v1.20), through flux-core's sync engine:
//! objects the server refuses fail alone, with their file, line and the server's message, while
//! the rest of the revision is applied and garbage collection still runs; a Service without a
//! port `protocol` is applied (filled with TCP); a `batch/v1beta1` CronJob, a kind its group's
//! preferred version does not serve, is garbage-collected and its drift put back.

mod common;

use std::sync::Arc;

use common::*;
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{
    ApplyOutcome, Author, Cluster, CommitRequest, DeleteOutcome, FileChange, ObjectRef, Source, SyncIdentity,
};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;

fn engine(source: &MemorySource, cluster: &KubeCluster, identity: &str) -> SyncEngine {
    let mut config = SyncConfig::new(SyncIdentity::new(identity).expect("valid identity"), ["deploy"]);
    config.garbage_collection = GarbageCollection::On;
    SyncEngine::new(Arc::new(source.clone()), Arc::new(cluster.clone()), Arc::new(ManifestGenerator::default()), config)
}

async fn commit(source: &MemorySource, changes: Vec<FileChange>) {
    let base = source.refresh().await.expect("head");
    let request = CommitRequest { base, changes, author: Author::default(), message: "change".into() };
    source.commit(&request).await.expect("commit");
}

fn outcome(report: &SyncReport, id: &str) -> Option<ApplyOutcome> {
    report.applied.iter().find(|r| r.id.to_string() == id).map(|r| r.outcome.clone())
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    ApiResource { group: group.into(), version: version.into(), api_version, kind: kind.into(), plural: plural.into() }
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: rates\n";

/// Line 8 starts the quota the server refuses (a quantity that is not one): an HTTP 500 whose
/// status has no reason. Line 1 starts a ConfigMap whose name the server refuses (422 Invalid).
const REFUSED: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: Bad_Name
  namespace: rates
data: {a: b}
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: pods
  namespace: rates
spec:
  hard:
    pods: ten
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: rates
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: metrics
    port: 9090
";

fn rates() -> String {
    (1..=20)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rates-{i}\n  namespace: rates\ndata:\n  rate: \"{i}\"\n"))
        .collect()
}

#[test]
fn one_refused_object_fails_alone_and_the_rest_is_applied_and_collected() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let old = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n  namespace: rates\ndata: {a: b}\n";
        let source = MemorySource::with_files([
            ("deploy/namespace.yaml".to_owned(), NAMESPACE.to_owned()),
            ("deploy/old.yaml".to_owned(), old.to_owned()),
        ])
        .expect("a repository");
        let engine = engine(&source, &cluster, "rates");
        let first = engine.sync_head().await.expect("sync");
        assert!(first.is_success(), "{:?}", first.errors);

        // One revision: 20 good ConfigMaps, a Service without port protocols, two objects the
        // server refuses, and `old` removed.
        commit(
            &source,
            vec![
                FileChange::write("deploy/rates.yaml", rates()),
                FileChange::write("deploy/service.yaml", SERVICE),
                FileChange::write("deploy/refused.yaml", REFUSED),
                FileChange::delete("deploy/old.yaml"),
            ],
        )
        .await;
        let report = engine.sync_head().await.expect("sync");
        for i in 1..=20 {
            let id = format!("rates:configmap/rates-{i}");
            assert_eq!(outcome(&report, &id), Some(ApplyOutcome::Created), "{id}: {:?}", report.applied);
        }
        assert_eq!(outcome(&report, "rates:service/web"), Some(ApplyOutcome::Created), "{:?}", report.errors);
        assert_eq!(report.failed, 2, "{:?}", report.applied);

        let mut errors: Vec<String> = report.errors.iter().map(|e| e.message()).collect();
        errors.sort();
        assert_eq!(errors.len(), 2, "only the refused objects are reported: {errors:?}");
        assert!(
            errors[0].starts_with("deploy/refused.yaml:1: rates:configmap/Bad_Name: ")
                && errors[0].contains("a lowercase RFC 1123 subdomain"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("deploy/refused.yaml:8: rates:resourcequota/pods: ")
                && errors[1].contains("quantities must match the regular expression"),
            "{}",
            errors[1]
        );
        assert!(!report.is_success() && !report.marker_moved);

        // Garbage collection ran: `old` is gone.
        let pruned: Vec<_> = report.pruned.iter().map(|p| (p.id.to_string(), p.outcome.clone())).collect();
        assert_eq!(pruned, [("rates:configmap/old".to_owned(), DeleteOutcome::Deleted)]);
        let old_ref = ObjectRef { api_version: "v1".into(), id: "rates:configmap/old".parse().expect("id") };
        assert!(cluster.get(&old_ref).await.expect("get").is_none());

        // The Service went in with Kubernetes' default protocol; git's object is unchanged.
        let services: Api<DynamicObject> =
            Api::namespaced_with(cluster.client().clone(), "rates", &resource("", "v1", "Service", "services"));
        let web = services.get("web").await.expect("the Service exists");
        assert_eq!(web.data["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(web.data["spec"]["ports"][1]["protocol"], "TCP");
        assert!(SERVICE.lines().all(|l| !l.contains("protocol")), "git holds no protocol");

        // The next sync sends the refused objects again, and nothing else: the filled Service
        // does not flap.
        let again = engine.sync_head().await.expect("sync");
        let mut sent: Vec<String> = again.applied.iter().map(|r| r.id.to_string()).collect();
        sent.sort();
        assert_eq!(sent, ["rates:configmap/Bad_Name", "rates:resourcequota/pods"]);
        assert!(again.applied.iter().all(|r| matches!(r.outcome, ApplyOutcome::Failed { .. })));
        assert_eq!(again.unchanged, 22, "the namespace, 20 ConfigMaps and the Service");

        // Fixed in git: the quota applies, and the sync succeeds.
        commit(
            &source,
            vec![FileChange::write(
                "deploy/refused.yaml",
                REFUSED.replace("pods: ten", "pods: \"10\"").replace("Bad_Name", "good-name"),
            )],
        )
        .await;
        let fixed = engine.sync_head().await.expect("sync");
        assert!(fixed.is_success(), "{:?}", fixed.errors);
        assert_eq!(outcome(&fixed, "rates:resourcequota/pods"), Some(ApplyOutcome::Created));
    });
}

const CRONJOB: &str = "\
apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: nightly
  namespace: jobs
spec:
  schedule: \"0 3 * * *\"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: report
            image: busybox:1.36
            ports:
            - containerPort: 8080
";

#[test]
fn a_cronjob_served_only_in_batch_v1beta1_is_drift_checked_and_collected() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: jobs\n";
        let source = MemorySource::with_files([
            ("deploy/namespace.yaml".to_owned(), namespace.to_owned()),
            ("deploy/cronjob.yaml".to_owned(), CRONJOB.to_owned()),
        ])
        .expect("a repository");
        let engine = engine(&source, &cluster, "jobs");
        let first = engine.sync_head().await.expect("sync");
        assert!(first.is_success(), "{:?}", first.errors);
        assert_eq!(outcome(&first, "jobs:cronjob/nightly"), Some(ApplyOutcome::Created));

        // Listed for garbage collection and drift, by a handle that never applied it.
        let identity = SyncIdentity::new("jobs").expect("valid identity");
        let fresh = KubeCluster::new(cluster.client().clone(), ClusterOptions::default());
        let lists = server.requests(ADMIN, &["list"]);
        let managed = fresh.managed(&identity).await.expect("managed");
        eprintln!("one managed() call on v1.20: {} list requests", server.requests(ADMIN, &["list"]) - lists);
        let cron = managed.iter().find(|m| m.reference.id.to_string() == "jobs:cronjob/nightly");
        assert_eq!(cron.map(|m| m.reference.api_version.as_str()), Some("batch/v1beta1"), "{managed:?}");

        // A hand edit is drift, put back by the next sync.
        let cronjobs: Api<DynamicObject> = Api::namespaced_with(
            cluster.client().clone(),
            "jobs",
            &resource("batch", "v1beta1", "CronJob", "cronjobs"),
        );
        let by_hand = PatchParams { field_manager: Some("kubectl-edit".into()), ..PatchParams::default() };
        cronjobs
            .patch("nightly", &by_hand, &Patch::Merge(json!({"spec": {"schedule": "*/5 * * * *"}})))
            .await
            .expect("hand edit");
        let put_back = engine.sync_head().await.expect("sync");
        let sent: Vec<_> = put_back.applied.iter().map(|r| (r.id.to_string(), r.outcome.clone())).collect();
        assert_eq!(sent, [("jobs:cronjob/nightly".to_owned(), ApplyOutcome::Configured)]);
        let live = cronjobs.get("nightly").await.expect("get");
        assert_eq!(live.data["spec"]["schedule"], "0 3 * * *", "drift put back");
        let ports = &live.data["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert_eq!(ports[0]["protocol"], "TCP");
        assert!(engine.sync_head().await.expect("sync").applied.is_empty(), "drift cleared, nothing flaps");

        // Removed from git: garbage-collected.
        commit(&source, vec![FileChange::delete("deploy/cronjob.yaml")]).await;
        let pruning = engine.sync_head().await.expect("sync");
        assert!(pruning.is_success(), "{:?}", pruning.errors);
        let pruned: Vec<_> = pruning.pruned.iter().map(|p| (p.id.to_string(), p.outcome.clone())).collect();
        assert_eq!(pruned, [("jobs:cronjob/nightly".to_owned(), DeleteOutcome::Deleted)]);
        let reference =
            ObjectRef { api_version: "batch/v1beta1".into(), id: "jobs:cronjob/nightly".parse().expect("id") };
        assert!(cluster.get(&reference).await.expect("get").is_none(), "the CronJob is gone");
    });
}
