//! Images in a HelmRelease's `spec.values`, found as Flux v1 found them.
//!
//! By convention, at the top of `values` (container `chart-image`) and one level down (the
//! container is named after the key):
//!
//! - `image: repo[:tag]`
//! - `image: repo` with `tag: tag`
//! - `registry: host` with `image: repo[:tag]` (and optionally `tag`)
//! - `image: {registry: host, repository: repo, tag: tag}` (`registry` and `tag` optional)
//!
//! And by explicit mapping annotations, whose values are dot-separated paths in `values`:
//! `repository.fluxcd.io/<container>` (required), `tag.fluxcd.io/<container>` and
//! `registry.fluxcd.io/<container>`. A mapping wins over a convention for the same name.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::image::ImageRef;
use crate::kinds::HELM_RELEASE_GROUPS;
use crate::object::KubeObject;

/// The container name Flux v1 gives the image at the top of `values`.
pub const CHART_IMAGE: &str = "chart-image";

/// Where one image's parts are in a HelmRelease, as paths of keys from the object's root
/// (`["spec", "values", "backend", "tag"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmImagePaths {
    /// The image (or repository), possibly with registry, tag or digest.
    pub image: Vec<String>,
    /// The tag, when it is kept apart.
    pub tag: Option<Vec<String>>,
    /// The registry host, when it is kept apart.
    pub registry: Option<Vec<String>>,
}

/// The values at `paths` of `object`, as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HelmImageParts {
    pub(crate) image: String,
    pub(crate) tag: Option<String>,
    pub(crate) registry: Option<String>,
}

impl HelmImageParts {
    /// The image reference the parts make.
    pub(crate) fn reference(&self) -> String {
        let mut s = String::new();
        if let Some(registry) = &self.registry {
            s.push_str(registry.trim_end_matches('/'));
            s.push('/');
        }
        s.push_str(&self.image);
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        s
    }
}

impl HelmImagePaths {
    /// The strings at the paths; an error names the path that is missing or not a string.
    pub(crate) fn read(&self, object: &KubeObject) -> Result<HelmImageParts, String> {
        let text = |path: &[String]| -> Result<String, String> {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            match object.pointer(&keys) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{} is not a string", keys.join("."))),
                None => Err(format!("{} does not exist", keys.join("."))),
            }
        };
        Ok(HelmImageParts {
            image: text(&self.image)?,
            tag: self.tag.as_deref().map(text).transpose()?,
            registry: self.registry.as_deref().map(text).transpose()?,
        })
    }

    /// The new value of each part for `image`, or an error when the parts cannot express it.
    pub(crate) fn parts_for(&self, current: &HelmImageParts, image: &ImageRef) -> Result<HelmImageParts, String> {
        let repository = image.repository();
        let current_repository = current.reference().parse::<ImageRef>().map(|r| r.repository()).ok();
        let same_repository = current_repository.as_ref() == Some(&repository);
        let mut parts = current.clone();
        let mut rest = image.path().to_owned();
        if self.registry.is_some() {
            if !same_repository {
                parts.registry = Some(image.domain().unwrap_or(crate::image::DOCKER_HUB).to_owned());
            }
        } else if let Some(domain) = image.domain() {
            rest = format!("{domain}/{rest}");
        }
        match &self.tag {
            Some(_) => {
                if image.digest().is_some() {
                    return Err("a separate tag value cannot hold a digest".to_owned());
                }
                parts.tag = Some(image.tag().ok_or("the new image has no tag")?.to_owned());
                if !same_repository {
                    parts.image = rest;
                }
            }
            None => {
                let mut full = if same_repository { strip_tag(&current.image) } else { rest };
                if let Some(tag) = image.tag() {
                    full.push(':');
                    full.push_str(tag);
                }
                if let Some(digest) = image.digest() {
                    full.push('@');
                    full.push_str(digest);
                }
                parts.image = full;
            }
        }
        Ok(parts)
    }
}

/// `repo[:tag][@digest]` without tag and digest, keeping a registry port.
fn strip_tag(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => image.to_owned(),
    }
}

/// Whether an object is a HelmRelease of Flux v1 (`helm.fluxcd.io/v1`, or the older
/// `flux.weave.works/v1beta1`) or Flux v2 (see [`HELM_RELEASE_GROUPS`]).
pub fn is_helm_release(object: &KubeObject) -> bool {
    object.id().is_kind("HelmRelease") && HELM_RELEASE_GROUPS.contains(&object.group())
}

