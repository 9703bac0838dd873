//! Static-file answers the way Apache's core handler gives them: validators, conditional
//! requests, single byte ranges; and a `mod_autoindex`-style folder listing.

use crate::http::{Request, Response};
use crate::ps1::fnv1a;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file the emulator serves.
pub(crate) struct StaticFile {
    pub name: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// Strong, quoted.
    pub etag: String,
    /// Whole seconds.
    pub last_modified: SystemTime,
}

impl StaticFile {
    /// `base_day` is a Unix time; the file's time is that plus a content-derived offset of
    /// less than `spread_s` seconds, so different content never shares a date validator.
    pub fn new(name: String, body: Vec<u8>, content_type: &'static str, base_day: u64, spread_s: u64) -> StaticFile {
        let h = fnv1a(&body);
        let etag = format!("\"{:x}-{:016x}\"", body.len(), h);
        let last_modified = UNIX_EPOCH + Duration::from_secs(base_day + h % spread_s.max(1));
        StaticFile { name, body, content_type, etag, last_modified }
    }
}

/// Which part of a file an answer carries.
#[derive(Debug, PartialEq)]
pub(crate) enum Part {
    Full,
    Range(u64, u64),
    NotModified,
    Unsatisfiable,
}

/// Parses a `Range` value against a representation of `total` bytes: `Some(Ok((first,
/// last)))` for one satisfiable range, `Some(Err(()))` when it is syntactically fine but not
/// satisfiable, `None` when the header is to be ignored (bad syntax, another unit, or several
/// ranges, which this server answers with the whole file).
pub(crate) fn parse_range(value: &str, total: u64) -> Option<Result<(u64, u64), ()>> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // Suffix range: the last N bytes.
        if !digits(b) {
            return None;
        }
        let n: u64 = b.parse().unwrap_or(u64::MAX);
        if n == 0 || total == 0 {
            return Some(Err(()));
        }
        return Some(Ok((total - n.min(total), total - 1)));
    }
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return None;
    }
    let first: u64 = a.parse().unwrap_or(u64::MAX);
    let last: Option<u64> = if b.is_empty() { None } else { Some(b.parse().unwrap_or(u64::MAX)) };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    if first >= total {
        return Some(Err(()));
    }
    Some(Ok((first, last.unwrap_or(u64::MAX).min(total - 1))))
}

fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || if weak { bare(t) == bare(etag) } else { t == etag }
    })
}

/// Decides what a GET/HEAD for `f` gets (RFC 9110 13.2.2 order, without If-Match and
/// If-Unmodified-Since).
pub(crate) fn choose_part(req: &Request, f: &StaticFile) -> Part {
    if let Some(inm) = req.header("if-none-match") {
        if etag_list_matches(inm, &f.etag, true) {
            return Part::NotModified;
        }
    } else if let Some(ims) = req.header("if-modified-since").and_then(|v| httpdate::parse_http_date(v).ok()) {
        if f.last_modified <= ims {
            return Part::NotModified;
        }
    }
    // Range only applies to GET (RFC 9110 14.2).
    if req.method != "GET" {
        return Part::Full;
    }
    let Some(range) = req.header("range") else { return Part::Full };
    if let Some(cond) = req.header("if-range") {
        let cond = cond.trim();
        let fresh = if cond.starts_with('"') || cond.starts_with("W/") {
            // Only a strong, identical entity tag matches.
            cond == f.etag
        } else {
            httpdate::parse_http_date(cond).is_ok_and(|t| t == f.last_modified)
        };
        if !fresh {
            return Part::Full;
        }
    }
    match parse_range(range, f.body.len() as u64) {
        None => Part::Full,
        Some(Ok((a, b))) => Part::Range(a, b),
        Some(Err(())) => Part::Unsatisfiable,
    }
}

/// The answer for a GET/HEAD of `f` (the body is there for HEAD too, for `Content-Length`).
pub(crate) fn answer(req: &Request, f: &StaticFile) -> Response {
    let total = f.body.len();
    let validators = |r: Response| {
        r.with_header("Last-Modified", httpdate::fmt_http_date(f.last_modified))
            .with_header("ETag", f.etag.clone())
            .with_header("Accept-Ranges", "bytes")
    };
    match choose_part(req, f) {
        Part::Full => validators(Response::new(200, f.content_type, f.body.clone())),
        Part::Range(a, b) => {
            let body = f.body[a as usize..=b as usize].to_vec();
            validators(Response::new(206, f.content_type, body))
                .with_header("Content-Range", format!("bytes {a}-{b}/{total}"))
        }
        Part::NotModified => validators(Response::new(304, f.content_type, Vec::new())),
        Part::Unsatisfiable => {
            let body = b"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>416 Requested Range Not Satisfiable</title>\n</head><body>\n<h1>Requested Range Not Satisfiable</h1>\n<p>None of the range-specifier values in the Range\nrequest-header field overlap the current extent\nof the selected resource.</p>\n</body></html>\n";
            Response::new(416, "text/html; charset=iso-8859-1", body.to_vec())
                .with_header("Content-Range", format!("bytes */{total}"))
        }
    }
}

/// Apache's `-h` style sizes: `512`, `1.2K`, `14K`, `3.4M`.
fn human_size(n: usize) -> String {
    let units = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (u, s) in units {
        let n = n as u64;
        if n >= s {
            let v = n as f64 / s as f64;
            return if v < 10.0 { format!("{v:.1}{u}") } else { format!("{:.0}{u}", v) };
        }
    }
    n.to_string()
}

