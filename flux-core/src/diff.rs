//! Field-level differences between two JSON documents: an object as it is in the cluster and
//! as it would be after an apply.
//!
//! [`diff`] walks both documents and reports every leaf that was added, removed or changed,
//! with its path written as `kubectl explain` and JSONPath readers expect:
//! `spec.replicas`, `metadata.annotations["fluxcd.io/automated"]`,
//! `spec.template.spec.containers[name=app].image`. Lists whose items are all mappings with a
//! distinct `name` (containers, ports, env, volumes) are matched by name, so inserting an item
//! does not show every later one as changed; other lists are compared item by item.
//! [`strip_server_fields`] removes what the server writes on every object
//! (`managedFields`, `resourceVersion`, `status`, ...) so that only fields someone set remain.

use serde_json::{Map, Value};

/// One field that differs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldChange {
    /// Where: `spec.replicas`, `metadata.labels["app"]`, `spec.ports[0].port`.
    pub path: String,
    /// The value before, `None` when the field is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after, `None` when the field is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl std::fmt::Display for FieldChange {
    /// `path: before -> after`, `+ path: value`, `- path: value`, values as compact JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (Some(before), Some(after)) => write!(f, "{}: {before} -> {after}", self.path),
            (None, Some(after)) => write!(f, "+ {}: {after}", self.path),
            (Some(before), None) => write!(f, "- {}: {before}", self.path),
            (None, None) => write!(f, "{}", self.path),
        }
    }
}

/// Every leaf that differs between `before` and `after`, keys in order (JSON mappings sorted),
/// list items in `before`'s order then those only in `after`. Equal documents give nothing. A field whose type changes (a
/// mapping becoming a string) is one change of the whole field.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

/// Every leaf of `value` as an added field (an object that does not exist yet), in key order.
pub fn fields(value: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    leaves("", value, &mut out);
    out
}

fn leaves(path: &str, value: &Value, out: &mut Vec<FieldChange>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            map.iter().for_each(|(key, v)| leaves(&field_path(path, key), v, out));
        }
        Value::Array(items) if !items.is_empty() => match names(items) {
            Some(names) => names.iter().zip(items).for_each(|(n, v)| leaves(&format!("{path}[name={n}]"), v, out)),
            None => items.iter().enumerate().for_each(|(i, v)| leaves(&format!("{path}[{i}]"), v, out)),
        },
        leaf => out.push(FieldChange { path: path.to_owned(), before: None, after: Some(leaf.clone()) }),
    }
}

/// The fields every object gets from the server, removed from `object` (a whole object as
/// JSON): `status`, and in `metadata` `managedFields`, `resourceVersion`, `generation`, `uid`,
/// `creationTimestamp`, `selfLink` and the annotation
/// `kubectl.kubernetes.io/last-applied-configuration`. An annotation or label mapping left
/// empty is removed.
pub fn strip_server_fields(object: &mut Value) {
    const SERVER_FIELDS: [&str; 6] =
        ["managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"];
    let Some(body) = object.as_object_mut() else { return };
    body.remove("status");
    let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    for field in SERVER_FIELDS {
        metadata.remove(field);
    }
    remove_annotation(metadata, "kubectl.kubernetes.io/last-applied-configuration");
}

/// Removes `key` from `metadata.annotations`, and the mapping when it is left empty.
pub fn remove_annotation(metadata: &mut Map<String, Value>, key: &str) {
    let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) else { return };
    annotations.remove(key);
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, value) in b {
                let at = field_path(path, key);
                match a.get(key) {
                    Some(other) => walk(&at, value, other, out),
                    None => out.push(FieldChange { path: at, before: Some(value.clone()), after: None }),
                }
            }
            for (key, value) in a.iter().filter(|(k, _)| !b.contains_key(*k)) {
                out.push(FieldChange { path: field_path(path, key), before: None, after: Some(value.clone()) });
            }
        }
        (Value::Array(b), Value::Array(a)) => match (names(b), names(a)) {
            (Some(b_names), Some(a_names)) => {
                for (name, item) in b_names.iter().zip(b) {
                    let at = format!("{path}[name={name}]");
                    match a_names.iter().position(|n| n == name) {
                        Some(i) => walk(&at, item, &a[i], out),
                        None => out.push(FieldChange { path: at, before: Some(item.clone()), after: None }),
                    }
                }
                for (name, item) in a_names.iter().zip(a).filter(|(n, _)| !b_names.contains(n)) {
                    out.push(FieldChange {
                        path: format!("{path}[name={name}]"),
                        before: None,
                        after: Some(item.clone()),
                    });
                }
            }
            _ => {
                for (i, item) in b.iter().enumerate() {
                    let at = format!("{path}[{i}]");
                    match a.get(i) {
                        Some(other) => walk(&at, item, other, out),
                        None => out.push(FieldChange { path: at, before: Some(item.clone()), after: None }),
                    }
                }
                for (i, item) in a.iter().enumerate().skip(b.len()) {
                    out.push(FieldChange { path: format!("{path}[{i}]"), before: None, after: Some(item.clone()) });
                }
            }
        },
        (b, a) if b == a => {}
        (b, a) => {
            let path = if path.is_empty() { ".".to_owned() } else { path.to_owned() };
            out.push(FieldChange { path, before: Some(b.clone()), after: Some(a.clone()) });
        }
    }
}

