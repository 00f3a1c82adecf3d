//! Automation, releases and the manifest policy store against the in-memory Source and
//! Registry, with fault-injecting wrappers where a failure must be forced.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::memory::{MemoryImage, MemoryRegistry, MemorySource};
use crate::policy::{ChangeCause, Lock, PolicyChange, PolicyStore, PolicyUpdate, TagFilter};
use crate::registry::{ImageInfo, Registry};
use crate::source::{CommitRequest, FileChange, Revision, Source, SourceFile};
use crate::{Error, ImageRef, ImageRepo, ResourceId};

fn deployment(name: &str, annotations: &[(&str, &str)], containers: &[(&str, &str)]) -> String {
    let mut s = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\n");
    if !annotations.is_empty() {
        s.push_str("  annotations:\n");
        for (k, v) in annotations {
            s.push_str(&format!("    {k}: \"{v}\"\n"));
        }
    }
    s.push_str("spec:\n  template:\n    spec:\n      containers:\n");
    for (n, image) in containers {
        s.push_str(&format!("      # the {n} container\n      - name: {n}\n        image: {image}\n"));
    }
    s
}

fn at(minute: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + minute * 60).unwrap()
}

fn repo(s: &str) -> ImageRepo {
    s.parse().unwrap()
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

/// The plain-manifest generator, with default options.
fn plain() -> Arc<dyn crate::generate::Generator> {
    Arc::new(crate::generate::ManifestGenerator::new(crate::manifest::ManifestOptions::default()))
}

/// A registry with: app (semver tags and a newer non-semver tag), web (tags by time), latest tags.
fn registry() -> MemoryRegistry {
    let r = MemoryRegistry::new();
    for (tag, minute) in [("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3), ("2.0.0", 4), ("nightly", 9), ("latest", 10)] {
        r.push(&repo("registry.local/app"), tag, MemoryImage::created(at(minute)));
    }
    for (tag, minute) in [("main-aaa", 1), ("main-ccc", 5), ("main-bbb", 3), ("feature-x", 8)] {
        r.push(&repo("registry.local/web"), tag, MemoryImage::created(at(minute)));
    }
    r.push(&repo("registry.local/undated"), "2", MemoryImage::default());
    r.push(&repo("registry.local/undated"), "1", MemoryImage::created(at(1)));
    r
}

struct Fixture {
    source: MemorySource,
    registry: MemoryRegistry,
}

impl Fixture {
    fn new(files: &[(&str, String)]) -> Self {
        Fixture { source: MemorySource::with_files(files.iter().cloned()).unwrap(), registry: registry() }
    }

    fn engine(&self) -> AutomationEngine {
        AutomationEngine::new(
            Arc::new(self.source.clone()),
            Arc::new(self.registry.clone()),
            plain(),
            AutomationConfig::default(),
        )
    }

    async fn file(&self, path: &str) -> String {
        let head = self.source.refresh().await.unwrap();
        String::from_utf8(self.source.read_file(&head, path).await.unwrap()).unwrap()
    }
}

/// Lines of `after` that differ from `before` (same line count expected).
fn changed_lines(before: &str, after: &str) -> Vec<(String, String)> {
    assert_eq!(before.lines().count(), after.lines().count(), "line count changed:\n{before}\n---\n{after}");
    before.lines().zip(after.lines()).filter(|(a, b)| a != b).map(|(a, b)| (a.to_owned(), b.to_owned())).collect()
}

#[tokio::test]
async fn each_filter_kind_picks_its_latest_in_one_commit() {
    let f = Fixture::new(&[
        (
            "semver.yaml",
            deployment(
                "semver",
                &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:>=1.1 <2")],
                &[("app", "registry.local/app:1.0.0")],
            ),
        ),
        (
            "glob.yaml",
            deployment(
                "glob",
                &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.web", "glob:main-*")],
                &[("web", "registry.local/web:main-aaa")],
            ),
        ),
        (
            "regex.yaml",
            deployment(
                "regex",
                &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.web", "regex:^main-(aaa|bbb)$")],
                &[("web", "registry.local/web:main-aaa")],
            ),
        ),
        (
            "alpha.yaml",
            deployment(
                "alpha",
                &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "alphabetical:asc")],
                &[("app", "registry.local/app:1.0.0")],
            ),
        ),
        ("any.yaml", deployment("any", &[("fluxcd.io/automated", "true")], &[("app", "registry.local/app:1.0.0")])),
        ("manual.yaml", deployment("manual", &[], &[("app", "registry.local/app:1.0.0")])),
    ]);
    let before = f.source.log().len();
    let report = f.engine().automate().await.unwrap();
    let mut got: Vec<(String, String)> =
        report.changes.iter().map(|c| (c.workload.to_string(), c.to.to_string())).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("default:deployment/alpha".to_string(), "registry.local/app:nightly".to_string()),
            ("default:deployment/any".to_string(), "registry.local/app:nightly".to_string()),
            ("default:deployment/glob".to_string(), "registry.local/web:main-ccc".to_string()),
            ("default:deployment/regex".to_string(), "registry.local/web:main-bbb".to_string()),
            ("default:deployment/semver".to_string(), "registry.local/app:1.2.0".to_string()),
        ],
        "semver: highest in range; glob/regex/any: newest created, never `latest`; alphabetical: last"
    );
    let log = f.source.log();
    assert_eq!(log.len(), before + 1, "all updates in one commit");
    assert!(log[0].message.starts_with("Auto-release multiple (5) images\n"), "{}", log[0].message);
    assert!(
        log[0]
            .message
            .contains(" - default:deployment/semver (app): registry.local/app:1.0.0 -> registry.local/app:1.2.0")
    );
    assert!(log[0].message.contains("Flux-Change: automation"));
    assert_eq!(report.revision.as_ref(), Some(&log[0].revision));
    assert!(f.file("manual.yaml").await.contains("app:1.0.0"), "not automated: untouched");
}

