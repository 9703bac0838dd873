//! PS1 cutouts -> one sample per target: `npy` float32 `(C,H,W)` in the recipe's filter order
//! (`(H,W)` for one filter; `<f>.npy` per filter without `stack_filters`), `json` with the target
//! row, per-filter WCS and photometric keywords, source URLs and raw sha256, `cls` from the label
//! through the manifest's class list, and optionally the original cutouts (`fits`, or `<f>.fits`
//! for several filters) and a `png` preview (colour from three filters, grey from one).

use serde_json::{json, Map, Value};

use super::fetch::COLOUR_FIELD;
use super::urls::colour_order;
use super::{CutoutFormat, Ps1Config};
use crate::sample::{Fields, SampleError};
use crate::store::InputRecord;
use crate::target::Target;
use crate::transform::image::ImageTransform;
use crate::transform::image::{decode, npy_f32};
use crate::transform::image::{ImageOutput, NanPolicy};
use crate::transform::scale::{preview_png, scale_plane};

/// The fields a PS1 sample can have, longest name first matters only for key length checks.
pub fn field_names(cfg: &Ps1Config, image: &ImageTransform) -> Vec<String> {
    let mut names = vec!["cls".to_string()];
    let several = cfg.filters.len() > 1;
    for out in &image.outputs {
        match out {
            ImageOutput::Npy if several && !image.stack_filters => {
                names.extend(cfg.filters.iter().map(|f| format!("{f}.npy")))
            }
            ImageOutput::Fits if several => names.extend(cfg.filters.iter().map(|f| format!("{f}.fits"))),
            other => names.push(other.field().to_string()),
        }
    }
    names
}

/// Make one target's sample from its stored inputs (`(record, bytes)`, in journal order).
pub fn ps1_fields(
    cfg: &Ps1Config,
    image: &ImageTransform,
    target: &Target,
    class: Option<usize>,
    inputs: &[(InputRecord, Vec<u8>)],
) -> Result<Fields, SampleError> {
    let mut fields = match cfg.format {
        CutoutFormat::Fits => fits_fields(cfg, image, inputs)?,
        CutoutFormat::Jpg | CutoutFormat::Png => picture_fields(cfg, image, inputs)?,
    };
    let (planes, meta) = fields.meta.take().unwrap_or_default();
    if image.outputs.contains(&ImageOutput::Json) {
        let provenance: Vec<Value> = inputs
            .iter()
            .map(|(r, _)| json!({"field": r.field, "url": r.url, "path": r.path, "sha256": r.sha256, "size": r.size}))
            .collect();
        let mut doc = json!({
            "id": target.id,
            "ra": target.ra,
            "dec": target.dec,
            "label": target.label,
            "cls": class,
            "source": "ps1-cutouts",
            "filters": cfg.filters.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "image": meta,
            "filters_meta": planes,
            "inputs": provenance,
        });
        if target.label.is_none() {
            if let Some(m) = doc.as_object_mut() {
                m.remove("label");
                m.remove("cls");
            }
        }
        let mut bytes = serde_json::to_vec(&doc).map_err(|e| SampleError(e.to_string()))?;
        bytes.push(b'\n');
        fields.out.push(("json".into(), bytes));
    }
    if let Some(c) = class {
        fields.out.push(("cls".into(), c.to_string().into_bytes()));
    }
    let mut out = fields.out;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Fields made so far, and (per-filter metadata, image metadata) for the json.
struct Partial {
    out: Fields,
    meta: Option<(Map<String, Value>, Value)>,
}

fn input<'a>(inputs: &'a [(InputRecord, Vec<u8>)], field: &str) -> Result<&'a (InputRecord, Vec<u8>), SampleError> {
    inputs
        .iter()
        .find(|(r, _)| r.field == field)
        .ok_or_else(|| SampleError(format!("the fetch recorded no `{field}` input for this target")))
}

