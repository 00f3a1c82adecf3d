//! What the engines know of Kubernetes' built-in kinds without asking a cluster.

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Objects have a namespace.
    Namespaced,
    /// Objects are cluster-wide.
    Cluster,
}

/// Built-in kinds: (API group, kind, scope).
const BUILTIN: &[(&str, &str, Scope)] = {
    use Scope::{Cluster as C, Namespaced as N};
    &[
        ("", "Namespace", C),
        ("", "Node", C),
        ("", "PersistentVolume", C),
        ("", "ConfigMap", N),
        ("", "Secret", N),
        ("", "Service", N),
        ("", "ServiceAccount", N),
        ("", "Pod", N),
        ("", "PersistentVolumeClaim", N),
        ("", "Endpoints", N),
        ("", "LimitRange", N),
        ("", "ResourceQuota", N),
        ("", "ReplicationController", N),
        ("", "Event", N),
        ("apps", "Deployment", N),
        ("apps", "DaemonSet", N),
        ("apps", "StatefulSet", N),
        ("apps", "ReplicaSet", N),
        ("batch", "Job", N),
        ("batch", "CronJob", N),
        ("autoscaling", "HorizontalPodAutoscaler", N),
        ("policy", "PodDisruptionBudget", N),
        ("networking.k8s.io", "Ingress", N),
        ("networking.k8s.io", "NetworkPolicy", N),
        ("networking.k8s.io", "IngressClass", C),
        ("coordination.k8s.io", "Lease", N),
        ("discovery.k8s.io", "EndpointSlice", N),
        ("rbac.authorization.k8s.io", "Role", N),
        ("rbac.authorization.k8s.io", "RoleBinding", N),
        ("rbac.authorization.k8s.io", "ClusterRole", C),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", C),
        ("storage.k8s.io", "StorageClass", C),
        ("storage.k8s.io", "CSIDriver", C),
        ("scheduling.k8s.io", "PriorityClass", C),
        ("node.k8s.io", "RuntimeClass", C),
        ("apiextensions.k8s.io", "CustomResourceDefinition", C),
        ("apiregistration.k8s.io", "APIService", C),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", C),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", C),
        ("certificates.k8s.io", "CertificateSigningRequest", C),
    ]
};

/// The API groups whose `HelmRelease` objects are workloads, their images in `spec.values`:
/// Flux v1's Helm Operator (`helm.fluxcd.io`, and the older `flux.weave.works` that Flux v1
/// still listed), and Flux v2's helm-controller.
pub const HELM_RELEASE_GROUPS: [&str; 3] = ["helm.fluxcd.io", "flux.weave.works", "helm.toolkit.fluxcd.io"];

/// The scope of a built-in kind (`group` as in `apiVersion`, empty for core), or `None` for a
/// kind that is not built in (a custom resource: ask its CustomResourceDefinition).
pub fn builtin_scope(group: &str, kind: &str) -> Option<Scope> {
    BUILTIN.iter().find(|(g, k, _)| *g == group && k.eq_ignore_ascii_case(kind)).map(|(_, _, s)| *s)
}

/// The API group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(builtin_scope("", "namespace"), Some(Scope::Cluster));
        assert_eq!(builtin_scope("apps", "Deployment"), Some(Scope::Namespaced));
        assert_eq!(builtin_scope("", "Deployment"), None);
        assert_eq!(builtin_scope("example.com", "Widget"), None);
        assert_eq!(api_group("rbac.authorization.k8s.io/v1"), "rbac.authorization.k8s.io");
        assert_eq!(api_group("v1"), "");
    }
}
