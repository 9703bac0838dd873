//! A Zcut answer -> sample fields, the way the image transform makes them (`transform.image`:
//! scale, NaN policy, outputs `npy`, `json`, `fits`, `png`).
//!
//! A FITS answer is a zip of one file: an empty primary and one image HDU per mosaic of the
//! survey that covers the position (`ORIG_FLE` names the mosaic). Every image HDU of every member
//! (members in name order, HDUs in file order) is a plane: one plane gives `npy` float32 (H, W),
//! several give (C, H, W). A jpg or png answer is a zip of images: each grey image is one plane,
//! each colour image three (R, G, B), values 0-255 as float32, row 0 at the top as in the image.
//! `fits` is the answer's FITS file (only when it holds one); `png` a preview of the pixels, or
//! the original image when the answer is a single png.

use serde_json::{json, Map, Value};

use super::zip::{decode_image, Member};
use super::ZcutFormat;
use crate::sample::{Fields, SampleError};
use crate::target::Target;
use crate::transform::image::{decode_all, npy_f32, scale_and_nan, ImageOutput, ImageTransform};
use crate::transform::scale::preview_png;

/// What the json field says about where a sample came from.
pub struct Provenance<'a> {
    pub target: &'a Target,
    pub survey: &'a str,
    pub url: &'a str,
    pub raw_sha256: &'a str,
    /// Every survey the look-up listed for the position.
    pub look_up: Value,
}

/// Keywords that differ between the planes: the mosaic and its filter (ACS writes two filter
/// wheels, one of them `CLEAR...`; WFC3 writes `FILTER`).
const PER_PLANE: &[&str] = &["ORIG_FLE", "FILTER", "FILTER1", "FILTER2"];

/// The filter of a plane: the first of `FILTER`, `FILTER1`, `FILTER2` that is not a clear slot.
fn filter_of(header: &Map<String, Value>) -> Value {
    ["FILTER", "FILTER1", "FILTER2"]
        .iter()
        .filter_map(|k| header.get(*k).and_then(Value::as_str))
        .find(|f| !f.is_empty() && !f.starts_with("CLEAR"))
        .map_or(Value::Null, |f| json!(f))
}

/// The planes of an answer, stacked.
struct Planes {
    data: Vec<f32>,
    /// (H, W) of every plane.
    plane: Option<(usize, usize)>,
    /// One description per plane.
    channels: Vec<Value>,
    /// Header keywords (WCS and the like) of the first FITS plane.
    header: Map<String, Value>,
}

impl Planes {
    fn push(&mut self, h: usize, w: usize, data: &[f32], channel: Value) -> Result<(), SampleError> {
        match self.plane {
            Some(p) if p != (h, w) => {
                return Err(SampleError(format!(
                    "{channel} is {h}x{w} pixels, the first plane {}x{}: planes of different sizes cannot be stacked",
                    p.0, p.1
                )))
            }
            _ => self.plane = Some((h, w)),
        }
        self.data.extend_from_slice(data);
        self.channels.push(channel);
        Ok(())
    }

    fn shape(&self) -> Vec<usize> {
        let (h, w) = self.plane.unwrap_or((0, 0));
        match self.channels.len() {
            1 => vec![h, w],
            c => vec![c, h, w],
        }
    }
}

