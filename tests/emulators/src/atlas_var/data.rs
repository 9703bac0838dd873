//! The synthetic ATLAS-VAR data set: object catalogue, light curves and their layout in the
//! declination-band CSV files.

use super::{fits, Config};
use crate::ps1::fnv1a;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// MAST's file name of the object catalogue (docs/archives.md 3.1).
pub const CATALOG_FILE: &str = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits";

/// The 14 classes, in the order of the `prob_*` columns of the UH light-curve files
/// (docs/archives.md 3.2). [`ObjectRow::probs`] and the FITS `prob_*` columns use this order.
pub const CLASSES: [&str; 14] =
    ["CBF", "CBH", "DBF", "DBH", "HARD", "MIRA", "MPULSE", "MSINE", "NSINE", "PULSE", "SINE", "IRR", "LPV", "dubious"];

/// The 36 columns of a light-curve CSV, in order (the header row is these joined by `,`).
pub const CSV_COLUMNS: [&str; 36] = [
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

/// Southern limit of the ATLAS sky used here; partitions run from here to +90.
pub const DEC_MIN: f64 = -30.0;
pub const DEC_MAX: f64 = 90.0;

/// Relative frequency of each class (same order as [`CLASSES`]); `dubious` dominates, as most
/// DR1 candidates are not "probable" variables.
const CLASS_WEIGHTS: [u32; 14] = [6, 4, 2, 2, 3, 1, 2, 5, 7, 4, 6, 12, 8, 38];

/// One row of the object catalogue.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRow {
    pub objid: i64,
    pub ato_id: String,
    /// Degrees, a multiple of 1e-6.
    pub ra: f64,
    /// Degrees in [-30, 90), a multiple of 1e-6.
    pub dec: f64,
    pub class: String,
    /// `prob_<CLASS>` in [`CLASSES`] order; multiples of 1e-4 summing to 1, the object's own
    /// class strictly the largest.
    pub probs: [f32; 14],
    pub fp_lsperiod: f64,
    pub gmag: f32,
    pub rmag: f32,
    pub imag: f32,
    pub zmag: f32,
    pub ymag: f32,
    pub fp_period: f64,
    pub ls_pday: f64,
    pub fp_lngfitper: f64,
    pub vf_c_med: f32,
    pub vf_o_med: f32,
}

/// What the FITS object table holds, in row order (ascending `objid`).
#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    pub rows: Vec<ObjectRow>,
}

/// One ATLAS measurement of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// A multiple of 1e-6 d.
    pub mjd: f64,
    /// Offsets from the catalogue position, arcsec, multiples of 0.001.
    pub dra: f32,
    pub ddec: f32,
    /// `'c'` or `'o'`.
    pub filter: char,
    /// Magnitude and its error, multiples of 0.001.
    pub m: f32,
    pub dm: f32,
}

/// The whole synthetic data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub catalog: Catalog,
    /// Per `ATO_ID`, sorted by `mjd` (no two detections of an object share an `mjd`).
    pub lightcurves: BTreeMap<String, Vec<Detection>>,
    /// `(file name, dec_from, dec_upto)` from south to north; contiguous, covering [-30, 90).
    /// An object belongs to the partition with `dec_from <= dec < dec_upto`.
    pub partitions: Vec<(String, f64, f64)>,
    /// Whether partition files split an object's rows into shuffled, non-contiguous runs
    /// ([`Config::split_runs`]); otherwise each object's rows are one block sorted by `mjd`.
    pub split_runs: bool,
}

