//! The two requests of each service: the look-up of a target (TESScut `POST sector` with form
//! data, answered by `{"results": [{"sectorName", "sector", "camera", "ccd"}, ...]}`; Zcut
//! `POST survey`, answered by `{"surveys": [...]}`), and the cutout of one sector or survey
//! (`GET astrocut`, answered by a zip of FITS files (or Zcut jpg/png images) or by
//! `{"msg": ...}` when nothing matches). Every answer is checked before it is stored.

use std::sync::Arc;

use serde_json::Value;

use super::zip;
use super::{product_key, survey_name_ok, AstrocutConfig, Part, Service, ZcutFormat, HAPCUT_FILE, MAX_SURVEY_NAME};
use crate::failure::FailureKind;
use crate::net::client::{Fetched, NetClient, Request, Secret};
use crate::sources::engine::{fetch_checked, stage, Answer, Finished, UnitError};
use crate::store::raw::RawStore;
use crate::target::Target;

/// Raw file and input field of a target's sector look-up.
pub const SECTORS_FILE: &str = "sectors.json";
pub const SECTORS_FIELD: &str = "sectors";
/// Raw file and input field of a target's Zcut survey look-up.
pub const SURVEYS_FILE: &str = "surveys.json";
pub const SURVEYS_FIELD: &str = "surveys";
/// Input field of a cutout zip (raw file `s<NNNN>.zip`).
pub const CUTOUT_FIELD: &str = "zip";

/// One sector the look-up listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorRow {
    pub name: String,
    pub sector: u32,
    pub camera: String,
    pub ccd: String,
}

fn text_or_number(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The list under `key` of a look-up answer; an answer with only MAST's `{"msg": ...}` says so.
fn listed<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    v.get(key).and_then(Value::as_array).ok_or_else(|| match v.get("msg") {
        Some(msg) => format!("has no `{key}`, only the message {msg}"),
        None => format!("has no `{key}` list"),
    })
}

