mod common;

mod astrocut;
mod atlas_fp;
mod atlas_var;

mod cli;
mod endpoints;
mod fuzz;
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
