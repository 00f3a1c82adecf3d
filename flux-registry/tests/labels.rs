//! Flux v1's `--registry-use-labels` against a real `docker-registry`: for the repositories it
//! names, an image's time is its `org.opencontainers.image.created` (else
//! `org.label-schema.build-date`) label rather than the config's `created`, and that time decides
//! which tag is the latest.

mod common;

use flux_core::manifest::TagCandidate;
use flux_core::{ImageRepo, Registry, TagFilter};
use flux_registry::{OciRegistry, RegistryConfig};
use flux_testenv::TestRegistry;

/// The latest tag of `repo` by time (`glob:*`), as automation chooses it.
async fn latest(registry: &OciRegistry, repo: &ImageRepo) -> (String, Vec<TagCandidate>) {
    let mut candidates = Vec::new();
    for tag in registry.tags(repo).await.expect("tags") {
        let info = registry.image_info(&repo.tagged(&tag)).await.expect("image_info");
        candidates.push(TagCandidate::new(tag, info.created));
    }
    let filter = TagFilter::new("glob:*").expect("filter").compile().expect("compiles");
    let chosen = filter.latest(&candidates).expect("a latest tag").tag.clone();
    (chosen, candidates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_times_decide_the_order_for_the_repositories_named() {
    let Some(server) = TestRegistry::start() else { return };
    let pusher = server.pusher();
    let host = server.host();
    for repo in ["labelled/app", "plain/app"] {
        // `old` was built later by its config, `new` later by its label.
        pusher
            .push_image_with_labels(
                &format!("{host}/{repo}:old"),
                Some("2024-06-01T00:00:00Z"),
                &[("org.opencontainers.image.created", "2020-01-01T00:00:00Z")],
            )
            .await
            .expect("push old");
        pusher
            .push_image_with_labels(
                &format!("{host}/{repo}:new"),
                Some("2021-01-01T00:00:00Z"),
                &[
                    ("org.label-schema.build-date", "2019-01-01T00:00:00Z"),
                    ("org.opencontainers.image.created", "2025-01-01T00:00:00Z"),
                ],
            )
            .await
            .expect("push new");
        pusher
            .push_image_with_labels(
                &format!("{host}/{repo}:schema"),
                Some("2000-01-01T00:00:00Z"),
                &[("org.label-schema.build-date", "2022-01-01T00:00:00Z")],
            )
            .await
            .expect("push schema");
    }
    let config = RegistryConfig { use_labels: vec![format!("{host}/labelled/*")], ..common::plain_config(host) };
    let registry = OciRegistry::new(config).expect("registry");
    let time = |s: &str| s.parse::<jiff::Timestamp>().ok();

    let labelled: ImageRepo = format!("{host}/labelled/app").parse().expect("repo");
    let (chosen, candidates) = latest(&registry, &labelled).await;
    assert_eq!(chosen, "new", "the OCI label's time decides: {candidates:?}");
    let of = |tag: &str| candidates.iter().find(|c| c.tag == tag).and_then(|c| c.created);
    assert_eq!(of("old"), time("2020-01-01T00:00:00Z"));
    assert_eq!(of("new"), time("2025-01-01T00:00:00Z"), "org.opencontainers.image.created before label-schema");
    assert_eq!(of("schema"), time("2022-01-01T00:00:00Z"), "label-schema's build date when there is no OCI label");

    let plain: ImageRepo = format!("{host}/plain/app").parse().expect("repo");
    let (chosen, candidates) = latest(&registry, &plain).await;
    assert_eq!(chosen, "old", "a repository not named: the config's created time: {candidates:?}");
}
