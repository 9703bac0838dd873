//! Grouping light-curve rows by object with bounded memory. Each partition CSV is streamed once;
//! rows of selected objects are buffered per object, and when the buffers pass the memory budget
//! they are spilled to a run file (objects in index order, each object's rows sorted by MJD). At
//! the end the runs are merged in one sequential pass into a grouped file with an offset per
//! object, which the shard stage reads in parallel. Nothing assumes an object's rows are
//! contiguous in a partition.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;

/// The 36 columns of a partition file, in order (ARCHIVES.md 3.2).
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

/// Bytes of a row on disk (and about its size in memory).
const ROW_BYTES: usize = 8 + 1 + 4 * 4;

impl Row {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.mjd.to_le_bytes())?;
        w.write_all(&[self.filter])?;
        for v in [self.m, self.dm, self.dra, self.ddec] {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    fn read(b: &[u8]) -> Row {
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
    /// The first bad rows, for the log.
    pub bad_examples: Vec<BadRow>,
    pub spills: usize,
}

/// Groups rows of the objects in `ids` (their index is their position).
pub struct Grouper {
    index: HashMap<String, u32>,
    buffers: Vec<Vec<Row>>,
    /// Bytes the row buffers hold (their capacity).
    buffered: usize,
    budget: usize,
    dir: PathBuf,
    runs: Vec<PathBuf>,
    pub report: GroupReport,
}

/// The grouped light curves: rows of object `i` at `offsets[i]` (count) in one file.
pub struct Grouped {
    file: std::fs::File,
    path: PathBuf,
    offsets: Vec<(u64, u32)>,
}

impl Grouped {
    /// Object `i`'s rows, sorted by MJD (safe to call from several threads).
    pub fn rows(&self, i: usize) -> anyhow::Result<Vec<Row>> {
        let (offset, count) = self.offsets[i];
        let mut buf = vec![0u8; count as usize * ROW_BYTES];
        #[cfg(unix)]
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, offset)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        #[cfg(not(unix))]
        {
            use std::io::{Seek, SeekFrom};
            let mut f = self.file.try_clone()?;
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut buf)?;
        }
        Ok(buf.chunks_exact(ROW_BYTES).map(Row::read).collect())
    }
}

impl Grouper {
    /// `dir` holds the spill runs and the grouped file; `budget` bounds the buffered rows.
    pub fn new(ids: &[String], budget: usize, dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let index = ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
        Ok(Grouper {
            index,
            buffers: vec![Vec::new(); ids.len()],
            buffered: 0,
            budget: budget.max(std::mem::size_of::<Row>() * 1024),
            dir: dir.to_path_buf(),
            runs: Vec::new(),
            report: GroupReport::default(),
        })
    }

