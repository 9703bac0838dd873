//! FITS images -> sample fields. Reads the first image HDU into float32 (cfitsio applies
//! BSCALE/BZERO), undoes PS1's asinh compression when BSOFTEN/BOFFSET are present, scales each
//! plane, applies the NaN policy, and emits `npy`, `json`, `fits` and `png` as the recipe asks.

use std::ffi::CString;

use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::{FileOpenMode, FitsFile};
use serde_json::{json, Map, Value};

use super::scale::{preview_png, scale_plane};
use super::{Fields, SampleError};
use crate::recipe::raw::{ImageOutput, NanPolicy};
use crate::recipe::ImageTransform;

/// Length of a FITS block; headers and data are padded to it.
const BLOCK: usize = 2880;
/// `a = 2.5 log10(e)`, the softening constant of PS1's asinh compression (ARCHIVES.md 1.6).
const ASINH_A: f64 = 1.085_736_204_758_129_6;

/// A decoded image: float32 pixels, row-major, shape (H, W) or (C, H, W).
#[derive(Debug, Clone)]
pub struct Image {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
    /// Index of the HDU the image came from (0 = primary).
    pub hdu: usize,
    /// Header keywords kept for the json field, in a fixed order.
    pub header: Map<String, Value>,
    /// Whether PS1 asinh compression was undone.
    pub asinh_undone: bool,
}

/// What the json field says about where the image came from.
pub struct Provenance<'a> {
    pub id: &'a str,
    /// (path or URL, sha256) of each input file.
    pub inputs: &'a [(String, String)],
}

