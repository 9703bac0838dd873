//! The fuzz targets' entry functions (`entries.rs`, also compiled into the stable smoke test
//! `tests/it/fuzz.rs`).

pub mod entries;