/// After its commit, the engine holds nothing of the revision it read: the sync reads the new
/// head next, and two revisions' objects are not held at once.
#[tokio::test]
async fn the_revision_read_is_let_go_of_once_committed_on() {
    let automated = deployment(
        "web",
        &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.web", "glob:main-*")],
        &[("web", "registry.local/web:main-aaa")],
    );
    let f = Fixture::new(&[("web.yaml", automated)]);
    let engine = f.engine();
    let read = engine.listing().await.unwrap().state;
    assert_eq!(Arc::strong_count(&read.generated), 2, "the engine keeps the head it read");
    let report = engine.automate().await.unwrap();
    assert!(report.revision.is_some());
    assert_eq!(Arc::strong_count(&read.generated), 1, "and lets go of it once it committed on it");
    let listed = engine.listing().await.unwrap();
    assert_eq!(Some(&listed.state.head), report.revision.as_ref(), "listings read the new head");
    assert!(listed.state.workloads[0].containers[0].image.to_string().ends_with(":main-ccc"));
    drop(listed);

    // A release that commits does the same; one that changes nothing keeps what it read.
    let spec = |image: &str| ReleaseSpec {
        workloads: WorkloadSelector::All,
        excludes: Vec::new(),
        image: ImageSelector::Image(image.parse().unwrap()),
        dry_run: false,
        force: false,
        cause: ChangeCause::default(),
    };
    let read = engine.listing().await.unwrap().state;
    assert!(engine.release(&spec("registry.local/web:main-ccc")).await.unwrap().revision.is_none());
    assert_eq!(Arc::strong_count(&read.generated), 2);
    assert!(engine.release(&spec("registry.local/web:main-bbb")).await.unwrap().revision.is_some());
    assert_eq!(Arc::strong_count(&read.generated), 1);
}

#[tokio::test]
async fn only_the_image_bytes_change() {
    let text = deployment(
        "web",
        &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.web", "glob:main-*")],
        &[("web", "registry.local/web:main-aaa")],
    );
    let f = Fixture::new(&[("web.yaml", text.clone())]);
    f.engine().automate().await.unwrap();
    let after = f.file("web.yaml").await;
    assert_eq!(
        changed_lines(&text, &after),
        [(
            "        image: registry.local/web:main-aaa".to_string(),
            "        image: registry.local/web:main-ccc".to_string()
        )]
    );
}

#[tokio::test]
async fn nothing_is_committed_when_git_already_has_the_latest() {
    let f = Fixture::new(&[(
        "app.yaml",
        deployment(
            "app",
            &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:^1")],
            &[("app", "registry.local/app:1.2.0")],
        ),
    )]);
    let before = f.source.log().len();
    let report = f.engine().automate().await.unwrap();
    assert!(report.changes.is_empty() && report.revision.is_none());
    assert_eq!(f.source.log().len(), before, "the same tag is never re-released");
}

