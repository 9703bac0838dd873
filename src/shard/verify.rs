//! `etd verify`: check a shard folder against its `manifest.json`.
//!
//! Every shard listed in the manifest is read once, as a stream: the raw file bytes are hashed
//! (size, sha256, md5, CRC-32C) while the same bytes feed the decoder and the tar checks of
//! [`super::read`]. Keys must be unique over the whole dataset, shard names must follow
//! [`shard_file_name`], split and total counts must add up, and the folder must hold nothing but the
//! manifest and its shards. All problems are collected; none stops the check.
//!
//! A key found in two shards is a `sample-split` when it is the last sample of one shard and the
//! first sample of the next shard of the same split (one sample cut in two), else a
//! `duplicate-key`. A key repeated within one shard is reported by the reader as `non-adjacent`.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;
use indexmap::IndexMap;
use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{shard_file_name, split_url, Manifest, ShardEntry, FORMAT, MANIFEST_NAME};
use super::read::{display_file_name, scan_stream, Problem, ProblemSink};
use super::Compression;
use crate::report::plural;

/// Buffer size for reading shard files.
const BUF_SIZE: usize = 64 * 1024;

/// What is wrong, as `verify` and `inspect` name it: the word in the text report and in
/// `--json` (`"kind"`) alike, since both come from [`ProblemKind::as_str`].
macro_rules! problem_kinds {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemKind {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemKind {
            /// Every kind, in the order declared.
            pub const ALL: &'static [ProblemKind] = &[$(ProblemKind::$variant,)*];

            /// The kebab-case word for the kind, e.g. `sha256-mismatch`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemKind::$variant => $text,)*
                }
            }
        }
    };
}

problem_kinds! {
    /// A member's field name breaks the field rules.
    BadField = "bad-field",
    /// A tar header field cannot be read.
    BadHeader = "bad-header",
    /// A sample key breaks the key rules.
    BadKey = "bad-key",
    /// A member name is not `<key>.<field>` in plain UTF-8 ustar form.
    BadMemberName = "bad-member-name",
    /// A member's mode is not 644.
    BadMode = "bad-mode",
    /// A member's uid/gid is not 0/0.
    BadOwner = "bad-owner",
    /// A shard's CRC-32C differs from its manifest entry.
    Crc32cMismatch = "crc32c-mismatch",
    /// A sample has one field twice.
    DuplicateField = "duplicate-field",
    /// A key is in two shards (not one sample cut in two).
    DuplicateKey = "duplicate-key",
    /// A shard is listed more than once in the manifest.
    DuplicateShard = "duplicate-shard",
    /// The manifest names an unknown compression.
    ManifestCompression = "manifest-compression",
    /// The manifest's format is not this etd's.
    ManifestFormat = "manifest-format",
    /// The manifest's sample total disagrees with its shards or splits.
    ManifestTotals = "manifest-totals",
    /// A shard's md5 differs from its manifest entry.
    Md5Mismatch = "md5-mismatch",
    /// A tar lacks its closing zero blocks.
    MissingEndOfArchive = "missing-end-of-archive",
    /// A shard in the manifest is not in the folder.
    MissingFile = "missing-file",
    /// A member name does not fit the ustar name field.
    NameTooLong = "name-too-long",
    /// A key's members are not next to each other within a shard.
    NonAdjacent = "non-adjacent",
    /// A member is not a regular file.
    NonRegularMember = "non-regular-member",
    /// A shard's path is not a regular file.
    NotAFile = "not-a-file",
    /// A member header is not plain ustar.
    NotUstar = "not-ustar",
    /// A file or stream could not be read.
    ReadError = "read-error",
    /// A shard holds another number of samples than its manifest entry says.
    SampleCount = "sample-count",
    /// One sample is cut across two shards.
    SampleSplit = "sample-split",
    /// A shard's sha256 differs from its manifest entry.
    Sha256Mismatch = "sha256-mismatch",
    /// A shard is not named as etd names it, or its name leaves the folder.
    ShardName = "shard-name",
    /// Shards of a split are listed after a later split's.
    ShardOrder = "shard-order",
    /// A shard's size differs from its manifest entry.
    SizeMismatch = "size-mismatch",
    /// A split's sample or shard count disagrees with its shards.
    SplitTotals = "split-totals",
    /// A split's brace-expansion URL is not the expected one.
    SplitUrl = "split-url",
    /// The tar stream is malformed.
    TarError = "tar-error",
    /// Bytes follow the end of the archive or the zstd frame.
    TrailingData = "trailing-data",
    /// The stream ends early.
    Truncated = "truncated",
    /// A field is in the shards but not in the manifest's fields.
    UndeclaredField = "undeclared-field",
    /// Something is in the shard folder that the manifest does not list.
    UnexpectedFile = "unexpected-file",
    /// A shard's split is not among the manifest's splits.
    UnknownSplit = "unknown-split",
    /// The zstd stream cannot be decompressed.
    ZstdError = "zstd-error",
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for ProblemKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for ProblemKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Result of verifying a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The manifest that was checked.
    pub manifest: PathBuf,
    /// Shards that were found and read.
    pub shards_checked: u64,
    /// Samples counted in the shards that were read.
    pub samples_checked: u64,
    /// Everything wrong, in the order found (shards in manifest order, then totals and the folder).
    pub problems: Vec<Problem>,
    /// Of the manifest's shards, how many there are.
    #[serde(skip)]
    pub shards_listed: u64,
    /// A signal stopped the check between two shards (the totals and the folder were not checked).
    #[serde(skip)]
    pub stopped: Option<crate::stop::StopSignal>,
}

