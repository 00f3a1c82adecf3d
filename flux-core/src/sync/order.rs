//! The order objects are applied in, so that each finds what it depends on.
//!
//! Namespaces first (everything namespaced needs one), then CustomResourceDefinitions (so custom
//! resources can be applied), service accounts, cluster and namespaced RBAC, `*Class` kinds,
//! volumes and claims, config and secrets, services, workloads, everything else, and admission
//! webhooks last (a webhook applied early could refuse the objects it is meant to check).
//! Deletion runs in the reverse order.

use crate::kinds::api_group;

/// An apply stage; lower stages are applied first.
pub(crate) fn stage(api_version: &str, kind: &str) -> u8 {
    let group = api_group(api_version);
    let kind = kind.to_ascii_lowercase();
    match (group, kind.as_str()) {
        ("", "namespace") => 0,
        ("apiextensions.k8s.io", "customresourcedefinition") => 1,
        ("", "serviceaccount") => 2,
        ("rbac.authorization.k8s.io", "clusterrole" | "clusterrolebinding") => 3,
        ("rbac.authorization.k8s.io", "role" | "rolebinding") => 4,
        (_, k) if k.ends_with("class") => 5,
        ("", "persistentvolume") => 6,
        ("", "persistentvolumeclaim") => 7,
        ("", "configmap" | "secret" | "limitrange" | "resourcequota") => 8,
        ("", "service") => 9,
        ("apps", "deployment" | "daemonset" | "statefulset" | "replicaset")
        | ("batch", "job" | "cronjob")
        | ("", "pod" | "replicationcontroller") => 10,
        ("admissionregistration.k8s.io", "validatingwebhookconfiguration" | "mutatingwebhookconfiguration") => 12,
        _ => 11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first() {
        let order = [
            ("v1", "Namespace"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("v1", "ServiceAccount"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("storage.k8s.io/v1", "StorageClass"),
            ("v1", "PersistentVolume"),
            ("v1", "PersistentVolumeClaim"),
            ("v1", "ConfigMap"),
            ("v1", "Service"),
            ("apps/v1", "Deployment"),
            ("example.com/v1", "Widget"),
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
        ];
        let stages: Vec<u8> = order.iter().map(|(v, k)| stage(v, k)).collect();
        assert!(stages.windows(2).all(|w| w[0] < w[1]), "{stages:?}");
        assert_eq!(stage("v1", "Secret"), stage("v1", "ConfigMap"));
        assert_eq!(stage("batch/v1beta1", "CronJob"), stage("apps/v1", "Deployment"));
        assert_eq!(stage("networking.k8s.io/v1", "IngressClass"), stage("storage.k8s.io/v1", "StorageClass"));
    }
}
