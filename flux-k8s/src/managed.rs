//! Listing marked objects (of one sync unit, or all), and telling which drifted, from metadata
//! alone.
//!
//! How it works and what it costs: see the crate documentation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flux_core::cluster::{CHECKSUM_ANNOTATION, GC_MARK_LABEL, SYNC_UNIT_LABEL};
use flux_core::{ManagedObject, ObjectRef, ResourceId, Result, SyncIdentity};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::api::PartialObjectMeta;
use serde_json::Value;

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::errors::Refusal;
use crate::inventory::{GroupKind, Listing, Record};
use crate::list::Detail;

/// One listed object, before duplicates across API groups are removed: made as its page
/// arrives, so `managedFields` are not kept.
struct Listed {
    kind: Kind,
    uid: Option<String>,
    /// Whether our field manager applied it in this apiVersion.
    ours: bool,
    object: ManagedObject,
}

/// The objects of one listing, with the kinds listed and those the handle was refused.
struct Lists {
    items: Vec<Listed>,
    listed: BTreeSet<GroupKind>,
    refused: BTreeSet<GroupKind>,
}

fn group_kind(kind: &Kind) -> GroupKind {
    GroupKind::new(&kind.resource.group, &kind.resource.kind)
}

impl Shared {
    /// Objects labelled with the unit `identity` that carry a GC mark: of the kinds the unit's
    /// inventory records when it has one, else of every kind (see [`crate::inventory`]).
    pub(crate) async fn managed(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        let record = self.read_inventory(identity).await.unwrap_or_else(|e| {
            tracing::warn!(unit = %identity, error = %e, "cannot read the unit's inventory: listing every kind");
            Record::Absent
        });
        let started = self.inventories.tick();
        let kinds = match &record {
            Record::Kinds { kinds, .. } => Some(kinds),
            Record::Absent => None,
        };
        let lists = self.list_metadata(&unit_selector(identity), kinds).await?;
        let listing = listing_of(&lists, kinds.is_none(), started);
        self.listed(identity, listing).await;
        Ok(self.marked_objects(lists.items))
    }

    /// What the unit's objects of `kinds` (`None`: every kind) are, for its inventory.
    pub(crate) async fn list_unit_kinds(
        &self,
        identity: &SyncIdentity,
        kinds: Option<&BTreeSet<GroupKind>>,
        started: u64,
    ) -> Result<Listing> {
        let lists = self.list_metadata(&unit_selector(identity), kinds).await?;
        Ok(listing_of(&lists, kinds.is_none(), started))
    }

    /// Every object carrying a GC mark (the label exists), whatever its unit.
    pub(crate) async fn marked(&self) -> Result<Vec<ManagedObject>> {
        Ok(self.marked_objects(self.list_metadata(GC_MARK_LABEL, None).await?.items))
    }

    /// Marked objects without a unit label (Flux v1's), for `identity`: none, without a request
    /// beyond the record's, once its inventory records that a listing of every kind found none.
    pub(crate) async fn legacy_marked(&self, identity: &SyncIdentity) -> Result<Vec<ManagedObject>> {
        if self.no_legacy_left(identity).await {
            return Ok(Vec::new());
        }
        let lists = self.list_metadata(&format!("{GC_MARK_LABEL},!{SYNC_UNIT_LABEL}"), None).await?;
        if lists.items.is_empty() && lists.refused.is_empty() {
            self.record_no_legacy(identity).await;
        }
        Ok(self.marked_objects(lists.items))
    }

    fn marked_objects(&self, listed: Vec<Listed>) -> Vec<ManagedObject> {
        // Some kinds are served by two groups (Ingress in extensions and networking.k8s.io,
        // Events in core and events.k8s.io): the same object, by uid, is reported once, in the
        // apiVersion our field manager applied it with.
        let mut by_uid: HashMap<String, (Listed, bool)> = HashMap::new();
        let mut managed = Vec::new();
        for mut item in listed {
            match item.uid.take() {
                Some(uid) => {
                    let ours = item.ours;
                    let keep = by_uid.get(&uid).is_none_or(|(_, kept_is_ours)| ours && !kept_is_ours);
                    if keep {
                        by_uid.insert(uid, (item, ours));
                    }
                }
                None => managed.push(item),
            }
        }
        managed.extend(by_uid.into_values().map(|(item, _)| item));
        let mut managed: Vec<ManagedObject> = managed.into_iter().map(|item| item.object).collect();
        managed.sort_by(|a, b| a.reference.id.cmp(&b.reference.id));
        managed
    }

