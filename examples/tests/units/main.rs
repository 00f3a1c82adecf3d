//! Unit tests of fluxd's and fluxctl's self-contained modules: flags, secrets, tables.

// Each program uses all of these; this test binary only what its tests need.
#![allow(dead_code, unreachable_pub)]

#[path = "../../common/api.rs"]
mod api_types;
#[path = "../../fluxd/auth.rs"]
mod auth;
#[path = "../../fluxd/flags.rs"]
mod flags;
#[path = "../../fluxctl/table.rs"]
mod table;
