//! The checksum recorded on each applied object: a SHA-256 of its desired manifest in a
//! canonical form (keys sorted, no whitespace), so that re-ordering keys in git or a different
//! YAML layout does not count as a change, and any change of value does.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::object::KubeObject;

/// The checksum of `object`'s desired body (before the sync labels are added).
pub(crate) fn checksum(object: &KubeObject) -> String {
    let mut hasher = Sha256::new();
    let mut canonical = String::new();
    write_canonical(&Value::Object(object.body().clone()), &mut canonical);
    hasher.update(canonical.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> KubeObject {
        KubeObject::from_value(v, None).unwrap()
    }

    #[test]
    fn key_order_does_not_matter_values_do() {
        let a = obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": {"x": "1", "y": "2"}}),
        );
        let b = obj(
            json!({"kind": "ConfigMap", "data": {"y": "2", "x": "1"}, "metadata": {"namespace": "d", "name": "c"}, "apiVersion": "v1"}),
        );
        let c = obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": {"x": "1", "y": "3"}}),
        );
        assert_eq!(checksum(&a), checksum(&b));
        assert_ne!(checksum(&a), checksum(&c));
        assert_eq!(checksum(&a).len(), 64);
    }
}
