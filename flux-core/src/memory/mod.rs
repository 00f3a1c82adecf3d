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

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, taking the data even if another thread panicked holding it: every critical
/// section here leaves the data consistent before anything can panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
