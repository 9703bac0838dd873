//! Stable hashes that decide membership: subsampling, splits, shuffling and batch tasks.

use sha2::{Digest, Sha256};

/// What a `unit_hash` is for; each use hashes in its own domain so, e.g., subsampling with seed 0
/// does not correlate with split assignment.
#[derive(Debug, Clone, Copy)]
pub enum HashDomain {
    /// `targets.sample`
    Sample,
    /// `shard.split`
    Split,
    /// `shard.shuffle_seed`
    Shuffle,
    /// `--task-index`/`--num-tasks`: which batch task fetches a unit
    Task,
}

/// A stable hash of (domain, seed, text) mapped to [0, 1): the first 53 bits of
/// sha256(domain name, 0x00, seed as 8 little-endian bytes, text).
pub fn unit_hash(domain: HashDomain, seed: u64, text: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(match domain {
        HashDomain::Sample => b"sample".as_slice(),
        HashDomain::Split => b"split",
        HashDomain::Shuffle => b"shuffle",
        HashDomain::Task => b"task",
    });
    h.update([0u8]);
    h.update(seed.to_le_bytes());
    h.update(text.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}
