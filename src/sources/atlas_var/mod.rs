//! ATLAS-VAR (docs/archives.md section 3): the variable-star object catalog (a FITS table) and light
//! curves in declination-partitioned CSV files. `fetch` downloads (resumably) the catalog and the
//! partitions that hold the selected objects; turning them into samples arrives with the rest of
//! the ATLAS-VAR work.

pub mod catalog;
pub mod fetch;
pub mod group;
pub mod partitions;
pub mod source;

/// The recipe key of this source and its `raw/` folder.
pub const KIND: &str = "atlas-var";

use crate::spec::SampleFile;
use crate::units::Size;
use serde::Deserialize;
use std::time::Duration;

use crate::net::Politeness;
use crate::spec::KeyError;

use super::FetchPlan;
use crate::transform::Section;

/// The `transform` sections ATLAS-VAR samples are made with: none, their fields are fixed.
pub const TRANSFORMS: &[Section] = &[];

/// The fields of every ATLAS-VAR sample (`cls` only for an object with a class in `CLASSES`).
pub const FIELDS: [&str; 3] = ["npy", "json", "cls"];

/// The key-length budget: the longest of `FIELDS`.
pub fn longest_field() -> usize {
    crate::keys::longest(FIELDS)
}

/// `source.atlas-var` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasVarFile {
    #[serde(default)]
    pub catalog_url: Option<String>,
    #[serde(default)]
    pub lightcurves_url: Option<String>,
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    #[serde(default)]
    pub min_probability: Option<f64>,
    #[serde(default)]
    pub region: Option<RegionFile>,
    #[serde(default)]
    pub sample: Option<SampleFile>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub memory: Option<Size>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFile {
    pub ra: [f64; 2],
    pub dec: [f64; 2],
}

/// The class vocabulary of ATLAS-VAR DR1 (the `prob_<CLASS>` columns).
pub const CLASSES: &[&str] =
    &["CBF", "CBH", "DBF", "DBH", "HARD", "IRR", "LPV", "MIRA", "MPULSE", "MSINE", "NSINE", "PULSE", "SINE", "dubious"];

#[derive(Debug, Clone, PartialEq)]
pub struct AtlasVarConfig {
    pub catalog_url: url::Url,
    pub lightcurves_url: url::Url,
    pub classes: Vec<String>,
    pub min_probability: Option<f64>,
    /// ((ra_min, ra_max), (dec_min, dec_max)) in degrees.
    pub region: Option<((f64, f64), (f64, f64))>,
    pub sample: Option<(f64, u64)>,
    pub limit: Option<u64>,
    /// Memory for grouping light-curve rows by object before spilling to disk.
    pub memory: u64,
}

impl AtlasVarConfig {
    /// Where the files come from, recorded with each fetched file: files fetched from other URLs
    /// are left out of the shards (the selection is applied at shard time and is not part of it).
    pub fn params(&self) -> String {
        let folder = self.lightcurves_url.as_str().trim_end_matches('/');
        format!("atlas-var catalog_url={} lightcurves_url={folder}/", self.catalog_url)
    }
}

/// The warning when the selection matches no object of the catalog.
pub const EMPTY_SELECTION: &str = "the selection matches no object in the ATLAS-VAR catalog: the dataset will be empty";
/// What to change then.
pub const SELECTION_HINT: &str = "the objects are chosen by source.atlas-var.classes, min_probability, region, sample \
     and limit; widen them (or remove them to take every object)";

/// Default `memory`: rows buffered before a spill.
pub const DEFAULT_MEMORY: u64 = 256 << 20;

pub fn default_politeness() -> Politeness {
    Politeness {
        concurrency: 4,
        rate: crate::units::rate(2.0, 1),
        retries: 8,
        timeout: Duration::from_secs(300),
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(300),
        read_rate: None,
    }
}

pub(crate) fn resolve(raw: AtlasVarFile) -> Result<AtlasVarConfig, KeyError> {
    const KEY: &str = "source.atlas-var";
    let url = |v: Option<String>, key: &str| {
        let key = format!("{KEY}.{key}");
        let text = v.ok_or_else(|| KeyError::with_hint(&key, "missing", "an https:// or file:// URL"))?;
        crate::spec::parse_url(&text, &key, &["https", "http", "file"])
    };
    let catalog_url = url(raw.catalog_url, "catalog_url")?;
    let lightcurves_url = url(raw.lightcurves_url, "lightcurves_url")?;
    let classes = raw.classes.unwrap_or_default();
    for (i, c) in classes.iter().enumerate() {
        if !CLASSES.contains(&c.as_str()) {
            return Err(KeyError::with_hint(
                &format!("{KEY}.classes[{i}]"),
                format!("unknown ATLAS-VAR class `{c}`"),
                format!("classes are: {}", CLASSES.join(", ")),
            ));
        }
    }
    if let Some(p) = raw.min_probability {
        if !(0.0..=1.0).contains(&p) {
            return Err(KeyError::new(
                &format!("{KEY}.min_probability"),
                format!("expected a probability in [0, 1], found {p}"),
            ));
        }
    }
    let region = match raw.region {
        None => None,
        Some(r) => {
            let ok_ra = r.ra[0] >= 0.0 && r.ra[1] <= 360.0 && r.ra[0] < r.ra[1];
            let ok_dec = r.dec[0] >= -90.0 && r.dec[1] <= 90.0 && r.dec[0] < r.dec[1];
            if !ok_ra {
                return Err(KeyError::new(
                    &format!("{KEY}.region.ra"),
                    format!("expected [min, max] within [0, 360] with min < max, found {:?}", r.ra),
                ));
            }
            if !ok_dec {
                return Err(KeyError::new(
                    &format!("{KEY}.region.dec"),
                    format!("expected [min, max] within [-90, 90] with min < max, found {:?}", r.dec),
                ));
            }
            Some(((r.ra[0], r.ra[1]), (r.dec[0], r.dec[1])))
        }
    };
    let sample = match raw.sample {
        None => None,
        Some(s) if s.fraction > 0.0 && s.fraction <= 1.0 => Some((s.fraction, s.seed)),
        Some(s) => {
            return Err(KeyError::new(
                &format!("{KEY}.sample.fraction"),
                format!("expected a fraction in (0, 1], found {}", s.fraction),
            ))
        }
    };
    if raw.limit == Some(0) {
        return Err(KeyError::new(&format!("{KEY}.limit"), "expected a positive number of objects, found 0"));
    }
    Ok(AtlasVarConfig {
        catalog_url,
        lightcurves_url,
        classes,
        min_probability: raw.min_probability,
        region,
        sample,
        limit: raw.limit,
        memory: raw.memory.map(|m| m.0).unwrap_or(DEFAULT_MEMORY),
    })
}

/// The object count is known only once the catalog is read.
pub fn plan(_cfg: &AtlasVarConfig) -> FetchPlan {
    FetchPlan {
        units: 0,
        samples_per_unit: crate::sources::ONE_SAMPLE_EACH,
        items: 0,
        items_kind: "objects (known after reading the catalog)",
        requests: None,
        requests_note: "1 catalog download + 1 listing + 1 download per overlapping declination partition".into(),
        input_bytes: None,
    }
}
