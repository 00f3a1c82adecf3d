//! Health waits, dependsOn and suspension through the service layer, with flux-core's in-memory
//! adapters (the real API server's side is in the e2e tests).

use std::sync::Arc;
use std::time::Duration;

use flux_core::generate::ManifestGenerator;
use flux_core::health::WaitOutcome;
use flux_core::memory::{MemoryCluster, MemoryRegistry, MemorySource};
use flux_core::sync::SyncConfig;
use flux_core::{Cluster, ObjectRef, ResourceId, Source, SyncIdentity};
use flux_daemon::results::{JobResult, JobView, SyncSummary};
use flux_daemon::{Daemon, SyncUnit, UnitService};
use serde_json::json;

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: app\n        image: registry.local/app:1.0.0\n";
const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata: {a: b}\n";

fn unit(name: &str, source: Arc<dyn Source>, cluster: &MemoryCluster, path: &str) -> SyncUnit {
    let config = SyncConfig::new(SyncIdentity::new(format!("flux-{name}")).expect("identity"), vec![path.to_owned()]);
    let generator = Arc::new(ManifestGenerator::new(Default::default()));
    SyncUnit::new(name, source, Arc::new(cluster.clone()), Arc::new(MemoryRegistry::new()), generator, config)
        .expect("unit")
        .without_scanning()
        // Syncs only when the test asks.
        .with_intervals(flux_daemon::Intervals {
            git_poll: Duration::from_secs(3600),
            sync: Duration::from_secs(3600),
            automation: Duration::from_secs(3600),
        })
}

async fn sync(unit: &Arc<UnitService>) -> SyncSummary {
    let job = unit.submit_sync().expect("queued");
    match tokio::time::timeout(Duration::from_secs(60), unit.wait(&job)).await.expect("the job finishes") {
        Some(JobView::Succeeded { result }) => match *result {
            JobResult::Sync(summary) => *summary,
            other => panic!("not a sync: {other:?}"),
        },
        other => panic!("job {job} did not succeed: {other:?}"),
    }
}

/// Records the summaries of the events it is sent.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl flux_daemon::EventSink for Recorder {
    async fn send(&self, event: &flux_daemon::Event) -> flux_core::Result<()> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(format!(
            "{}: {}",
            event.name(),
            event.summary()
        ));
        Ok(())
    }
}

