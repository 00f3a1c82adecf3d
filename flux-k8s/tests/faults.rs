//! The sync engine over flux-k8s against a real kube-apiserver (v1.20) that misbehaves: behind
//! flux-testenv's fault-injecting TLS proxy (stopped mid-sync, restarted with its connections
//! cut, slow, hanging, 429 with `Retry-After`, 500s, truncated and malformed answers), with a real
//! apply conflict, a broken aggregated API (an APIService whose Service has no endpoints, as in a
//! metrics-server outage) and a CRD deleted while its custom resources are in git. Each scenario
//! asserts what survives: the objects in the cluster and the deletions in the audit log (no prune
//! on a partial view), then that the next sync converges once the fault is gone.
//!
//! One API server for every scenario (they are costly); each has its own namespace and unit.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use flux_core::generate::ManifestGenerator;
use flux_core::memory::MemorySource;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{ApplyOutcome, Author, Cluster, CommitRequest, FileChange, ObjectRef, Source, SyncIdentity};
use flux_k8s::{ClusterOptions, KubeCluster};
use flux_testenv::KubeApiServer;
use flux_testenv::faults::{HttpFault, HttpProxy};
use flux_testenv::kube::ADMIN;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

/// A proxy in front of `server` and a kubeconfig (of [`ADMIN`]) pointing at it.
fn proxy(server: &KubeApiServer) -> (HttpProxy, PathBuf) {
    let certs = server.dir().join("certs");
    let upstream = server.url().trim_start_matches("https://");
    let crt = certs.join("apiserver.crt");
    let proxy = HttpProxy::start_tls(upstream, &crt, &certs.join("apiserver.key"), &crt);
    let kubeconfig = std::fs::read_to_string(server.kubeconfig(ADMIN)).expect("read the kubeconfig");
    let path = server.dir().join(format!("kubeconfig-{}", proxy.addr().replace(':', "-")));
    std::fs::write(&path, kubeconfig.replace(server.url(), &format!("https://{}", proxy.addr())))
        .expect("write a kubeconfig");
    (proxy, path)
}

async fn proxied(kubeconfig: &std::path::Path, options: ClusterOptions) -> KubeCluster {
    KubeCluster::from_kubeconfig(kubeconfig, options).await.expect("a client through the proxy")
}

fn engine(source: &MemorySource, cluster: &KubeCluster, unit: &str) -> SyncEngine {
    let mut config = SyncConfig::new(SyncIdentity::new(unit).expect("valid identity"), ["deploy"]);
    config.garbage_collection = GarbageCollection::On;
    SyncEngine::new(Arc::new(source.clone()), Arc::new(cluster.clone()), Arc::new(ManifestGenerator::default()), config)
}

async fn commit(source: &MemorySource, changes: Vec<FileChange>) {
    let base = source.refresh().await.expect("head");
    let request = CommitRequest { base, changes, author: Author::default(), message: "change".into() };
    source.commit(&request).await.expect("commit");
}

/// `deploy/ns.yaml` (the namespace), `deploy/cms.yaml` (`count` ConfigMaps whose value is
/// `value`) and `deploy/old.yaml` (the ConfigMap `old`, garbage once removed).
fn repository(ns: &str, count: usize, value: &str) -> MemorySource {
    MemorySource::with_files([
        ("deploy/ns.yaml".to_owned(), format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")),
        ("deploy/cms.yaml".to_owned(), config_maps(ns, count, value)),
        (
            "deploy/old.yaml".to_owned(),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n  namespace: {ns}\ndata: {{a: b}}\n"),
        ),
    ])
    .expect("a repository")
}

fn config_maps(ns: &str, count: usize, value: &str) -> String {
    (1..=count)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: {ns}\ndata:\n  value: \"{value}\"\n"))
        .collect()
}

/// The next revision: every ConfigMap's value changed, `old` removed from git.
async fn change_everything(source: &MemorySource, ns: &str, count: usize, value: &str) {
    commit(
        source,
        vec![
            FileChange::write("deploy/cms.yaml", config_maps(ns, count, value)),
            FileChange::delete("deploy/old.yaml"),
        ],
    )
    .await;
}