#[tokio::test]
async fn locked_workloads_are_never_automated() {
    let f = Fixture::new(&[(
        "app.yaml",
        deployment(
            "app",
            &[("fluxcd.io/automated", "true"), ("fluxcd.io/locked", "true")],
            &[("app", "registry.local/app:1.0.0")],
        ),
    )]);
    let report = f.engine().automate().await.unwrap();
    assert!(report.changes.is_empty());
    assert_eq!(f.registry.requests(), 0, "a locked workload's images are not even scanned");
}

#[tokio::test]
async fn suspended_workloads_are_skipped_with_their_reason_and_the_others_automated() {
    let automated = [("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:~1")];
    let f = Fixture::new(&[
        ("held.yaml", deployment("held", &automated, &[("app", "registry.local/app:1.0.0")])),
        ("free.yaml", deployment("free", &automated, &[("app", "registry.local/app:1.0.0")])),
    ]);
    let suspended = Suspended::from([(id("default:deployment/held"), "suspended by ana: incident".to_owned())]);
    let report = f.engine().automate_skipping(&CommitAs::default(), &suspended).await.unwrap();
    let changed: Vec<String> = report.changes.iter().map(|c| c.workload.to_string()).collect();
    assert_eq!(changed, ["default:deployment/free"]);
    assert!(f.file("held.yaml").await.contains("registry.local/app:1.0.0"), "the suspended one is left as it was");
    assert!(
        report.skipped.iter().any(|s| s.workload == id("default:deployment/held") && s.reason.contains("incident")),
        "{:?}",
        report.skipped
    );
}

#[tokio::test]
async fn images_without_created_time_are_never_chosen_by_time() {
    let f = Fixture::new(&[(
        "u.yaml",
        deployment("u", &[("fluxcd.io/automated", "true")], &[("u", "registry.local/undated:0")]),
    )]);
    let report = f.engine().automate().await.unwrap();
    assert_eq!(report.changes.iter().map(|c| c.to.to_string()).collect::<Vec<_>>(), ["registry.local/undated:1"]);
}

/// Fails every call for one repository, as a registry outage would.
struct FailingFor {
    inner: MemoryRegistry,
    broken: ImageRepo,
}

#[async_trait]
impl Registry for FailingFor {
    async fn tags(&self, repository: &ImageRepo) -> crate::Result<Vec<String>> {
        if *repository == self.broken {
            return Err(Error::RateLimited { retry_after: None });
        }
        self.inner.tags(repository).await
    }
    async fn image_info(&self, image: &ImageRef) -> crate::Result<ImageInfo> {
        if image.repository() == self.broken {
            return Err(Error::transient("503"));
        }
        self.inner.image_info(image).await
    }
}

#[tokio::test]
async fn a_registry_failure_for_one_repository_never_produces_its_update() {
    let f = Fixture::new(&[(
        "two.yaml",
        deployment(
            "two",
            &[("fluxcd.io/automated", "true")],
            &[("app", "registry.local/app:1.0.0"), ("web", "registry.local/web:main-aaa")],
        ),
    )]);
    let registry = FailingFor { inner: f.registry.clone(), broken: repo("registry.local/app") };
    let engine =
        AutomationEngine::new(Arc::new(f.source.clone()), Arc::new(registry), plain(), AutomationConfig::default());
    let report = engine.automate().await.unwrap();
    assert_eq!(
        report.changes.iter().map(|c| c.container.as_str()).collect::<Vec<_>>(),
        ["web"],
        "the other repository carries on"
    );
    assert_eq!(report.registry_errors.len(), 1);
    assert!(report.registry_errors[0].error.contains("rate limited"), "{:?}", report.registry_errors);
    assert!(f.file("two.yaml").await.contains("registry.local/app:1.0.0"));
}

/// Lets someone else push just before our first commit, so that it meets a real conflict.
struct PushedMeanwhile {
    inner: MemorySource,
    pushed: AtomicBool,
    commits: AtomicUsize,
}

