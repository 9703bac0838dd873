//! Zcut (`https://mast.stsci.edu/zcut/api/v0.1/`): the survey look-up and the cutouts of the
//! deep-field mosaics, in the real answer formats (see the module docs of `astrocut`).

use fitsio::images::{ImageDescription, ImageType};
use fitsio::FitsFile;

/// One survey of the emulator's invented sky: where it is, and its mosaics.
#[derive(Debug)]
pub struct Survey {
    pub name: &'static str,
    /// Field centre (degrees) and half-size (degrees of declination; right ascension scaled).
    pub ra: f64,
    pub dec: f64,
    pub half: f64,
    /// Arcseconds per pixel.
    pub pixel_arcsec: f64,
    /// (original mosaic file, filter), one image HDU each in a cutout.
    pub mosaics: &'static [(&'static str, &'static str)],
    /// ACS mosaics write the filter into one of two wheels (`FILTER1`/`FILTER2`, the other
    /// `CLEAR...`), WFC3 mosaics into `FILTER`.
    pub acs: bool,
}

/// The surveys the emulator serves: GOODS-North (CANDELS 60 and 30 mas, GOODS ACS) and
/// GOODS-South (CANDELS 60 mas).
pub const SURVEYS: &[Survey] = &[
    Survey {
        name: "candels_gn_30mas",
        ra: 189.228,
        dec: 62.238,
        half: 0.12,
        pixel_arcsec: 0.03,
        // As in a real answer (astroquery's test data): F606W, F814W and F850LP.
        mosaics: &[
            ("hlsp_candels_hst_acs_gn-tot-30mas_f606w_v1.0_drz.fits", "F606W"),
            ("hlsp_candels_hst_acs_gn-tot-30mas_f814w_v1.0_drz.fits", "F814W"),
            ("hlsp_candels_hst_acs_gn-tot-30mas_f850lp_v1.0_drz.fits", "F850LP"),
        ],
        acs: true,
    },
    Survey {
        name: "candels_gn_60mas",
        ra: 189.228,
        dec: 62.238,
        half: 0.12,
        pixel_arcsec: 0.06,
        mosaics: &[
            ("hlsp_candels_hst_wfc3_gn-tot-60mas_f105w_v1.0_drz.fits", "F105W"),
            ("hlsp_candels_hst_wfc3_gn-tot-60mas_f125w_v1.0_drz.fits", "F125W"),
            ("hlsp_candels_hst_wfc3_gn-tot-60mas_f160w_v1.0_drz.fits", "F160W"),
        ],
        acs: false,
    },
    Survey {
        name: "goods_north",
        ra: 189.228,
        dec: 62.238,
        half: 0.16,
        pixel_arcsec: 0.03,
        mosaics: &[("h_nz_sect23_v2.0_drz_img.fits", "F850LP")],
        acs: true,
    },
    Survey {
        name: "candels_gs_60mas",
        ra: 53.122,
        dec: -27.805,
        half: 0.12,
        pixel_arcsec: 0.06,
        mosaics: &[
            ("hlsp_candels_hst_wfc3_gs-tot-60mas_f125w_v1.0_drz.fits", "F125W"),
            ("hlsp_candels_hst_wfc3_gs-tot-60mas_f160w_v1.0_drz.fits", "F160W"),
        ],
        acs: false,
    },
];

/// Largest cutout side in pixels.
pub const MAX_SIDE: u32 = 2000;

impl Survey {
    pub fn covers(&self, ra: f64, dec: f64) -> bool {
        let dra = ((ra - self.ra + 540.0) % 360.0 - 180.0) * self.dec.to_radians().cos();
        (dec - self.dec).abs() <= self.half && dra.abs() <= self.half
    }
}

/// The surveys covering a position, in name order.
pub fn surveys_at(ra: f64, dec: f64) -> Vec<&'static Survey> {
    let mut s: Vec<&Survey> = SURVEYS.iter().filter(|s| s.covers(ra, dec)).collect();
    s.sort_by_key(|s| s.name);
    s
}

pub fn survey(name: &str) -> Option<&'static Survey> {
    SURVEYS.iter().find(|s| s.name == name)
}

/// The pixels of mosaic `m` of `survey` around (ra, dec), row-major (ny, nx), FITS row 0 first:
/// a galaxy (an elliptical Gaussian whose size and angle follow the position) on a sky that
/// rises with the filter index; mosaic 1 has a NaN in its first pixel (the mosaic's edge).
pub fn pixels_of(survey: &Survey, m: usize, ra: f64, dec: f64, ny: usize, nx: usize) -> Vec<f32> {
    galaxy(survey.pixel_arcsec, m, ra, dec, ny, nx)
}

/// A galaxy on a sky (see `pixels_of`), plane `m`, in pixels of `pixel_arcsec` (the galaxy's
/// angular size is fixed, so finer pixels make it more pixels across).
pub fn galaxy(pixel_arcsec: f64, m: usize, ra: f64, dec: f64, ny: usize, nx: usize) -> Vec<f32> {
    let seed = (ra * 1000.0).round() as i64 ^ ((dec * 1000.0).round() as i64).rotate_left(7);
    let sigma = (2.0 + (seed.rem_euclid(7)) as f64 * 0.5) * 0.06 / pixel_arcsec;
    let angle = (seed.rem_euclid(180)) as f64 * std::f64::consts::PI / 180.0;
    let (cy, cx) = ((ny as f64 - 1.0) / 2.0, (nx as f64 - 1.0) / 2.0);
    let peak = 5.0 + 3.0 * m as f64;
    let mut out = Vec::with_capacity(ny * nx);
    for y in 0..ny {
        for x in 0..nx {
            let (dy, dx) = (y as f64 - cy, x as f64 - cx);
            let (u, v) = (dx * angle.cos() + dy * angle.sin(), -dx * angle.sin() + dy * angle.cos());
            let r2 = (u / sigma).powi(2) + (v / (0.6 * sigma)).powi(2);
            let sky = 0.01 * (m as f64 + 1.0) + 0.001 * ((x * 7 + y * 3) % 5) as f64;
            out.push((sky + peak * (-0.5 * r2).exp()) as f32);
        }
    }
    if m == 1 && !out.is_empty() {
        out[0] = f32::NAN;
    }
    out
}

