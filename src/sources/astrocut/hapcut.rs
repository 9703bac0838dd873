//! A HAPcut product file -> sample fields. HAPcut answers a zip of one FITS file per Hubble
//! Advanced Product covering the position (`hst_cutout_skycell-<cell>-ra..-dec.._<instrument>_
//! <detector>_<filter>.fits`), each with a `SCI` image (the drizzled science pixels) and a `WHT`
//! image (the drizzle weight, an inverse variance), same shape.
//!
//! One sample per (target, product file), made by the image transform's rules
//! (`transform.image`): `npy` = SCI float32 (H, W), scaled and with the NaN policy; `wht.npy` =
//! WHT float32 (H, W), never scaled, NaN policy applied (with `npy` in the outputs); `json`;
//! `fits` = the product file as received; `png` = a preview of SCI; `cls`.

use serde_json::{json, Value};

use super::zcut::scaled;
use super::zip::Member;
use crate::sample::{Fields, SampleError};
use crate::target::Target;
use crate::transform::image::{decode_all, npy_f32, ImageOutput, ImageTransform, NanPolicy};
use crate::transform::scale::preview_png;

/// What the json field says about where a sample came from.
pub struct Provenance<'a> {
    pub target: &'a Target,
    /// The product key, `<skycell>-<instrument>_<detector>_<filter>`.
    pub product: &'a str,
    pub url: &'a str,
    pub raw_sha256: &'a str,
    /// Every member of the target's answer, in name order.
    pub members: Vec<&'a str>,
}

/// The sample fields of one product file.
pub fn fields(
    member: &Member,
    cfg: &ImageTransform,
    prov: &Provenance<'_>,
    class: Option<usize>,
) -> Result<Fields, SampleError> {
    let images = decode_all(&member.data, &["EXTNAME"])?;
    let named = |name: &str| {
        images
            .iter()
            .find(|i| i.header.get("EXTNAME").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| SampleError(format!("no `{name}` image HDU (a HAPcut product holds SCI and WHT)")))
    };
    let (sci, wht) = (named("SCI")?, named("WHT")?);
    if sci.shape.len() != 2 || sci.shape != wht.shape {
        return Err(SampleError(format!(
            "SCI is {:?} and WHT {:?}: expected two images of one (H, W) shape",
            sci.shape, wht.shape
        )));
    }
    let (pixels, nonfinite) = scaled(&sci.data, &sci.shape, cfg);
    let mut out = Fields::new();
    for o in &cfg.outputs {
        match o {
            ImageOutput::Npy => {
                out.push(("npy".into(), npy_f32(&pixels, &sci.shape)?));
                let mut weights = wht.data.clone();
                if cfg.nan == NanPolicy::Zero {
                    weights.iter_mut().filter(|v| !v.is_finite()).for_each(|v| *v = 0.0);
                }
                out.push(("wht.npy".into(), npy_f32(&weights, &wht.shape)?));
            }
            ImageOutput::Fits => out.push(("fits".into(), member.data.clone())),
            ImageOutput::Png => out.push((
                "png".into(),
                preview_png(&sci.data, &sci.shape).map_err(|e| SampleError(format!("png preview: {e}")))?,
            )),
            ImageOutput::Json => {
                let (skycell, product) = prov.product.split_once('-').unwrap_or(("", prov.product));
                let parts: Vec<&str> = product.split('_').collect();
                let header: serde_json::Map<String, Value> =
                    sci.header.iter().filter(|(k, _)| *k != "EXTNAME").map(|(k, v)| (k.clone(), v.clone())).collect();
                let mut meta = json!({
                    "id": prov.target.id,
                    "ra": prov.target.ra,
                    "dec": prov.target.dec,
                    "service": "hapcut",
                    "product": prov.product,
                    "skycell": skycell,
                    "instrument": parts.first(),
                    "detector": (parts.len() == 3).then(|| parts[1]),
                    "filter": parts.last(),
                    "member": member.name,
                    "members": prov.members,
                    "shape": sci.shape,
                    "dtype": "float32",
                    "hdus": {"npy": sci.hdu, "wht.npy": wht.hdu},
                    "nonfinite_pixels": nonfinite,
                    "nan": cfg.nan,
                    "scale": cfg.scale,
                    "header": header,
                    "url": prov.url,
                    "raw_sha256": prov.raw_sha256,
                });
                super::put_label(&mut meta, prov.target, class);
                let mut v = serde_json::to_vec(&meta).map_err(|e| SampleError(format!("json: {e}")))?;
                v.push(b'\n');
                out.push(("json".into(), v));
            }
        }
    }
    Ok(super::with_cls(out, class))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::scale::Scale;
    use etd_emulators::astrocut::hapcut as emu;
    use etd_emulators::astrocut::zcut::{cutout_file, Hdu};

    fn cfg(nan: NanPolicy) -> ImageTransform {
        ImageTransform {
            stack_filters: true,
            nan,
            scale: Scale::None,
            outputs: vec![ImageOutput::Npy, ImageOutput::Json],
        }
    }

    #[test]
    fn sci_and_wht_become_npy_and_wht_npy_and_a_missing_wht_is_named() {
        let t = Target { id: "a".into(), ra: 351.3478, dec: -28.4978, label: None };
        let prov =
            Provenance { target: &t, product: "p1-acs_wfc_f814w", url: "u", raw_sha256: "s", members: vec!["m"] };
        let bytes = emu::fits(1, ("acs", "wfc", "f814w"), t.ra, t.dec, 6, 5).unwrap();
        let member = Member { name: "m".into(), data: bytes };
        let f = fields(&member, &cfg(NanPolicy::Zero), &prov, None).unwrap();
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["json", "npy", "wht.npy"]);
        let (sci, wht) = emu::pixels_of(1, t.ra, t.dec, 6, 5);
        let npy: Vec<f32> = npyz::NpyFile::new(&f[1].1[..]).unwrap().into_vec().unwrap();
        assert_eq!(npy[0], 0.0, "the NaN at the mosaic's edge follows the NaN policy");
        assert_eq!(npy[1..], sci[1..]);
        let w = npyz::NpyFile::new(&f[2].1[..]).unwrap();
        assert_eq!(w.shape(), [6, 5]);
        assert_eq!(w.into_vec::<f32>().unwrap(), wht);
        let meta: Value = serde_json::from_slice(&f[0].1).unwrap();
        assert_eq!(
            (meta["instrument"].as_str(), meta["detector"].as_str(), meta["filter"].as_str()),
            (Some("acs"), Some("wfc"), Some("f814w"))
        );
        assert_eq!((meta["skycell"].as_str(), meta["nonfinite_pixels"].as_u64()), (Some("p1"), Some(1)));

        let only_sci =
            cutout_file(1.0, 2.0, 4, 4, 0.04, &[], &[Hdu { extname: "SCI", data: vec![1.0; 16], keys: vec![] }]);
        let member = Member { name: "m".into(), data: only_sci.unwrap() };
        let e = fields(&member, &cfg(NanPolicy::Keep), &prov, None).unwrap_err();
        assert_eq!(e.0, "no `WHT` image HDU (a HAPcut product holds SCI and WHT)");
    }
}
