//! Workloads as they run: Deployments, DaemonSets, StatefulSets, CronJobs (batch/v1 and
//! v1beta1), Jobs and Flux v1 HelmReleases, with their containers and rollout status.
//!
//! One full list per workload kind the server serves (per namespace when restricted).

use flux_core::kinds::api_group;
use flux_core::manifest::{Manifest, workloads};
use flux_core::workload::{pod_containers, rollout_status};
use flux_core::{Container, KubeObject, Result, Workload, WorkloadStatus};
use kube::api::DynamicObject;
use serde_json::Value;

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::list::Detail;

/// Workload kinds by apiVersion: of one group, the first served version of a kind wins. Of
/// HelmReleases, both Flux v1 groups are listed, and a `flux.weave.works/v1beta1` one named like
/// a `helm.fluxcd.io/v1` one in its namespace is left out, as Flux v1 did.
const WORKLOAD_KINDS: [(&str, &str); 8] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("batch/v1beta1", "CronJob"),
    ("helm.fluxcd.io/v1", "HelmRelease"),
    ("flux.weave.works/v1beta1", "HelmRelease"),
];

impl Shared {
    pub(crate) async fn workloads(&self, namespace: Option<&str>) -> Result<Vec<Workload>> {
        let mut kinds: Vec<Kind> = Vec::new();
        for (api_version, kind) in WORKLOAD_KINDS {
            if kinds.iter().any(|k| k.resource.kind == kind && k.resource.group == api_group(api_version)) {
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
        // Stable: of two HelmReleases with one id, the helm.fluxcd.io one (listed first) stays.
        workloads.sort_by(|a, b| a.id.cmp(&b.id));
        workloads.dedup_by(|later, first| later.id == first.id);
        Ok(workloads)
    }

    /// Every object of `kind` (in `namespace`, or all), as [`KubeObject`]s.
    async fn list_objects(&self, kind: &Kind, namespace: Option<&str>) -> Result<Vec<KubeObject>> {
        let items: Vec<DynamicObject> = self.list(kind, namespace, None, Detail::Full).await?;
        items
            .into_iter()
            .map(|item| {
                let mut body = serde_json::to_value(&item)
                    .map_err(|e| flux_core::Error::other_with("cannot read a listed object", e))?;
                // Lists leave out each item's apiVersion and kind.
                if let Some(map) = body.as_object_mut() {
                    map.insert("apiVersion".into(), Value::String(kind.resource.api_version.clone()));
                    map.insert("kind".into(), Value::String(kind.resource.kind.clone()));
                }
                KubeObject::from_value(body, None)
            })
            .collect()
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

/// A Flux v1 HelmRelease's images, read from `spec.values` as the manifests in git are
/// (flux-core's conventions and mapping annotations), named as Flux v1 named them.
fn helm_release_containers(object: &KubeObject) -> Vec<Container> {
    let manifest = Manifest { object: object.clone(), file: object.id().to_string(), document: 0 };
    match workloads(std::slice::from_ref(&manifest)) {
        Ok(found) => found
            .into_iter()
            .flat_map(|w| w.containers)
            .map(|c| Container { name: c.name, image: c.image.to_string(), init: false })
            .collect(),
        Err(errors) => {
            tracing::warn!(workload = %object.id(), %errors, "HelmRelease images unreadable");
            Vec::new()
        }
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
        assert_eq!(images, [("cache", "ghcr.io/team/redis:7"), ("chart-image", "nginx:1.25")]);
        assert_eq!(w.status, WorkloadStatus::Ready);
    }

    #[test]
    fn flux_v1_older_helm_releases_are_read_the_same_way() {
        let hr = KubeObject::from_value(
            json!({"apiVersion": "flux.weave.works/v1beta1", "kind": "HelmRelease", "metadata": {"name": "r", "namespace": "n"},
                "spec": {"values": {"image": {"repository": "quay.io/datawire/ambassador", "tag": "0.70.1"}}}}),
            None,
        )
        .expect("valid object");
        let w = workload(&hr);
        let images: Vec<_> = w.containers.iter().map(|c| (c.name.as_str(), c.image.as_str())).collect();
        assert_eq!(images, [("chart-image", "quay.io/datawire/ambassador:0.70.1")]);
        assert_eq!(w.status, WorkloadStatus::Unknown);
    }
}