fn minute_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

/// An Apache `mod_autoindex` (FancyIndexing, table) page for `folder` (with trailing slash).
pub(crate) fn index_page(folder: &str, files: &[&StaticFile], host: &str) -> Vec<u8> {
    let title = folder.trim_end_matches('/');
    let parent = match title.rfind('/') {
        Some(i) => &folder[..=i],
        None => "/",
    };
    let mut s = String::new();
    s.push_str("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n");
    s.push_str(&format!("  <title>Index of {title}</title>\n </head>\n <body>\n<h1>Index of {title}</h1>\n"));
    s.push_str("  <table>\n   <tr><th valign=\"top\"><img src=\"/icons/blank.gif\" alt=\"[ICO]\"></th><th><a href=\"?C=N;O=D\">Name</a></th><th><a href=\"?C=M;O=A\">Last modified</a></th><th><a href=\"?C=S;O=A\">Size</a></th><th><a href=\"?C=D;O=A\">Description</a></th></tr>\n");
    s.push_str("   <tr><th colspan=\"5\"><hr></th></tr>\n");
    s.push_str(&format!("<tr><td valign=\"top\"><img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"></td><td><a href=\"{parent}\">Parent Directory</a></td><td>&nbsp;</td><td align=\"right\">  - </td><td>&nbsp;</td></tr>\n"));
    let mut sorted: Vec<&&StaticFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for f in sorted {
        s.push_str(&format!(
            "<tr><td valign=\"top\"><img src=\"/icons/text.gif\" alt=\"[TXT]\"></td><td><a href=\"{0}\">{0}</a></td><td align=\"right\">{1}  </td><td align=\"right\">{2:>4}</td><td>&nbsp;</td></tr>\n",
            f.name,
            minute_stamp(f.last_modified),
            human_size(f.body.len())
        ));
    }
    s.push_str("   <tr><th colspan=\"5\"><hr></th></tr>\n</table>\n");
    let (h, port) = host.rsplit_once(':').unwrap_or((host, "80"));
    s.push_str(&format!("<address>Apache Server at {h} Port {port}</address>\n</body></html>\n"));
    s.into_bytes()
}

/// Whether a request body is a well-formed XML document whose root is `DAV:propfind`.
pub(crate) fn is_propfind_document(body: &[u8]) -> bool {
    use quick_xml::events::Event;
    use quick_xml::name::{Namespace, ResolveResult};
    let mut reader = quick_xml::NsReader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots, mut root_ok) = (0usize, 0, false);
    loop {
        let Ok((ns, event)) = reader.read_resolved_event() else { return false };
        let is_propfind = |local: &str| matches!(ns, ResolveResult::Bound(Namespace("DAV:"))) && local == "propfind";
        match event {
            Event::Start(e) => {
                if depth == 0 {
                    roots += 1;
                    root_ok = is_propfind(e.local_name().into_inner());
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 0 => {
                roots += 1;
                root_ok = is_propfind(e.local_name().into_inner());
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.xml10_content().trim().is_empty() => return false,
            Event::Eof => return roots == 1 && root_ok && depth == 0,
            _ => {}
        }
    }
}

/// A `207 Multi-Status` body listing `members` (the folder has no file).
pub(crate) fn multistatus(members: &[(String, Option<&StaticFile>)]) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><D:multistatus xmlns:D=\"DAV:\">");
    for (path, file) in members {
        let href: String = path
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        s.push_str(&format!("<D:response><D:href>{href}</D:href><D:propstat><D:prop>"));
        match file {
            None => {
                let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                s.push_str(&format!("<D:resourcetype><D:collection xmlns:D=\"DAV:\"/></D:resourcetype><D:displayname>{name}</D:displayname>"));
            }
            Some(f) => s.push_str(&format!(
                "<D:resourcetype></D:resourcetype><D:displayname>{}</D:displayname><D:getcontentlength>{}</D:getcontentlength><D:getlastmodified>{}</D:getlastmodified><D:getcontenttype>{}</D:getcontenttype><D:getetag>{}</D:getetag>",
                f.name,
                f.body.len(),
                httpdate::fmt_http_date(f.last_modified),
                f.content_type,
                f.etag.replace('"', "&quot;")
            )),
        }
        s.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>");
    }
    s.push_str("</D:multistatus>");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=10-", 100), Some(Ok((10, 99))));
        assert_eq!(parse_range("bytes=90-200", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-1000", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("Bytes = 5-5", 100), Some(Ok((5, 5))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=100-200", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=9-3", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=a-", 100), None);
        assert_eq!(parse_range("bytes=-", 100), None);
        assert_eq!(parse_range("bytes=+1-2", 100), None);
    }

    #[test]
    fn sizes_and_dates() {
        assert_eq!(human_size(999), "999");
        assert_eq!(human_size(1536), "1.5K");
        assert_eq!(human_size(20 * 1024), "20K");
        assert_eq!(human_size(3 * 1024 * 1024 + 400_000), "3.4M");
        assert_eq!(minute_stamp(UNIX_EPOCH + Duration::from_secs(1_522_195_200 + 3661)), "2018-03-28 01:01");
        assert_eq!(minute_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29 00:00");
    }
}
