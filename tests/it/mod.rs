mod common;

mod atlas_fp;
mod atlas_var;
mod batch;

mod cli;
mod endpoints;
mod generated;
mod interop;
mod layers;
mod logging;
mod messages;
mod net;
mod provenance;
mod ps1;
mod publish;
mod shard;
mod signals;
mod split;
mod verify;
mod walkthrough;
