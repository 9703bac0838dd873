//! FITS images -> sample fields. Reads the first image HDU into float32 (cfitsio applies
//! BSCALE/BZERO), undoes PS1's asinh compression when BSOFTEN/BOFFSET are present, scales each
//! plane, applies the NaN policy, and emits `npy`, `json`, `fits` and `png` as the recipe asks.

use std::ffi::CString;

use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::{FileOpenMode, FitsFile};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::scale::{preview_png, scale_plane, Scale};
use super::{Fields, SampleError};

/// `transform.image`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    pub stack_filters: bool,
    pub nan: NanPolicy,
    pub scale: Scale,
    /// Sorted, unique.
    pub outputs: Vec<ImageOutput>,
}

/// What to do with NaN pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    /// Replace NaN (and ±inf) with 0 after scaling.
    #[default]
    Zero,
    /// Keep them.
    Keep,
}

/// Fields the image transform can emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageOutput {
    Npy,
    Json,
    Fits,
    Png,
}

impl ImageOutput {
    pub fn field(self) -> &'static str {
        match self {
            ImageOutput::Npy => "npy",
            ImageOutput::Json => "json",
            ImageOutput::Fits => "fits",
            ImageOutput::Png => "png",
        }
    }
}

/// Length of a FITS block; headers and data are padded to it.
const BLOCK: usize = 2880;
/// `a = 2.5 log10(e)`, the softening constant of PS1's asinh compression (docs/archives.md 1.6).
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
    if cfg.outputs == [ImageOutput::Npy] && cfg.scale == Scale::None && cfg.nan == NanPolicy::Zero {
        // Only the pixels, as they are, NaN zeroed: straight from the file's bytes when it is a
        // plain float32 image (the same bytes as the general path, see the tests).
        check_structure(bytes)?;
        if let Some(npy) = npy_plain_f32_nan_zero(bytes) {
            return Ok(vec![("npy".to_string(), npy?)]);
        }
    }
    let json = cfg.outputs.contains(&ImageOutput::Json);
    let png = cfg.outputs.contains(&ImageOutput::Png);
    // Only the json field needs the header keywords; without it a plain float32 image is read
    // without cfitsio (the same pixels, see `decode_plain_f32`).
    let mut image = if json { decode(bytes)? } else { decode_pixels(bytes)? };
    let mut fields = Fields::new();
    // The png preview is made from the unscaled pixels; without it they are scaled in place.
    let mut pixels = if png { image.data.clone() } else { std::mem::take(&mut image.data) };
    let plane = image.shape[image.shape.len() - 2..].iter().product::<usize>();
    // Only the json field reports the count; a pass over every pixel otherwise.
    let nan_pixels = if json { pixels.iter().filter(|v| !v.is_finite()).count() } else { 0 };
    scale_and_nan(&mut pixels, plane, cfg);
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

/// Scale each plane of `plane` pixels as `cfg.scale` says, then apply the NaN policy: the
/// image transform's pixel rules, for every source that makes images.
pub fn scale_and_nan(pixels: &mut [f32], plane: usize, cfg: &ImageTransform) {
    if cfg.scale != Scale::None {
        for chunk in pixels.chunks_mut(plane.max(1)) {
            scale_plane(chunk, cfg.scale);
        }
    }
    if cfg.nan == NanPolicy::Zero {
        // A select over every pixel (vectorised) rather than a branch per pixel.
        for v in pixels.iter_mut() {
            *v = if v.is_finite() { *v } else { 0.0 };
        }
    }
}

