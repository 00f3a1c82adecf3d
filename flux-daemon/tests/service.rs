//! The service layer with flux-core's in-memory adapters: every route's logic, job ordering per
//! unit, units in parallel, author credit, the `Flux-Job:` trailer, job results after a restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flux_core::automation::{ImageSelector, ReleaseSpec, WorkloadOutcome, WorkloadSelector};
use flux_core::generate::ManifestGenerator;
use flux_core::memory::{MemoryCluster, MemoryImage, MemoryRegistry, MemorySource};
use flux_core::sync::SyncConfig;
use flux_core::{
    ChangeCause, Cluster, CommitRequest, Error, PolicyChange, ResourceId, Revision, Source, SourceFile, SyncIdentity,
};
use flux_daemon::results::{JobResult, JobView, PolicyRequest};
use flux_daemon::{Daemon, SyncUnit, UnitService};
use tokio::sync::Barrier;

fn deployment(name: &str, image: &str, automated: bool) -> String {
    let annotations = if automated { "  annotations:\n    fluxcd.io/automated: \"true\"\n" } else { "" };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\n{annotations}spec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )
}

fn registry() -> MemoryRegistry {
    let registry = MemoryRegistry::new();
    let repo = "registry.local/app".parse().expect("repo");
    for (tag, second) in [("1.0.0", 1), ("1.1.0", 2)] {
        let created = jiff::Timestamp::from_second(1_700_000_000 + second).expect("time");
        registry.push(&repo, tag, MemoryImage::created(created));
    }
    registry
}

fn id(s: &str) -> ResourceId {
    s.parse().expect("id")
}

/// A unit named `name` over `source`'s `path`, into `cluster`.
fn unit(name: &str, source: Arc<dyn Source>, cluster: &MemoryCluster, path: &str) -> SyncUnit {
    let config = SyncConfig::new(SyncIdentity::new(format!("flux-{name}")).expect("identity"), vec![path.to_owned()]);
    let generator = Arc::new(ManifestGenerator::new(Default::default()));
    SyncUnit::new(name, source, Arc::new(cluster.clone()), Arc::new(registry()), generator, config).expect("unit")
}

fn shop_source() -> MemorySource {
    MemorySource::with_files([
        ("shop/web.yaml".to_owned(), deployment("web", "registry.local/app:1.0.0", false)),
        ("shop/worker.yaml".to_owned(), deployment("worker", "registry.local/app:1.0.0", true)),
        ("blog/blog.yaml".to_owned(), deployment("blog", "registry.local/app:1.0.0", false)),
    ])
    .expect("source")
}

async fn done(unit: &UnitService, job: flux_core::Result<flux_daemon::jobs::JobId>) -> JobResult {
    let job = job.expect("queued");
    match tokio::time::timeout(Duration::from_secs(60), unit.wait(&job)).await.expect("the job finishes") {
        Some(JobView::Succeeded { result }) => *result,
        other => panic!("job {job} did not succeed: {other:?}"),
    }
}

/// Runs `daemon`; the future that stops it and waits for it.
fn start(daemon: Daemon) -> (Arc<Daemon>, impl std::future::Future<Output = ()>) {
    let daemon = Arc::new(daemon);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let stop = async move {
        let _ = stop.send(());
        running.await.expect("joined").expect("ran");
    };
    (daemon, stop)
}

fn release_all(user: &str) -> ReleaseSpec {
    ReleaseSpec {
        workloads: WorkloadSelector::All,
        excludes: Vec::new(),
        image: ImageSelector::Image("registry.local/app:1.1.0".parse().expect("image")),
        dry_run: false,
        force: false,
        cause: ChangeCause { user: Some(user.into()), message: Some("ship it".into()) },
    }
}

