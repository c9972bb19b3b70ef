//! shipctl's integration tests, in one binary: one link, one process start per
//! run, and a harness (`common`) shared by every module.

mod common;

mod approvals;
mod audit_and_seed;
mod audit_chain;
mod bad_input;
mod child_processes;
mod command_executor;
mod concurrency;
mod describe;
mod docs;
mod examples;
mod faults;
mod gates;
mod help_text;
mod interface_text;
mod json_contract;
mod leader;
mod ledger_access;
mod limits;
mod manifest_errors;
mod newer_policy;
mod notifications;
mod progress;
mod reconcile;
mod saved_plans;
mod seed_scenario;
mod serve;
mod signed_approvals;
mod snapshots;
mod verification;
mod watch;
mod windows;