    /// Stream one partition file, keeping the rows of known objects.
    pub fn add_partition(&mut self, path: &Path, name: &str) -> anyhow::Result<()> {
        let file = fs::File::open(path)?;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(file);
        let header = reader.byte_headers().with_context(|| format!("{name}: cannot read the header"))?.clone();
        let names: Vec<String> = header.iter().map(|h| String::from_utf8_lossy(h).trim().to_string()).collect();
        if names != CSV_HEADER {
            anyhow::bail!(
                "{name}: line 1: expected the 36-column ATLAS-VAR header `{}`, found `{}`",
                CSV_HEADER.join(","),
                names.join(",")
            );
        }
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    self.bad(name, line, e.to_string());
                    continue;
                }
            }
            self.report.rows_read += 1;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let id = std::str::from_utf8(record.get(0).unwrap_or_default()).unwrap_or("").trim();
            let Some(&idx) = self.index.get(id) else { continue };
            match parse_row(&record) {
                Ok(row) => {
                    // Count what the buffers really hold: whole capacity, as it grows.
                    let buffer = &mut self.buffers[idx as usize];
                    let before = buffer.capacity();
                    buffer.push(row);
                    self.buffered += (buffer.capacity() - before) * std::mem::size_of::<Row>();
                    self.report.rows_kept += 1;
                    if self.buffered >= self.budget {
                        self.spill()?;
                    }
                }
                Err(reason) => self.bad(name, line, reason),
            }
        }
        Ok(())
    }

    fn bad(&mut self, file: &str, line: u64, reason: String) {
        self.report.bad_rows += 1;
        if self.report.bad_examples.len() < 20 {
            self.report.bad_examples.push(BadRow { file: file.to_string(), line, reason });
        }
    }

    /// Write the buffered rows as a run: (object index, count, rows sorted by MJD), by index.
    fn spill(&mut self) -> anyhow::Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let path = self.dir.join(format!("run-{:05}.bin", self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(&path)?);
        for (idx, rows) in self.buffers.iter_mut().enumerate() {
            if rows.is_empty() {
                continue;
            }
            rows.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
            w.write_all(&(idx as u32).to_le_bytes())?;
            w.write_all(&(rows.len() as u32).to_le_bytes())?;
            for r in rows.iter() {
                r.write(&mut w)?;
            }
            *rows = Vec::new();
        }
        w.flush()?;
        self.runs.push(path);
        self.buffered = 0;
        self.report.spills += 1;
        Ok(())
    }

    /// Merge everything into the grouped file.
    pub fn finish(mut self) -> anyhow::Result<(Grouped, GroupReport)> {
        // The last buffers become a run too: then every object's rows come from runs only.
        self.spill()?;
        let spills = self.runs.len();
        let mut readers: Vec<RunReader> =
            self.runs.iter().map(|p| RunReader::open(p)).collect::<anyhow::Result<_>>()?;
        let path = self.dir.join("grouped.bin");
        let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(&path)?);
        let mut offsets = Vec::with_capacity(self.buffers.len());
        let mut offset = 0u64;
        let mut rows: Vec<Row> = Vec::new();
        for idx in 0..self.buffers.len() as u32 {
            rows.clear();
            for r in readers.iter_mut() {
                r.take(idx, &mut rows)?;
            }
            rows.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
            offsets.push((offset, rows.len() as u32));
            for r in &rows {
                r.write(&mut w)?;
            }
            offset += (rows.len() * ROW_BYTES) as u64;
        }
        w.flush()?;
        drop(w);
        for p in &self.runs {
            let _ = fs::remove_file(p);
        }
        let mut report = std::mem::take(&mut self.report);
        report.spills = spills.saturating_sub(1);
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok((Grouped { file, path, offsets }, report))
    }
}

/// Reads a run sequentially: the next object index and its rows.
struct RunReader {
    r: BufReader<fs::File>,
    next: Option<(u32, u32)>,
}

