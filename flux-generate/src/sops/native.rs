//! SOPS decryption in Rust, for files whose data key is wrapped with age: what sops's
//! `decrypt.DataWithFormat` does. The data key is unwrapped with one of the age identities;
//! every value the file's rules say is encrypted (`ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`,
//! the additional data being the path of keys joined with `:` plus a trailing `:`) is
//! decrypted to its type; the SHA-512 over the plaintext values, in document order, must
//! equal the MAC stored (encrypted, with `lastmodified` as additional data). Anything off
//! is an error: no output is ever half-decrypted.

use std::io::Read;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, AesGcm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use sha2::{Digest, Sha512};

use super::keys::Identities;
use super::tree::Node;

/// sops's constant start of the MAC when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b, 0x97, 0x5b,
    0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The key kinds sops knows besides age, by their metadata key.
const OTHER_KEY_KINDS: [&str; 6] = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

/// Why the native path did not decrypt a file.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The file needs what only the sops program does (other key kinds, key groups, comment
    /// rules, identities age plugins hold): the program may still decrypt it.
    Unsupported(String),
    /// The file is broken, tampered with, or the key does not fit: the program would fail too.
    Invalid(String),
}

/// Which values are encrypted, from the metadata (`unencrypted_suffix: _unencrypted` when none).
enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl Rule {
    /// sops's `shouldBeEncrypted`: on the keys of the path (comment rules are not native).
    fn encrypts(&self, path: &[&str]) -> bool {
        match self {
            Rule::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            Rule::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
        }
    }
}

/// The `sops:` block, as far as decryption needs it.
struct Metadata {
    mac: String,
    last_modified: String,
    rule: Rule,
    mac_only_encrypted: bool,
    /// The armored age files holding the data key.
    age: Vec<String>,
}

fn text_field<'a>(meta: &'a Node, key: &str) -> Option<&'a str> {
    meta.get(key).and_then(Node::as_str).filter(|s| !s.is_empty())
}

fn metadata(meta: &Node) -> Result<Metadata, Failure> {
    if !matches!(meta, Node::Map(_)) {
        return Err(Failure::Invalid("its sops: entry is not a mapping".into()));
    }
    let mut age = age_entries(meta);
    match meta.get("key_groups") {
        Some(Node::Seq(groups)) if groups.len() > 1 => {
            return Err(Failure::Unsupported(format!(
                "its data key is split across {} key groups (Shamir), which only the sops program combines",
                groups.len()
            )));
        }
        Some(Node::Seq(groups)) => age.extend(groups.iter().flat_map(age_entries)),
        _ => {}
    }
    let rules: Vec<&str> = [
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
        "encrypted_regex",
        "unencrypted_comment_regex",
        "encrypted_comment_regex",
    ]
    .into_iter()
    .filter(|k| text_field(meta, k).is_some())
    .collect();
    if rules.len() > 1 {
        return Err(Failure::Invalid(format!(
            "its metadata sets more than one encryption rule ({})",
            rules.join(", ")
        )));
    }
    let regex = |key: &str| {
        let pattern = text_field(meta, key).unwrap_or_default();
        Regex::new(pattern).map_err(|_| Failure::Invalid(format!("its {key} is not a valid regular expression")))
    };
    let rule = match rules.first().copied() {
        None => Rule::UnencryptedSuffix("_unencrypted".into()),
        Some("unencrypted_suffix") => {
            Rule::UnencryptedSuffix(text_field(meta, "unencrypted_suffix").unwrap_or_default().into())
        }
        Some("encrypted_suffix") => {
            Rule::EncryptedSuffix(text_field(meta, "encrypted_suffix").unwrap_or_default().into())
        }
        Some("unencrypted_regex") => Rule::UnencryptedRegex(regex("unencrypted_regex")?),
        Some("encrypted_regex") => Rule::EncryptedRegex(regex("encrypted_regex")?),
        Some(comment_rule) => {
            return Err(Failure::Unsupported(format!("it uses {comment_rule}, which only the sops program applies")));
        }
    };
    let mac_only_encrypted = match meta.get("mac_only_encrypted") {
        Some(Node::Bool(b)) => *b,
        Some(Node::Str(s)) => matches!(s.as_str(), "true" | "True" | "TRUE" | "1"),
        _ => false,
    };
    Ok(Metadata {
        mac: text_field(meta, "mac").unwrap_or_default().to_owned(),
        last_modified: text_field(meta, "lastmodified").unwrap_or_default().to_owned(),
        rule,
        mac_only_encrypted,
        age,
    })
}

