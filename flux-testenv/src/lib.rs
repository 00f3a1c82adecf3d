//! Real servers for tests, started on free loopback ports in a temporary directory and stopped
//! (by PID) when their handle drops, so tests never share state.
//!
//! Each server module (`git`, `registry`, `kube`) finds its binaries with [`find_program`] and
//! goes through [`require`] when one is missing: outside CI the test is skipped with a loud
//! message; in CI (`CI` or `FLUX_TEST_REQUIRE_SERVERS` set) it fails.

#[cfg(feature = "browser")]
pub mod browser;
pub mod faults;
pub mod git;
pub mod kube;
mod process;
#[cfg(feature = "registry")]
mod registry;

#[cfg(feature = "browser")]
pub use browser::{Browser, Chromedriver, Element};
pub use kube::{KubeApiServer, kube_assets};
pub use process::{ServerProcess, free_port, wait_until};
#[cfg(feature = "registry")]
pub use registry::{CountingProxy, Fault, PushError, Pusher, TestRegistry};

use std::path::PathBuf;

/// Whether missing servers must fail the tests rather than skip them.
pub fn servers_required() -> bool {
    ["FLUX_TEST_REQUIRE_SERVERS", "CI"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false"))
}

/// Passes `found` through; when it is `None`, fails in CI and otherwise prints a loud skip
/// message naming `what` and returns `None`, for the test to return early.
#[track_caller]
pub fn require<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        let hint = "run scripts/install-test-deps, or scripts/test-all";
        if servers_required() {
            panic!("{what} is not available, and CI requires every test server ({hint})");
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED at {}: {what} is not available ({hint}) !!!!!!!!\n",
            std::panic::Location::caller()
        );
    }
    found
}

/// The path of an executable named `name` on `PATH`, or in `/usr/sbin` and `/sbin` (where
/// Debian puts `sshd`), if any.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
