mod common;

mod cli;
mod generated;
mod interop;
mod logging;
mod shard;
mod verify;
