//! The light-curve partitions: CSV files named `atlas_lc_dr1_{dec_from}-{dec_upto}.csv`, one per
//! band of declination (docs/archives.md 3.2), found in a folder: the links of an HTTP index page, the
//! members of a WebDAV `PROPFIND` listing (Pelican/OSDF and XRootD origins), or the entries of a
//! local directory (`file://`). Only the partitions whose band holds a selected object are needed.

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

/// The body etd sends with `PROPFIND` (`Depth: 1`): only the properties it reads.
pub const PROPFIND_BODY: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
    <D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>\n";

/// Partition files in a WebDAV `207 Multi-Status` answer: the last path segment of each
/// `DAV:href` (percent-decoded; absolute URLs and paths both work).
pub fn from_multistatus(xml: &[u8]) -> anyhow::Result<Vec<Partition>> {
    use quick_xml::events::Event;
    use quick_xml::name::{Namespace, ResolveResult};
    let mut reader = quick_xml::NsReader::from_reader(xml);
    let mut in_href = false;
    let mut href = String::new();
    let mut out = Vec::new();
    loop {
        let at = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| anyhow::anyhow!("not a WebDAV multistatus document: {e} (after byte {at})"))?;
        let dav = matches!(ns, ResolveResult::Bound(Namespace("DAV:")));
        match event {
            Event::Start(e) if dav && e.local_name().as_ref() == "href" => {
                in_href = true;
                href.clear();
            }
            Event::Text(t) if in_href => href.push_str(&t.xml10_content()),
            Event::CData(t) if in_href => href.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_href => {
                let c = r.resolve_char_ref().ok().flatten().map(String::from);
                let text = c.as_deref().or_else(|| quick_xml::escape::resolve_predefined_entity(&r.xml10_content()));
                href.push_str(text.unwrap_or(""));
            }
            Event::End(e) if dav && e.local_name().as_ref() == "href" => {
                in_href = false;
                let path = href.trim().trim_end_matches('/');
                let last = path.rsplit('/').next().unwrap_or(path);
                let name = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
                if let Some(p) = parse_name(&name) {
                    out.push(p);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(sort_unique(out))
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

    #[test]
    fn webdav_listings_with_any_prefix() {
        // As golang.org/x/net/webdav (Pelican origins) writes it: D: prefix, absolute paths.
        let go = br#"<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/atlas/dr1/</D:href><D:propstat><D:prop><D:resourcetype><D:collection xmlns:D="DAV:"/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/atlas/dr1/atlas_lc_dr1_-30--20.csv</D:href><D:propstat><D:prop><D:getcontentlength>12</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/atlas/dr1/README.txt</D:href></D:response></D:multistatus>"#;
        let names = |v: Vec<Partition>| v.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(from_multistatus(go).unwrap()), ["atlas_lc_dr1_-30--20.csv"]);
        // Default namespace, full URLs, percent-encoding and an entity; a `href` in another
        // namespace does not count.
        let other = br#"<multistatus xmlns="DAV:" xmlns:x="urn:x"><response><href>https://origin.example:8443/ns/dr1/atlas_lc_dr1_0-10.csv</href></response>
            <response><href>/ns/dr1/atlas_lc_dr1_%2D10%2D0.csv</href></response><response><href>/ns/atlas_lc_dr1_10-20.csv?a=1&amp;b=2</href></response>
            <response><x:href>/ns/atlas_lc_dr1_20-30.csv</x:href></response>
            <response><href><![CDATA[/ns/atlas_lc_dr1_30-40.csv]]></href></response></multistatus>"#;
        assert_eq!(
            names(from_multistatus(other).unwrap()),
            ["atlas_lc_dr1_-10-0.csv", "atlas_lc_dr1_0-10.csv", "atlas_lc_dr1_30-40.csv"]
        );
        let e = from_multistatus(b"<D:multistatus xmlns:D=\"DAV:\"><D:href>x</D:multistatus>").unwrap_err();
        assert!(e.to_string().contains("not a WebDAV multistatus document"), "{e}");
    }
}