/// Deletions the audit log recorded in namespace `ns` by [`ADMIN`] (the identity syncing).
fn deletions_in(server: &KubeApiServer, ns: &str) -> usize {
    server.requests(ADMIN, &["delete"]);
    let ns = format!("\"namespace\":\"{ns}\"");
    let user = format!("\"username\":\"{ADMIN}\"");
    server
        .audit_log()
        .lines()
        .filter(|l| l.contains("\"stage\":\"ResponseComplete\"") && l.contains("\"verb\":\"delete\""))
        .filter(|l| l.contains(&ns) && l.contains(&user))
        .count()
}

async fn value_of(cluster: &KubeCluster, ns: &str, name: &str) -> Option<String> {
    let reference = ObjectRef { api_version: "v1".into(), id: format!("{ns}:configmap/{name}").parse().expect("id") };
    let object = cluster.get(&reference).await.expect("get")?;
    Some(object.to_value()["data"]["value"].as_str().unwrap_or_default().to_owned())
}

/// A sync that must have pruned nothing (the audit log agrees) and left `old` in place.
async fn assert_nothing_pruned(
    server: &KubeApiServer,
    admin: &KubeCluster,
    ns: &str,
    report: &Result<SyncReport, flux_core::Error>,
) {
    if let Ok(report) = report {
        assert!(report.pruned.is_empty(), "{ns}: pruned on a partial view: {:?}", report.pruned);
        assert!(!report.is_success() && !report.marker_moved, "{ns}: a faulty sync is not a success: {report:?}");
    }
    assert_eq!(deletions_in(server, ns), 0, "{ns}: the audit log shows a deletion");
    let old = ObjectRef { api_version: "v1".into(), id: format!("{ns}:configmap/old").parse().expect("id") };
    assert!(admin.get(&old).await.expect("get").is_some(), "{ns}: `old` was deleted");
}

/// After the fault: the sync converges, `old` is collected (one deletion, in this sync or an
/// earlier one whose view was complete) and every value is new.
async fn assert_converges(
    server: &KubeApiServer,
    admin: &KubeCluster,
    engine: &SyncEngine,
    ns: &str,
    count: usize,
    value: &str,
) {
    let report = engine.sync_head().await.expect("sync");
    assert!(report.is_success(), "{ns}: the next sync converges: {:?}", report.errors);
    let pruned: Vec<String> = report.pruned.iter().map(|p| p.id.to_string()).collect();
    assert!(pruned.iter().all(|p| *p == format!("{ns}:configmap/old")), "{ns}: {pruned:?}");
    assert_eq!(deletions_in(server, ns), 1, "{ns}: only `old` was deleted");
    assert_eq!(value_of(admin, ns, "old").await, None, "{ns}: `old` was collected");
    for i in 1..=count {
        assert_eq!(value_of(admin, ns, &format!("cm-{i}")).await.as_deref(), Some(value), "{ns}: cm-{i}");
    }
}

/// The error messages of a sync, or of the call.
fn messages(report: &Result<SyncReport, flux_core::Error>) -> String {
    match report {
        Ok(report) => report.errors.iter().map(|e| e.message()).collect::<Vec<_>>().join("\n"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_sync_survives_a_misbehaving_api_server() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let admin = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let start = std::time::Instant::now();
        stopped_mid_sync(&server, &admin).await;
        eprintln!("stopped mid-sync: done at {:?}", start.elapsed());
        restarted_with_connections_cut(&server, &admin).await;
        eprintln!("restarted: done at {:?}", start.elapsed());
        rate_limited_and_failing(&server, &admin).await;
        eprintln!("429 and 500: done at {:?}", start.elapsed());
        slow_hanging_truncated_and_malformed(&server, &admin).await;
        eprintln!("slow, hanging, truncated, malformed: done at {:?}", start.elapsed());
        frozen(&server, &admin).await;
        eprintln!("frozen: done at {:?}", start.elapsed());
        an_apply_conflict(&server, &admin).await;
        eprintln!("conflict: done at {:?}", start.elapsed());
        a_broken_aggregated_api(&server, &admin).await;
        eprintln!("broken APIService: done at {:?}", start.elapsed());
        a_crd_deleted_while_its_resources_are_in_git(&server, &admin).await;
        eprintln!("CRD deleted: done at {:?}", start.elapsed());
    });
}

