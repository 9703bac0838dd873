//! `shard`: samples -> WebDataset tar shards + manifest. Samples are assigned to splits by a stable
//! hash of their key, ordered by key (or by a seeded hash), transformed in parallel in ordered
//! chunks, and packed in order, so the output is byte-identical on any thread count. Each shard has
//! one writer thread, compressed with zstd's multi-threaded streaming mode (the same bytes for any
//! worker count). The whole folder is written beside
//! `shards/` and swapped in at the end, manifest last, so a failed run never damages the old one.

pub mod compress;
pub mod inspect;
pub mod manifest;
pub mod part;
pub mod read;
pub mod verify;
pub mod writer;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::sync_channel;

use anyhow::Context;
use fs_err as fs;
use indexmap::IndexMap;
use rayon::prelude::*;

use crate::hash::{unit_hash, HashDomain};
use crate::report::Reporter;
use crate::sample::{Fields, SampleError};
use manifest::{shard_file_name, split_url, Manifest, ShardEntry, SplitEntry, FORMAT, MANIFEST_NAME};
use writer::{tar_bytes, PackedSample, ShardWriter, TarSettings};

/// `shard`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardConfig {
    pub max_samples: u64,
    /// Upper bound on a shard's uncompressed tar size (a single larger sample gets a shard of its own).
    pub max_bytes: u64,
    pub compression: Compression,
    pub level: i32,
    /// Split names and fractions in recipe order; `[("all", 1.0)]` without `split`.
    pub splits: Vec<(String, f64)>,
    pub shuffle_seed: Option<u64>,
    /// mtime of every tar member.
    pub mtime: u64,
    /// Record each shard's md5 in the manifest (`shard.md5`; off by default: it costs more CPU
    /// than sha256 and crc32c together, and `publish` computes it where an origin checks it).
    pub md5: bool,
}

/// Shard compression: what a recipe asks for (`shard.compression`) and how a shard file is
/// stored, told by its name (`.tar` or `.tar.zst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Zstd,
}

impl Compression {
    /// `.tar.zst` is zstd, `.tar` is none, anything else is not a shard name.
    pub fn from_file_name(name: &str) -> Option<Self> {
        if name.ends_with(".tar.zst") {
            Some(Compression::Zstd)
        } else if name.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// The manifest spelling: `none` or `zstd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

/// Why a stopped `etd shard` ends, and what it leaves.
pub const STOPPED_SHARD: &str = "shard did not finish; the previous shards are intact";

/// Seed of the split-assignment hash (fixed: a key's split never depends on anything else).
const SPLIT_SEED: u64 = 0;

/// One sample to make: its key, the original id, and whatever the transform needs.
pub struct Job<T> {
    pub key: String,
    pub id: String,
    pub input: T,
}

/// What the caller knows about the dataset besides its samples.
pub struct DatasetInfo<'a> {
    pub name: &'a str,
    pub recipe_sha256: &'a str,
    pub classes: Option<Vec<String>>,
}

/// The result of a shard run.
pub struct DatasetReport {
    pub manifest: Manifest,
    /// The samples that could not be made, in sample order.
    pub failures: Vec<Failed>,
}

/// The split a key belongs to: the first whose cumulative fraction exceeds the key's hash.
pub fn split_of<'a>(key: &str, splits: &'a [(String, f64)]) -> &'a str {
    splits.get(split_index(key, splits)).map_or(manifest::ALL_SPLIT, |(n, _)| n.as_str())
}

/// The index in `splits` of the split `key` belongs to (0 when there are none).
fn split_index(key: &str, splits: &[(String, f64)]) -> usize {
    let h = unit_hash(HashDomain::Split, SPLIT_SEED, key);
    let mut acc = 0.0;
    for (i, (_, fraction)) in splits.iter().enumerate() {
        acc += fraction;
        if h < acc {
            return i;
        }
    }
    splits.len().saturating_sub(1)
}

