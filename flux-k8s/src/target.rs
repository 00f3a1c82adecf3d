//! Where an object lives in the API: its kind's resource, namespace and name.

use flux_core::{ResourceId, Result};
use kube::api::DynamicObject;
use kube::core::Request;

use crate::discovery::{Kind, Kinds};

/// An object's address in the API.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) kind: Kind,
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

impl Target {
    /// Finds the kind of `id` in `api_version`. `Ok(Err(reason))` when the server cannot hold
    /// such an object (unknown kind, namespace where none belongs or missing where one does).
    pub(crate) async fn of(kinds: &Kinds, api_version: &str, id: &ResourceId) -> Result<Result<Target, String>> {
        let Some(kind) = kinds.resolve(api_version, id.kind()).await? else {
            return Ok(Err(format!("the API server serves no kind {:?} in {api_version}", id.kind())));
        };
        let namespace = match (kind.namespaced, id.namespace()) {
            (true, None) => {
                return Ok(Err(format!("{} is namespaced: metadata.namespace is required", kind.resource.kind)));
            }
            (false, Some(ns)) => {
                return Ok(Err(format!(
                    "{} is cluster-scoped but the object names namespace {ns:?}",
                    kind.resource.kind
                )));
            }
            (_, ns) => ns.map(str::to_owned),
        };
        Ok(Ok(Target { kind, namespace, name: id.name().to_owned() }))
    }

    /// The request builder of the object's collection.
    pub(crate) fn request(&self) -> Request {
        collection(&self.kind, self.namespace.as_deref())
    }

    /// The object's id, with the kind as the server spells it.
    pub(crate) fn id(&self) -> ResourceId {
        ResourceId::new(self.namespace.as_deref(), &self.kind.resource.kind, &self.name)
    }
}

/// The request builder of a kind's collection, in one namespace or across all.
pub(crate) fn collection(kind: &Kind, namespace: Option<&str>) -> Request {
    Request::new(<DynamicObject as kube::Resource>::url_path(&kind.resource, namespace))
}