/// The `name` of every item, when every item is a mapping with a distinct string `name`.
fn names(items: &[Value]) -> Option<Vec<String>> {
    if items.is_empty() {
        return None;
    }
    let names: Vec<String> =
        items.iter().map(|i| i.get("name").and_then(Value::as_str).map(str::to_owned)).collect::<Option<_>>()?;
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    (distinct.len() == names.len()).then_some(names)
}

/// `path` followed by `key`: `.key`, or `["key"]` when the key is not a plain identifier
/// (annotation and label keys such as `fluxcd.io/automated`).
fn field_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{}]", Value::String(key.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(changes: &[FieldChange]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn equal_documents_differ_in_nothing() {
        let doc = json!({"spec": {"replicas": 1, "ports": [{"name": "http", "port": 80}], "args": ["a", "b"]}});
        assert!(diff(&doc, &doc.clone()).is_empty());
        assert!(diff(&json!({}), &json!({})).is_empty());
    }

    #[test]
    fn a_changed_leaf_is_one_change_at_its_path() {
        let before = json!({"spec": {"replicas": 1, "selector": {"app": "web"}}});
        let after = json!({"spec": {"replicas": 3, "selector": {"app": "web"}}});
        assert_eq!(
            diff(&before, &after),
            [FieldChange { path: "spec.replicas".into(), before: Some(json!(1)), after: Some(json!(3)) }]
        );
    }

    #[test]
    fn added_and_removed_fields_and_keys_that_need_quoting() {
        let before =
            json!({"metadata": {"annotations": {"fluxcd.io/automated": "true", "old": "x"}}, "data": {"a": "1"}});
        let after =
            json!({"metadata": {"annotations": {"fluxcd.io/automated": "false"}}, "data": {"a": "1", "b": "2"}});
        assert_eq!(
            paths(&diff(&before, &after)),
            [
                r#"+ data.b: "2""#,
                r#"metadata.annotations["fluxcd.io/automated"]: "true" -> "false""#,
                r#"- metadata.annotations.old: "x""#,
            ]
        );
    }

    #[test]
    fn named_items_are_matched_by_name_and_others_by_position() {
        let before = json!({"containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}],
            "args": ["--x", "--y"]});
        let after = json!({"containers": [{"name": "init", "image": "i:1"}, {"name": "app", "image": "a:2"},
            {"name": "side", "image": "s:1"}], "args": ["--x", "--z", "--w"]});
        assert_eq!(
            paths(&diff(&before, &after)),
            [
                r#"args[1]: "--y" -> "--z""#,
                r#"+ args[2]: "--w""#,
                r#"containers[name=app].image: "a:1" -> "a:2""#,
                r#"+ containers[name=init]: {"image":"i:1","name":"init"}"#,
            ]
        );
        // Duplicate names fall back to positions.
        let dup = json!([{"name": "a", "v": 1}, {"name": "a", "v": 2}]);
        let dup2 = json!([{"name": "a", "v": 1}, {"name": "a", "v": 3}]);
        assert_eq!(paths(&diff(&dup, &dup2)), ["[1].v: 2 -> 3"]);
    }

    #[test]
    fn a_type_change_is_one_change_of_the_whole_field() {
        assert_eq!(paths(&diff(&json!({"a": {"b": 1}}), &json!({"a": "text"}))), [r#"a: {"b":1} -> "text""#]);
        assert_eq!(paths(&diff(&json!(1), &json!(2))), [".: 1 -> 2"]);
    }

    #[test]
    fn a_new_object_is_every_leaf_added() {
        let object = json!({"kind": "ConfigMap", "data": {"a": "1"}, "list": [{"name": "x", "v": 1}, ], "empty": {}});
        assert_eq!(
            paths(&fields(&object)),
            [
                r#"+ data.a: "1""#,
                "+ empty: {}",
                r#"+ kind: "ConfigMap""#,
                "+ list[name=x].name: \"x\"",
                "+ list[name=x].v: 1"
            ]
        );
    }

    #[test]
    fn server_fields_are_stripped() {
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "uid": "u", "resourceVersion": "7", "generation": 2, "selfLink": "/x",
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "flux"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"a": "1"}, "status": {"phase": "x"}});
        strip_server_fields(&mut live);
        assert_eq!(
            live,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
        );
        let mut keep = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}});
        let meta = keep["metadata"].as_object_mut().expect("metadata");
        remove_annotation(meta, "a");
        assert_eq!(keep, json!({"metadata": {"annotations": {"b": "2"}}}));
    }
}