impl VerifyReport {
    /// No problems found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verify the dataset at `path`: a shard folder (holding `manifest.json`) or a manifest file (its
/// folder holds the shards). A manifest that cannot be read or parsed is an error; everything else
/// wrong is a problem in the report.
pub fn verify_path(path: &Path) -> anyhow::Result<VerifyReport> {
    let (dir, manifest_path) = if path.is_dir() {
        (path.to_path_buf(), path.join(MANIFEST_NAME))
    } else {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (parent, path.to_path_buf())
    };
    if !manifest_path.exists() {
        let message = if !path.exists() {
            format!("{}: no such file or folder", path.display())
        } else {
            format!("{} holds no {MANIFEST_NAME}", dir.display())
        };
        return Err(crate::error::UserError::failure(message)
            .with_hint(format!(
                "verify takes a shard folder written by `etd shard` (such as etd-work/<name>/shards) or its \
                 {MANIFEST_NAME}; the manifest is written last, so a folder without one holds no finished dataset"
            ))
            .into());
    }
    let text = fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read manifest {}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid etd manifest", manifest_path.display()))?;
    let manifest_name = display_file_name(&manifest_path);

    let mut v = Verifier {
        dir: &dir,
        manifest: &manifest,
        manifest_name: &manifest_name,
        sink: ProblemSink::new(),
        keys: HashMap::new(),
        shard_samples: vec![0; manifest.shards.len()],
        fields_seen: IndexMap::new(),
        shards_checked: 0,
        samples_checked: 0,
    };
    v.check_manifest_header();
    v.check_shards();
    // Stopped midway, the totals would count the shards not read as missing samples.
    let stopped = crate::stop::requested();
    if stopped.is_none() {
        v.check_totals();
        v.check_fields();
        v.check_folder();
    }

    let Verifier { sink, shards_checked, samples_checked, .. } = v;
    Ok(VerifyReport {
        manifest: manifest_path,
        shards_checked,
        samples_checked,
        problems: sink.finish(),
        shards_listed: manifest.shards.len() as u64,
        stopped,
    })
}

/// One line per problem, then `verified N shards, M samples: OK` or `...: K problems`.
pub fn render_verify_text(r: &VerifyReport) -> String {
    let mut out = String::new();
    for p in &r.problems {
        out.push_str(&p.render());
        out.push('\n');
    }
    let status = match (r.problems.len(), r.stopped) {
        (n, Some(signal)) => {
            format!(
                "stopped by {} after {} of {} shards, {} so far",
                signal.name(),
                r.shards_checked,
                r.shards_listed,
                plural(n, "problem")
            )
        }
        (0, None) => "OK".to_string(),
        (n, None) => plural(n, "problem"),
    };
    out.push_str(&format!(
        "verified {}, {}: {status}\n",
        plural(r.shards_checked, "shard"),
        plural(r.samples_checked, "sample")
    ));
    super::inspect::printable(&out)
}

/// Where a key was first seen: manifest shard index and sample index within that shard.
#[derive(Debug, Clone, Copy)]
struct KeyPlace {
    shard: usize,
    sample: u64,
}

struct Verifier<'a> {
    dir: &'a Path,
    manifest: &'a Manifest,
    manifest_name: &'a str,
    sink: ProblemSink,
    keys: HashMap<String, KeyPlace>,
    /// Samples counted per manifest shard (0 when not read).
    shard_samples: Vec<u64>,
    /// Field name -> first shard it was seen in.
    fields_seen: IndexMap<String, String>,
    shards_checked: u64,
    samples_checked: u64,
}