fn age_entries(node: &Node) -> Vec<String> {
    match node.get("age") {
        Some(Node::Seq(entries)) => entries.iter().filter_map(|e| text_field(e, "enc")).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The other key kinds the metadata names, for messages.
pub(crate) fn other_key_kinds(meta: &Node) -> Vec<&'static str> {
    let groups: Vec<&Node> = match meta.get("key_groups") {
        Some(Node::Seq(groups)) => groups.iter().collect(),
        _ => Vec::new(),
    };
    OTHER_KEY_KINDS
        .into_iter()
        .filter(|kind| {
            std::iter::once(meta)
                .chain(groups.iter().copied())
                .any(|n| matches!(n.get(kind), Some(Node::Seq(keys)) if !keys.is_empty()))
        })
        .collect()
}

/// The data key, unwrapped from the first age entry one of `identities` opens.
fn data_key(meta: &Metadata, meta_node: &Node, identities: &Identities) -> Result<Vec<u8>, Failure> {
    let others = other_key_kinds(meta_node);
    let others = if others.is_empty() {
        String::new()
    } else {
        format!("; its {} keys need the sops program", others.join(", "))
    };
    if meta.age.is_empty() {
        return Err(Failure::Unsupported(format!("it has no age recipient{others}")));
    }
    if identities.is_empty() {
        return Err(Failure::Unsupported(format!("no age identity was found ({}){others}", identities.searched())));
    }
    for enc in &meta.age {
        let reader = age::armor::ArmoredReader::new(enc.as_bytes());
        let Ok(decryptor) = age::Decryptor::new(reader) else { continue };
        let Ok(mut stream) = decryptor.decrypt(identities.iter()) else { continue };
        let mut key = Vec::new();
        if stream.read_to_end(&mut key).is_err() {
            continue;
        }
        if key.len() != 32 {
            return Err(Failure::Invalid("its data key is not 32 bytes long".into()));
        }
        return Ok(key);
    }
    Err(Failure::Unsupported(format!(
        "none of the age identities found ({}) opens any of its {} age recipient(s){others}",
        identities.searched(),
        meta.age.len()
    )))
}

/// The parts of an `ENC[AES256_GCM,...]` value.
fn decrypt_value(value: &str, key: &[u8], additional: &str) -> Result<(Vec<u8>, String), String> {
    let inner = value
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or("is not a sops-encrypted value (ENC[AES256_GCM,...])")?;
    let (data, rest) = inner.split_once(",iv:").ok_or("has no iv")?;
    let (iv, rest) = rest.split_once(",tag:").ok_or("has no tag")?;
    let (tag, kind) = rest.split_once(",type:").ok_or("has no type")?;
    let decode = |part: &str| STANDARD.decode(part).map_err(|_| "is not valid base64".to_owned());
    let mut sealed = decode(data)?;
    let iv = decode(iv)?;
    let tag = decode(tag)?;
    if tag.len() != 16 {
        return Err("has a tag that is not 16 bytes".into());
    }
    sealed.extend_from_slice(&tag);
    let payload = Payload { msg: &sealed, aad: additional.as_bytes() };
    let opened = match iv.len() {
        32 => AesGcm::<Aes256, U32>::new_from_slice(key)
            .map_err(|_| "cannot be opened with the data key")?
            .decrypt(iv.as_slice().into(), payload),
        12 => Aes256Gcm::new_from_slice(key)
            .map_err(|_| "cannot be opened with the data key")?
            .decrypt(iv.as_slice().into(), payload),
        n => return Err(format!("has an iv of {n} bytes (sops writes 32)")),
    };
    let plain = opened.map_err(|_| "fails AES-GCM authentication (wrong key or tampered)".to_owned())?;
    Ok((plain, kind.to_owned()))
}

/// A decrypted value restored to its type, as sops's cipher does.
fn typed(plain: Vec<u8>, kind: &str) -> Result<Node, String> {
    let text = || String::from_utf8(plain.clone()).map_err(|_| "decrypts to bytes that are not UTF-8".to_owned());
    let bad = |what: &str| format!("decrypts to a value that is not a valid {what}");
    Ok(match kind {
        "str" | "bytes" | "time" => Node::Str(text()?),
        "int" => Node::Int(text()?.parse().map_err(|_| bad("int"))?),
        "float" => Node::Float(parse_go_float(&text()?).ok_or_else(|| bad("float"))?),
        "bool" => Node::Bool(match text()?.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(bad("bool")),
        }),
        other => return Err(format!("has the unknown type {other:?}")),
    })
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// sops's `ToBytes`: what a value adds to the MAC.
fn mac_bytes(node: &Node) -> Vec<u8> {
    match node {
        Node::Str(s) => s.as_bytes().to_vec(),
        Node::Int(i) => i.to_string().into_bytes(),
        Node::Bool(true) => b"True".to_vec(),
        Node::Bool(false) => b"False".to_vec(),
        Node::Float(f) if f.is_nan() => b"NaN".to_vec(),
        Node::Float(f) if f.is_infinite() => (if *f > 0.0 { "+Inf" } else { "-Inf" }).as_bytes().to_vec(),
        // Go's FormatFloat(f, 'f', -1, 64): the shortest digits, never an exponent, as Rust's.
        Node::Float(f) => f.to_string().into_bytes(),
        Node::Null | Node::Seq(_) | Node::Map(_) => Vec::new(),
    }
}

struct Walk<'a> {
    key: &'a [u8],
    meta: &'a Metadata,
    hash: Sha512,
}

