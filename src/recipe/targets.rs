//! Targets: positions to fetch, from a CSV file with a header row or an inline `list:`. Each row is
//! checked (finite ra in [0, 360), dec in [-90, 90], unique ids) with errors naming the file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::hash::{unit_hash, HashDomain};
pub use crate::target::Target;

use super::raw::{SampleFile, TargetsFile};
use super::{RecipeError, RecipeErrorDetail, RecipeSource};

/// Resolved targets after sampling and limit.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The CSV file, when targets come from one.
    pub file: Option<PathBuf>,
    pub rows: Vec<Target>,
}

impl Targets {
    /// Distinct labels in sorted order: the class list written to the manifest.
    pub fn classes(&self) -> Vec<String> {
        let mut labels: Vec<String> = self.rows.iter().filter_map(|t| t.label.clone()).collect();
        labels.sort();
        labels.dedup();
        labels
    }
}

/// Column names: the recipe's `columns`, defaulting to `id`, `ra`, `dec`, `label`.
struct Columns {
    id: Option<String>,
    ra: String,
    dec: String,
    label: Option<String>,
    id_explicit: bool,
    label_explicit: bool,
}

/// Where a row came from, for errors.
enum RowPlace<'a> {
    Csv { file: &'a Path, line: u64 },
    Inline { index: usize },
}

pub(crate) fn resolve(raw: TargetsFile, dir: &Path, src: &RecipeSource) -> Result<Targets, RecipeError> {
    let cols = raw.columns.as_ref();
    let columns = Columns {
        id: Some(cols.and_then(|c| c.id.clone()).unwrap_or_else(|| "id".into())),
        ra: cols.and_then(|c| c.ra.clone()).unwrap_or_else(|| "ra".into()),
        dec: cols.and_then(|c| c.dec.clone()).unwrap_or_else(|| "dec".into()),
        label: Some(cols.and_then(|c| c.label.clone()).unwrap_or_else(|| "label".into())),
        id_explicit: cols.is_some_and(|c| c.id.is_some()),
        label_explicit: cols.is_some_and(|c| c.label.is_some()),
    };
    let (file, rows) = match (&raw.file, &raw.list) {
        (Some(_), Some(_)) => {
            return Err(src.error_hint("targets", "both `file` and `list` are given", "use one of them"))
        }
        (None, None) => {
            return Err(src.error_hint(
                "targets",
                "expected `file` (a CSV with a header row) or `list` (inline rows)",
                "e.g. `targets: {file: targets.csv, columns: {id: objid, ra: ra, dec: dec}}`",
            ))
        }
        (Some(f), None) => {
            let path = super::resolve::relative_path(dir, f);
            let rows = read_csv(&path, &columns, src)?;
            (Some(path), rows)
        }
        (None, Some(list)) => (None, read_list(list, &columns, src)?),
    };
    let mut rows = match &raw.sample {
        Some(s) => sample(rows, s, src)?,
        None => rows,
    };
    if let Some(limit) = raw.limit {
        if limit == 0 {
            return Err(src.error("targets.limit", "expected a positive number of targets, found 0"));
        }
        rows.truncate(limit as usize);
    }
    Ok(Targets { file, rows })
}

fn read_csv(path: &Path, columns: &Columns, src: &RecipeSource) -> Result<Vec<Target>, RecipeError> {
    let file_error = |line: Option<u64>, message: String, hint: Option<String>| -> RecipeError {
        RecipeErrorDetail {
            file: path.to_path_buf(),
            line: line.map(|l| l as usize),
            column: None,
            key: String::new(),
            message,
            hint,
        }
        .into()
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| {
        let mut err = src.error("targets.file", format!("cannot read targets file {}: {e}", path.display()));
        err.hint = Some("paths in a recipe are relative to the recipe file".into());
        err
    })?;
    let headers =
        reader.headers().map_err(|e| file_error(Some(1), format!("cannot read the header row: {e}"), None))?.clone();
    let find = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str, key: &str| {
        find(name).ok_or_else(|| {
            file_error(
                Some(1),
                format!("no column `{name}` in the header row ({})", headers.iter().collect::<Vec<_>>().join(", ")),
                Some(format!("set `targets.columns.{key}` to the column holding it")),
            )
        })
    };
    let ra_i = need(&columns.ra, "ra")?;
    let dec_i = need(&columns.dec, "dec")?;
    let id_i = match &columns.id {
        Some(name) if columns.id_explicit => Some(need(name, "id")?),
        Some(name) => find(name),
        None => None,
    };
    let label_i = match &columns.label {
        Some(name) if columns.label_explicit => Some(need(name, "label")?),
        Some(name) => find(name),
        None => None,
    };
    let mut rows = Vec::new();
    let mut seen = HashMap::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            file_error(line, format!("malformed CSV row: {e}"), None)
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(n as u64 + 2);
        let place = RowPlace::Csv { file: path, line };
        let get = |i: usize| record.get(i).unwrap_or("");
        let id = id_i.map(|i| get(i).to_string()).unwrap_or_else(|| (n + 1).to_string());
        let label = label_i.map(|i| get(i).to_string()).filter(|l| !l.is_empty());
        let target = make_target(id, get(ra_i), get(dec_i), label, &place, columns, src)?;
        check_unique(&mut seen, &target, &place, src)?;
        rows.push(target);
    }
    if rows.is_empty() {
        // A recipe that can never produce a sample is an error, not a warning.
        return Err(file_error(
            Some(1),
            "the targets file has a header row but no rows: there is nothing to fetch".into(),
            Some("add one row per target below the header (or point `targets.file` at the full list)".into()),
        ));
    }
    Ok(rows)
}

