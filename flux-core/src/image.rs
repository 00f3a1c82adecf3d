//! Container image references, by the Docker reference grammar.
//!
//! `[registry[:port]/]path[:tag][@algorithm:digest]`. A reference keeps exactly what the user
//! wrote, so printing it gives the same text back; [`ImageRef::repository`] gives the normalised
//! name a registry is asked about (`nginx` is `docker.io/library/nginx`).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Location};

/// Docker Hub's canonical host.
pub const DOCKER_HUB: &str = "docker.io";

/// An image repository, normalised: a registry host (with port) and a path.
///
/// `nginx`, `library/nginx`, `docker.io/library/nginx` and `index.docker.io/library/nginx` are
/// the same repository.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRepo {
    registry: String,
    path: String,
}

impl ImageRepo {
    /// The registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A reference to `tag` in this repository, in canonical form.
    pub fn tagged(&self, tag: &str) -> ImageRef {
        ImageRef {
            domain: Some(self.registry.clone()),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }
}

impl fmt::Display for ImageRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

impl fmt::Debug for ImageRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRepo({self})")
    }
}

impl FromStr for ImageRepo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let r: ImageRef = s.parse()?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(Error::invalid(Location::file(s), "an image repository has no tag or digest"));
        }
        Ok(r.repository())
    }
}