#[tokio::test]
async fn every_route_of_a_unit_through_the_service_layer() {
    let source = shop_source();
    let cluster = MemoryCluster::new();
    let shop = unit("shop", Arc::new(source.clone()), &cluster, "shop").with_set_author(true);
    let (daemon, stop) = start(Daemon::builder().unit(shop).build().expect("daemon"));
    let shop = daemon.select(None).expect("the only unit").clone();
    assert_eq!(shop.name(), "shop");

    // sync: the unit's path only.
    let JobResult::Sync(summary) = done(&shop, shop.submit_sync()).await else { panic!("not a sync") };
    assert!(summary.success, "{summary:?}");
    let names: Vec<String> = cluster.objects().iter().map(|o| o.id().to_string()).collect();
    assert_eq!(names, ["default:deployment/web", "default:deployment/worker"], "blog/ is another path");
    assert_eq!(shop.status().last_sync.map(|s| s.revision), Some(summary.revision.clone()));

    // workloads and images.
    let (listing, workloads) = shop.workloads(Some("default")).await.expect("workloads");
    assert!(listing.head_problem.is_none());
    let ids: Vec<String> = workloads.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(ids, ["default:deployment/web", "default:deployment/worker"]);
    assert!(workloads.iter().all(|w| w.in_git && w.status.is_some()), "{workloads:?}");
    assert!(workloads[1].policies.automated);
    let (_, images) = shop.images(Some(&id("default:deployment/web"))).await.expect("images");
    assert_eq!(images.len(), 1);
    let tags: Vec<&str> = images[0].containers[0].available.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(tags, ["1.1.0", "1.0.0"], "newest first");

    // release: committed with the job's id and the asking user as author.
    let job = shop.submit_release(release_all("jane")).expect("queued");
    let JobResult::Release(result) = done(&shop, Ok(job.clone())).await else { panic!("not a release") };
    assert_eq!(result.updated().count(), 2);
    let commit = &source.log()[0];
    assert_eq!(Some(&commit.revision), result.revision.as_ref());
    assert!(commit.message.contains(&format!("Flux-Job: {job}")), "{}", commit.message);
    assert!(commit.message.contains("Flux-User: jane"), "{}", commit.message);
    assert_eq!(commit.author.name, "jane", "--git-set-author credits the user");

    // policy: one commit, its own job id.
    let request = PolicyRequest {
        workload: id("default:deployment/web"),
        changes: vec![PolicyChange::Automate],
        tag_all: Some(Some("semver:~1".into())),
        user: Some("joe".into()),
        message: None,
    };
    let job = shop.submit_policy(request).expect("queued");
    let JobResult::Policy { revision, diffs } = done(&shop, Ok(job.clone())).await else { panic!("not a policy") };
    assert_eq!(diffs.len(), 1);
    assert!(diffs[0].after.automated && diffs[0].after.tag_filters.contains_key("app"));
    let commit = &source.log()[0];
    assert_eq!(revision.as_deref(), Some(commit.revision.as_str()));
    assert!(commit.message.contains(&format!("Flux-Job: {job}")), "{}", commit.message);
    assert_eq!(commit.author.name, "joe");

    // a policy change to a workload that is not in git fails with its kind kept.
    let missing = PolicyRequest {
        workload: id("default:deployment/nope"),
        changes: vec![PolicyChange::Automate],
        tag_all: Some(None),
        user: None,
        message: None,
    };
    let job = shop.submit_policy(missing).expect("queued");
    match shop.wait(&job).await {
        Some(JobView::Failed { error }) => assert!(error.contains("default:deployment/nope"), "{error}"),
        other => panic!("expected a failure: {other:?}"),
    }

    // export: what the unit manages, without server fields; a hand-made copy of an applied
    // object (its labels, so its mark, copied under another name) is not the unit's.
    let web = cluster.objects().into_iter().find(|o| o.name() == "web").expect("web applied");
    let mut copy = web.to_value();
    copy["metadata"]["name"] = "web-copy".into();
    let copy = flux_core::KubeObject::from_value(copy, None).expect("the copy");
    cluster.apply(&[copy], Default::default()).await.expect("apply the copy");
    let yaml = shop.export().await.expect("export");
    assert!(!yaml.contains("web-copy"), "{yaml}");
    assert_eq!(yaml.matches("---\n").count(), 2, "{yaml}");
    assert!(yaml.contains("name: web") && !yaml.contains("resourceVersion"), "{yaml}");

    // jobs: unknown ids are unknown.
    assert!(shop.job("nope").is_none());
    stop.await;
}