/// Serialise a float32 array as `.npy` (little-endian, C order).
pub fn npy_f32(data: &[f32], shape: &[usize]) -> Result<Vec<u8>, SampleError> {
    let mut out = npy_f32_header(shape)?;
    // The data in one pass (npyz's element-by-element writer costs more than the rest of the
    // sample); C order, little-endian, as the header says.
    let start = out.len();
    out.resize(start + data.len() * 4, 0);
    for (dst, v) in out[start..].chunks_exact_mut(4).zip(data) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// The `.npy` header of a little-endian float32 array of `shape` (npyz's), with room reserved for
/// the data.
fn npy_f32_header(shape: &[usize]) -> Result<Vec<u8>, SampleError> {
    use npyz::WriterBuilder;
    let count = shape.iter().product::<usize>();
    let mut out = Vec::with_capacity(count.saturating_mul(4).saturating_add(128));
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    npyz::WriteOptions::<f32>::new()
        .dtype(npyz::DType::new_scalar("<f4".parse().map_err(|e| SampleError(format!("npy dtype: {e:?}")))?))
        .shape(&shape)
        .writer(&mut out)
        .write_header_only()
        .map_err(|e| SampleError(format!("npy: {e}")))?;
    Ok(out)
}

/// Decode the pixels of the first image HDU; `header` is left empty (it is only for the json
/// field). Plain float32 images are read directly, anything else by `decode`.
pub fn decode_pixels(bytes: &[u8]) -> Result<Image, SampleError> {
    check_structure(bytes)?;
    match decode_plain_f32(bytes) {
        Some(image) => Ok(image),
        None => decode(bytes),
    }
}

/// A primary HDU holding a float32 image (`BITPIX = -32`, 2 or 3 axes) with no keyword that
/// changes its pixels (BSCALE, BZERO, BLANK, BSOFTEN, BOFFSET) and a header of printable ASCII
/// cards in the standard order, read without cfitsio: what cfitsio's `ffgpv` with a NaN null
/// value returns, bit for bit. Big-endian values become native; a value with an all-ones
/// exponent (NaN or +-inf) becomes `f32::NAN`, and one with an all-zero exponent (+-0 or
/// subnormal) becomes +0.0, as cfitsio's null check does. None for any other file (the caller
/// reads it with cfitsio, which also reports what is wrong with it). `check_structure` must
/// have passed.
fn decode_plain_f32(bytes: &[u8]) -> Option<Image> {
    let (dims, raw) = plain_f32_layout(bytes)?;
    let data = raw.chunks_exact(4).map(|b| plain_f32_pixel(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))).collect();
    Some(Image { data, shape: dims, hdu: 0, header: Map::new(), asinh_undone: false })
}

/// One big-endian float32 pixel as cfitsio reads it with a NaN null value: an all-ones exponent
/// (NaN, +-inf) is NaN, an all-zero exponent (+-0, subnormal) is +0.0.
#[inline]
fn plain_f32_pixel(bits: u32) -> f32 {
    match bits & 0x7f80_0000 {
        0x7f80_0000 => f32::NAN,
        0 => 0.0,
        _ => f32::from_bits(bits),
    }
}

/// The `npy` field of a plain float32 image (see `decode_plain_f32`) with `nan: zero` and no
/// scaling, written straight from the file's big-endian pixels: the bytes `npy_f32` writes for
/// the decoded, NaN-zeroed pixels, without the intermediate arrays. None when the file is not
/// plain (the caller takes the general path).
fn npy_plain_f32_nan_zero(bytes: &[u8]) -> Option<Result<Vec<u8>, SampleError>> {
    let (dims, raw) = plain_f32_layout(bytes)?;
    let mut out = match npy_f32_header(&dims) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    let start = out.len();
    out.resize(start + raw.len(), 0);
    for (dst, b) in out[start..].chunks_exact_mut(4).zip(raw.chunks_exact(4)) {
        let v = plain_f32_pixel(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let v = if v.is_finite() { v } else { 0.0 };
        dst.copy_from_slice(&v.to_le_bytes());
    }
    Some(Ok(out))
}

/// The shape (C order) and the big-endian pixel bytes of a plain float32 primary image (see
/// `decode_plain_f32`); None for any other file.
fn plain_f32_layout(bytes: &[u8]) -> Option<(Vec<usize>, &[u8])> {
    let cards = bytes.chunks_exact(80);
    let mut naxis = 0usize;
    let mut dims: Vec<usize> = Vec::with_capacity(3);
    let mut end = None;
    for (i, card) in cards.enumerate() {
        if !card.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return None;
        }
        let name = std::str::from_utf8(&card[..8]).ok()?.trim_end();
        let value = || std::str::from_utf8(&card[10..]).ok().and_then(|v| v.split('/').next()).map(str::trim);
        let int = || value()?.parse::<i64>().ok();
        let has_value = card[8] == b'=' && card[9] == b' ';
        match i {
            0 if name == "SIMPLE" && has_value && value() == Some("T") => {}
            1 if name == "BITPIX" && has_value && int() == Some(-32) => {}
            2 if name == "NAXIS" && has_value => {
                naxis = usize::try_from(int()?).ok().filter(|n| (2..=3).contains(n))?;
            }
            i if (3..3 + naxis).contains(&i) => {
                if name != format!("NAXIS{}", i - 2) || !has_value {
                    return None;
                }
                dims.push(usize::try_from(int()?).ok().filter(|&d| d > 0)?);
            }
            0..=2 => return None,
            _ => match name {
                "END" => {
                    end = Some(i);
                    break;
                }
                "BSCALE" | "BZERO" | "BLANK" | "BSOFTEN" | "BOFFSET" | "PCOUNT" | "GCOUNT" | "GROUPS" | "SIMPLE"
                | "BITPIX" | "XTENSION" => return None,
                n if n.starts_with("NAXIS") => return None,
                _ => {}
            },
        }
    }
    let header = ((end? + 1) * 80).div_ceil(BLOCK) * BLOCK;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let raw = bytes.get(header..header.checked_add(count.checked_mul(4)?)?)?;
    dims.reverse();
    Some((dims, raw))
}