impl TryFrom<String> for ImageRepo {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<ImageRepo> for String {
    fn from(r: ImageRepo) -> String {
        r.to_string()
    }
}

/// A reference to an image as the user wrote it: optional registry, path, optional tag and digest.
///
/// Equality is on the text as written; compare [`ImageRef::canonical`] to ask whether two
/// references name the same image.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// The normalised repository this reference points into.
    pub fn repository(&self) -> ImageRepo {
        let registry = match self.domain.as_deref() {
            None | Some("index.docker.io") | Some("registry-1.docker.io") => DOCKER_HUB.to_owned(),
            Some(d) => d.to_owned(),
        };
        let path = if registry == DOCKER_HUB && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        };
        ImageRepo { registry, path }
    }

    /// The same reference with `tag` instead of its tag, and no digest; the registry and path stay
    /// as the user wrote them.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef { tag: Some(tag.to_owned()), digest: None, ..self.clone() }
    }

    /// The fully qualified form: `docker.io/library/nginx:1.25`. A reference without tag or digest
    /// gets no implicit `latest`.
    pub fn canonical(&self) -> String {
        let mut s = self.repository().to_string();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_deref());
        s
    }

    /// Whether two references name the same repository, tag and digest once normalised.
    pub fn same_image(&self, other: &ImageRef) -> bool {
        self.canonical() == other.canonical()
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        s.push(':');
        s.push_str(tag);
    }
    if let Some(digest) = digest {
        s.push('@');
        s.push_str(digest);
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if let Some(d) = &self.domain {
            s.push_str(d);
            s.push('/');
        }
        s.push_str(&self.path);
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_deref());
        f.write_str(&s)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl TryFrom<String> for ImageRef {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.to_string()
    }
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid(Location::file(s), format!("invalid image reference: {why}"));
        if s.is_empty() || s.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(bad("malformed digest"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let (name, tag) = rest.split_at(last_slash + i);
                (name, Some(&tag[1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(bad("malformed tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                if !is_domain(first) {
                    return Err(bad("malformed registry host"));
                }
                (Some(first.to_owned()), path)
            }
            _ => (None, name),
        };
        if path.is_empty() || !path.split('/').all(is_path_component) {
            return Err(bad("path components must be lower-case letters, digits and separators (. _ __ -)"));
        }
        let image = ImageRef { domain, path: path.to_owned(), tag: tag.map(str::to_owned), digest };
        // Docker's limit is on the normalised name (`docker.io/library/…`), so that every
        // repository of a valid reference is itself valid.
        let repository = image.repository();
        if repository.registry.len() + 1 + repository.path.len() > 255 {
            return Err(bad("repository name longer than 255 characters (with its registry, normalised)"));
        }
        Ok(image)
    }
}

fn is_path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_tag(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_domain(d: &str) -> bool {
    // An IPv6 host is bracketed; a port is the part after the last ':' outside the brackets.
    let host_end = if d.starts_with('[') { d.find(']').map_or(d.len(), |i| i + 1) } else { 0 };
    let (host, port) = match d[host_end..].rfind(':') {
        Some(i) => (&d[..host_end + i], Some(&d[host_end + i + 1..])),
        None => (d, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if let Some(v6) = host.strip_prefix('[') {
        v6.strip_suffix(']').is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'))
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    port_ok && host_ok
}

fn is_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else { return false };
    let alg_ok = alg.split(['+', '.', '_', '-']).all(|p| {
        p.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && p.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_what_was_written() {
        for s in [
            "nginx",
            "nginx:1.25",
            "library/nginx:1.25-alpine",
            "docker.io/library/nginx",
            "index.docker.io/team/app:v1",
            "127.0.0.1:5000/team/app:1.0.0",
            "localhost/app",
            "localhost:5000/a/b/c:t",
            "[::1]:5000/app:1",
            "[::1]/app",
            "ghcr.io/fluxcd/flux:1.21.0",
            "quay.io/team/app__x.y-z:t_1.2-3",
        ] {
            assert_eq!(s.parse::<ImageRef>().unwrap().to_string(), s);
        }
        let with_digest = format!("ghcr.io/team/app:1.0@{DIGEST}");
        let r: ImageRef = with_digest.parse().unwrap();
        assert_eq!(r.to_string(), with_digest);
        assert_eq!(r.digest(), Some(DIGEST));
        assert_eq!(r.tag(), Some("1.0"));
    }

    #[test]
    fn normalises_docker_hub() {
        for s in ["nginx:1", "library/nginx:1", "docker.io/nginx:1", "index.docker.io/library/nginx:1"] {
            let r: ImageRef = s.parse().unwrap();
            assert_eq!(r.repository().to_string(), "docker.io/library/nginx", "{s}");
            assert_eq!(r.canonical(), "docker.io/library/nginx:1");
        }
        let r: ImageRef = "team/app".parse().unwrap();
        assert_eq!(r.repository().to_string(), "docker.io/team/app");
        assert!(r.same_image(&"docker.io/team/app".parse().unwrap()));
    }

    #[test]
    fn port_is_not_a_tag() {
        let r: ImageRef = "registry.local:5000/app".parse().unwrap();
        assert_eq!(r.domain(), Some("registry.local:5000"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.repository().registry(), "registry.local:5000");
    }

    #[test]
    fn with_tag_keeps_the_users_form() {
        let r: ImageRef = format!("nginx:1.0@{DIGEST}").parse().unwrap();
        assert_eq!(r.with_tag("1.1").to_string(), "nginx:1.1");
    }

    #[test]
    fn rejects_malformed_references() {
        for s in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "nginx@sha256:abc",
            "a//b",
            "-a/b",
            "a/b-",
            "nginx:1.0:2",
            "my host/app",
            "a.b:port/app",
            "app:tag with space",
        ] {
            let err = s.parse::<ImageRef>();
            assert!(err.is_err(), "{s:?} parsed as {err:?}");
        }
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(long_tag.parse::<ImageRef>().is_err());
    }

    #[test]
    fn repo_parses_and_serialises_as_text() {
        let repo: ImageRepo = "nginx".parse().unwrap();
        assert_eq!(serde_json::to_string(&repo).unwrap(), "\"docker.io/library/nginx\"");
        assert!("nginx:1".parse::<ImageRepo>().is_err());
        assert_eq!(repo.tagged("1.2").to_string(), "docker.io/library/nginx:1.2");
    }
}