/// SplitMix64: small, fast and good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_a71a_5a12_0001)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Log-uniform in [lo, hi).
    pub fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    /// Approximately standard normal (sum of uniforms).
    pub fn normal(&mut self) -> f64 {
        (0..6).map(|_| self.unit()).sum::<f64>() * std::f64::consts::SQRT_2 - 6.0 * std::f64::consts::FRAC_1_SQRT_2
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn q64(x: f64, decimals: i32) -> f64 {
    let s = 10f64.powi(decimals);
    (x * s).round() / s
}

fn q32(x: f64, decimals: i32) -> f32 {
    q64(x, decimals) as f32
}

/// Checks a configuration; the error says what is wrong.
pub(crate) fn validate(cfg: &Config) -> Result<(), String> {
    if !(cfg.band_deg.is_finite() && cfg.band_deg >= 0.01) {
        return Err(format!("band_deg must be a finite number >= 0.01, not {}", cfg.band_deg));
    }
    let (lo, hi) = cfg.detections_per_object;
    if lo > hi {
        return Err(format!("detections_per_object: min {lo} > max {hi}"));
    }
    Ok(())
}

/// `-30`, `0`, `27.5`: integers without a fraction, otherwise the shortest decimal.
fn fmt_bound(x: f64) -> String {
    if x == 0.0 {
        "0".to_string()
    } else {
        format!("{x}")
    }
}

/// The partition file name for a declination band.
pub fn partition_name(dec_from: f64, dec_upto: f64) -> String {
    format!("atlas_lc_dr1_{}-{}.csv", fmt_bound(dec_from), fmt_bound(dec_upto))
}

fn make_partitions(band: f64) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let mut k = 0u64;
    loop {
        let from = q64(DEC_MIN + k as f64 * band, 6);
        if from >= DEC_MAX {
            break;
        }
        let upto = q64(DEC_MIN + (k + 1) as f64 * band, 6).min(DEC_MAX);
        out.push((partition_name(from, upto), from, upto));
        k += 1;
    }
    out
}

/// `J{hhmmss.ss}{+dd mm ss.s}` without spaces, e.g. `J123456.78+123456.7`.
fn ato_id(ra: f64, dec: f64) -> String {
    // RA in units of 0.01 s of time.
    let cs = ((ra / 15.0 * 3600.0 * 100.0).round() as i64).rem_euclid(24 * 3600 * 100);
    let (h, rest) = (cs / 360_000, cs % 360_000);
    let (m, s) = (rest / 6000, rest % 6000);
    // Dec in units of 0.1 arcsec.
    let ds = (dec.abs() * 36000.0).round() as i64;
    let (d, rest) = (ds / 36000, ds % 36000);
    let (dm, dsec) = (rest / 600, rest % 600);
    let sign = if dec < 0.0 && ds > 0 { '-' } else { '+' };
    format!("J{h:02}{m:02}{:02}.{:02}{sign}{d:02}{dm:02}{:02}.{}", s / 100, s % 100, dsec / 10, dsec % 10)
}

fn pick_class(rng: &mut Rng) -> usize {
    let total: u32 = CLASS_WEIGHTS.iter().sum();
    let mut x = (rng.next_u64() % total as u64) as u32;
    for (i, w) in CLASS_WEIGHTS.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    CLASSES.len() - 1
}

/// Class probabilities in units of 1e-4 summing to 10000, `class` strictly the largest.
fn make_probs(rng: &mut Rng, class: usize) -> [f32; 14] {
    let top = rng.int(3500, 9700) as u32;
    let rest = 10000 - top;
    let mut units = [0u32; 14];
    let weights: Vec<f64> = (0..14).map(|i| if i == class { 0.0 } else { rng.unit().powi(3) + 1e-3 }).collect();
    let wsum: f64 = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        // Each other class gets less than `top`; the rounding remainder goes to `class`.
        units[i] = ((w / wsum * rest as f64).floor() as u32).min(top - 1);
    }
    let others: u32 = units.iter().sum();
    units[class] = 10000 - others;
    let mut probs = [0f32; 14];
    for (p, u) in probs.iter_mut().zip(units) {
        *p = (u as f64 / 10000.0) as f32;
    }
    probs
}

/// Period (days) typical of a class.
fn class_period(rng: &mut Rng, class: &str) -> f64 {
    match class {
        "CBF" | "CBH" => rng.log_range(0.2, 2.5),
        "DBF" | "DBH" => rng.log_range(1.0, 30.0),
        "PULSE" | "MPULSE" => rng.log_range(0.04, 1.0),
        "MIRA" => rng.range(100.0, 600.0),
        "LPV" => rng.log_range(30.0, 400.0),
        "SINE" | "MSINE" | "NSINE" => rng.log_range(0.1, 60.0),
        _ => rng.log_range(0.05, 500.0),
    }
}

