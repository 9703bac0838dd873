//! Grouping light-curve rows by object with bounded memory. Partition CSVs are read in parallel,
//! each streamed once; the rows of selected objects are buffered (object index + row), and when
//! the buffer passes its share of the memory budget it is sorted and spilled to a run file. At the
//! end of a partition its runs are merged in one sequential pass into a grouped file (rows by
//! object, each light curve sorted) with an offset per object, which the shard stage reads in
//! parallel. Nothing assumes an object's rows are contiguous in a partition, or that an object
//! lives in one partition only.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

/// The 36 columns of a partition file, in order (docs/archives.md 3.2).
pub const CSV_HEADER: [&str; 36] = [
    "ATO_ID",
    "starID",
    "ra",
    "dec",
    "CLASS",
    "gmag",
    "rmag",
    "imag",
    "zmag",
    "ymag",
    "prob_CBF",
    "prob_CBH",
    "prob_DBF",
    "prob_DBH",
    "prob_HARD",
    "prob_MIRA",
    "prob_MPULSE",
    "prob_MSINE",
    "prob_NSINE",
    "prob_PULSE",
    "prob_SINE",
    "prob_IRR",
    "prob_LPV",
    "prob_dubious",
    "fp_period",
    "ls_Pday",
    "fp_LSperiod",
    "fp_lngfitper",
    "vf_c_med",
    "vf_o_med",
    "mjd",
    "dra",
    "ddec",
    "filter",
    "m",
    "dm",
];

/// One detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub mjd: f64,
    pub filter: u8,
    pub m: f32,
    pub dm: f32,
    pub dra: f32,
    pub ddec: f32,
}

/// Bytes of a row in the grouped file.
const ROW_BYTES: usize = 8 + 1 + 4 * 4;

impl Row {
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.mjd.to_le_bytes());
        out[8] = self.filter;
        for (k, v) in [self.m, self.dm, self.dra, self.ddec].into_iter().enumerate() {
            out[9 + 4 * k..13 + 4 * k].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(b: &[u8]) -> Row {
        let f = |i: usize| f32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Row {
            mjd: f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            filter: b[8],
            m: f(9),
            dm: f(13),
            dra: f(17),
            ddec: f(21),
        }
    }

    /// The order of a light curve: by MJD, then by every other field, so that it does not depend
    /// on the order rows were read in (runs, spills, threads).
    pub fn order(&self, other: &Row) -> Ordering {
        self.mjd
            .total_cmp(&other.mjd)
            .then(self.filter.cmp(&other.filter))
            .then(self.m.total_cmp(&other.m))
            .then(self.dm.total_cmp(&other.dm))
            .then(self.dra.total_cmp(&other.dra))
            .then(self.ddec.total_cmp(&other.ddec))
    }
}

/// A buffered row and the index of its object, laid out flat to take 32 bytes (a `Row` beside a
/// `u32` would take 40).
#[derive(Debug, Clone, Copy)]
struct Entry {
    mjd: f64,
    m: f32,
    dm: f32,
    dra: f32,
    ddec: f32,
    object: u32,
    filter: u8,
}

/// Bytes of an entry in a spill run.
const ENTRY_BYTES: usize = 4 + ROW_BYTES;

impl Entry {
    fn new(object: u32, r: Row) -> Entry {
        Entry { mjd: r.mjd, m: r.m, dm: r.dm, dra: r.dra, ddec: r.ddec, object, filter: r.filter }
    }

    fn row(&self) -> Row {
        Row { mjd: self.mjd, filter: self.filter, m: self.m, dm: self.dm, dra: self.dra, ddec: self.ddec }
    }

    fn order(&self, other: &Entry) -> Ordering {
        self.object.cmp(&other.object).then_with(|| self.row().order(&other.row()))
    }
}

/// A row that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

/// What grouping found.
#[derive(Debug, Default)]
pub struct GroupReport {
    pub rows_read: u64,
    pub rows_kept: u64,
    pub bad_rows: u64,
    /// The first bad rows, for the log (partition order, then line order).
    pub bad_examples: Vec<BadRow>,
    /// Times the buffered rows passed the memory budget and went to a run file.
    pub spills: usize,
}

/// Bad rows kept for the log.
const BAD_EXAMPLES: usize = 20;

impl GroupReport {
    fn add(&mut self, other: GroupReport) {
        self.rows_read += other.rows_read;
        self.rows_kept += other.rows_kept;
        self.bad_rows += other.bad_rows;
        self.spills += other.spills;
        let room = BAD_EXAMPLES.saturating_sub(self.bad_examples.len());
        self.bad_examples.extend(other.bad_examples.into_iter().take(room));
    }
}

