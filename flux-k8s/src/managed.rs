//! Listing the objects of one sync identity, and telling which drifted, from metadata alone.
//!
//! How it works and what it costs: see the crate documentation.

use std::collections::{BTreeMap, HashMap};

use flux_core::cluster::{CHECKSUM_ANNOTATION, GC_MARK_LABEL};
use flux_core::{ManagedObject, ObjectRef, ResourceId, Result, SyncIdentity};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::api::PartialObjectMeta;
use serde_json::Value;

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::list::Detail;

/// One listed object, before duplicates across API groups are removed.
struct Listed {
    kind: Kind,
    metadata: ObjectMeta,
}

impl Shared {
    pub(crate) async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        let selector = format!("{GC_MARK_LABEL}={identity}");
        let listed = self.list_metadata_everywhere(&selector).await?;
        // Some kinds are served by two groups (Ingress in extensions and networking.k8s.io,
        // Events in core and events.k8s.io): the same object, by uid, is reported once, in the
        // apiVersion our field manager applied it with.
        let mut by_uid: HashMap<String, (Listed, bool)> = HashMap::new();
        let mut managed = Vec::new();
        for item in listed {
            let ours = applied_api_version(&item.metadata, &self.options.field_manager)
                .is_some_and(|v| v == item.kind.resource.api_version);
            match item.metadata.uid.clone() {
                Some(uid) => {
                    let keep = by_uid.get(&uid).is_none_or(|(_, kept_is_ours)| ours && !kept_is_ours);
                    if keep {
                        by_uid.insert(uid, (item, ours));
                    }
                }
                None => managed.push(item),
            }
        }
        managed.extend(by_uid.into_values().map(|(item, _)| item));
        let mut managed: Vec<ManagedObject> = managed.into_iter().map(|item| self.managed_object(item)).collect();
        managed.sort_by(|a, b| a.reference.id.cmp(&b.reference.id));
        Ok(managed)
    }

    fn managed_object(&self, item: Listed) -> ManagedObject {
        let metadata = &item.metadata;
        let name = metadata.name.clone().unwrap_or_default();
        let id = ResourceId::new(metadata.namespace.as_deref(), &item.kind.resource.kind, &name);
        let annotations: BTreeMap<String, String> = metadata.annotations.clone().unwrap_or_default();
        let group = &item.kind.resource.group;
        self.seen.set(group, &id, metadata.resource_version.clone());
        let ours = self.applied.get(group, &id);
        let drifted = if ours.is_some() && ours == metadata.resource_version {
            false
        } else {
            drifted(metadata, &self.options.field_manager)
        };
        ManagedObject {
            reference: ObjectRef { api_version: item.kind.resource.api_version.clone(), id },
            checksum: annotations.get(CHECKSUM_ANNOTATION).cloned(),
            drifted,
            annotations,
        }
    }

    /// Every object matching `selector` of every kind the handle may list.
    async fn list_metadata_everywhere(&self, selector: &str) -> Result<Vec<Listed>> {
        let kinds = self.kinds.listable().await?;
        let mut scopes: Vec<(Kind, Option<String>)> = Vec::new();
        for kind in kinds {
            match (&self.options.namespaces, kind.namespaced) {
                (Some(namespaces), true) => scopes.extend(namespaces.iter().map(|ns| (kind.clone(), Some(ns.clone())))),
                _ => scopes.push((kind, None)),
            }
        }
        let requests: Vec<_> = scopes.into_iter().map(|(kind, ns)| self.list_kind(kind, ns, selector)).collect();
        let lists: Vec<Vec<Listed>> =
            stream::iter(requests).buffer_unordered(self.options.concurrency).try_collect().await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn list_kind(&self, kind: Kind, namespace: Option<String>, selector: &str) -> Result<Vec<Listed>> {
        let items: Vec<PartialObjectMeta> =
            self.list(&kind, namespace.as_deref(), Some(selector), Detail::Metadata).await?;
        Ok(items.into_iter().map(|o| Listed { kind: kind.clone(), metadata: o.metadata }).collect())
    }
}

/// The apiVersion of our field manager's `Apply` entry.
fn applied_api_version<'a>(metadata: &'a ObjectMeta, manager: &str) -> Option<&'a str> {
    entries(metadata).find(|e| is_ours(e, manager)).and_then(|e| e.api_version.as_deref())
}