/// Decode the first image HDU of a FITS file held in memory.
pub fn decode(bytes: &[u8]) -> Result<Image, SampleError> {
    decode_hdus(bytes, &[], true)?.pop().ok_or_else(|| SampleError("no image HDU with data in the file".into()))
}

/// Decode every image HDU with data, in file order (a primary without pixels is skipped), each
/// header also holding the string keywords `extra` that are present (e.g. astrocut's `ORIG_FLE`).
pub fn decode_all(bytes: &[u8], extra: &[&str]) -> Result<Vec<Image>, SampleError> {
    let images = decode_hdus(bytes, extra, false)?;
    if images.is_empty() {
        return Err(SampleError("no image HDU with data in the file".into()));
    }
    Ok(images)
}

fn decode_hdus(bytes: &[u8], extra: &[&str], first_only: bool) -> Result<Vec<Image>, SampleError> {
    check_structure(bytes)?;
    let mut mem = MemFits::open(bytes)?;
    let fits = mem.file()?;
    let n = fits.num_hdus().map_err(fits_err)?;
    let mut out = Vec::new();
    for index in 0..n {
        // Tables are skipped before fitsio describes them (it panics on some column types).
        if !is_image_hdu(fits, index).map_err(|e| SampleError(format!("not a readable FITS image: {e}")))? {
            continue;
        }
        let hdu = fitsio_hdu(fits, index).map_err(|e| SampleError(format!("not a readable FITS image: {e}")))?;
        let shape = match &hdu.info {
            HduInfo::ImageInfo { shape, .. } if !shape.is_empty() && shape.iter().all(|&d| d > 0) => shape.clone(),
            _ => continue,
        };
        // cfitsio sizes a file in memory by what its last header declares and would read past
        // the buffer (check_structure reads the header its own way; cfitsio's is the one that counts).
        let (mut head, mut data, mut end, mut status) = (0i64, 0i64, 0i64, 0);
        // SAFETY: the file is open and HDU `index` is current (fitsio_hdu moved to it); cfitsio
        // writes the three offsets passed by pointer.
        unsafe { fitsio::sys::ffghadll(fits.as_raw(), &mut head, &mut data, &mut end, &mut status) };
        if status != 0 || end < 0 || end as u64 > bytes.len() as u64 {
            return Err(SampleError(format!(
                "truncated FITS: HDU {index} declares data up to byte {end}; the file has {} bytes",
                bytes.len()
            )));
        }
        let mut image = read_image(fits, &hdu, index, shape)?;
        for name in extra {
            if let Some(v) = key_str(fits, &hdu, name) {
                image.header.insert((*name).to_string(), json!(v));
            }
        }
        out.push(image);
        if first_only {
            break;
        }
    }
    Ok(out)
}

/// Move to HDU `index` (0-based) with cfitsio alone; whether it is an image.
fn is_image_hdu(fits: &mut FitsFile, index: usize) -> Result<bool, String> {
    let hdunum = i32::try_from(index + 1).map_err(|_| format!("HDU {index} is past the last one cfitsio reads"))?;
    let (mut hdutype, mut status) = (0, 0);
    // SAFETY: the file is open; cfitsio writes the two integers passed by pointer.
    unsafe { fitsio::sys::ffmahd(fits.as_raw(), hdunum, &mut hdutype, &mut status) };
    if status != 0 {
        return Err(format!("cannot read HDU {index} (cfitsio status {status})"));
    }
    Ok(hdutype == fitsio::sys::IMAGE_HDU as i32)
}

/// The TFORM type letters fitsio's column parser knows; it panics on any other (found by fuzzing).
const FITSIO_TFORMS: &[u8] = b"LXBSEJDIKAUVW";