impl Walk<'_> {
    /// Decrypts `node` in place, adding its plaintext to the MAC; `path` names it in errors.
    fn node(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), String> {
        match node {
            Node::Map(items) => {
                for (key, value) in items.iter_mut() {
                    path.push(key.clone());
                    self.node(value, path)?;
                    path.pop();
                }
                Ok(())
            }
            Node::Seq(items) => items.iter_mut().try_for_each(|item| self.node(item, path)),
            // sops walks past nulls: they are neither decrypted nor in the MAC.
            Node::Null => Ok(()),
            leaf => {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                let encrypted = self.meta.rule.encrypts(&keys);
                if encrypted {
                    let at = || format!("the value at {}", keys.join("."));
                    let Node::Str(value) = &*leaf else {
                        return Err(format!("{} should be encrypted but is a plain value", at()));
                    };
                    // sops encrypts an empty string as an empty string.
                    if !value.is_empty() {
                        let additional = format!("{}:", keys.join(":"));
                        let (plain, kind) =
                            decrypt_value(value, self.key, &additional).map_err(|e| format!("{} {e}", at()))?;
                        *leaf = typed(plain, &kind).map_err(|e| format!("{} {e}", at()))?;
                    }
                }
                if !self.meta.mac_only_encrypted || encrypted {
                    self.hash.update(mac_bytes(leaf));
                }
                Ok(())
            }
        }
    }
}

/// `lastmodified` as Go's `time.Format(time.RFC3339)` writes it back after parsing: whole
/// seconds, `Z` for UTC. It is the additional data of the MAC.
fn rfc3339(stamp: &str) -> String {
    let (main, zone) = match stamp.find(['Z', 'z', '+']).or_else(|| stamp.rfind('-').filter(|i| *i > 10)) {
        Some(i) => stamp.split_at(i),
        None => (stamp, ""),
    };
    let main = main.split_once('.').map_or(main, |(whole, _)| whole);
    let zone = match zone {
        "z" | "+00:00" | "-00:00" => "Z",
        other => other,
    };
    format!("{main}{zone}")
}

