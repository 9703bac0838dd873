//! The light-curve partitions: CSV files named `atlas_lc_dr1_{dec_from}-{dec_upto}.csv`, one per
//! band of declination (ARCHIVES.md 3.2), found in a folder: the links of an HTTP index page, or
//! the entries of a local directory (`file://`). Only the partitions whose band holds a selected
//! object are needed.

use std::path::Path;

/// One partition file and its declination band `[dec_from, dec_upto)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    pub dec_from: f64,
    pub dec_upto: f64,
}

impl Partition {
    pub fn holds(&self, dec: f64) -> bool {
        dec >= self.dec_from && dec < self.dec_upto
    }
}

/// Parse `atlas_lc_dr1_{from}-{upto}.csv` (either bound may be negative: `-30--20`).
pub fn parse_name(name: &str) -> Option<Partition> {
    let bounds = name.strip_prefix("atlas_lc_dr1_")?.strip_suffix(".csv")?;
    // The separator is the first `-` that follows a digit.
    let bytes = bounds.as_bytes();
    let sep = (1..bytes.len()).find(|&i| bytes[i] == b'-' && bytes[i - 1].is_ascii_digit())?;
    let dec_from: f64 = bounds[..sep].parse().ok()?;
    let dec_upto: f64 = bounds[sep + 1..].parse().ok()?;
    (dec_from.is_finite() && dec_upto.is_finite() && dec_from < dec_upto).then(|| Partition {
        name: name.to_string(),
        dec_from,
        dec_upto,
    })
}

/// Partition links of an HTML index page (`href="..."` values, relative names only).
pub fn from_index(html: &str) -> Vec<Partition> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("href=") {
        rest = &rest[i + 5..];
        let quote = rest.chars().next();
        let value = match quote {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
            _ => rest.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or(""),
        };
        let name = value.rsplit('/').next().unwrap_or(value);
        if let Some(p) = parse_name(name) {
            out.push(p);
        }
    }
    sort_unique(out)
}

/// Partition files of a local folder.
pub fn from_dir(dir: &Path) -> anyhow::Result<Vec<Partition>> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(p) = parse_name(&name.to_string_lossy()) {
            out.push(p);
        }
    }
    Ok(sort_unique(out))
}

fn sort_unique(mut v: Vec<Partition>) -> Vec<Partition> {
    v.sort_by(|a, b| a.dec_from.total_cmp(&b.dec_from).then(a.name.cmp(&b.name)));
    v.dedup_by(|a, b| a.name == b.name);
    v
}

/// The partitions holding at least one of `decs`.
pub fn needed(all: &[Partition], decs: impl IntoIterator<Item = f64>) -> Vec<&Partition> {
    let mut used = vec![false; all.len()];
    for dec in decs {
        if let Some(i) = all.iter().position(|p| p.holds(dec)) {
            used[i] = true;
        }
    }
    all.iter().zip(used).filter(|(_, u)| *u).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_negative_bounds() {
        assert_eq!(parse_name("atlas_lc_dr1_0-2.csv").map(|p| (p.dec_from, p.dec_upto)), Some((0.0, 2.0)));
        assert_eq!(parse_name("atlas_lc_dr1_-30--28.csv").map(|p| (p.dec_from, p.dec_upto)), Some((-30.0, -28.0)));
        assert_eq!(parse_name("atlas_lc_dr1_-2-0.csv").map(|p| (p.dec_from, p.dec_upto)), Some((-2.0, 0.0)));
        assert_eq!(parse_name("atlas_lc_dr1_10.5-12.csv").map(|p| (p.dec_from, p.dec_upto)), Some((10.5, 12.0)));
        assert!(parse_name("atlas_lc_dr1_5-2.csv").is_none());
        assert!(parse_name("other.csv").is_none());
    }

    #[test]
    fn index_links_and_needed_bands() {
        let html = r#"<html><body><a href="../">Parent</a>
            <a href="atlas_lc_dr1_-30--20.csv">atlas_lc_dr1_-30--20.csv</a> 12M
            <a href='atlas_lc_dr1_-20--10.csv'>x</a><a href=atlas_lc_dr1_0-10.csv>y</a>
            <a href="/atlas/dr1/atlas_lc_dr1_-10-0.csv">z</a><a href="README.txt">r</a></body></html>"#;
        let parts = from_index(html);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["atlas_lc_dr1_-30--20.csv", "atlas_lc_dr1_-20--10.csv", "atlas_lc_dr1_-10-0.csv", "atlas_lc_dr1_0-10.csv"]
        );
        let need: Vec<&str> = needed(&parts, [-25.0, -0.5, -29.9]).iter().map(|p| p.name.as_str()).collect();
        assert_eq!(need, ["atlas_lc_dr1_-30--20.csv", "atlas_lc_dr1_-10-0.csv"]);
    }
}