#[async_trait]
impl Source for PushedMeanwhile {
    async fn refresh(&self) -> crate::Result<Revision> {
        self.inner.refresh().await
    }
    async fn files(&self, r: &Revision, p: &[String]) -> crate::Result<Vec<SourceFile>> {
        self.inner.files(r, p).await
    }
    async fn read_file(&self, r: &Revision, p: &str) -> crate::Result<Vec<u8>> {
        self.inner.read_file(r, p).await
    }
    async fn commit(&self, request: &CommitRequest) -> crate::Result<Revision> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if !self.pushed.swap(true, Ordering::SeqCst) {
            let colleague = deployment(
                "colleague",
                &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:^1")],
                &[("app", "registry.local/app:1.0.0")],
            );
            self.inner.push_external(&[FileChange::write("colleague.yaml", colleague)], "a colleague's change")?;
        }
        self.inner.commit(request).await
    }
    async fn sync_marker(&self) -> crate::Result<Option<Revision>> {
        self.inner.sync_marker().await
    }
    async fn set_sync_marker(&self, r: &Revision) -> crate::Result<()> {
        self.inner.set_sync_marker(r).await
    }
}

#[tokio::test]
async fn a_conflict_is_retried_on_the_new_head_and_nothing_is_lost() {
    let f = Fixture::new(&[(
        "app.yaml",
        deployment(
            "app",
            &[("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:^1")],
            &[("app", "registry.local/app:1.0.0")],
        ),
    )]);
    let source = Arc::new(PushedMeanwhile {
        inner: f.source.clone(),
        pushed: AtomicBool::new(false),
        commits: AtomicUsize::new(0),
    });
    let engine =
        AutomationEngine::new(source.clone(), Arc::new(f.registry.clone()), plain(), AutomationConfig::default());
    let report = engine.automate().await.unwrap();
    assert_eq!(source.commits.load(Ordering::SeqCst), 2, "one conflict, one retry");
    let log = f.source.log();
    assert_eq!(log[1].message, "a colleague's change", "the colleague's commit is kept");
    assert_eq!(log[0].parent.as_ref(), Some(&log[1].revision), "ours is on top of it");
    let mut updated: Vec<String> = report.changes.iter().map(|c| c.workload.to_string()).collect();
    updated.sort();
    assert_eq!(updated, ["default:deployment/app", "default:deployment/colleague"], "re-planned on the new head");
    assert!(f.file("app.yaml").await.contains("app:1.2.0"));
    assert!(f.file("colleague.yaml").await.contains("app:1.2.0"));
    let again = engine.automate().await.unwrap();
    assert!(again.changes.is_empty() && again.revision.is_none(), "nothing applied twice");
}

#[tokio::test]
async fn releases_honour_locks_filters_and_force() {
    let f = Fixture::new(&[
        (
            "locked.yaml",
            deployment(
                "locked",
                &[("fluxcd.io/locked", "true"), ("fluxcd.io/locked_msg", "incident")],
                &[("app", "registry.local/app:1.0.0")],
            ),
        ),
        (
            "filtered.yaml",
            deployment("filtered", &[("fluxcd.io/tag.app", "semver:~1.0")], &[("app", "registry.local/app:1.0.0")]),
        ),
        (
            "free.yaml",
            deployment("free", &[], &[("app", "registry.local/app:1.0.0"), ("web", "registry.local/web:main-aaa")]),
        ),
        ("other.yaml", deployment("other", &[], &[("web", "registry.local/web:main-aaa")])),
    ]);
    let engine = f.engine();
    let spec = |image: &str, force: bool, dry_run: bool| ReleaseSpec {
        workloads: WorkloadSelector::All,
        excludes: vec![id("default:deployment/other")],
        image: ImageSelector::Image(image.parse().unwrap()),
        dry_run,
        force,
        cause: ChangeCause { user: Some("jane".into()), message: Some("ship it".into()) },
    };
    let before = f.source.log().len();
    let dry = engine.release(&spec("registry.local/app:2.0.0", false, true)).await.unwrap();
    assert_eq!(f.source.log().len(), before, "a dry run commits nothing");
    let by_name = |r: &ReleaseResult, w: &str| r.workloads.iter().find(|x| x.workload == id(w)).unwrap().clone();
    assert_eq!(
        by_name(&dry, "default:deployment/locked").outcome,
        WorkloadOutcome::Skipped { reason: "locked".into() }
    );
    assert_eq!(
        by_name(&dry, "default:deployment/other").outcome,
        WorkloadOutcome::Skipped { reason: "excluded".into() }
    );
    let filtered = by_name(&dry, "default:deployment/filtered");
    assert_eq!(filtered.containers[0].outcome, ContainerOutcome::FilterExcludes { filter: "semver:~1.0".into() });
    let free = by_name(&dry, "default:deployment/free");
    assert_eq!(free.outcome, WorkloadOutcome::Updated);
    assert_eq!(free.containers[1].outcome, ContainerOutcome::DoesNotUseImage);

    let missing = engine.release(&spec("registry.local/app:9.9.9", false, true)).await.unwrap();
    assert_eq!(by_name(&missing, "default:deployment/free").containers[0].outcome, ContainerOutcome::NotInRegistry);

    let by = CommitAs { author: Some(crate::Author::new("jane", "jane@example.org")), job: Some("job-7".into()) };
    let forced = engine.release_as(&spec("registry.local/app:2.0.0", true, false), &by).await.unwrap();
    let updated: Vec<String> = forced.updated().map(|w| w.workload.to_string()).collect();
    assert_eq!(
        updated,
        ["default:deployment/filtered", "default:deployment/free", "default:deployment/locked"],
        "force overrides locks and filters"
    );
    let log = f.source.log();
    assert_eq!(log.len(), before + 1);
    assert_eq!(forced.revision.as_ref(), Some(&log[0].revision));
    let m = &log[0].message;
    assert!(m.starts_with("Release registry.local/app:2.0.0 to default:deployment/filtered, default:deployment/free, default:deployment/locked\n\nship it\n"), "{m}");
    assert!(
        m.contains("Flux-Job: job-7") && m.contains("Flux-User: jane") && m.contains("Flux-Change: release"),
        "{m}"
    );
    assert_eq!(log[0].author, crate::Author::new("jane", "jane@example.org"), "the author given for this call");
    let up_to_date = engine.release(&spec("registry.local/app:2.0.0", true, false)).await.unwrap();
    assert!(up_to_date.revision.is_none());
    assert_eq!(by_name(&up_to_date, "default:deployment/free").outcome, WorkloadOutcome::UpToDate);
}