/// The server stops answering after the first applies of a revision: the sync fails, prunes
/// nothing; once it is back, the next sync applies the rest and collects `old`.
async fn stopped_mid_sync(server: &KubeApiServer, admin: &KubeCluster) {
    let (ns, count) = ("stopped", 30);
    let (proxy, kubeconfig) = proxy(server);
    let cluster = proxied(&kubeconfig, ClusterOptions::default()).await;
    let source = repository(ns, count, "1");
    let engine = engine(&source, &cluster, ns);
    assert!(engine.sync_head().await.expect("sync").is_success());

    change_everything(&source, ns, count, "2").await;
    proxy.stop_after(Some("PATCH"), &format!("/namespaces/{ns}/configmaps/"), 5);
    let report = engine.sync_head().await;
    assert!(!proxy.faulted().is_empty(), "the fault was hit");
    assert_nothing_pruned(server, admin, ns, &report).await;
    if let Ok(report) = &report {
        let interrupted =
            report.applied.iter().filter(|r| matches!(r.outcome, ApplyOutcome::Interrupted { .. })).count();
        assert!(interrupted > 0, "objects not sent are reported NOT APPLIED: {:?}", report.applied);
    }
    // And a sync while it is down entirely.
    let down = engine.sync_head().await;
    assert_nothing_pruned(server, admin, ns, &down).await;

    proxy.heal();
    assert_converges(server, admin, &engine, ns, count, "2").await;
}

/// Every connection the client pooled is cut (a restart): the next sync reconnects and converges.
async fn restarted_with_connections_cut(server: &KubeApiServer, admin: &KubeCluster) {
    let (ns, count) = ("restarted", 5);
    let (proxy, kubeconfig) = proxy(server);
    let cluster = proxied(&kubeconfig, ClusterOptions::default()).await;
    let source = repository(ns, count, "1");
    let engine = engine(&source, &cluster, ns);
    assert!(engine.sync_head().await.expect("sync").is_success());
    change_everything(&source, ns, count, "2").await;
    // Every request is refused for a while (closed before an answer), then the server is back.
    proxy.stop_after(None, "", 0);
    let down = engine.sync_head().await;
    assert_nothing_pruned(server, admin, ns, &down).await;
    proxy.heal();
    assert_converges(server, admin, &engine, ns, count, "2").await;
}

/// 429 with `Retry-After` on applies and on the listing of the unit's objects, then 500s: no
/// prune while the view or the applies are incomplete, the error names the object, and the
/// next sync converges.
async fn rate_limited_and_failing(server: &KubeApiServer, admin: &KubeCluster) {
    let (ns, count) = ("throttled", 10);
    let (proxy, kubeconfig) = proxy(server);
    let cluster = proxied(&kubeconfig, ClusterOptions::default()).await;
    let source = repository(ns, count, "1");
    let engine = engine(&source, &cluster, ns);
    assert!(engine.sync_head().await.expect("sync").is_success());

    // A storm: every apply into the namespace answered 429.
    change_everything(&source, ns, count, "2").await;
    proxy.inject(Some("PATCH"), &format!("/namespaces/{ns}/configmaps/"), HttpFault::Status(429, Some(1)), 0, None);
    let report = engine.sync_head().await;
    assert_nothing_pruned(server, admin, ns, &report).await;
    assert_eq!(value_of(admin, ns, "cm-1").await.as_deref(), Some("1"), "nothing was applied");
    proxy.heal();

    // The listing of what the unit owns answered 429, then 500: the view of the cluster is
    // partial, so nothing is pruned.
    for fault in [HttpFault::Status(429, Some(1)), HttpFault::Status(500, None)] {
        proxy.inject(Some("GET"), "labelSelector", fault.clone(), 0, None);
        let report = engine.sync_head().await;
        assert!(!proxy.faulted().is_empty(), "{fault:?} was hit");
        assert_nothing_pruned(server, admin, ns, &report).await;
        proxy.heal();
    }

    // A 500 on one object's apply: that object fails, named; the others are applied (garbage
    // collection may run: the view is complete and the failed object is in git).
    proxy.inject(Some("PATCH"), &format!("/namespaces/{ns}/configmaps/cm-3"), HttpFault::Status(500, None), 0, None);
    let report = engine.sync_head().await;
    let text = messages(&report);
    assert!(text.contains(&format!("{ns}:configmap/cm-3")), "the error names the object: {text}");
    assert_eq!(value_of(admin, ns, "cm-3").await.as_deref(), Some("1"), "cm-3 was refused");
    proxy.heal();
    assert_converges(server, admin, &engine, ns, count, "2").await;
}

