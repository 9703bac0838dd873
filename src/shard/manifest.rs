//! The dataset manifest (`shards/manifest.json`): written last, its presence means the dataset is
//! complete. Field order and formatting are part of the byte-identical output contract.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// File name of the manifest inside a shard folder.
pub const MANIFEST_NAME: &str = "manifest.json";

/// The value of `format` in every manifest etd writes.
pub const FORMAT: &str = "webdataset";

/// Split name used when the recipe has no `shard.split`: shard names then carry no split part.
pub const ALL_SPLIT: &str = "all";

/// `shards/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `webdataset`.
    pub format: String,
    /// Version of etd that wrote the dataset.
    pub etd_version: String,
    /// The recipe's `name`.
    pub name: String,
    /// sha256 of the recipe file's bytes.
    pub recipe_sha256: String,
    /// `none` or `zstd`.
    pub compression: String,
    /// Total number of samples over all shards.
    pub samples: u64,
    /// Per split, in recipe order.
    pub splits: IndexMap<String, SplitEntry>,
    /// Every shard, in split order then shard number.
    pub shards: Vec<ShardEntry>,
    /// Field (member extension) name -> one line of meaning.
    pub fields: IndexMap<String, String>,
    /// Class names; the `cls` field holds an index into this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// One split of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitEntry {
    pub samples: u64,
    pub shards: u64,
    /// Brace URL of the split's shards, e.g. `name-train-{000000..000012}.tar.zst`; null when empty.
    pub url: Option<String>,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// File name inside the shard folder.
    pub name: String,
    pub split: String,
    pub samples: u64,
    /// Size of the file as stored (compressed size for `.tar.zst`).
    pub bytes: u64,
    /// Lower-case hex digests of the file as stored.
    pub sha256: String,
    /// Only when the recipe asks for it (`shard.md5: true`; manifests written before that
    /// option always have it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// CRC-32C (Castagnoli) as 8 lower-case hex digits.
    pub crc32c: String,
}

impl Manifest {
    /// Serialise exactly as etd writes it: pretty JSON, two-space indent, trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("manifest serialises");
        out.push(b'\n');
        out
    }
}

/// Shard file name: `<name>[-<split>]-NNNNNN.tar[.zst]`.
pub fn shard_file_name(name: &str, split: &str, index: u64, zstd: bool) -> String {
    let ext = if zstd { "tar.zst" } else { "tar" };
    if split == ALL_SPLIT {
        format!("{name}-{index:06}.{ext}")
    } else {
        format!("{name}-{split}-{index:06}.{ext}")
    }
}

/// Brace URL covering shards `0..count` of a split, as webdataset expands it.
pub fn split_url(name: &str, split: &str, count: u64, zstd: bool) -> Option<String> {
    match count {
        0 => None,
        1 => Some(shard_file_name(name, split, 0, zstd)),
        n => {
            let ext = if zstd { "tar.zst" } else { "tar" };
            let stem = if split == ALL_SPLIT { name.to_string() } else { format!("{name}-{split}") };
            Some(format!("{stem}-{{000000..{:06}}}.{ext}", n - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert_eq!(shard_file_name("ds", "all", 3, true), "ds-000003.tar.zst");
        assert_eq!(shard_file_name("ds", "train", 12, false), "ds-train-000012.tar");
        assert_eq!(split_url("ds", "train", 0, true), None);
        assert_eq!(split_url("ds", "train", 1, true).as_deref(), Some("ds-train-000000.tar.zst"));
        assert_eq!(split_url("ds", "val", 13, false).as_deref(), Some("ds-val-{000000..000012}.tar"));
        // names and splits may themselves contain 000000
        assert_eq!(split_url("x-1000000", "all", 3, true).as_deref(), Some("x-1000000-{000000..000002}.tar.zst"));
        assert_eq!(split_url("x", "000000", 2, false).as_deref(), Some("x-000000-{000000..000001}.tar"));
    }
}