/// The selected objects: `ATO_ID` -> index (their position in the list given).
pub struct Selection {
    index: FxHashMap<Box<[u8]>, u32>,
}

impl Selection {
    pub fn new(ids: &[String]) -> Self {
        let index = ids.iter().enumerate().map(|(i, id)| (id.as_bytes().into(), i as u32)).collect();
        Selection { index }
    }

    fn get(&self, id: &[u8]) -> Option<u32> {
        self.index.get(id.trim_ascii()).copied()
    }
}

/// One partition file to group: its path, the name reports use, and its size (as fetch
/// recorded it: the largest partitions are grouped first).
#[derive(Clone)]
pub struct PartitionFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
}

/// Group the rows of the selected objects from every partition. Partitions are read in parallel
/// (one per thread); `budget` bytes of buffered rows are shared among the threads, so memory does
/// not depend on the partition sizes. The result does not depend on the thread count or budget.
pub fn group(
    selection: &Selection,
    partitions: &[PartitionFile],
    budget: usize,
    dir: &Path,
) -> anyhow::Result<(Grouped, GroupReport)> {
    fs::create_dir_all(dir)?;
    let threads = rayon::current_num_threads().clamp(1, partitions.len().max(1));
    let share = budget / threads;
    // The first partition that fails stops the others (they answer `None`).
    let stop = AtomicBool::new(false);
    // Largest partition first, each thread taking the next as it gets free, so the last one to
    // finish is a small one (partitions are dec bands: 10 MB to 116 MB at 1 GB in all).
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(partitions[k].size));
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, anyhow::Result<Option<PartGroups>>)> = (0..threads)
        .into_par_iter()
        .flat_map_iter(|_| {
            let mut mine = Vec::new();
            while let Some(&k) = order.get(next.fetch_add(1, AtomicOrdering::Relaxed)) {
                let p = &partitions[k];
                let mut g = Grouper::new(selection, share, dir, k, &stop);
                let grouped = g.add_partition(&p.path, &p.name).and_then(|done| match done {
                    true => g.finish().map(Some),
                    false => Ok(None),
                });
                if grouped.is_err() {
                    stop.store(true, AtomicOrdering::Relaxed);
                }
                mine.push((k, grouped));
            }
            mine
        })
        .collect();
    // Back in the partitions' order (the grouped files are numbered by it).
    results.sort_by_key(|(k, _)| *k);
    let mut report = GroupReport::default();
    let mut parts = Vec::with_capacity(results.len());
    let mut stopped = false;
    for (_, r) in results {
        match r? {
            Some(PartGroups { path, segments, report: part }) => {
                report.add(part);
                parts.push((path, segments));
            }
            None => stopped = true,
        }
    }
    if stopped {
        crate::stop::check(|| "shard did not finish (grouping light curves); the previous shards are intact".into())?;
    }
    anyhow::ensure!(!stopped, "grouping stopped without an error");
    Ok((Grouped::new(parts)?, report))
}

/// Groups the rows of one partition: buffered rows are sorted and spilled to run files when
/// they pass the budget, then merged into one grouped file.
struct Grouper<'a> {
    selection: &'a Selection,
    stop: &'a AtomicBool,
    buffer: Vec<Entry>,
    /// Entries the budget holds.
    limit: usize,
    dir: &'a Path,
    part: usize,
    runs: Vec<PathBuf>,
    report: GroupReport,
}

/// Where an object's rows are in a grouped file: (object, byte offset, row count).
type Segment = (u32, u64, u32);

/// A partition's grouped file: rows by object (sorted), with a segment per object.
struct PartGroups {
    path: PathBuf,
    segments: Vec<Segment>,
    report: GroupReport,
}

impl<'a> Grouper<'a> {
    fn new(selection: &'a Selection, budget: usize, dir: &'a Path, part: usize, stop: &'a AtomicBool) -> Self {
        let limit = (budget / std::mem::size_of::<Entry>()).max(1024);
        Grouper {
            selection,
            stop,
            buffer: Vec::new(),
            limit,
            dir,
            part,
            runs: Vec::new(),
            report: GroupReport::default(),
        }
    }

    /// Whether to stop: another partition failed, or a signal asked etd to stop.
    fn stopping(&self) -> bool {
        self.stop.load(AtomicOrdering::Relaxed) || crate::stop::requested().is_some()
    }

