//! The `privca` command line: `args` holds what the user types (clap types), `commands`
//! what each command does, and `online` the online commands.
//!
//! Online commands (issue, revoke, list, show, crl, profiles, requests, audit, scep
//! challenge) run through [`crate::admin::Admin`]: over the database directly when no
//! server holds it, and otherwise through the running server's admin API (one process
//! owns the database: docs/architecture.md). The transport is chosen once per command
//! (`online::connect`); each command is written once.

pub mod args;
mod commands;
mod online;

pub use args::*;
pub use commands::{hash_password, run};
