//! Objects as they are, `status` included, for judging their health
//! ([`Cluster::live`](flux_core::Cluster::live)).
//!
//! Cost: references are grouped by kind and namespace, as for metadata look-ups. A group of
//! [`LIST_FROM`] or more is one list of that kind in that namespace (paged); a smaller group,
//! or one whose list is refused, is one GET per object. Secrets are only looked up by metadata
//! (their data is never read): they have no status. Requests run
//! [`concurrency`](crate::ClusterOptions::concurrency) at a time.

use std::collections::BTreeMap;

use flux_core::{KubeObject, LiveObject, Lookup, ObjectRef, Result};
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::errors::Refusal;
use crate::list::Detail;
use crate::target::Target;

/// From how many objects of one kind in one namespace a list is cheaper than GETs.
const LIST_FROM: usize = 4;

/// The objects of one kind in one namespace (by index in the caller's references).
struct Group {
    api_version: String,
    kind: Kind,
    namespace: Option<String>,
    members: Vec<(usize, String)>,
}

/// A listed or fetched body as an object: list items carry no `apiVersion` and `kind`.
fn object_of(mut body: Value, api_version: &str, kind: &str) -> LiveObject {
    if let Some(map) = body.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    match KubeObject::from_value(body, None) {
        Ok(object) => LiveObject::Found(flux_core::cluster::without_secret_data(object)),
        Err(e) => LiveObject::Failed { reason: format!("the server's answer is not an object: {e}") },
    }
}

impl Shared {
    pub(crate) async fn live(&self, references: &[ObjectRef]) -> Result<Vec<LiveObject>> {
        let mut out = vec![LiveObject::Absent; references.len()];
        // Secrets: metadata only.
        let (secrets, others): (Vec<usize>, Vec<usize>) = (0..references.len())
            .partition(|&i| references[i].id.is_kind("Secret") && references[i].api_version == "v1");
        if !secrets.is_empty() {
            let asked: Vec<ObjectRef> = secrets.iter().map(|&i| references[i].clone()).collect();
            for (&index, lookup) in secrets.iter().zip(self.metadata(&asked).await?) {
                let r = &references[index];
                out[index] = match lookup {
                    Lookup::Absent => LiveObject::Absent,
                    Lookup::Failed { reason } => LiveObject::Failed { reason },
                    Lookup::Found(meta) => object_of(
                        json!({"metadata": {"name": r.id.name(), "namespace": r.id.namespace(),
                            "labels": meta.labels, "annotations": meta.annotations}}),
                        &r.api_version,
                        r.id.kind(),
                    ),
                };
            }
        }
        let mut groups: BTreeMap<(String, String, Option<String>), Group> = BTreeMap::new();
        for index in others {
            let reference = &references[index];
            let target = match Target::of(&self.kinds, &reference.api_version, &reference.id).await? {
                Ok(target) => target,
                Err(_) => continue, // the server cannot hold such an object: absent
            };
            groups
                .entry((reference.api_version.clone(), reference.id.kind().to_owned(), target.namespace.clone()))
                .or_insert_with(|| Group {
                    api_version: reference.api_version.clone(),
                    kind: target.kind.clone(),
                    namespace: target.namespace.clone(),
                    members: Vec::new(),
                })
                .members
                .push((index, target.name));
        }
        let mut calls = Vec::new();
        for group in groups.into_values() {
            if group.members.len() >= LIST_FROM && group.kind.listable {
                calls.push(self.live_group(group).boxed());
            } else {
                for (index, name) in group.members {
                    let target = Target { kind: group.kind.clone(), namespace: group.namespace.clone(), name };
                    let api_version = group.api_version.clone();
                    calls.push(async move { Ok(vec![(index, self.live_one(&api_version, &target).await?)]) }.boxed());
                }
            }
        }
        let found: Vec<Vec<(usize, LiveObject)>> =
            stream::iter(calls).buffer_unordered(self.options.concurrency).try_collect().await?;
        for (index, live) in found.into_iter().flatten() {
            out[index] = live;
        }
        Ok(out)
    }

    /// One list for the whole group; one GET after the other when the list is refused.
    async fn live_group(&self, group: Group) -> Result<Vec<(usize, LiveObject)>> {
        let listed: std::result::Result<Vec<Value>, Refusal> =
            self.list_or_refusal(&group.kind, group.namespace.as_deref(), None, Detail::Full).await;
        let kind = group.kind.resource.kind.clone();
        match listed {
            Ok(items) => {
                let mut by_name: BTreeMap<String, Value> = items
                    .into_iter()
                    .filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?.to_owned(), o)))
                    .collect();
                Ok(group
                    .members
                    .into_iter()
                    .map(|(index, name)| {
                        let live = by_name
                            .remove(&name)
                            .map_or(LiveObject::Absent, |body| object_of(body, &group.api_version, &kind));
                        (index, live)
                    })
                    .collect())
            }
            Err(Refusal::Fatal(e)) => Err(e),
            Err(refusal) => {
                tracing::debug!(%kind, code = refusal.code(), "list refused: one GET each");
                let mut out = Vec::with_capacity(group.members.len());
                for (index, name) in group.members {
                    let target = Target { kind: group.kind.clone(), namespace: group.namespace.clone(), name };
                    out.push((index, self.live_one(&group.api_version, &target).await?));
                }
                Ok(out)
            }
        }
    }

    /// One GET.
    async fn live_one(&self, api_version: &str, target: &Target) -> Result<LiveObject> {
        Ok(match self.fetch(target).await {
            Ok(Some(body)) => object_of(body, api_version, &target.kind.resource.kind),
            Ok(None) => LiveObject::Absent,
            Err(Refusal::Fatal(e)) => return Err(e),
            Err(r) => LiveObject::Failed { reason: r.reason() },
        })
    }
}
