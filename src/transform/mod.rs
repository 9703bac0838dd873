//! `transform`: pure functions from raw bytes to sample fields. No I/O beyond the bytes they are
//! given; the shard stage calls them in parallel.

pub mod image;
pub mod lightcurve;
pub mod scale;

pub use crate::sample::{Fields, SampleError};