/// Turn a FITS file's bytes into the fields the recipe asks for.
pub fn fits_fields(bytes: &[u8], cfg: &ImageTransform, prov: &Provenance) -> Result<Fields, SampleError> {
    if cfg.outputs == [ImageOutput::Fits] {
        // Pass-through only: check the file is whole, skip decoding pixels nobody asked for.
        check_structure(bytes)?;
        return Ok(vec![("fits".to_string(), bytes.to_vec())]);
    }
    let image = decode(bytes)?;
    let mut fields = Fields::new();
    let mut pixels = image.data.clone();
    let plane = image.shape[image.shape.len() - 2..].iter().product::<usize>();
    let nan_pixels = pixels.iter().filter(|v| !v.is_finite()).count();
    for chunk in pixels.chunks_mut(plane.max(1)) {
        scale_plane(chunk, cfg.scale);
    }
    if cfg.nan == NanPolicy::Zero {
        for v in pixels.iter_mut().filter(|v| !v.is_finite()) {
            *v = 0.0;
        }
    }
    for out in &cfg.outputs {
        let bytes = match out {
            ImageOutput::Npy => npy_f32(&pixels, &image.shape)?,
            ImageOutput::Fits => bytes.to_vec(),
            ImageOutput::Png => {
                preview_png(&image.data, &image.shape).map_err(|e| SampleError(format!("png preview: {e}")))?
            }
            ImageOutput::Json => {
                let meta = json!({
                    "id": prov.id,
                    "inputs": prov.inputs.iter().map(|(p, s)| json!({"path": p, "sha256": s})).collect::<Vec<_>>(),
                    "image": {
                        "hdu": image.hdu,
                        "shape": image.shape,
                        "dtype": "float32",
                        "asinh_undone": image.asinh_undone,
                        "nonfinite_pixels": nan_pixels,
                        "nan": cfg.nan,
                        "scale": cfg.scale,
                    },
                    "header": image.header,
                });
                let mut v = serde_json::to_vec(&meta).map_err(|e| SampleError(e.to_string()))?;
                v.push(b'\n');
                v
            }
        };
        fields.push((out.field().to_string(), bytes));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(fields)
}

/// Serialise a float32 array as `.npy` (little-endian, C order).
pub fn npy_f32(data: &[f32], shape: &[usize]) -> Result<Vec<u8>, SampleError> {
    use npyz::WriterBuilder;
    let mut out = Vec::with_capacity(data.len() * 4 + 128);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let err = |e: std::io::Error| SampleError(format!("npy: {e}"));
    let mut writer = npyz::WriteOptions::new()
        .dtype(npyz::DType::new_scalar("<f4".parse().map_err(|e| SampleError(format!("npy dtype: {e:?}")))?))
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .map_err(err)?;
    writer.extend(data.iter().copied()).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

/// Decode the first image HDU of a FITS file held in memory.
pub fn decode(bytes: &[u8]) -> Result<Image, SampleError> {
    check_structure(bytes)?;
    let mut mem = MemFits::open(bytes)?;
    let fits = mem.file();
    let n = fits.num_hdus().map_err(fits_err)?;
    for index in 0..n {
        let hdu = fits.hdu(index).map_err(fits_err)?;
        let shape = match &hdu.info {
            HduInfo::ImageInfo { shape, .. } if !shape.is_empty() && shape.iter().all(|&d| d > 0) => shape.clone(),
            _ => continue,
        };
        return read_image(fits, &hdu, index, shape);
    }
    Err(SampleError("no image HDU with data in the file".into()))
}

fn read_image(fits: &mut FitsFile, hdu: &FitsHdu, index: usize, shape: Vec<usize>) -> Result<Image, SampleError> {
    let shape = match shape.len() {
        2 | 3 => shape,
        d if d > 3 && shape[..d - 3].iter().all(|&s| s == 1) => shape[d - 3..].to_vec(),
        d => return Err(SampleError(format!("image HDU {index} has {d} axes; expected 2 (H,W) or 3 (C,H,W)"))),
    };
    let mut data: Vec<f32> = hdu.read_image(fits).map_err(fits_err)?;
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(SampleError(format!("read {} pixels, expected {expected}", data.len())));
    }
    let soften = key_f64(fits, hdu, "BSOFTEN");
    let offset = key_f64(fits, hdu, "BOFFSET");
    let asinh_undone = match (soften, offset) {
        (Some(b), Some(o)) => {
            for v in data.iter_mut().filter(|v| v.is_finite()) {
                *v = (o + 2.0 * b * libm::sinh(f64::from(*v) / ASINH_A)) as f32;
            }
            true
        }
        _ => false,
    };
    Ok(Image { data, header: header_keywords(fits, hdu, shape.len()), shape, hdu: index, asinh_undone })
}

fn key_f64(fits: &mut FitsFile, hdu: &FitsHdu, name: &str) -> Option<f64> {
    hdu.read_key::<f64>(fits, name).ok().filter(|v| v.is_finite())
}

fn key_str(fits: &mut FitsFile, hdu: &FitsHdu, name: &str) -> Option<String> {
    hdu.read_key::<String>(fits, name).ok().map(|s| s.trim().to_string())
}

/// WCS, exposure, time, filter and zero-point keywords, in a fixed order, those present only.
fn header_keywords(fits: &mut FitsFile, hdu: &FitsHdu, naxis: usize) -> Map<String, Value> {
    let axes = naxis.min(2);
    let mut out = Map::new();
    let put_f = |fits: &mut FitsFile, out: &mut Map<String, Value>, name: &str, label: &str| {
        if let Some(v) = key_f64(fits, hdu, name) {
            out.insert(label.to_string(), json!(v));
        }
    };
    for name in ["RADESYS", "RADECSYS"] {
        if let Some(v) = key_str(fits, hdu, name) {
            out.insert(name.into(), json!(v));
        }
    }
    put_f(fits, &mut out, "EQUINOX", "EQUINOX");
    for i in 1..=axes {
        for prefix in ["CTYPE", "CUNIT"] {
            let name = format!("{prefix}{i}");
            if let Some(v) = key_str(fits, hdu, &name) {
                out.insert(name, json!(v));
            }
        }
        for prefix in ["CRVAL", "CRPIX", "CDELT"] {
            let name = format!("{prefix}{i}");
            put_f(fits, &mut out, &name, &name);
        }
    }
    for i in 1..=axes {
        for j in 1..=axes {
            for name in
                [format!("PC{i}_{j}"), format!("PC{i:03}{j:03}"), format!("CD{i}_{j}"), format!("CD{i:03}{j:03}")]
            {
                put_f(fits, &mut out, &name, &name);
            }
        }
    }
    put_f(fits, &mut out, "EXPTIME", "EXPTIME");
    put_f(fits, &mut out, "MJD-OBS", "MJD-OBS");
    for name in ["FILTER", "FPA.FILTER", "FILTERID"] {
        if let Some(v) = key_str(fits, hdu, name) {
            out.insert("filter".into(), json!(v));
            out.insert("filter_keyword".into(), json!(name));
            break;
        }
    }
    for name in ["FPA.ZP", "MAGZERO", "MAGZP", "ZEROPT", "PHOTZP", "ZP"] {
        if let Some(v) = key_f64(fits, hdu, name) {
            out.insert("zero_point".into(), json!(v));
            out.insert("zero_point_keyword".into(), json!(name));
            break;
        }
    }
    out
}

fn fits_err(e: fitsio::errors::Error) -> SampleError {
    SampleError(format!("not a readable FITS image: {e}"))
}

/// Cheap structural checks before cfitsio sees the bytes: the FITS signature, an END card, and
/// enough bytes for the data the first header declares (catches truncated downloads).
fn check_structure(bytes: &[u8]) -> Result<(), SampleError> {
    if bytes.len() < BLOCK || !bytes.starts_with(b"SIMPLE  =") {
        return Err(SampleError(format!("not a FITS file: {} bytes without the `SIMPLE  =` signature", bytes.len())));
    }
    let mut offset = 0;
    let mut hdu = 0;
    while offset < bytes.len() {
        let (header_len, data_len) = hdu_extent(&bytes[offset..])
            .ok_or_else(|| SampleError(format!("HDU {hdu}: header has no END card (truncated or corrupt)")))?;
        let need = offset + header_len + data_len.div_ceil(BLOCK) * BLOCK;
        if need > bytes.len() {
            return Err(SampleError(format!(
                "truncated FITS: HDU {hdu} declares {data_len} data bytes; the file ends {} bytes short",
                need - bytes.len()
            )));
        }
        offset = need;
        hdu += 1;
        if bytes.len() - offset < BLOCK || !bytes[offset..].starts_with(b"XTENSION=") {
            break;
        }
    }
    Ok(())
}

/// (header bytes incl. padding, data bytes without padding) of the HDU at the start of `bytes`.
fn hdu_extent(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut bitpix: i64 = 0;
    let mut naxis = 0usize;
    let mut dims: Vec<usize> = Vec::new();
    let (mut pcount, mut gcount) = (0usize, 1usize);
    for (i, card) in bytes.chunks(80).enumerate() {
        if card.len() < 80 {
            return None;
        }
        let name = std::str::from_utf8(&card[..8]).ok()?.trim_end();
        let value = || -> Option<i64> {
            let text = std::str::from_utf8(&card[10..]).ok()?;
            text.split('/').next()?.trim().parse().ok()
        };
        match name {
            "END" => {
                let header = (i + 1) * 80;
                let header = header.div_ceil(BLOCK) * BLOCK;
                let elems: usize = if naxis == 0 { 0 } else { dims.iter().product() };
                let data = (bitpix.unsigned_abs() as usize / 8) * gcount * (pcount + elems);
                return Some((header, data));
            }
            "BITPIX" => bitpix = value()?,
            "NAXIS" => naxis = usize::try_from(value()?).ok()?,
            "PCOUNT" => pcount = usize::try_from(value()?).ok()?,
            "GCOUNT" => gcount = usize::try_from(value()?).ok()?,
            n if n.starts_with("NAXIS") => dims.push(usize::try_from(value()?).ok()?),
            _ => {}
        }
    }
    None
}

/// A FITS file opened by cfitsio from a buffer we own (cfitsio keeps pointers to the buffer, its
/// address and its size for as long as the file is open, so all three live in this struct).
struct MemFits {
    // Field order matters: `file` is dropped (closed) before the buffer it points into.
    file: Option<FitsFile>,
    _ptr: Box<*mut std::ffi::c_void>,
    _size: Box<usize>,
    _buf: Vec<u8>,
}

impl MemFits {
    fn open(bytes: &[u8]) -> Result<Self, SampleError> {
        let mut buf = bytes.to_vec();
        let mut ptr = Box::new(buf.as_mut_ptr() as *mut std::ffi::c_void);
        let mut size = Box::new(buf.len());
        let name = CString::new("mem.fits").map_err(|e| SampleError(e.to_string()))?;
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: `ptr` and `size` are boxed so their addresses are stable, and they and `buf`
        // outlive the FitsFile (dropped first, see `Drop`). READONLY: cfitsio never writes or
        // reallocates the buffer (no realloc function is given).
        unsafe {
            fitsio::sys::ffomem(
                &mut fptr,
                name.as_ptr(),
                0, // READONLY
                &mut *ptr as *mut *mut std::ffi::c_void,
                &mut *size as *mut usize,
                0,
                None,
                &mut status,
            );
        }
        if status != 0 || fptr.is_null() {
            return Err(SampleError(format!("not a readable FITS file (cfitsio status {status})")));
        }
        // SAFETY: fptr is a valid, open fitsfile returned by ffomem above.
        let file = unsafe { FitsFile::from_raw(fptr, FileOpenMode::READONLY) }.map_err(fits_err)?;
        Ok(MemFits { file: Some(file), _ptr: ptr, _size: size, _buf: buf })
    }

    fn file(&mut self) -> &mut FitsFile {
        self.file.as_mut().expect("open until dropped")
    }
}

impl Drop for MemFits {
    fn drop(&mut self) {
        // Close the cfitsio file while the buffer is still alive.
        self.file.take();
    }
}
