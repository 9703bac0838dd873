//! MAST astrocut cutouts (docs/archives.md section 4), one service per recipe:
//! - TESScut, cutouts of the TESS full-frame images. A sector look-up per target (`POST sector`,
//!   form data), then one cutout request per (target, sector) (`GET astrocut`), the documented
//!   way around the service's 600 s timeout. The answer is a zip of target-pixel files.
//! - Zcut, cutouts of deep-field mosaics (GOODS, CANDELS, ...). A survey look-up per target
//!   (`POST survey`, form data, answered by `{"surveys": [...]}`), then one cutout request per
//!   (target, survey), answered by a zip of one FITS file (an image HDU per mosaic) or of jpg/png
//!   images.
//! - HAPcut, cutouts of the Hubble Advanced Products. No look-up: one `GET astrocut` per
//!   target, answered by a zip of one FITS file (SCI and WHT images) per product covering it.
//!
//! A cutout answer is JSON `{"msg": ...}` instead when nothing matches (a permanent `no-data` for
//! that unit). MAST asks for at most 5 requests per second and at most 10 in flight, and
//! answers 503 above either.
//!
//! Units: the look-up (HAPcut: the cutout) is the unit named by the target's id; each cutout is
//! the unit `<id> sector <n>` or `<id> survey <name>`. A task of a batch split owns a target and
//! all its cutouts (the look-up must run in the task that fetches them), chosen by
//! `TaskSplit::owns` over the target id.

pub mod fetch;
pub mod hapcut;
pub mod source;
pub mod tpf;
pub mod zcut;
pub mod zip;

use serde::Deserialize;
use std::time::Duration;

use super::FetchPlan;
use crate::net::Politeness;
use crate::spec::KeyError;

/// The recipe key of this source and its `raw/` folder.
pub const KIND: &str = "astrocut";

pub const DEFAULT_TESSCUT_URL: &str = "https://mast.stsci.edu/tesscut/api/v0.1";
pub const DEFAULT_ZCUT_URL: &str = "https://mast.stsci.edu/zcut/api/v0.1";
pub const DEFAULT_HAPCUT_URL: &str = "https://mast.stsci.edu/hapcut/api/v0.1";
/// Longest HAPcut product key (`<skycell>-<instrument>_<detector>_<filter>`, about 27 characters).
pub const MAX_PRODUCT_KEY: usize = 48;
/// Largest Zcut cutout side in mosaic pixels, and as an angle (an etd bound: deep-field mosaics
/// have 0.03-0.1 arcsec pixels, so a few arcminutes are already thousands of pixels).
pub const MAX_ZCUT_SIDE_PX: u32 = 2000;
pub const MAX_ZCUT_SIDE_ARCSEC: f64 = 120.0;
/// Longest survey name used in keys and raw file names (MAST's are about 20 characters).
pub const MAX_SURVEY_NAME: usize = 40;
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
    /// Zcut: one survey name, a list, or `all`.
    #[serde(default)]
    pub survey: Option<serde_yaml::Value>,
    /// Zcut: `fits` (default), `jpg` or `png`.
    #[serde(default)]
    pub format: Option<String>,
}

/// Which astrocut service a recipe uses, with the settings only it has.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    Tesscut,
    Zcut {
        surveys: Surveys,
        format: ZcutFormat,
    },
    /// Hubble Advanced Products: one request per target, FITS only.
    Hapcut,
}

/// Which Zcut surveys to cut: every survey the look-up lists, or those of them in the list.
#[derive(Debug, Clone, PartialEq)]
pub enum Surveys {
    All,
    /// Sorted, unique.
    List(Vec<String>),
}

impl Surveys {
    pub fn wants(&self, survey: &str) -> bool {
        match self {
            Surveys::All => true,
            Surveys::List(l) => l.iter().any(|s| s == survey),
        }
    }
}

/// The file format of Zcut cutouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZcutFormat {
    Fits,
    Jpg,
    Png,
}

impl ZcutFormat {
    pub fn name(self) -> &'static str {
        match self {
            ZcutFormat::Fits => "fits",
            ZcutFormat::Jpg => "jpg",
            ZcutFormat::Png => "png",
        }
    }

    /// As messages write it.
    pub fn label(self) -> &'static str {
        match self {
            ZcutFormat::Fits => "FITS",
            other => other.name(),
        }
    }
}

/// One cutout of a target: a TESS sector or a Zcut survey.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Sector(u32),
    Survey(String),
    /// A HAPcut product file of a target's answer: its name in the zip, and its key.
    Product {
        member: String,
        key: String,
    },
}

