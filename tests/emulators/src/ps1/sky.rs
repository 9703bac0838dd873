//! An invented but self-consistent stand-in for the PS1 RINGS.V3 tessellation, plus the
//! file naming of docs/archives.md 1.3 and the `ps1filenames.py` table.
//!
//! Geometry (invented; only its shape follows the real one): declination rings 4 degrees high,
//! centred at -30, -26, ..., +86 and a polar cap at +90. Ring `k` holds `ceil(91 cos dec_k)`
//! projection cells of equal RA width (one for the cap), numbered consecutively from 635 (the
//! -30 ring, first cell centred on RA 0) so that the last cell, the cap, is 2643, the range the
//! astrometry.net loop iterates over. Each projection cell is split into 10 x 10 skycells;
//! subcell 0 is at the high-RA, low-Dec corner (as the real `0635.000` row, centred at RA 2.13,
//! Dec -31.79, suggests).

use super::fnv1a;

pub(crate) const BANDS: [char; 5] = ['g', 'r', 'i', 'z', 'y'];
const FIRST_PROJCELL: u32 = 635;
const RING_DEC0: f64 = -30.0;
const RING_STEP: f64 = 4.0;
const NRINGS: usize = 31;
const CELLS_SCALE: f64 = 91.0;
/// Southern limit of the 3pi survey.
pub(crate) const DEC_LIMIT: f64 = -30.0;

#[derive(Clone, Copy)]
struct Ring {
    dec_c: f64,
    first: u32,
    n: u32,
}

fn rings() -> &'static [Ring; NRINGS] {
    static RINGS: std::sync::OnceLock<[Ring; NRINGS]> = std::sync::OnceLock::new();
    RINGS.get_or_init(|| {
        let mut out = [Ring { dec_c: 0.0, first: 0, n: 0 }; NRINGS];
        let mut first = FIRST_PROJCELL;
        for (k, ring) in out.iter_mut().enumerate() {
            let dec_c = RING_DEC0 + RING_STEP * k as f64;
            let n = if k == NRINGS - 1 { 1 } else { ((CELLS_SCALE * dec_c.to_radians().cos()).ceil() as u32).max(1) };
            *ring = Ring { dec_c, first, n };
            first += n;
        }
        out
    })
}

/// The last projection cell number (2643).
pub(crate) fn last_projcell() -> u32 {
    let r = rings()[NRINGS - 1];
    r.first + r.n - 1
}

fn ring_dec_range(r: &Ring) -> (f64, f64) {
    (r.dec_c - RING_STEP / 2.0, (r.dec_c + RING_STEP / 2.0).min(90.0))
}

/// A skycell: projection cell and subcell (0..=99).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Skycell {
    pub projcell: u32,
    pub subcell: u32,
}

impl Skycell {
    /// `PPPP.SSS`
    pub fn id(&self) -> String {
        format!("{:04}.{:03}", self.projcell, self.subcell)
    }

    /// Whether this skycell exists in the (emulated) tessellation.
    pub fn exists(&self) -> bool {
        self.subcell < 100 && (FIRST_PROJCELL..=last_projcell()).contains(&self.projcell)
    }

    /// Skycell centre (RA in [0, 360), Dec).
    pub fn centre(&self) -> Option<(f64, f64)> {
        if !self.exists() {
            return None;
        }
        let r = rings().iter().find(|r| (r.first..r.first + r.n).contains(&self.projcell))?;
        let i = self.projcell - r.first;
        let w = 360.0 / r.n as f64;
        let ra_c = i as f64 * w;
        let (lo, hi) = ring_dec_range(r);
        let (row, col) = (self.subcell / 10, self.subcell % 10);
        let dec = lo + (hi - lo) / 10.0 * (row as f64 + 0.5);
        let ra = (ra_c + w / 2.0 - w / 10.0 * (col as f64 + 0.5)).rem_euclid(360.0);
        Some((ra, dec))
    }
}

