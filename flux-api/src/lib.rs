//! The wire types of fluxd's HTTP API: the routes, the query parameters and the JSON bodies that
//! [flux-daemon] serves and `fluxctl` sends.
//!
//! This crate has no I/O and depends on nothing but `serde`, so a client needs nothing else of the
//! workspace. Each version of the API is a module of its own ([`v1`]); a new version is a new
//! module, and an old one keeps its shapes. The types mirror the engines' reports in flux-core
//! field for field (same JSON), but they are this crate's own: the wire does not change when the
//! engines' types do, and the server converts.
//!
//! [flux-daemon]: https://example.invalid/flux-rs

pub mod v1;