fn read_list(
    list: &[indexmap::IndexMap<String, serde_yaml::Value>],
    columns: &Columns,
    src: &RecipeSource,
) -> Result<Vec<Target>, RecipeError> {
    let mut rows = Vec::new();
    let mut seen = HashMap::new();
    for (index, row) in list.iter().enumerate() {
        let place = RowPlace::Inline { index };
        let text = |name: &str| row.get(name).map(scalar_text);
        let missing = |name: &str| src.error(&format!("targets.list[{index}]"), format!("row has no `{name}`"));
        let ra = text(&columns.ra).ok_or_else(|| missing(&columns.ra))?;
        let dec = text(&columns.dec).ok_or_else(|| missing(&columns.dec))?;
        let id = match columns.id.as_deref().and_then(text) {
            Some(id) => id,
            None if columns.id_explicit => return Err(missing(columns.id.as_deref().unwrap_or("id"))),
            None => (index + 1).to_string(),
        };
        let label = columns.label.as_deref().and_then(text).filter(|l| !l.is_empty());
        let target = make_target(id, &ra, &dec, label, &place, columns, src)?;
        check_unique(&mut seen, &target, &place, src)?;
        rows.push(target);
    }
    if rows.is_empty() {
        return Err(src.error_hint(
            "targets.list",
            "the list of targets is empty: there is nothing to fetch",
            "add targets such as `- {id: m51, ra: 202.47, dec: 47.19}`",
        ));
    }
    Ok(rows)
}

fn scalar_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

fn place_error(place: &RowPlace, column: &str, message: String, hint: Option<&str>, src: &RecipeSource) -> RecipeError {
    let mut err = match place {
        RowPlace::Csv { file, line } => RecipeErrorDetail {
            file: file.to_path_buf(),
            line: Some(*line as usize),
            column: None,
            key: format!("column `{column}`"),
            message,
            hint: None,
        }
        .into(),
        RowPlace::Inline { index } => src.error(&format!("targets.list[{index}].{column}"), message),
    };
    err.hint = hint.map(str::to_string);
    err
}

fn make_target(
    id: String,
    ra: &str,
    dec: &str,
    label: Option<String>,
    place: &RowPlace,
    columns: &Columns,
    src: &RecipeSource,
) -> Result<Target, RecipeError> {
    if id.trim().is_empty() {
        let col = columns.id.as_deref().unwrap_or("id");
        return Err(place_error(place, col, "empty id".into(), None, src));
    }
    let number = |text: &str, col: &str| -> Result<f64, RecipeError> {
        text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
            place_error(place, col, format!("expected a finite number of degrees, found `{text}`"), None, src)
        })
    };
    let ra_v = number(ra, &columns.ra)?;
    let dec_v = number(dec, &columns.dec)?;
    if !(0.0..360.0).contains(&ra_v) {
        return Err(place_error(
            place,
            &columns.ra,
            format!("ra {ra_v} is outside [0, 360)"),
            Some("ra is in decimal degrees; sexagesimal hours must be converted"),
            src,
        ));
    }
    if !(-90.0..=90.0).contains(&dec_v) {
        return Err(place_error(place, &columns.dec, format!("dec {dec_v} is outside [-90, 90]"), None, src));
    }
    Ok(Target { id, ra: ra_v, dec: dec_v, label })
}

fn check_unique(
    seen: &mut HashMap<String, String>,
    target: &Target,
    place: &RowPlace,
    src: &RecipeSource,
) -> Result<(), RecipeError> {
    let here = match place {
        RowPlace::Csv { line, .. } => format!("line {line}"),
        RowPlace::Inline { index } => format!("list[{index}]"),
    };
    if let Some(first) = seen.insert(target.id.clone(), here) {
        return Err(place_error(
            place,
            "id",
            format!("duplicate id `{}` (first at {first})", target.id),
            Some("ids must be unique"),
            src,
        ));
    }
    Ok(())
}

/// Keep a deterministic `fraction` of rows: those whose hash of (seed, id) falls below it.
fn sample(rows: Vec<Target>, s: &SampleFile, src: &RecipeSource) -> Result<Vec<Target>, RecipeError> {
    if !(s.fraction > 0.0 && s.fraction <= 1.0) {
        return Err(
            src.error("targets.sample.fraction", format!("expected a fraction in (0, 1], found {}", s.fraction))
        );
    }
    Ok(rows.into_iter().filter(|t| unit_hash(HashDomain::Sample, s.seed, &t.id) < s.fraction).collect())
}