fn amplitude(rng: &mut Rng, class: &str) -> f64 {
    match class {
        "MIRA" => rng.range(1.5, 4.0),
        "LPV" => rng.range(0.2, 1.0),
        "CBF" | "CBH" | "DBF" | "DBH" | "PULSE" | "MPULSE" => rng.range(0.1, 0.8),
        "dubious" | "HARD" => rng.range(0.01, 0.05),
        _ => rng.range(0.03, 0.3),
    }
}

impl Dataset {
    /// Builds the data set for `cfg`; the same configuration always gives the same data.
    ///
    /// # Panics
    /// If `cfg.band_deg` is not finite and >= 0.01, or the detection range has min > max.
    pub fn generate(cfg: &Config) -> Dataset {
        if let Err(e) = validate(cfg) {
            panic!("invalid atlas_var::Config: {e}");
        }
        let mut rng = Rng::new(cfg.seed);
        let partitions = make_partitions(cfg.band_deg);
        let mut rows = Vec::with_capacity(cfg.objects);
        let mut ids = std::collections::HashSet::new();
        let sin_lo = DEC_MIN.to_radians().sin();
        // Objids ascend with the row number, from an arbitrary base.
        let objid_base: i64 = 110_000_000_000 + (rng.next_u64() % 1_000_000) as i64 * 1000;
        while rows.len() < cfg.objects {
            let ra = q64(rng.range(0.0, 360.0), 6).min(359.999_999);
            // Uniform on the sphere above Dec -30.
            let dec = q64(rng.range(sin_lo, 1.0).asin().to_degrees(), 6).clamp(DEC_MIN, 89.999_999);
            let id = ato_id(ra, dec);
            if !ids.insert(id.clone()) {
                continue;
            }
            let class_idx = pick_class(&mut rng);
            let class = CLASSES[class_idx];
            let probs = make_probs(&mut rng, class_idx);
            let rmag = rng.range(11.5, 18.8);
            let colour = rng.range(0.1, 1.6);
            let fp_period = class_period(&mut rng, class);
            // The LS periodogram finds half the true period of a full-period binary.
            let fp_lsperiod = if class == "CBF" || class == "DBF" { fp_period / 2.0 } else { fp_period };
            let fp_lsperiod = fp_lsperiod * (1.0 + 0.002 * rng.normal());
            let ls_pday = fp_lsperiod * (1.0 + 0.0005 * rng.normal());
            let fp_lngfitper = rng.log_range(20.0, 2000.0);
            rows.push(ObjectRow {
                objid: objid_base + rows.len() as i64 * 7 + (rng.next_u64() % 7) as i64,
                ato_id: id,
                ra,
                dec,
                class: class.to_string(),
                probs,
                fp_lsperiod: q64(fp_lsperiod, 6),
                gmag: q32(rmag + colour, 3),
                rmag: q32(rmag, 3),
                imag: q32(rmag - 0.35 * colour, 3),
                zmag: q32(rmag - 0.5 * colour, 3),
                ymag: q32(rmag - 0.58 * colour, 3),
                fp_period: q64(fp_period, 6),
                ls_pday: q64(ls_pday, 6),
                fp_lngfitper: q64(fp_lngfitper, 6),
                vf_c_med: q32(rmag + 0.45 * colour + 0.01 * rng.normal(), 3),
                vf_o_med: q32(rmag - 0.15 * colour + 0.01 * rng.normal(), 3),
            });
        }

        let mut lightcurves = BTreeMap::new();
        for row in &rows {
            let (lo, hi) = cfg.detections_per_object;
            let n = rng.int(lo, hi);
            let amp = amplitude(&mut rng, &row.class);
            let phase = rng.range(0.0, std::f64::consts::TAU);
            let mut seen = std::collections::HashSet::new();
            let mut dets = Vec::with_capacity(n);
            while dets.len() < n {
                let mjd = q64(rng.range(57000.0, 58500.0), 6);
                if !seen.insert(mjd.to_bits()) {
                    continue;
                }
                let filter = if rng.unit() < 0.65 { 'o' } else { 'c' };
                let base = if filter == 'o' { row.vf_o_med } else { row.vf_c_med } as f64;
                let shape = (std::f64::consts::TAU * mjd / row.fp_period + phase).sin();
                let dm = 0.004 + 0.02 * 10f64.powf(0.4 * (base - 17.0));
                let m = base + amp * shape + dm * rng.normal();
                dets.push(Detection {
                    mjd,
                    dra: q32(0.15 * rng.normal(), 3),
                    ddec: q32(0.15 * rng.normal(), 3),
                    filter,
                    m: q32(m, 3),
                    dm: q32(dm.max(0.001), 3),
                });
            }
            dets.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
            lightcurves.insert(row.ato_id.clone(), dets);
        }
        Dataset { catalog: Catalog { rows }, lightcurves, partitions, split_runs: cfg.split_runs }
    }