/// Move to HDU `index` (0-based) and describe it, as `FitsFile::hdu` does, but with an error
/// instead of fitsio's panic for a table column whose TFORM it cannot parse (an ASCII table's
/// `F8.3`, complex `C`/`M`, variable-length `P`/`Q`): those TFORMs are read with cfitsio first.
pub(crate) fn fitsio_hdu(fits: &mut FitsFile, index: usize) -> Result<FitsHdu, String> {
    if !is_image_hdu(fits, index)? {
        let (mut ncols, mut status) = (0, 0);
        // SAFETY: as above; HDU `index` is current.
        unsafe { fitsio::sys::ffgncl(fits.as_raw(), &mut ncols, &mut status) };
        for col in 1..=ncols.max(0) {
            let key = CString::new(format!("TFORM{col}")).map_err(|e| e.to_string())?;
            let mut value = [0 as std::ffi::c_char; 2 * fitsio::sys::FLEN_VALUE as usize];
            let mut comment = [0 as std::ffi::c_char; 2 * fitsio::sys::FLEN_COMMENT as usize];
            // SAFETY: `key` is NUL-terminated; `value` and `comment` are twice the sizes cfitsio
            // writes at most (FLEN_VALUE, FLEN_COMMENT, NUL included).
            unsafe {
                fitsio::sys::ffgkys(fits.as_raw(), key.as_ptr(), value.as_mut_ptr(), comment.as_mut_ptr(), &mut status)
            };
            let bytes: Vec<u8> = value.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            let tform = String::from_utf8_lossy(&bytes).trim().to_string();
            let letter = tform.bytes().find(|b| !b.is_ascii_digit());
            if status != 0 || !letter.is_some_and(|l| FITSIO_TFORMS.contains(&l)) {
                return Err(format!(
                    "HDU {index} column {col} has TFORM `{tform}`, which etd cannot read (cfitsio status {status})"
                ));
            }
        }
    }
    fits.hdu(index).map_err(|e| format!("cannot read HDU {index}: {e}"))
}

