//! Workloads as they run: Deployments, DaemonSets, StatefulSets, CronJobs (batch/v1 and
//! v1beta1), Jobs and Flux v1 HelmReleases, with their containers and rollout status.
//!
//! One full list per workload kind the server serves (per namespace when restricted).

use flux_core::workload::{pod_containers, rollout_status};
use flux_core::{Container, KubeObject, Result, Workload, WorkloadStatus};
use serde_json::Value;

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::errors::Refusal;
use crate::target::collection;

/// Workload kinds by apiVersion, first served version of a kind wins.
const WORKLOAD_KINDS: [(&str, &str); 7] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("batch/v1beta1", "CronJob"),
    ("helm.fluxcd.io/v1", "HelmRelease"),
];

impl Shared {
    pub(crate) async fn workloads(&self, namespace: Option<&str>) -> Result<Vec<Workload>> {
        let mut kinds: Vec<Kind> = Vec::new();
        for (api_version, kind) in WORKLOAD_KINDS {
            if kinds.iter().any(|k| k.resource.kind == kind) {
                continue;
            }
            if let Some(found) = self.kinds.lookup(api_version, kind).await? {
                kinds.push(found);
            }
        }
        let namespaces: Vec<Option<String>> = match (namespace, &self.options.namespaces) {
            (Some(ns), _) => vec![Some(ns.to_owned())],
            (None, Some(allowed)) => allowed.iter().cloned().map(Some).collect(),
            (None, None) => vec![None],
        };
        let mut workloads = Vec::new();
        for kind in &kinds {
            for ns in &namespaces {
                for object in self.list_objects(kind, ns.as_deref()).await? {
                    workloads.push(workload(&object));
                }
            }
        }
        workloads.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workloads)
    }

    /// Every object of `kind` (in `namespace`, or all); none when forbidden.
    pub(crate) async fn list_objects(&self, kind: &Kind, namespace: Option<&str>) -> Result<Vec<KubeObject>> {
        let mut objects = Vec::new();
        let mut params = kube::api::ListParams::default().limit(500);
        loop {
            let request = collection(kind, namespace)
                .list(&params)
                .map_err(|e| flux_core::Error::other_with("cannot build a list request", e))?;
            let page: kube::core::ObjectList<kube::api::DynamicObject> =
                match crate::request::fetch(&self.client, request).await {
                    Ok(page) => page,
                    Err(refusal) => {
                        return match refusal {
                            Refusal::Object(status) if matches!(status.code, 403 | 404) => Ok(objects),
                            refusal => Err(refusal.into_error(&format!("listing {}", kind.resource.kind))),
                        };
                    }
                };
            for item in page.items {
                let mut body = serde_json::to_value(&item)
                    .map_err(|e| flux_core::Error::other_with("cannot read a listed object", e))?;
                // Lists leave out each item's apiVersion and kind.
                if let Some(map) = body.as_object_mut() {
                    map.insert("apiVersion".into(), Value::String(kind.resource.api_version.clone()));
                    map.insert("kind".into(), Value::String(kind.resource.kind.clone()));
                }
                objects.push(KubeObject::from_value(body, None)?);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(objects),
            }
        }
    }
}

fn workload(object: &KubeObject) -> Workload {
    let (containers, status) = if object.kind() == "HelmRelease" {
        (helm_release_containers(object), helm_release_status(object))
    } else {
        (pod_containers(object).unwrap_or_default(), rollout_status(object))
    };
    Workload { id: object.id().clone(), containers, status, annotations: object.annotations() }
}

/// A Flux v1 HelmRelease's images, as the helm-operator read them from `spec.values`: `image`
/// at the top (container `chart-image`) and `<name>.image` one level down (container `<name>`),
/// each either `repo:tag` or `{repository, tag}` (with an optional `registry`).
fn helm_release_containers(object: &KubeObject) -> Vec<Container> {
    let Some(values) = object.pointer(&["spec", "values"]).and_then(Value::as_object) else { return Vec::new() };
    let mut containers = Vec::new();
    if let Some(image) = values.get("image").and_then(image_of) {
        containers.push(Container { name: "chart-image".into(), image, init: false });
    }
    for (name, value) in values {
        if let Some(image) = value.get("image").and_then(image_of) {
            containers.push(Container { name: name.clone(), image, init: false });
        }
    }
    containers
}

fn image_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => {
            let repository = m.get("repository").and_then(Value::as_str)?;
            let repository = match m.get("registry").and_then(Value::as_str) {
                Some(registry) => format!("{registry}/{repository}"),
                None => repository.to_owned(),
            };
            Some(match m.get("tag").and_then(Value::as_str) {
                Some(tag) => format!("{repository}:{tag}"),
                None => repository,
            })
        }
        _ => None,
    }
}

/// The helm-operator's `status.releaseStatus` / `status.phase`.
fn helm_release_status(object: &KubeObject) -> WorkloadStatus {
    let text = |path: &[&str]| object.pointer(path).and_then(Value::as_str);
    match (text(&["status", "releaseStatus"]), text(&["status", "phase"])) {
        (_, Some(phase)) if phase.contains("Failed") => {
            WorkloadStatus::Failed { message: format!("HelmRelease phase {phase}") }
        }
        (Some("deployed"), Some("Succeeded" | "Deployed")) | (Some("deployed"), None) => WorkloadStatus::Ready,
        (None, None) => WorkloadStatus::Unknown,
        _ => WorkloadStatus::RollingOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helm_release_images_come_from_values() {
        let hr = KubeObject::from_value(
            json!({"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": {"name": "r", "namespace": "n"},
                "spec": {"values": {"image": "nginx:1.25", "cache": {"image": {"registry": "ghcr.io", "repository": "team/redis", "tag": "7"}}, "replicas": 2}},
                "status": {"releaseStatus": "deployed", "phase": "Succeeded"}}),
            None,
        )
        .expect("valid object");
        let w = workload(&hr);
        let images: Vec<_> = w.containers.iter().map(|c| (c.name.as_str(), c.image.as_str())).collect();
        assert_eq!(images, [("chart-image", "nginx:1.25"), ("cache", "ghcr.io/team/redis:7")]);
        assert_eq!(w.status, WorkloadStatus::Ready);
    }
}