/// Group jobs by split (recipe order) and order each split: by key, or by a seeded hash.
pub fn order_jobs<T>(jobs: Vec<Job<T>>, cfg: &ShardConfig) -> Vec<(String, Vec<Job<T>>)> {
    let mut by_split: IndexMap<String, Vec<Job<T>>> = IndexMap::new();
    match cfg.splits.as_slice() {
        // One split: every job is in it, no regrouping.
        [(name, _)] => {
            by_split.insert(name.clone(), jobs);
        }
        [] if !jobs.is_empty() => {
            by_split.insert(manifest::ALL_SPLIT.to_string(), jobs);
        }
        [] => {}
        splits => {
            // Sized exactly: the job lists are the largest thing a run keeps for its whole length.
            let of: Vec<usize> = jobs.iter().map(|j| split_index(&j.key, splits)).collect();
            let mut counts = vec![0usize; splits.len()];
            of.iter().for_each(|&i| counts[i] += 1);
            for ((name, _), n) in splits.iter().zip(counts) {
                by_split.insert(name.clone(), Vec::with_capacity(n));
            }
            for (job, i) in jobs.into_iter().zip(of) {
                by_split[i].push(job);
            }
        }
    }
    by_split
        .into_iter()
        .map(|(name, mut jobs)| {
            match cfg.shuffle_seed {
                None => jobs.sort_by(|a, b| a.key.cmp(&b.key)),
                // Hashes in [0, 1) order like their bit patterns; the key breaks (impossible) ties.
                Some(seed) => {
                    jobs.sort_by_cached_key(|j| (unit_hash(HashDomain::Shuffle, seed, &j.key).to_bits(), j.key.clone()))
                }
            }
            (name, jobs)
        })
        .collect()
}

/// Make every sample with `make` and write the shards and manifest into `out` (created fresh).
/// `make` returns Ok(Err) for a sample that failed (recorded, the run goes on) and Err to stop.
pub fn write_dataset<T, F>(
    jobs: Vec<Job<T>>,
    make: F,
    cfg: &ShardConfig,
    info: &DatasetInfo,
    out: &Path,
    reporter: &Reporter,
) -> anyhow::Result<DatasetReport>
where
    T: Sync,
    F: Fn(&Job<T>) -> anyhow::Result<Result<Fields, SampleError>> + Sync,
{
    if out.exists() {
        fs::remove_dir_all(out)?;
    }
    fs::create_dir_all(out)?;
    let zstd = cfg.compression == Compression::Zstd;
    let threads = rayon::current_num_threads().max(1);
    let settings = TarSettings {
        mtime: cfg.mtime,
        zstd_level: zstd.then_some(cfg.level),
        zstd_workers: threads as u32,
        md5: cfg.md5,
    };
    let total = jobs.len() as u64;
    let progress = reporter.start("shard", total);
    let packer = Packer::new(out, info.name, settings, cfg, threads);
    let ordered = order_jobs(jobs, cfg);
    let (packer, failures, mut fields_seen) = run_pipeline(&ordered, &make, threads, packer, &progress, STOPPED_SHARD)?;
    drop(progress);
    let (shards, splits) = packer.finish()?;
    fields_seen.sort();
    let manifest = Manifest {
        format: FORMAT.into(),
        etd_version: crate::VERSION.into(),
        name: info.name.into(),
        recipe_sha256: info.recipe_sha256.into(),
        compression: cfg.compression.as_str().into(),
        samples: shards.iter().map(|s| s.samples).sum(),
        splits,
        shards,
        fields: fields_seen.iter().map(|f| (f.clone(), crate::sample::field_meaning(f))).collect(),
        classes: info.classes.clone(),
    };
    crate::fsx::write_atomic(&out.join(MANIFEST_NAME), &manifest.to_bytes())?;
    Ok(DatasetReport { manifest, failures })
}

/// Make the samples of `ordered` with `make` and hand them to `sink` in order. Samples are made
/// in parallel a chunk at a time, while another thread packs the previous chunk in order: making
/// never waits for packing, and the order does not depend on the thread count.
fn run_pipeline<S, T, F>(
    ordered: &[(String, Vec<Job<T>>)],
    make: &F,
    threads: usize,
    sink: S,
    progress: &crate::report::Progress,
    stopped: &str,
) -> anyhow::Result<(S, Vec<Failed>, Vec<String>)>
where
    S: Sink + Send,
    T: Sync,
    F: Fn(&Job<T>) -> anyhow::Result<Result<Fields, SampleError>> + Sync,
{
    let (tx, rx) = sync_channel::<Made<'_, T>>(1);
    std::thread::scope(|scope| {
        let packing = std::thread::Builder::new()
            .name("pack".into())
            .spawn_scoped(scope, || pack(rx, sink, progress))
            .context("cannot start the packing thread")?;
        let made = make_chunks(ordered, make, threads, &tx, stopped);
        drop(tx);
        let packed = packing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // A packing error explains why making stopped early; report it first.
        let packed = packed?;
        made?;
        Ok(packed)
    })
}

