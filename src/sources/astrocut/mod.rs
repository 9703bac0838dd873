//! MAST astrocut cutouts (docs/archives.md section 4): TESScut, cutouts of the TESS full-frame
//! images. A sector look-up per target (`POST sector`, form data), then one cutout request per
//! (target, sector) (`GET astrocut`), the documented way around the service's 600 s timeout.
//! The answer is a zip of target-pixel files, or JSON `{"msg": ...}` when nothing matches (a
//! permanent `no-data` for that unit). MAST asks for at most 5 requests per second and at most
//! 10 in flight, and answers 503 above either.
//!
//! Units: the look-up is the unit named by the target's id; each cutout is the unit
//! `<id> sector <n>`. A task of a batch split owns a target and all its sectors (the look-up
//! must run in the task that fetches the cutouts), chosen by `TaskSplit::owns` over the target id.

pub mod fetch;
pub mod source;
pub mod tpf;
pub mod zip;

use serde::Deserialize;
use std::time::Duration;

use super::FetchPlan;
use crate::net::Politeness;
use crate::spec::KeyError;

/// The recipe key of this source and its `raw/` folder.
pub const KIND: &str = "astrocut";

pub const DEFAULT_TESSCUT_URL: &str = "https://mast.stsci.edu/tesscut/api/v0.1";
/// MAST's published limits: requests per second, and simultaneous requests.
pub const MAX_RATE: f64 = 5.0;
pub const MAX_CONCURRENCY: u32 = 10;
/// Largest cutout side: astroquery warns that big cutouts time out (600 s on the server).
pub const MAX_SIDE_PX: u32 = 100;
/// Arcseconds per TESS pixel.
pub const TESS_PIXEL_ARCSEC: f64 = 21.0;

/// `source.astrocut` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AstrocutFile {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub size: Option<serde_yaml::Value>,
    #[serde(default)]
    pub sectors: Option<serde_yaml::Value>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub fits: Option<bool>,
}

/// The cutout side: pixels, or an angle in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CutoutSize {
    Pixels(u32),
    Degrees(f64),
}

impl CutoutSize {
    /// `x`/`y` and `units` as the service takes them.
    pub fn query(&self) -> (String, &'static str) {
        match self {
            CutoutSize::Pixels(n) => (n.to_string(), "px"),
            CutoutSize::Degrees(d) => (format!("{d}"), "d"),
        }
    }

    /// The side in TESS pixels (rounded up), for the key-length budget and the plan.
    pub fn pixels(&self) -> u32 {
        match self {
            CutoutSize::Pixels(n) => *n,
            CutoutSize::Degrees(d) => (d * 3600.0 / TESS_PIXEL_ARCSEC).ceil() as u32,
        }
    }
}

/// Which sectors to cut: every sector the look-up lists, or those of them in the list.
#[derive(Debug, Clone, PartialEq)]
pub enum Sectors {
    All,
    /// Sorted, unique.
    List(Vec<u32>),
}