/// A slow server (every request delayed) converges; a server that accepts and never answers
/// an apply fails that sync within the request timeout, naming the object; truncated and
/// malformed answers to the listing prune nothing.
async fn slow_hanging_truncated_and_malformed(server: &KubeApiServer, admin: &KubeCluster) {
    let (ns, count) = ("slow", 4);
    let (proxy, kubeconfig) = proxy(server);
    let options = ClusterOptions { request_timeout: Duration::from_secs(3), ..ClusterOptions::default() };
    let cluster = proxied(&kubeconfig, options).await;
    let source = repository(ns, count, "1");
    let engine = engine(&source, &cluster, ns);
    assert!(engine.sync_head().await.expect("sync").is_success());

    change_everything(&source, ns, count, "2").await;
    proxy.inject(Some("PATCH"), &format!("/namespaces/{ns}/configmaps/cm-2"), HttpFault::Hang, 0, None);
    let report = engine.sync_head().await;
    let text = messages(&report);
    assert!(text.contains(&format!("{ns}:configmap/cm-2")), "the error names the object: {text}");
    assert_nothing_pruned(server, admin, ns, &report).await;
    proxy.heal();

    for fault in [HttpFault::Truncate(40), HttpFault::Malformed] {
        proxy.inject(Some("GET"), "labelSelector", fault.clone(), 0, None);
        let report = engine.sync_head().await;
        assert!(!proxy.faulted().is_empty(), "{fault:?} was hit");
        assert_nothing_pruned(server, admin, ns, &report).await;
        proxy.heal();
    }

    // Slow: seconds on every request (less than the timeout): the sync just takes longer.
    proxy.inject(None, "", HttpFault::Delay(Duration::from_millis(1500)), 0, None);
    assert_converges(server, admin, &engine, ns, count, "2").await;
}

/// Sends `signal` to the API server's process.
fn signal(server: &KubeApiServer, signal: &str) {
    let pid = server.pids().1.to_string();
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Thaws the API server when dropped, even when the test fails while it is frozen.
struct Thaw<'a>(&'a KubeApiServer);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// The API server's process frozen (SIGSTOP): the real server accepts connections and never
/// answers. The sync ends within the request timeout and prunes nothing; thawed, the next sync
/// converges.
async fn frozen(server: &KubeApiServer, admin: &KubeCluster) {
    let (ns, count) = ("frozen", 3);
    let options = ClusterOptions { request_timeout: Duration::from_secs(3), ..ClusterOptions::default() };
    let cluster = cluster(server, ADMIN, options).await;
    let source = repository(ns, count, "1");
    let engine = engine(&source, &cluster, ns);
    assert!(engine.sync_head().await.expect("sync").is_success());
    change_everything(&source, ns, count, "2").await;

    let report = {
        signal(server, "STOP");
        let _thaw = Thaw(server);
        let started = std::time::Instant::now();
        let report = tokio::time::timeout(Duration::from_secs(180), engine.sync_head())
            .await
            .expect("the sync ends while the server is frozen");
        eprintln!("frozen: the sync ended after {:?}", started.elapsed());
        report
    };
    assert!(report.as_ref().map_or(true, |r| !r.is_success()), "{report:?}");
    assert_nothing_pruned(server, admin, ns, &report).await;
    assert_converges(server, admin, &engine, ns, count, "2").await;
}

