//! The documents of a SOPS file as sops sees them: ordered mappings (the MAC is computed in
//! document order) of strings, integers, floats, booleans and nulls. Comments are not kept:
//! they are outside the MAC, and manifests do not need them (an encrypted `#ENC[...]` comment
//! is dropped with the rest).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use flux_core::manifest::ManifestOptions;

/// One value of a SOPS tree. Deliberately without `Debug`: it holds plaintext.
#[derive(Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl fmt::Debug for Node {
    /// The shape only, never a value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Map(items) => write!(f, "Map({} keys)", items.len()),
            Node::Seq(items) => write!(f, "Seq({} items)", items.len()),
            _ => f.write_str("Scalar(..)"),
        }
    }
}

impl Node {
    /// The value under `key` of a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The file format, from the file's name as sops chooses it: `.json` is JSON, the rest YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

impl Format {
    pub(crate) fn of(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".json") { Format::Json } else { Format::Yaml }
    }

    /// sops's name for it (`--input-type`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }
}

/// The documents of `text` (one for JSON). Errors carry no value: the parsers are told not
/// to quote the input.
pub(crate) fn parse(text: &str, format: Format, limits: &ManifestOptions) -> Result<Vec<Node>, String> {
    match format {
        // Only the kind of problem and where: serde_json may quote what it did not expect.
        Format::Json => serde_json::from_str::<Node>(text)
            .map(|n| vec![n])
            .map_err(|e| format!("not valid JSON: {} at line {} column {}", e.classify_str(), e.line(), e.column())),
        Format::Yaml => {
            let mut options = serde_saphyr::Options::default();
            options.with_snippet = false;
            // As sops's yaml.v3 resolves plain scalars into interface{}: only true/false are
            // booleans (`yes` is a string), `0755` is octal.
            options.strict_booleans = true;
            options.legacy_octal_numbers = true;
            options.alias_limits.max_total_replayed_events = limits.max_alias_expansion;
            if let Some(budget) = options.budget.as_mut() {
                budget.max_documents = limits.max_documents;
                budget.max_depth = limits.max_depth;
            }
            serde_saphyr::from_multiple_with_options::<Node>(text, options).map_err(|e| format!("not valid YAML: {e}"))
        }
    }
}

trait Classify {
    fn classify_str(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unsupported value",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

/// The documents as manifest text: each document as JSON (a YAML subset the manifest reader
/// reads), separated by `---`. An empty document stays empty (`null`), as the reader skips it.
pub(crate) fn emit(documents: &[Node]) -> Result<String, String> {
    let mut out = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let empty = matches!(document, Node::Map(items) if items.is_empty());
        let text = if empty {
            "null".to_owned()
        } else {
            serde_json::to_string_pretty(document).map_err(|_| "a value cannot be written as JSON".to_owned())?
        };
        out.push_str(&text);
        out.push('\n');
    }
    Ok(out)
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Int(i) => serializer.serialize_i64(*i),
            Node::Float(f) if f.is_finite() => serializer.serialize_f64(*f),
            // JSON has no infinities nor NaN; Kubernetes objects have no use for them either.
            Node::Float(_) => Err(serde::ser::Error::custom("a float that is not finite")),
            Node::Str(s) => serializer.serialize_str(s),
            Node::Seq(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(items) => {
                let mut map = serializer.serialize_map(Some(items.len()))?;
                for (k, v) in items {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        // sops (Go's int) cannot hold more either.
        i64::try_from(v).map(Node::Int).map_err(|_| E::custom("an integer over 2^63-1"))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v).map(Node::Int).map_err(|_| E::custom("an integer out of the 64-bit range"))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i64::try_from(v).map(Node::Int).map_err(|_| E::custom("an integer out of the 64-bit range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut items: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            // sops refuses keys that are not strings ("Only string keys are supported").
            let Node::Str(key) = key else {
                return Err(de::Error::custom("a mapping key that is not a string (sops supports only string keys)"));
            };
            let value = map.next_value::<Node>()?;
            if items.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            items.push((key, value));
        }
        Ok(Node::Map(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Vec<Node> {
        parse(text, Format::Yaml, &ManifestOptions::default()).expect("parses")
    }

    #[test]
    fn yaml_scalars_resolve_as_yaml_v3_does_for_sops() {
        let docs = yaml("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: yes\ng: 2024-01-02\nh: -3\n---\nx: [1, two]\n");
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert!(matches!(d.get("a"), Some(Node::Int(1))));
        assert!(matches!(d.get("b"), Some(Node::Float(f)) if *f == 1.5));
        assert!(matches!(d.get("c"), Some(Node::Bool(true))));
        assert!(matches!(d.get("d"), Some(Node::Null)));
        assert_eq!(d.get("e").and_then(Node::as_str), Some("1"));
        assert_eq!(d.get("f").and_then(Node::as_str), Some("yes"), "YAML 1.2: yes is a string");
        assert_eq!(d.get("g").and_then(Node::as_str), Some("2024-01-02"), "yaml.v3 keeps timestamps as strings");
        assert!(matches!(d.get("h"), Some(Node::Int(-3))));
    }

    #[test]
    fn order_is_kept_and_emitted_as_json_documents() {
        let mut docs = yaml("z: 1\na: x\n---\n---\nk: [1.0, false]\n");
        assert_eq!(docs.len(), 2, "an empty document is no document (nor is it in sops's MAC)");
        docs.insert(1, Node::Map(Vec::new()));
        let out = emit(&docs).expect("emits");
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": \"x\"\n}\n---\nnull\n---\n{\n  \"k\": [\n    1.0,\n    false\n  ]\n}\n"
        );
    }

    #[test]
    fn errors_quote_no_input() {
        let secret = "hunter2-secret";
        let err = parse(&format!("a: [{secret}\n"), Format::Yaml, &ManifestOptions::default()).expect_err("fails");
        assert!(!err.contains(secret), "{err}");
        let err = parse(&format!("{{\"a\": {secret}}}"), Format::Json, &ManifestOptions::default()).expect_err("x");
        assert!(!err.contains(secret), "{err}");
        let err = parse("1: a\n", Format::Yaml, &ManifestOptions::default()).expect_err("non-string key");
        assert!(err.contains("YAML"), "{err}");
    }
}
