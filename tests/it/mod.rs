mod common;

mod cli;
mod generated;
mod interop;
mod logging;
mod net;
mod shard;
mod verify;
