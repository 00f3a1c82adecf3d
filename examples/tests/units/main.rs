//! Unit tests of fluxd's and fluxctl's self-contained modules: flags, the config file, tables.

// Each program uses all of these; this test binary only what its tests need.
#![allow(dead_code, unreachable_pub)]

#[path = "../../fluxctl/completion.rs"]
mod completion;
#[path = "../../fluxd/config.rs"]
mod config;
#[path = "../../fluxctl/fingerprint.rs"]
mod fingerprint;
#[path = "../../fluxd/flags.rs"]
mod flags;
#[path = "../../fluxctl/install.rs"]
mod install;
#[path = "../../fluxctl/interactive.rs"]
mod interactive;
#[path = "../../fluxctl/portforward.rs"]
mod portforward;
#[path = "../../fluxctl/resolve.rs"]
mod resolve;
#[path = "../../fluxctl/save.rs"]
mod save;
#[path = "../../fluxctl/table.rs"]
mod table;
#[path = "../../fluxctl/v1json.rs"]
mod v1json;
