//! Parts of a split shard run. `etd shard --task-index I --num-tasks N` makes the samples of its
//! share and writes them, with an index, into one self-contained folder `parts/shard-I-of-N/`
//! (`samples.tar` + `part.json`). `etd shard --merge` reads all N parts and packs their samples
//! through the same ordering and packing as a single `etd shard`, so the shards and manifest are
//! byte-identical for any N: which samples exist, their order, their split and the shard
//! boundaries depend only on the samples, never on which task made them.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::writer::{ustar_header, PackedSample, TAR_BLOCK};
use super::{run_pipeline, Failed, Job, Sink};
use crate::error::UserError;
use crate::report::Reporter;
use crate::sample::{Fields, SampleError};
use crate::store::FailureEntry;

/// The value of `format` in every `part.json`.
pub const PART_FORMAT: &str = "etd-shard-part/1";
/// The part's index file.
pub const PART_INDEX: &str = "part.json";
/// The part's samples: a plain tar, each sample's members in a row.
pub const PART_SAMPLES: &str = "samples.tar";

/// The folder name of part `index` of `count`.
pub fn part_dir_name(index: u32, count: u32) -> String {
    format!("shard-{index}-of-{count}")
}

/// `part.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartIndex {
    /// Always [`PART_FORMAT`].
    pub format: String,
    /// Version of etd that made the part (a merge takes parts of its own version only).
    pub etd_version: String,
    /// The recipe's `name`.
    pub name: String,
    /// sha256 of the recipe file's bytes.
    pub recipe_sha256: String,
    /// This part's task index and the number of tasks.
    pub task: u32,
    pub tasks: u32,
    /// The manifest's class list as this task saw it.
    pub classes: Option<Vec<String>>,
    /// Units of this task recorded as fetched.
    pub units_done: u64,
    /// Units of this task that failed to fetch (the merge lists them in failures.jsonl).
    pub fetch_failures: Vec<FailureEntry>,
    /// Size and sha256 of `samples.tar`.
    pub samples_bytes: u64,
    pub samples_sha256: String,
    /// The samples in `samples.tar`, in key order.
    pub samples: Vec<PartSample>,
    /// Samples that could not be made, in key order.
    pub failures: Vec<PartFailure>,
}

/// One sample in `samples.tar`: its members are the `len` bytes from `offset`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSample {
    pub key: String,
    pub id: String,
    pub offset: u64,
    pub len: u64,
}

/// A sample that could not be made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartFailure {
    pub key: String,
    pub id: String,
    pub reason: String,
}

/// What a part records besides its samples.
pub struct PartInfo<'a> {
    pub name: &'a str,
    pub recipe_sha256: &'a str,
    pub classes: Option<Vec<String>>,
    pub index: u32,
    pub count: u32,
    pub units_done: u64,
    pub fetch_failures: Vec<FailureEntry>,
}

