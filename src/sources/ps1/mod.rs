//! PS1 image cutouts at MAST: `ps1filenames.py` lists the skycell images covering a position, then
//! `fitscut.cgi` cuts each filter out of them (docs/archives.md section 1). MAST asks for at most 10
//! simultaneous requests. This version resolves and plans; fetching arrives with the fetch engine.

pub mod fetch;
pub mod sample;
pub mod source;
pub mod table;
pub mod urls;

/// The recipe key of this source and its `raw/` folder.
pub const KIND: &str = "ps1-cutouts";

use serde::Deserialize;
use std::time::Duration;

use crate::net::Politeness;
use crate::spec::KeyError;

use super::FetchPlan;
use crate::transform::Section;

/// The `transform` sections PS1 samples are made with.
pub const TRANSFORMS: &[Section] = &[Section::Image];

/// `source.ps1-cutouts` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ps1File {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub filters: Option<Vec<String>>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub image_type: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
}

pub const DEFAULT_BASE_URL: &str = "https://ps1images.stsci.edu";
/// MAST's stated maximum of simultaneous downloads.
pub const MAX_CONCURRENCY: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Ps1Config {
    pub base_url: url::Url,
    /// Subset of `grizy`, in the recipe's order (the channel order of the stacked array).
    pub filters: Vec<char>,
    /// Cutout side in input pixels (0.25 arcsec each).
    pub size: u32,
    pub image_type: ImageType,
    pub format: CutoutFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Stack,
    Warp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoutFormat {
    Fits,
    Jpg,
    Png,
}

impl Ps1Config {
    /// The settings that shape a target's requests and payloads, as recorded with each finished
    /// unit: changing any of them, the endpoint (`base_url`) included, makes the next fetch fetch
    /// the targets again (an emulator or a mirror must never pass for the archive).
    pub fn params(&self) -> String {
        let filters: String = self.filters.iter().collect();
        let kind = match self.image_type {
            ImageType::Stack => "stack",
            ImageType::Warp => "warp",
        };
        let format = match self.format {
            CutoutFormat::Fits => "fits",
            CutoutFormat::Jpg => "jpg",
            CutoutFormat::Png => "png",
        };
        super::params_at(
            format!("ps1-cutouts filters={filters} size={} type={kind} format={format}", self.size),
            &self.base_url,
        )
    }
}

pub fn default_politeness() -> Politeness {
    Politeness {
        concurrency: 6,
        rate: crate::units::rate(10.0, 1),
        retries: 6,
        timeout: Duration::from_secs(60),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(120),
        read_rate: None,
    }
}

pub(crate) fn resolve(raw: Ps1File) -> Result<Ps1Config, KeyError> {
    const KEY: &str = "source.ps1-cutouts";
    let base_url = crate::spec::base_url(raw.base_url.as_deref(), DEFAULT_BASE_URL, &format!("{KEY}.base_url"))?;
    let names = raw.filters.unwrap_or_else(|| vec!["g".into()]);
    let mut filters = Vec::new();
    for (i, f) in names.iter().enumerate() {
        let key = format!("{KEY}.filters[{i}]");
        let c = match f.as_str() {
            "g" | "r" | "i" | "z" | "y" => f.chars().next().unwrap_or('g'),
            _ => {
                return Err(KeyError::with_hint(
                    &key,
                    format!("unknown PS1 filter `{f}`"),
                    "PS1 filters are g, r, i, z, y",
                ))
            }
        };
        if filters.contains(&c) {
            return Err(KeyError::new(&key, format!("filter `{f}` is listed twice")));
        }
        filters.push(c);
    }
    if filters.is_empty() {
        return Err(KeyError::with_hint(&format!("{KEY}.filters"), "expected at least one filter", "e.g. `[g, r, i]`"));
    }
    let size = match raw.size {
        None => 240,
        Some(s) if s > 0 && s <= 6000 => s as u32,
        Some(s) => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.size"),
                format!("expected a cutout side of 1 to 6000 pixels, found {s}"),
                "size is in input pixels of 0.25 arcsec; 240 is one arcminute; a skycell is about 6240 pixels",
            ))
        }
    };
    let image_type = match raw.image_type.as_deref().unwrap_or("stack") {
        "stack" => ImageType::Stack,
        "warp" => ImageType::Warp,
        other => {
            return Err(KeyError::new(
                &format!("{KEY}.image_type"),
                format!("expected `stack` or `warp`, found `{other}`"),
            ))
        }
    };
    let format = match raw.format.as_deref().unwrap_or("fits") {
        "fits" => CutoutFormat::Fits,
        "jpg" => CutoutFormat::Jpg,
        "png" => CutoutFormat::Png,
        other => {
            return Err(KeyError::new(
                &format!("{KEY}.format"),
                format!("expected `fits`, `jpg` or `png`, found `{other}`"),
            ))
        }
    };
    if format != CutoutFormat::Fits && !matches!(filters.len(), 1 | 3) {
        return Err(KeyError::with_hint(
            &format!("{KEY}.filters"),
            format!("{} filters cannot make a jpg/png cutout", filters.len()),
            "use one filter (grey) or three (colour, red to blue), or `format: fits`",
        ));
    }
    Ok(Ps1Config { base_url, filters, size, image_type, format })
}

/// One `ps1filenames.py` request per target, then one `fitscut.cgi` per filter (one for a colour
/// jpg/png made of three filters).
pub fn plan(cfg: &Ps1Config, targets: u64) -> FetchPlan {
    let cutouts = if cfg.format == CutoutFormat::Fits { cfg.filters.len() as u64 } else { 1 };
    FetchPlan {
        units: targets,
        samples_per_unit: crate::sources::ONE_SAMPLE_EACH,
        items: targets,
        items_kind: "targets",
        requests: Some(targets * (1 + cutouts)),
        requests_note: format!("per target: 1 ps1filenames.py + {cutouts} fitscut.cgi"),
        input_bytes: None,
    }
}

/// The key-length budget: the longest field name a sample can have with these settings (per-filter
/// ones such as `g.fits` included).
pub fn longest_field(cfg: &Ps1Config, image: &crate::transform::image::ImageTransform) -> usize {
    crate::keys::longest(sample::field_names(cfg, image))
}

/// Sample keys of all targets (in target order): from every target's id, so a target's key (and
/// raw folder) never depends on which targets a task or a run fetches.
pub fn target_keys(
    cfg: &Ps1Config,
    image: &crate::transform::image::ImageTransform,
    targets: &[crate::target::Target],
) -> Result<Vec<String>, crate::error::UserError> {
    crate::keys::assign_keys(targets.iter().map(|t| t.id.as_str()), longest_field(cfg, image)).map_err(|e| {
        crate::error::UserError::usage(format!("target ids: {e}"))
            .with_hint("sample keys keep only [A-Za-z0-9_-]; make the ids differ in those characters")
    })
}
