//! A TESScut target-pixel file -> sample fields (docs/archives.md 4.1): the `PIXELS` binary table
//! (one row per cadence; `FLUX`, `FLUX_ERR`, `FLUX_BKG` are `ny*nx` vectors), the `APERTURE`
//! image (whose header holds the cutout's WCS) and the primary header (camera, CCD).
//!
//! Fields: `npy` flux float32 (T, H, W); `fluxerr.npy` and `bkg.npy` likewise; `time.npy` float64
//! (T,) in BTJD; `cadence.npy` and `quality.npy` int32 (T,); `aperture.npy` int32 (H, W); `json`
//! metadata; `fits` the original file (when asked); `cls` from the target's label.

use fitsio::hdu::HduInfo;
use fitsio::FitsFile;
use serde_json::{json, Map, Value};

use crate::sample::{Fields, SampleError};
use crate::target::Target;

/// Header keywords of the `APERTURE` HDU copied into the metadata as the cutout's WCS.
pub const WCS_KEYS: &[&str] = &[
    "WCSAXES", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2",
    "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE",
];

/// The arrays of one target-pixel file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tpf {
    pub height: usize,
    pub width: usize,
    pub time: Vec<f64>,
    pub cadence: Vec<i32>,
    pub quality: Vec<i32>,
    pub flux: Vec<f32>,
    pub flux_err: Vec<f32>,
    pub bkg: Vec<f32>,
    pub aperture: Vec<i32>,
    pub camera: Option<Value>,
    pub ccd: Option<Value>,
    pub wcs: Map<String, Value>,
}

impl Tpf {
    pub fn cadences(&self) -> usize {
        self.time.len()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> SampleError {
    SampleError(format!("target-pixel file: {what}: {e}"))
}

fn key_value(f: &mut FitsFile, hdu: &fitsio::hdu::FitsHdu, name: &str) -> Option<Value> {
    if let Ok(x) = hdu.read_key::<f64>(f, name) {
        return serde_json::Number::from_f64(x).map(Value::Number);
    }
    hdu.read_key::<String>(f, name).ok().map(|s| Value::String(s.trim().to_string()))
}

/// Read a target-pixel file held in `bytes` (cfitsio reads it from a private temporary file).
pub fn read(bytes: &[u8]) -> Result<Tpf, SampleError> {
    crate::transform::image::check_structure(bytes)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".etd-tpf-")
        .suffix(".fits")
        .tempfile()
        .map_err(|e| err("cannot make a temporary file", e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| err("cannot write a temporary file", e))?;
    let mut f = FitsFile::open(tmp.path()).map_err(|e| err("cfitsio cannot open it", e))?;
    let primary = f.primary_hdu().map_err(|e| err("no primary HDU", e))?;
    let camera = key_value(&mut f, &primary, "CAMERA");
    let ccd = key_value(&mut f, &primary, "CCD");
    let ap = f.hdu("APERTURE").map_err(|e| err("no APERTURE HDU", e))?;
    let (height, width) = match &ap.info {
        HduInfo::ImageInfo { shape, .. } if shape.len() == 2 => (shape[0], shape[1]),
        other => return Err(err("APERTURE", format!("is not a 2-d image ({other:?})"))),
    };
    let aperture: Vec<i32> = ap.read_image(&mut f).map_err(|e| err("APERTURE", e))?;
    let mut wcs = Map::new();
    for k in WCS_KEYS {
        if let Some(v) = key_value(&mut f, &ap, k) {
            wcs.insert((*k).to_string(), v);
        }
    }
    let px = f.hdu("PIXELS").map_err(|e| err("no PIXELS HDU", e))?;
    let (rows, columns) = match &px.info {
        HduInfo::TableInfo { num_rows, column_descriptions } => (*num_rows, column_descriptions.clone()),
        _ => return Err(err("PIXELS", "is not a table")),
    };
    let pixels = height * width;
    for name in ["FLUX", "FLUX_ERR", "FLUX_BKG"] {
        let col =
            columns.iter().find(|c| c.name == name).ok_or_else(|| err("PIXELS", format!("has no {name} column")))?;
        if col.data_type.repeat != pixels {
            return Err(err(
                "PIXELS",
                format!(
                    "{name} holds {} values per row, the {height}x{width} aperture needs {pixels}",
                    col.data_type.repeat
                ),
            ));
        }
    }
    let col_f32 = |f: &mut FitsFile, name: &str| -> Result<Vec<f32>, SampleError> {
        px.read_col::<f32>(f, name).map_err(|e| err(&format!("PIXELS {name}"), e))
    };
    let flux = col_f32(&mut f, "FLUX")?;
    let flux_err = col_f32(&mut f, "FLUX_ERR")?;
    let bkg = col_f32(&mut f, "FLUX_BKG")?;
    let time: Vec<f64> = px.read_col(&mut f, "TIME").map_err(|e| err("PIXELS TIME", e))?;
    let cadence: Vec<i32> = px.read_col(&mut f, "CADENCENO").map_err(|e| err("PIXELS CADENCENO", e))?;
    let quality: Vec<i32> = px.read_col(&mut f, "QUALITY").map_err(|e| err("PIXELS QUALITY", e))?;
    for (name, n) in [("TIME", time.len()), ("CADENCENO", cadence.len()), ("QUALITY", quality.len())] {
        if n != rows {
            return Err(err("PIXELS", format!("{name} has {n} values for {rows} rows")));
        }
    }
    if flux.len() != rows * pixels || flux_err.len() != rows * pixels || bkg.len() != rows * pixels {
        return Err(err("PIXELS", "an image column is shorter than the table"));
    }
    Ok(Tpf { height, width, time, cadence, quality, flux, flux_err, bkg, aperture, camera, ccd, wcs })
}

fn npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    data: &[T],
    shape: &[usize],
    descr: &str,
) -> Result<Vec<u8>, SampleError> {
    use npyz::WriterBuilder;
    let mut out = Vec::with_capacity(std::mem::size_of_val(data) + 128);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let e = |e: std::io::Error| SampleError(format!("npy: {e}"));
    let dtype = npyz::DType::new_scalar(descr.parse().map_err(|e| SampleError(format!("npy dtype: {e:?}")))?);
    let mut w = npyz::WriteOptions::new().dtype(dtype).shape(&shape).writer(&mut out).begin_nd().map_err(e)?;
    w.extend(data.iter().copied()).map_err(e)?;
    w.finish().map_err(e)?;
    Ok(out)
}

/// What the metadata says about where a sample came from.
pub struct Provenance<'a> {
    pub target: &'a Target,
    pub sector: u32,
    pub url: &'a str,
    pub raw_sha256: &'a str,
    pub member: &'a str,
    pub members: Vec<String>,
    pub look_up: Option<Value>,
}