/// Whether the survey covers this position (the real footprint stops at Dec -30).
pub fn covers(ra: f64, dec: f64) -> bool {
    ra.is_finite() && dec.is_finite() && (DEC_LIMIT..=90.0).contains(&dec)
}

/// The skycell `ps1filenames.py` gives for a position, or None outside the footprint.
pub(crate) fn skycell_for(ra: f64, dec: f64) -> Option<Skycell> {
    if !covers(ra, dec) {
        return None;
    }
    let ra = ra.rem_euclid(360.0);
    let k = (((dec - (RING_DEC0 - RING_STEP / 2.0)) / RING_STEP).floor() as usize).min(NRINGS - 1);
    let r = rings()[k];
    let w = 360.0 / r.n as f64;
    let i = (((ra + w / 2.0).rem_euclid(360.0) / w).floor() as u32).min(r.n - 1);
    let ra_c = i as f64 * w;
    let mut d = ra - ra_c;
    if d >= 180.0 {
        d -= 360.0;
    } else if d < -180.0 {
        d += 360.0;
    }
    let col = (((w / 2.0 - d) / (w / 10.0)).floor() as i64).clamp(0, 9) as u32;
    let (lo, hi) = ring_dec_range(&r);
    let row = (((dec - lo) / ((hi - lo) / 10.0)).floor() as i64).clamp(0, 9) as u32;
    Some(Skycell { projcell: r.first + i, subcell: row * 10 + col })
}

/// Parses a `PPPP.SSS` skycell id (as given to `?skycell=`).
pub(crate) fn parse_skycell_id(s: &str) -> Option<Skycell> {
    let s = s.strip_prefix("skycell.").unwrap_or(s);
    let (p, c) = s.split_once('.')?;
    if p.len() != 4 || c.len() != 3 || !p.bytes().all(|b| b.is_ascii_digit()) || !c.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let sc = Skycell { projcell: p.parse().ok()?, subcell: c.parse().ok()? };
    (sc.subcell < 100).then_some(sc)
}

/// The image types `ps1filenames.py` knows (docs/archives.md 1.3, STScI docstring).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Stack,
    StackWt,
    StackMask,
    StackExp,
    StackNum,
    Warp,
    WarpWt,
    WarpMask,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "stack" => Kind::Stack,
            "stack.wt" => Kind::StackWt,
            "stack.mask" => Kind::StackMask,
            "stack.exp" => Kind::StackExp,
            "stack.num" => Kind::StackNum,
            "warp" => Kind::Warp,
            "warp.wt" => Kind::WarpWt,
            "warp.mask" => Kind::WarpMask,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Stack => "stack",
            Kind::StackWt => "stack.wt",
            Kind::StackMask => "stack.mask",
            Kind::StackExp => "stack.exp",
            Kind::StackNum => "stack.num",
            Kind::Warp => "warp",
            Kind::WarpWt => "warp.wt",
            Kind::WarpMask => "warp.mask",
        }
    }

    pub fn is_warp(self) -> bool {
        matches!(self, Kind::Warp | Kind::WarpWt | Kind::WarpMask)
    }

    /// File name suffix before `.fits` (`""`, `".wt"`, ...).
    fn aux(self) -> &'static str {
        match self {
            Kind::Stack | Kind::Warp => "",
            Kind::StackWt | Kind::WarpWt => ".wt",
            Kind::StackMask | Kind::WarpMask => ".mask",
            Kind::StackExp => ".exp",
            Kind::StackNum => ".num",
        }
    }

    fn from_parts(warp: bool, aux: &str) -> Option<Kind> {
        Some(match (warp, aux) {
            (false, "") => Kind::Stack,
            (false, ".wt") => Kind::StackWt,
            (false, ".mask") => Kind::StackMask,
            (false, ".exp") => Kind::StackExp,
            (false, ".num") => Kind::StackNum,
            (true, "") => Kind::Warp,
            (true, ".wt") => Kind::WarpWt,
            (true, ".mask") => Kind::WarpMask,
            _ => return None,
        })
    }
}