    /// Stream one partition file, keeping the rows of selected objects; false if another
    /// partition failed meanwhile or a signal asked to stop.
    fn add_partition(&mut self, path: &Path, name: &str) -> anyhow::Result<bool> {
        if self.stopping() {
            return Ok(false);
        }
        let file = fs::File::open(path)?;
        let mut lines = Lines::new(file);
        let read_err = |line: u64, e: std::io::Error| anyhow::anyhow!("{name}: cannot read past line {line}: {e}");
        let header = match lines.next_line().map_err(|e| read_err(0, e))? {
            Some((_, header)) => header.split(|b| *b == b',').map(|h| String::from_utf8_lossy(h).trim().to_string()),
            None => anyhow::bail!("{name}: cannot read the header: the file is empty"),
        };
        let names: Vec<String> = header.collect();
        if names != CSV_HEADER {
            anyhow::bail!(
                "{name}: line 1: expected the 36-column ATLAS-VAR header `{}`, found `{}`",
                CSV_HEADER.join(","),
                names.join(",")
            );
        }
        // The last row's id and its object (to start: the empty id and what it maps to).
        let (mut last_id, mut last_object) = (Vec::new(), self.selection.get(b""));
        loop {
            // A failed read stops the run: the rest of the file cannot be trusted (a row is
            // skipped only when it was read whole but does not parse).
            let at = lines.line;
            let Some((line, text)) = lines.next_line().map_err(|e| read_err(at, e))? else { break };
            self.report.rows_read += 1;
            if self.report.rows_read.is_multiple_of(1 << 16) && self.stopping() {
                return Ok(false);
            }
            let id = memchr::memchr(b',', text).map_or(text, |end| &text[..end]);
            // An object's rows come in runs: the lookup is made once per run, not per row (a
            // cache miss in a table of every selected object, most of the reading's own CPU).
            if id != last_id.as_slice() {
                last_id.clear();
                last_id.extend_from_slice(id);
                last_object = self.selection.get(id);
            }
            let Some(object) = last_object else { continue };
            match parse_row(text) {
                Ok(row) => {
                    self.push(Entry::new(object, row))?;
                    self.report.rows_kept += 1;
                }
                Err(reason) => self.bad(name, line, reason),
            }
        }
        Ok(true)
    }

    fn push(&mut self, entry: Entry) -> anyhow::Result<()> {
        if self.buffer.len() == self.buffer.capacity() {
            if self.buffer.len() >= self.limit {
                self.spill()?;
            } else {
                // Grow by doubling, but never past the budget.
                let want = (self.buffer.capacity() * 2).max(4096).min(self.limit);
                self.buffer.reserve_exact(want - self.buffer.len());
            }
        }
        self.buffer.push(entry);
        Ok(())
    }

    fn bad(&mut self, file: &str, line: u64, reason: String) {
        self.report.bad_rows += 1;
        if self.report.bad_examples.len() < BAD_EXAMPLES {
            self.report.bad_examples.push(BadRow { file: file.to_string(), line, reason });
        }
    }

    fn sort_buffer(&mut self) {
        // Not a parallel sort: a rayon thread waiting on one could start another partition
        // meanwhile, with this buffer still held (the budget counts one buffer per thread).
        self.buffer.sort_unstable_by(Entry::order);
    }

    /// Write the buffered rows, sorted, as a run file.
    fn spill(&mut self) -> anyhow::Result<()> {
        self.report.spills += 1;
        self.write_run()
    }

    fn write_run(&mut self) -> anyhow::Result<()> {
        self.sort_buffer();
        let path = self.dir.join(format!("part-{:04}-run-{:05}.bin", self.part, self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(&path)?);
        for e in &self.buffer {
            write_entry(&mut w, e)?;
        }
        w.flush()?;
        self.runs.push(path);
        self.buffer.clear();
        if self.runs.len() >= MAX_RUNS {
            // Few runs at a time: merge these into one, so open files and read buffers stay few.
            let merged = self.dir.join(format!("part-{:04}-run-merged.bin", self.part));
            let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(&merged)?);
            merge_runs(&self.runs, |e| write_entry(&mut w, &e))?;
            w.flush()?;
            drop(w);
            let first = self.runs[0].clone();
            fs::rename(&merged, &first)?;
            self.runs.truncate(1);
        }
        Ok(())
    }

    /// Merge the runs (or sort the buffer, if nothing was spilled) into the grouped file.
    fn finish(mut self) -> anyhow::Result<PartGroups> {
        let path = self.dir.join(format!("part-{:04}-grouped.bin", self.part));
        let mut out = GroupedWriter::new(&path)?;
        if self.runs.is_empty() {
            self.sort_buffer();
            for e in std::mem::take(&mut self.buffer) {
                out.push(e)?;
            }
        } else {
            if !self.buffer.is_empty() {
                self.write_run()?;
            }
            self.buffer = Vec::new();
            merge_runs(&self.runs, |e| out.push(e))?;
        }
        let segments = out.finish()?;
        Ok(PartGroups { path, segments, report: self.report })
    }
}