fn entries(metadata: &ObjectMeta) -> impl Iterator<Item = &ManagedFieldsEntry> {
    metadata.managed_fields.iter().flatten()
}

fn is_ours(entry: &ManagedFieldsEntry, manager: &str) -> bool {
    entry.manager.as_deref() == Some(manager) && entry.operation.as_deref() == Some("Apply")
}

/// The drift rule of the module documentation, on `managedFields` alone.
pub(crate) fn drifted(metadata: &ObjectMeta, manager: &str) -> bool {
    let Some(ours) = entries(metadata).find(|e| is_ours(e, manager)).and_then(|e| e.time.as_ref()) else {
        return true;
    };
    entries(metadata).filter(|e| !is_ours(e, manager)).any(|e| {
        let since = e.time.as_ref().is_some_and(|t| t.0 >= ours.0);
        let writes = matches!(e.operation.as_deref(), Some("Update" | "Apply"));
        since && writes && e.fields_v1.as_ref().is_some_and(|f| touches_desired_state(&f.0))
    })
}

/// Whether a `fieldsV1` set holds anything but `status` and Kubernetes' own metadata.
fn touches_desired_state(fields: &Value) -> bool {
    let Some(fields) = fields.as_object() else { return false };
    fields.iter().any(|(key, value)| match key.as_str() {
        "f:status" => false,
        "f:metadata" => value.as_object().is_some_and(|m| {
            m.iter().any(|(field, keys)| match field.as_str() {
                "f:labels" | "f:annotations" => {
                    keys.as_object().is_some_and(|k| k.keys().any(|k| k != "." && !is_kubernetes_key(k)))
                }
                _ => false,
            })
        }),
        _ => true,
    })
}

/// `f:deployment.kubernetes.io/revision` and the like.
fn is_kubernetes_key(field: &str) -> bool {
    let key = field.strip_prefix("f:").unwrap_or(field);
    key.split_once('/').is_some_and(|(prefix, _)| {
        prefix == "kubernetes.io"
            || prefix.ends_with(".kubernetes.io")
            || prefix == "k8s.io"
            || prefix.ends_with(".k8s.io")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};
    use serde_json::json;

    fn entry(manager: &str, operation: &str, second: i64, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            time: Some(Time(jiff::Timestamp::from_second(1_700_000_000 + second).expect("valid time"))),
            fields_v1: Some(FieldsV1(fields)),
            api_version: Some("v1".into()),
            ..Default::default()
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta { managed_fields: Some(entries), ..Default::default() }
    }

    #[test]
    fn another_writer_after_our_apply_is_drift() {
        let ours = entry("flux", "Apply", 10, json!({"f:data": {"f:a": {}}}));
        let edit = entry("kubectl-edit", "Update", 12, json!({"f:data": {"f:a": {}}}));
        assert!(drifted(&meta(vec![ours.clone(), edit]), "flux"));
        let earlier = entry("kubectl-edit", "Update", 5, json!({"f:data": {"f:b": {}}}));
        assert!(!drifted(&meta(vec![ours.clone(), earlier]), "flux"));
        let same_second = entry("other", "Apply", 10, json!({"f:spec": {}}));
        assert!(drifted(&meta(vec![ours, same_second]), "flux"));
    }

    #[test]
    fn status_and_kubernetes_bookkeeping_are_not_drift() {
        let ours = entry("flux", "Apply", 10, json!({"f:spec": {}}));
        let status = entry("kube-controller-manager", "Update", 20, json!({"f:status": {"f:replicas": {}}}));
        let revision = entry(
            "kube-controller-manager",
            "Update",
            20,
            json!({"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}}),
        );
        assert!(!drifted(&meta(vec![ours.clone(), status, revision]), "flux"));
        let label = entry("kubectl-label", "Update", 20, json!({"f:metadata": {"f:labels": {"f:team": {}}}}));
        assert!(drifted(&meta(vec![ours, label]), "flux"));
    }

    #[test]
    fn an_object_we_never_applied_is_drifted() {
        let theirs = entry("kubectl", "Apply", 10, json!({"f:data": {}}));
        assert!(drifted(&meta(vec![theirs]), "flux"));
    }
}
