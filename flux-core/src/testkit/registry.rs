//! The [`Registry`] contract.
//!
//! The suite needs known images in the registry: [`fixture`] describes them, the adapter's test
//! pushes them (with its own client, skopeo, …), then calls [`run`]. The adapter must use its
//! default platform choice (`linux/amd64`).

use jiff::Timestamp;

use crate::Error;
use crate::image::{ImageRef, ImageRepo};
use crate::registry::{Platform, Registry};
use crate::testkit::assert_err;

/// How many versioned tags the `app` repository has: more than one page of any registry's
/// default page size.
pub const APP_TAGS: usize = 130;

/// One image to push before [`run`].
#[derive(Debug, Clone)]
pub struct FixtureImage {
    /// Where to push it (with tag).
    pub image: ImageRef,
    /// For a single-platform image, its config's `created` time (`None`: leave it out).
    pub created: Option<Timestamp>,
    /// For an index, its entries in this order, each with its own `created` time; empty for a
    /// single-platform image. `linux/arm64` comes first on purpose: the `linux/amd64` entry
    /// must be chosen by platform, not by position.
    pub platforms: Vec<(Platform, Timestamp)>,
}

/// The images [`run`] expects, in the registry at `host` (e.g. `127.0.0.1:5000`).
///
/// - `conformance/app`: tags `1.0.0` … `1.0.129`, created one minute apart, and `latest`, the
///   same content as `1.0.129` (so the same digest);
/// - `conformance/multi:1.0`: an index of `linux/arm64` and `linux/amd64` with different created times;
/// - `conformance/undated:1`: an image whose config has no `created` time.
pub fn fixture(host: &str) -> Vec<FixtureImage> {
    let at = |minute: i64| Timestamp::from_second(1_700_000_000 + minute * 60).expect("valid time");
    let image = |path: &str| format!("{host}/{path}").parse::<ImageRef>().expect("valid fixture reference");
    let mut images: Vec<FixtureImage> = (0..APP_TAGS as i64)
        .map(|i| FixtureImage {
            image: image(&format!("conformance/app:1.0.{i}")),
            created: Some(at(i)),
            platforms: vec![],
        })
        .collect();
    images.push(FixtureImage {
        image: image("conformance/app:latest"),
        created: Some(at(APP_TAGS as i64 - 1)),
        platforms: vec![],
    });
    images.push(FixtureImage {
        image: image("conformance/multi:1.0"),
        created: None,
        platforms: vec![(Platform::new("linux", "arm64"), at(1000)), (Platform::linux_amd64(), at(2000))],
    });
    images.push(FixtureImage { image: image("conformance/undated:1"), created: None, platforms: vec![] });
    images
}

/// Checks the whole contract against a registry holding [`fixture`]`(host)`.
pub async fn run(registry: &dyn Registry, host: &str) {
    let images = fixture(host);
    let app: ImageRepo = format!("{host}/conformance/app").parse().expect("valid");

    let tags = registry.tags(&app).await.expect("tags of conformance/app");
    let mut expected: Vec<String> = (0..APP_TAGS).map(|i| format!("1.0.{i}")).collect();
    expected.push("latest".into());
    expected.sort();
    assert_eq!(tags, expected, "tags must be complete, without duplicates, sorted");

    let missing: ImageRepo = format!("{host}/conformance/missing-repository").parse().expect("valid");
    assert_err(registry.tags(&missing).await, Error::is_not_found, "tags of a missing repository");

    let info5 = registry.image_info(&app.tagged("1.0.5")).await.expect("image_info 1.0.5");
    assert_eq!(info5.created, images[5].created, "created must be the config's created time");
    assert!(info5.platforms.is_empty(), "a single image has no platform list");
    assert_eq!(info5.image, app.tagged("1.0.5"), "image_info must echo the reference asked about");
    let (alg, hex) = info5.digest.split_once(':').expect("digest is algorithm:hex");
    assert!(
        alg == "sha256" && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "digest {}",
        info5.digest
    );

    let info6 = registry.image_info(&app.tagged("1.0.6")).await.expect("image_info 1.0.6");
    assert_ne!(info5.digest, info6.digest, "different content must have different digests");
    let last = registry.image_info(&app.tagged(&format!("1.0.{}", APP_TAGS - 1))).await.expect("image_info last");
    let latest = registry.image_info(&app.tagged("latest")).await.expect("image_info latest");
    assert_eq!(last.digest, latest.digest, "tags of the same content must have the same digest");

    let by_digest: ImageRef = format!("{app}@{}", info5.digest).parse().expect("valid");
    let resolved = registry.image_info(&by_digest).await.expect("image_info by digest");
    assert_eq!(resolved.digest, info5.digest, "a digest reference must resolve to that digest");
    assert_eq!(resolved.created, info5.created);

    let err = assert_err(registry.image_info(&app.tagged("9.9.9-missing")).await, Error::is_not_found, "a missing tag");
    assert!(err.to_string().contains("9.9.9-missing"), "the error must name the image: {err}");

    let multi = images.iter().find(|i| !i.platforms.is_empty()).expect("fixture has an index");
    let info = registry.image_info(&multi.image).await.expect("image_info of an index");
    let amd64 = multi.platforms.iter().find(|(p, _)| *p == Platform::linux_amd64()).map(|(_, t)| *t);
    assert_eq!(info.created, amd64, "an index's created time must be the linux/amd64 entry's");
    assert_eq!(info.platforms, vec![Platform::linux_amd64(), Platform::new("linux", "arm64")], "platforms, sorted");

    let undated = images.last().expect("fixture has an undated image");
    let info = registry.image_info(&undated.image).await.expect("image_info of an undated image");
    assert_eq!(info.created, None, "an image without created time must say None");
}
