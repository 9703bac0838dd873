mod common;

mod astrocut;
mod atlas_fp;
mod atlas_var;
mod batch;

mod cli;
mod diskfull;
mod endpoints;
mod fuzz;
mod generated;
mod hostile;
mod interop;
mod layers;
mod logging;
mod messages;
mod net;
mod paths;
mod provenance;
mod ps1;
mod publish;
mod shard;
mod signals;
mod split;
mod verify;
mod walkthrough;