#[tokio::test]
async fn release_all_latest_to_named_workloads() {
    let f = Fixture::new(&[
        ("a.yaml", deployment("a", &[("fluxcd.io/tag.app", "semver:^1")], &[("app", "registry.local/app:1.0.0")])),
        ("b.yaml", deployment("b", &[], &[("app", "registry.local/app:1.0.0")])),
    ]);
    let spec = ReleaseSpec {
        workloads: WorkloadSelector::Only(vec![id("default:deployment/a"), id("default:deployment/ghost")]),
        excludes: vec![],
        image: ImageSelector::AllLatest,
        dry_run: false,
        force: false,
        cause: ChangeCause::default(),
    };
    let result = f.engine().release(&spec).await.unwrap();
    assert_eq!(result.workloads.len(), 2);
    assert_eq!(
        result.workloads[0].containers[0].outcome,
        ContainerOutcome::Updated { to: "registry.local/app:1.2.0".parse().unwrap() }
    );
    assert!(matches!(&result.workloads[1].outcome, WorkloadOutcome::Failed { error } if error.contains("not found")));
    assert!(f.file("b.yaml").await.contains("app:1.0.0"), "not named: untouched");
    assert!(f.source.log()[0].message.starts_with("Release latest images to default:deployment/a\n"));
}

fn policy_files() -> Vec<(&'static str, String)> {
    vec![
        ("apps/web.yaml", deployment("web", &[("app.kubernetes.io/team", "blue")], &[("web", "registry.local/web:main-aaa"), ("app", "registry.local/app:1.0.0")])),
        ("apps/api.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api # the API\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: registry.local/app:1.0.0\n".to_string()),
    ]
}

#[tokio::test]
async fn the_manifest_policy_store_keeps_the_contract() {
    let source = MemorySource::with_files(policy_files()).unwrap();
    let store = ManifestPolicyStore::new(Arc::new(source), plain(), AutomationConfig::default());
    crate::testkit::policy_store::run(
        &store,
        [&id("default:deployment/api"), &id("default:deployment/web")],
        &id("default:deployment/nope"),
    )
    .await;
}