impl RunReader {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let mut r = RunReader { r: BufReader::with_capacity(1 << 16, fs::File::open(path)?), next: None };
        r.advance()?;
        Ok(r)
    }

    fn advance(&mut self) -> anyhow::Result<()> {
        let mut head = [0u8; 8];
        self.next = match self.r.read_exact(&mut head) {
            Ok(()) => Some((
                u32::from_le_bytes(head[..4].try_into().expect("4 bytes")),
                u32::from_le_bytes(head[4..].try_into().expect("4 bytes")),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(e.into()),
        };
        Ok(())
    }

    /// Append object `idx`'s rows if this run has it next.
    fn take(&mut self, idx: u32, out: &mut Vec<Row>) -> anyhow::Result<()> {
        if let Some((next, count)) = self.next {
            if next == idx {
                let mut buf = vec![0u8; count as usize * ROW_BYTES];
                self.r.read_exact(&mut buf)?;
                out.extend(buf.chunks_exact(ROW_BYTES).map(Row::read));
                self.advance()?;
            }
        }
        Ok(())
    }
}

fn parse_row(rec: &csv::ByteRecord) -> Result<Row, String> {
    if rec.len() != CSV_HEADER.len() {
        return Err(format!("{} fields, expected {}", rec.len(), CSV_HEADER.len()));
    }
    let text = |k: usize| std::str::from_utf8(&rec[k]).map(str::trim).unwrap_or("");
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

/// A light curve's `npy` record: (name, dtype, unit, meaning).
pub const NPY_COLUMNS: [(&str, &str, &str, &str); 6] = [
    ("mjd", "<f8", "d", "MJD of the exposure"),
    ("filter", "|S1", "", "ATLAS filter: c (cyan) or o (orange)"),
    ("m", "<f4", "mag", "magnitude"),
    ("dm", "<f4", "mag", "magnitude uncertainty"),
    ("dra", "<f4", "arcsec", "RA offset of the detection from the object"),
    ("ddec", "<f4", "arcsec", "Dec offset of the detection from the object"),
];

#[derive(npyz::Serialize)]
struct NpyRow {
    mjd: f64,
    filter: arrayvec::ArrayVec<u8, 1>,
    m: f32,
    dm: f32,
    dra: f32,
    ddec: f32,
}

/// Serialise a light curve as a 1-d structured `.npy` (fields as [`NPY_COLUMNS`]).
pub fn npy(rows: &[Row]) -> std::io::Result<Vec<u8>> {
    use npyz::WriterBuilder;
    let dtype = npyz::DType::Record(
        NPY_COLUMNS
            .iter()
            .map(|(name, ty, _, _)| npyz::Field {
                name: name.to_string(),
                dtype: npyz::DType::Plain(ty.parse().expect("valid numpy type strings")),
            })
            .collect(),
    );
    let mut out = Vec::with_capacity(rows.len() * 25 + 256);
    let mut w = npyz::WriteOptions::new().dtype(dtype).shape(&[rows.len() as u64]).writer(&mut out).begin_nd()?;
    for r in rows {
        let filter = std::iter::once(r.filter).collect();
        w.push(&NpyRow { mjd: r.mjd, filter, m: r.m, dm: r.dm, dra: r.dra, ddec: r.ddec })?;
    }
    w.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn scattered_rows_come_out_whole_and_sorted_under_a_tiny_budget() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let mut csv = CSV_HEADER.join(",") + "\n";
        // 3000 rows, objects interleaved, MJDs descending, plus an unknown object and a bad row.
        for i in 0..3000u32 {
            let id = ["A", "B", "C", "Z"][(i % 4) as usize];
            csv += &line(id, 60000.0 - f64::from(i), if i % 2 == 0 { 'o' } else { 'c' }, 15.0);
            csv += "\n";
        }
        csv += "A,not,enough\n";
        let p = dir.path().join("atlas_lc_dr1_0-10.csv");
        std::fs::write(&p, csv).unwrap();
        let mut g = Grouper::new(&ids, 0, &dir.path().join("work")).unwrap();
        g.add_partition(&p, "atlas_lc_dr1_0-10.csv").unwrap();
        let (grouped, report) = g.finish().unwrap();
        assert!(report.spills >= 1, "the tiny budget forces spills");
        assert_eq!(report.rows_read, 3001);
        assert_eq!(report.rows_kept, 2250);
        assert_eq!(report.bad_rows, 1);
        assert_eq!(report.bad_examples[0].line, 3002);
        for i in 0..3 {
            let rows = grouped.rows(i).unwrap();
            assert_eq!(rows.len(), 750);
            assert!(rows.windows(2).all(|w| w[0].mjd < w[1].mjd));
        }
    }

    #[test]
    fn a_wrong_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "ATO_ID,ra,dec\n").unwrap();
        let mut g = Grouper::new(&["A".to_string()], 1 << 20, dir.path()).unwrap();
        let e = g.add_partition(&p, "x.csv").unwrap_err().to_string();
        assert!(e.contains("x.csv: line 1: expected the 36-column"), "{e}");
    }
}
