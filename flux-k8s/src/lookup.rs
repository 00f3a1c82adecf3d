//! Whether objects exist, with their labels and annotations, from metadata alone: what the sync
//! engine asks before applying an object it does not manage yet (is it marked
//! `fluxcd.io/ignore` in the cluster?).
//!
//! Cost: references are grouped by kind and namespace. A group of [`LIST_FROM`] or more is one
//! metadata-only list of that kind in that namespace (paged; cluster-wide for cluster-scoped
//! kinds); a smaller group, or one whose list is forbidden, is one metadata-only GET per
//! object. Requests run [`concurrency`](crate::ClusterOptions::concurrency) at a time. A cold
//! sync of 1,000 objects of 10 kinds in 5 namespaces is therefore at most 50 lists.

use std::collections::BTreeMap;

use flux_core::{Lookup, ObjectMetadata, ObjectRef, Result};
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{GetParams, PartialObjectMeta};

use crate::cluster::Shared;
use crate::discovery::Kind;
use crate::errors::Refusal;
use crate::list::Detail;
use crate::request::fetch;
use crate::target::collection;

/// From how many objects of one kind in one namespace a list is cheaper than GETs.
const LIST_FROM: usize = 4;

/// The objects of one kind in one namespace (by index in the caller's references).
struct Group {
    kind: Kind,
    namespace: Option<String>,
    members: Vec<(usize, String)>,
}

impl Shared {
    pub(crate) async fn metadata(&self, references: &[ObjectRef]) -> Result<Vec<Lookup>> {
        let mut out = vec![Lookup::Absent; references.len()];
        let mut kinds: BTreeMap<(String, String), Option<Kind>> = BTreeMap::new();
        let mut groups: BTreeMap<(String, String, Option<String>), Group> = BTreeMap::new();
        for (index, reference) in references.iter().enumerate() {
            let id = &reference.id;
            let kind_key = (reference.api_version.clone(), id.kind().to_owned());
            let kind = match kinds.get(&kind_key) {
                Some(kind) => kind.clone(),
                None => {
                    let kind = self.kinds.resolve(&reference.api_version, id.kind()).await?;
                    kinds.insert(kind_key.clone(), kind.clone());
                    kind
                }
            };
            // A kind the server does not serve, or a scope it cannot have: no such object.
            let Some(kind) = kind.filter(|k| k.namespaced == id.namespace().is_some()) else { continue };
            let namespace = id.namespace().map(str::to_owned);
            groups
                .entry((kind_key.0, kind_key.1, namespace.clone()))
                .or_insert_with(|| Group { kind, namespace, members: Vec::new() })
                .members
                .push((index, id.name().to_owned()));
        }
        let mut calls = Vec::new();
        for group in groups.into_values() {
            if group.members.len() >= LIST_FROM && group.kind.listable {
                calls.push(self.look_up_group(group).boxed());
            } else {
                for (index, name) in group.members {
                    let (kind, namespace) = (group.kind.clone(), group.namespace.clone());
                    calls.push(
                        async move { Ok(vec![(index, self.look_up_one(&kind, namespace.as_deref(), &name).await?)]) }
                            .boxed(),
                    );
                }
            }
        }
        let found: Vec<Vec<(usize, Lookup)>> =
            stream::iter(calls).buffer_unordered(self.options.concurrency).try_collect().await?;
        for (index, lookup) in found.into_iter().flatten() {
            out[index] = lookup;
        }
        Ok(out)
    }

    /// One list for the whole group; one GET after the other when the list is refused.
    async fn look_up_group(&self, group: Group) -> Result<Vec<(usize, Lookup)>> {
        let listed: std::result::Result<Vec<PartialObjectMeta>, Refusal> =
            self.list_or_refusal(&group.kind, group.namespace.as_deref(), None, Detail::Metadata).await;
        match listed {
            Ok(items) => {
                let mut by_name: BTreeMap<String, ObjectMeta> =
                    items.into_iter().filter_map(|o| Some((o.metadata.name.clone()?, o.metadata))).collect();
                Ok(group
                    .members
                    .into_iter()
                    .map(|(index, name)| (index, by_name.remove(&name).map_or(Lookup::Absent, found)))
                    .collect())
            }
            Err(Refusal::Fatal(e)) => Err(e),
            Err(refusal) => {
                // Not listable here: each object may still be readable.
                tracing::debug!(kind = %group.kind.resource.kind, code = refusal.code(), "list refused: one GET each");
                let mut out = Vec::with_capacity(group.members.len());
                for (index, name) in group.members {
                    out.push((index, self.look_up_one(&group.kind, group.namespace.as_deref(), &name).await?));
                }
                Ok(out)
            }
        }
    }

    /// One metadata-only GET.
    async fn look_up_one(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Result<Lookup> {
        let request = collection(kind, namespace)
            .get_metadata(name, &GetParams::default())
            .map_err(|e| flux_core::Error::other_with("cannot build a metadata get request", e))?;
        Ok(match fetch::<PartialObjectMeta>(&self.client, request).await {
            Ok(object) => found(object.metadata),
            Err(r) if r.code() == 404 => Lookup::Absent,
            Err(Refusal::Fatal(e)) => return Err(e),
            Err(r) => Lookup::Failed { reason: r.reason() },
        })
    }
}

fn found(metadata: ObjectMeta) -> Lookup {
    Lookup::Found(ObjectMetadata {
        labels: metadata.labels.unwrap_or_default(),
        annotations: metadata.annotations.unwrap_or_default(),
    })
}