/// Most run files merged at once (each is open with a 64 KiB buffer while merging).
const MAX_RUNS: usize = 64;

/// Merge sorted run files into `out` in order, then delete them.
fn merge_runs(runs: &[PathBuf], mut out: impl FnMut(Entry) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut heads = BinaryHeap::new();
    let mut readers = Vec::with_capacity(runs.len());
    for (k, p) in runs.iter().enumerate() {
        let mut r = BufReader::with_capacity(1 << 16, fs::File::open(p)?);
        if let Some(e) = read_entry(&mut r)? {
            heads.push(Head(e, k));
        }
        readers.push(r);
    }
    while let Some(Head(e, k)) = heads.pop() {
        out(e)?;
        if let Some(next) = read_entry(&mut readers[k])? {
            heads.push(Head(next, k));
        }
    }
    drop(readers);
    for p in runs {
        let _ = fs::remove_file(p);
    }
    Ok(())
}

/// A run's next entry, ordered for a min-heap (ties by run, so the merge is deterministic).
struct Head(Entry, usize);

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.order(&self.0).then(other.1.cmp(&self.1))
    }
}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}

fn write_entry(w: &mut impl Write, e: &Entry) -> anyhow::Result<()> {
    let mut bytes = [0u8; ENTRY_BYTES];
    bytes[..4].copy_from_slice(&e.object.to_le_bytes());
    e.row().encode(&mut bytes[4..]);
    w.write_all(&bytes)?;
    Ok(())
}

fn read_entry(r: &mut impl Read) -> anyhow::Result<Option<Entry>> {
    let mut b = [0u8; ENTRY_BYTES];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(Entry::new(u32::from_le_bytes(b[..4].try_into().expect("4 bytes")), Row::decode(&b[4..])))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes rows in (object, row) order and records where each object's rows start.
struct GroupedWriter {
    w: BufWriter<fs::File>,
    offset: u64,
    segments: Vec<Segment>,
}

impl GroupedWriter {
    fn new(path: &Path) -> anyhow::Result<Self> {
        Ok(GroupedWriter {
            w: BufWriter::with_capacity(1 << 20, fs::File::create(path)?),
            offset: 0,
            segments: Vec::new(),
        })
    }

    fn push(&mut self, e: Entry) -> anyhow::Result<()> {
        match self.segments.last_mut() {
            Some((object, _, count)) if *object == e.object => *count += 1,
            _ => self.segments.push((e.object, self.offset, 1)),
        }
        let mut bytes = [0u8; ROW_BYTES];
        e.row().encode(&mut bytes);
        self.w.write_all(&bytes)?;
        self.offset += ROW_BYTES as u64;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<Vec<Segment>> {
        self.w.flush()?;
        Ok(self.segments)
    }
}

/// The grouped light curves: for each object, its rows in one or more partitions' grouped files.
pub struct Grouped {
    files: Vec<(fs::File, PathBuf)>,
    /// (object, file, offset, count), by object then file.
    segments: Vec<(u32, u32, u64, u32)>,
}

impl Grouped {
    fn new(parts: Vec<(PathBuf, Vec<Segment>)>) -> anyhow::Result<Self> {
        let mut files = Vec::with_capacity(parts.len());
        let mut segments = Vec::new();
        for (k, (path, segs)) in parts.into_iter().enumerate() {
            let file = fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            files.push((file, path));
            segments.extend(segs.into_iter().map(|(object, offset, count)| (object, k as u32, offset, count)));
        }
        segments.sort_unstable_by_key(|&(object, file, _, _)| (object, file));
        Ok(Grouped { files, segments })
    }

    /// Object `i`'s rows, sorted (safe to call from several threads).
    pub fn rows(&self, i: usize) -> anyhow::Result<Vec<Row>> {
        let i = i as u32;
        let start = self.segments.partition_point(|s| s.0 < i);
        let end = start + self.segments[start..].partition_point(|s| s.0 == i);
        let mut rows = Vec::new();
        for &(_, file, offset, count) in &self.segments[start..end] {
            let (f, path) = &self.files[file as usize];
            let mut buf = vec![0u8; count as usize * ROW_BYTES];
            crate::fsx::read_exact_at(f, &mut buf, offset)
                .with_context(|| format!("cannot read {}", path.display()))?;
            rows.extend(buf.chunks_exact(ROW_BYTES).map(Row::decode));
        }
        if end - start > 1 {
            // The object has rows in several partitions: one order for all of them.
            rows.sort_unstable_by(Row::order);
        }
        Ok(rows)
    }
}

/// Columns of a partition row; the light curve is in the last [`TAIL`] (`mjd` .. `dm`).
const FIELDS: usize = CSV_HEADER.len();
const TAIL: usize = 6;

/// Longest line a partition may have (real rows are about 300 bytes).
const MAX_LINE: usize = 1 << 20;

/// The lines of a partition file, read through a 256 KiB buffer: split at `\n` (a `\r` before
/// it dropped), empty lines skipped, each with its 1-based line number. The partitions are
/// database dumps without quoting, so a line is a row and a comma ends a field (a stray `"` is
/// data, and a bad row stays one bad row instead of swallowing the rest of the file).
struct Lines<R> {
    inner: std::io::BufReader<R>,
    /// The current line.
    buf: Vec<u8>,
    /// Lines consumed so far.
    line: u64,
}

impl<R: Read> Lines<R> {
    fn new(inner: R) -> Self {
        Lines { inner: std::io::BufReader::with_capacity(1 << 18, inner), buf: Vec::new(), line: 0 }
    }

    fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        use std::io::BufRead;
        loop {
            self.buf.clear();
            // At most one byte past the longest line allowed: memory stays bounded.
            if (&mut self.inner).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            } else if self.buf.len() > MAX_LINE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {} is longer than {MAX_LINE} bytes", self.line),
                ));
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if !self.buf.is_empty() {
                return Ok(Some((self.line, &self.buf)));
            }
        }
    }
}

