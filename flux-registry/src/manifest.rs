//! Reading manifests, indexes and image configs as registries serve them (OCI and Docker v2).

use flux_core::Platform;
use jiff::Timestamp;
use oci_client::manifest::{OciImageIndex, OciImageManifest};
use sha2::{Digest as _, Sha256};

use crate::cache::Manifest;

/// Media types asked for: OCI and Docker v2, single images and indexes.
pub(crate) const ACCEPT_MANIFESTS: [&str; 4] = [
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// A fetched manifest, before its config (for an image) is read.
pub(crate) enum Parsed {
    Image { config_digest: String },
    Index(Manifest),
}

/// Parses a manifest body; `Err` says why it is not one this adapter understands.
pub(crate) fn parse(body: &[u8]) -> Result<Parsed, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<i64>,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if probe.schema_version != Some(2) {
        return Err(format!("schema version {:?} is not supported", probe.schema_version));
    }
    let is_index = match probe.media_type.as_deref() {
        Some(
            oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE | oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        ) => true,
        Some(_) => false,
        None => probe.manifests.is_some(),
    };
    if is_index {
        let index: OciImageIndex = serde_json::from_slice(body).map_err(|e| format!("bad index: {e}"))?;
        let entries = index
            .manifests
            .into_iter()
            .filter_map(|m| {
                let p = m.platform?;
                let platform =
                    Platform { os: p.os.to_string(), architecture: p.architecture.to_string(), variant: p.variant };
                Some((platform, m.digest))
            })
            .collect();
        Ok(Parsed::Index(Manifest::Index { entries }))
    } else {
        let image: OciImageManifest = serde_json::from_slice(body).map_err(|e| format!("bad manifest: {e}"))?;
        Ok(Parsed::Image { config_digest: image.config.digest })
    }
}

/// The label holding an image's creation time in the OCI image spec, preferred by Flux v1.
pub(crate) const OCI_CREATED_LABEL: &str = "org.opencontainers.image.created";
/// The Label Schema's build date label, Flux v1's second choice.
pub(crate) const LABEL_SCHEMA_BUILD_DATE: &str = "org.label-schema.build-date";

/// The times an image config gives: its `created` field, and the time its labels say
/// (`org.opencontainers.image.created`, else `org.label-schema.build-date`, RFC 3339 as Flux v1
/// read them). Each `None` when absent, empty or unreadable (an unreadable label is logged).
pub(crate) fn config_times(body: &[u8]) -> (Option<Timestamp>, Option<Timestamp>) {
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(rename = "Labels", default)]
        labels: Option<std::collections::BTreeMap<String, String>>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        created: Option<String>,
        #[serde(default)]
        config: Option<Inner>,
    }
    let Ok(config) = serde_json::from_slice::<Config>(body) else { return (None, None) };
    let parse = |what: &str, value: &str| match value.parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::debug!(what, value, error = %e, "ignoring an unreadable image time");
            None
        }
    };
    let created = config.created.as_deref().and_then(|c| parse("created", c));
    let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
    let labelled = [OCI_CREATED_LABEL, LABEL_SCHEMA_BUILD_DATE]
        .iter()
        .find_map(|label| labels.get(*label).filter(|v| !v.trim().is_empty()).and_then(|v| parse(label, v.trim())));
    (created, labelled)
}

/// `sha256:<hex>` of `body`.
pub(crate) fn sha256(body: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(body))
}

/// The index entry to describe an index by: the first configured platform it offers. A
/// configured platform without variant matches any variant.
pub(crate) fn choose<'a>(entries: &'a [(Platform, String)], preferred: &[Platform]) -> Option<&'a String> {
    preferred.iter().find_map(|want| {
        entries
            .iter()
            .find(|(p, _)| {
                p.os == want.os
                    && p.architecture == want.architecture
                    && (want.variant.is_none() || p.variant == want.variant)
            })
            .map(|(_, digest)| digest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_by_platform_not_position() {
        let entries = vec![
            (Platform::new("linux", "arm64"), "sha256:arm".to_owned()),
            (Platform { variant: Some("v7".into()), ..Platform::new("linux", "arm") }, "sha256:armv7".to_owned()),
            (Platform::linux_amd64(), "sha256:amd".to_owned()),
        ];
        assert_eq!(choose(&entries, &[Platform::linux_amd64()]).map(String::as_str), Some("sha256:amd"));
        let arm = Platform { variant: Some("v7".into()), ..Platform::new("linux", "arm") };
        assert_eq!(choose(&entries, &[arm, Platform::linux_amd64()]).map(String::as_str), Some("sha256:armv7"));
        assert_eq!(choose(&entries, &[Platform::new("windows", "amd64")]), None);
    }

    #[test]
    fn reads_docker_and_oci_indexes() {
        let docker_list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"sha256:aa",
            "platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#;
        let Ok(Parsed::Index(Manifest::Index { entries })) = parse(docker_list) else { panic!("an index") };
        assert_eq!(entries[0].0.to_string(), "linux/arm/v7");
        assert!(parse(br#"{"schemaVersion":1,"name":"x"}"#).is_err());
    }

    #[test]
    fn created_times() {
        assert_eq!(
            config_times(br#"{"created":"2023-11-14T22:13:20Z"}"#).0,
            Some(Timestamp::from_second(1_700_000_000).unwrap())
        );
        assert_eq!(config_times(br#"{"architecture":"amd64"}"#), (None, None));
        assert_eq!(config_times(br#"{"created":"yesterday"}"#), (None, None));
        let both = br#"{"created":"2020-01-01T00:00:00Z","config":{"Labels":{
            "org.label-schema.build-date":"2022-01-01T00:00:00Z",
            "org.opencontainers.image.created":"2023-01-01T00:00:00Z"}}}"#;
        let t = |s: &str| s.parse::<Timestamp>().ok();
        assert_eq!(config_times(both), (t("2020-01-01T00:00:00Z"), t("2023-01-01T00:00:00Z")), "OCI's label first");
        let schema = br#"{"config":{"Labels":{"org.label-schema.build-date":"2022-01-01T00:00:00Z",
            "org.opencontainers.image.created":"not a time"}}}"#;
        assert_eq!(config_times(schema), (None, t("2022-01-01T00:00:00Z")), "an unreadable label is skipped");
    }
}