fn read_image(fits: &mut FitsFile, hdu: &FitsHdu, index: usize, shape: Vec<usize>) -> Result<Image, SampleError> {
    let shape = match shape.len() {
        2 | 3 => shape,
        d if d > 3 && shape[..d - 3].iter().all(|&s| s == 1) => shape[d - 3..].to_vec(),
        d => return Err(SampleError(format!("image HDU {index} has {d} axes; expected 2 (H,W) or 3 (C,H,W)"))),
    };
    let expected: usize = shape.iter().product();
    let mut data = read_pixels(fits, expected)?;
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

/// Read the current HDU's pixels as float32 with BSCALE/BZERO applied and undefined pixels (BLANK
/// in integer images) as NaN, as astropy reads them. fitsio's `read_image` passes no null value,
/// which makes cfitsio skip the BLANK check, so this calls cfitsio directly.
fn read_pixels(fits: &mut FitsFile, count: usize) -> Result<Vec<f32>, SampleError> {
    let mut data = vec![0f32; count];
    let mut null = f32::NAN;
    let mut anynul = 0;
    let mut status = 0;
    // SAFETY: the file is open and positioned on the image HDU (fits.hdu(index) made it current);
    // `data` holds exactly `count` f32 values, the number cfitsio is asked for (TFLOAT = f32).
    unsafe {
        fitsio::sys::ffgpv(
            fits.as_raw(),
            fitsio::sys::TFLOAT as i32,
            1,
            count as i64,
            &mut null as *mut f32 as *mut std::ffi::c_void,
            data.as_mut_ptr() as *mut std::ffi::c_void,
            &mut anynul,
            &mut status,
        );
    }
    if status != 0 {
        return Err(SampleError(format!("not a readable FITS image: cfitsio status {status} while reading pixels")));
    }
    Ok(data)
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
pub fn check_structure(bytes: &[u8]) -> Result<(), SampleError> {
    if bytes.len() < BLOCK || !bytes.starts_with(b"SIMPLE  =") {
        return Err(SampleError(format!("not a FITS file: {} bytes without the `SIMPLE  =` signature", bytes.len())));
    }
    let mut offset = 0;
    let mut hdu = 0;
    while offset < bytes.len() {
        let (header_len, data_len) = hdu_extent(&bytes[offset..])
            .ok_or_else(|| SampleError(format!("HDU {hdu}: header has no END card (truncated or corrupt)")))?;
        let need = data_len
            .div_ceil(BLOCK)
            .checked_mul(BLOCK)
            .and_then(|d| d.checked_add(offset + header_len))
            .ok_or_else(|| SampleError(format!("HDU {hdu}: declared data size overflows")))?;
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
                let elems = if naxis == 0 { 0 } else { dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))? };
                let data = (bitpix.unsigned_abs() as usize / 8)
                    .checked_mul(gcount)?
                    .checked_mul(pcount.checked_add(elems)?)?;
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

/// A FITS file opened by cfitsio from a buffer we own. cfitsio keeps raw pointers to the buffer,
/// to a variable holding its address and to one holding its size for as long as the file is open,
/// so all three are heap allocations owned through raw pointers (never moved or re-borrowed) and
/// freed only after the file is closed.
struct MemFits {
    file: Option<FitsFile>,
    ptr: *mut *mut std::ffi::c_void,
    size: *mut usize,
    buf: *mut [u8],
}

impl MemFits {
    fn open(bytes: &[u8]) -> Result<Self, SampleError> {
        let buf: *mut [u8] = Box::into_raw(bytes.to_vec().into_boxed_slice());
        let ptr = Box::into_raw(Box::new(buf as *mut u8 as *mut std::ffi::c_void));
        let size = Box::into_raw(Box::new(bytes.len()));
        let mut mem = MemFits { file: None, ptr, size, buf };
        let name = CString::new("mem.fits").map_err(|e| SampleError(e.to_string()))?;
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: `ptr`, `size` and `buf` stay valid until `drop`, which closes the file first.
        // READONLY (0) and no realloc function: cfitsio never writes to or resizes the buffer.
        unsafe {
            fitsio::sys::ffomem(&mut fptr, name.as_ptr(), 0, mem.ptr, mem.size, 0, None, &mut status);
        }
        if status != 0 || fptr.is_null() {
            return Err(SampleError(format!("not a readable FITS file (cfitsio status {status})")));
        }
        // SAFETY: fptr is a valid, open fitsfile returned by ffomem above.
        match unsafe { FitsFile::from_raw(fptr, FileOpenMode::READONLY) } {
            Ok(file) => mem.file = Some(file),
            Err(e) => {
                let mut close_status = 0;
                // SAFETY: fptr is open and not owned by any FitsFile; close it before freeing.
                unsafe { fitsio::sys::ffclos(fptr, &mut close_status) };
                return Err(fits_err(e));
            }
        }
        Ok(mem)
    }

    fn file(&mut self) -> Result<&mut FitsFile, SampleError> {
        self.file.as_mut().ok_or_else(|| SampleError("FITS file is not open".into()))
    }
}

impl Drop for MemFits {
    fn drop(&mut self) {
        // Close the cfitsio file while the memory it points into is still alive, then free it.
        self.file.take();
        // SAFETY: all three were made by Box::into_raw in `open` and are freed exactly once, here.
        unsafe {
            drop(Box::from_raw(self.ptr));
            drop(Box::from_raw(self.size));
            drop(Box::from_raw(self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::scale::Scale;

    /// A FITS file with one primary image; `data` are big-endian pixel bytes.
    fn fits(bitpix: i32, dims: &[usize], data: &[u8], extra: &[String]) -> Vec<u8> {
        let mut cards = vec![
            "SIMPLE  =                    T".to_string(),
            format!("BITPIX  = {bitpix:>20}"),
            format!("NAXIS   = {:>20}", dims.len()),
        ];
        for (i, d) in dims.iter().enumerate() {
            cards.push(format!("NAXIS{}  = {d:>20}", i + 1));
        }
        cards.extend(extra.iter().cloned());
        cards.push("END".into());
        let mut out: Vec<u8> = cards.iter().flat_map(|c| format!("{c:<80}").into_bytes()).collect();
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    fn cfg(outputs: &[ImageOutput]) -> ImageTransform {
        ImageTransform { stack_filters: true, nan: NanPolicy::Keep, scale: Scale::None, outputs: outputs.to_vec() }
    }

    /// Fuzzing regression: a header that says NAXIS twice passed `check_structure` (which took
    /// the last, 0: no data) while cfitsio took the first (700x700) and, sizing the in-memory
    /// file by it, read 1.96 MB past a 8 KB buffer (SIGSEGV).
    #[test]
    fn a_header_cfitsio_reads_as_larger_than_the_file_is_refused() {
        let bytes = fits(-32, &[700, 700], &[], &["NAXIS   =                    0".to_string()]);
        assert!(check_structure(&bytes).is_ok(), "check_structure reads the header its own way");
        let e = decode(&bytes).unwrap_err().0;
        assert!(
            e.starts_with("truncated FITS: HDU 0 declares data up to byte 1964160; the file has 2880 bytes"),
            "{e}"
        );
    }

    /// A primary HDU without data, then a binary table of a column type fitsio cannot describe
    /// (complex, `C`), then the image.
    fn fits_with_table(tform: &str) -> Vec<u8> {
        let mut out = fits(8, &[], &[], &["EXTEND  =                    T".to_string()]);
        let table: Vec<String> = [
            "XTENSION= 'BINTABLE'",
            "BITPIX  =                    8",
            "NAXIS   =                    2",
            "NAXIS1  =                    8",
            "NAXIS2  =                    1",
            "PCOUNT  =                    0",
            "GCOUNT  =                    1",
            "TFIELDS =                    1",
            "TTYPE1  = 'Z       '",
        ]
        .iter()
        .map(|c| c.to_string())
        .chain([format!("TFORM1  = '{tform:<8}'"), "END".into()])
        .collect();
        out.extend(table.iter().flat_map(|c| format!("{c:<80}").into_bytes()));
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
        out.extend_from_slice(&[0u8; BLOCK]);
        let image = [
            "XTENSION= 'IMAGE   '",
            "BITPIX  =                  -32",
            "NAXIS   =                    2",
            "NAXIS1  =                    2",
            "NAXIS2  =                    1",
            "PCOUNT  =                    0",
            "GCOUNT  =                    1",
            "END",
        ];
        out.extend(image.iter().flat_map(|c| format!("{c:<80}").into_bytes()));
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
        let image: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        out.resize(out.len() + BLOCK, 0);
        let at = out.len() - BLOCK;
        out[at..at + 8].copy_from_slice(&image);
        out
    }

    /// Fuzzing regression: fitsio panicked (`Have not implemented str -> ColumnDataType for C`)
    /// describing a table before the image.
    #[test]
    fn a_table_fitsio_cannot_describe_is_skipped_on_the_way_to_the_image() {
        let image = decode(&fits_with_table("1C")).unwrap();
        assert_eq!((image.hdu, image.shape.clone(), image.data.clone()), (2, vec![1, 2], vec![1.0, 2.0]));
    }

    /// The old element-by-element npyz writer, to check `npy_f32` writes the same bytes.
    fn npy_by_npyz(data: &[f32], shape: &[usize]) -> Vec<u8> {
        use npyz::WriterBuilder;
        let mut out = Vec::new();
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::new()
            .dtype(npyz::DType::new_scalar("<f4".parse().unwrap()))
            .shape(&shape)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn npy_bytes_are_npyz_bytes() {
        for shape in [vec![1, 1], vec![2, 3], vec![64, 64], vec![3, 4, 5], vec![1, 1000, 7]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> =
                (0..n).map(|i| i as f32 * -0.37 + 1e-3).chain([f32::NAN, f32::INFINITY]).take(n).collect();
            assert_eq!(npy_f32(&data, &shape).unwrap(), npy_by_npyz(&data, &shape), "{shape:?}");
        }
    }

    /// Bit patterns cfitsio treats specially: zeros, subnormals, infinities, NaNs with payloads.
    fn special_pixels() -> Vec<u32> {
        let mut v = vec![
            0x0000_0000,
            0x8000_0000,
            0x0000_0001,
            0x807f_ffff,
            0x0040_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000,
            0xffc0_0000,
            0x7f80_0001,
            0xffbf_ffff,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x0080_0000,
            0x8080_0000,
            0x3f80_0000,
        ];
        let mut x = 0x2545_f491u32;
        v.extend((0..1000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }));
        v
    }

    fn be(bits: &[u32]) -> Vec<u8> {
        bits.iter().flat_map(|b| b.to_be_bytes()).collect()
    }

    #[test]
    fn plain_float_images_read_without_cfitsio_match_cfitsio_bit_for_bit() {
        let bits = special_pixels();
        let extra = ["OBJECT  = 'synth'              / name".to_string(), "EXTEND  =                    T".into()];
        for dims in [vec![bits.len(), 1], vec![8, 127, 1], vec![1, 1]] {
            let n: usize = dims.iter().product();
            let f = fits(-32, &dims, &be(&bits[..n]), &extra);
            let fast = decode_plain_f32(&f).expect("a plain float32 image takes the direct path");
            let slow = decode(&f).unwrap();
            assert_eq!(fast.shape, slow.shape, "{dims:?}");
            let fb: Vec<u32> = fast.data.iter().map(|v| v.to_bits()).collect();
            let sb: Vec<u32> = slow.data.iter().map(|v| v.to_bits()).collect();
            assert_eq!(fb, sb, "{dims:?}");
            for outputs in [vec![ImageOutput::Npy], vec![ImageOutput::Npy, ImageOutput::Png]] {
                for nan in [NanPolicy::Keep, NanPolicy::Zero] {
                    let mut c = cfg(&outputs);
                    c.nan = nan;
                    let got = fits_fields(&f, &c, &Provenance { id: "p", inputs: &[] }).unwrap();
                    // With json in the outputs the image is read by cfitsio: the npy must not change.
                    c.outputs.push(ImageOutput::Json);
                    c.outputs.sort();
                    let mut want = fits_fields(&f, &c, &Provenance { id: "p", inputs: &[] }).unwrap();
                    want.retain(|(name, _)| name != "json");
                    assert_eq!(got, want, "{dims:?} {outputs:?} {nan:?}");
                }
            }
        }
    }

    #[test]
    fn other_images_are_left_to_cfitsio() {
        let px = be(&[0x3f80_0000; 4]);
        let plain = |extra: &[String]| fits(-32, &[2, 2], &px, extra);
        assert!(decode_plain_f32(&plain(&[])).is_some());
        for key in
            ["BSCALE  =                  2.0", "BZERO   =                  1.0", "BSOFTEN =                  1.0"]
        {
            let f = plain(&[key.to_string()]);
            assert!(decode_plain_f32(&f).is_none(), "{key}");
            assert_eq!(decode_pixels(&f).unwrap().data, decode(&f).unwrap().data, "{key}");
        }
        assert_eq!(decode_pixels(&plain(&["BSCALE  =                  2.0".into()])).unwrap().data, vec![2.0; 4]);
        assert!(decode_plain_f32(&fits(16, &[2, 2], &px[..8], &[])).is_none());
        assert!(decode_plain_f32(&fits(-32, &[4], &px, &[])).is_none());
        assert!(decode_plain_f32(&fits(-32, &[1, 1, 2, 2], &px, &[])).is_none());
        let mut odd = plain(&["COMMENT cafe".into()]);
        let at = odd.windows(4).position(|w| w == b"cafe").unwrap();
        odd[at + 3] = 0xe9;
        assert!(decode_plain_f32(&odd).is_none(), "non-ASCII header");
        odd = plain(&[]);
        odd[8] = b' '; // SIMPLE without its value indicator
        assert!(decode_plain_f32(&odd).is_none());
        let short = plain(&[]);
        assert!(decode_pixels(&short[..2880]).is_err());
    }

    #[test]
    fn bscale_bzero_are_applied() {
        let raw: [i16; 4] = [-2, 0, 1, 300];
        let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_be_bytes()).collect();
        let f = fits(
            16,
            &[2, 2],
            &bytes,
            &["BSCALE  =                  0.5".into(), "BZERO   =                 10.0".into()],
        );
        let img = decode(&f).unwrap();
        assert_eq!(img.shape, vec![2, 2]);
        assert_eq!(img.data, vec![9.0, 10.0, 10.5, 160.0]);
        assert!(!img.asinh_undone);
    }

    #[test]
    fn blank_integer_pixels_become_nan() {
        let raw: [i16; 4] = [-32768, 5, -32768, 7];
        let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_be_bytes()).collect();
        let f = fits(
            16,
            &[2, 2],
            &bytes,
            &[
                "BLANK   =               -32768".into(),
                "BSCALE  =                  2.0".into(),
                "BZERO   =                  1.0".into(),
            ],
        );
        let img = decode(&f).unwrap();
        assert!(img.data[0].is_nan() && img.data[2].is_nan(), "{:?}", img.data);
        assert_eq!((img.data[1], img.data[3]), (11.0, 15.0));
        let mut c = cfg(&[ImageOutput::Json]);
        c.nan = NanPolicy::Zero;
        let fields = fits_fields(&f, &c, &Provenance { id: "b", inputs: &[] }).unwrap();
        let meta: serde_json::Value = serde_json::from_slice(&fields[0].1).unwrap();
        assert_eq!(meta["image"]["nonfinite_pixels"], 2);
    }

    #[test]
    fn huge_declared_sizes_are_errors_not_panics() {
        let f = fits(-32, &[1 << 40, 1 << 40], &[], &[]);
        assert!(decode(&f).is_err());
    }

    #[test]
    fn ps1_asinh_compression_is_undone() {
        let raw: [i16; 3] = [-1000, 0, 2500];
        let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_be_bytes()).collect();
        let (bzero, bscale, soften, offset) = (3.632529139519, 2.115535619667e-4, 221.8863810555, 7.172080516815);
        let f = fits(
            16,
            &[3, 1],
            &bytes,
            &[
                format!("BZERO   = {bzero:>20}"),
                format!("BSCALE  = {bscale:>20}"),
                format!("BSOFTEN = {soften:>20}"),
                format!("BOFFSET = {offset:>20}"),
            ],
        );
        let img = decode(&f).unwrap();
        assert!(img.asinh_undone);
        for (got, d) in img.data.iter().zip(raw) {
            let c = (bzero + bscale * d as f64) as f32 as f64;
            let want = offset + 2.0 * soften * (c / ASINH_A).sinh();
            assert!((*got as f64 - want).abs() <= want.abs() * 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn cubes_are_chw_and_npy_says_so() {
        let vals: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        let f = fits(-32, &[4, 3, 2], &bytes, &[]);
        let img = decode(&f).unwrap();
        assert_eq!(img.shape, vec![2, 3, 4]);
        assert_eq!(img.data, vals);
        let fields =
            fits_fields(&f, &cfg(&[ImageOutput::Npy, ImageOutput::Json]), &Provenance { id: "c", inputs: &[] })
                .unwrap();
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["json", "npy"]);
        let npy = &fields[1].1;
        assert!(String::from_utf8_lossy(&npy[..80]).contains("'shape': (2, 3, 4"));
        let meta: serde_json::Value = serde_json::from_slice(&fields[0].1).unwrap();
        assert_eq!(meta["image"]["shape"], serde_json::json!([2, 3, 4]));
    }

    #[test]
    fn truncated_and_foreign_files_are_sample_errors() {
        let vals = vec![0u8; 4 * 100 * 100];
        let f = fits(-32, &[100, 100], &vals, &[]);
        let err = decode(&f[..f.len() - 2880 * 3]).unwrap_err();
        assert!(err.0.contains("truncated FITS"), "{err}");
        let err = decode(&f[..2880]).unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
        assert!(decode(b"hello").unwrap_err().0.contains("not a FITS file"));
        let mut no_end = f.clone();
        for b in no_end[..2880].iter_mut() {
            if *b == b'E' {
                *b = b'X';
            }
        }
        assert!(decode(&no_end).is_err());
        // fits-only output still checks the file is whole
        let only = cfg(&[ImageOutput::Fits]);
        assert!(fits_fields(&f[..f.len() - 2880], &only, &Provenance { id: "t", inputs: &[] }).is_err());
        assert_eq!(fits_fields(&f, &only, &Provenance { id: "t", inputs: &[] }).unwrap()[0].1, f);
    }

    #[test]
    fn real_ps1_cutout() {
        etd_emulators::require_fixtures!();
        let bytes = etd_emulators::fixtures::bytes(etd_emulators::fixtures::PS1_CUTOUT).unwrap();
        let img = decode(bytes).unwrap();
        assert_eq!(img.shape, vec![700, 700]);
        let pixels = decode_pixels(bytes).unwrap();
        assert_eq!(pixels.shape, img.shape);
        assert!(pixels.data.iter().zip(&img.data).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(img.data.iter().filter(|v| v.is_nan()).count(), 822);
        assert_eq!(img.header["CTYPE1"], "RA---TAN");
        assert_eq!(img.header["PC001001"], -1.0);
        assert_eq!(img.header["EXPTIME"], 572.0);
        assert_eq!(img.header["zero_point"], 25.0);
        assert_eq!(img.header["filter"], "r.00000");
        let mut c = cfg(&[ImageOutput::Npy, ImageOutput::Png]);
        c.nan = NanPolicy::Zero;
        c.scale = Scale::Zscale;
        let fields = fits_fields(bytes, &c, &Provenance { id: "p", inputs: &[] }).unwrap();
        assert!(fields[1].1.starts_with(b"\x89PNG"));
    }
}