/// The light-curve fields of a row (the last [`TAIL`] of [`FIELDS`]); a row with another number
/// of fields is refused. Only the commas are counted in the columns before them (they repeat the
/// catalog, which the catalog file gives).
fn parse_row(line: &[u8]) -> Result<Row, String> {
    let count = count_commas(line) + 1;
    if count != FIELDS {
        return Err(format!("{count} fields, expected {FIELDS}"));
    }
    let mut tail: [&[u8]; TAIL] = [&[]; TAIL];
    let mut end = line.len();
    for field in tail.iter_mut().rev() {
        let comma = memchr::memrchr(b',', &line[..end]).expect("counted above");
        *field = &line[comma + 1..end];
        end = comma;
    }
    let text = |k: usize| std::str::from_utf8(tail[k - (FIELDS - TAIL)]).map(str::trim).unwrap_or("");
    let num = |k: usize| -> Result<f64, String> {
        text(k).parse::<f64>().map_err(|_| format!("{} `{}` is not a number", CSV_HEADER[k], text(k)))
    };
    let filter = match text(33).as_bytes() {
        [b] if b.is_ascii_alphabetic() => *b,
        _ => return Err(format!("filter `{}` is not one letter", text(33))),
    };
    let mjd = num(30)?;
    if !mjd.is_finite() {
        return Err(format!("mjd `{}` is not finite", text(30)));
    }
    Ok(Row { mjd, filter, m: num(34)? as f32, dm: num(35)? as f32, dra: num(31)? as f32, ddec: num(32)? as f32 })
}

/// The commas in `line`. Counted in blocks of 32 bytes into a byte-wide sum, which the compiler
/// turns into 16-byte compares and adds; a plain `filter(..).count()` into a `usize` was widened
/// to 64-bit lanes, 4 bytes per step, and was most of the grouping's own CPU.
fn count_commas(line: &[u8]) -> usize {
    let mut blocks = line.chunks_exact(32);
    let mut count = 0;
    for block in &mut blocks {
        count += block.iter().map(|&b| u8::from(b == b',')).sum::<u8>() as usize;
    }
    count + blocks.remainder().iter().filter(|&&b| b == b',').count()
}

/// A light curve's `npy` record: (name, dtype, unit, meaning).
pub const NPY_COLUMNS: [(&str, &str, &str, &str); 6] = [
    ("mjd", "<f8", "d", "MJD of the exposure"),
    ("filter", "|S1", "", "ATLAS filter: c (cyan) or o (orange)"),
    ("m", "<f4", "mag", "magnitude"),
    ("dm", "<f4", "mag", "magnitude uncertainty"),
    ("dra", "<f4", "arcsec", "RA offset of the detection from the object"),
    ("ddec", "<f4", "arcsec", "Dec offset of the detection from the object"),
];

/// The numpy record type of a light curve row ([`NPY_COLUMNS`], packed: 25 bytes).
fn npy_dtype() -> npyz::DType {
    npyz::DType::Record(
        NPY_COLUMNS
            .iter()
            .map(|(name, ty, _, _)| npyz::Field {
                name: name.to_string(),
                dtype: npyz::DType::Plain(ty.parse().expect("valid numpy type strings")),
            })
            .collect(),
    )
}

/// Bytes of one row in the `.npy` data.
const NPY_ROW_BYTES: usize = 8 + 1 + 4 * 4;

