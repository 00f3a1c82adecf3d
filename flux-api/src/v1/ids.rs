//! Identifiers on the wire: workload ids, image references, tag filters, revisions. Each is a
//! string in JSON; parsing here is only what a client needs to show them (the server validates).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What stands in the namespace place of a cluster-scoped object's id.
pub const CLUSTER_SCOPE: &str = "<cluster>";

/// A Kubernetes object's id in Flux v1's form: `namespace:kind/name`, or `<cluster>:kind/name`
/// for a cluster-scoped one. The kind is kept lower-cased, as Flux v1 displays it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceId {
    namespace: Option<String>,
    kind: String,
    name: String,
}

impl ResourceId {
    /// The namespace, `None` for a cluster-scoped object.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The kind, lower-cased.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.namespace.as_deref().unwrap_or(CLUSTER_SCOPE), self.kind, self.name)
    }
}

/// Why a string is not an id, an image reference or a tag filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for ParseError {}

impl FromStr for ResourceId {
    type Err = ParseError;

    /// Parses `namespace:kind/name` or `<cluster>:kind/name`. Names may hold `:` (RBAC names do).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError { text: s.to_owned(), reason };
        let expected = "not a workload id; expected namespace:kind/name or <cluster>:kind/name";
        let (namespace, rest) = s.split_once(':').ok_or_else(|| bad(expected))?;
        let (kind, name) = rest.split_once('/').ok_or_else(|| bad(expected))?;
        if namespace.is_empty() || kind.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad(expected));
        }
        Ok(ResourceId {
            namespace: (namespace != CLUSTER_SCOPE).then(|| namespace.to_owned()),
            kind: kind.to_ascii_lowercase(),
            name: name.to_owned(),
        })
    }
}

impl TryFrom<String> for ResourceId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<ResourceId> for String {
    fn from(id: ResourceId) -> String {
        id.to_string()
    }
}

/// An image reference as written: optional registry host, path, optional tag and digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// The registry host as written, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The path as written (`nginx`, `team/app`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.domain {
            write!(f, "{d}/")?;
        }
        f.write_str(&self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ParseError;

    /// Splits `[host/]path[:tag][@digest]`; the server checks each part.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError { text: s.to_owned(), reason };
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(bad("not an image reference: empty or with spaces"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (Some(first.to_owned()), path),
            _ => (None, name),
        };
        if path.is_empty() || tag.as_deref() == Some("") || digest.as_deref() == Some("") {
            return Err(bad("not an image reference: empty path, tag or digest"));
        }
        Ok(ImageRef { domain, path: path.to_owned(), tag, digest })
    }
}

impl TryFrom<String> for ImageRef {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.to_string()
    }
}

/// A tag filter as written in `fluxcd.io/tag.<container>`: `glob:1.*`, `semver:~1.0`,
/// `regex:^v\d+$`, `alphabetical:asc`, `numerical:desc`. The server checks the pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagFilter(pub String);

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A revision of a unit's source: a git commit id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub String);

impl Revision {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first seven characters, as git shows a commit.
    pub fn short(&self) -> &str {
        self.0.get(..7).unwrap_or(&self.0)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image repository, normalised: `docker.io/library/nginx`, `127.0.0.1:5000/team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageRepo(pub String);

impl fmt::Display for ImageRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_in_flux_v1_form() {
        let id: ResourceId = "default:Deployment/web".parse().expect("id");
        assert_eq!(id.to_string(), "default:deployment/web");
        let cluster: ResourceId = "<cluster>:clusterrole/system:view".parse().expect("id");
        assert_eq!(cluster.namespace(), None);
        assert_eq!(cluster.name(), "system:view");
        assert!("web".parse::<ResourceId>().is_err());
        assert!("default:deployment/a/b".parse::<ResourceId>().is_err());
    }

    #[test]
    fn image_references_split_host_port_tag_and_digest() {
        let r: ImageRef = "127.0.0.1:5000/team/app:1.2@sha256:abc".parse().expect("ref");
        assert_eq!(r.domain(), Some("127.0.0.1:5000"));
        assert_eq!(r.path(), "team/app");
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.digest(), Some("sha256:abc"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:1.2@sha256:abc");
        let plain: ImageRef = "nginx".parse().expect("ref");
        assert_eq!((plain.domain(), plain.tag()), (None, None));
        assert!("nginx:".parse::<ImageRef>().is_err());
    }
}