    /// What the sync engine needs of one listed object, its drift judged now.
    fn listed_object(&self, kind: &Kind, metadata: ObjectMeta) -> Listed {
        let ours =
            applied_api_version(&metadata, &self.options.field_manager).is_some_and(|v| v == kind.resource.api_version);
        let name = metadata.name.clone().unwrap_or_default();
        let id = ResourceId::new(metadata.namespace.as_deref(), &kind.resource.kind, &name);
        let group = &kind.resource.group;
        self.seen.set(group, &id, metadata.resource_version.clone());
        let applied = self.applied.get(group, &id);
        let drifted = if applied.is_some() && applied == metadata.resource_version {
            false
        } else {
            drifted(&metadata, &self.options.field_manager)
        };
        let annotations: BTreeMap<String, String> = metadata.annotations.unwrap_or_default();
        let object = ManagedObject {
            reference: ObjectRef { api_version: kind.resource.api_version.clone(), id },
            checksum: annotations.get(CHECKSUM_ANNOTATION).cloned(),
            drifted,
            annotations,
            labels: metadata.labels.unwrap_or_default(),
        };
        Listed { kind: kind.clone(), uid: metadata.uid, ours, object }
    }

    /// Every object matching `selector` of `kinds` (`None`: every kind the handle may list).
    async fn list_metadata(&self, selector: &str, kinds: Option<&BTreeSet<GroupKind>>) -> Result<Lists> {
        let (kinds, listed) = match kinds {
            None => {
                let kinds = self.kinds.listable().await?;
                let listed = kinds.iter().map(group_kind).collect();
                (kinds, listed)
            }
            Some(wanted) => {
                let mut found = Vec::new();
                for gk in wanted {
                    // A kind no longer served has no objects left: listed, and empty.
                    found.extend(self.kinds.listed_kind(&gk.group, &gk.kind).await?);
                }
                (found, wanted.clone())
            }
        };
        let mut lists = Lists { items: Vec::new(), listed, refused: BTreeSet::new() };
        let mut scopes: Vec<(Kind, Option<String>)> = Vec::new();
        for kind in kinds {
            match (&self.options.namespaces, kind.namespaced) {
                (Some(namespaces), true) => scopes.extend(namespaces.iter().map(|ns| (kind.clone(), Some(ns.clone())))),
                _ => scopes.push((kind, None)),
            }
        }
        let requests: Vec<_> = scopes.into_iter().map(|(kind, ns)| self.list_kind(kind, ns, selector)).collect();
        let results: Vec<(Kind, Option<Vec<Listed>>)> =
            stream::iter(requests).buffer_unordered(self.options.concurrency).try_collect().await?;
        for (kind, items) in results {
            match items {
                Some(items) => lists.items.extend(items),
                None => {
                    lists.refused.insert(group_kind(&kind));
                }
            }
        }
        Ok(lists)
    }

    /// One kind's objects in `namespace` (or all); `None` when the handle may not list them.
    async fn list_kind(
        &self,
        kind: Kind,
        namespace: Option<String>,
        selector: &str,
    ) -> Result<(Kind, Option<Vec<Listed>>)> {
        let convert = |o: PartialObjectMeta| self.listed_object(&kind, o.metadata);
        let listed: Vec<Listed> =
            match self.list_converted(&kind, namespace.as_deref(), Some(selector), Detail::Metadata, convert).await {
                Ok(items) => items,
                Err(Refusal::Object(status)) if status.code == 403 => {
                    tracing::debug!(kind = %kind.resource.kind, ?namespace, "not listable here: skipped");
                    return Ok((kind, None));
                }
                // The kind went away since discovery: no objects.
                Err(Refusal::Object(status)) if matches!(status.code, 404 | 405) => Vec::new(),
                Err(refusal) => return Err(refusal.into_error(&format!("listing {}", kind.resource.kind))),
            };
        Ok((kind, Some(listed)))
    }
}

fn unit_selector(identity: &SyncIdentity) -> String {
    format!("{SYNC_UNIT_LABEL}={identity},{GC_MARK_LABEL}")
}

/// What `lists` tell the inventory: kinds with objects, or refused, may hold objects.
fn listing_of(lists: &Lists, full: bool, started: u64) -> Listing {
    let mut found: BTreeSet<GroupKind> = lists.items.iter().map(|i| group_kind(&i.kind)).collect();
    found.extend(lists.refused.iter().cloned());
    Listing { started, full, listed: lists.listed.clone(), found }
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