impl Part {
    /// The unit id of this cutout of `target_id`.
    pub fn unit(&self, target_id: &str) -> String {
        match self {
            Part::Sector(s) => cutout_unit(target_id, *s),
            Part::Survey(s) => format!("{target_id} survey {s}"),
            Part::Product { key, .. } => format!("{target_id} product {key}"),
        }
    }

    /// The sample key suffix: `-s0006`, `-candels_gn_60mas`.
    pub fn suffix(&self) -> String {
        match self {
            Part::Sector(s) => sector_suffix(*s),
            Part::Survey(s) | Part::Product { key: s, .. } => format!("-{s}"),
        }
    }

    /// The raw file of the cutout zip (survey names are checked to be `[A-Za-z0-9_-]` first).
    pub fn file(&self) -> String {
        match self {
            Part::Sector(s) => format!("s{s:04}.zip"),
            Part::Survey(s) => format!("{s}.zip"),
            Part::Product { .. } => HAPCUT_FILE.to_string(),
        }
    }
}

/// The raw file of a target's HAPcut answer.
pub const HAPCUT_FILE: &str = "hapcut.zip";

/// The key of a HAPcut product file, `<skycell>-<instrument>_<detector>_<filter>`, from its name
/// in the zip (`hst_cutout_skycell-p2007x09y05-ra351d3478-decn28d4978_wfc3_uvis_f606w.fits`);
/// an error for any other name.
pub fn product_key(name: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "member `{name}` {why} (expected `hst_cutout_skycell-<cell>-ra<ra>-dec<dec>_<instrument>_<detector>_<filter>.fits`)"
        )
    };
    let rest = name
        .strip_prefix("hst_cutout_skycell-")
        .and_then(|r| r.strip_suffix(".fits"))
        .ok_or_else(|| bad("is not named as a HAPcut product"))?;
    let (cell, rest) = rest.split_once('-').ok_or_else(|| bad("names no skycell"))?;
    let (_, product) = rest.split_once('_').ok_or_else(|| bad("names no product"))?;
    let key = format!("{cell}-{product}");
    let ok = key.len() <= MAX_PRODUCT_KEY
        && !cell.is_empty()
        && !product.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(bad(&format!("gives the key `{key}`, not [A-Za-z0-9_-] of at most {MAX_PRODUCT_KEY}")));
    }
    Ok(key)
}

