//! The two TESScut requests: the sector look-up of a target (`POST sector` with form data,
//! answered by `{"results": [{"sectorName", "sector", "camera", "ccd"}, ...]}`), and the cutout of
//! one sector (`GET astrocut`, answered by a zip of target-pixel files or by `{"msg": ...}` when
//! nothing matches). Every answer is checked before it is stored.

use std::sync::Arc;

use serde_json::Value;

use super::zip;
use super::AstrocutConfig;
use crate::failure::FailureKind;
use crate::net::client::{Fetched, NetClient, Request, Secret};
use crate::sources::engine::{fetch_checked, UnitError};
use crate::store::raw::RawStore;
use crate::store::InputRecord;
use crate::target::Target;

/// Raw file and input field of a target's sector look-up.
pub const SECTORS_FILE: &str = "sectors.json";
pub const SECTORS_FIELD: &str = "sectors";
/// Input field of a cutout zip (raw file `s<NNNN>.zip`).
pub const CUTOUT_FIELD: &str = "zip";

pub fn cutout_file(sector: u32) -> String {
    format!("s{sector:04}.zip")
}

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

/// The rows of a sector look-up answer (the docs zero-pad `sector`, astroquery's test data does not).
pub fn parse_sectors(body: &[u8]) -> Result<Vec<SectorRow>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("is not JSON: {e}"))?;
    let Some(results) = v.get("results").and_then(Value::as_array) else {
        return Err(match v.get("msg") {
            Some(msg) => format!("has no `results`, only the message {msg}"),
            None => "has no `results` list".into(),
        });
    };
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

/// The distinct sectors of a look-up, ascending.
pub fn sectors_of(rows: &[SectorRow]) -> Vec<u32> {
    let mut s: Vec<u32> = rows.iter().map(|r| r.sector).collect();
    s.sort_unstable();
    s.dedup();
    s
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

/// What every unit of one fetch shares.
pub struct TesscutFetcher {
    pub client: Arc<NetClient>,
    pub cfg: AstrocutConfig,
    pub store: RawStore,
}

impl TesscutFetcher {
    /// Look up the sectors that observed `target`; a target no sector observed fails as `no-coverage`.
    pub async fn lookup(self: Arc<Self>, key: String, target: Target) -> Result<Vec<InputRecord>, UnitError> {
        let url = self.cfg.sector_url();
        let form =
            AstrocutConfig::sector_form(target.ra, target.dec).into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
        let req = Request::new(reqwest::Method::POST, url.clone()).form(form);
        let fetched = fetch_checked(&self.client, &self.store, &key, SECTORS_FILE, &req, |f| {
            parse_sectors(&f.body).map(|_| ()).map_err(|e| format!("the sector look-up answer of {url} {e}"))
        })
        .await?;
        let rows = parse_sectors(&fetched.body).map_err(|e| UnitError::Permanent {
            kind: FailureKind::InvalidAnswer,
            reason: format!("the sector look-up answer of {url} {e}"),
        })?;
        if rows.is_empty() {
            return Err(UnitError::Permanent {
                kind: FailureKind::NoCoverage,
                reason: format!(
                    "TESS has observed no sector at ra {} dec {} (the sector look-up at {url} listed none); \
                     --retry-failed asks again after new sectors",
                    target.ra, target.dec
                ),
            });
        }
        let form_url = {
            let mut u = url.clone();
            u.query_pairs_mut()
                .extend_pairs(AstrocutConfig::sector_form(target.ra, target.dec).iter().map(|(k, v)| (k, v)));
            u
        };
        Ok(vec![self.store(&key, SECTORS_FILE, SECTORS_FIELD, fetched, &form_url).await?])
    }

    /// The cutout of one sector; `{"msg": ...}` fails the unit as `no-data`.
    pub async fn cutout(
        self: Arc<Self>,
        key: String,
        target: Target,
        sector: u32,
    ) -> Result<Vec<InputRecord>, UnitError> {
        let url = self.cfg.cutout_url(target.ra, target.dec, sector);
        let file = cutout_file(sector);
        let fetched = fetch_checked(&self.client, &self.store, &key, &file, &Request::get(url.clone()), |f| {
            if no_data_message(&f.body).is_some() {
                return Ok(());
            }
            zip::fits_members(&f.body).map(|_| ()).map_err(|e| {
                format!("the astrocut answer of {url} is not a whole zip of FITS files (nor a {{\"msg\"}} answer): {e}")
            })
        })
        .await?;
        if let Some(msg) = no_data_message(&fetched.body) {
            return Err(UnitError::Permanent {
                kind: FailureKind::NoData,
                reason: format!("TESScut has no cutout for sector {sector} ({url}): {msg}"),
            });
        }
        Ok(vec![self.store(&key, &file, CUTOUT_FIELD, fetched, &url).await?])
    }

    /// Store a checked payload atomically, off the async threads, and describe it.
    async fn store(
        &self,
        key: &str,
        file: &str,
        field: &str,
        fetched: Fetched,
        url: &url::Url,
    ) -> Result<InputRecord, UnitError> {
        let store = self.store.clone();
        let (key, file) = (key.to_string(), file.to_string());
        let stored = tokio::task::spawn_blocking(move || store.write(&key, &file, &fetched.body))
            .await
            .map_err(|e| UnitError::Fatal(anyhow::anyhow!("storing a payload failed: {e}")))?
            .map_err(UnitError::Fatal)?;
        Ok(InputRecord {
            path: stored.path,
            field: field.to_string(),
            size: stored.size,
            sha256: stored.sha256,
            mtime_ns: 0,
            url: Some(url.to_string()),
        })
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
    fn a_msg_answer_is_no_data_and_a_zip_is_not() {
        assert_eq!(no_data_message(br#"{"msg": "No data found."}"#).as_deref(), Some("No data found."));
        assert_eq!(no_data_message(b"PK\x03\x04{\"msg\": 1}"), None);
        assert_eq!(no_data_message(b"{\"results\": []}"), None);
    }
}
