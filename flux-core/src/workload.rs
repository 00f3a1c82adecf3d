//! Reading workloads out of objects: where their pod spec is, their containers, their rollout.
//!
//! Shared by every [`Cluster`](crate::Cluster) implementation and the manifest reader, so that a
//! workload means the same thing in git and in the cluster.

use serde_json::Value;

use crate::cluster::{Container, WorkloadStatus};
use crate::object::KubeObject;

/// Kinds whose pod template is at `spec.template.spec`.
const TEMPLATED_KINDS: [&str; 5] = ["deployment", "daemonset", "statefulset", "replicaset", "job"];

/// The JSON path of a workload kind's pod spec, or `None` if the kind is not a pod workload.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    let kind = kind.to_ascii_lowercase();
    if TEMPLATED_KINDS.contains(&kind.as_str()) {
        Some(&["spec", "template", "spec"])
    } else if kind == "cronjob" {
        Some(&["spec", "jobTemplate", "spec", "template", "spec"])
    } else if kind == "pod" {
        Some(&["spec"])
    } else {
        None
    }
}

/// The containers of a pod workload, init containers first, in spec order; `None` when the
/// object is not a pod workload. Containers without a name or image are skipped.
pub fn pod_containers(object: &KubeObject) -> Option<Vec<Container>> {
    Some(pod_container_entries(object)?.into_iter().map(|e| e.container).collect())
}

/// The pod spec fields that hold containers, init containers first.
pub const CONTAINER_FIELDS: [&str; 2] = ["initContainers", "containers"];

/// One container of a pod spec and where it is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainerEntry {
    /// `initContainers` or `containers`.
    pub field: &'static str,
    /// The index in that list.
    pub index: usize,
    /// The container.
    pub container: Container,
}

/// Like [`pod_containers`], with each container's place in the pod spec.
pub fn pod_container_entries(object: &KubeObject) -> Option<Vec<PodContainerEntry>> {
    let spec = object.pointer(pod_spec_path(object.kind())?)?;
    let list = |field: &'static str| {
        spec.get(field).and_then(Value::as_array).into_iter().flatten().enumerate().filter_map(move |(index, c)| {
            let container = Container {
                name: c.get("name")?.as_str()?.to_owned(),
                image: c.get("image")?.as_str()?.to_owned(),
                init: field == "initContainers",
            };
            Some(PodContainerEntry { field, index, container })
        })
    };
    Some(CONTAINER_FIELDS.into_iter().flat_map(list).collect())
}

/// How a workload's rollout stands, judged from its `status` as the Kubernetes controllers write
/// it (the same rules `kubectl rollout status` uses for Deployments, DaemonSets and StatefulSets).
pub fn rollout_status(object: &KubeObject) -> WorkloadStatus {
    let Some(status) = object.pointer(&["status"]).filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) else {
        return WorkloadStatus::Unknown;
    };
    let int = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let generation = object.pointer(&["metadata", "generation"]).and_then(Value::as_i64).unwrap_or(0);
    if int(status, "observedGeneration") < generation {
        return WorkloadStatus::RollingOut;
    }
    let failed = status.get("conditions").and_then(Value::as_array).into_iter().flatten().find(|c| {
        let is = |k: &str, v: &str| c.get(k).and_then(Value::as_str) == Some(v);
        (is("type", "Progressing") && is("reason", "ProgressDeadlineExceeded"))
            || (is("type", "Failed") && is("status", "True"))
    });
    if let Some(c) = failed {
        let message = c.get("message").and_then(Value::as_str).unwrap_or("rollout failed").to_owned();
        return WorkloadStatus::Failed { message };
    }
    let spec_replicas = object.pointer(&["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1);
    let ready = match object.kind().to_ascii_lowercase().as_str() {
        "deployment" => {
            int(status, "updatedReplicas") >= spec_replicas
                && int(status, "replicas") <= int(status, "updatedReplicas")
                && int(status, "availableReplicas") >= int(status, "updatedReplicas")
        }
        "daemonset" => {
            let desired = int(status, "desiredNumberScheduled");
            int(status, "updatedNumberScheduled") >= desired && int(status, "numberAvailable") >= desired
        }
        "statefulset" => {
            int(status, "readyReplicas") >= spec_replicas
                && status.get("currentRevision") == status.get("updateRevision")
        }
        _ => true,
    };
    if ready { WorkloadStatus::Ready } else { WorkloadStatus::RollingOut }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> KubeObject {
        KubeObject::from_value(v, None).unwrap()
    }

    #[test]
    fn containers_of_each_kind() {
        let pod = json!({"initContainers": [{"name": "init", "image": "busybox"}], "containers": [{"name": "app", "image": "nginx:1"}]});
        let cases = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": pod}}}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod}),
        ];
        for case in cases {
            let cs = pod_containers(&obj(case)).unwrap();
            assert_eq!(
                cs.iter().map(|c| (c.name.as_str(), c.image.as_str(), c.init)).collect::<Vec<_>>(),
                [("init", "busybox", true), ("app", "nginx:1", false)]
            );
        }
        assert!(
            pod_containers(&obj(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}))).is_none()
        );
    }

    #[test]
    fn deployment_rollout_states() {
        let base = |status: Value| {
            obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "generation": 2}, "spec": {"replicas": 2}, "status": status}))
        };
        assert_eq!(rollout_status(&base(json!({}))), WorkloadStatus::Unknown);
        assert_eq!(rollout_status(&base(json!({"observedGeneration": 1}))), WorkloadStatus::RollingOut);
        assert_eq!(
            rollout_status(&base(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2})
            )),
            WorkloadStatus::Ready
        );
        assert_eq!(
            rollout_status(&base(
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2})
            )),
            WorkloadStatus::RollingOut
        );
        let failed = base(
            json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}]}),
        );
        assert_eq!(rollout_status(&failed), WorkloadStatus::Failed { message: "timed out".into() });
    }
}
