//! shipctl's integration tests, in one binary: one link, one process start per
//! run, and a harness (`common`) shared by every module.

mod common;

mod bad_input;
mod command_executor;
mod concurrency;
mod gates;
mod ledger_access;
mod manifest_errors;
mod progress;
mod reconcile;
mod seed_scenario;
mod watch;
