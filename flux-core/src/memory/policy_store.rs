use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::error::{Error, Result};
use crate::policy::{ChangeCause, Policies, PolicyDiff, PolicyStore, PolicyUpdate};
use crate::resource::ResourceId;

/// A [`PolicyStore`] kept in memory, for a fixed set of workloads. Clones share the store.
#[derive(Debug, Clone, Default)]
pub struct MemoryPolicyStore {
    policies: Arc<Mutex<BTreeMap<ResourceId, Policies>>>,
}

impl MemoryPolicyStore {
    /// A store that knows `workloads`, each with default policies.
    pub fn new(workloads: impl IntoIterator<Item = ResourceId>) -> Self {
        Self::with_policies(workloads.into_iter().map(|w| (w, Policies::default())))
    }

    /// A store that knows these workloads with these policies.
    pub fn with_policies(policies: impl IntoIterator<Item = (ResourceId, Policies)>) -> Self {
        MemoryPolicyStore { policies: Arc::new(Mutex::new(policies.into_iter().collect())) }
    }
}

#[async_trait]
impl PolicyStore for MemoryPolicyStore {
    async fn policies(&self) -> Result<BTreeMap<ResourceId, Policies>> {
        Ok(lock(&self.policies).clone())
    }

    async fn update(&self, updates: &[PolicyUpdate], _cause: &ChangeCause) -> Result<Vec<PolicyDiff>> {
        let mut store = lock(&self.policies);
        let mut after: BTreeMap<ResourceId, Policies> = BTreeMap::new();
        let mut order = Vec::new();
        for update in updates {
            let current = match after.get(&update.workload) {
                Some(p) => p.clone(),
                None => {
                    order.push(update.workload.clone());
                    store
                        .get(&update.workload)
                        .cloned()
                        .ok_or_else(|| Error::not_found(format!("workload {}", update.workload)))?
                }
            };
            let next = update.changes.iter().fold(current, Policies::with);
            after.insert(update.workload.clone(), next);
        }
        let mut diffs = Vec::new();
        for workload in order {
            let (Some(before), Some(new)) = (store.get(&workload), after.remove(&workload)) else { continue };
            if *before != new {
                diffs.push(PolicyDiff { workload: workload.clone(), before: before.clone(), after: new.clone() });
                store.insert(workload, new);
            }
        }
        Ok(diffs)
    }
}
