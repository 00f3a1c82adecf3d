//! Kubernetes objects as the engines see them: any kind, kept as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{Error, Location};
use crate::resource::ResourceId;

/// One Kubernetes object of any kind, built-in or custom.
///
/// The body is the whole object as JSON. `apiVersion`, `kind` and `metadata.name` are checked to
/// be non-empty strings on construction, and the id is fixed then: labels and annotations may
/// change afterwards, the identity may not. An object with no `metadata.namespace` is taken as
/// cluster-scoped; readers of manifests fill in the default namespace for namespaced kinds first.
///
/// Clones share the body until one of them changes it (copy on write): the generator's cache,
/// the sync engine's desired objects and the automation engine's revision hold one copy of a
/// revision's objects between them, not one each.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeObject {
    id: ResourceId,
    body: Arc<Map<String, Value>>,
    origin: Option<Location>,
}

impl KubeObject {
    /// Checks and wraps a JSON object. `origin` names the file and line it was read from, if any;
    /// errors point there.
    pub fn from_value(body: Value, origin: Option<Location>) -> Result<Self, Error> {
        let at = || origin.clone().unwrap_or_default();
        let Value::Object(body) = body else {
            return Err(Error::invalid(at(), "a Kubernetes object must be a mapping"));
        };
        let text = |v: Option<&Value>, what: &str| -> Result<String, Error> {
            match v.and_then(Value::as_str) {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                _ => Err(Error::invalid(at(), format!("object has no {what}"))),
            }
        };
        text(body.get("apiVersion"), "apiVersion")?;
        let kind = text(body.get("kind"), "kind")?;
        let metadata = body.get("metadata").and_then(Value::as_object);
        let name = text(metadata.and_then(|m| m.get("name")), "metadata.name")?;
        let namespace = match metadata.and_then(|m| m.get("namespace")) {
            None | Some(Value::Null) => None,
            Some(Value::String(ns)) if !ns.is_empty() => Some(ns.as_str()),
            Some(_) => return Err(Error::invalid(at(), "metadata.namespace must be a non-empty string")),
        };
        let id = ResourceId::new(namespace, &kind, &name);
        Ok(KubeObject { id, body: Arc::new(body), origin })
    }

    /// The same object, said to come from `origin` (for generators, whose output is read from
    /// a command's stdout but belongs to the file that made it).
    pub fn with_origin(mut self, origin: Option<Location>) -> Self {
        self.origin = origin;
        self
    }

    /// The object's id.
    pub fn id(&self) -> &ResourceId {
        &self.id
    }

    /// `apiVersion`, e.g. `apps/v1`.
    pub fn api_version(&self) -> &str {
        self.body.get("apiVersion").and_then(Value::as_str).unwrap_or_default()
    }

    /// The API group: the part of `apiVersion` before `/`, empty for the core group.
    pub fn group(&self) -> &str {
        crate::kinds::api_group(self.api_version())
    }

    /// `kind` as written, e.g. `Deployment`.
    pub fn kind(&self) -> &str {
        self.body.get("kind").and_then(Value::as_str).unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.id.name()
    }

    /// `metadata.namespace`, `None` when cluster-scoped.
    pub fn namespace(&self) -> Option<&str> {
        self.id.namespace()
    }

    /// Where the object was read from, if it came from a file.
    pub fn origin(&self) -> Option<&Location> {
        self.origin.as_ref()
    }

    /// The whole object.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The whole object, as an owned JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(Map::clone(&self.body))
    }

    /// The value at a path of keys, e.g. `["spec", "replicas"]`.
    pub fn pointer(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.body.get(*first)?, |v, k| v.get(k))
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.string_map("labels")
    }

    /// `metadata.annotations`.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.string_map("annotations")
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.pointer(&["metadata", "labels", key]).and_then(Value::as_str)
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.pointer(&["metadata", "annotations", key]).and_then(Value::as_str)
    }

    /// Sets a label, creating `metadata.labels` if needed.
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.metadata_map("labels").insert(key.to_owned(), Value::String(value.to_owned()));
    }

    /// Sets an annotation, creating `metadata.annotations` if needed.
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.metadata_map("annotations").insert(key.to_owned(), Value::String(value.to_owned()));
    }

    /// Removes an annotation; returns its old value.
    pub fn remove_annotation(&mut self, key: &str) -> Option<String> {
        let removed = self.metadata_map("annotations").remove(key);
        removed.and_then(|v| v.as_str().map(str::to_owned))
    }

    fn string_map(&self, field: &str) -> BTreeMap<String, String> {
        self.pointer(&["metadata", field])
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default()
    }

    fn metadata_map(&mut self, field: &str) -> &mut Map<String, Value> {
        let metadata = object_entry(Arc::make_mut(&mut self.body), "metadata");
        object_entry(metadata, field)
    }
}

/// The mapping at `map[key]`, replacing whatever non-mapping stood there.
fn object_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made a mapping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_comes_from_kind_name_and_namespace() {
        let o = KubeObject::from_value(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}}),
            None,
        )
        .unwrap();
        assert_eq!(o.id().to_string(), "prod:deployment/web");
        assert_eq!(o.group(), "apps");
        let ns = KubeObject::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}),
            None,
        )
        .unwrap();
        assert_eq!(ns.id().to_string(), "<cluster>:namespace/prod");
        assert_eq!(ns.group(), "");
    }

    #[test]
    fn missing_fields_are_reported_at_the_origin() {
        let at = Some(Location::line("apps/web.yaml", 7));
        for (body, missing) in [
            (json!({"kind": "X", "metadata": {"name": "a"}}), "apiVersion"),
            (json!({"apiVersion": "v1", "metadata": {"name": "a"}}), "kind"),
            (json!({"apiVersion": "v1", "kind": "X"}), "metadata.name"),
            (json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": 3}}), "metadata.name"),
        ] {
            let err = KubeObject::from_value(body, at.clone()).unwrap_err().to_string();
            assert_eq!(err, format!("apps/web.yaml:7: object has no {missing}"));
        }
        assert!(KubeObject::from_value(json!([1]), at).is_err());
    }

    #[test]
    fn labels_and_annotations_are_set_in_place() {
        let mut o = KubeObject::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": null}}),
            None,
        )
        .unwrap();
        o.set_label("fluxcd.io/sync-gc-mark", "prod");
        o.set_annotation("fluxcd.io/sync-checksum", "abc");
        assert_eq!(o.label("fluxcd.io/sync-gc-mark"), Some("prod"));
        assert_eq!(o.annotations().get("fluxcd.io/sync-checksum").map(String::as_str), Some("abc"));
        assert_eq!(o.remove_annotation("fluxcd.io/sync-checksum").as_deref(), Some("abc"));
        assert!(o.annotations().is_empty());
    }

    #[test]
    fn clones_share_the_body_until_one_changes() {
        let original = KubeObject::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}}),
            None,
        )
        .unwrap();
        let mut copy = original.clone();
        assert!(std::ptr::eq(original.body(), copy.body()), "a clone copies no body");
        copy.set_label("a", "2");
        copy.set_annotation("fluxcd.io/sync-checksum", "abc");
        assert!(!std::ptr::eq(original.body(), copy.body()));
        assert_eq!((original.label("a"), copy.label("a")), (Some("1"), Some("2")));
        assert!(original.annotations().is_empty(), "the original is as it was");
        assert_eq!(original.to_value()["metadata"]["labels"], json!({"a": "1"}));
        assert_ne!(original, copy);
    }
}
