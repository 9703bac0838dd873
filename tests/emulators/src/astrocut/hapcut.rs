//! HAPcut (`https://mast.stsci.edu/hapcut/api/v0.1/`): cutouts of the Hubble Advanced Products
//! skycell mosaics, one FITS file per product (instrument, detector, filter) with `SCI` and `WHT`
//! image HDUs, named as the real ones are
//! (`hst_cutout_skycell-p2007x09y05-ra351d3478-decn28d4978_wfc3_uvis_f606w.fits`).

use super::zcut::{cutout_file, galaxy, Hdu};

/// One skycell of the emulator's invented sky and the products that cover it.
#[derive(Debug)]
pub struct Skycell {
    pub name: &'static str,
    pub ra: f64,
    pub dec: f64,
    pub half: f64,
    /// (instrument, detector, filter) of each product, in the order the zip lists them.
    pub products: &'static [(&'static str, &'static str, &'static str)],
}

/// Arcseconds per pixel of the HAP skycell mosaics (UVIS/WFC scale).
pub const PIXEL_ARCSEC: f64 = 0.04;

/// The skycells served: one around the position of the real file name MAST's docs show, one
/// at GOODS-North.
pub const SKYCELLS: &[Skycell] = &[
    Skycell {
        name: "p2007x09y05",
        ra: 351.3478,
        dec: -28.4978,
        half: 0.05,
        products: &[("wfc3", "uvis", "f606w"), ("wfc3", "uvis", "f814w"), ("acs", "wfc", "f814w")],
    },
    Skycell { name: "p1889x07y19", ra: 189.228, dec: 62.238, half: 0.1, products: &[("acs", "wfc", "f435w")] },
];

/// The skycells covering a position.
pub fn skycells_at(ra: f64, dec: f64) -> Vec<&'static Skycell> {
    SKYCELLS
        .iter()
        .filter(|c| {
            let dra = ((ra - c.ra + 540.0) % 360.0 - 180.0) * c.dec.to_radians().cos();
            (dec - c.dec).abs() <= c.half && dra.abs() <= c.half
        })
        .collect()
}

/// `351d3478`, `n28d4978`: a coordinate as HAPcut file names write it.
fn coord(v: f64) -> String {
    let text = format!("{:.4}", v.abs()).replace('.', "d");
    if v < 0.0 {
        format!("n{text}")
    } else {
        text
    }
}

/// The file name of one product's cutout.
pub fn file_name(cell: &Skycell, product: (&str, &str, &str), ra: f64, dec: f64) -> String {
    let (instrument, detector, filter) = product;
    format!("hst_cutout_skycell-{}-ra{}-dec{}_{instrument}_{detector}_{filter}.fits", cell.name, coord(ra), coord(dec))
}

/// The SCI pixels of product `p` (a galaxy on a sky) and its WHT pixels (an inverse variance
/// that falls off from the centre; 0 where SCI is NaN).
pub fn pixels_of(p: usize, ra: f64, dec: f64, ny: usize, nx: usize) -> (Vec<f32>, Vec<f32>) {
    let sci = galaxy(PIXEL_ARCSEC, p, ra, dec, ny, nx);
    let wht = (0..ny * nx)
        .map(|i| {
            let (y, x) = ((i / nx) as f32, (i % nx) as f32);
            let r = ((y - ny as f32 / 2.0).powi(2) + (x - nx as f32 / 2.0).powi(2)).sqrt();
            if sci[i].is_nan() {
                0.0
            } else {
                1000.0 / (1.0 + r / 10.0) + p as f32
            }
        })
        .collect();
    (sci, wht)
}

/// The cutout FITS of one product: an empty primary (`TELESCOP`, `INSTRUME`, `DETECTOR`,
/// `FILTER`), then `SCI` and `WHT`.
pub fn fits(
    p: usize,
    product: (&str, &str, &str),
    ra: f64,
    dec: f64,
    ny: usize,
    nx: usize,
) -> fitsio::errors::Result<Vec<u8>> {
    let (instrument, detector, filter) = product;
    let (sci, wht) = pixels_of(p, ra, dec, ny, nx);
    let (i, d, f) = (instrument.to_uppercase(), detector.to_uppercase(), filter.to_uppercase());
    let primary = [("TELESCOP", "HST"), ("INSTRUME", i.as_str()), ("DETECTOR", d.as_str()), ("FILTER", f.as_str())];
    let bunit = ("BUNIT", "ELECTRONS/S".to_string());
    let hdus = [
        Hdu { extname: "SCI", data: sci, keys: vec![bunit] },
        Hdu { extname: "WHT", data: wht, keys: vec![("BUNIT", "UNITLESS".to_string())] },
    ];
    cutout_file(ra, dec, ny, nx, PIXEL_ARCSEC, &primary, &hdus)
}