/// Another field manager owns a field flux's manifest sets: without force, that object fails
/// with the server's conflict, named; the rest is applied; with force (the default), flux takes
/// the field over.
async fn an_apply_conflict(server: &KubeApiServer, admin: &KubeCluster) {
    let (ns, count) = ("conflict", 3);
    let source = repository(ns, count, "1");
    let default = engine(&source, admin, ns);
    assert!(default.sync_head().await.expect("sync").is_success());
    let resource = api_resource("", "v1", "ConfigMap", "configmaps");
    let api: Api<DynamicObject> = Api::namespaced_with(admin.client().clone(), ns, &resource);
    let theirs =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-1"}, "data": {"value": "theirs"}});
    api.patch("cm-1", &PatchParams::apply("someone-else").force(), &Patch::Apply(&theirs)).await.expect("their apply");

    let strict = cluster(server, ADMIN, ClusterOptions { force_conflicts: false, ..ClusterOptions::default() }).await;
    change_everything(&source, ns, count, "2").await;
    let report = engine(&source, &strict, ns).sync_head().await;
    let text = messages(&report);
    assert!(text.contains(&format!("{ns}:configmap/cm-1")) && text.contains("conflict"), "{text}");
    assert_eq!(value_of(admin, ns, "cm-1").await.as_deref(), Some("theirs"));
    assert_eq!(value_of(admin, ns, "cm-2").await.as_deref(), Some("2"), "the others are applied");

    assert_converges(server, admin, &default, ns, count, "2").await;
}

/// An APIService whose Service has no endpoints: its group's discovery fails (503). The sync
/// of everything else goes on, and nothing is pruned for the kinds that cannot be seen.
async fn a_broken_aggregated_api(server: &KubeApiServer, admin: &KubeCluster) {
    let client = admin.client().clone();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "dead-api", "namespace": "default"},
        "spec": {"ports": [{"port": 443, "protocol": "TCP"}]}
    });
    let services: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &api_resource("", "v1", "Service", "services"));
    services
        .create(&PostParams::default(), &serde_json::from_value(service).expect("a Service"))
        .await
        .expect("create");
    let apiservice = json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.broken.flux.test"},
        "spec": {"group": "broken.flux.test", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                 "insecureSkipTLSVerify": true, "service": {"name": "dead-api", "namespace": "default"}}
    });
    let resource = api_resource("apiregistration.k8s.io", "v1", "APIService", "apiservices");
    let apiservices: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    apiservices
        .create(&PostParams::default(), &serde_json::from_value(apiservice).expect("an APIService"))
        .await
        .expect("create");

    // A fresh handle (its discovery sees the broken group), first run of the unit (no
    // inventory: every kind is listed).
    let (ns, count) = ("aggregated", 3);
    let fresh = cluster(server, ADMIN, ClusterOptions::default()).await;
    let source = repository(ns, count, "1");
    let engine = engine(&source, &fresh, ns);
    let first = engine.sync_head().await.expect("sync");
    assert_eq!(
        value_of(admin, ns, "cm-1").await.as_deref(),
        Some("1"),
        "applied despite the broken group: {:?}",
        first.errors
    );
    assert!(first.applied.iter().all(|r| !r.outcome.is_failure()), "{:?}", first.applied);

    change_everything(&source, ns, count, "2").await;
    let second = engine.sync_head().await.expect("sync");
    for i in 1..=count {
        assert_eq!(value_of(admin, ns, &format!("cm-{i}")).await.as_deref(), Some("2"), "{:?}", second.errors);
    }
    // `old` is collected or kept, never anything else; and a fresh unit with no inventory still
    // applies and prunes nothing it cannot prove.
    assert!(deletions_in(server, ns) <= 1);
    let pruned: Vec<String> = second.pruned.iter().map(|p| p.id.to_string()).collect();
    assert!(pruned.iter().all(|p| p == &format!("{ns}:configmap/old")), "{pruned:?}");
    apiservices.delete("v1beta1.broken.flux.test", &DeleteParams::default()).await.expect("delete the APIService");
}