/// The rows of a sector look-up answer (the docs zero-pad `sector`, astroquery's test data does not).
pub fn parse_sectors(body: &[u8]) -> Result<Vec<SectorRow>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("is not JSON: {e}"))?;
    let results = listed(&v, "results")?;
    let mut rows = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let sector = text_or_number(r.get("sector"))
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| format!("results[{i}] has no sector number"))?;
        rows.push(SectorRow {
            name: text_or_number(r.get("sectorName")).unwrap_or_default(),
            sector,
            camera: text_or_number(r.get("camera")).unwrap_or_default(),
            ccd: text_or_number(r.get("ccd")).unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// The survey names of a Zcut look-up answer, sorted and unique; a name etd cannot use in a key
/// or a file name makes the answer invalid.
pub fn parse_surveys(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("is not JSON: {e}"))?;
    let list = listed(&v, "surveys")?;
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match s.as_str() {
            Some(name) if survey_name_ok(name) => out.push(name.to_string()),
            _ => {
                return Err(format!(
                    "surveys[{i}] is {s}, not a survey name of letters, digits, `_` and `-` (at most \
                     {MAX_SURVEY_NAME})"
                ))
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The distinct sectors of a look-up, ascending.
pub fn sectors_of(rows: &[SectorRow]) -> Vec<u32> {
    let mut s: Vec<u32> = rows.iter().map(|r| r.sector).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The members of a HAPcut zip with their product keys, in name order: whole FITS files named
/// as products, no two with the same key.
pub fn hap_members(body: &[u8]) -> Result<Vec<(String, zip::Member)>, String> {
    let mut out: Vec<(String, zip::Member)> =
        zip::fits_members(body)?.into_iter().map(|m| Ok((product_key(&m.name)?, m))).collect::<Result<_, String>>()?;
    out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("members `{}` and `{}` give the same product key `{}`", w[0].1.name, w[1].1.name, w[0].0));
    }
    Ok(out)
}

/// The message of a `{"msg": ...}` answer.
pub fn no_data_message(body: &[u8]) -> Option<String> {
    if body.starts_with(zip::MAGIC) {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    match v.get("msg")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// How many sectors or surveys a look-up answer lists, or why it is not one.
type CountParts = fn(&[u8]) -> Result<usize, String>;

/// What every unit of one fetch shares.
pub struct CutoutFetcher {
    pub client: Arc<NetClient>,
    pub cfg: AstrocutConfig,
    pub store: RawStore,
}

impl CutoutFetcher {
    /// The look-up file, its input field, and how many parts an answer lists (or why it is none).
    fn lookup_answer(&self) -> (&'static str, &'static str, CountParts) {
        match self.cfg.service {
            Service::Tesscut => (SECTORS_FILE, SECTORS_FIELD, |b| parse_sectors(b).map(|r| r.len())),
            Service::Zcut { .. } | Service::Hapcut => {
                (SURVEYS_FILE, SURVEYS_FIELD, |b| parse_surveys(b).map(|r| r.len()))
            }
        }
    }

    /// Look up the sectors that observed `target` (or the surveys that cover it); a target none
    /// did fails as `no-coverage`.
    pub async fn lookup(self: Arc<Self>, key: String, target: Target) -> Result<Finished, UnitError> {
        if self.cfg.service == Service::Hapcut {
            return self.hapcut(key, target).await;
        }
        let url = self.cfg.lookup_url();
        let (file, field, parse) = self.lookup_answer();
        let noun = self.cfg.part_noun();
        let pairs = self.cfg.lookup_form(target.ra, target.dec);
        let form = pairs.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect();
        let req = Request::new(reqwest::Method::POST, url.clone()).form(form);
        let fetched = fetch_checked(&self.client, &self.store, &key, file, &req, |f| {
            parse(&f.body).map(|_| ()).map_err(|e| format!("the {noun} look-up answer of {url} {e}"))
        })
        .await?;
        let found = parse(&fetched.body).map_err(|e| UnitError::Permanent {
            kind: FailureKind::InvalidAnswer,
            reason: format!("the {noun} look-up answer of {url} {e}"),
        })?;
        if found == 0 {
            let reason = match self.cfg.service {
                Service::Tesscut => format!(
                    "TESS has observed no sector at ra {} dec {} (the sector look-up at {url} listed none); \
                     --retry-failed asks again after new sectors",
                    target.ra, target.dec
                ),
                Service::Zcut { .. } | Service::Hapcut => format!(
                    "no Zcut survey covers ra {} dec {} (the survey look-up at {url} listed none); Zcut serves \
                     a few deep fields only",
                    target.ra, target.dec
                ),
            };
            return Err(UnitError::Permanent { kind: FailureKind::NoCoverage, reason });
        }
        let form_url = {
            let mut u = url.clone();
            u.query_pairs_mut().extend_pairs(pairs.iter().map(|(k, v)| (k, v)));
            u
        };
        self.stage(key, file, field, fetched, form_url).await
    }

    /// HAPcut's one request for a target: a zip of every Hubble product that covers it, each
    /// member a whole FITS file named as a product; `{"msg": ...}` fails the target as `no-data`.
    async fn hapcut(self: Arc<Self>, key: String, target: Target) -> Result<Finished, UnitError> {
        let url = self.cfg.hapcut_url(target.ra, target.dec);
        let fetched = fetch_checked(&self.client, &self.store, &key, HAPCUT_FILE, &Request::get(url.clone()), |f| {
            if no_data_message(&f.body).is_some() {
                return Ok(());
            }
            hap_members(&f.body).map(|_| ()).map_err(|e| {
                format!("the astrocut answer of {url} is not a whole zip of HAPcut FITS files (nor a {{\"msg\"}} answer): {e}")
            })
        })
        .await?;
        if let Some(msg) = no_data_message(&fetched.body) {
            return Err(UnitError::Permanent {
                kind: FailureKind::NoData,
                reason: format!("HAPcut has no cutout at ra {} dec {} ({url}): {msg}", target.ra, target.dec),
            });
        }
        self.stage(key, HAPCUT_FILE, CUTOUT_FIELD, fetched, url).await
    }

    /// The cutout of one sector or survey; `{"msg": ...}` fails the unit as `no-data`.
    pub async fn cutout(self: Arc<Self>, key: String, target: Target, part: Part) -> Result<Finished, UnitError> {
        let url = self.cfg.part_url(target.ra, target.dec, &part);
        let file = part.file();
        let format = self.cfg.zcut_format();
        let fetched = fetch_checked(&self.client, &self.store, &key, &file, &Request::get(url.clone()), |f| {
            if no_data_message(&f.body).is_some() {
                return Ok(());
            }
            let checked = match format {
                ZcutFormat::Fits => zip::fits_members(&f.body).map(|_| ()),
                ZcutFormat::Jpg | ZcutFormat::Png => zip::image_members(&f.body, format).map(|_| ()),
            };
            checked.map_err(|e| {
                format!(
                    "the astrocut answer of {url} is not a whole zip of {} files (nor a {{\"msg\"}} answer): {e}",
                    format.label()
                )
            })
        })
        .await?;
        if let Some(msg) = no_data_message(&fetched.body) {
            let what = match &part {
                Part::Sector(s) => format!("sector {s}"),
                Part::Survey(s) => format!("survey {s}"),
                Part::Product { key, .. } => format!("product {key}"),
            };
            return Err(UnitError::Permanent {
                kind: FailureKind::NoData,
                reason: format!("{} has no cutout for {what} ({url}): {msg}", self.cfg.service_name()),
            });
        }
        self.stage(key, &file, CUTOUT_FIELD, fetched, url).await
    }

    /// Stage one checked payload (the engine commits it) and describe it.
    async fn stage(
        &self,
        key: String,
        file: &str,
        field: &str,
        fetched: Fetched,
        url: url::Url,
    ) -> Result<Finished, UnitError> {
        let answer = Answer { file: file.to_string(), field: field.to_string(), fetched, url };
        stage(&self.store, &key, vec![answer]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_answers_parse_padded_or_not() {
        let docs = br#"{"results":[{"sectorName":"tess-s0006-1-2","sector":"0006","camera":"1","ccd":"2"}]}"#;
        let rows = parse_sectors(docs).unwrap();
        assert_eq!(
            rows[0],
            SectorRow { name: "tess-s0006-1-2".into(), sector: 6, camera: "1".into(), ccd: "2".into() }
        );
        let astroquery = br#"{"results": [{"sectorName": "tess-s0001-1-3", "sector": "1", "camera": "1", "ccd": "3"},
            {"sectorName": "tess-s0001-1-4", "sector": 1, "camera": 1, "ccd": 4}]}"#;
        assert_eq!(sectors_of(&parse_sectors(astroquery).unwrap()), vec![1]);
        assert!(parse_sectors(b"{\"msg\": \"bad\"}").unwrap_err().contains("only the message"));
        assert!(parse_sectors(b"<html>").unwrap_err().contains("not JSON"));
        assert!(parse_sectors(br#"{"results":[{"sector":"x"}]}"#).unwrap_err().contains("results[0]"));
    }

    #[test]
    fn survey_answers_parse_and_unusable_names_are_refused() {
        let body = br#"{"surveys": ["goods_north", "candels_gn_30mas", "goods_north"]}"#;
        assert_eq!(parse_surveys(body).unwrap(), vec!["candels_gn_30mas", "goods_north"]);
        assert_eq!(parse_surveys(br#"{"surveys": []}"#).unwrap(), Vec::<String>::new());
        assert!(parse_surveys(br#"{"surveys": ["../etc"]}"#).unwrap_err().contains("surveys[0]"));
        assert!(parse_surveys(br#"{"surveys": [3]}"#).unwrap_err().contains("surveys[0]"));
        assert!(parse_surveys(br#"{"msg": "x"}"#).unwrap_err().contains("only the message"));
    }

    #[test]
    fn a_msg_answer_is_no_data_and_a_zip_is_not() {
        assert_eq!(no_data_message(br#"{"msg": "No data found."}"#).as_deref(), Some("No data found."));
        assert_eq!(no_data_message(b"PK\x03\x04{\"msg\": 1}"), None);
        assert_eq!(no_data_message(b"{\"results\": []}"), None);
    }
}
