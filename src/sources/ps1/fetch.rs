//! Fetching one PS1 target: `ps1filenames.py` lists the images covering it, then one
//! `fitscut.cgi` per filter (one for a colour jpg/png) cuts them out. Every answer is validated
//! before it is stored; the unit's inputs go to the journal only when all of them are stored.

use std::sync::Arc;

use super::table::{self, Ps1Image};
use super::urls::{colour_order, cutout_max_body, filenames_url, fitscut_url, table_max_body};
use super::{CutoutFormat, ImageType, Ps1Config};
use crate::failure::FailureKind;
use crate::fsx::Staged;
use crate::net::client::{Fetched, NetClient, Request};
use crate::sources::engine::{fetch_checked, stage, Answer, Finished, UnitError};
use crate::sources::payload::{validate, PayloadKind};
use crate::store::raw::RawStore;
use crate::target::Target;

/// Raw file of the `ps1filenames.py` answer, and its input field.
pub const TABLE_FILE: &str = "ps1filenames.txt";
pub const TABLE_FIELD: &str = "table";
/// What the archive calls the table (the name of a refused one under `rejected/`).
pub const TABLE_ANSWER: &str = "ps1filenames.py";
/// Input field of a colour (three-filter) jpg/png cutout.
pub const COLOUR_FIELD: &str = "color";

/// What every unit of one fetch shares.
pub struct Ps1Fetcher {
    pub client: Arc<NetClient>,
    pub cfg: Ps1Config,
    pub store: RawStore,
}

/// One cutout request: the input field it becomes, the images it cuts from, its raw file name.
struct Cutout<'a> {
    field: String,
    images: Vec<&'a Ps1Image>,
    file: String,
}