/// Running digests of the raw bytes of one file.
struct Digests {
    bytes: u64,
    sha256: Sha256,
    /// Only when the manifest records md5.
    md5: Option<Md5>,
    crc32c: u32,
}

/// Reader that hashes every byte it passes on.
struct HashingReader<R> {
    inner: R,
    digests: Digests,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = &buf[..n];
        let d = &mut self.digests;
        d.bytes += n as u64;
        d.sha256.update(data);
        if let Some(md5) = &mut d.md5 {
            md5.update(data);
        }
        d.crc32c = crc32c::crc32c_append(d.crc32c, data);
        Ok(n)
    }
}

/// A shard name that stays inside the folder.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

impl Verifier<'_> {
    fn zstd(&self) -> bool {
        self.manifest.compression == "zstd"
    }

    fn manifest_problem(&mut self, kind: ProblemKind, message: String) {
        let file = self.manifest_name.to_string();
        self.sink.push(Some(&file), kind, message);
    }

    fn check_manifest_header(&mut self) {
        let m = self.manifest;
        if m.format != FORMAT {
            self.manifest_problem(ProblemKind::ManifestFormat, format!("format is `{}`, not `{FORMAT}`", m.format));
        }
        if m.compression != "none" && m.compression != "zstd" {
            self.manifest_problem(
                ProblemKind::ManifestCompression,
                format!("compression is `{}`, not `none` or `zstd`", m.compression),
            );
        }
    }

    fn check_shards(&mut self) {
        let m = self.manifest;
        let mut per_split: HashMap<&str, u64> = HashMap::new();
        let mut names: HashSet<&str> = HashSet::new();
        let mut last_split_index = 0usize;
        for (i, entry) in m.shards.iter().enumerate() {
            // SIGINT/SIGTERM: no new shard is read.
            if crate::stop::requested().is_some() {
                break;
            }
            let name = entry.name.as_str();
            let file = Some(name);
            match m.splits.get_index_of(&entry.split) {
                None => self.sink.push(
                    file,
                    ProblemKind::UnknownSplit,
                    format!("split `{}` is not listed in the manifest's splits", entry.split),
                ),
                Some(si) => {
                    if si < last_split_index {
                        self.sink.push(
                            file,
                            ProblemKind::ShardOrder,
                            format!("shard of split `{}` listed after shards of a later split", entry.split),
                        );
                    }
                    last_split_index = last_split_index.max(si);
                }
            }
            let n = per_split.entry(entry.split.as_str()).or_insert(0);
            let expected = shard_file_name(&m.name, &entry.split, *n, self.zstd());
            *n += 1;
            if name != expected {
                self.sink.push(
                    file,
                    ProblemKind::ShardName,
                    format!("expected `{expected}` (shard {} of split `{}`)", *n - 1, entry.split),
                );
            }
            if !is_plain_file_name(name) {
                self.sink.push(file, ProblemKind::ShardName, "not a plain file name inside the shard folder");
                continue;
            }
            if !names.insert(name) {
                self.sink.push(file, ProblemKind::DuplicateShard, "listed more than once in the manifest");
                continue;
            }
            self.check_shard(i, entry);
        }
    }

    fn check_shard(&mut self, index: usize, entry: &ShardEntry) {
        let name = entry.name.as_str();
        let file = Some(name);
        let path = self.dir.join(name);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                self.sink.push(file, ProblemKind::NotAFile, format!("{} is not a regular file", path.display()));
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.sink.push(file, ProblemKind::MissingFile, format!("{} does not exist", path.display()));
                return;
            }
            Err(e) => {
                self.sink.push(file, ProblemKind::ReadError, e.to_string());
                return;
            }
        }
        let handle = match fs::File::open(&path) {
            Ok(h) => h,
            Err(e) => {
                self.sink.push(file, ProblemKind::ReadError, e.to_string());
                return;
            }
        };
        let compression = Compression::from_file_name(name).unwrap_or(if self.zstd() {
            Compression::Zstd
        } else {
            Compression::None
        });
        let mut reader = HashingReader {
            inner: BufReader::with_capacity(BUF_SIZE, handle),
            digests: Digests {
                bytes: 0,
                sha256: Sha256::new(),
                md5: entry.md5.as_ref().map(|_| Md5::new()),
                crc32c: 0,
            },
        };

        let manifest = self.manifest;
        let keys = &mut self.keys;
        let sink = &mut self.sink;
        let shard_samples = &self.shard_samples;
        let fields_seen = &mut self.fields_seen;
        let scan = scan_stream(&mut reader, compression, name, |member, _data| {
            if !fields_seen.contains_key(member.field) && !member.field.is_empty() {
                fields_seen.insert(member.field.to_string(), name.to_string());
            }
            if !member.starts_sample {
                return Ok(());
            }
            let here = KeyPlace { shard: index, sample: member.sample };
            let Some(prev) = keys.get(member.key).copied() else {
                keys.insert(member.key.to_string(), here);
                return Ok(());
            };
            if prev.shard == index {
                // Same shard: the reader reports it as `non-adjacent`.
                return Ok(());
            }
            let prev_entry = &manifest.shards[prev.shard];
            let prev_is_last = shard_samples[prev.shard].checked_sub(1) == Some(prev.sample);
            if prev.shard + 1 == index && prev_entry.split == entry.split && prev_is_last && here.sample == 0 {
                sink.push(
                    Some(name),
                    ProblemKind::SampleSplit,
                    format!(
                        "sample `{}` is split across shards: last sample of `{}` and first sample of `{name}`",
                        member.key, prev_entry.name
                    ),
                );
            } else {
                sink.push(
                    Some(name),
                    ProblemKind::DuplicateKey,
                    format!(
                        "key `{}` at sample {} also appears in `{}` at sample {}",
                        member.key, here.sample, prev_entry.name, prev.sample
                    ),
                );
            }
            Ok(())
        });
        let scan = match scan {
            Ok(scan) => scan,
            Err(e) => {
                // The callback above never fails; keep the error as a problem all the same.
                self.sink.push(file, ProblemKind::ReadError, format!("{e:#}"));
                return;
            }
        };
        // Hash whatever the reader did not need (e.g. after a broken tar stream).
        if let Err(e) = io::copy(&mut reader, &mut io::sink()) {
            self.sink.push(file, ProblemKind::ReadError, e.to_string());
        }

        self.shards_checked += 1;
        self.samples_checked += scan.samples;
        self.shard_samples[index] = scan.samples;
        self.sink.extend_listed(scan.problems);

        let d = reader.digests;
        if d.bytes != entry.bytes {
            self.sink.push(
                file,
                ProblemKind::SizeMismatch,
                format!("expected {} bytes, found {}", entry.bytes, d.bytes),
            );
        }
        let md5 = entry.md5.as_ref().zip(d.md5).map(|(expected, md5)| (expected, hex::encode(md5.finalize())));
        let found = [
            Some((ProblemKind::Sha256Mismatch, &entry.sha256, hex::encode(d.sha256.finalize()))),
            md5.map(|(expected, actual)| (ProblemKind::Md5Mismatch, expected, actual)),
            Some((ProblemKind::Crc32cMismatch, &entry.crc32c, format!("{:08x}", d.crc32c))),
        ];
        for (kind, expected, actual) in found.into_iter().flatten() {
            if *expected != actual {
                self.sink.push(file, kind, format!("expected {expected}, found {actual}"));
            }
        }
        if scan.samples != entry.samples {
            self.sink.push(
                file,
                ProblemKind::SampleCount,
                format!("expected {} samples, found {}", entry.samples, scan.samples),
            );
        }
    }

    fn check_totals(&mut self) {
        let m = self.manifest;
        let zstd = self.zstd();
        let mut shard_sum = 0u64;
        for (split, se) in &m.splits {
            let shards: Vec<&ShardEntry> = m.shards.iter().filter(|s| &s.split == split).collect();
            let count = shards.len() as u64;
            let samples: u64 = shards.iter().map(|s| s.samples).sum();
            shard_sum += samples;
            if se.samples != samples {
                self.manifest_problem(
                    ProblemKind::SplitTotals,
                    format!("split `{split}` lists {} samples; its shard entries hold {samples}", se.samples),
                );
            }
            if se.shards != count {
                self.manifest_problem(
                    ProblemKind::SplitTotals,
                    format!("split `{split}` lists {} shards; the manifest has {count}", se.shards),
                );
            }
            let url = split_url(&m.name, split, count, zstd);
            if se.url != url {
                let show = |u: &Option<String>| u.as_deref().map_or("null".into(), |u| format!("`{u}`"));
                self.manifest_problem(
                    ProblemKind::SplitUrl,
                    format!("split `{split}` has url {}, expected {}", show(&se.url), show(&url)),
                );
            }
        }
        // Shards of unknown splits still count towards the total.
        shard_sum += m.shards.iter().filter(|s| !m.splits.contains_key(&s.split)).map(|s| s.samples).sum::<u64>();
        let split_sum: u64 = m.splits.values().map(|s| s.samples).sum();
        if m.samples != shard_sum {
            self.manifest_problem(
                ProblemKind::ManifestTotals,
                format!("manifest lists {} samples; its shard entries hold {shard_sum}", m.samples),
            );
        } else if m.samples != split_sum {
            self.manifest_problem(
                ProblemKind::ManifestTotals,
                format!("manifest lists {} samples; its splits hold {split_sum}", m.samples),
            );
        }
    }

    fn check_fields(&mut self) {
        let undeclared: Vec<(String, String)> = self
            .fields_seen
            .iter()
            .filter(|(field, _)| !self.manifest.fields.contains_key(*field))
            .map(|(f, s)| (f.clone(), s.clone()))
            .collect();
        for (field, shard) in undeclared {
            self.manifest_problem(
                ProblemKind::UndeclaredField,
                format!("field `{field}` (first seen in `{shard}`) is not listed in the manifest's fields"),
            );
        }
    }

    fn check_folder(&mut self) {
        let listed: HashSet<&str> = self.manifest.shards.iter().map(|s| s.name.as_str()).collect();
        let entries = match fs::read_dir(self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.sink.push(None, ProblemKind::ReadError, e.to_string());
                return;
            }
        };
        let mut unexpected = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.sink.push(None, ProblemKind::ReadError, e.to_string());
                    continue;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == self.manifest_name || listed.contains(name.as_str()) {
                continue;
            }
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            unexpected.push((name, is_dir));
        }
        unexpected.sort();
        for (name, is_dir) in unexpected {
            let what = if is_dir { "directory" } else { "file" };
            self.sink.push(
                Some(&name),
                ProblemKind::UnexpectedFile,
                format!("{what} is in the shard folder but not in the manifest"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::manifest::{SplitEntry, ALL_SPLIT};
    use super::super::read::test_support::*;
    use super::*;

    type Member = (String, Vec<u8>);

    /// Members etd would write for `key`: an npy and a json.
    fn sample(key: &str) -> Vec<Member> {
        vec![
            (format!("{key}.npy"), format!("npy of {key}").into_bytes()),
            (format!("{key}.json"), format!("{{\"id\":\"{key}\"}}").into_bytes()),
        ]
    }

    fn tar_members(members: &[Member]) -> Vec<u8> {
        let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        tar_of(&refs)
    }

    fn keys_tar(keys: &[&str]) -> Vec<u8> {
        tar_members(&keys.iter().flat_map(|k| sample(k)).collect::<Vec<_>>())
    }

    struct Ds {
        dir: tempfile::TempDir,
        manifest: Manifest,
    }

    impl Ds {
        /// A dataset named `ds` with `splits`: split name -> shards -> keys.
        fn new(zstd: bool, splits: &[(&str, &[&[&str]])]) -> Ds {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut manifest = Manifest {
                format: FORMAT.into(),
                etd_version: "0.1.0".into(),
                name: "ds".into(),
                recipe_sha256: "0".repeat(64),
                compression: if zstd { "zstd" } else { "none" }.into(),
                samples: 0,
                splits: IndexMap::new(),
                shards: Vec::new(),
                fields: [("npy", "array"), ("json", "metadata")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                classes: None,
            };
            for (split, shards) in splits {
                let mut samples = 0;
                for (n, keys) in shards.iter().enumerate() {
                    let name = shard_file_name("ds", split, n as u64, zstd);
                    manifest.shards.push(ShardEntry {
                        name,
                        split: split.to_string(),
                        samples: keys.len() as u64,
                        bytes: 0,
                        sha256: String::new(),
                        md5: Some(String::new()),
                        crc32c: String::new(),
                    });
                    samples += keys.len() as u64;
                }
                let count = shards.len() as u64;
                manifest.splits.insert(
                    split.to_string(),
                    SplitEntry { samples, shards: count, url: split_url("ds", split, count, zstd) },
                );
                manifest.samples += samples;
            }
            let mut ds = Ds { dir, manifest };
            let mut i = 0;
            for (_, shards) in splits {
                for keys in shards.iter() {
                    ds.put_shard(i, &keys_tar(keys), keys.len() as u64);
                    i += 1;
                }
            }
            ds
        }

        fn zstd(&self) -> bool {
            self.manifest.compression == "zstd"
        }

        fn path(&self, i: usize) -> PathBuf {
            self.dir.path().join(&self.manifest.shards[i].name)
        }

        /// Write shard `i` from `tar` (compressed when the dataset is) and record it, with correct
        /// digests and sample counts (shard, split and total), in the manifest.
        fn put_shard(&mut self, i: usize, tar: &[u8], samples: u64) {
            let bytes = if self.zstd() { zstd_of(tar) } else { tar.to_vec() };
            fs::write(self.path(i), &bytes).expect("write shard");
            let e = &mut self.manifest.shards[i];
            e.samples = samples;
            e.bytes = bytes.len() as u64;
            e.sha256 = hex::encode(Sha256::digest(&bytes));
            e.md5 = Some(hex::encode(Md5::digest(&bytes)));
            e.crc32c = format!("{:08x}", crc32c::crc32c(&bytes));
            let split = e.split.clone();
            let m = &mut self.manifest;
            m.splits[&split].samples = m.shards.iter().filter(|s| s.split == split).map(|s| s.samples).sum();
            m.samples = m.shards.iter().map(|s| s.samples).sum();
            self.save();
        }

        fn save(&self) {
            fs::write(self.dir.path().join(MANIFEST_NAME), self.manifest.to_bytes()).expect("write");
        }

        fn verify(&self) -> VerifyReport {
            verify_path(self.dir.path()).expect("verify")
        }
    }

    fn kinds(r: &VerifyReport) -> Vec<&str> {
        let mut k: Vec<&str> = r.problems.iter().map(|p| p.kind.as_str()).collect();
        k.sort();
        k.dedup();
        k
    }

    fn standard(zstd: bool) -> Ds {
        Ds::new(zstd, &[("train", &[&["a", "b"], &["c", "d"], &["e"]]), ("val", &[&["f", "g"]])])
    }

    #[test]
    fn problem_kinds_are_one_kebab_case_word_each_in_text_and_json() {
        let mut seen = HashSet::new();
        for kind in ProblemKind::ALL {
            let word = kind.as_str();
            assert!(seen.insert(word), "`{word}` twice");
            assert!(word
                .split('-')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())));
            assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{word}\""));
            assert_eq!(kind.to_string(), word);
        }
        assert_eq!(ProblemKind::ALL.len(), 37);
        let p = Problem::new(Some("a.tar"), ProblemKind::Sha256Mismatch, "expected x, found y");
        assert_eq!(p.render(), "a.tar: sha256-mismatch: expected x, found y");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"file":"a.tar","kind":"sha256-mismatch","message":"expected x, found y"}"#
        );
    }

    #[test]
    fn good_dataset_verifies() {
        for zstd in [false, true] {
            let ds = standard(zstd);
            let r = ds.verify();
            assert!(r.is_ok(), "zstd={zstd}: {:#?}", r.problems);
            assert_eq!((r.shards_checked, r.samples_checked), (4, 7));
            assert_eq!(r.manifest, ds.dir.path().join(MANIFEST_NAME));
            assert_eq!(render_verify_text(&r), "verified 4 shards, 7 samples: OK\n");
            // The manifest file itself works too.
            let r = verify_path(&ds.dir.path().join(MANIFEST_NAME)).expect("verify");
            assert!(r.is_ok(), "{:#?}", r.problems);
        }
        let ds = Ds::new(true, &[(ALL_SPLIT, &[&["x"], &["y", "z"]])]);
        assert_eq!(ds.manifest.shards[1].name, "ds-000001.tar.zst");
        let r = ds.verify();
        assert!(r.is_ok(), "{:#?}", r.problems);
        let json = serde_json::to_value(&r).expect("serialise");
        assert_eq!(json["samples_checked"], 3);
        assert!(json["problems"].as_array().is_some_and(|p| p.is_empty()));
    }

    #[test]
    fn missing_or_broken_manifest_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = verify_path(dir.path()).expect_err("no manifest");
        assert!(format!("{err}").contains("manifest.json"), "{err}");
        fs::write(dir.path().join(MANIFEST_NAME), "{\"format\": 1}").expect("write");
        let err = verify_path(dir.path()).expect_err("bad manifest");
        assert!(format!("{err}").contains("manifest.json"), "{err}");
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }

    #[test]
    fn flipped_byte() {
        let ds = standard(false);
        let path = ds.path(1);
        let mut bytes = fs::read(&path).expect("read");
        bytes[512] ^= 0x20; // first byte of the first member's data
        fs::write(&path, &bytes).expect("write");
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["crc32c-mismatch", "md5-mismatch", "sha256-mismatch"], "{:#?}", r.problems);
        let sha = r.problems.iter().find(|p| p.kind == "sha256-mismatch").expect("sha");
        assert_eq!(sha.file.as_deref(), Some("ds-train-000001.tar"));
        assert!(sha.message.starts_with(&format!("expected {}, found ", ds.manifest.shards[1].sha256)));
        let text = render_verify_text(&r);
        assert!(text.contains("ds-train-000001.tar: sha256-mismatch: expected "), "{text}");
        assert!(text.ends_with("verified 4 shards, 7 samples: 3 problems\n"), "{text}");
    }

    #[test]
    fn a_manifest_without_md5_is_checked_without_it() {
        let mut ds = standard(false);
        for e in &mut ds.manifest.shards {
            e.md5 = None;
        }
        ds.save();
        assert!(!fs::read_to_string(ds.dir.path().join(MANIFEST_NAME)).expect("read").contains("md5"));
        assert!(ds.verify().problems.is_empty());
        let path = ds.path(1);
        let mut bytes = fs::read(&path).expect("read");
        bytes[512] ^= 0x20;
        fs::write(&path, &bytes).expect("write");
        assert_eq!(kinds(&ds.verify()), vec!["crc32c-mismatch", "sha256-mismatch"]);
    }

    #[test]
    fn flipped_byte_in_zstd() {
        let ds = standard(true);
        let path = ds.path(0);
        let mut bytes = fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let r = ds.verify();
        assert!(kinds(&r).contains(&"sha256-mismatch"), "{:#?}", r.problems);
    }

    #[test]
    fn truncated_file() {
        for zstd in [false, true] {
            let ds = standard(zstd);
            let path = ds.path(0);
            let bytes = fs::read(&path).expect("read");
            fs::write(&path, &bytes[..bytes.len() * 2 / 3]).expect("write");
            let r = ds.verify();
            let k = kinds(&r);
            for want in ["sha256-mismatch", "size-mismatch", "truncated"] {
                assert!(k.contains(&want), "zstd={zstd} {want}: {:#?}", r.problems);
            }
            assert_eq!(r.shards_checked, 4);
        }
    }

    #[test]
    fn missing_shard() {
        let ds = standard(true);
        fs::remove_file(ds.path(2)).expect("remove");
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["missing-file"]);
        assert_eq!(r.problems[0].file.as_deref(), Some("ds-train-000002.tar.zst"));
        assert_eq!((r.shards_checked, r.samples_checked), (3, 6));
    }

    #[test]
    fn extra_file() {
        let ds = standard(false);
        fs::write(ds.dir.path().join("notes.txt"), "hi").expect("write");
        fs::create_dir(ds.dir.path().join("sub")).expect("mkdir");
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["unexpected-file"]);
        let files: Vec<_> = r.problems.iter().filter_map(|p| p.file.as_deref()).collect();
        assert_eq!(files, vec!["notes.txt", "sub"]);
    }

    #[test]
    fn sample_split_across_shards() {
        let mut ds = standard(false);
        let mut first = sample("a");
        first.push(sample("b").remove(0)); // b.npy
        let mut second = vec![sample("b").remove(1)]; // b.json
        second.extend(sample("c"));
        ds.put_shard(0, &tar_members(&first), 2);
        ds.put_shard(1, &tar_members(&second), 2);
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["sample-split"], "{:#?}", r.problems);
        assert!(r.problems[0].message.contains("`b`"));
        assert!(r.problems[0].message.contains("ds-train-000000.tar"));
    }

    #[test]
    fn duplicate_key_in_two_shards() {
        let mut ds = standard(false);
        ds.put_shard(3, &keys_tar(&["f", "b"]), 2);
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["duplicate-key"], "{:#?}", r.problems);
        let p = &r.problems[0];
        assert_eq!(p.file.as_deref(), Some("ds-val-000000.tar"));
        assert!(p.message.contains("`b` at sample 1"), "{}", p.message);
        assert!(p.message.contains("`ds-train-000000.tar` at sample 1"), "{}", p.message);
    }

    #[test]
    fn non_adjacent_members_within_a_shard() {
        let mut ds = standard(false);
        let mut members = sample("a");
        let a_json = members.remove(1);
        members.extend(sample("b"));
        members.push(a_json);
        ds.put_shard(0, &tar_members(&members), 3);
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["non-adjacent"], "{:#?}", r.problems);
    }

    #[test]
    fn bad_keys_and_fields() {
        let mut ds = standard(false);
        // `a.b..npy` is key `a`, field `b..npy`: the empty part breaks the field rule.
        let members = vec![
            ("_x.npy".to_string(), b"1".to_vec()),
            ("a.b..npy".to_string(), b"1".to_vec()),
            ("sp ace.npy".to_string(), b"1".to_vec()),
        ];
        ds.put_shard(0, &tar_members(&members), 3);
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["bad-field", "bad-key", "undeclared-field"], "{:#?}", r.problems);
        assert_eq!(r.problems.iter().filter(|p| p.kind == "bad-key").count(), 2);
    }

    #[test]
    fn directory_entry() {
        let mut ds = standard(false);
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_path("a/").expect("path");
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        dir.set_cksum();
        b.append(&dir, io::empty()).expect("append");
        for (name, data) in sample("a").into_iter().chain(sample("b")) {
            b.append(&header(&name, data.len() as u64), data.as_slice()).expect("append");
        }
        ds.put_shard(0, &b.into_inner().expect("finish"), 2);
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["non-regular-member"], "{:#?}", r.problems);
        assert!(r.problems[0].message.contains("directory"));
    }

    #[test]
    fn gnu_long_name_member() {
        let mut ds = standard(true);
        let long = format!("{}.npy", "k".repeat(100));
        let mut out = Vec::new();
        raw_member(&mut out, "././@LongLink", b'L', format!("{long}\0").as_bytes());
        let mut b = tar::Builder::new(out);
        b.append(&header(&long[..100], 1), &b"1"[..]).expect("append");
        for (name, data) in sample("a").into_iter().chain(sample("b")) {
            b.append(&header(&name, data.len() as u64), data.as_slice()).expect("append");
        }
        ds.put_shard(0, &b.into_inner().expect("finish"), 3);
        let r = ds.verify();
        let k = kinds(&r);
        for want in ["non-regular-member", "not-ustar"] {
            assert!(k.contains(&want), "{want}: {:#?}", r.problems);
        }
        assert!(r.problems.iter().any(|p| p.message.contains("GNU long name")));
    }

    #[test]
    fn tar_checksum_error() {
        let mut ds = standard(false);
        let mut tar = keys_tar(&["a", "b"]);
        tar[1024 + 3] ^= 1; // inside the second header's name
        ds.put_shard(0, &tar, 2);
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["sample-count", "tar-error"], "{:#?}", r.problems);
    }

    #[test]
    fn wrong_sample_count() {
        let mut ds = standard(false);
        ds.manifest.shards[2].samples = 5;
        ds.manifest.splits["train"].samples += 4;
        ds.manifest.samples += 4;
        ds.save();
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["sample-count"], "{:#?}", r.problems);
        assert_eq!(r.problems[0].message, "expected 5 samples, found 1");
    }

    #[test]
    fn wrong_split_totals() {
        let mut ds = standard(false);
        ds.manifest.splits["val"].samples = 9;
        ds.manifest.splits["train"].shards = 2;
        ds.manifest.splits["train"].url = Some("ds-train-{000000..000001}.tar".into());
        ds.manifest.samples = 8;
        ds.save();
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["manifest-totals", "split-totals", "split-url"], "{:#?}", r.problems);
        let files: HashSet<_> = r.problems.iter().map(|p| p.file.as_deref()).collect();
        assert_eq!(files, HashSet::from([Some(MANIFEST_NAME)]));
        let url = r.problems.iter().find(|p| p.kind == "split-url").expect("url");
        assert!(url.message.contains("ds-train-{000000..000002}.tar"), "{}", url.message);
    }

    #[test]
    fn wrong_shard_name() {
        let mut ds = standard(false);
        let old = ds.path(1);
        ds.manifest.shards[1].name = "ds-train-000007.tar".into();
        fs::rename(&old, ds.path(1)).expect("rename");
        ds.save();
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["shard-name"], "{:#?}", r.problems);
        assert!(r.problems[0].message.contains("`ds-train-000001.tar`"));
    }

    #[test]
    fn shard_names_cannot_escape_the_folder() {
        let mut ds = standard(false);
        ds.manifest.shards[0].name = "../ds-train-000000.tar".into();
        ds.save();
        let r = ds.verify();
        assert_eq!(kinds(&r), vec!["shard-name", "unexpected-file"], "{:#?}", r.problems);
        assert_eq!(r.shards_checked, 3);
    }
}