#[tokio::test]
async fn several_units_are_chosen_by_name_and_list_only_their_own_workloads() {
    let source: Arc<dyn Source> = Arc::new(shop_source());
    let cluster = MemoryCluster::new();
    let (daemon, stop) = start(
        Daemon::builder()
            .unit(unit("shop", source.clone(), &cluster, "shop"))
            .unit(unit("blog", source, &cluster, "blog"))
            .build()
            .expect("daemon"),
    );
    let none = daemon.select(None).expect_err("several units");
    assert!(matches!(none, Error::InvalidInput { .. }) && none.to_string().contains("blog, shop"), "{none}");
    let unknown = daemon.select(Some("news")).expect_err("unknown");
    assert!(matches!(unknown, Error::NotFound { .. }) && unknown.to_string().contains("blog, shop"), "{unknown}");
    let (shop, blog) = (daemon.select(Some("shop")).unwrap().clone(), daemon.select(Some("blog")).unwrap().clone());
    done(&shop, shop.submit_sync()).await;
    done(&blog, blog.submit_sync()).await;
    let (_, blog_workloads) = blog.workloads(None).await.expect("workloads");
    let ids: Vec<String> = blog_workloads.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(ids, ["default:deployment/blog"], "the shop's running workloads are not the blog's");

    let same = Daemon::builder()
        .unit(unit("shop", Arc::new(shop_source()), &cluster, "shop"))
        .unit(unit("shop", Arc::new(shop_source()), &cluster, "blog"))
        .build()
        .expect_err("the same identity twice");
    assert!(same.to_string().contains("same sync identity"), "{same}");
    stop.await;
}

/// A source whose commits wait at a barrier: two of them only get through together.
struct MeetingSource {
    inner: MemorySource,
    barrier: Arc<Barrier>,
}