fn content_type(f: &Fetched) -> Option<&str> {
    f.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

impl Ps1Fetcher {
    /// Fetch and stage everything one target needs; its input records in a fixed order (table,
    /// then cutouts in the recipe's filter order), and the staged files for the engine to commit.
    pub async fn fetch(self: Arc<Self>, key: String, target: Target) -> Result<Finished, UnitError> {
        let cfg = &self.cfg;
        let url = filenames_url(cfg, target.ra, target.dec);
        let req = Request::get(url.clone()).max_body(table_max_body(cfg));
        let answer = fetch_checked(&self.client, &self.store, &key, TABLE_ANSWER, &req, |f| {
            validate(PayloadKind::Text, &f.body, content_type(f))
                .and_then(|()| table::parse(&String::from_utf8_lossy(&f.body)))
                .map(|_| ())
                .map_err(|e| format!("{TABLE_ANSWER} answer {url} {e}"))
        })
        .await?;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        let rows = table::parse(&text).map_err(|e| UnitError::Permanent {
            kind: FailureKind::InvalidAnswer,
            reason: format!("{TABLE_ANSWER} answer {url} {e}"),
        })?;
        if rows.is_empty() {
            return Err(UnitError::Permanent {
                kind: FailureKind::NoCoverage,
                reason: format!(
                    "no PS1 coverage at ra {} dec {} (ps1filenames.py answered with the header only)",
                    target.ra, target.dec
                ),
            });
        }
        let cutouts = plan_cutouts(cfg, &rows)?;
        // The unit's answers are staged together once all are in (one hand-off to a blocking
        // thread per target instead of one per file), or in parts when they grow past
        // UNIT_BUFFER (large cutouts), so memory stays bounded; the engine commits them.
        let mut unit = PendingUnit::new(key.clone(), cutouts.len() + 1);
        unit.add(&self, Answer { file: TABLE_FILE.to_string(), field: TABLE_FIELD.to_string(), fetched: answer, url })
            .await?;
        let kind = match cfg.format {
            CutoutFormat::Fits => PayloadKind::Fits,
            CutoutFormat::Jpg => PayloadKind::Jpeg,
            CutoutFormat::Png => PayloadKind::Png,
        };
        for cutout in cutouts {
            let url = fitscut_url(cfg, target.ra, target.dec, &cutout.images);
            let req = Request::get(url.clone()).max_body(cutout_max_body(cfg));
            let fetched = fetch_checked(&self.client, &self.store, &key, &cutout.file, &req, |f| {
                validate(kind, &f.body, content_type(f)).map_err(|e| format!("fitscut.cgi answer {url}: {e}"))
            })
            .await?;
            unit.add(&self, Answer { file: cutout.file, field: cutout.field, fetched, url }).await?;
        }
        unit.finish(&self).await
    }
}

/// Answers held in memory before they are stored with the next ones: past this, what is held
/// is stored at once (a 240-pixel cutout is about 230 KB; a 6000-pixel one 144 MB).
const UNIT_BUFFER: usize = 4 << 20;

/// A unit's answers on their way to the raw store, and what of it is staged already.
struct PendingUnit {
    key: String,
    held: Vec<Answer>,
    held_bytes: usize,
    staged: Finished,
}

impl PendingUnit {
    fn new(key: String, answers: usize) -> Self {
        let staged = Finished { inputs: Vec::with_capacity(answers), staged: Staged::default() };
        PendingUnit { key, held: Vec::with_capacity(answers), held_bytes: 0, staged }
    }

    async fn add(&mut self, fetcher: &Ps1Fetcher, answer: Answer) -> Result<(), UnitError> {
        self.held_bytes += answer.fetched.body.len();
        self.held.push(answer);
        if self.held_bytes >= UNIT_BUFFER {
            let held = std::mem::take(&mut self.held);
            self.held_bytes = 0;
            self.staged.append(stage(&fetcher.store, &self.key, held).await?);
        }
        Ok(())
    }

    /// Stage what is held; every record in order, and all the staged files.
    async fn finish(mut self, fetcher: &Ps1Fetcher) -> Result<Finished, UnitError> {
        let held = std::mem::take(&mut self.held);
        self.staged.append(stage(&fetcher.store, &self.key, held).await?);
        Ok(self.staged)
    }
}

/// The cutouts to request: per filter (fits, or a grey jpg/png), or one colour jpg/png of three
/// filters, reddest first. For each filter the first image of the requested type in the
/// server's listing is used (stacks: there is one).
fn plan_cutouts<'a>(cfg: &Ps1Config, rows: &'a [Ps1Image]) -> Result<Vec<Cutout<'a>>, UnitError> {
    let wanted = match cfg.image_type {
        ImageType::Stack => "stack",
        ImageType::Warp => "warp",
    };
    let first = |f: char| rows.iter().find(|r| r.filter == f && r.image_type == wanted);
    let missing: Vec<String> = cfg.filters.iter().filter(|f| first(**f).is_none()).map(|f| f.to_string()).collect();
    if !missing.is_empty() {
        return Err(UnitError::Permanent {
            kind: FailureKind::MissingFilter,
            reason: format!("no PS1 {wanted} image in filter(s) {} at this position", missing.join(", ")),
        });
    }
    let ext = match cfg.format {
        CutoutFormat::Fits => "fits",
        CutoutFormat::Jpg => "jpg",
        CutoutFormat::Png => "png",
    };
    let image = |f: char| first(f).expect("checked above");
    Ok(if cfg.format == CutoutFormat::Fits || cfg.filters.len() == 1 {
        cfg.filters
            .iter()
            .map(|&f| Cutout { field: f.to_string(), images: vec![image(f)], file: format!("{f}.{ext}") })
            .collect()
    } else {
        let order = colour_order(&cfg.filters);
        vec![Cutout {
            field: COLOUR_FIELD.into(),
            images: order.iter().map(|&f| image(f)).collect(),
            file: format!("{COLOUR_FIELD}.{ext}"),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(filter: char, kind: &str) -> Ps1Image {
        Ps1Image {
            projcell: 1268,
            subcell: 0,
            ra: 144.0,
            dec: -2.0,
            filter,
            mjd: 0.0,
            image_type: kind.into(),
            filename: format!("/rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.stk.{filter}.unconv.fits"),
            shortname: format!("rings.v3.skycell.1268.000.stk.{filter}.unconv.fits"),
            badflag: Some(0),
        }
    }

    fn cfg(filters: &[char], format: CutoutFormat) -> Ps1Config {
        Ps1Config {
            base_url: url::Url::parse("http://127.0.0.1:1").unwrap(),
            filters: filters.to_vec(),
            size: 64,
            image_type: ImageType::Stack,
            format,
        }
    }

    #[test]
    fn one_cutout_per_filter_or_one_colour_image() {
        let rows = vec![row('g', "stack"), row('r', "stack"), row('i', "stack")];
        let c = plan_cutouts(&cfg(&['r', 'g'], CutoutFormat::Fits), &rows).unwrap();
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.field.as_str(), c.file.as_str())).collect();
        assert_eq!(got, [("r", "r.fits"), ("g", "g.fits")]);
        let c = plan_cutouts(&cfg(&['g', 'r', 'i'], CutoutFormat::Jpg), &rows).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].file, "color.jpg");
        let order: Vec<char> = c[0].images.iter().map(|i| i.filter).collect();
        assert_eq!(order, ['i', 'r', 'g']);
        let c = plan_cutouts(&cfg(&['g'], CutoutFormat::Png), &rows).unwrap();
        assert_eq!((c[0].field.as_str(), c[0].file.as_str()), ("g", "g.png"));
    }

    #[test]
    fn a_missing_filter_is_a_permanent_failure() {
        let rows = vec![row('g', "stack"), row('r', "warp")];
        match plan_cutouts(&cfg(&['g', 'r', 'z'], CutoutFormat::Fits), &rows) {
            Err(UnitError::Permanent { kind, reason }) => {
                assert_eq!(kind, "missing-filter");
                assert!(reason.contains("r, z"), "{reason}");
            }
            _ => panic!("expected a permanent failure"),
        }
    }
}