/// Decrypts the documents (the `sops:` entry already taken out of each) with the data key
/// `identities` unwrap from `meta_node`, verifying the MAC.
pub(crate) fn decrypt(documents: &mut [Node], meta_node: &Node, identities: &Identities) -> Result<(), Failure> {
    let meta = metadata(meta_node)?;
    let key = data_key(&meta, meta_node, identities)?;
    let mut walk = Walk { key: &key, meta: &meta, hash: Sha512::new() };
    if meta.mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    for document in documents.iter_mut() {
        walk.node(document, &mut Vec::new()).map_err(Failure::Invalid)?;
    }
    let computed: String = walk.hash.finalize().iter().map(|b| format!("{b:02X}")).collect();
    if meta.mac.is_empty() {
        return Err(Failure::Invalid("it has no MAC (sops: mac:)".into()));
    }
    let (stored, _) = decrypt_value(&meta.mac, &key, &rfc3339(&meta.last_modified))
        .map_err(|e| Failure::Invalid(format!("its MAC {e}")))?;
    if stored != computed.as_bytes() {
        return Err(Failure::Invalid(
            "its MAC does not match its content: the file was changed after sops encrypted it".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastmodified_is_normalised_as_go_formats_it() {
        assert_eq!(rfc3339("2024-05-01T10:20:30Z"), "2024-05-01T10:20:30Z");
        assert_eq!(rfc3339("2024-05-01T10:20:30.123456Z"), "2024-05-01T10:20:30Z");
        assert_eq!(rfc3339("2024-05-01T10:20:30+02:00"), "2024-05-01T10:20:30+02:00");
        assert_eq!(rfc3339("2024-05-01T10:20:30.5-07:00"), "2024-05-01T10:20:30-07:00");
        assert_eq!(rfc3339("2024-05-01T10:20:30+00:00"), "2024-05-01T10:20:30Z");
    }

    #[test]
    fn mac_bytes_are_gos() {
        assert_eq!(mac_bytes(&Node::Float(1.0)), b"1");
        assert_eq!(mac_bytes(&Node::Float(0.1)), b"0.1");
        assert_eq!(mac_bytes(&Node::Float(1e21)), b"1000000000000000000000");
        assert_eq!(mac_bytes(&Node::Bool(false)), b"False");
        assert_eq!(mac_bytes(&Node::Int(-42)), b"-42");
    }

    #[test]
    fn rules_follow_sops() {
        let path = ["data", "password"];
        assert!(Rule::UnencryptedSuffix("_unencrypted".into()).encrypts(&path));
        assert!(!Rule::UnencryptedSuffix("_unencrypted".into()).encrypts(&["a_unencrypted", "x"]));
        assert!(Rule::EncryptedRegex(Regex::new("^(data|stringData)$").unwrap()).encrypts(&path));
        assert!(!Rule::EncryptedRegex(Regex::new("^(data|stringData)$").unwrap()).encrypts(&["metadata", "name"]));
        assert!(!Rule::UnencryptedRegex(Regex::new("^pass").unwrap()).encrypts(&path));
        assert!(Rule::EncryptedSuffix("_secret".into()).encrypts(&["a_secret"]));
    }

    #[test]
    fn a_value_under_a_wrong_path_or_key_fails_authentication() {
        // Sealed here as sops seals: 32-byte nonce, the path as additional data.
        let key = [7u8; 32];
        let iv = [9u8; 32];
        let cipher = AesGcm::<Aes256, U32>::new_from_slice(&key).unwrap();
        let sealed = cipher.encrypt(iv.as_slice().into(), Payload { msg: b"s3cret", aad: b"data:password:" }).unwrap();
        let (data, tag) = sealed.split_at(sealed.len() - 16);
        let value = format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]",
            STANDARD.encode(data),
            STANDARD.encode(iv),
            STANDARD.encode(tag)
        );
        let (plain, kind) = decrypt_value(&value, &key, "data:password:").unwrap();
        assert_eq!((plain.as_slice(), kind.as_str()), (b"s3cret".as_slice(), "str"));
        let moved = decrypt_value(&value, &key, "data:other:").unwrap_err();
        assert!(moved.contains("authentication"), "{moved}");
        assert!(decrypt_value(&value, &[8u8; 32], "data:password:").is_err());
    }
}