fn fits_fields(
    cfg: &Ps1Config,
    image: &ImageTransform,
    inputs: &[(InputRecord, Vec<u8>)],
) -> Result<Partial, SampleError> {
    let several = cfg.filters.len() > 1;
    let mut out = Fields::new();
    let mut planes = Map::new();
    let mut raw: Vec<f32> = Vec::new();
    let mut hw: Option<(usize, usize)> = None;
    let mut nonfinite = 0usize;
    let mut asinh = false;
    for &f in &cfg.filters {
        let (rec, bytes) = input(inputs, &f.to_string())?;
        let img = decode(bytes).map_err(|e| SampleError(format!("{}: {e}", rec.path)))?;
        let [h, w] = img.shape[..] else {
            return Err(SampleError(format!("{}: expected a 2-D cutout, found shape {:?}", rec.path, img.shape)));
        };
        match hw {
            None => hw = Some((h, w)),
            Some(prev) if prev != (h, w) => {
                return Err(SampleError(format!(
                    "{}: cutout is {h}x{w} but the first filter's is {}x{}; filters cannot be stacked",
                    rec.path, prev.0, prev.1
                )))
            }
            Some(_) => {}
        }
        nonfinite += img.data.iter().filter(|v| !v.is_finite()).count();
        asinh |= img.asinh_undone;
        planes.insert(
            f.to_string(),
            json!({"url": rec.url, "sha256": rec.sha256, "hdu": img.hdu, "asinh_undone": img.asinh_undone, "header": img.header}),
        );
        raw.extend_from_slice(&img.data);
        if image.outputs.contains(&ImageOutput::Fits) {
            let name = if several { format!("{f}.fits") } else { "fits".into() };
            out.push((name, bytes.clone()));
        }
    }
    let (h, w) = hw.ok_or_else(|| SampleError("no filters".into()))?;
    let c = cfg.filters.len();
    let mut pixels = raw.clone();
    for plane in pixels.chunks_mut((h * w).max(1)) {
        scale_plane(plane, image.scale);
    }
    if image.nan == NanPolicy::Zero {
        pixels.iter_mut().filter(|v| !v.is_finite()).for_each(|v| *v = 0.0);
    }
    let stacked = !several || image.stack_filters;
    let shape: Vec<usize> = if several { vec![c, h, w] } else { vec![h, w] };
    if image.outputs.contains(&ImageOutput::Npy) {
        if stacked {
            out.push(("npy".into(), npy_f32(&pixels, &shape)?));
        } else {
            for (f, plane) in cfg.filters.iter().zip(pixels.chunks(h * w)) {
                out.push((format!("{f}.npy"), npy_f32(plane, &[h, w])?));
            }
        }
    }
    if image.outputs.contains(&ImageOutput::Png) {
        out.push(("png".into(), preview(cfg, &raw, h, w)?));
    }
    let meta = json!({
        "shape": if stacked { shape } else { vec![h, w] },
        "dtype": "float32",
        "layout": if stacked { "stacked" } else { "per-filter" },
        "asinh_undone": asinh,
        "nonfinite_pixels": nonfinite,
        "nan": image.nan,
        "scale": image.scale,
    });
    Ok(Partial { out, meta: Some((planes, meta)) })
}

/// The png preview from the unscaled planes: colour from three filters (MAST's choice for more:
/// first, middle and last from red to blue), grey from the first filter otherwise.
fn preview(cfg: &Ps1Config, raw: &[f32], h: usize, w: usize) -> Result<Vec<u8>, SampleError> {
    let plane = |f: char| {
        let i = cfg.filters.iter().position(|&x| x == f).unwrap_or(0);
        &raw[i * h * w..(i + 1) * h * w]
    };
    let err = |e: image::ImageError| SampleError(format!("png preview: {e}"));
    if cfg.filters.len() >= 3 {
        let order = colour_order(&cfg.filters);
        let pick = [order[0], order[order.len() / 2], order[order.len() - 1]];
        let rgb: Vec<f32> = pick.iter().flat_map(|&f| plane(f).iter().copied()).collect();
        preview_png(&rgb, &[3, h, w]).map_err(err)
    } else {
        preview_png(plane(cfg.filters[0]), &[h, w]).map_err(err)
    }
}