fn crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.faults.flux.test"},
        "spec": {"group": "faults.flux.test", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    ApiResource { group: group.into(), version: version.into(), api_version, kind: kind.into(), plural: plural.into() }
}

/// Polls `check` every 200 ms for up to two minutes; whether it held.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    for _ in 0..600 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Syncs until a sync succeeds (a new CRD takes a moment to be served), at most two minutes.
async fn wait_for_success(engine: &SyncEngine) -> SyncReport {
    let mut last = None;
    for _ in 0..120 {
        let report = engine.sync_head().await.expect("sync");
        if report.is_success() {
            return report;
        }
        last = Some(report);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    last.expect("at least one sync")
}

/// A CRD installed by someone else is deleted (its CRs go with it) while the CRs are in git:
/// the CRs fail by name, the rest is applied, nothing is pruned; once the CRD is back, the
/// next sync re-creates the CRs.
async fn a_crd_deleted_while_its_resources_are_in_git(server: &KubeApiServer, admin: &KubeCluster) {
    let ns = "crds";
    let crd_resource =
        api_resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions");
    let crds: Api<DynamicObject> = Api::all_with(admin.client().clone(), &crd_resource);
    let gadgets: Api<DynamicObject> =
        Api::all_with(admin.client().clone(), &api_resource("faults.flux.test", "v1", "Gadget", "gadgets"));
    let install = || async {
        crds.create(&PostParams::default(), &serde_json::from_value(crd()).expect("a CRD"))
            .await
            .expect("install the CRD");
        assert!(eventually(|| async { gadgets.list(&Default::default()).await.is_ok() }).await, "the CRD is served");
    };
    install().await;
    let gadget = format!(
        "apiVersion: faults.flux.test/v1\nkind: Gadget\nmetadata:\n  name: g1\n  namespace: {ns}\nspec: {{size: 1}}\n"
    );
    let source = repository(ns, 2, "1");
    commit(&source, vec![FileChange::write("deploy/gadget.yaml", gadget)]).await;
    let cluster = cluster(server, ADMIN, ClusterOptions::default()).await;
    let engine = engine(&source, &cluster, ns);
    let first = wait_for_success(&engine).await;
    assert!(first.is_success(), "{:?}", first.errors);

    crds.delete("gadgets.faults.flux.test", &DeleteParams::default()).await.expect("delete the CRD");
    let gone = eventually(|| async {
        crds.get_opt("gadgets.faults.flux.test").await.is_ok_and(|c| c.is_none())
            && gadgets.list(&Default::default()).await.is_err()
    });
    assert!(gone.await, "the CRD went away");
    commit(&source, vec![FileChange::write("deploy/cms.yaml", config_maps(ns, 2, "2"))]).await;
    let report = engine.sync_head().await.expect("sync");
    let text = messages(&Ok(report.clone()));
    assert!(text.contains(&format!("{ns}:gadget/g1")), "the error names the custom resource: {text}");
    assert_eq!(value_of(admin, ns, "cm-1").await.as_deref(), Some("2"), "the rest is applied");
    assert_nothing_pruned(server, admin, ns, &Ok(report)).await;

    install().await;
    let report = wait_for_success(&engine).await;
    assert!(report.is_success() && report.pruned.is_empty(), "{:?} {:?}", report.errors, report.pruned);
    let g1: Api<DynamicObject> =
        Api::namespaced_with(admin.client().clone(), ns, &api_resource("faults.flux.test", "v1", "Gadget", "gadgets"));
    assert!(g1.get_opt("g1").await.expect("get").is_some(), "the custom resource is back");
    assert_eq!(deletions_in(server, ns), 0);
}