/// One image HDU of a cutout file: its name, pixels and string keywords.
pub struct Hdu {
    pub extname: &'static str,
    pub data: Vec<f32>,
    pub keys: Vec<(&'static str, String)>,
}

/// A cutout file as astrocut writes them: an empty primary (`ORIGIN`, `RA_OBJ`, `DEC_OBJ` and
/// `primary_keys`), then one float32 (ny, nx) image HDU per `hdus`, each with the cutout's WCS
/// (TAN, `pixel_arcsec` pixels, centred on the position).
pub fn cutout_file(
    ra: f64,
    dec: f64,
    ny: usize,
    nx: usize,
    pixel_arcsec: f64,
    primary_keys: &[(&str, &str)],
    hdus: &[Hdu],
) -> fitsio::errors::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cutout.fits");
    {
        let mut f = FitsFile::create(&path).open()?;
        let primary = f.primary_hdu()?;
        for (k, v) in [("ORIGIN", "STScI/MAST"), ("CREATOR", "astrocut"), ("PROCVER", "0.11.0")] {
            primary.write_key(&mut f, k, v)?;
        }
        for (k, v) in primary_keys {
            primary.write_key(&mut f, k, *v)?;
        }
        primary.write_key(&mut f, "RA_OBJ", ra)?;
        primary.write_key(&mut f, "DEC_OBJ", dec)?;
        let scale = pixel_arcsec / 3600.0;
        for h in hdus {
            let desc = ImageDescription { data_type: ImageType::Float, dimensions: &[ny, nx] };
            let hdu = f.create_image(h.extname, &desc)?;
            hdu.write_image(&mut f, &h.data)?;
            for (k, v) in [
                ("CTYPE1", "RA---TAN"),
                ("CTYPE2", "DEC--TAN"),
                ("CUNIT1", "deg"),
                ("CUNIT2", "deg"),
                ("RADESYS", "ICRS"),
            ] {
                hdu.write_key(&mut f, k, v)?;
            }
            for (k, v) in &h.keys {
                hdu.write_key(&mut f, k, v.as_str())?;
            }
            for (k, v) in [
                ("CRVAL1", ra),
                ("CRVAL2", dec),
                ("CRPIX1", (nx as f64 + 1.0) / 2.0),
                ("CRPIX2", (ny as f64 + 1.0) / 2.0),
                ("CD1_1", -scale),
                ("CD1_2", 0.0),
                ("CD2_1", 0.0),
                ("CD2_2", scale),
            ] {
                hdu.write_key(&mut f, k, v)?;
            }
        }
    }
    Ok(fs_err::read(&path)?)
}

/// The cutout FITS of one survey: an empty primary, then one float32 `CUTOUT` image HDU per
/// mosaic with the cutout's WCS, `ORIG_FLE` and the filter, as Zcut writes them.
pub fn fits(survey: &Survey, ra: f64, dec: f64, ny: usize, nx: usize) -> fitsio::errors::Result<Vec<u8>> {
    let hdus: Vec<Hdu> = survey
        .mosaics
        .iter()
        .enumerate()
        .map(|(m, (orig, filter))| {
            let mut keys = vec![("ORIG_FLE", orig.to_string())];
            if survey.acs {
                let (one, two) = if m % 2 == 0 { (*filter, "CLEAR2L") } else { ("CLEAR1L", *filter) };
                keys.extend([("FILTER1", one.to_string()), ("FILTER2", two.to_string())]);
            } else {
                keys.push(("FILTER", filter.to_string()));
            }
            Hdu { extname: "CUTOUT", data: pixels_of(survey, m, ra, dec, ny, nx), keys }
        })
        .collect();
    cutout_file(ra, dec, ny, nx, survey.pixel_arcsec, &[], &hdus)
}

/// The 8-bit grey levels of a plane as Zcut's jpg/png answers hold them (linear between the
/// finite minimum and maximum; NaN black), image row 0 at the top (FITS row 0 at the bottom).
pub fn grey_of(pixels: &[f32], ny: usize, nx: usize) -> Vec<u8> {
    let finite = pixels.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let mut out = vec![0u8; ny * nx];
    for y in 0..ny {
        for x in 0..nx {
            let v = pixels[(ny - 1 - y) * nx + x];
            out[y * nx + x] = if v.is_finite() && hi > lo { (((v - lo) / (hi - lo)) * 255.0).round() as u8 } else { 0 };
        }
    }
    out
}

/// The image of mosaic `m` encoded as jpg or png.
pub fn image(survey: &Survey, m: usize, ra: f64, dec: f64, ny: usize, nx: usize, png: bool) -> Result<Vec<u8>, String> {
    let grey = grey_of(&pixels_of(survey, m, ra, dec, ny, nx), ny, nx);
    let buf = image::GrayImage::from_raw(nx as u32, ny as u32, grey).ok_or("image size")?;
    let mut out = Vec::new();
    let format = if png { image::ImageFormat::Png } else { image::ImageFormat::Jpeg };
    buf.write_to(&mut std::io::Cursor::new(&mut out), format).map_err(|e| e.to_string())?;
    Ok(out)
}