/// One image file of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileRef {
    pub skycell: Skycell,
    pub band: char,
    pub kind: Kind,
    /// Warp exposure MJD in units of 1e-7 day (None for stacks).
    pub warp_mjd: Option<u64>,
}

impl FileRef {
    pub fn shortname(&self) -> String {
        let sc = self.skycell;
        match self.warp_mjd {
            None => format!(
                "rings.v3.skycell.{:04}.{:03}.stk.{}.unconv{}.fits",
                sc.projcell,
                sc.subcell,
                self.band,
                self.kind.aux()
            ),
            Some(u) => format!(
                "rings.v3.skycell.{:04}.{:03}.wrp.{}.{}_{:05}{}.fits",
                sc.projcell,
                sc.subcell,
                self.band,
                u / 10_000_000,
                (u % 10_000_000) / 100,
                self.kind.aux()
            ),
        }
    }

    pub fn filename(&self) -> String {
        format!("/rings.v3.skycell/{:04}/{:03}/{}", self.skycell.projcell, self.skycell.subcell, self.shortname())
    }

    pub fn mjd(&self) -> f64 {
        self.warp_mjd.map_or(0.0, |u| u as f64 / 1e7)
    }

    /// Parses a file name in exactly the form `ps1filenames.py` returns, and checks that the
    /// file exists (skycell in the tessellation, warp epoch in that skycell's warp list).
    pub fn parse(s: &str) -> Option<FileRef> {
        let rest = s.strip_prefix("/rings.v3.skycell/")?;
        let mut it = rest.splitn(3, '/');
        let (p, c, name) = (it.next()?, it.next()?, it.next()?);
        let skycell = parse_skycell_id(&format!("{p}.{c}"))?;
        if !skycell.exists() {
            return None;
        }
        let tail = name.strip_prefix(&format!("rings.v3.skycell.{p}.{c}."))?.strip_suffix(".fits")?;
        let (warp, tail) =
            if let Some(t) = tail.strip_prefix("stk.") { (false, t) } else { (true, tail.strip_prefix("wrp.")?) };
        let mut chars = tail.chars();
        let band = chars.next()?;
        if !BANDS.contains(&band) || chars.next()? != '.' {
            return None;
        }
        let tail = chars.as_str();
        let (warp_mjd, aux) = if warp {
            let (epoch, aux) = match tail.find('.') {
                Some(i) => tail.split_at(i),
                None => (tail, ""),
            };
            let (day, frac) = epoch.split_once('_')?;
            if frac.len() != 5 || !day.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let (day, frac): (u64, u64) = (day.parse().ok()?, frac.parse().ok()?);
            let u = warp_epochs(skycell, band)
                .into_iter()
                .find(|u| u / 10_000_000 == day && (u % 10_000_000) / 100 == frac)?;
            (Some(u), aux)
        } else {
            (None, tail.strip_prefix("unconv")?)
        };
        let f = FileRef { skycell, band, kind: Kind::from_parts(warp, aux)?, warp_mjd };
        (f.filename() == s).then_some(f)
    }
}