/// What the making side sends the packing side, in order.
enum Made<'j, T> {
    Split(&'j str),
    Chunk(&'j [Job<T>], Vec<anyhow::Result<Result<Fields, SampleError>>>),
    EndSplit,
}

/// About how many bytes of samples a chunk holds: enough work per chunk to keep every thread busy
/// between hand-overs, small enough that the (at most three) chunks alive at once stay small.
const CHUNK_BYTES: u64 = 4 << 20;
/// Most samples in a chunk.
const CHUNK_MAX: usize = 1024;

/// Make the samples of every split, a chunk at a time, and send them to the packer. A chunk is
/// sized from the largest sample of the chunk before (so it shrinks at once when samples get
/// big), and grows at most twofold from one chunk to the next (so a run of small samples does
/// not make a huge chunk just before big ones).
fn make_chunks<'j, T, F>(
    ordered: &'j [(String, Vec<Job<T>>)],
    make: &F,
    threads: usize,
    tx: &std::sync::mpsc::SyncSender<Made<'j, T>>,
    stopped: &str,
) -> anyhow::Result<()>
where
    T: Sync,
    F: Fn(&Job<T>) -> anyhow::Result<Result<Fields, SampleError>> + Sync,
{
    let min_chunk = (threads * 4).max(16);
    let mut chunk = min_chunk;
    // A closed channel means the packer stopped: its error is reported by the caller.
    let send = |m: Made<'j, T>| tx.send(m).is_ok();
    for (split, jobs) in ordered {
        if !send(Made::Split(split)) {
            return Ok(());
        }
        let mut rest = &jobs[..];
        while !rest.is_empty() {
            crate::stop::check(|| stopped.into())?;
            let (group, tail) = rest.split_at(chunk.min(rest.len()));
            rest = tail;
            let made: Vec<anyhow::Result<Result<Fields, SampleError>>> = group.par_iter().map(make).collect();
            let mut largest = 0u64;
            for r in &made {
                match r {
                    Ok(Ok(fields)) => largest = largest.max(fields.iter().map(|(_, d)| d.len() as u64).sum()),
                    Ok(Err(_)) => {}
                    Err(_) => {
                        // Stop making; the packer reports the error when it reaches it.
                        send(Made::Chunk(group, made));
                        return Ok(());
                    }
                }
            }
            let fits = (CHUNK_BYTES / largest.max(1)).clamp(threads as u64, CHUNK_MAX as u64) as usize;
            chunk = fits.min(chunk * 2);
            if !send(Made::Chunk(group, made)) {
                return Ok(());
            }
        }
        if !send(Made::EndSplit) {
            return Ok(());
        }
    }
    Ok(())
}

/// Where made samples go, in order: shards (`Packer`) or a part of a split run (`part::PartSink`).
trait Sink {
    fn start_split(&mut self, split: &str) -> anyhow::Result<()>;
    fn push(&mut self, sample: PackedSample) -> anyhow::Result<()>;
    fn end_split(&mut self) -> anyhow::Result<()>;
}

/// A sample that could not be made: its key, its original id and why.
pub struct Failed {
    pub key: String,
    pub id: String,
    pub error: SampleError,
}

/// Pack made samples in order; returns the sink, the failed samples and the fields seen.
fn pack<S: Sink, T>(
    rx: std::sync::mpsc::Receiver<Made<'_, T>>,
    mut packer: S,
    progress: &crate::report::Progress,
) -> anyhow::Result<(S, Vec<Failed>, Vec<String>)> {
    let mut failures = Vec::new();
    let mut fields_seen: Vec<String> = Vec::new();
    for m in rx {
        match m {
            Made::Split(split) => packer.start_split(split)?,
            Made::EndSplit => packer.end_split()?,
            Made::Chunk(group, made) => {
                for (job, result) in group.iter().zip(made) {
                    match result? {
                        Ok(fields) => {
                            let bytes = tar_bytes(&fields);
                            for (f, _) in &fields {
                                if !fields_seen.contains(f) {
                                    fields_seen.push(f.clone());
                                }
                            }
                            packer.push(PackedSample { key: job.key.clone(), id: job.id.clone(), fields })?;
                            progress.advance(1, bytes);
                        }
                        Err(e) => {
                            tracing::warn!("{}: {e}", job.key);
                            failures.push(Failed { key: job.key.clone(), id: job.id.clone(), error: e });
                            progress.advance(1, 0);
                        }
                    }
                }
            }
        }
    }
    Ok((packer, failures, fields_seen))
}