#[tokio::test]
async fn policy_edits_change_only_annotation_lines_and_say_so_in_the_commit() {
    let source = MemorySource::with_files(policy_files()).unwrap();
    let store = ManifestPolicyStore::new(Arc::new(source.clone()), plain(), AutomationConfig::default());
    let before =
        String::from_utf8(source.read_file(&source.refresh().await.unwrap(), "apps/web.yaml").await.unwrap()).unwrap();
    let cause = ChangeCause { user: Some("ada".into()), message: Some("freeze for the demo".into()) };
    let diffs = store
        .update(
            &[PolicyUpdate {
                workload: id("default:deployment/web"),
                changes: vec![PolicyChange::Lock(Lock { message: Some("demo".into()), user: Some("ada".into()) })],
            }],
            &cause,
        )
        .await
        .unwrap();
    assert_eq!(diffs.len(), 1);
    let head = source.refresh().await.unwrap();
    let after = String::from_utf8(source.read_file(&head, "apps/web.yaml").await.unwrap()).unwrap();
    let added: Vec<&str> = after.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
    assert_eq!(
        added,
        ["    fluxcd.io/locked: \"true\"", "    fluxcd.io/locked_msg: \"demo\"", "    fluxcd.io/locked_user: \"ada\""]
    );
    assert!(before.lines().all(|l| after.lines().any(|a| a == l)), "no line removed or changed");
    let log = source.log();
    assert!(
        log[0].message.starts_with("Locked: default:deployment/web\n\nfreeze for the demo\n"),
        "{}",
        log[0].message
    );
    assert!(log[0].message.contains("Flux-User: ada"));

    // All containers' filters at once, then automation follows them.
    let shared: Arc<dyn Source> = Arc::new(source.clone());
    let generator = crate::generate::ManifestGenerator::default();
    let state = RepoState::read(&shared, &AutomationConfig::default(), &generator).await.unwrap();
    let web = state.workload(&id("default:deployment/web")).unwrap();
    let changes = tag_all_containers(web, Some(&TagFilter::new("semver:^1").unwrap()));
    assert_eq!(changes.len(), 2);
    store.update(&[PolicyUpdate { workload: web.id.clone(), changes }], &ChangeCause::default()).await.unwrap();
    let policies = store.policies().await.unwrap();
    assert_eq!(policies[&web.id].tag_filters.len(), 2);
    assert!(source.log()[0].message.starts_with("Updated tag filters: default:deployment/web"));
}

#[tokio::test]
async fn images_lists_tags_newest_first_with_the_filters_choice() {
    let f = Fixture::new(&[(
        "web.yaml",
        deployment("web", &[("fluxcd.io/tag.web", "glob:main-*")], &[("web", "registry.local/web:main-aaa")]),
    )]);
    let images = f.engine().images(None).await.unwrap();
    let web = &images[0].containers[0];
    assert_eq!(
        web.available.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(),
        ["feature-x", "main-ccc", "main-bbb", "main-aaa"]
    );
    assert_eq!(web.latest.as_deref(), Some("main-ccc"));
    assert_eq!(web.filter.as_str(), "glob:main-*");
    let err = f.engine().images(Some(&id("default:deployment/ghost"))).await.unwrap_err();
    assert!(err.is_not_found());
}

/// An automated app at 1.0.0, an automated workload whose image cannot be parsed, an automated
/// one marked ignored, and a manual one.
fn files_with_a_bad_workload() -> Vec<(&'static str, String)> {
    let automated = [("fluxcd.io/automated", "true"), ("fluxcd.io/tag.app", "semver:~1")];
    vec![
        ("good.yaml", deployment("good", &automated, &[("app", "registry.local/app:1.0.0")])),
        (
            "bad.yaml",
            deployment(
                "bad",
                &automated,
                &[("app", "registry.local/app:1.0.0"), ("side", "registry.local/Team/App:1.0")],
            ),
        ),
        (
            "ignored.yaml",
            deployment(
                "ignored",
                &[("fluxcd.io/automated", "true"), ("fluxcd.io/ignore", "true")],
                &[("app", "registry.local/app:1.0.0")],
            ),
        ),
        ("manual.yaml", deployment("manual", &[], &[("app", "registry.local/app:1.0.0")])),
    ]
}