impl Sectors {
    pub fn wants(&self, sector: u32) -> bool {
        match self {
            Sectors::All => true,
            Sectors::List(l) => l.binary_search(&sector).is_ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AstrocutConfig {
    /// The service's API root, e.g. `https://mast.stsci.edu/tesscut/api/v0.1` (no trailing slash).
    pub base_url: url::Url,
    pub size: CutoutSize,
    pub sectors: Sectors,
    /// Put the original target-pixel file in each sample as `fits`.
    pub fits: bool,
}

/// The only TESScut product (TICA was withdrawn).
pub const PRODUCT: &str = "SPOC";

impl AstrocutConfig {
    /// The settings that shape the requests and payloads, recorded with each unit: changing any
    /// of them (the endpoint included) fetches again. The sector selection is not among them: a
    /// sector is part of a unit's name, so adding sectors fetches only the new ones.
    pub fn params(&self) -> String {
        let (side, units) = self.size.query();
        super::params_at(format!("{KIND} service=tesscut size={side}{units} product={PRODUCT}"), &self.base_url)
    }

    fn endpoint(&self, name: &str) -> url::Url {
        let mut url = self.base_url.clone();
        let path = format!("{}/{name}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// The sector look-up (sent as `POST` with these form fields).
    pub fn sector_url(&self) -> url::Url {
        self.endpoint("sector")
    }

    pub fn sector_form(ra: f64, dec: f64) -> Vec<(String, String)> {
        vec![("ra".into(), format!("{ra}")), ("dec".into(), format!("{dec}")), ("product".into(), PRODUCT.into())]
    }

    /// One cutout of one sector.
    pub fn cutout_url(&self, ra: f64, dec: f64, sector: u32) -> url::Url {
        let mut url = self.endpoint("astrocut");
        let (side, units) = self.size.query();
        url.query_pairs_mut()
            .append_pair("ra", &format!("{ra}"))
            .append_pair("dec", &format!("{dec}"))
            .append_pair("y", &side)
            .append_pair("x", &side)
            .append_pair("units", units)
            .append_pair("sector", &sector.to_string())
            .append_pair("product", PRODUCT);
        url
    }
}

/// The unit id of one cutout.
pub fn cutout_unit(target_id: &str, sector: u32) -> String {
    format!("{target_id} sector {sector}")
}

/// The sample key suffix of a sector: `-s0006`.
pub fn sector_suffix(sector: u32) -> String {
    format!("-s{sector:04}")
}

/// Politeness inside both of MAST's limits (5 requests per second, 10 in flight), with room to
/// spare; a cutout may take minutes on the server, so the timeout is the server's own 600 s.
pub fn default_politeness() -> Politeness {
    Politeness {
        concurrency: 3,
        rate: crate::units::rate(2.0, 1),
        retries: 6,
        timeout: Duration::from_secs(600),
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(120),
        read_rate: None,
    }
}

const KEY: &str = "source.astrocut";

pub(crate) fn resolve(raw: AstrocutFile) -> Result<AstrocutConfig, KeyError> {
    match raw.service.as_deref().unwrap_or("tesscut") {
        "tesscut" => {}
        s @ ("zcut" | "hapcut") => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.service"),
                format!("service `{s}` is not supported by this version of etd"),
                "only `tesscut` (TESS full-frame-image cutouts) is; Zcut and HAPcut are planned",
            ))
        }
        other => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.service"),
                format!("unknown astrocut service `{other}`"),
                "the service is `tesscut`",
            ))
        }
    }
    match raw.product.as_deref().unwrap_or(PRODUCT) {
        p if p.eq_ignore_ascii_case(PRODUCT) => {}
        p if p.eq_ignore_ascii_case("TICA") => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.product"),
                "TICA products are withdrawn: TESScut no longer serves cutouts of TESS Image Calibrator images",
                "use `product: SPOC` (the default)",
            ))
        }
        other => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.product"),
                format!("unknown TESScut product `{other}`"),
                "the product is `SPOC`",
            ))
        }
    }
    let base_url = crate::spec::base_url(raw.base_url.as_deref(), DEFAULT_TESSCUT_URL, &format!("{KEY}.base_url"))?;
    let size = resolve_size(raw.size.as_ref())?;
    let sectors = resolve_sectors(raw.sectors.as_ref())?;
    Ok(AstrocutConfig { base_url, size, sectors, fits: raw.fits.unwrap_or(false) })
}

fn resolve_size(v: Option<&serde_yaml::Value>) -> Result<CutoutSize, KeyError> {
    let key = format!("{KEY}.size");
    let hint = format!(
        "a side in TESS pixels (21 arcsec each) from 1 to {MAX_SIDE_PX}, such as `10`, or an angle such as \
         `3.5arcmin`, `90arcsec` or `0.05deg`"
    );
    let Some(v) = v else { return Ok(CutoutSize::Pixels(10)) };
    if let Some(n) = v.as_i64() {
        if n >= 1 && n <= i64::from(MAX_SIDE_PX) {
            return Ok(CutoutSize::Pixels(n as u32));
        }
        return Err(KeyError::with_hint(
            &key,
            format!("expected a cutout side of 1 to {MAX_SIDE_PX} pixels, found {n}"),
            hint,
        ));
    }
    let Some(text) = v.as_str() else {
        return Err(KeyError::with_hint(&key, "expected a number of pixels or an angle", hint));
    };
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let per_degree = match unit.trim() {
        "deg" | "d" => 1.0,
        "arcmin" | "m" => 60.0,
        "arcsec" | "s" => 3600.0,
        "px" | "" => {
            return match num.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_SIDE_PX).contains(&n) => Ok(CutoutSize::Pixels(n)),
                _ => Err(KeyError::with_hint(&key, format!("`{text}` is not a cutout side"), hint)),
            }
        }
        _ => return Err(KeyError::with_hint(&key, format!("`{text}` has an unknown unit"), hint)),
    };
    let deg = match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => x / per_degree,
        _ => return Err(KeyError::with_hint(&key, format!("`{text}` is not a positive angle"), hint)),
    };
    let size = CutoutSize::Degrees(deg);
    if size.pixels() > MAX_SIDE_PX {
        return Err(KeyError::with_hint(
            &key,
            format!("`{text}` is {} TESS pixels, above the {MAX_SIDE_PX}-pixel limit", size.pixels()),
            "big cutouts hit the service's 600 s timeout; ask for less",
        ));
    }
    Ok(size)
}