/// Whether `name` is a survey name etd uses in keys and file names.
pub fn survey_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SURVEY_NAME
        && !name.starts_with(['-', '_'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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
    /// Put the original target-pixel file in each sample as `fits` (TESScut).
    pub fits: bool,
    pub service: Service,
}

/// The only TESScut product (TICA was withdrawn).
pub const PRODUCT: &str = "SPOC";

impl AstrocutConfig {
    /// The settings that shape the requests and payloads, recorded with each unit: changing any
    /// of them (the endpoint included) fetches again. The sector selection is not among them: a
    /// sector is part of a unit's name, so adding sectors fetches only the new ones.
    pub fn params(&self) -> String {
        let (side, units) = self.size.query();
        let settings = match &self.service {
            Service::Tesscut => format!("{KIND} service=tesscut size={side}{units} product={PRODUCT}"),
            Service::Zcut { format, .. } => format!("{KIND} service=zcut size={side}{units} format={}", format.name()),
            Service::Hapcut => format!("{KIND} service=hapcut size={side}{units}"),
        };
        super::params_at(settings, &self.base_url)
    }

    /// The service's name as MAST writes it.
    pub fn service_name(&self) -> &'static str {
        match self.service {
            Service::Tesscut => "TESScut",
            Service::Zcut { .. } => "Zcut",
            Service::Hapcut => "HAPcut",
        }
    }

    /// What a cutout of a target is one of: `sector` or `survey`.
    pub fn part_noun(&self) -> &'static str {
        match self.service {
            Service::Tesscut => "sector",
            Service::Zcut { .. } => "survey",
            Service::Hapcut => "product",
        }
    }

    /// The look-up (sent as `POST` with the form of `lookup_form`).
    pub fn lookup_url(&self) -> url::Url {
        match self.service {
            Service::Tesscut => self.sector_url(),
            Service::Zcut { .. } => self.endpoint("survey"),
            // HAPcut looks nothing up: its one request is the cutout (`hapcut_url`).
            Service::Hapcut => self.endpoint("astrocut"),
        }
    }

    pub fn lookup_form(&self, ra: f64, dec: f64) -> Vec<(String, String)> {
        match self.service {
            Service::Tesscut => Self::sector_form(ra, dec),
            Service::Zcut { .. } => vec![("ra".into(), format!("{ra}")), ("dec".into(), format!("{dec}"))],
            Service::Hapcut => Vec::new(),
        }
    }

    /// HAPcut's one request per target: every product that covers the position.
    pub fn hapcut_url(&self, ra: f64, dec: f64) -> url::Url {
        self.astrocut_url(ra, dec)
    }

    /// The cutout request of one part.
    pub fn part_url(&self, ra: f64, dec: f64, part: &Part) -> url::Url {
        let survey = match part {
            Part::Sector(s) => return self.cutout_url(ra, dec, *s),
            Part::Product { .. } => return self.hapcut_url(ra, dec),
            Part::Survey(survey) => survey,
        };
        let mut url = self.astrocut_url(ra, dec);
        url.query_pairs_mut().append_pair("survey", survey).append_pair("format", self.zcut_format().name());
        url
    }

    /// The Zcut file format (FITS for the other services).
    pub fn zcut_format(&self) -> ZcutFormat {
        match self.service {
            Service::Zcut { format, .. } => format,
            Service::Tesscut | Service::Hapcut => ZcutFormat::Fits,
        }
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
        let mut url = self.astrocut_url(ra, dec);
        url.query_pairs_mut().append_pair("sector", &sector.to_string()).append_pair("product", PRODUCT);
        url
    }

    /// `astrocut?ra&dec&y&x&units`, the parameters every service's cutout request starts with.
    fn astrocut_url(&self, ra: f64, dec: f64) -> url::Url {
        let mut url = self.endpoint("astrocut");
        let (side, units) = self.size.query();
        url.query_pairs_mut()
            .append_pair("ra", &format!("{ra}"))
            .append_pair("dec", &format!("{dec}"))
            .append_pair("y", &side)
            .append_pair("x", &side)
            .append_pair("units", units);
        url
    }
}

/// `label` and `cls` into a sample's metadata, when the target has them.
pub fn put_label(meta: &mut serde_json::Value, target: &crate::target::Target, class: Option<usize>) {
    if let Some(m) = meta.as_object_mut() {
        if let Some(label) = &target.label {
            m.insert("label".into(), serde_json::json!(label));
        }
        if let Some(c) = class {
            m.insert("cls".into(), serde_json::json!(c));
        }
    }
}

