//! etd — Extract, Transform, Distribute: turn legacy astronomy archives into ML-ready WebDataset
//! shards. The binary is a thin shell over this library; see docs/design.md for the contract and docs/architecture.md for the layout.

// Library code does not print with `print!`/`eprint!` (which panic on a closed pipe): data for
// scripts goes through `commands::print_stdout` (a closed pipe is an error), progress through
// `report`, diagnostics through `tracing`; only main.rs prints the final error.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod batch;
pub mod cli;
pub mod commands;
pub mod digest;
pub mod env_vars;
pub mod error;
pub mod failure;
pub mod fsx;
pub mod hash;
pub mod human;
pub mod keys;
pub mod net;
pub mod publish;
pub mod recipe;
pub mod report;
pub mod sample;
pub mod shard;
pub mod sources;
pub mod spec;
pub mod stop;
pub mod store;
pub mod target;
pub mod transform;
pub mod units;

/// Version written into manifests and the `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