fn resolve_sectors(v: Option<&serde_yaml::Value>) -> Result<Sectors, KeyError> {
    let key = format!("{KEY}.sectors");
    let hint = "`all` (every sector that observed the target), or a list of sector numbers such as `[1, 27]`";
    let Some(v) = v else { return Ok(Sectors::All) };
    if v.as_str() == Some("all") {
        return Ok(Sectors::All);
    }
    let Some(seq) = v.as_sequence() else {
        return Err(KeyError::with_hint(&key, "expected `all` or a list of sectors", hint));
    };
    let mut out = Vec::new();
    for (i, s) in seq.iter().enumerate() {
        match s.as_u64() {
            Some(n) if (1..=9999).contains(&n) => {
                if out.contains(&(n as u32)) {
                    return Err(KeyError::new(&format!("{key}[{i}]"), format!("sector {n} is listed twice")));
                }
                out.push(n as u32);
            }
            _ => {
                return Err(KeyError::with_hint(
                    &format!("{key}[{i}]"),
                    format!("expected a sector number from 1, found {}", yaml_text(s)),
                    hint,
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(KeyError::with_hint(&key, "the list of sectors is empty", hint));
    }
    out.sort_unstable();
    Ok(Sectors::List(out))
}

fn yaml_text(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v).map(|s| format!("`{}`", s.trim())).unwrap_or_else(|_| "another value".into())
}

/// One sector look-up per target, then one cutout per sector the look-up lists (and the recipe
/// wants): the total depends on the archive's answers, unless the recipe lists the sectors.
pub fn plan(cfg: &AstrocutConfig, targets: u64) -> FetchPlan {
    let (requests, note) = match &cfg.sectors {
        Sectors::All => (
            None,
            "per target: 1 sector look-up + 1 astrocut per sector that observed it (the look-up decides)".to_string(),
        ),
        Sectors::List(l) => (
            Some(targets * (1 + l.len() as u64)),
            format!("per target: 1 sector look-up + at most {} astrocut (only sectors that observed it)", l.len()),
        ),
    };
    FetchPlan {
        units: targets,
        items: targets,
        items_kind: "targets",
        requests,
        requests_note: note,
        input_bytes: None,
    }
}

/// The fields a sample can have.
pub fn field_names(cfg: &AstrocutConfig) -> Vec<&'static str> {
    let mut f =
        vec!["aperture.npy", "bkg.npy", "cadence.npy", "cls", "fluxerr.npy", "json", "npy", "quality.npy", "time.npy"];
    if cfg.fits {
        f.push("fits");
    }
    f.sort_unstable();
    f
}

/// Keys of all targets (target order), leaving room for the `-sNNNN` suffix and the longest field.
pub fn target_keys(
    cfg: &AstrocutConfig,
    targets: &[crate::target::Target],
) -> Result<Vec<String>, crate::error::UserError> {
    let longest = crate::keys::longest(field_names(cfg)) + sector_suffix(9999).len();
    crate::keys::assign_keys(targets.iter().map(|t| t.id.as_str()), longest).map_err(|e| {
        crate::error::UserError::usage(format!("target ids: {e}"))
            .with_hint("sample keys keep only [A-Za-z0-9_-]; make the ids differ in those characters")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> AstrocutFile {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn sizes_sectors_and_products_resolve_or_say_why_not() {
        let c = resolve(raw("{size: 12, sectors: [27, 1]}")).unwrap();
        assert_eq!(c.size, CutoutSize::Pixels(12));
        assert_eq!(c.sectors, Sectors::List(vec![1, 27]));
        assert_eq!(resolve(raw("{size: 3arcmin}")).unwrap().size, CutoutSize::Degrees(0.05));
        assert_eq!(resolve(raw("{size: 0.05deg}")).unwrap().size.pixels(), 9);
        assert_eq!(resolve(raw("{}")).unwrap().sectors, Sectors::All);
        let e = resolve(raw("{product: TICA}")).unwrap_err();
        assert!(e.message.contains("withdrawn"), "{}", e.message);
        assert!(resolve(raw("{size: 0}")).unwrap_err().message.contains("1 to 100"));
        assert!(resolve(raw("{size: 2deg}")).unwrap_err().message.contains("above the 100-pixel limit"));
        assert!(resolve(raw("{sectors: [1, 1]}")).unwrap_err().message.contains("twice"));
        assert_eq!(resolve(raw("{sectors: [1, x]}")).unwrap_err().key, "source.astrocut.sectors[1]");
        assert!(resolve(raw("{service: zcut}")).is_err());
    }

    #[test]
    fn urls_follow_the_service() {
        let mut c = resolve(raw("{base_url: \"http://127.0.0.1:9/tesscut/api/v0.1/\", size: 5}")).unwrap();
        assert_eq!(c.sector_url().as_str(), "http://127.0.0.1:9/tesscut/api/v0.1/sector");
        assert_eq!(
            c.cutout_url(107.27, -70.0, 1).as_str(),
            "http://127.0.0.1:9/tesscut/api/v0.1/astrocut?ra=107.27&dec=-70&y=5&x=5&units=px&sector=1&product=SPOC"
        );
        c.size = CutoutSize::Degrees(0.05);
        assert!(c.cutout_url(1.0, 2.0, 3).as_str().contains("y=0.05&x=0.05&units=d"));
        assert!(c
            .params()
            .starts_with("astrocut service=tesscut size=0.05d product=SPOC endpoint=http://127.0.0.1:9/"));
    }
}