/// A sample's fields with `cls` added (when the target has a class), sorted by name.
pub fn with_cls(mut fields: crate::sample::Fields, class: Option<usize>) -> crate::sample::Fields {
    if let Some(c) = class {
        fields.push(("cls".into(), c.to_string().into_bytes()));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
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
    let only = |key: &str, set: bool, service: &str, hint: &str| -> Result<(), KeyError> {
        if set {
            return Err(KeyError::with_hint(
                &format!("{KEY}.{key}"),
                format!("`{key}` does not apply to the {service} service"),
                hint.to_string(),
            ));
        }
        Ok(())
    };
    // Zcut and HAPcut samples are images: no sectors, products, or `fits` switch.
    let no_tesscut_keys = |service: &str| -> Result<(), KeyError> {
        let hint = "a TESScut key: use `service: tesscut`, or drop the key";
        only("sectors", raw.sectors.is_some(), service, hint)?;
        only("product", raw.product.is_some(), service, hint)?;
        only(
            "fits",
            raw.fits.is_some(),
            service,
            "the sample fields follow `transform.image.outputs` (add `fits` there)",
        )
    };
    match raw.service.as_deref().unwrap_or("tesscut") {
        "tesscut" => {
            only("survey", raw.survey.is_some(), "tesscut", "`survey` is a Zcut key (`service: zcut`)")?;
            only("format", raw.format.is_some(), "tesscut", "TESScut answers target-pixel files (FITS) only")?;
        }
        "zcut" => {
            no_tesscut_keys("zcut")?;
            let base_url =
                crate::spec::base_url(raw.base_url.as_deref(), DEFAULT_ZCUT_URL, &format!("{KEY}.base_url"))?;
            let format = match raw.format.as_deref().unwrap_or("fits") {
                "fits" => ZcutFormat::Fits,
                "jpg" => ZcutFormat::Jpg,
                "png" => ZcutFormat::Png,
                other => {
                    return Err(KeyError::with_hint(
                        &format!("{KEY}.format"),
                        format!("unknown Zcut format `{other}`"),
                        "`fits` (the default), `jpg` or `png`",
                    ))
                }
            };
            let surveys = resolve_surveys(raw.survey.as_ref())?;
            let size = resolve_size(raw.size.as_ref(), Scale::Mosaic)?;
            return Ok(AstrocutConfig {
                base_url,
                size,
                sectors: Sectors::All,
                fits: false,
                service: Service::Zcut { surveys, format },
            });
        }
        "hapcut" => {
            no_tesscut_keys("hapcut")?;
            only("survey", raw.survey.is_some(), "hapcut", "a Zcut key: HAPcut takes `base_url` and `size`")?;
            if let Some(f) = raw.format.as_deref().filter(|f| *f != "fits") {
                return Err(KeyError::with_hint(
                    &format!("{KEY}.format"),
                    format!("HAPcut serves FITS only, not `{f}`"),
                    "drop `format` (or write `format: fits`); `transform.image.outputs: [png]` adds a preview",
                ));
            }
            let base_url =
                crate::spec::base_url(raw.base_url.as_deref(), DEFAULT_HAPCUT_URL, &format!("{KEY}.base_url"))?;
            let size = resolve_size(raw.size.as_ref(), Scale::Mosaic)?;
            return Ok(AstrocutConfig { base_url, size, sectors: Sectors::All, fits: false, service: Service::Hapcut });
        }
        other => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.service"),
                format!("unknown astrocut service `{other}`"),
                "the service is `tesscut`, `zcut` or `hapcut`",
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
    let size = resolve_size(raw.size.as_ref(), Scale::Tess)?;
    let sectors = resolve_sectors(raw.sectors.as_ref())?;
    Ok(AstrocutConfig { base_url, size, sectors, fits: raw.fits.unwrap_or(false), service: Service::Tesscut })
}

/// Whose pixels a cutout side counts.
#[derive(Clone, Copy, PartialEq)]
enum Scale {
    /// TESS pixels, 21 arcsec each.
    Tess,
    /// Deep-field mosaic pixels (a few hundredths of an arcsecond).
    Mosaic,
}

fn resolve_surveys(v: Option<&serde_yaml::Value>) -> Result<Surveys, KeyError> {
    let key = format!("{KEY}.survey");
    let hint = "`all` (every survey the look-up lists for the position), one survey name such as \
                `candels_gn_30mas`, or a list of them";
    let Some(v) = v else { return Ok(Surveys::All) };
    if v.as_str() == Some("all") {
        return Ok(Surveys::All);
    }
    let items: Vec<(String, &serde_yaml::Value)> = match v.as_sequence() {
        Some(seq) => seq.iter().enumerate().map(|(i, s)| (format!("{key}[{i}]"), s)).collect(),
        None => vec![(key.clone(), v)],
    };
    let mut out: Vec<String> = Vec::new();
    for (at, s) in items {
        match s.as_str() {
            Some(name) if survey_name_ok(name) => {
                if out.iter().any(|o| o == name) {
                    return Err(KeyError::new(&at, format!("survey `{name}` is listed twice")));
                }
                out.push(name.to_string());
            }
            _ => {
                return Err(KeyError::with_hint(
                    &at,
                    format!(
                        "expected a survey name of letters, digits, `_` and `-` (at most {MAX_SURVEY_NAME}), found {}",
                        yaml_text(s)
                    ),
                    hint,
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(KeyError::with_hint(&key, "the list of surveys is empty", hint));
    }
    out.sort();
    Ok(Surveys::List(out))
}

fn resolve_size(v: Option<&serde_yaml::Value>, scale: Scale) -> Result<CutoutSize, KeyError> {
    let key = format!("{KEY}.size");
    let (max_px, default_px) = match scale {
        Scale::Tess => (MAX_SIDE_PX, 10),
        Scale::Mosaic => (MAX_ZCUT_SIDE_PX, 100),
    };
    let hint = match scale {
        Scale::Tess => format!(
            "a side in TESS pixels (21 arcsec each) from 1 to {MAX_SIDE_PX}, such as `10`, or an angle such as \
             `3.5arcmin`, `90arcsec` or `0.05deg`"
        ),
        Scale::Mosaic => format!(
            "a side in mosaic pixels from 1 to {MAX_ZCUT_SIDE_PX}, such as `100`, or an angle up to \
             {MAX_ZCUT_SIDE_ARCSEC} arcsec such as `5arcsec` or `0.5arcmin`"
        ),
    };
    let Some(v) = v else { return Ok(CutoutSize::Pixels(default_px)) };
    if let Some(n) = v.as_i64() {
        if n >= 1 && n <= i64::from(max_px) {
            return Ok(CutoutSize::Pixels(n as u32));
        }
        return Err(KeyError::with_hint(
            &key,
            format!("expected a cutout side of 1 to {max_px} pixels, found {n}"),
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
                Ok(n) if (1..=max_px).contains(&n) => Ok(CutoutSize::Pixels(n)),
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
    if scale == Scale::Mosaic {
        if deg * 3600.0 > MAX_ZCUT_SIDE_ARCSEC + 1e-9 {
            return Err(KeyError::with_hint(
                &key,
                format!("`{text}` is above the {MAX_ZCUT_SIDE_ARCSEC}-arcsec limit for Zcut and HAPcut cutouts"),
                "Zcut and HAPcut mosaics have pixels of a few hundredths of an arcsecond; ask for less",
            ));
        }
        return Ok(size);
    }
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
    let (requests, note) = match (&cfg.service, &cfg.sectors) {
        (Service::Zcut { surveys: Surveys::All, .. }, _) => (
            None,
            "per target: 1 survey look-up + 1 astrocut per survey that covers it (the look-up decides)".to_string(),
        ),
        (Service::Zcut { surveys: Surveys::List(l), .. }, _) => (
            Some(targets * (1 + l.len() as u64)),
            format!("per target: 1 survey look-up + at most {} astrocut (only surveys that cover it)", l.len()),
        ),
        (Service::Hapcut, _) => {
            (Some(targets), "per target: 1 astrocut (a zip of every Hubble product that covers it)".to_string())
        }
        (Service::Tesscut, Sectors::All) => (
            None,
            "per target: 1 sector look-up + 1 astrocut per sector that observed it (the look-up decides)".to_string(),
        ),
        (Service::Tesscut, Sectors::List(l)) => (
            Some(targets * (1 + l.len() as u64)),
            format!("per target: 1 sector look-up + at most {} astrocut (only sectors that observed it)", l.len()),
        ),
    };
    let samples_per_unit = match cfg.service {
        Service::Tesscut => "one sample per sector that observed the target",
        Service::Zcut { .. } => "one sample per survey that covers the target",
        Service::Hapcut => "one sample per Hubble product that covers the target",
    };
    FetchPlan {
        units: targets,
        samples_per_unit,
        items: targets,
        items_kind: "targets",
        requests,
        requests_note: note,
        input_bytes: None,
    }
}

/// The fields a sample can have (Zcut: those `transform.image.outputs` may ask for).
pub fn field_names(cfg: &AstrocutConfig) -> Vec<&'static str> {
    match cfg.service {
        Service::Zcut { .. } => return vec!["cls", "fits", "json", "npy", "png"],
        Service::Hapcut => return vec!["cls", "fits", "json", "npy", "png", "wht.npy"],
        Service::Tesscut => {}
    }
    let mut f =
        vec!["aperture.npy", "bkg.npy", "cadence.npy", "cls", "fluxerr.npy", "json", "npy", "quality.npy", "time.npy"];
    if cfg.fits {
        f.push("fits");
    }
    f.sort_unstable();
    f
}

/// Keys of all targets (target order), leaving room for the `-sNNNN` (or `-<survey>`) suffix and
/// the longest field.
pub fn target_keys(
    cfg: &AstrocutConfig,
    targets: &[crate::target::Target],
) -> Result<Vec<String>, crate::error::UserError> {
    let suffix = match cfg.service {
        Service::Tesscut => sector_suffix(9999).len(),
        Service::Zcut { .. } => 1 + MAX_SURVEY_NAME,
        Service::Hapcut => 1 + MAX_PRODUCT_KEY,
    };
    let longest = crate::keys::longest(field_names(cfg)) + suffix;
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
        assert!(resolve(raw("{service: hubble}")).unwrap_err().message.contains("unknown astrocut service"));
        assert_eq!(resolve(raw("{service: zcut, sectors: [1]}")).unwrap_err().key, "source.astrocut.sectors");
        assert_eq!(resolve(raw("{survey: goods_north}")).unwrap_err().key, "source.astrocut.survey");
    }

    #[test]
    fn zcut_surveys_formats_and_sizes_resolve_or_say_why_not() {
        let c = resolve(raw("{service: zcut}")).unwrap();
        assert_eq!(c.service, Service::Zcut { surveys: Surveys::All, format: ZcutFormat::Fits });
        assert_eq!(c.base_url.as_str(), "https://mast.stsci.edu/zcut/api/v0.1");
        assert_eq!(c.size, CutoutSize::Pixels(100));
        let c = resolve(raw("{service: zcut, survey: candels_gn_30mas, format: png, size: 3arcsec}")).unwrap();
        assert_eq!(
            c.service,
            Service::Zcut { surveys: Surveys::List(vec!["candels_gn_30mas".into()]), format: ZcutFormat::Png }
        );
        assert_eq!(c.size, CutoutSize::Degrees(3.0 / 3600.0));
        let c = resolve(raw("{service: zcut, survey: [goods_north, 3dhst_goods-n]}")).unwrap();
        assert_eq!(
            c.service,
            Service::Zcut {
                surveys: Surveys::List(vec!["3dhst_goods-n".into(), "goods_north".into()]),
                format: ZcutFormat::Fits
            }
        );
        let e = resolve(raw("{service: zcut, survey: [a, \"../x\"]}")).unwrap_err();
        assert_eq!(e.key, "source.astrocut.survey[1]");
        assert!(resolve(raw("{service: zcut, survey: [a, a]}")).unwrap_err().message.contains("twice"));
        assert!(resolve(raw("{service: zcut, format: gif}")).unwrap_err().message.contains("gif"));
        assert!(resolve(raw("{service: zcut, size: 2001}")).unwrap_err().message.contains("1 to 2000"));
        assert!(resolve(raw("{service: zcut, size: 3arcmin}")).unwrap_err().message.contains("120-arcsec"));
        assert_eq!(resolve(raw("{service: zcut, fits: true}")).unwrap_err().key, "source.astrocut.fits");
        let c = resolve(raw("{service: zcut, base_url: \"http://127.0.0.1:9/zcut/api/v0.1\", size: 40, format: jpg}"))
            .unwrap();
        assert_eq!(c.lookup_url().as_str(), "http://127.0.0.1:9/zcut/api/v0.1/survey");
        assert_eq!(
            c.part_url(189.2, 62.2, &Part::Survey("goods_north".into())).as_str(),
            "http://127.0.0.1:9/zcut/api/v0.1/astrocut?ra=189.2&dec=62.2&y=40&x=40&units=px&survey=goods_north&format=jpg"
        );
        assert!(c.params().starts_with("astrocut service=zcut size=40px format=jpg endpoint=http://127.0.0.1:9/"));
        assert_eq!(Part::Survey("goods_north".into()).unit("g 1"), "g 1 survey goods_north");
    }

    #[test]
    fn hapcut_takes_fits_only_and_names_products_by_skycell_and_filter() {
        let c = resolve(raw("{service: hapcut, size: 50}")).unwrap();
        assert_eq!((c.service.clone(), c.size), (Service::Hapcut, CutoutSize::Pixels(50)));
        assert_eq!(c.base_url.as_str(), "https://mast.stsci.edu/hapcut/api/v0.1");
        assert_eq!(
            c.hapcut_url(351.3478, -28.4978).as_str(),
            "https://mast.stsci.edu/hapcut/api/v0.1/astrocut?ra=351.3478&dec=-28.4978&y=50&x=50&units=px"
        );
        assert!(c.params().starts_with("astrocut service=hapcut size=50px endpoint="));
        assert!(resolve(raw("{service: hapcut, format: fits}")).is_ok());
        let e = resolve(raw("{service: hapcut, format: png}")).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("source.astrocut.format", "HAPcut serves FITS only, not `png`")
        );
        assert_eq!(resolve(raw("{service: hapcut, survey: x}")).unwrap_err().key, "source.astrocut.survey");
        assert_eq!(resolve(raw("{service: hapcut, sectors: [1]}")).unwrap_err().key, "source.astrocut.sectors");
        assert_eq!(
            product_key("hst_cutout_skycell-p2007x09y05-ra351d3478-decn28d4978_wfc3_uvis_f606w.fits").unwrap(),
            "p2007x09y05-wfc3_uvis_f606w"
        );
        assert!(product_key("../../etc/passwd.fits").unwrap_err().contains("not named as a HAPcut product"));
        assert!(product_key("hst_cutout_skycell-p1-ra1-dec2_a b.fits").unwrap_err().contains("`p1-a b`"));
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