/// Decides shard boundaries in sample order and keeps a bounded number of writers busy.
struct Packer<'a> {
    dir: &'a Path,
    name: &'a str,
    settings: TarSettings,
    cfg: &'a ShardConfig,
    max_writers: usize,
    split: String,
    index: u64,
    current: Option<(ShardWriter, u64, u64)>,
    finishing: VecDeque<ShardWriter>,
    done: Vec<ShardEntry>,
    splits: IndexMap<String, SplitEntry>,
}

/// The two zero blocks that end a tar.
const TAR_END: u64 = 1024;

impl<'a> Packer<'a> {
    fn new(dir: &'a Path, name: &'a str, settings: TarSettings, cfg: &'a ShardConfig, max_writers: usize) -> Self {
        Packer {
            dir,
            name,
            settings,
            cfg,
            max_writers,
            split: String::new(),
            index: 0,
            current: None,
            finishing: VecDeque::new(),
            done: Vec::new(),
            splits: IndexMap::new(),
        }
    }

    fn finish(self) -> anyhow::Result<(Vec<ShardEntry>, IndexMap<String, SplitEntry>)> {
        Ok((self.done, self.splits))
    }

    fn close_current(&mut self) -> anyhow::Result<()> {
        if let Some((mut writer, _, _)) = self.current.take() {
            // Closed now, so it finishes while the next shard is written (it used to wait,
            // compressor and all, until it was joined).
            writer.close_input()?;
            self.finishing.push_back(writer);
            while self.finishing.len() >= self.max_writers {
                self.join_oldest()?;
            }
        }
        Ok(())
    }

    fn join_oldest(&mut self) -> anyhow::Result<()> {
        if let Some(w) = self.finishing.pop_front() {
            self.done.push(w.finish()?);
        }
        Ok(())
    }
}

impl Sink for Packer<'_> {
    fn start_split(&mut self, split: &str) -> anyhow::Result<()> {
        self.split = split.to_string();
        self.index = 0;
        Ok(())
    }

    fn push(&mut self, sample: PackedSample) -> anyhow::Result<()> {
        let bytes = tar_bytes(&sample.fields);
        let full = match &self.current {
            Some((_, n, b)) => *n >= self.cfg.max_samples || b + bytes + TAR_END > self.cfg.max_bytes,
            None => false,
        };
        if full {
            self.close_current()?;
        }
        if self.current.is_none() {
            let name = shard_file_name(self.name, &self.split, self.index, self.settings.zstd_level.is_some());
            self.index += 1;
            let writer = ShardWriter::spawn(self.dir, name, self.split.clone(), self.settings)?;
            self.current = Some((writer, 0, 0));
        }
        let (writer, n, b) = self.current.as_mut().context("no open shard")?;
        writer.send(sample, bytes)?;
        *n += 1;
        *b += bytes;
        Ok(())
    }

    fn end_split(&mut self) -> anyhow::Result<()> {
        self.close_current()?;
        while !self.finishing.is_empty() {
            self.join_oldest()?;
        }
        let shards: Vec<&ShardEntry> = self.done.iter().filter(|s| s.split == self.split).collect();
        let zstd = self.settings.zstd_level.is_some();
        self.splits.insert(
            self.split.clone(),
            SplitEntry {
                samples: shards.iter().map(|s| s.samples).sum(),
                shards: shards.len() as u64,
                url: split_url(self.name, &self.split, shards.len() as u64, zstd),
            },
        );
        Ok(())
    }
}

/// Replace `shards/` with the completed `shards.partial/`. A crash between the two renames leaves
/// `shards.old/`, which `recover_swap` puts back on the next run.
pub fn swap_into_place(partial: &Path, shards: &Path, old: &Path) -> anyhow::Result<()> {
    if old.exists() {
        fs::remove_dir_all(old)?;
    }
    if shards.exists() {
        fs::rename(shards, old)?;
    }
    fs::rename(partial, shards)?;
    if let Some(parent) = shards.parent() {
        crate::fsx::sync_dir(parent)?;
    }
    if old.exists() {
        fs::remove_dir_all(old)?;
    }
    Ok(())
}

