//! What the conformance suite does not cover, against a real `docker-registry` (behind a
//! counting, fault-injecting proxy where requests are counted or faults injected).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flux_core::testkit::registry::{APP_TAGS, fixture};
use flux_core::{Error, ImageRepo, Platform, Registry};
use flux_registry::{Credential, DockerConfig, OciRegistry, RegistryConfig};
use flux_testenv::{CountingProxy, Fault, TestRegistry};

/// A registry holding the conformance fixture, and a proxy in front of it.
async fn fixture_server() -> Option<(TestRegistry, CountingProxy)> {
    let server = TestRegistry::start()?;
    // Pushed under the proxy's host name: image names carry no host inside the registry.
    common::push_fixture(&server.pusher(), &fixture(server.host())).await;
    let proxy = CountingProxy::start(server.host());
    Some((server, proxy))
}

fn app(host: &str) -> ImageRepo {
    format!("{host}/conformance/app").parse().expect("valid")
}

fn tag_requests(proxy: &CountingProxy) -> usize {
    proxy.requests().iter().filter(|r| r.contains("/tags/list")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_follows_links_past_short_pages_and_full_pages_with_last() {
    let Some((_server, proxy)) = fixture_server().await else { return };
    let repo = app(proxy.host());
    let pages = (APP_TAGS + 1).div_ceil(10);

    // A registry serving at most 10 tags a page, whatever is asked: short pages, with Link.
    proxy.page_tags(Some(10));
    let registry = OciRegistry::new(common::plain_config(proxy.host())).expect("registry");
    let tags = registry.tags(&repo).await.expect("tags");
    assert_eq!(tags.len(), APP_TAGS + 1, "every tag, over {} pages", proxy.requests().len());
    assert_eq!(tag_requests(&proxy), pages, "one request per page: {:?}", proxy.requests());
    assert!(proxy.requests()[0].ends_with("?n=1000") && proxy.requests()[1].contains("last="));

    // The same registry without Link headers: full pages are followed with `last=`.
    proxy.clear();
    proxy.strip_link(true);
    let paged = OciRegistry::new(RegistryConfig { page_size: Some(10), ..common::plain_config(proxy.host()) })
        .expect("registry");
    assert_eq!(paged.tags(&repo).await.expect("tags without Link"), tags);
    assert!(proxy.requests().iter().skip(1).all(|r| r.contains("last=")), "{:?}", proxy.requests());
    assert_eq!(tag_requests(&proxy), pages);

    // The real registry, which does not page: everything at once, in one request.
    proxy.clear();
    proxy.page_tags(None);
    assert_eq!(registry.tags(&repo).await.expect("tags"), tags);
    assert_eq!(tag_requests(&proxy), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_described_by_the_configured_platform() {
    let Some(server) = TestRegistry::start() else { return };
    let images = fixture(server.host());
    common::push_fixture(&server.pusher(), &images).await;
    let multi = images.iter().find(|i| !i.platforms.is_empty()).expect("an index in the fixture");
    let created_of = |p: &Platform| multi.platforms.iter().find(|(q, _)| q == p).map(|(_, t)| *t);
    let arm64 = Platform::new("linux", "arm64");
    let everything = vec![Platform::linux_amd64(), arm64.clone()];

    let with = |platforms: Vec<Platform>| {
        OciRegistry::new(RegistryConfig { platforms, ..common::plain_config(server.host()) }).expect("registry")
    };
    let info = with(vec![arm64.clone()]).image_info(&multi.image).await.expect("info");
    assert_eq!(info.created, created_of(&arm64), "arm64 configured: the arm64 entry");
    assert_eq!(info.platforms, everything);

    let preference = vec![Platform::new("linux", "s390x"), Platform::linux_amd64(), arm64.clone()];
    let info = with(preference).image_info(&multi.image).await.expect("info");
    assert_eq!(info.created, created_of(&Platform::linux_amd64()), "the first configured platform offered");

    let info = with(vec![Platform::new("windows", "amd64")]).image_info(&multi.image).await.expect("info");
    assert_eq!(info.created, None, "no entry for the configured platform: no created time");
    assert_eq!(info.platforms, everything, "the platforms are listed all the same");
}

/// Lists the tags and describes every one of them, as the automation engine does.
async fn scan(registry: &OciRegistry, repo: &ImageRepo) -> Vec<flux_core::ImageInfo> {
    let mut infos = Vec::new();
    for tag in registry.tags(repo).await.expect("tags") {
        infos.push(registry.image_info(&repo.tagged(&tag)).await.expect("image_info"));
    }
    infos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_survives_a_restart_and_a_warm_rescan_costs_one_request() {
    let Some((server, proxy)) = fixture_server().await else { return };
    let cache = tempfile::tempdir().expect("tempdir");
    let repo = app(proxy.host());

    let cold = {
        let registry = common::cached_registry(proxy.host(), cache.path().to_owned());
        let infos = scan(&registry, &repo).await;
        assert_eq!(registry.request_count() as usize, proxy.requests().len(), "the handle counts what it sends");
        infos
    };
    // Cold: the tag list, then one manifest GET per tag and one config GET per distinct image.
    let distinct = APP_TAGS; // `latest` is 1.0.129 again
    assert_eq!(proxy.requests().len(), 1 + (APP_TAGS + 1) + distinct, "{:?}", &proxy.requests()[..5]);

    // A new handle on the same cache directory: a restart.
    proxy.clear();
    let registry = common::cached_registry(proxy.host(), cache.path().to_owned());
    let warm = scan(&registry, &repo).await;
    assert_eq!(warm, cold, "the same answers from the cache");
    assert_eq!(proxy.requests(), vec!["GET /v2/conformance/app/tags/list?n=1000".to_owned()], "exactly one request");

    // A new tag costs its own metadata only.
    server
        .pusher()
        .push_image(&format!("{}/conformance/app:2.0.0", server.host()), Some("2024-01-01T00:00:00Z"))
        .await
        .expect("push");
    proxy.clear();
    let infos = scan(&registry, &repo).await;
    assert_eq!(infos.len(), APP_TAGS + 2);
    assert_eq!(proxy.requests().len(), 3, "tag list, new manifest, new config: {:?}", proxy.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_tags_are_noticed_on_the_recheck_schedule_with_one_head_each() {
    let Some((server, proxy)) = fixture_server().await else { return };
    let repo: ImageRepo = format!("{}/conformance/undated", proxy.host()).parse().expect("valid");
    let cache = tempfile::tempdir().expect("tempdir");
    let config = |recheck: Duration| RegistryConfig {
        cache_dir: Some(cache.path().to_owned()),
        digest_recheck: recheck,
        ..common::plain_config(proxy.host())
    };
    let before = {
        let registry = OciRegistry::new(config(Duration::from_secs(3600))).expect("registry");
        registry.image_info(&repo.tagged("1")).await.expect("info")
    };
    assert_eq!(before.created, None);
    server
        .pusher()
        .push_image(&format!("{}/conformance/undated:1", server.host()), Some("2025-05-05T05:05:05Z"))
        .await
        .expect("push");

    proxy.clear();
    let registry = OciRegistry::new(config(Duration::from_secs(3600))).expect("registry");
    let cached = registry.image_info(&repo.tagged("1")).await.expect("info");
    assert_eq!(cached, before, "within the recheck interval the cached digest is trusted");
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
    drop(registry);

    let registry = OciRegistry::new(config(Duration::ZERO)).expect("registry");
    let moved = registry.image_info(&repo.tagged("1")).await.expect("info");
    assert_ne!(moved.digest, before.digest, "the move is seen");
    assert_eq!(moved.created.map(|t| t.to_string()).as_deref(), Some("2025-05-05T05:05:05Z"));
    let methods: Vec<String> = proxy.requests().iter().map(|r| r.split(' ').next().unwrap_or("").to_owned()).collect();
    assert_eq!(methods, ["HEAD", "GET", "GET"], "HEAD, then the new manifest and config: {:?}", proxy.requests());

    proxy.clear();
    registry.image_info(&repo.tagged("1")).await.expect("info");
    assert_eq!(proxy.requests().len(), 1, "an unmoved tag costs one HEAD: {:?}", proxy.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_a_bounded_number_of_times() {
    let Some((_server, proxy)) = fixture_server().await else { return };
    let repo = app(proxy.host());
    let registry =
        OciRegistry::new(RegistryConfig { max_retries: 3, ..common::plain_config(proxy.host()) }).expect("registry");

    proxy.inject([Fault::Status(429, Some(1)), Fault::Status(429, None), Fault::Status(503, None)]);
    assert_eq!(registry.tags(&repo).await.expect("tags after retries").len(), APP_TAGS + 1);
    assert_eq!(proxy.requests().len(), 4, "three refusals, then the answer");

    proxy.clear();
    proxy.inject(std::iter::repeat_n(Fault::Status(429, Some(1)), 4));
    let err = registry.tags(&repo).await.expect_err("rate limited past the retries");
    assert!(matches!(err, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(1)), "{err:?}");
    assert_eq!(proxy.requests().len(), 4, "one try and three retries");

    proxy.clear();
    proxy.inject(std::iter::repeat_n(Fault::Status(502, None), 4));
    let err = registry.image_info(&repo.tagged("1.0.1")).await.expect_err("server errors past the retries");
    assert!(matches!(err, Error::Transient { .. }) && err.is_retryable(), "{err:?}");

    // A timeout is retried too.
    let impatient =
        OciRegistry::new(RegistryConfig { timeout: Duration::from_millis(300), ..common::plain_config(proxy.host()) })
            .expect("registry");
    proxy.clear();
    proxy.inject([Fault::Stall(Duration::from_secs(2))]);
    let info = impatient.image_info(&repo.tagged("1.0.2")).await.expect("answered after a timed-out try");
    assert!(info.created.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_leaves_out_cosign_tags_and_excluded_images() {
    let Some((server, proxy)) = fixture_server().await else { return };
    let pusher = server.pusher();
    for tag in ["sha256-1234abcd.sig", "sha256-1234abcd.att", "sha256-1234abcd.sbom"] {
        pusher.push_image(&format!("{}/conformance/app:{tag}", server.host()), None).await.expect("push");
    }
    let repo = app(proxy.host());
    let default = OciRegistry::new(common::plain_config(proxy.host())).expect("registry");
    let tags = default.tags(&repo).await.expect("tags");
    assert_eq!(tags.len(), APP_TAGS + 1, "signature, attestation and SBOM tags are left out");

    let everything = OciRegistry::new(RegistryConfig { exclude_tags: vec![], ..common::plain_config(proxy.host()) })
        .expect("registry");
    assert_eq!(everything.tags(&repo).await.expect("tags").len(), APP_TAGS + 4);

    let scoped = OciRegistry::new(RegistryConfig {
        exclude_images: vec!["*/conformance/multi".into()],
        ..common::plain_config(proxy.host())
    })
    .expect("registry");
    proxy.clear();
    let multi: ImageRepo = format!("{}/conformance/multi", proxy.host()).parse().expect("valid");
    let err = scoped.tags(&multi).await.expect_err("excluded");
    assert!(err.to_string().contains("conformance/multi"), "{err}");
    assert!(proxy.requests().is_empty(), "an excluded image is never asked about");
    assert!(scoped.tags(&repo).await.is_ok());
}

/// Collects everything logged, at every level, while it is alive.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_errors_debug_or_logs() {
    const PASSWORD: &str = "Sup3r-s3cret-pa55";
    let Some(server) = TestRegistry::start_tls("robot", PASSWORD) else { return };
    server
        .pusher()
        .push_image(&format!("{}/team/app:1.0", server.host()), Some("2024-02-02T00:00:00Z"))
        .await
        .expect("push");
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let repo: ImageRepo = format!("{}/team/app", server.host()).parse().expect("valid");
    let ca = server.ca_pem().expect("CA").to_owned();
    let with = |credential: Credential| {
        OciRegistry::new(RegistryConfig {
            ca_bundles: vec![ca.clone()],
            credentials: HashMap::from([(server.host().to_owned(), credential)]),
            docker_config: DockerConfig::Disabled,
            max_retries: 0,
            ..RegistryConfig::default()
        })
        .expect("registry")
    };
    let mut shown = String::new();

    let anonymous = with(Credential::Anonymous);
    let err = anonymous.tags(&repo).await.expect_err("anonymous is refused");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");

    let wrong = with(Credential::basic("robot", format!("{PASSWORD}-wrong")));
    let err = wrong.image_info(&repo.tagged("1.0")).await.expect_err("a wrong password is refused");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("robot"), "the error says who was refused: {err}");
    shown.push_str(&format!("{err} {err:?} {wrong:?}"));

    let right = with(Credential::basic("robot", PASSWORD));
    let info = right.image_info(&repo.tagged("1.0")).await.expect("the right password works");
    assert!(info.created.is_some());
    shown.push_str(&format!("{right:?} {info:?}"));

    // The same credentials as a pull secret given at run time.
    let by_secret = with(Credential::Anonymous);
    let auth = base64_basic("robot", PASSWORD);
    let secret = format!(r#"{{"auths":{{"https://{}":{{"auth":"{auth}"}}}}}}"#, server.host());
    assert_eq!(
        by_secret.add_pull_secret("team/regcred", secret.as_bytes()).expect("a valid secret"),
        vec![server.host()]
    );
    assert_eq!(by_secret.tags(&repo).await.expect("tags with the pull secret"), vec!["1.0"]);
    shown.push_str(&format!("{by_secret:?}"));

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the capture works");
    for text in [&shown, &logs] {
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
        assert!(!text.contains(&auth), "the encoded credential leaked: {text}");
    }
}

/// `base64(user:password)`, as `docker login` stores it.
fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
