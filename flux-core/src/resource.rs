//! Resource identifiers in Flux v1's form, `namespace:kind/name`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Location};

/// What stands in the namespace place of a cluster-scoped object's id.
pub const CLUSTER_SCOPE: &str = "<cluster>";

/// Identifies one Kubernetes object: `namespace:kind/name`, or `<cluster>:kind/name` for a
/// cluster-scoped one.
///
/// The kind is kept lower-cased, so ids compare case-insensitively by kind
/// (`default:Deployment/web` equals `default:deployment/web`) and display as Flux v1 did.
/// Namespace and name are compared exactly, as Kubernetes does.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId {
    namespace: Option<String>,
    kind: String,
    name: String,
}

impl ResourceId {
    /// An id for a namespaced object.
    pub fn namespaced(namespace: impl Into<String>, kind: &str, name: impl Into<String>) -> Self {
        ResourceId { namespace: Some(namespace.into()), kind: kind.to_ascii_lowercase(), name: name.into() }
    }

    /// An id for a cluster-scoped object.
    pub fn cluster_scoped(kind: &str, name: impl Into<String>) -> Self {
        ResourceId { namespace: None, kind: kind.to_ascii_lowercase(), name: name.into() }
    }

    /// An id from an optional namespace (`None`: cluster-scoped).
    pub fn new(namespace: Option<&str>, kind: &str, name: &str) -> Self {
        match namespace {
            Some(ns) => Self::namespaced(ns, kind, name),
            None => Self::cluster_scoped(kind, name),
        }
    }

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

    /// Whether the kind is `kind`, compared case-insensitively.
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.namespace.as_deref().unwrap_or(CLUSTER_SCOPE), self.kind, self.name)
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({self})")
    }
}

impl FromStr for ResourceId {
    type Err = Error;

    /// Parses `namespace:kind/name` or `<cluster>:kind/name`. Names may hold `:` (RBAC names do).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::invalid(
                Location::file(s),
                format!("invalid resource id ({why}); expected namespace:kind/name or <cluster>:kind/name"),
            )
        };
        let (namespace, rest) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let (kind, name) = rest.split_once('/').ok_or_else(|| bad("no '/'"))?;
        if namespace.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(bad("empty part"));
        }
        if name.contains('/') {
            return Err(bad("name holds '/'"));
        }
        let namespace = (namespace != CLUSTER_SCOPE).then_some(namespace);
        Ok(ResourceId::new(namespace, kind, name))
    }
}

impl serde::Serialize for ResourceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_flux_v1() {
        assert_eq!(ResourceId::namespaced("default", "Deployment", "web").to_string(), "default:deployment/web");
        assert_eq!(ResourceId::cluster_scoped("Namespace", "team").to_string(), "<cluster>:namespace/team");
    }

    #[test]
    fn kind_compares_case_insensitively() {
        let a: ResourceId = "default:Deployment/web".parse().unwrap();
        assert_eq!(a, ResourceId::namespaced("default", "deployment", "web"));
        assert!(a.is_kind("DEPLOYMENT"));
    }

    #[test]
    fn parses_cluster_scope_and_colons_in_names() {
        let id: ResourceId = "<cluster>:clusterrole/system:controller:x".parse().unwrap();
        assert_eq!(id.namespace(), None);
        assert_eq!(id.name(), "system:controller:x");
        assert_eq!(id.to_string(), "<cluster>:clusterrole/system:controller:x");
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in ["web", "default/web", "default:deployment", ":deployment/web", "default:/web", "a:b/c/d"] {
            let err = bad.parse::<ResourceId>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = ResourceId::namespaced("ns", "CronJob", "tick");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"ns:cronjob/tick\"");
        assert_eq!(serde_json::from_str::<ResourceId>(&json).unwrap(), id);
    }
}
