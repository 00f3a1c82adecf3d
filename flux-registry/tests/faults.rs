//! A real `docker-registry` that misbehaves, behind flux-testenv's fault-injecting HTTP proxy:
//! a tag list broken on its second page (500, truncated, malformed), truncated and malformed
//! manifests, a registry down after a warm scan, slow answers, a tag list of 100,000 tags and an
//! index with hundreds of platforms. A fault is an error, never a shorter tag list or a wrong
//! image time (which automation would take for an update), and leaves the cache good.

mod common;

use std::time::Duration;

use flux_core::testkit::registry::{APP_TAGS, fixture};
use flux_core::{ImageRepo, Platform, Registry};
use flux_registry::{OciRegistry, RegistryConfig};
use flux_testenv::faults::{HttpFault, HttpProxy};
use flux_testenv::{CountingProxy, TestRegistry};

/// The registry with the conformance fixture, a paging proxy (pages of 50 tags) in front of
/// it, and the fault proxy in front of that.
async fn servers() -> Option<(TestRegistry, CountingProxy, HttpProxy)> {
    let server = TestRegistry::start()?;
    common::push_fixture(&server.pusher(), &fixture(server.host())).await;
    let paging = CountingProxy::start(server.host());
    paging.page_tags(Some(50));
    let faults = HttpProxy::start(paging.host());
    Some((server, paging, faults))
}

fn app(host: &str) -> ImageRepo {
    format!("{host}/conformance/app").parse().expect("valid")
}

fn registry(host: &str, cache: Option<&std::path::Path>) -> OciRegistry {
    let config = RegistryConfig {
        max_retries: 1,
        timeout: Duration::from_secs(5),
        cache_dir: cache.map(std::path::Path::to_owned),
        ..common::plain_config(host)
    };
    OciRegistry::new(config).expect("a registry handle")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_list_broken_on_a_later_page_is_an_error_never_a_shorter_list() {
    let Some((_server, _paging, proxy)) = servers().await else { return };
    let repo = app(proxy.addr());
    let cache = tempfile::tempdir().expect("a cache dir");
    let registry = registry(proxy.addr(), Some(cache.path()));
    assert_eq!(registry.tags(&repo).await.expect("the whole list").len(), APP_TAGS + 1);

    for fault in [HttpFault::Status(500, None), HttpFault::Truncate(30), HttpFault::Malformed, HttpFault::Close] {
        proxy.inject(Some("GET"), "last=", fault.clone(), 0, None);
        let result = registry.tags(&repo).await;
        assert!(!proxy.faulted().is_empty(), "{fault:?} was hit");
        assert!(result.is_err(), "{fault:?}: a broken page gave a list of {:?} tags", result.map(|t| t.len()));
        proxy.heal();
    }
    // The cache was not spoiled: the next listing is whole.
    assert_eq!(registry.tags(&repo).await.expect("the whole list").len(), APP_TAGS + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_malformed_manifests_are_errors_and_the_cache_stays_good() {
    let Some((_server, _paging, proxy)) = servers().await else { return };
    let repo = app(proxy.addr());
    let cache = tempfile::tempdir().expect("a cache dir");
    let image = repo.tagged("1.0.7");
    let truth = registry(proxy.addr(), None).image_info(&image).await.expect("info");
    assert!(truth.created.is_some());

    let registry = registry(proxy.addr(), Some(cache.path()));
    for (path, fault) in [
        ("/manifests/", HttpFault::Truncate(10)),
        ("/manifests/", HttpFault::Malformed),
        ("/blobs/", HttpFault::Truncate(10)),
        ("/blobs/", HttpFault::Malformed),
    ] {
        proxy.inject(Some("GET"), path, fault.clone(), 0, None);
        let result = registry.image_info(&image).await;
        assert!(!proxy.faulted().is_empty(), "{path} {fault:?} was hit");
        assert!(result.is_err(), "{path} {fault:?}: {result:?}");
        proxy.heal();
    }
    let info = registry.image_info(&image).await.expect("info once the faults are gone");
    assert_eq!(info, truth, "nothing wrong was cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_down_after_a_warm_scan_or_slow_gives_no_wrong_answer() {
    let Some((_server, _paging, proxy)) = servers().await else { return };
    let repo = app(proxy.addr());
    let cache = tempfile::tempdir().expect("a cache dir");
    let registry = registry(proxy.addr(), Some(cache.path()));
    let tags = registry.tags(&repo).await.expect("tags");
    let image = repo.tagged("1.0.3");
    let info = registry.image_info(&image).await.expect("info");

    // Down: the tag list is an error (retryable), never empty; what is cached by digest still
    // describes the image.
    proxy.stop_after(None, "", 0);
    let err = registry.tags(&repo).await.expect_err("the registry is down");
    assert!(err.is_retryable(), "{err:?}");
    if let Ok(cached) = registry.image_info(&image).await {
        assert_eq!(cached, info, "a cached description is the true one");
    }
    proxy.heal();

    // Slow: every answer a second late; the same answers.
    proxy.inject(None, "", HttpFault::Delay(Duration::from_secs(1)), 0, None);
    assert_eq!(registry.tags(&repo).await.expect("tags"), tags);
    assert_eq!(registry.image_info(&image).await.expect("info"), info);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_list_of_a_hundred_thousand_tags_is_read_whole() {
    let Some(server) = TestRegistry::start() else { return };
    let proxy = HttpProxy::start(server.host());
    let tags: Vec<String> = (0..100_000).map(|i| format!("1.{}.{}", i / 1000, i % 1000)).collect();
    let body = serde_json::json!({"name": "big/app", "tags": tags}).to_string();
    proxy.inject(Some("GET"), "/v2/big/app/tags/list", HttpFault::Answer(200, body), 0, None);
    let repo: ImageRepo = format!("{}/big/app", proxy.addr()).parse().expect("valid");
    let cache = tempfile::tempdir().expect("a cache dir");
    let registry = registry(proxy.addr(), Some(cache.path()));
    let listed = registry.tags(&repo).await.expect("100,000 tags");
    assert_eq!(listed.len(), 100_000);
    assert!(listed.iter().any(|t| t == "1.99.999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_three_hundred_platforms_is_described_by_the_configured_one() {
    let Some(server) = TestRegistry::start() else { return };
    let reference = format!("{}/wide/app:1.0.0", server.host());
    let times: Vec<String> = (0..300).map(|i| format!("2024-01-01T{:02}:{:02}:00Z", i / 60, i % 60)).collect();
    let arches: Vec<String> =
        (0..300).map(|i| if i == 250 { "amd64".to_owned() } else { format!("arch{i}") }).collect();
    let entries: Vec<(&str, &str, &str)> =
        arches.iter().zip(&times).map(|(a, t)| ("linux", a.as_str(), t.as_str())).collect();
    server.pusher().push_index(&reference, &entries).await.expect("push the index");

    let config = RegistryConfig { platforms: vec![Platform::linux_amd64()], ..common::plain_config(server.host()) };
    let registry = OciRegistry::new(config).expect("a registry handle");
    let image = format!("{}/wide/app", server.host()).parse::<ImageRepo>().expect("valid").tagged("1.0.0");
    let info = registry.image_info(&image).await.expect("info");
    assert_eq!(info.platforms.len(), 300);
    assert_eq!(info.created.map(|t| t.to_string()), Some("2024-01-01T04:10:00Z".to_owned()), "the amd64 entry's time");
}
