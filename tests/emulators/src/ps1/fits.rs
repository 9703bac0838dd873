//! FITS cutouts built from the real fixture cutout (docs/archives.md 1.6a).

use super::fnv1a;
use super::sky::{py_repr, FileRef, Kind};
use std::sync::OnceLock;

pub(crate) const BLOCK: usize = 2880;
/// Largest cutout side fitscut accepts here (input pixels).
pub(crate) const MAX_SIZE: u32 = 6000;

/// The parsed fixture: its header cards (80 chars each, without END) and float32 pixels.
pub(crate) struct Fixture {
    pub cards: Vec<String>,
    pub width: usize,
    pub height: usize,
    /// Row-major, first row = FITS row 1.
    pub data: Vec<f32>,
}

pub(crate) fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let bytes =
            crate::fixtures::bytes(crate::fixtures::PS1_CUTOUT).unwrap_or_else(|e| panic!("the PS1 emulator: {e}"));
        parse_fixture(bytes).expect("the PS1 fixture cutout is a plain float32 FITS image")
    })
}

fn card_int(cards: &[String], key: &str) -> Option<i64> {
    cards.iter().find(|c| c.starts_with(&format!("{key:<8}="))).and_then(|c| {
        let v = &c[10..];
        let v = v.split('/').next()?.trim();
        v.parse().ok()
    })
}

fn parse_fixture(bytes: &[u8]) -> Result<Fixture, String> {
    let mut cards = Vec::new();
    let mut off = 0;
    loop {
        let card = bytes.get(off..off + 80).ok_or("header runs past the end of the file")?;
        off += 80;
        let card = std::str::from_utf8(card).map_err(|_| "non-ASCII header card")?;
        if card.starts_with("END ") {
            break;
        }
        cards.push(card.to_string());
    }
    let data_start = off.div_ceil(BLOCK) * BLOCK;
    if card_int(&cards, "BITPIX") != Some(-32) || card_int(&cards, "NAXIS") != Some(2) {
        return Err("fixture is not a 2-D float32 image".into());
    }
    let width = card_int(&cards, "NAXIS1").ok_or("no NAXIS1")? as usize;
    let height = card_int(&cards, "NAXIS2").ok_or("no NAXIS2")? as usize;
    let raw = bytes.get(data_start..data_start + width * height * 4).ok_or("data shorter than NAXIS1*NAXIS2")?;
    let data = raw.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Fixture { cards, width, height, data })
}

/// Per-band flux factor, so that bands differ (roughly a red-ish galaxy SED).
fn band_factor(band: char) -> f32 {
    match band {
        'g' => 0.55,
        'r' => 1.0,
        'i' => 1.35,
        'z' => 1.6,
        _ => 1.85,
    }
}

