//! Conformance suites: one per port, each an async function that takes any implementation and
//! checks its whole contract, panicking with a message on the first violation.
//!
//! Every adapter runs its port's suite against its real backend (a git server, a registry, an API
//! server), and [`crate::memory`] runs them all. An embedder's own adapter should too:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_source_keeps_the_contract() {
//!     let (a, b) = two_handles_on_a_fresh_repository().await;
//!     flux_core::testkit::source::run(&a, &b).await;
//! }
//! ```

pub mod cluster;
pub mod policy_store;
pub mod registry;
pub mod source;

use std::sync::atomic::{AtomicU64, Ordering};

/// A name no earlier run against the same backend used: suites can be run again and again
/// against one long-lived server.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = jiff::Timestamp::now().as_millisecond();
    format!("{prefix}-{t:x}-{n}")
}

/// Asserts that `result` is an error of the kind `matches` accepts, naming `what` otherwise.
#[track_caller]
pub(crate) fn assert_err<T: std::fmt::Debug>(
    result: crate::Result<T>,
    matches: impl Fn(&crate::Error) -> bool,
    what: &str,
) -> crate::Error {
    match result {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) if matches(&e) => e,
        Err(e) => panic!("{what}: wrong error kind: {e:?}"),
    }
}