/// Make the samples of `jobs` and write them as the part folder `dir`, replacing an older one
/// only once the new one is complete (a stopped run leaves no part, and the next run starts over).
pub fn write_part<T, F>(
    jobs: Vec<Job<T>>,
    make: F,
    info: PartInfo<'_>,
    dir: &Path,
    reporter: &Reporter,
) -> anyhow::Result<PartIndex>
where
    T: Sync,
    F: Fn(&Job<T>) -> anyhow::Result<Result<Fields, SampleError>> + Sync,
{
    let parent = dir.parent().context("a part folder has a parent")?;
    let name = dir.file_name().context("a part folder has a name")?.to_string_lossy().into_owned();
    let partial = parent.join(format!("{name}.partial"));
    let old = parent.join(format!("{name}.old"));
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir_all(&partial)?;
    let written = make_part(jobs, &make, info, &partial, reporter).and_then(|index| {
        crate::stop::check(|| "the shard task did not finish; it leaves no part".into())?;
        Ok(index)
    });
    let index = match written {
        Ok(index) => index,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    if dir.exists() {
        fs::rename(dir, &old)?;
    }
    fs::rename(&partial, dir)?;
    crate::fsx::sync_dir(parent)?;
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    Ok(index)
}

fn make_part<T, F>(
    mut jobs: Vec<Job<T>>,
    make: &F,
    info: PartInfo<'_>,
    dir: &Path,
    reporter: &Reporter,
) -> anyhow::Result<PartIndex>
where
    T: Sync,
    F: Fn(&Job<T>) -> anyhow::Result<Result<Fields, SampleError>> + Sync,
{
    jobs.sort_by(|a, b| a.key.cmp(&b.key));
    let threads = rayon::current_num_threads().max(1);
    let progress = reporter.start("shard", jobs.len() as u64);
    let file = fs::File::create(dir.join(PART_SAMPLES))?;
    let sink =
        PartSink { out: BufWriter::with_capacity(1 << 20, file), sha: Sha256::new(), offset: 0, samples: Vec::new() };
    let ordered = vec![(String::new(), jobs)];
    let (sink, failed, _) = run_pipeline(&ordered, make, threads, sink, &progress)?;
    drop(progress);
    let PartSink { mut out, mut sha, offset, samples } = sink;
    // The two zero blocks that end a tar, so the file is a tar GNU tar lists.
    let end = [0u8; 2 * TAR_BLOCK as usize];
    out.write_all(&end)?;
    sha.update(end);
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let index = PartIndex {
        format: PART_FORMAT.into(),
        etd_version: crate::VERSION.into(),
        name: info.name.into(),
        recipe_sha256: info.recipe_sha256.into(),
        task: info.index,
        tasks: info.count,
        classes: info.classes,
        units_done: info.units_done,
        fetch_failures: info.fetch_failures,
        samples_bytes: offset + end.len() as u64,
        samples_sha256: hex(&sha.finalize()),
        samples,
        failures: failed
            .into_iter()
            .map(|Failed { key, id, error }| PartFailure { key, id, reason: error.0 })
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&index)?;
    json.push(b'\n');
    crate::fsx::write_atomic(&dir.join(PART_INDEX), &json)?;
    crate::fsx::sync_dir(dir)?;
    Ok(index)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes samples into `samples.tar` and indexes them.
struct PartSink {
    out: BufWriter<fs::File>,
    sha: Sha256,
    offset: u64,
    samples: Vec<PartSample>,
}

impl PartSink {
    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.out.write_all(bytes)?;
        self.sha.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

impl Sink for PartSink {
    fn start_split(&mut self, _split: &str) -> anyhow::Result<()> {
        Ok(())
    }

    fn push(&mut self, sample: PackedSample) -> anyhow::Result<()> {
        let start = self.offset;
        let pad = [0u8; TAR_BLOCK as usize];
        for (field, data) in &sample.fields {
            // mtime 0: the merge writes the members again with the recipe's mtime.
            let header = ustar_header(&format!("{}.{field}", sample.key), data.len() as u64, 0)?;
            self.write(header.as_bytes())?;
            self.write(data)?;
            let rest = (data.len() as u64).next_multiple_of(TAR_BLOCK) - data.len() as u64;
            self.write(&pad[..rest as usize])?;
        }
        self.samples.push(PartSample { key: sample.key, id: sample.id, offset: start, len: self.offset - start });
        Ok(())
    }

    fn end_split(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The parts of one split shard run, checked to be complete and consistent.
pub struct PartSet {
    parts: Vec<OpenPart>,
}

struct OpenPart {
    dir: PathBuf,
    index: PartIndex,
    file: fs::File,
}

/// Where a sample to merge comes from.
pub enum PartRef {
    /// Bytes `offset..offset+len` of part `part`'s samples.
    Sample { part: usize, offset: u64, len: u64 },
    /// A sample the task could not make.
    Failed(String),
}

impl PartSet {
    /// The part folders `shard-*-of-N` under `root` (`<workdir>/parts`), of one N.
    pub fn find(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut found: Vec<(u32, u32, PathBuf)> = Vec::new();
        if root.is_dir() {
            for entry in fs::read_dir(root)? {
                let path = entry?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if let Some((i, n)) = parse_dir_name(&name) {
                    if path.is_dir() {
                        found.push((n, i, path));
                    }
                }
            }
        }
        found.sort();
        let counts: BTreeSet<u32> = found.iter().map(|(n, _, _)| *n).collect();
        if counts.len() > 1 {
            let list: Vec<String> = counts.iter().map(|n| format!("of-{n}")).collect();
            return Err(UserError::usage(format!(
                "{} holds parts of {} different splits ({})",
                root.display(),
                counts.len(),
                list.join(", ")
            ))
            .with_hint("remove the parts of the split you do not want, or name the part folders to merge")
            .into());
        }
        if found.is_empty() {
            return Err(UserError::usage(format!("no shard part in {}", root.display()))
                .with_hint(
                    "run `etd shard RECIPE --task-index I --num-tasks N` for every I first, or name the part folders",
                )
                .into());
        }
        Ok(found.into_iter().map(|(_, _, p)| p).collect())
    }

    /// Open and check `dirs`: all N parts of one split, of this recipe and this etd version,
    /// each `samples.tar` whole (size and sha256 as its index says).
    pub fn open(dirs: &[PathBuf], recipe_sha256: &str) -> anyhow::Result<Self> {
        let mut parts: Vec<OpenPart> = Vec::new();
        for dir in dirs {
            let index_path = dir.join(PART_INDEX);
            let bytes = fs::read(&index_path).map_err(|e| {
                UserError::usage(format!(
                    "{} is not a shard part: {}",
                    dir.display(),
                    crate::fsx::os_reason(&e, &index_path)
                ))
                .with_hint("name folders written by `etd shard --task-index I --num-tasks N` (parts/shard-I-of-N)")
            })?;
            let index: PartIndex = serde_json::from_slice(&bytes).map_err(|e| {
                UserError::usage(format!("{}: not a shard part index: {e}", index_path.display()))
                    .with_hint("make the part again with `etd shard --task-index I --num-tasks N`")
            })?;
            if index.format != PART_FORMAT {
                return Err(UserError::usage(format!(
                    "{}: format `{}`, expected `{PART_FORMAT}`",
                    index_path.display(),
                    index.format
                ))
                .into());
            }
            if index.etd_version != crate::VERSION {
                return Err(UserError::usage(format!(
                    "{}: made by etd {}, and this is etd {}",
                    index_path.display(),
                    index.etd_version,
                    crate::VERSION
                ))
                .with_hint("make every part and the merge with the same etd version, so the shards are reproducible")
                .into());
            }
            if index.recipe_sha256 != recipe_sha256 {
                return Err(UserError::usage(format!(
                    "{}: made from another recipe (sha256 {}, this recipe's is {recipe_sha256})",
                    index_path.display(),
                    index.recipe_sha256
                ))
                .with_hint("make the parts again with this recipe, or merge with the recipe they were made from")
                .into());
            }
            let samples_path = dir.join(PART_SAMPLES);
            let file = fs::File::open(&samples_path)?;
            let (size, sha256) = crate::digest::hash_file(&samples_path)?;
            if size != index.samples_bytes || sha256 != index.samples_sha256 {
                return Err(UserError::failure(format!(
                    "{}: {size} bytes with sha256 {sha256}, but its part index says {} bytes with sha256 {}",
                    samples_path.display(),
                    index.samples_bytes,
                    index.samples_sha256
                ))
                .with_hint("the part was damaged or cut short in transfer; make or transfer it again")
                .into());
            }
            parts.push(OpenPart { dir: dir.clone(), index, file });
        }
        let Some(first) = parts.first() else {
            return Err(UserError::usage("no shard part to merge").into());
        };
        let count = first.index.tasks;
        let mut seen: HashMap<u32, &Path> = HashMap::new();
        for p in &parts {
            if p.index.tasks != count {
                return Err(UserError::usage(format!(
                    "{} is part of a split into {} tasks, {} of one into {count}",
                    p.dir.display(),
                    p.index.tasks,
                    first.dir.display()
                ))
                .with_hint("merge the parts of one split only")
                .into());
            }
            if p.index.classes != first.index.classes || p.index.name != first.index.name {
                return Err(UserError::usage(format!(
                    "{} and {} disagree on the dataset's name or classes",
                    p.dir.display(),
                    first.dir.display()
                ))
                .with_hint("make every part from the same recipe and targets")
                .into());
            }
            if let Some(other) = seen.insert(p.index.task, &p.dir) {
                return Err(UserError::usage(format!(
                    "{} and {} are both task {} of {count}",
                    other.display(),
                    p.dir.display(),
                    p.index.task
                ))
                .into());
            }
        }
        let missing: Vec<String> = (0..count).filter(|i| !seen.contains_key(i)).map(|i| i.to_string()).collect();
        if !missing.is_empty() {
            return Err(UserError::usage(format!(
                "the parts of task{} {} of {count} are missing",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ))
            .with_hint(format!(
                "run `etd shard RECIPE --task-index I --num-tasks {count}` for {}, or name every part folder",
                if missing.len() == 1 { "it" } else { "each" }
            ))
            .into());
        }
        parts.sort_by_key(|p| p.index.task);
        Ok(PartSet { parts })
    }

    /// The classes the parts agree on.
    pub fn classes(&self) -> Option<Vec<String>> {
        self.parts.first().and_then(|p| p.index.classes.clone())
    }

    /// Units recorded as fetched, over all parts.
    pub fn units_done(&self) -> u64 {
        self.parts.iter().map(|p| p.index.units_done).sum()
    }

    /// The fetch failures of every task.
    pub fn fetch_failures(&self) -> Vec<FailureEntry> {
        self.parts.iter().flat_map(|p| p.index.fetch_failures.iter().cloned()).collect()
    }

    /// One job per sample (made or failed) of every part; a key in two parts is an error.
    pub fn jobs(&self) -> anyhow::Result<Vec<Job<PartRef>>> {
        let mut jobs = Vec::new();
        let mut keys: HashMap<&str, usize> = HashMap::new();
        for (n, p) in self.parts.iter().enumerate() {
            let made = p
                .index
                .samples
                .iter()
                .map(|s| (&s.key, &s.id, PartRef::Sample { part: n, offset: s.offset, len: s.len }));
            let failed = p.index.failures.iter().map(|f| (&f.key, &f.id, PartRef::Failed(f.reason.clone())));
            for (key, id, input) in made.chain(failed) {
                if let Some(other) = keys.insert(key, n) {
                    return Err(UserError::usage(format!(
                        "sample `{key}` is in both {} and {}",
                        self.parts[other].dir.display(),
                        p.dir.display()
                    ))
                    .with_hint("the parts overlap: merge the parts of one split only")
                    .into());
                }
                jobs.push(Job { key: key.clone(), id: id.clone(), input });
            }
        }
        Ok(jobs)
    }

    /// The fields of a job's sample, read back from its part.
    pub fn make(&self, job: &Job<PartRef>) -> anyhow::Result<Result<Fields, SampleError>> {
        match &job.input {
            PartRef::Failed(reason) => Ok(Err(SampleError(reason.clone()))),
            PartRef::Sample { part, offset, len } => {
                let p = &self.parts[*part];
                let mut buf = vec![0u8; usize::try_from(*len)?];
                crate::fsx::read_exact_at(&p.file, &mut buf, *offset)
                    .with_context(|| format!("cannot read sample `{}` from {}", job.key, p.dir.display()))?;
                let fields = parse_sample(&job.key, &buf).with_context(|| {
                    format!("{}: sample `{}` at byte {offset} is damaged", p.dir.join(PART_SAMPLES).display(), job.key)
                })?;
                Ok(Ok(fields))
            }
        }
    }
}

/// `shard-I-of-N` -> (I, N).
fn parse_dir_name(name: &str) -> Option<(u32, u32)> {
    let (i, n) = name.strip_prefix("shard-")?.split_once("-of-")?;
    let (i, n) = (i.parse::<u32>().ok()?, n.parse::<u32>().ok()?);
    (i < n).then_some((i, n))
}

/// A sample's members, as `PartSink` wrote them.
fn parse_sample(key: &str, mut bytes: &[u8]) -> anyhow::Result<Fields> {
    let block = TAR_BLOCK as usize;
    let mut fields = Vec::new();
    let prefix = format!("{key}.");
    while !bytes.is_empty() {
        anyhow::ensure!(bytes.len() >= block, "a member header is cut short");
        let header = tar::Header::from_byte_slice(&bytes[..block]);
        let name = String::from_utf8(header.path_bytes().into_owned())?;
        let field = name.strip_prefix(&prefix).with_context(|| format!("member `{name}` is not of this sample"))?;
        let size = usize::try_from(header.entry_size()?)?;
        let padded = size.next_multiple_of(block);
        anyhow::ensure!(bytes.len() >= block + padded, "member `{name}` is cut short");
        fields.push((field.to_string(), bytes[block..block + size].to_vec()));
        bytes = &bytes[block + padded..];
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_folder_names() {
        assert_eq!(part_dir_name(2, 5), "shard-2-of-5");
        assert_eq!(parse_dir_name("shard-2-of-5"), Some((2, 5)));
        assert_eq!(parse_dir_name("shard-5-of-5"), None);
        assert_eq!(parse_dir_name("shard-2-of-5.partial"), None);
        assert_eq!(parse_dir_name("x-2-of-5"), None);
    }

    #[test]
    fn samples_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = fs::File::create(dir.path().join("s.tar")).unwrap();
        let mut sink = PartSink { out: BufWriter::new(file), sha: Sha256::new(), offset: 0, samples: Vec::new() };
        let a: Fields = vec![("npy".into(), vec![7u8; 700]), ("json".into(), b"{}".to_vec())];
        let b: Fields = vec![("cls".into(), b"3".to_vec())];
        sink.push(PackedSample { key: "a".into(), id: "A".into(), fields: a.clone() }).unwrap();
        sink.push(PackedSample { key: "b".into(), id: "B".into(), fields: b.clone() }).unwrap();
        let PartSink { out, samples, .. } = sink;
        drop(out);
        let bytes = fs::read(dir.path().join("s.tar")).unwrap();
        let slice = |s: &PartSample| &bytes[s.offset as usize..(s.offset + s.len) as usize];
        assert_eq!(parse_sample("a", slice(&samples[0])).unwrap(), a);
        assert_eq!(parse_sample("b", slice(&samples[1])).unwrap(), b);
        assert!(parse_sample("b", slice(&samples[0])).is_err());
        assert!(parse_sample("a", &slice(&samples[0])[..1000]).is_err());
    }
}