/// Serialise a light curve as a 1-d structured `.npy` (fields as [`NPY_COLUMNS`]): npyz's
/// header, then the rows written directly, little-endian and packed as the header says (npyz's
/// field-by-field writer cost more than the rest of the sample; a test holds the bytes to it).
pub fn npy(rows: &[Row]) -> std::io::Result<Vec<u8>> {
    use npyz::WriterBuilder;
    // The header depends only on the row count: npyz formats it once per count and thread (it
    // cost more than the rows), and later light curves of that length copy it.
    thread_local! {
        static HEADERS: std::cell::RefCell<FxHashMap<usize, Box<[u8]>>> = Default::default();
    }
    const CACHED_HEADERS: usize = 4096;
    let mut out = Vec::with_capacity(rows.len() * NPY_ROW_BYTES + 256);
    HEADERS.with_borrow_mut(|headers| -> std::io::Result<()> {
        if let Some(header) = headers.get(&rows.len()) {
            out.extend_from_slice(header);
            return Ok(());
        }
        npyz::WriteOptions::<()>::new()
            .dtype(npy_dtype())
            .shape(&[rows.len() as u64])
            .writer(&mut out)
            .write_header_only()?;
        if headers.len() < CACHED_HEADERS {
            headers.insert(rows.len(), out.as_slice().into());
        }
        Ok(())
    })?;
    for r in rows {
        out.extend_from_slice(&r.mjd.to_le_bytes());
        out.push(r.filter);
        for v in [r.m, r.dm, r.dra, r.ddec] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_counted_in_every_length_and_position() {
        // Lengths around the 32-byte blocks, all commas (a block's byte sum at its maximum),
        // none, and commas at every offset.
        for len in 0..200 {
            let all = vec![b','; len];
            assert_eq!(count_commas(&all), len);
            assert_eq!(count_commas(&vec![b'7'; len]), 0);
            for at in 0..len {
                let mut one = vec![b'x'; len];
                one[at] = b',';
                assert_eq!(count_commas(&one), 1, "len {len}, comma at {at}");
            }
        }
        let row = line("J1", 57000.5, 'o', 17.25);
        assert_eq!(count_commas(row.as_bytes()), FIELDS - 1);
    }

    fn line(id: &str, mjd: f64, filter: char, m: f32) -> String {
        let mut f: Vec<String> = vec!["0".into(); 36];
        f[0] = id.into();
        f[30] = format!("{mjd:.6}");
        f[31] = "0.010".into();
        f[32] = "-0.020".into();
        f[33] = filter.to_string();
        f[34] = format!("{m:.3}");
        f[35] = "0.050".into();
        f.join(",")
    }

    fn write_partition(dir: &Path, name: &str, lines: &[String]) -> PartitionFile {
        let path = dir.join(name);
        fs_err::write(&path, CSV_HEADER.join(",") + "\n" + &lines.join("\n") + "\n").unwrap();
        let size = fs_err::metadata(&path).unwrap().len();
        PartitionFile { path, name: name.to_string(), size }
    }

    fn all_rows(g: &Grouped, n: usize) -> Vec<Vec<Row>> {
        (0..n).map(|i| g.rows(i).unwrap()).collect()
    }

    #[test]
    fn scattered_rows_come_out_whole_and_sorted_under_a_tiny_budget() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        // 3000 rows, objects interleaved, MJDs descending, plus an unknown object and a bad row.
        let mut lines: Vec<String> = (0..3000u32)
            .map(|i| {
                let id = ["A", "B", "C", "Z"][(i % 4) as usize];
                line(id, 60000.0 - f64::from(i), if i % 2 == 0 { 'o' } else { 'c' }, 15.0)
            })
            .collect();
        lines.push("A,not,enough".into());
        let parts = [write_partition(dir.path(), "atlas_lc_dr1_0-10.csv", &lines)];
        let sel = Selection::new(&ids);
        let (grouped, report) = group(&sel, &parts, 0, &dir.path().join("small")).unwrap();
        assert!(report.spills >= 2, "the tiny budget forces spills: {}", report.spills);
        assert_eq!(report.rows_read, 3001);
        assert_eq!(report.rows_kept, 2250);
        assert_eq!(report.bad_rows, 1);
        assert_eq!(
            report.bad_examples[0],
            BadRow { file: "atlas_lc_dr1_0-10.csv".into(), line: 3002, reason: "3 fields, expected 36".into() }
        );
        let small = all_rows(&grouped, 3);
        for rows in &small {
            assert_eq!(rows.len(), 750);
            assert!(rows.windows(2).all(|w| w[0].mjd < w[1].mjd));
        }
        // The same light curves without spills.
        let (grouped, report) = group(&sel, &parts, 1 << 30, &dir.path().join("big")).unwrap();
        assert_eq!(report.spills, 0);
        assert_eq!(all_rows(&grouped, 3), small);
    }

    /// The lines as the csv crate reads them without quoting (what the partitions were read
    /// with before): records, with the line each starts on.
    fn csv_lines(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).quoting(false).from_reader(bytes);
        let mut out = Vec::new();
        let mut rec = csv::ByteRecord::new();
        while reader.read_byte_record(&mut rec).unwrap() {
            out.push((rec.position().unwrap().line(), rec.iter().collect::<Vec<_>>().join(&b',')));
        }
        out
    }

    fn our_lines(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut lines = Lines::new(bytes);
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next_line().unwrap() {
            out.push((n, line.to_vec()));
        }
        out
    }

    #[test]
    fn lines_are_the_records_the_csv_crate_reads() {
        let cases: [&[u8]; 9] = [
            b"",
            b"\n\n",
            b"a,b\nc,d\n",
            b"a,b\r\nc,d\r\n",
            b"a,b\n\n\nc,d",
            b"\r\n\r\na\r\n",
            b"x",
            b"a,\"b,c\"\nd\"\n",
            b",,\n , \n",
        ];
        let records = |lines: Vec<(u64, Vec<u8>)>| lines.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        for case in cases {
            let what = String::from_utf8_lossy(case);
            assert_eq!(records(our_lines(case)), records(csv_lines(case)), "{what:?}");
        }
        // Line numbers are the file's, blank lines and CRLF ends counted (the csv crate counts
        // neither: its second record of "a,b\n\n\nc,d" is on "line 2").
        assert_eq!(our_lines(b"a,b\n\n\nc,d"), [(1, b"a,b".to_vec()), (4, b"c,d".to_vec())]);
        assert_eq!(our_lines(b"\r\n\r\na\r\nb,c\r\n"), [(3, b"a".to_vec()), (4, b"b,c".to_vec())]);
        // Lines across the read buffer's edges, and one longer than the first buffer.
        let mut big = Vec::new();
        for i in 0..20_000 {
            big.extend_from_slice(format!("{i},{}\n", "y".repeat(i % 97)).as_bytes());
            if i % 1000 == 0 {
                big.extend_from_slice(b"\r\n");
            }
        }
        big.extend_from_slice(&vec![b'z'; 300_000]);
        big.push(b'\n');
        assert_eq!(records(our_lines(&big)), records(csv_lines(&big)));
        let ours = our_lines(&big);
        assert_eq!(ours.len(), 20_001);
        assert_eq!(ours[1001].0, 1004, "row 1001 comes after two CRLF-only lines, counted and skipped");
        // Past the longest line allowed: an error, not unbounded memory.
        let huge = vec![b'q'; MAX_LINE + 10];
        assert!(Lines::new(&huge[..]).next_line().unwrap_err().to_string().contains("longer than"));
    }

    #[test]
    fn rows_with_another_number_of_fields_are_refused_by_count() {
        let row = line("ATO1", 59000.5, 'o', 14.25);
        assert_eq!(parse_row(row.as_bytes()).unwrap().filter, b'o');
        assert_eq!(parse_row(format!("{row},extra").as_bytes()).unwrap_err(), "37 fields, expected 36");
        let short = row.rsplit_once(',').unwrap().0;
        assert_eq!(parse_row(short.as_bytes()).unwrap_err(), "35 fields, expected 36");
        let bad = row.replace(",o,", ",oo,");
        assert!(parse_row(bad.as_bytes()).unwrap_err().starts_with("filter `oo`"));
    }

    /// A light curve written by npyz's own element writer (what [`npy`] wrote before).
    fn npy_by_npyz(rows: &[Row]) -> Vec<u8> {
        use npyz::WriterBuilder;
        #[derive(npyz::Serialize)]
        struct NpyRow {
            mjd: f64,
            filter: arrayvec::ArrayVec<u8, 1>,
            m: f32,
            dm: f32,
            dra: f32,
            ddec: f32,
        }
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new()
            .dtype(npy_dtype())
            .shape(&[rows.len() as u64])
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        for r in rows {
            let filter = std::iter::once(r.filter).collect();
            w.push(&NpyRow { mjd: r.mjd, filter, m: r.m, dm: r.dm, dra: r.dra, ddec: r.ddec }).unwrap();
        }
        w.finish().unwrap();
        out
    }

    #[test]
    fn npy_bytes_are_npyz_own() {
        let row = |i: u32| Row {
            mjd: 59000.0 + f64::from(i) * 0.123456789,
            filter: if i.is_multiple_of(2) { b'c' } else { b'o' },
            m: 14.0 + i as f32 / 7.0,
            dm: -0.0,
            dra: f32::NAN,
            ddec: f32::INFINITY * if i.is_multiple_of(3) { -1.0 } else { 1.0 },
        };
        // Twice each: the second time the header is the cached one.
        for n in [0u32, 1, 2, 9, 10, 11, 99, 100, 1000, 0, 1, 2, 9, 10, 11, 99, 100, 1000] {
            let rows: Vec<Row> = (0..n).map(row).collect();
            assert_eq!(npy(&rows).unwrap(), npy_by_npyz(&rows), "{n} rows");
        }
    }

    #[test]
    fn more_runs_than_merged_at_once_are_merged_in_passes() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..50).map(|i| format!("J{i:03}")).collect();
        // 70,000 rows at 1,024 a run: 68 runs, more than MAX_RUNS.
        let lines: Vec<String> = (0..70_000u32)
            .map(|i| line(&ids[(i * 7 % 50) as usize], 60000.0 - f64::from(i % 997), 'o', (i % 13) as f32))
            .collect();
        let parts = [write_partition(dir.path(), "atlas_lc_dr1_0-10.csv", &lines)];
        let sel = Selection::new(&ids);
        let (grouped, report) = group(&sel, &parts, 0, &dir.path().join("small")).unwrap();
        assert!(report.spills > MAX_RUNS, "{} spills", report.spills);
        let small = all_rows(&grouped, ids.len());
        let (grouped, _) = group(&sel, &parts, 1 << 30, &dir.path().join("big")).unwrap();
        assert_eq!(all_rows(&grouped, ids.len()), small);
        assert_eq!(small.iter().map(Vec::len).sum::<usize>(), 70_000);
        let left: Vec<_> =
            fs_err::read_dir(dir.path().join("small")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["part-0000-grouped.bin"], "no run file is left");
    }

    #[test]
    fn a_failing_partition_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let ok = write_partition(dir.path(), "atlas_lc_dr1_0-10.csv", &[line("A", 58000.0, 'o', 15.0)]);
        let bad = dir.path().join("atlas_lc_dr1_10-20.csv");
        fs_err::write(&bad, "ATO_ID,ra\nA,1\n").unwrap();
        let parts = [ok, PartitionFile { path: bad, name: "atlas_lc_dr1_10-20.csv".into(), size: 14 }];
        let e = group(&Selection::new(&["A".to_string()]), &parts, 1 << 20, dir.path()).err().unwrap().to_string();
        assert!(e.starts_with("atlas_lc_dr1_10-20.csv: line 1: expected the 36-column"), "{e}");
    }

    #[test]
    fn an_object_in_two_partitions_and_equal_mjds_come_out_in_one_order() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = ["A", "B"].iter().map(|s| s.to_string()).collect();
        // A has rows in both partitions, two of them at the same MJD with different magnitudes.
        let p1 = write_partition(
            dir.path(),
            "atlas_lc_dr1_0-10.csv",
            &[line("A", 58002.0, 'o', 16.0), line("B", 58000.0, 'c', 14.0), line("A", 58001.0, 'o', 15.5)],
        );
        let p2 = write_partition(
            dir.path(),
            "atlas_lc_dr1_10-20.csv",
            &[line("A", 58001.0, 'o', 15.0), line("A", 57000.0, 'c', 17.0)],
        );
        let sel = Selection::new(&ids);
        let mut seen = Vec::new();
        for (k, (parts, threads)) in [(vec![&p1, &p2], 1), (vec![&p2, &p1], 2)].into_iter().enumerate() {
            let parts: Vec<PartitionFile> = parts.into_iter().cloned().collect();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let out = dir.path().join(format!("w{k}"));
            let (grouped, _) = pool.install(|| group(&sel, &parts, 1 << 20, &out)).unwrap();
            seen.push(all_rows(&grouped, 2));
        }
        let a: Vec<(f64, f32)> = seen[0][0].iter().map(|r| (r.mjd, r.m)).collect();
        assert_eq!(a, [(57000.0, 17.0), (58001.0, 15.0), (58001.0, 15.5), (58002.0, 16.0)]);
        assert_eq!(seen[0][1].len(), 1);
        assert_eq!(seen[0], seen[1], "partition order and thread count do not change the result");
    }

    #[test]
    fn a_wrong_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        fs_err::write(&p, "ATO_ID,ra,dec\n").unwrap();
        let parts = [PartitionFile { path: p, name: "x.csv".into(), size: 14 }];
        let e = group(&Selection::new(&["A".to_string()]), &parts, 1 << 20, dir.path()).err().unwrap().to_string();
        assert!(e.contains("x.csv: line 1: expected the 36-column"), "{e}");
    }
}