/// The fields of one (target, sector) sample.
pub fn fields(
    tpf: &Tpf,
    fits: Option<&[u8]>,
    prov: &Provenance<'_>,
    class: Option<usize>,
) -> Result<Fields, SampleError> {
    let (t, h, w) = (tpf.cadences(), tpf.height, tpf.width);
    let finite: Vec<f64> = tpf.time.iter().copied().filter(|x| x.is_finite()).collect();
    let range = if finite.is_empty() {
        Value::Null
    } else {
        json!([
            finite.iter().copied().fold(f64::INFINITY, f64::min),
            finite.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        ])
    };
    let mut meta = json!({
        "id": prov.target.id,
        "ra": prov.target.ra,
        "dec": prov.target.dec,
        "service": "tesscut",
        "product": super::PRODUCT,
        "sector": prov.sector,
        "camera": tpf.camera,
        "ccd": tpf.ccd,
        "shape": [t, h, w],
        "cadences": t,
        "time_range_btjd": range,
        "wcs": tpf.wcs,
        "url": prov.url,
        "raw_sha256": prov.raw_sha256,
        "member": prov.member,
        "members": prov.members,
    });
    super::put_label(&mut meta, prov.target, class);
    if let Some(m) = meta.as_object_mut() {
        if let Some(l) = &prov.look_up {
            m.insert("sector_look_up".into(), l.clone());
        }
    }
    let mut out: Fields = vec![
        ("npy".into(), npy(&tpf.flux, &[t, h, w], "<f4")?),
        ("fluxerr.npy".into(), npy(&tpf.flux_err, &[t, h, w], "<f4")?),
        ("bkg.npy".into(), npy(&tpf.bkg, &[t, h, w], "<f4")?),
        ("time.npy".into(), npy(&tpf.time, &[t], "<f8")?),
        ("cadence.npy".into(), npy(&tpf.cadence, &[t], "<i4")?),
        ("quality.npy".into(), npy(&tpf.quality, &[t], "<i4")?),
        ("aperture.npy".into(), npy(&tpf.aperture, &[h, w], "<i4")?),
        ("json".into(), serde_json::to_vec(&meta).map_err(|e| SampleError(format!("json: {e}")))?),
    ];
    if let Some(bytes) = fits {
        out.push(("fits".into(), bytes.to_vec()));
    }
    Ok(super::with_cls(out, class))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etd_emulators::astrocut::{pixels_of, target_pixel_file, zip_of, Observation};

    #[test]
    fn a_target_pixel_file_reads_back_as_written_and_a_damaged_one_is_named() {
        let o = Observation { sector: 6, camera: 1, ccd: 2 };
        let bytes = target_pixel_file(107.27, -70.0, o, 4, 3, 7).unwrap();
        let tpf = read(&bytes).unwrap();
        let want = pixels_of(107.27, -70.0, 6, 4, 3, 7);
        assert_eq!((tpf.height, tpf.width, tpf.cadences()), (4, 3, 7));
        assert_eq!(tpf.time, want.time);
        assert_eq!(tpf.quality, want.quality);
        assert_eq!(tpf.aperture, want.aperture);
        assert!(tpf.flux.iter().zip(&want.flux).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(tpf.camera, Some(json!(1.0)));
        assert_eq!(tpf.wcs["CTYPE2"], json!("DEC--TAN"));
        // The whole file travels in a zip the source reads back.
        let z = zip_of(&[("a.fits".to_string(), bytes.clone())]);
        assert_eq!(crate::sources::astrocut::zip::fits_members(&z).unwrap()[0].data, bytes);
        // Cut short: named as not a whole FITS file.
        let e = read(&bytes[..bytes.len() - 2880]).unwrap_err();
        assert!(e.0.contains("FITS") || e.0.contains("target-pixel"), "{}", e.0);
    }
}