#[tokio::test]
async fn one_unparsable_image_skips_its_workload_and_no_other() {
    let f = Fixture::new(&files_with_a_bad_workload());
    let bad_before = f.file("bad.yaml").await;
    let ignored_before = f.file("ignored.yaml").await;

    let report = f.engine().automate().await.expect("the pass goes on without the bad workload");
    let changed: Vec<String> = report.changes.iter().map(|c| format!("{} {}", c.workload, c.to)).collect();
    assert_eq!(changed, ["default:deployment/good registry.local/app:1.2.0"]);
    assert!(report.revision.is_some(), "the good workload's update is committed");
    assert_eq!(f.file("bad.yaml").await, bad_before, "the bad workload is untouched, even its good container");
    assert_eq!(f.file("ignored.yaml").await, ignored_before, "an ignored workload is never automated");

    let skipped: Vec<(String, &str)> =
        report.skipped.iter().map(|s| (s.workload.to_string(), s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let (workload, reason) = &skipped[0];
    assert_eq!(workload, "default:deployment/bad");
    assert!(
        reason.starts_with("bad.yaml:1: default:deployment/bad: container side: "),
        "file, line, workload, container: {reason}"
    );
    assert!(reason.contains("Team/App"), "the value: {reason}");
    assert_eq!(skipped[1], ("default:deployment/ignored".to_owned(), "ignore"), "Flux v1's reason");

    // The listing carries the bad workload with its error, and the raw value.
    let state = f.engine().state().await.expect("the revision is usable");
    let bad = state.workload(&id("default:deployment/bad")).expect("listed");
    assert_eq!(bad.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["app"]);
    let error = &bad.errors[0];
    assert_eq!(
        (error.container.as_deref(), error.value.as_deref()),
        (Some("side"), Some("registry.local/Team/App:1.0"))
    );
    assert_eq!(error.location.to_string(), "bad.yaml:1");
    let images = f.engine().images(None).await.expect("images");
    let bad_images = images.iter().find(|w| w.workload == bad.id).expect("bad listed in images");
    assert!(bad_images.error.as_deref().is_some_and(|e| e.contains("container side")), "{bad_images:?}");
    assert_eq!(bad_images.containers.len(), 1, "its readable container is still scanned");
    assert!(images.iter().find(|w| w.workload == id("default:deployment/good")).is_some_and(|w| w.error.is_none()));
}

#[tokio::test]
async fn policies_of_others_change_and_the_bad_workload_is_refused_by_name() {
    let f = Fixture::new(&files_with_a_bad_workload());
    let store = ManifestPolicyStore::new(Arc::new(f.source.clone()), plain(), AutomationConfig::default());
    let cause = ChangeCause::default();
    let update = |w: &str, change: PolicyChange| PolicyUpdate { workload: id(w), changes: vec![change] };

    let diffs = store
        .update(&[update("default:deployment/manual", PolicyChange::Automate)], &cause)
        .await
        .expect("another workload");
    assert_eq!(diffs.len(), 1);
    assert!(f.file("manual.yaml").await.contains("fluxcd.io/automated: \"true\""));

    let before = f.source.log().len();
    let err = store
        .update(&[update("default:deployment/bad", PolicyChange::Lock(Lock::default()))], &cause)
        .await
        .expect_err("the bad workload cannot be changed");
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(
        text.starts_with(
            "bad.yaml:1: default:deployment/bad cannot be changed until its manifest is fixed: container side:"
        ),
        "{text}"
    );
    assert_eq!(f.source.log().len(), before, "nothing committed");
    let policies = store.policies().await.expect("policies of every workload");
    assert!(
        policies.contains_key(&id("default:deployment/bad")) && policies[&id("default:deployment/manual")].automated
    );
}

#[tokio::test]
async fn releases_fail_the_bad_workload_and_skip_the_ignored_one() {
    let f = Fixture::new(&files_with_a_bad_workload());
    let spec = |workloads: WorkloadSelector, force: bool| ReleaseSpec {
        workloads,
        excludes: Vec::new(),
        image: ImageSelector::Image("registry.local/app:1.1.0".parse().unwrap()),
        dry_run: true,
        force,
        cause: ChangeCause::default(),
    };
    let result = f.engine().release(&spec(WorkloadSelector::All, false)).await.expect("a release");
    let outcome = |w: &str| result.workloads.iter().find(|r| r.workload == id(w)).map(|r| r.outcome.clone());
    assert_eq!(outcome("default:deployment/good"), Some(WorkloadOutcome::Updated));
    assert_eq!(outcome("default:deployment/manual"), Some(WorkloadOutcome::Updated));
    assert_eq!(outcome("default:deployment/ignored"), Some(WorkloadOutcome::Skipped { reason: "ignore".into() }));
    assert!(
        matches!(outcome("default:deployment/bad"), Some(WorkloadOutcome::Failed { error }) if error.contains("bad.yaml:1: default:deployment/bad: container side")),
        "{result:?}"
    );
    // Forced, for an ignored workload named one by one: released, as in Flux v1.
    let named = spec(WorkloadSelector::Only(vec![id("default:deployment/ignored")]), true);
    let result = f.engine().release(&named).await.expect("a release");
    assert_eq!(result.workloads[0].outcome, WorkloadOutcome::Updated);
    let forced_all = f.engine().release(&spec(WorkloadSelector::All, true)).await.expect("a release");
    assert!(forced_all.workloads.iter().any(|r| r.outcome == WorkloadOutcome::Skipped { reason: "ignore".into() }));
}

#[tokio::test]
async fn a_broken_head_is_listed_from_the_last_usable_revision_and_never_written() {
    let f = Fixture::new(&files_with_a_bad_workload());
    let engine = f.engine();
    let good = engine.listing().await.expect("a usable head");
    assert!(good.head_problem.is_none());
    let broken =
        f.source.push_external(&[FileChange::write("broken.yaml", "apiVersion: v1\nkind: [\n")], "break it").unwrap();
    let before = f.source.log().len();

    let listing = engine.listing().await.expect("answered from the last usable revision");
    assert_eq!(listing.state.head, good.state.head);
    let problem = listing.head_problem.expect("the head's problem");
    assert_eq!(problem.revision.as_ref(), Some(&broken));
    assert!(problem.error.contains("broken.yaml"), "{problem:?}");
    assert_eq!(engine.head_problem(), Some(problem.clone()));
    assert!(engine.images(None).await.is_ok_and(|i| i.len() == 4));

    let err = engine.automate().await.expect_err("no automation on a broken head");
    assert!(err.to_string().contains("broken.yaml"), "{err}");
    let store = ManifestPolicyStore::new(Arc::new(f.source.clone()), plain(), AutomationConfig::default());
    let update = PolicyUpdate { workload: id("default:deployment/manual"), changes: vec![PolicyChange::Automate] };
    let err = store.update(&[update], &ChangeCause::default()).await.expect_err("no policy change on a broken head");
    assert!(err.to_string().contains("broken.yaml"), "{err}");
    assert_eq!(f.source.log().len(), before, "nothing written on a broken head");

    // A fresh engine (a restart) has no memory: it lists the sync marker's revision.
    assert!(f.engine().listing().await.is_err(), "no usable revision known, no marker: the head's error");
    f.source.set_sync_marker(&good.state.head).await.unwrap();
    let restarted = f.engine().listing().await.expect("the marker's revision");
    assert_eq!(restarted.state.head, good.state.head);
    assert!(restarted.head_problem.is_some());
}

/// The plain generator, counting its runs.
struct CountingGenerator {
    inner: Arc<dyn crate::generate::Generator>,
    runs: AtomicUsize,
}

#[async_trait]
impl crate::generate::Generator for CountingGenerator {
    async fn generate(&self, snapshot: &crate::generate::Snapshot) -> crate::generate::Generated {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(snapshot).await
    }
}

#[tokio::test]
async fn a_head_is_generated_once_however_often_it_is_listed() {
    let f = Fixture::new(&[("deploy/app.yaml", deployment("app", &[], &[("app", "registry.local/app:1.0.0")]))]);
    let generator = Arc::new(CountingGenerator { inner: plain(), runs: AtomicUsize::new(0) });
    let engine = AutomationEngine::new(
        Arc::new(f.source.clone()),
        Arc::new(f.registry.clone()),
        generator.clone(),
        AutomationConfig::default(),
    );
    for _ in 0..3 {
        assert_eq!(engine.listing().await.unwrap().state.workloads.len(), 1);
    }
    assert_eq!(generator.runs.load(Ordering::SeqCst), 1, "an unchanged head is not generated again");
    let head = f.source.refresh().await.unwrap();
    let second = deployment("web", &[], &[("web", "registry.local/web:main-aaa")]);
    let request = CommitRequest {
        base: head,
        changes: vec![FileChange::write("deploy/web.yaml", second)],
        author: Default::default(),
        message: "web".into(),
    };
    f.source.commit(&request).await.unwrap();
    assert_eq!(engine.listing().await.unwrap().state.workloads.len(), 2, "a new head is read");
    assert_eq!(generator.runs.load(Ordering::SeqCst), 2);
}