fn settings_ref() -> ObjectRef {
    ObjectRef { api_version: "v1".into(), id: "default:configmap/settings".parse().expect("id") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_waits_for_its_dependency_to_be_healthy_and_a_suspended_unit_applies_nothing() {
    let source: Arc<dyn Source> = Arc::new(
        MemorySource::with_files([
            ("a/web.yaml".to_owned(), WEB.to_owned()),
            ("b/settings.yaml".to_owned(), SETTINGS.to_owned()),
        ])
        .expect("source"),
    );
    let cluster = MemoryCluster::new();
    let state = tempfile::tempdir().expect("state dir");
    let a = unit("a", source.clone(), &cluster, "a").with_wait(Duration::from_millis(300));
    let b = unit("b", source.clone(), &cluster, "b").with_depends_on(["a"]);
    let events = Arc::new(Recorder::default());
    let daemon = Arc::new(
        Daemon::builder().unit(a).unit(b).state_dir(state.path()).sink(events.clone()).build().expect("daemon"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let (a, b) = (daemon.select(Some("a")).expect("a").clone(), daemon.select(Some("b")).expect("b").clone());

    // Nothing reconciles the Deployment: a times out naming it; b is held by a, applies nothing.
    let web: ResourceId = "default:deployment/web".parse().expect("id");
    let first = sync(&a).await;
    assert!(!first.success, "{first:?}");
    let health = first.health.as_ref().expect("a waits");
    assert!(
        matches!(&health.outcome, WaitOutcome::TimedOut { id, reason } if *id == web && reason == "replicas: 0/1"),
        "{health:?}"
    );
    assert!(first.errors.iter().any(|e| e.id.as_ref() == Some(&web) && e.message().contains("timed out")), "{first:?}");
    let announced = || events.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !announced().iter().any(|e| e.starts_with("HealthFailed: [a]") && e.contains("default:deployment/web")) {
        assert!(tokio::time::Instant::now() < deadline, "no HealthFailed event: {:?}", announced());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = sync(&b).await;
    let why = held.held.as_ref().expect("held");
    assert_eq!(why.by, "a");
    assert!(why.reason.contains("replicas: 0/1"), "{why:?}");
    assert!(held.applied.is_empty() && held.pruned.is_empty());
    assert!(cluster.get(&settings_ref()).await.expect("get").is_none(), "a held unit applied something");
    assert_eq!(b.status().held.map(|h| h.by).as_deref(), Some("a"));

    // Once the Deployment is available, a is healthy and b syncs.
    let status = json!({"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True"}]});
    cluster.set_status(&ObjectRef { api_version: "apps/v1".into(), id: web.clone() }, status).expect("status");
    let healthy = sync(&a).await;
    assert!(healthy.success && healthy.health.as_ref().is_some_and(|h| h.is_healthy()), "{healthy:?}");
    assert!(a.status().last_sync.and_then(|s| s.health).is_some_and(|h| h.is_healthy()), "status shows the health");
    let synced = sync(&b).await;
    assert!(synced.success && synced.held.is_none(), "{synced:?}");
    assert!(cluster.get(&settings_ref()).await.expect("get").is_some(), "b did not apply once a was healthy");

    // Suspended: held by itself, with who and why, until resumed; kept in the state directory.
    b.suspend(None, Some("ana".into()), Some("incident 42".into())).await.expect("suspended");
    let suspended = sync(&b).await;
    let why = suspended.held.expect("held");
    assert!(why.by == "b" && why.reason.contains("ana") && why.reason.contains("incident 42"), "{why:?}");
    assert!(b.status().suspended.is_some_and(|s| s.user.as_deref() == Some("ana")));
    assert!(state.path().join("suspend-b.json").exists());
    assert!(b.resume(None, Some("ana")).await.expect("resumed"));
    assert!(sync(&b).await.held.is_none());

    let _ = stop.send(());
    running.await.expect("joined").expect("ran");
}

#[test]
fn cycles_and_unknown_dependencies_are_refused_when_the_daemon_is_built() {
    let source: Arc<dyn Source> =
        Arc::new(MemorySource::with_files([("x/s.yaml".to_owned(), SETTINGS.to_owned())]).expect("source"));
    let cluster = MemoryCluster::new();
    let cycle = Daemon::builder()
        .unit(unit("x", source.clone(), &cluster, "x").with_depends_on(["y"]))
        .unit(unit("y", source.clone(), &cluster, "y").with_depends_on(["x"]))
        .build()
        .expect_err("a cycle");
    assert!(cycle.to_string().contains("x -> y -> x"), "{cycle}");
    let unknown = Daemon::builder()
        .unit(unit("x", source.clone(), &cluster, "x").with_depends_on(["z"]))
        .build()
        .expect_err("unknown");
    assert!(unknown.to_string().contains("\"z\""), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_gate_a_sync_on_objects_the_unit_does_not_apply() {
    let source: Arc<dyn Source> =
        Arc::new(MemorySource::with_files([("b/settings.yaml".to_owned(), SETTINGS.to_owned())]).expect("source"));
    let cluster = MemoryCluster::new();
    let web = flux_core::KubeObject::from_value(serde_saphyr::from_str::<serde_json::Value>(WEB).expect("yaml"), None)
        .expect("object");
    cluster.apply(std::slice::from_ref(&web), Default::default()).await.expect("applied by someone else");
    let check = ObjectRef::of(&web);
    let app = unit("app", source, &cluster, "b").with_health_checks(vec![check.clone()], Duration::from_millis(300));
    assert_eq!(app.health_wait(), Some(Duration::from_millis(300)), "checks alone make it wait");
    let daemon = Arc::new(Daemon::builder().unit(app).build().expect("daemon"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let app = daemon.select(Some("app")).expect("app").clone();

    let first = sync(&app).await;
    assert!(!first.success, "{first:?}");
    let health = first.health.expect("checked");
    assert!(matches!(&health.outcome, WaitOutcome::TimedOut { id, .. } if *id == check.id), "{health:?}");
    assert_eq!(health.objects.len(), 1, "only the check: the unit does not wait for its own objects");
    assert!(cluster.get(&settings_ref()).await.expect("get").is_some(), "its own objects are applied");

    let status = json!({"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True"}]});
    cluster.set_status(&check, status).expect("status");
    let healthy = sync(&app).await;
    assert!(healthy.success && healthy.health.as_ref().is_some_and(|h| h.is_healthy()), "{healthy:?}");

    let _ = stop.send(());
    running.await.expect("joined").expect("ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_on_another_repository_must_have_synced_that_repositorys_head() {
    let theirs = MemorySource::with_files([("a/settings.yaml".to_owned(), SETTINGS.replace("settings", "theirs"))])
        .expect("source");
    let ours = MemorySource::with_files([("b/settings.yaml".to_owned(), SETTINGS.to_owned())]).expect("source");
    let cluster = MemoryCluster::new();
    let a = unit("a", Arc::new(theirs.clone()), &cluster, "a");
    let b = unit("b", Arc::new(ours), &cluster, "b").with_depends_on(["a"]);
    let daemon = Arc::new(Daemon::builder().unit(a).unit(b).build().expect("daemon"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let (a, b) = (daemon.select(Some("a")).expect("a").clone(), daemon.select(Some("b")).expect("b").clone());
    assert!(sync(&a).await.success);
    assert!(sync(&b).await.held.is_none(), "a synced its head");

    // Their repository moves on; a has not looked yet: b is held until a syncs the new head.
    let change = flux_core::FileChange::write("a/more.yaml", SETTINGS.replace("settings", "more"));
    let moved = theirs.push_external(&[change], "more").expect("pushed");
    let held = sync(&b).await;
    let why = held.held.expect("held");
    assert!(why.by == "a" && why.reason.contains(moved.short()), "{why:?}");
    assert!(sync(&a).await.success);
    assert!(sync(&b).await.held.is_none(), "a synced the new head");

    let _ = stop.send(());
    running.await.expect("joined").expect("ran");
}
