//! In-memory implementations of every port, for embedders' tests and for dry runs.
//!
//! Each one keeps the whole contract of its trait (the testkit suites run against them) and
//! counts the calls that would be requests to a real backend, so tests can assert "no writes".

mod cluster;
mod policy_store;
mod registry;
mod source;

#[cfg(test)]
mod conformance_tests;

pub use cluster::{MemoryCluster, WriteCounts};
pub use policy_store::MemoryPolicyStore;
pub use registry::{MemoryImage, MemoryRegistry};
pub use source::{MemoryCommit, MemorySource};

use crate::memory_lock as lock;
