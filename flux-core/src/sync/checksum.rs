//! The checksum recorded on each applied object: a SHA-256 of its desired manifest in a
//! canonical form (keys sorted, no whitespace), so that re-ordering keys in git or a different
//! YAML layout does not count as a change, and any change of value does.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::object::KubeObject;

/// The checksum of `object`'s desired body (before the sync labels are added). The canonical
/// form is streamed into the hash: nothing of the object is copied (every sync checksums every
/// desired object, so this is on a no-op's path).
pub(crate) fn checksum(object: &KubeObject) -> String {
    let mut hasher = Hashing(Sha256::new());
    write_map(object.body(), &mut hasher);
    hasher.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds what is written into the hash.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Hashing {
    fn push(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// A string or scalar as JSON text (writing into a hash cannot fail).
    fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        let _infallible = serde_json::to_writer(&mut *self, value);
    }
}

fn write_map(map: &Map<String, Value>, out: &mut Hashing) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    out.push(b"{");
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b",");
        }
        out.json(key.as_str());
        out.push(b":");
        write_canonical(&map[key], out);
    }
    out.push(b"}");
}

fn write_canonical(value: &Value, out: &mut Hashing) {
    match value {
        Value::Object(map) => write_map(map, out),
        Value::Array(items) => {
            out.push(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b",");
                }
                write_canonical(item, out);
            }
            out.push(b"]");
        }
        scalar => out.json(scalar),
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

    /// The canonical form is what every object in a cluster is marked with: it must never
    /// change, or an upgrade would re-apply everything.
    #[test]
    fn the_canonical_form_is_sorted_compact_json() {
        let object = obj(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "labels": {"b": "x\"y", "a": "é\n"}},
            "data": {"n": "1"}, "list": [2, 1.5, true, null, {"z": 1, "y": [ ]}]
        }));
        let canonical = r#"{"apiVersion":"v1","data":{"n":"1"},"kind":"ConfigMap","list":[2,1.5,true,null,{"y":[],"z":1}],"metadata":{"labels":{"a":"é\n","b":"x\"y"},"name":"c"}}"#;
        let expected: String = Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(checksum(&object), expected);
    }
}
