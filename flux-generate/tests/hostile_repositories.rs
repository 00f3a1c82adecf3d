//! Hostile repositories in real git (over `file://`, read by flux-git) synced with
//! `RepoGenerator` (what fluxd uses): symbolic links pointing out of the repository (a symlink
//! blob in a commit) and hostile `.flux.yaml` files (an alias bomb, 2 MB of text, invalid
//! UTF-8, a patch file that escapes, a generator printing an alias bomb).
//!
//! Each case is committed on top of a revision the real `SyncEngine` has applied to an
//! in-memory cluster (garbage collection on). What must hold: a clear error naming the file,
//! nothing applied, nothing pruned, the sync marker where it was.

use std::sync::Arc;

use flux_core::memory::MemoryCluster;
use flux_core::sync::{GarbageCollection, SyncConfig, SyncEngine, SyncReport};
use flux_core::{Source, SyncIdentity};
use flux_generate::flux_yaml::MAX_FILE_BYTES;
use flux_generate::{GenerateConfig, RepoGenerator};
use flux_git::{GitConfig, GitSource};
use flux_testenv::git::BareRepo;

const GOOD: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team\ndata:\n  v: \"1\"\n";

/// A git repository whose first revision is synced, with its objects managed.
struct Synced {
    repo: BareRepo,
    source: Arc<GitSource>,
    cluster: MemoryCluster,
    engine: SyncEngine,
    objects: Vec<String>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}

fn ids(cluster: &MemoryCluster) -> Vec<String> {
    cluster.objects().iter().map(|o| o.id().to_string()).collect()
}

async fn synced() -> Option<Synced> {
    let repo = BareRepo::new()?;
    repo.commit_files(&[("deploy/good.yaml", GOOD.as_bytes())], "good");
    let source = Arc::new(GitSource::open(GitConfig::new(repo.file_url(), "main")).expect("a git source"));
    let cluster = MemoryCluster::new();
    let mut config = SyncConfig::new(SyncIdentity::new("hostile").expect("identity"), ["deploy"]);
    config.garbage_collection = GarbageCollection::On;
    let generator = RepoGenerator::new(GenerateConfig { manifest_generation: true, ..GenerateConfig::default() });
    let engine = SyncEngine::new(source.clone(), Arc::new(cluster.clone()), Arc::new(generator), config);
    let first = engine.sync_head().await.expect("a head");
    assert!(first.is_success(), "{:?}", first.errors);
    let objects = ids(&cluster);
    assert_eq!(objects.len(), 2, "{objects:?}");
    Some(Synced { repo, source, cluster, engine, objects })
}

impl Synced {
    /// Syncs the head after a hostile commit: unusable, with an error holding all of
    /// `expected`, and nothing changed in the cluster or the marker.
    async fn refused(&self, expected: &[&str]) -> SyncReport {
        let before = self.cluster.writes();
        let marker = self.source.sync_marker().await.expect("the marker");
        let report = self.engine.sync_head().await.expect("a head");
        let errors: Vec<String> = report.errors.iter().map(|e| e.message()).collect();
        assert!(!report.usable && !report.is_success(), "accepted: {errors:?}");
        assert!(
            errors.iter().any(|e| expected.iter().all(|want| e.contains(want))),
            "no error says all of {expected:?}: {errors:?}"
        );
        assert!(report.applied.is_empty() && report.pruned.is_empty(), "an unusable revision changed the cluster");
        assert_eq!(self.cluster.writes(), before);
        assert_eq!(ids(&self.cluster), self.objects, "objects lost");
        assert!(!report.marker_moved);
        assert_eq!(self.source.sync_marker().await.expect("the marker"), marker);
        report
    }
}

#[test]
fn a_symlink_to_a_file_outside_the_repository_prunes_nothing() {
    runtime().block_on(async {
        let Some(s) = synced().await else { return };
        s.repo.commit_symlink("deploy/passwd.yaml", "../../etc/passwd", "escape");
        s.refused(&["deploy/passwd.yaml", "outside the repository"]).await;
    });
}

#[test]
fn a_symlink_to_an_absolute_directory_prunes_nothing() {
    runtime().block_on(async {
        let Some(s) = synced().await else { return };
        s.repo.commit_symlink("deploy/etc", "/etc", "absolute");
        s.refused(&["deploy/etc", "outside the repository"]).await;
    });
}

/// Billion laughs in a `.flux.yaml`: nine levels of nine aliases, in `version` (read as any
/// value, so every alias is replayed).
fn alias_bomb() -> String {
    let mut levels = vec!["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]".to_owned()];
    for i in 1..10 {
        levels.push(format!("&l{i} [{}]", vec![format!("*l{}", i - 1); 9].join(", ")));
    }
    format!("version: [{}]\nscanForFiles: {{}}\n", levels.join(", "))
}

#[test]
fn hostile_flux_yaml_files_are_refused_by_name() {
    runtime().block_on(async {
        let Some(s) = synced().await else { return };
        let mut big = "version: 1\nscanForFiles: {}\n# ".to_owned();
        big.push_str(&"x".repeat(2 * MAX_FILE_BYTES));
        let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
            (alias_bomb().into_bytes(), vec!["deploy/.flux.yaml:", "alias"]),
            (big.into_bytes(), vec!["deploy/.flux.yaml", "over the limit of 1048576 bytes"]),
            (b"version: 1\nscanForFiles: {}\n# \xff\xfe\n".to_vec(), vec!["deploy/.flux.yaml", "UTF-8"]),
            (
                b"version: 1\npatchUpdated:\n  generators:\n    - command: cat *.yaml\n  patchFile: ../../../etc/passwd\n"
                    .to_vec(),
                vec!["deploy/.flux.yaml:5", "leaves the directory"],
            ),
        ];
        for (text, expected) in cases {
            s.repo.commit_files(&[("deploy/.flux.yaml", &text)], "hostile .flux.yaml");
            s.refused(&expected).await;
        }
    });
}

#[test]
fn a_generator_printing_an_alias_bomb_is_refused() {
    runtime().block_on(async {
        let Some(s) = synced().await else { return };
        let mut bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol, namespace: team}\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_owned();
        for i in 1..10 {
            bomb.push_str(&format!("l{i}: &l{i} [{}]\n", vec![format!("*l{}", i - 1); 9].join(", ")));
        }
        let flux_yaml = "version: 1\ncommandUpdated:\n  generators:\n    - command: cat bomb.txt\n";
        s.repo.commit_files(
            &[("deploy/.flux.yaml", flux_yaml.as_bytes()), ("deploy/bomb.txt", bomb.as_bytes())],
            "a generator printing an alias bomb",
        );
        s.refused(&["alias"]).await;
    });
}
