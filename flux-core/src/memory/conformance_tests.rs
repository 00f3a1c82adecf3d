//! The in-memory adapters keep every port's contract.

use super::{MemoryCluster, MemoryImage, MemoryPolicyStore, MemoryRegistry, MemorySource};
use crate::testkit;
use crate::{ImageRepo, ResourceId};

#[tokio::test]
async fn memory_source() {
    let a = MemorySource::with_files([("README.md", "hello\n")]).unwrap();
    let b = a.clone();
    testkit::source::run(&a, &b).await;
}

#[tokio::test]
async fn memory_source_read_only_refuses_writes() {
    let source = MemorySource::with_files([("a.yaml", "a: 1\n")]).unwrap();
    let ro = source.read_only();
    let head = crate::Source::refresh(&ro).await.unwrap();
    let err = crate::Source::set_sync_marker(&ro, &head).await.unwrap_err();
    assert!(matches!(err, crate::Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(crate::Source::sync_marker(&source).await.unwrap(), None);
}

#[tokio::test]
async fn memory_registry() {
    let registry = MemoryRegistry::new();
    let host = "registry.example.com:5000";
    for image in testkit::registry::fixture(host) {
        let memory = MemoryImage {
            created: image
                .platforms
                .iter()
                .find(|(p, _)| *p == crate::Platform::linux_amd64())
                .map(|(_, t)| *t)
                .or(image.created),
            platforms: image.platforms.iter().map(|(p, _)| p.clone()).collect(),
        };
        let repo: ImageRepo = image.image.repository();
        registry.push(&repo, image.image.tag().unwrap(), memory);
    }
    testkit::registry::run(&registry, host).await;
}

#[tokio::test]
async fn memory_cluster() {
    let cluster = MemoryCluster::new();
    testkit::cluster::run(&cluster).await;
    // And again on the same cluster: suites can repeat against one long-lived backend.
    testkit::cluster::run(&cluster).await;
}

#[tokio::test]
async fn memory_policy_store() {
    let a: ResourceId = "default:deployment/a".parse().unwrap();
    let b: ResourceId = "team:cronjob/b".parse().unwrap();
    let store = MemoryPolicyStore::new([a.clone(), b.clone()]);
    testkit::policy_store::run(&store, [&a, &b], &"default:deployment/unknown".parse().unwrap()).await;
}