    /// The object table as a FITS file (primary HDU + `BINTABLE` extension `OBJECT`).
    pub fn catalog_fits(&self) -> Vec<u8> {
        fits::catalog_fits(&self.catalog)
    }

    /// The partition whose band holds `dec` (`dec_from <= dec < dec_upto`).
    pub fn partition_for(&self, dec: f64) -> Option<&str> {
        self.partitions.iter().find(|(_, from, upto)| *from <= dec && dec < *upto).map(|(n, _, _)| n.as_str())
    }

    /// The header line of every partition file (with its `\n`).
    pub fn csv_header() -> String {
        let mut h = CSV_COLUMNS.join(",");
        h.push('\n');
        h
    }

    /// One partition CSV (header + the rows of every catalogue object in the band), or `None`
    /// for an unknown name. The row order is deterministic (see [`Dataset::split_runs`]).
    pub fn partition_csv(&self, name: &str) -> Option<Vec<u8>> {
        let &(_, from, upto) = self.partitions.iter().find(|(n, _, _)| n == name)?;
        let members: Vec<&ObjectRow> = self
            .catalog
            .rows
            .iter()
            .filter(|r| from <= r.dec && r.dec < upto)
            .filter(|r| self.lightcurves.get(&r.ato_id).is_some_and(|d| !d.is_empty()))
            .collect();
        let mut out = Self::csv_header();
        let mut salt = fnv1a(name.as_bytes());
        for r in &members {
            salt = salt.rotate_left(5) ^ fnv1a(r.ato_id.as_bytes());
        }
        let mut rng = Rng::new(salt);
        for (obj, dets) in layout(&members, &self.lightcurves, self.split_runs, &mut rng) {
            let prefix = object_prefix(members[obj]);
            for d in dets {
                out.push_str(&prefix);
                out.push_str(&format!("{:.6},{:.3},{:.3},{},{:.3},{:.3}\n", d.mjd, d.dra, d.ddec, d.filter, d.m, d.dm));
            }
        }
        Some(out.into_bytes())
    }

    /// Writes the catalogue FITS file and every partition CSV (all partitions, also those
    /// without objects) into `dir` (created if missing), flat, under their served names.
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        fs_err::create_dir_all(dir)?;
        fs_err::write(dir.join(CATALOG_FILE), self.catalog_fits())?;
        for (name, _, _) in &self.partitions {
            let csv = self.partition_csv(name).expect("a listed partition");
            fs_err::write(dir.join(name), csv)?;
        }
        Ok(())
    }
}

/// The 30 catalogue columns of a CSV row, each followed by a comma.
fn object_prefix(r: &ObjectRow) -> String {
    let mut s = format!(
        "{},{},{:.6},{:.6},{},{:.3},{:.3},{:.3},{:.3},{:.3},",
        r.ato_id, r.objid, r.ra, r.dec, r.class, r.gmag, r.rmag, r.imag, r.zmag, r.ymag
    );
    for p in r.probs {
        s.push_str(&format!("{p:.4},"));
    }
    s.push_str(&format!(
        "{:.6},{:.6},{:.6},{:.6},{:.3},{:.3},",
        r.fp_period, r.ls_pday, r.fp_lsperiod, r.fp_lngfitper, r.vf_c_med, r.vf_o_med
    ));
    s
}