fn planes(members: &[Member], format: ZcutFormat) -> Result<Planes, SampleError> {
    let mut p = Planes { data: Vec::new(), plane: None, channels: Vec::new(), header: Map::new() };
    for m in members {
        let named = |e: SampleError| SampleError(format!("member `{}`: {}", m.name, e.0));
        match format {
            ZcutFormat::Fits => {
                for image in decode_all(&m.data, PER_PLANE).map_err(named)? {
                    let dims = &image.shape;
                    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
                    if p.header.is_empty() {
                        p.header = image
                            .header
                            .iter()
                            .filter(|(k, _)| !PER_PLANE.contains(&k.as_str()) && !k.starts_with("filter"))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                    }
                    let orig = image.header.get("ORIG_FLE").cloned().unwrap_or(Value::Null);
                    let filter = filter_of(&image.header);
                    for (c, plane) in image.data.chunks(h * w).enumerate() {
                        let channel = json!({"member": m.name, "hdu": image.hdu, "plane": c, "orig_file": orig, "filter": filter});
                        p.push(h, w, plane, channel).map_err(named)?;
                    }
                }
            }
            ZcutFormat::Jpg | ZcutFormat::Png => {
                let kind = if format == ZcutFormat::Jpg { image::ImageFormat::Jpeg } else { image::ImageFormat::Png };
                let picture =
                    decode_image(&m.data, kind).map_err(|e| SampleError(format!("member `{}` {e}", m.name)))?;
                let (w, h) = (picture.width() as usize, picture.height() as usize);
                if picture.color().has_color() {
                    let rgb = picture.to_rgb8();
                    for (c, band) in ["R", "G", "B"].iter().enumerate() {
                        let plane: Vec<f32> = rgb.pixels().map(|px| f32::from(px.0[c])).collect();
                        p.push(h, w, &plane, json!({"member": m.name, "band": band})).map_err(named)?;
                    }
                } else {
                    let plane: Vec<f32> = picture.to_luma8().pixels().map(|px| f32::from(px.0[0])).collect();
                    p.push(h, w, &plane, json!({"member": m.name, "band": "grey"})).map_err(named)?;
                }
            }
        }
    }
    if p.channels.is_empty() {
        return Err(SampleError("the answer holds no image".into()));
    }
    Ok(p)
}

/// `data` of `shape` with each plane scaled and the NaN policy applied, as the image transform
/// does, and how many pixels were not finite before.
pub fn scaled(data: &[f32], shape: &[usize], cfg: &ImageTransform) -> (Vec<f32>, usize) {
    let plane = shape[shape.len() - 2] * shape[shape.len() - 1];
    let mut pixels = data.to_vec();
    let nonfinite = pixels.iter().filter(|v| !v.is_finite()).count();
    scale_and_nan(&mut pixels, plane, cfg);
    (pixels, nonfinite)
}

