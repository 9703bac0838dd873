//! `transform`: pure functions from raw bytes to sample fields. No I/O beyond the bytes they are
//! given; the shard stage calls them in parallel.

pub mod image;
pub mod lightcurve;
pub mod scale;

pub use crate::sample::{Fields, SampleError};

/// A section of a recipe's `transform`. Each source makes its samples with some of them (see
/// `SourceConfig::transforms`); a recipe that sets another is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Image,
    LightCurve,
}

impl Section {
    /// The section's key path in a recipe.
    pub fn key(self) -> &'static str {
        match self {
            Section::Image => "transform.image",
            Section::LightCurve => "transform.lightcurve",
        }
    }
}