/// jpg/png cutouts (8-bit, as MAST renders them): `npy` float32 of the pixel values, `(3,H,W)`
/// RGB for colour and `(H,W)` for grey, row 0 at the top as in the image; `png` is the cutout as
/// PNG. The WCS MAST puts in a JPEG's comment segment goes to the json.
fn picture_fields(
    cfg: &Ps1Config,
    image: &ImageTransform,
    inputs: &[(InputRecord, Vec<u8>)],
) -> Result<Partial, SampleError> {
    let field = if cfg.filters.len() == 1 { cfg.filters[0].to_string() } else { COLOUR_FIELD.to_string() };
    let (rec, bytes) = input(inputs, &field)?;
    let picture = image::load_from_memory(bytes).map_err(|e| SampleError(format!("{}: {e}", rec.path)))?;
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    let colour = field == COLOUR_FIELD;
    let (data, shape) = if colour {
        let rgb = picture.to_rgb8();
        let mut data = vec![0f32; 3 * h * w];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = f32::from(p.0[c]);
            }
        }
        (data, vec![3, h, w])
    } else {
        (picture.to_luma8().pixels().map(|p| f32::from(p.0[0])).collect(), vec![h, w])
    };
    let mut out = Fields::new();
    if image.outputs.contains(&ImageOutput::Npy) {
        out.push(("npy".into(), npy_f32(&data, &shape)?));
    }
    if image.outputs.contains(&ImageOutput::Png) {
        let png = if cfg.format == CutoutFormat::Png {
            bytes.clone()
        } else {
            let mut png = Vec::new();
            picture
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| SampleError(format!("png: {e}")))?;
            png
        };
        out.push(("png".into(), png));
    }
    let mut planes = Map::new();
    planes.insert(field.clone(), json!({"url": rec.url, "sha256": rec.sha256, "header": jpeg_comment_header(bytes)}));
    let meta = json!({"shape": shape, "dtype": "float32", "layout": if colour { "rgb" } else { "grey" }, "pixel_values": "8-bit 0..255 as MAST rendered them"});
    Ok(Partial { out, meta: Some((planes, meta)) })
}

/// The FITS header cards MAST's fitscut puts in a JPEG's COM segment, as `KEY: value` (numbers as
/// numbers, quoted strings unquoted). Empty when there is none.
pub fn jpeg_comment_header(bytes: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(text) = jpeg_comment(bytes) else { return out };
    for line in text.split(['\n', '\r']) {
        let Some((key, rest)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || key.contains(' ') && !key.starts_with("HIERARCH") {
            continue;
        }
        let value = rest.split(" /").next().unwrap_or("").trim();
        let v = if let Some(s) = value.strip_prefix('\'') {
            json!(s.trim_end_matches('\'').trim())
        } else if let Ok(n) = value.parse::<f64>() {
            json!(n)
        } else {
            json!(value)
        };
        out.insert(key.trim_start_matches("HIERARCH ").to_string(), v);
    }
    out
}

/// The text of the first COM (0xFFFE) segment of a JPEG.
fn jpeg_comment(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if marker == 0xDA || len < 2 || i + 2 + len > bytes.len() {
            return None;
        }
        if marker == 0xFE {
            return Some(String::from_utf8_lossy(&bytes[i + 4..i + 2 + len]).into_owned());
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_comment_cards_are_read() {
        let text = "CTYPE1  = 'RA---TAN'\nCRVAL1  =     143.999999999996\nHIERARCH FPA.ZP =          25. / zp";
        let mut jpg = vec![0xFF, 0xD8, 0xFF, 0xFE];
        jpg.extend(((text.len() + 2) as u16).to_be_bytes());
        jpg.extend(text.as_bytes());
        jpg.extend([0xFF, 0xDA, 0, 2]);
        let h = jpeg_comment_header(&jpg);
        assert_eq!(h["CTYPE1"], json!("RA---TAN"));
        assert_eq!(h["CRVAL1"], json!(143.999999999996));
        assert_eq!(h["FPA.ZP"], json!(25.0));
        assert!(jpeg_comment_header(b"not a jpeg").is_empty());
    }
}