/// Per-band extra noise (fixture units; the fixture's own sky noise is ~200), so that bands are
/// not just scaled copies of each other and colour composites show colour.
fn band_noise(band: char) -> f32 {
    match band {
        'g' => 120.0,
        'r' => 60.0,
        'i' => 90.0,
        'z' => 150.0,
        _ => 220.0,
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Deterministic uniform noise with unit variance for one pixel.
fn unit_noise(seed: u64, x: i64, y: i64) -> f32 {
    let h = splitmix64(seed ^ ((x as u64) << 32) ^ (y as u64 & 0xffff_ffff));
    let u = (h >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
    (u * 2.0 - 1.0) * 1.732_050_8
}

/// The window of the fixture used for a target: its origin (fixture pixel of output pixel 0,0)
/// and the target's flux factor. It depends on the skycell and position only, so the bands and
/// types of one target are aligned (colour composites line up); the flux differs per band/epoch.
fn window(f: &FileRef, ra: f64, dec: f64, size: u32) -> (i64, i64, f32) {
    let fx = fixture();
    let mut key = f.skycell.id().into_bytes();
    key.extend_from_slice(&ra.to_bits().to_le_bytes());
    key.extend_from_slice(&dec.to_bits().to_le_bytes());
    let h = fnv1a(&key);
    let dx = (h % 301) as i64 - 150;
    let dy = ((h >> 16) % 301) as i64 - 150;
    let target = 0.9 + ((h >> 32) % 2001) as f32 / 10_000.0;
    let epoch = f.warp_mjd.map_or(1.0, |u| 0.9 + (fnv1a(&u.to_le_bytes()) % 2001) as f32 / 10_000.0);
    let x0 = fx.width as i64 / 2 + dx - size as i64 / 2;
    let y0 = fx.height as i64 / 2 + dy - size as i64 / 2;
    (x0, y0, target * epoch * band_factor(f.band))
}

/// Pixels of a cutout of `f` (already validated), row-major, first row = FITS row 1.
pub(crate) fn pixels(f: &FileRef, ra: f64, dec: f64, size: u32) -> Vec<f32> {
    let fx = fixture();
    let (x0, y0, factor) = window(f, ra, dec, size);
    let noise_seed = fnv1a(format!("noise/{}/{}/{:?}", f.skycell.id(), f.band, f.warp_mjd).as_bytes());
    let sigma = band_noise(f.band);
    let n = size as usize;
    let mut out = vec![f32::NAN; n * n];
    for j in 0..n {
        let sy = y0 + j as i64;
        if sy < 0 || sy >= fx.height as i64 {
            continue;
        }
        let src_row = &fx.data[sy as usize * fx.width..(sy as usize + 1) * fx.width];
        let dst_row = &mut out[j * n..(j + 1) * n];
        for (i, dst) in dst_row.iter_mut().enumerate() {
            let sx = x0 + i as i64;
            if sx < 0 || sx >= fx.width as i64 {
                continue;
            }
            let v = src_row[sx as usize];
            let noisy = || v * factor + sigma * unit_noise(noise_seed, sx, sy);
            *dst = match f.kind {
                Kind::Stack => noisy(),
                // Warps: one ~40 s exposure instead of the 572 s stack.
                Kind::Warp => noisy() * (40.0 / 572.0),
                // Variance: Poisson-like term plus a floor.
                Kind::StackWt | Kind::WarpWt => (v * factor).abs() * 0.05 + 4.0,
                Kind::StackMask | Kind::WarpMask => {
                    if v.is_nan() {
                        f32::NAN
                    } else {
                        0.0
                    }
                }
                Kind::StackExp => {
                    if v.is_nan() {
                        f32::NAN
                    } else {
                        572.0
                    }
                }
                Kind::StackNum => {
                    if v.is_nan() {
                        f32::NAN
                    } else {
                        14.0
                    }
                }
            };
        }
    }
    out
}

/// Formats a fixed-format card: `KEYWORD = <value right-justified to column 30> / comment`.
fn fixed_card(key: &str, value: &str, comment: Option<&str>) -> String {
    let mut c = format!("{key:<8}= {value:>20}");
    if let Some(com) = comment {
        c.push_str(" / ");
        c.push_str(com);
    }
    pad80(c)
}

fn pad80(mut c: String) -> String {
    c.truncate(80);
    while c.len() < 80 {
        c.push(' ');
    }
    c
}

fn comment_of(card: &str) -> Option<String> {
    // Good enough for the numeric cards we rewrite (no quotes in their values).
    card.split_once(" / ").map(|(_, c)| c.trim_end().to_string())
}

fn real(x: f64) -> String {
    // FITS wants an upper-case exponent letter; py_repr always gives '.' or an exponent.
    py_repr(x).to_uppercase()
}

/// The header cards (80 chars each, END included) of a FITS cutout.
pub(crate) fn header_cards(f: &FileRef, ra: f64, dec: f64, size: u32) -> Vec<String> {
    let fx = fixture();
    let crpix = (size as f64 + 1.0) / 2.0;
    let band_value = format!("'{}.00000 '", f.band);
    let mut out = Vec::with_capacity(fx.cards.len() + 1);
    for card in &fx.cards {
        let key = card[..8].trim_end();
        let new = match key {
            "NAXIS1" | "NAXIS2" => fixed_card(key, &size.to_string(), comment_of(card).as_deref()),
            "CRPIX1" | "CRPIX2" => fixed_card(key, &real(crpix), comment_of(card).as_deref()),
            "CRVAL1" => fixed_card(key, &real(ra), comment_of(card).as_deref()),
            "CRVAL2" => fixed_card(key, &real(dec), comment_of(card).as_deref()),
            "SKYCELL" => card.replacen("'skycell.1268.000'", &format!("'skycell.{}'", f.skycell.id()), 1),
            "HIERARCH"
                if card.starts_with("HIERARCH FPA.FILTER = ") || card.starts_with("HIERARCH FPA.FILTERID = ") =>
            {
                card.replacen("'r.00000 '", &band_value, 1)
            }
            _ => card.clone(),
        };
        out.push(new);
    }
    out.push(pad80("END".into()));
    out
}

/// A complete FITS file: header blocks (space padded) + big-endian float32 data (zero padded).
pub(crate) fn fits_bytes(f: &FileRef, ra: f64, dec: f64, size: u32) -> Vec<u8> {
    let cards = header_cards(f, ra, dec, size);
    let px = pixels(f, ra, dec, size);
    let head_len = (cards.len() * 80).div_ceil(BLOCK) * BLOCK;
    let data_len = (px.len() * 4).div_ceil(BLOCK) * BLOCK;
    let mut out = Vec::with_capacity(head_len + data_len);
    for c in &cards {
        out.extend_from_slice(c.as_bytes());
    }
    out.resize(head_len, b' ');
    for v in &px {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.resize(head_len + data_len, 0);
    out
}

/// WCS header text for a rendered (JPEG/PNG) image of `out_w` x `out_h` pixels made from a
/// `size` x `size` cutout: the cutout's WCS rescaled to the output grid, cards joined by '\n'.
pub(crate) fn wcs_text(ra: f64, dec: f64, size: u32, out_w: u32, out_h: u32) -> String {
    let fx = fixture();
    let cdelt = fx
        .cards
        .iter()
        .find(|c| c.starts_with("CDELT1  ="))
        .and_then(|c| c[10..].split('/').next()?.trim().parse::<f64>().ok())
        .unwrap_or(0.25 / 3600.0);
    let sx = size as f64 / out_w as f64;
    let sy = size as f64 / out_h as f64;
    let mut cards = vec![
        fixed_card("SIMPLE", "T", None),
        fixed_card("BITPIX", "8", None),
        fixed_card("NAXIS", "2", None),
        fixed_card("NAXIS1", &out_w.to_string(), None),
        fixed_card("NAXIS2", &out_h.to_string(), None),
        pad80("CTYPE1  = 'RA---TAN'".into()),
        pad80("CTYPE2  = 'DEC--TAN'".into()),
        fixed_card("CRVAL1", &real(ra), None),
        fixed_card("CRVAL2", &real(dec), None),
        fixed_card("CRPIX1", &real((out_w as f64 + 1.0) / 2.0), None),
        fixed_card("CRPIX2", &real((out_h as f64 + 1.0) / 2.0), None),
        fixed_card("CDELT1", &real(cdelt * sx), None),
        fixed_card("CDELT2", &real(cdelt * sy), None),
        fixed_card("PC001001", "-1.", None),
        fixed_card("PC001002", "0.", None),
        fixed_card("PC002001", "0.", None),
        fixed_card("PC002002", "1.", None),
        pad80("RADESYS = 'FK5     '".into()),
    ];
    for c in cards.iter_mut() {
        let t = c.trim_end().len();
        c.truncate(t);
    }
    cards.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_parses() {
        crate::require_fixtures!();
        let fx = fixture();
        assert_eq!((fx.width, fx.height), (700, 700));
        assert!(fx.cards.iter().any(|c| c.starts_with("RADESYS = 'FK5     '")));
        assert!(fx.cards.iter().all(|c| c.len() == 80));
        assert!(fx.data.iter().filter(|v| v.is_finite()).count() > 400_000);
    }

    #[test]
    fn numeric_cards() {
        assert_eq!(
            fixed_card("NAXIS1", "240", Some("length of data axis 1")).trim_end(),
            "NAXIS1  =                  240 / length of data axis 1"
        );
        assert_eq!(real(120.5), "120.5");
        assert_eq!(real(1e-5), "1E-05");
    }
}