/// A mapping annotation that could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappingError {
    pub(crate) annotation: String,
    pub(crate) message: String,
}

/// Each image's container name and paths, sorted by name.
pub(crate) fn helm_images(object: &KubeObject) -> Result<BTreeMap<String, HelmImagePaths>, Vec<MappingError>> {
    let mut images = BTreeMap::new();
    let values_path =
        |rest: &[&str]| -> Vec<String> { ["spec", "values"].iter().chain(rest).map(|s| (*s).to_owned()).collect() };
    if let Some(values) = object.pointer(&["spec", "values"]).and_then(Value::as_object) {
        if let Some(paths) = by_convention(values, &[], &values_path) {
            images.insert(CHART_IMAGE.to_owned(), paths);
        }
        for (key, value) in values {
            if let Some(paths) = value.as_object().and_then(|m| by_convention(m, &[key.as_str()], &values_path)) {
                images.insert(key.clone(), paths);
            }
        }
    }
    let annotations = object.annotations();
    let mut errors = Vec::new();
    for (key, repository) in &annotations {
        let Some(name) = key.strip_prefix("repository.fluxcd.io/") else { continue };
        let path = |prefix: &str| annotations.get(&format!("{prefix}.fluxcd.io/{name}")).map(|p| dotted(p));
        let paths = HelmImagePaths { image: dotted(repository), tag: path("tag"), registry: path("registry") };
        match paths.read(object) {
            Ok(_) => {
                images.insert(name.to_owned(), paths);
            }
            Err(message) => errors.push(MappingError { annotation: key.clone(), message }),
        }
    }
    for (key, _) in
        annotations.iter().filter(|(k, _)| k.starts_with("tag.fluxcd.io/") || k.starts_with("registry.fluxcd.io/"))
    {
        let name = key.split_once('/').map_or("", |(_, n)| n);
        if !annotations.contains_key(&format!("repository.fluxcd.io/{name}")) {
            errors.push(MappingError {
                annotation: key.clone(),
                message: format!("has no repository.fluxcd.io/{name} to go with it"),
            });
        }
    }
    if errors.is_empty() { Ok(images) } else { Err(errors) }
}

/// `backend.image.tag` as a path from the object's root.
fn dotted(path: &str) -> Vec<String> {
    ["spec", "values"].iter().map(|s| (*s).to_owned()).chain(path.split('.').map(str::to_owned)).collect()
}

fn by_convention(
    map: &Map<String, Value>,
    base: &[&str],
    path: &dyn Fn(&[&str]) -> Vec<String>,
) -> Option<HelmImagePaths> {
    let at = |keys: &[&str]| path(&[base, keys].concat());
    let is_text = |m: &Map<String, Value>, k: &str| m.get(k).is_some_and(Value::is_string);
    match map.get("image")? {
        Value::String(_) => Some(HelmImagePaths {
            image: at(&["image"]),
            tag: is_text(map, "tag").then(|| at(&["tag"])),
            registry: is_text(map, "registry").then(|| at(&["registry"])),
        }),
        Value::Object(image) if is_text(image, "repository") => Some(HelmImagePaths {
            image: at(&["image", "repository"]),
            tag: is_text(image, "tag").then(|| at(&["image", "tag"])),
            registry: is_text(image, "registry").then(|| at(&["image", "registry"])),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn release(api_version: &str) -> KubeObject {
        let body = json!({
            "apiVersion": api_version, "kind": "HelmRelease",
            "metadata": {"name": "ambassador", "namespace": "demo"},
            "spec": {"values": {"image": "quay.io/datawire/ambassador:0.70.1", "opa": {"image": {"repository": "openpolicyagent/opa", "tag": "1.0"}}}}
        });
        KubeObject::from_value(body, None).expect("an object")
    }

    #[test]
    fn every_helm_release_group_flux_knew_is_a_workload_with_the_same_image_forms() {
        for api_version in ["flux.weave.works/v1beta1", "helm.fluxcd.io/v1", "helm.toolkit.fluxcd.io/v2"] {
            let hr = release(api_version);
            assert!(is_helm_release(&hr), "{api_version}");
            let images = helm_images(&hr).expect("readable");
            assert_eq!(images.keys().collect::<Vec<_>>(), [CHART_IMAGE, "opa"], "{api_version}");
            let opa = images["opa"].read(&hr).expect("parts");
            assert_eq!(opa.reference(), "openpolicyagent/opa:1.0");
        }
        assert!(!is_helm_release(&release("example.com/v1")), "another group's HelmRelease is not Flux's");
    }
}