/// Undo a swap interrupted between its renames.
pub fn recover_swap(shards: &Path, old: &Path) -> anyhow::Result<()> {
    if old.exists() {
        if shards.exists() {
            fs::remove_dir_all(old)?;
        } else {
            fs::rename(old, shards)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(splits: &[(&str, f64)], max_samples: u64, max_bytes: u64) -> ShardConfig {
        ShardConfig {
            max_samples,
            max_bytes,
            compression: Compression::None,
            level: 3,
            splits: splits.iter().map(|(n, f)| (n.to_string(), *f)).collect(),
            shuffle_seed: None,
            mtime: 0,
            md5: false,
        }
    }

    #[test]
    fn splits_follow_fractions_and_are_stable() {
        let c = cfg(&[("train", 0.8), ("val", 0.2)], 10, 1 << 30);
        let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        let train = keys.iter().filter(|k| split_of(k, &c.splits) == "train").count();
        assert!((7700..8300).contains(&train), "{train}");
        assert_eq!(split_of("k1", &c.splits), split_of("k1", &c.splits));
    }

    #[test]
    fn shards_respect_limits_and_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let jobs =
            || (0..50).map(|i| Job { key: format!("s{i:03}"), id: format!("s {i}"), input: i }).collect::<Vec<_>>();
        let make = |j: &Job<i32>| -> anyhow::Result<Result<Fields, SampleError>> {
            if j.input == 7 {
                return Ok(Err(SampleError("bad".into())));
            }
            Ok(Ok(vec![("txt".into(), vec![b'x'; (j.input as usize) * 100])]))
        };
        let c = cfg(&[("train", 0.5), ("val", 0.5)], 8, 20_000);
        let info = DatasetInfo { name: "t", recipe_sha256: "0", classes: None };
        let mut outputs = Vec::new();
        for threads in [1, 2] {
            let out = dir.path().join(format!("o{threads}"));
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let report = pool.install(|| write_dataset(jobs(), make, &c, &info, &out, &Reporter::silent())).unwrap();
            assert_eq!(report.failures.len(), 1);
            assert_eq!(report.manifest.samples, 49);
            for s in &report.manifest.shards {
                assert!(s.samples <= 8);
                assert!(s.bytes <= 20_000 || s.samples == 1, "{s:?}");
            }
            let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&out)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap())
                })
                .collect();
            files.sort();
            outputs.push(files);
        }
        assert_eq!(outputs[0], outputs[1]);
    }

    #[test]
    fn zstd_output_is_the_same_for_any_worker_count() {
        // ~24 MB in one shard: several zstd jobs, so the workers really split the frame.
        let dir = tempfile::tempdir().unwrap();
        let jobs =
            || (0..24).map(|i| Job { key: format!("b{i:02}"), id: i.to_string(), input: i as u64 }).collect::<Vec<_>>();
        let make = |j: &Job<u64>| -> anyhow::Result<Result<Fields, SampleError>> {
            let mut x = j.input.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let data: Vec<u8> = (0..1 << 20)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if i % 3 == 0 {
                        (x & 0xff) as u8
                    } else {
                        (i % 251) as u8
                    }
                })
                .collect();
            Ok(Ok(vec![("bin".into(), data)]))
        };
        let mut c = cfg(&[("all", 1.0)], 1000, 1 << 30);
        c.compression = Compression::Zstd;
        let info = DatasetInfo { name: "z", recipe_sha256: "0", classes: None };
        let mut outputs = Vec::new();
        for threads in [1, 2, 4] {
            let out = dir.path().join(format!("z{threads}"));
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| write_dataset(jobs(), make, &c, &info, &out, &Reporter::silent())).unwrap();
            outputs.push(fs::read(out.join("z-000000.tar.zst")).unwrap());
        }
        assert!(outputs[0].len() > 8 << 20, "{}", outputs[0].len());
        assert_eq!(outputs[0], outputs[1]);
        assert_eq!(outputs[0], outputs[2]);
        let plain = zstd::stream::decode_all(outputs[0].as_slice()).unwrap();
        assert_eq!(plain.len() as u64, 24 * (512 + (1 << 20)) + 1024);
    }
}
