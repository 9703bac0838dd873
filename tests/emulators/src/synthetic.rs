//! Stand-ins for the real archive files, for running an emulator by hand on a machine without the
//! shared fixtures folder (a user with only the repository). They have the real files' layout (a
//! PS1 `fitscut.cgi` cutout's header cards and float32 image; an ATLAS result's header line and
//! column widths) but invented values, and are never used by the tests, which serve the real
//! files. [`crate::fixtures::allow_synthetic`] switches them on.

use std::fmt::Write as _;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) from a seed.
fn unit(seed: u64) -> f64 {
    (splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal from two seeds (Box-Muller).
fn normal(seed: u64) -> f64 {
    let u1 = unit(seed).max(1e-12);
    let u2 = unit(seed ^ 0x5555_5555_5555_5555);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn card(key: &str, value: &str, comment: &str) -> String {
    let mut c = if key.len() > 8 { format!("{key} = {value:>20}") } else { format!("{key:<8}= {value:>20}") };
    if !comment.is_empty() {
        let _ = write!(c, " / {comment}");
    }
    c.truncate(80);
    format!("{c:<80}")
}

/// Side of the synthetic PS1 image (the real fixture's).
const SIDE: usize = 700;

/// A 700x700 float32 PS1-style stack cutout: sky noise, a few exponential-disc galaxies and
/// stars, a strip of NaN (off the skycell), with the header cards the PS1 emulator rewrites and
/// the keywords etd reads (WCS, `EXPTIME`, `MJD-OBS`, `FPA.FILTER`, `FPA.ZP`).
pub fn ps1_cutout() -> Vec<u8> {
    let str_value = |s: &str| format!("'{s:<8}'");
    let mut cards = vec![
        card("SIMPLE", "T", "file does conform to FITS standard"),
        card("BITPIX", "-32", "number of bits per data pixel"),
        card("NAXIS", "2", "number of data axes"),
        card("NAXIS1", &SIDE.to_string(), "length of data axis 1"),
        card("NAXIS2", &SIDE.to_string(), "length of data axis 2"),
        card("EXTEND", "T", "FITS dataset may contain extensions"),
        format!("{:<80}", "COMMENT   SYNTHETIC: made by etd-emulator without the real PS1 fixture"),
        card("CTYPE1", &str_value("RA---TAN"), ""),
        card("CTYPE2", &str_value("DEC--TAN"), ""),
        card("CRVAL1", "144.", ""),
        card("CRVAL2", "-2.", ""),
        card("CRPIX1", "23916.", "Reference pixel shifted for cutout"),
        card("CRPIX2", "24848.", "Reference pixel shifted for cutout"),
        card("CDELT1", "6.94444461259988E-05", ""),
        card("CDELT2", "6.94444461259988E-05", ""),
        card("PC001001", "-1.", ""),
        card("PC001002", "0.", ""),
        card("PC002001", "0.", ""),
        card("PC002002", "1.", ""),
        card("SKYCELL", "'skycell.1268.000'", "type of stack"),
        card("TESS_ID", "'RINGS.V3'", "type of stack"),
        card("HIERARCH FPA.TELESCOPE", &str_value("PS1"), "Telescope of origin"),
        card("HIERARCH FPA.FILTERID", &str_value("r.00000"), "Filter used (parsed, abstract name)"),
        card("HIERARCH FPA.FILTER", &str_value("r.00000"), "Filter used (instrument name)"),
        card("HIERARCH FPA.ZP", "25.", "Magnitude zero point"),
        card("EXPTIME", "572.", "Exposure time (sec)"),
        card("MJD-OBS", "56153.2335375884", "Time of exposure"),
        card("RADESYS", &str_value("FK5"), "added by fitscut"),
        card("TIMESYS", &str_value("TAI"), "added by fitscut"),
    ];
    cards.push(format!("{:<80}", "END"));
    let mut pixels = vec![0f32; SIDE * SIDE];
    // (x, y, peak, scale length in px, axis ratio, angle)
    let mut sources = Vec::new();
    for i in 0..40u64 {
        let h = splitmix64(0xe7d0 + i);
        let x = (h % SIDE as u64) as f64;
        let y = ((h >> 20) % SIDE as u64) as f64;
        let galaxy = i % 3 != 0;
        let peak = if galaxy { 800.0 + unit(h) * 6000.0 } else { 2000.0 + unit(h) * 20000.0 };
        let scale = if galaxy { 3.0 + unit(h ^ 1) * 12.0 } else { 1.3 };
        let q = if galaxy { 0.3 + unit(h ^ 2) * 0.7 } else { 1.0 };
        let angle = unit(h ^ 3) * std::f64::consts::PI;
        sources.push((x, y, peak, scale, q, angle, galaxy));
    }
    for (row, line) in pixels.chunks_mut(SIDE).enumerate() {
        for (col, px) in line.iter_mut().enumerate() {
            if col < 24 {
                *px = f32::NAN;
                continue;
            }
            let mut v = 200.0 * normal(((row as u64) << 32) | col as u64);
            for &(x, y, peak, scale, q, angle, galaxy) in &sources {
                let (dx, dy) = (col as f64 - x, row as f64 - y);
                if dx.abs() > 12.0 * scale || dy.abs() > 12.0 * scale {
                    continue;
                }
                let (s, c) = angle.sin_cos();
                let (u, w) = (dx * c + dy * s, (-dx * s + dy * c) / q);
                let r = (u * u + w * w).sqrt();
                v += if galaxy { peak * (-r / scale).exp() } else { peak * (-0.5 * (r / scale).powi(2)).exp() };
            }
            *px = v as f32;
        }
    }
    let mut out = Vec::with_capacity(cards.len() * 80 + SIDE * SIDE * 4 + 5760);
    for c in &cards {
        out.extend_from_slice(c.as_bytes());
    }
    out.resize(out.len().div_ceil(2880) * 2880, b' ');
    for v in &pixels {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.resize(out.len().div_ceil(2880) * 2880, 0);
    out
}

/// The header line of an ATLAS forced-photometry result, as the server writes it.
pub const ATLAS_HEADER: &str =
    "###MJD          m      dm   uJy   duJy F err chi/N     RA       Dec        x        y     maj  min   phi  apfit mag5sig Sky   Obs";

/// An ATLAS forced-photometry result for one of the fixture names: a variable source observed in
/// the `c` and `o` filters over about two years, in the real file's columns and widths.
pub fn atlas_result(name: &str) -> String {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let ra = unit(seed) * 360.0;
    let dec = unit(seed ^ 7) * 100.0 - 30.0;
    let base = 50.0 + unit(seed ^ 9) * 2000.0;
    let period = 0.3 + unit(seed ^ 11) * 30.0;
    let rows = 40 + (seed % 80) as usize;
    let mut text = format!("{ATLAS_HEADER}\n");
    let mut mjd = 59000.0 + unit(seed ^ 13) * 300.0;
    for i in 0..rows {
        let h = splitmix64(seed.wrapping_add(i as u64));
        mjd += if i % 4 == 3 { 1.5 + unit(h) * 4.0 } else { 0.0104 };
        let filter = if (i / 4) % 2 == 0 { 'o' } else { 'c' };
        let unit_name = ["01a", "02a", "03a", "04a"][(h % 4) as usize];
        let ujy_f = base * (1.0 + 0.4 * (std::f64::consts::TAU * mjd / period).sin()) + 15.0 * normal(h);
        let ujy = ujy_f.round() as i64;
        let dujy = (10.0 + unit(h ^ 1) * 8.0).round() as i64;
        let m = if ujy == 0 { 0.0 } else { (23.9 - 2.5 * (ujy.abs() as f64).log10()) * ujy.signum() as f64 };
        let dm = 1.0857 * dujy as f64 / (ujy.unsigned_abs().max(1) as f64);
        let night = mjd.floor() as i64;
        let _ = writeln!(
            text,
            "{mjd:.6} {m:7.3} {dm:6.3} {ujy:5} {dujy:4} {filter} {:2} {:6.2} {ra:9.5} {dec:9.5} {:8.2} {:8.2} {:4.2} {:4.2} {:5.1} {:6.3} {:5.2} {:5.2} {unit_name}{night}{filter}{:04}{}",
            0,
            1.0 + unit(h ^ 2) * 3.0,
            200.0 + unit(h ^ 3) * 10000.0,
            200.0 + unit(h ^ 4) * 10000.0,
            1.8 + unit(h ^ 5) * 0.8,
            1.8 + unit(h ^ 6) * 0.6,
            unit(h ^ 7) * 180.0 - 90.0,
            -0.35 - unit(h ^ 8) * 0.15,
            19.0 + unit(h ^ 9) * 1.5,
            19.8 + unit(h ^ 10) * 1.2,
            (h >> 40) % 1000,
            filter,
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ps1_cutout_is_a_whole_float32_fits_image() {
        let b = ps1_cutout();
        assert_eq!(b.len() % 2880, 0);
        let head = std::str::from_utf8(&b[..2880]).unwrap();
        assert!(head.starts_with("SIMPLE  =                    T"));
        assert!(head.contains("BITPIX  =                  -32"));
        assert!(head.contains("END     "));
        assert_eq!(b.len(), 2880 + (SIDE * SIDE * 4).div_ceil(2880) * 2880);
        let first = f32::from_be_bytes(b[2880..2884].try_into().unwrap());
        assert!(first.is_nan(), "the off-cell strip is NaN");
    }

    #[test]
    fn synthetic_atlas_results_have_the_real_layout() {
        let t = atlas_result("job00128");
        assert_eq!(t, atlas_result("job00128"), "deterministic");
        assert_ne!(t, atlas_result("job01064"));
        let mut lines = t.lines();
        assert_eq!(lines.next(), Some(ATLAS_HEADER));
        for line in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 19, "{line}");
            assert!(f[3].parse::<i64>().is_ok() && f[4].parse::<i64>().is_ok(), "{line}");
            assert!(matches!(f[5], "c" | "o"), "{line}");
        }
    }
}