/// The blocks of rows of one partition file: `(member index, detections)` in file order.
/// With `split` each object's detections are shuffled and cut into 2 or 3 runs that are
/// interleaved with other objects' runs so that no two runs of an object touch; a run that
/// cannot be separated (too few other objects left) is merged into its neighbour.
fn layout<'a>(
    members: &[&ObjectRow],
    lcs: &'a BTreeMap<String, Vec<Detection>>,
    split: bool,
    rng: &mut Rng,
) -> Vec<(usize, Vec<&'a Detection>)> {
    let dets = |i: usize| lcs.get(&members[i].ato_id).map(Vec::as_slice).unwrap_or(&[]);
    if !split || members.len() < 2 {
        return (0..members.len()).map(|i| (i, dets(i).iter().collect())).collect();
    }
    // Per object: its runs, in the order they will be written.
    let mut queues: Vec<std::collections::VecDeque<Vec<&Detection>>> = Vec::with_capacity(members.len());
    for i in 0..members.len() {
        let mut rows: Vec<&Detection> = dets(i).iter().collect();
        rng.shuffle(&mut rows);
        let runs = rng.int(2, 3).min(rows.len());
        let mut cuts: Vec<usize> = Vec::new();
        while cuts.len() + 1 < runs {
            let c = rng.int(1, rows.len() - 1);
            if !cuts.contains(&c) {
                cuts.push(c);
            }
        }
        cuts.sort_unstable();
        let mut q = std::collections::VecDeque::new();
        let mut start = 0;
        for c in cuts.into_iter().chain(std::iter::once(rows.len())) {
            q.push_back(rows[start..c].to_vec());
            start = c;
        }
        queues.push(q);
    }
    // Tie-break order among objects with equally many runs left.
    let mut order: Vec<usize> = (0..members.len()).collect();
    rng.shuffle(&mut order);
    let mut rank = vec![0; members.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let mut out: Vec<(usize, Vec<&Detection>)> = Vec::new();
    loop {
        let last = out.last().map(|b| b.0);
        let pick = (0..members.len())
            .filter(|&i| !queues[i].is_empty() && Some(i) != last)
            .max_by_key(|&i| (queues[i].len(), std::cmp::Reverse(rank[i])));
        match pick {
            Some(i) => {
                let run = queues[i].pop_front().unwrap_or_default();
                out.push((i, run));
            }
            None => match last {
                Some(i) if !queues[i].is_empty() => {
                    let run = queues[i].pop_front().unwrap_or_default();
                    if let Some(b) = out.last_mut() {
                        b.1.extend(run);
                    }
                }
                _ => break,
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ato_ids() {
        assert_eq!(ato_id(188.7367, 12.58264), "J123456.81+123457.5");
        assert_eq!(ato_id(0.0, -0.00001), "J000000.00+000000.0");
        assert_eq!(ato_id(359.99999999, -29.5), "J000000.00-293000.0");
        assert_eq!(ato_id(15.0, -5.25), "J010000.00-051500.0");
    }

    #[test]
    fn partition_names() {
        let p = make_partitions(10.0);
        assert_eq!(p.len(), 12);
        assert_eq!(p[0], ("atlas_lc_dr1_-30--20.csv".to_string(), -30.0, -20.0));
        assert_eq!(p[3].0, "atlas_lc_dr1_0-10.csv");
        assert_eq!(p[11].0, "atlas_lc_dr1_80-90.csv");
        let p = make_partitions(7.5);
        assert_eq!(p[1].0, "atlas_lc_dr1_-22.5--15.csv");
        assert_eq!(p.last().unwrap().2, 90.0);
        let p = make_partitions(50.0);
        assert_eq!(p.last().unwrap().0, "atlas_lc_dr1_70-90.csv");
        for w in make_partitions(0.3).windows(2) {
            assert_eq!(w[0].2, w[1].1);
        }
    }

    #[test]
    fn probabilities() {
        let mut rng = Rng::new(1);
        for k in 0..2000 {
            let class = k % 14;
            let p = make_probs(&mut rng, class);
            let units: u32 = p.iter().map(|x| (*x as f64 * 10000.0).round() as u32).sum();
            assert_eq!(units, 10000);
            assert!(p.iter().enumerate().all(|(i, x)| i == class || *x < p[class]), "{p:?}");
        }
    }
}