#[async_trait]
impl Source for MeetingSource {
    async fn refresh(&self) -> flux_core::Result<Revision> {
        self.inner.refresh().await
    }
    async fn files(&self, revision: &Revision, paths: &[String]) -> flux_core::Result<Vec<SourceFile>> {
        self.inner.files(revision, paths).await
    }
    async fn read_file(&self, revision: &Revision, path: &str) -> flux_core::Result<Vec<u8>> {
        self.inner.read_file(revision, path).await
    }
    async fn commit(&self, request: &CommitRequest) -> flux_core::Result<Revision> {
        self.barrier.wait().await;
        self.inner.commit(request).await
    }
    async fn sync_marker(&self) -> flux_core::Result<Option<Revision>> {
        self.inner.sync_marker().await
    }
    async fn set_sync_marker(&self, revision: &Revision) -> flux_core::Result<()> {
        self.inner.set_sync_marker(revision).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_write_in_parallel_and_each_unit_in_submission_order() {
    let barrier = Arc::new(Barrier::new(2));
    let cluster = MemoryCluster::new();
    let (a, b) = (shop_source(), shop_source());
    let meeting = |inner: &MemorySource| -> Arc<dyn Source> {
        Arc::new(MeetingSource { inner: inner.clone(), barrier: barrier.clone() })
    };
    let daemon = Arc::new(
        Daemon::builder()
            .unit(unit("a", meeting(&a), &cluster, "shop"))
            .unit(unit("b", meeting(&b), &cluster, "blog"))
            .parallel_units(2)
            .build()
            .expect("daemon"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let (ua, ub) = (daemon.select(Some("a")).unwrap().clone(), daemon.select(Some("b")).unwrap().clone());
    // Unit a: a release, then a policy change; unit b: two releases. Each commit waits at a
    // barrier of two, so a commit gets through only while the other unit commits too: the jobs
    // of a and b must run at the same time, and each unit's in the order submitted.
    let first = ua.submit_release(release_all("x")).expect("queued");
    let lock = PolicyRequest {
        workload: id("default:deployment/web"),
        changes: vec![PolicyChange::Lock(Default::default())],
        tag_all: None,
        user: None,
        message: None,
    };
    let second = ua.submit_policy(lock).expect("queued");
    let other = ub.submit_release(release_all("y")).expect("queued");
    let third = ub.submit_release(ReleaseSpec {
        image: ImageSelector::Image("registry.local/app:1.0.0".parse().expect("image")),
        ..release_all("z")
    });
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        (ua.wait(&first).await, ua.wait(&second).await, ub.wait(&other).await, ub.wait(&third.expect("queued")).await)
    })
    .await
    .expect("jobs of two units met at the barrier: they ran in parallel");
    assert!(matches!(finished.0, Some(JobView::Succeeded { .. })), "{:?}", finished.0);
    assert!(matches!(finished.1, Some(JobView::Succeeded { .. })), "{:?}", finished.1);
    let log = a.log();
    assert!(log[1].message.contains(&format!("Flux-Job: {first}")), "the release first: {}", log[1].message);
    assert!(log[0].message.contains(&format!("Flux-Job: {second}")), "then the policy: {}", log[0].message);
    let _ = stop.send(());
    running.await.expect("joined").expect("ran");
}

#[tokio::test]
async fn a_broken_file_reaches_the_status_with_its_kind_and_line() {
    let source = MemorySource::with_files([
        ("shop/web.yaml".to_owned(), deployment("web", "registry.local/app:1.0.0", false)),
        ("shop/broken.yaml".to_owned(), "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n".to_owned()),
    ])
    .expect("source");
    let cluster = MemoryCluster::new();
    let (daemon, stop) =
        start(Daemon::builder().unit(unit("shop", Arc::new(source), &cluster, "shop")).build().expect("daemon"));
    let shop = daemon.select(None).unwrap().clone();
    let JobResult::Sync(summary) = done(&shop, shop.submit_sync()).await else { panic!("not a sync") };
    assert!(!summary.success);
    let error = &summary.errors[0].error;
    match error {
        Error::InvalidInput { location, .. } => assert_eq!(location.file, "shop/broken.yaml", "{error}"),
        other => panic!("the kind is lost: {other:?}"),
    }
    assert!(cluster.objects().is_empty(), "nothing applied from an unusable revision");
    stop.await;
}

#[tokio::test]
async fn job_results_are_answered_after_a_restart() {
    let state = tempfile::tempdir().expect("tempdir");
    let source: Arc<dyn Source> = Arc::new(shop_source());
    let cluster = MemoryCluster::new();
    let build = || Daemon::builder().unit(unit("shop", source.clone(), &cluster, "shop")).state_dir(state.path());
    let daemon = Arc::new(build().build().expect("daemon"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    let shop = daemon.select(None).unwrap().clone();
    let job = shop.submit_release(release_all("x")).expect("queued");
    let JobResult::Release(before) = done(&shop, Ok(job.clone())).await else { panic!("not a release") };
    let _ = stop.send(());
    running.await.expect("joined").expect("ran");
    drop((shop, daemon));

    let again = build().build().expect("daemon again");
    let shop = again.select(None).unwrap();
    match shop.job(job.as_str()) {
        Some(JobView::Succeeded { result }) => match *result {
            JobResult::Release(after) => {
                assert_eq!(after, before);
                assert!(after.workloads.iter().all(|w| w.outcome == WorkloadOutcome::Updated));
            }
            other => panic!("not a release: {other:?}"),
        },
        other => panic!("the job is not answered after the restart: {other:?}"),
    }
}