/// The sample fields of one (target, survey) answer, `members` in name order.
pub fn fields(
    members: &[Member],
    format: ZcutFormat,
    cfg: &ImageTransform,
    prov: &Provenance<'_>,
    class: Option<usize>,
) -> Result<Fields, SampleError> {
    let p = planes(members, format)?;
    let shape = p.shape();
    let (pixels, nonfinite) = scaled(&p.data, &shape, cfg);
    let mut out = Fields::new();
    for o in &cfg.outputs {
        let bytes = match o {
            ImageOutput::Npy => npy_f32(&pixels, &shape)?,
            ImageOutput::Fits => match (format, members) {
                (ZcutFormat::Fits, [one]) => one.data.clone(),
                (ZcutFormat::Fits, _) => {
                    return Err(SampleError(format!(
                        "the answer holds {} FITS files; the `fits` output takes one",
                        members.len()
                    )))
                }
                // `check_image` refuses the `fits` output for jpg and png cutouts.
                _ => return Err(SampleError(format!("a {} cutout has no FITS file", format.name()))),
            },
            ImageOutput::Png => match (format, members) {
                (ZcutFormat::Png, [one]) => one.data.clone(),
                _ => preview_png(&p.data, &shape).map_err(|e| SampleError(format!("png preview: {e}")))?,
            },
            ImageOutput::Json => {
                let mut meta = json!({
                    "id": prov.target.id,
                    "ra": prov.target.ra,
                    "dec": prov.target.dec,
                    "service": "zcut",
                    "survey": prov.survey,
                    "format": format.name(),
                    "shape": shape,
                    "dtype": "float32",
                    "channels": p.channels,
                    "nonfinite_pixels": nonfinite,
                    "nan": cfg.nan,
                    "scale": cfg.scale,
                    "header": p.header,
                    "url": prov.url,
                    "raw_sha256": prov.raw_sha256,
                    "members": members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                    "survey_look_up": prov.look_up,
                });
                super::put_label(&mut meta, prov.target, class);
                let mut v = serde_json::to_vec(&meta).map_err(|e| SampleError(format!("json: {e}")))?;
                v.push(b'\n');
                v
            }
        };
        out.push((o.field().to_string(), bytes));
    }
    Ok(super::with_cls(out, class))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::astrocut::zip::{image_members, tests::build};
    use crate::transform::image::NanPolicy;
    use crate::transform::scale::Scale;

    fn example(path: &str) -> (String, Vec<u8>) {
        let full = format!("{}/examples/data/{path}", env!("CARGO_MANIFEST_DIR"));
        (path.rsplit('/').next().unwrap().to_string(), fs_err::read(full).unwrap())
    }

    fn transform(outputs: &[ImageOutput]) -> ImageTransform {
        ImageTransform { stack_filters: true, nan: NanPolicy::Keep, scale: Scale::None, outputs: outputs.to_vec() }
    }

    fn target() -> Target {
        Target { id: "gn".into(), ra: 189.49206, dec: 62.20615, label: Some("x".into()) }
    }

    /// A real Zcut FITS answer (astroquery's test data): three ACS filters, stacked in file order.
    #[test]
    fn a_real_fits_answer_stacks_its_three_filters() {
        let (name, bytes) = example("zcut-fits/candels_gn_30mas_189.49206_62.20615_100px.fits");
        let zip = build(&[(name.as_str(), &bytes)], true);
        let members = image_members(&zip, ZcutFormat::Fits).unwrap();
        let t = target();
        let prov = Provenance { target: &t, survey: "candels_gn_30mas", url: "u", raw_sha256: "s", look_up: json!([]) };
        let cfg = transform(&[ImageOutput::Npy, ImageOutput::Json, ImageOutput::Fits]);
        let f = fields(&members, ZcutFormat::Fits, &cfg, &prov, Some(0)).unwrap();
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["cls", "fits", "json", "npy"]);
        let npy = npyz::NpyFile::new(&f[3].1[..]).unwrap();
        assert_eq!(npy.shape(), [3, 100, 100]);
        let meta: Value = serde_json::from_slice(&f[2].1).unwrap();
        let filters: Vec<&str> =
            meta["channels"].as_array().unwrap().iter().map(|c| c["filter"].as_str().unwrap()).collect();
        assert_eq!(filters, ["F606W", "F814W", "F850LP"]);
        assert_eq!(meta["channels"][1]["orig_file"], "hlsp_candels_hst_acs_gn-tot-30mas_f814w_v1.0_drz.fits");
        assert_eq!(meta["header"]["CTYPE1"], "RA---TAN");
        assert!(meta["header"].get("filter").is_none(), "a filter is per plane");
        assert_eq!(f[1].1, bytes, "the fits field is the file as received");
        // The first plane is what the image transform reads from the same file.
        let first = crate::transform::image::decode(&bytes).unwrap();
        let pixels: Vec<f32> = npy.into_vec().unwrap();
        assert!(pixels[..10_000].iter().zip(&first.data).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// Real Zcut JPEG answers: each grey image one plane, row 0 at the top as in the file.
    #[test]
    fn real_jpg_answers_stack_as_grey_planes_and_other_files_are_refused() {
        let files: Vec<(String, Vec<u8>)> = ["f606w", "f814w", "f850lp"]
            .iter()
            .map(|f| example(&format!("zcut-jpg/candels_gn_{f}_189.49206_62.20615_100px.jpg")))
            .collect();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let zip = build(&refs, true);
        let members = image_members(&zip, ZcutFormat::Jpg).unwrap();
        let t = target();
        let prov = Provenance { target: &t, survey: "candels_gn_30mas", url: "u", raw_sha256: "s", look_up: json!([]) };
        let f =
            fields(&members, ZcutFormat::Jpg, &transform(&[ImageOutput::Npy, ImageOutput::Png]), &prov, None).unwrap();
        let npy = npyz::NpyFile::new(&f[0].1[..]).unwrap();
        assert_eq!(npy.shape(), [3, 100, 100]);
        let pixels: Vec<f32> = npy.into_vec().unwrap();
        let first = image::load_from_memory(&files[0].1).unwrap().to_luma8();
        assert_eq!(pixels[..100], first.as_raw()[..100].iter().map(|&v| f32::from(v)).collect::<Vec<_>>()[..]);
        assert!(f[1].1.starts_with(b"\x89PNG"));
        // A jpg where a png is expected, a FITS file where images are, bytes that do not decode.
        assert!(image_members(&zip, ZcutFormat::Png).unwrap_err().contains("not a .png file"));
        let bad = build(&[("a.jpg", b"\xff\xd8\xff\xe0 not really")], false);
        assert!(image_members(&bad, ZcutFormat::Jpg).unwrap_err().contains("member `a.jpg`"));
        let e = fields(&members, ZcutFormat::Jpg, &transform(&[ImageOutput::Fits]), &prov, None).unwrap_err();
        assert!(e.0.contains("no FITS file"), "{}", e.0);
    }
}
