//! shipctl: a deployment ledger for dev, staging and prod, kept in SQL.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod commands;
pub mod describe;
pub mod duration;
pub mod engine;
pub mod error;
pub mod executor;
pub mod exit;
pub mod follow;
pub mod leader;
pub mod manifest;
pub mod model;
pub mod notify;
pub mod plan;
pub mod progress;
pub mod render;
pub mod serve;
pub mod signing;
pub mod since;
pub mod store;
pub mod supervisor;
pub mod verify;
pub mod watch;
pub mod window;