/// Deterministic warp epochs (MJD in 1e-7 day units, ascending) for a skycell and band: 2 to 5
/// exposures between MJD 55197 (2010-01-01) and 56997, at night-time-ish fractions.
pub(crate) fn warp_epochs(sc: Skycell, band: char) -> Vec<u64> {
    let seed = fnv1a(format!("warps/{}/{}", sc.id(), band).as_bytes());
    let count = 2 + (seed % 4) as usize;
    let mut out: Vec<u64> = (0..count)
        .map(|i| {
            let h = fnv1a(format!("warp/{}/{}/{}", sc.id(), band, i).as_bytes());
            let day = 55_197 + (h % 1_800);
            let frac = 2_000_000 + (h / 1_800) % 4_000_000; // 0.2 .. 0.6 day
            day * 10_000_000 + frac
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// All files of one skycell for the given bands and types, in band-major order.
pub(crate) fn files(sc: Skycell, bands: &[char], kinds: &[Kind]) -> Vec<FileRef> {
    let mut out = Vec::new();
    for &band in bands {
        for &kind in kinds {
            if kind.is_warp() {
                for u in warp_epochs(sc, band) {
                    out.push(FileRef { skycell: sc, band, kind, warp_mjd: Some(u) });
                }
            } else {
                out.push(FileRef { skycell: sc, band, kind, warp_mjd: None });
            }
        }
    }
    out
}

pub(crate) const TABLE_HEADER: &str = "projcell subcell ra dec filter mjd type filename shortname badflag";

/// One table row.
pub(crate) fn row(f: &FileRef, ra: f64, dec: f64) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} 0",
        f.skycell.projcell,
        f.skycell.subcell,
        py_repr(ra),
        py_repr(dec),
        f.band,
        py_repr(f.mjd()),
        f.kind.name(),
        f.filename(),
        f.shortname()
    )
}

/// Formats a float like Python's `repr(float)`: shortest round-trip digits, `.0` on integral
/// values, exponent form below 1e-4 and from 1e16.
pub(crate) fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let e = format!("{x:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        format!("{}e{}{:02}", mant, if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_numbering() {
        assert_eq!(rings()[0].first, 635);
        assert_eq!(last_projcell(), 2643);
        assert_eq!(skycell_for(10.0, 90.0).unwrap().projcell, 2643);
        assert_eq!(skycell_for(0.0, -30.0).unwrap().projcell, 635);
        assert_eq!(skycell_for(359.99, -30.0).unwrap().projcell, 635);
    }

    #[test]
    fn centres_round_trip() {
        for p in [635, 700, 1268, 2000, 2642, 2643] {
            for s in [0, 9, 45, 90, 99] {
                let sc = Skycell { projcell: p, subcell: s };
                let (ra, dec) = sc.centre().unwrap();
                if dec >= DEC_LIMIT {
                    assert_eq!(skycell_for(ra, dec), Some(sc), "{p}.{s} at {ra} {dec}");
                }
            }
        }
        // The real 0635.000 sits at high RA / low Dec of its projection cell.
        let (ra, dec) = Skycell { projcell: 635, subcell: 0 }.centre().unwrap();
        assert!(ra > 1.5 && ra < 2.5 && dec < -31.5, "{ra} {dec}");
    }

    #[test]
    fn python_repr() {
        assert_eq!(py_repr(10.0), "10.0");
        assert_eq!(py_repr(10.5), "10.5");
        assert_eq!(py_repr(-31.790888721856746), "-31.790888721856746");
        assert_eq!(py_repr(1e-5), "1e-05");
        assert_eq!(py_repr(0.0001), "0.0001");
        assert_eq!(py_repr(1.5e16), "1.5e+16");
        assert_eq!(py_repr(1e15), "1000000000000000.0");
        assert_eq!(py_repr(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn names_round_trip() {
        let sc = skycell_for(150.1, 2.2).unwrap();
        for f in files(sc, &BANDS, &[Kind::Stack, Kind::StackWt, Kind::StackNum, Kind::Warp, Kind::WarpMask]) {
            assert_eq!(FileRef::parse(&f.filename()), Some(f.clone()));
        }
        assert!(FileRef::parse("/rings.v3.skycell/1268/000/rings.v3.skycell.1268.001.stk.r.unconv.fits").is_none());
        assert!(FileRef::parse("/rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.stk.q.unconv.fits").is_none());
        assert!(FileRef::parse("/rings.v3.skycell/0100/000/rings.v3.skycell.0100.000.stk.r.unconv.fits").is_none());
        assert!(FileRef::parse("/rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.wrp.r.55000_00000.fits").is_none());
    }
}
