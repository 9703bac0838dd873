mod common;

use common::*;
use etd_emulators::atlas_var::{self, AtlasVarEmulator, Config, Dataset, Faults, CATALOG_FILE, CLASSES, CSV_COLUMNS};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn start(cfg: Config) -> AtlasVarEmulator {
    AtlasVarEmulator::start(cfg).unwrap()
}

/// `http://host:port/path` → (`http://host:port`, `/path`).
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let i = rest.find('/').unwrap();
    (format!("http://{}", &rest[..i]), rest[i..].to_string())
}

fn raw(method: &str, url: &str, headers: &[(&str, &str)], close: bool) -> Vec<u8> {
    let (base, path) = split(url);
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: atlas-var-tests/1\r\n", host(&base));
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    let (base, _) = split(url);
    if method != "HEAD" {
        return send_raw(&base, &raw(method, url, headers, true)).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    }
    // A HEAD answer has a Content-Length but no body: read the head only.
    let mut c = connect(&base);
    c.get_mut().write_all(&raw(method, url, headers, true)).unwrap();
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        assert!(c.read_until(b'\n', &mut line).unwrap() > 0, "HEAD {url}: closed early");
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut raw_headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut raw_headers);
    resp.parse(&head).unwrap();
    let headers =
        resp.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "HEAD {url}: {} body bytes", rest.len());
    Resp { status: resp.code.unwrap(), headers, body: Vec::new() }
}

fn fetch(url: &str) -> Resp {
    request("GET", url, &[])
}

/// The header cards of one HDU starting at `off`; returns (cards, offset of the data).
fn read_header(bytes: &[u8], mut off: usize) -> (Vec<String>, usize) {
    let mut cards = Vec::new();
    loop {
        let card = std::str::from_utf8(&bytes[off..off + 80]).expect("ASCII card").to_string();
        assert_eq!(card.len(), 80);
        assert!(card.bytes().all(|b| (32..127).contains(&b)), "{card:?}");
        off += 80;
        if card.starts_with("END ") {
            break;
        }
        cards.push(card);
    }
    (cards, off.div_ceil(2880) * 2880)
}

fn card<'a>(cards: &'a [String], key: &str) -> Option<&'a str> {
    cards.iter().find(|c| c[..8].trim_end() == key && &c[8..10] == "= ").map(|c| {
        let v = c[10..].trim_start();
        if let Some(rest) = v.strip_prefix('\'') {
            rest[..rest.find('\'').unwrap()].trim_end()
        } else {
            v.split('/').next().unwrap().trim()
        }
    })
}

fn int(cards: &[String], key: &str) -> usize {
    card(cards, key).unwrap_or_else(|| panic!("no {key}")).parse().unwrap()
}

fn be_f64(b: &[u8]) -> f64 {
    f64::from_be_bytes(b.try_into().unwrap())
}

fn be_f32(b: &[u8]) -> f32 {
    f32::from_be_bytes(b.try_into().unwrap())
}

fn tform_width(form: &str) -> usize {
    let (n, t) = form.split_at(form.len() - 1);
    let n: usize = if n.is_empty() { 1 } else { n.parse().unwrap() };
    n * match t {
        "K" | "D" => 8,
        "E" | "J" => 4,
        "A" => 1,
        other => panic!("unexpected TFORM {other}"),
    }
}

#[test]
fn catalog_fits_table() {
    let e = start(Config { objects: 123, ..Config::default() });
    assert!(e.catalog_url().ends_with("/hlsp/atlas-var/hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits"));
    let r = fetch(&e.catalog_url());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/fits"));
    let b = &r.body;
    assert_eq!(b.len() % 2880, 0);
    assert_eq!(*b, e.dataset().catalog_fits());

    let (primary, off) = read_header(b, 0);
    assert!(primary[0].starts_with("SIMPLE  =                    T"));
    assert_eq!(int(&primary, "BITPIX"), 8);
    assert_eq!(int(&primary, "NAXIS"), 0);
    let (ext, data) = read_header(b, off);
    assert_eq!(&ext[0][..20], "XTENSION= 'BINTABLE'");
    assert_eq!(card(&ext, "EXTNAME"), Some("OBJECT"));
    assert_eq!(int(&ext, "NAXIS"), 2);
    assert_eq!(int(&ext, "PCOUNT"), 0);
    assert_eq!(int(&ext, "GCOUNT"), 1);
    let nrows = int(&ext, "NAXIS2");
    assert_eq!(nrows, 123);
    let nfields = int(&ext, "TFIELDS");
    let names: Vec<String> = (1..=nfields).map(|i| card(&ext, &format!("TTYPE{i}")).unwrap().to_string()).collect();
    assert_eq!(names, atlas_var::catalog_columns());
    for required in ["objid", "ATO_ID", "ra", "dec", "CLASS", "fp_LSperiod"] {
        assert!(names.iter().any(|n| n == required), "{required}");
    }
    for c in CLASSES {
        assert!(names.contains(&format!("prob_{c}")));
    }
    let forms: Vec<String> = (1..=nfields).map(|i| card(&ext, &format!("TFORM{i}")).unwrap().to_string()).collect();
    let widths: Vec<usize> = forms.iter().map(|f| tform_width(f)).collect();
    let row_len = int(&ext, "NAXIS1");
    assert_eq!(widths.iter().sum::<usize>(), row_len);
    assert_eq!(card(&ext, "TUNIT3"), Some("deg"));
    assert_eq!(data + (nrows * row_len).div_ceil(2880) * 2880, b.len());

    let col = |name: &str| -> (usize, usize) {
        let i = names.iter().position(|n| n == name).unwrap();
        (widths[..i].iter().sum(), widths[i])
    };
    let mut ids = BTreeSet::new();
    for (k, want) in e.dataset().catalog.rows.iter().enumerate() {
        let row = &b[data + k * row_len..data + (k + 1) * row_len];
        let field = |name: &str| {
            let (o, w) = col(name);
            &row[o..o + w]
        };
        assert_eq!(i64::from_be_bytes(field("objid").try_into().unwrap()), want.objid);
        let ato = std::str::from_utf8(field("ATO_ID")).unwrap().trim_end();
        assert_eq!(ato, want.ato_id);
        assert!(ids.insert(ato.to_string()), "duplicate ATO_ID {ato}");
        assert!(ato.len() == 19 && ato.starts_with('J') && (ato.as_bytes()[10] == b'+' || ato.as_bytes()[10] == b'-'));
        assert_eq!(be_f64(field("ra")).to_bits(), want.ra.to_bits());
        assert_eq!(be_f64(field("dec")).to_bits(), want.dec.to_bits());
        assert!((0.0..360.0).contains(&want.ra) && (-30.0..90.0).contains(&want.dec));
        let class = std::str::from_utf8(field("CLASS")).unwrap().trim_end();
        assert_eq!(class, want.class);
        let ci = CLASSES.iter().position(|c| *c == class).expect("class in the vocabulary");
        let probs: Vec<f32> = CLASSES.iter().map(|c| be_f32(field(&format!("prob_{c}")))).collect();
        assert_eq!(probs, want.probs.to_vec());
        assert!(probs.iter().enumerate().all(|(i, p)| i == ci || *p < probs[ci]), "{class} {probs:?}");
        assert_eq!(be_f64(field("fp_LSperiod")), want.fp_lsperiod);
        assert_eq!(be_f32(field("rmag")), want.rmag);
        assert_eq!(be_f32(field("vf_o_med")), want.vf_o_med);
    }
    // Rows ascend by objid.
    assert!(e.dataset().catalog.rows.windows(2).all(|w| w[0].objid < w[1].objid));
    // The class distribution is skewed.
    let big = start(Config { objects: 2000, ..Config::default() });
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &big.dataset().catalog.rows {
        *counts.entry(r.class.as_str()).or_default() += 1;
    }
    assert!(counts["dubious"] > 500 && counts.get("MIRA").copied().unwrap_or(0) < 100, "{counts:?}");
    assert_eq!(counts.len(), 14, "{counts:?}");
}

/// The CSV rows of every partition: file name → rows (fields).
fn all_partitions(e: &AtlasVarEmulator) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out = BTreeMap::new();
    for (name, _, _) in &e.dataset().partitions {
        let r = fetch(&format!("{}{name}", e.lightcurves_url()));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some("text/csv"));
        let text = r.text();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(CSV_COLUMNS.join(",").as_str()));
        let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
        for row in &rows {
            assert_eq!(row.len(), 36, "{row:?}");
        }
        out.insert(name.clone(), rows);
    }
    out
}

#[test]
fn csv_header_and_partitions() {
    let e = start(Config::default());
    let ds = e.dataset();
    assert_eq!(CSV_COLUMNS.len(), 36);
    assert_eq!(
        CSV_COLUMNS.join(","),
        "ATO_ID,starID,ra,dec,CLASS,gmag,rmag,imag,zmag,ymag,prob_CBF,prob_CBH,prob_DBF,prob_DBH,prob_HARD,prob_MIRA,\
prob_MPULSE,prob_MSINE,prob_NSINE,prob_PULSE,prob_SINE,prob_IRR,prob_LPV,prob_dubious,fp_period,ls_Pday,\
fp_LSperiod,fp_lngfitper,vf_c_med,vf_o_med,mjd,dra,ddec,filter,m,dm"
    );
    let names: Vec<&str> = ds.partitions.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[0], "atlas_lc_dr1_-30--20.csv");
    assert!(names.contains(&"atlas_lc_dr1_0-10.csv") && names.contains(&"atlas_lc_dr1_80-90.csv"));
    let parts = all_partitions(&e);

    // ATO_ID → partitions it appears in.
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut rows_of: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for (name, rows) in &parts {
        let (_, from, upto) = ds.partitions.iter().find(|p| &p.0 == name).unwrap();
        for row in rows {
            let dec: f64 = row[3].parse().unwrap();
            assert!(*from <= dec && dec < *upto, "{name}: dec {dec}");
            assert!(row[33] == "c" || row[33] == "o");
            seen.entry(row[0].clone()).or_default().insert(name.clone());
            rows_of.entry(row[0].clone()).or_default().push(row.clone());
        }
    }
    assert_eq!(seen.len(), ds.catalog.rows.len());
    for obj in &ds.catalog.rows {
        let files = &seen[&obj.ato_id];
        assert_eq!(files.len(), 1, "{} in {files:?}", obj.ato_id);
        assert_eq!(files.iter().next().map(String::as_str), ds.partition_for(obj.dec));
        let rows = &rows_of[&obj.ato_id];
        let lc = &ds.lightcurves[&obj.ato_id];
        assert!((20..=60).contains(&lc.len()));
        assert_eq!(rows.len(), lc.len());
        // The joined catalogue columns are the object's.
        let r0 = &rows[0];
        assert_eq!(r0[1], obj.objid.to_string());
        assert_eq!(r0[2].parse::<f64>().unwrap(), obj.ra);
        assert_eq!(r0[3].parse::<f64>().unwrap(), obj.dec);
        assert_eq!(r0[4], obj.class);
        assert_eq!(r0[6].parse::<f32>().unwrap(), obj.rmag);
        for (k, c) in CLASSES.iter().enumerate() {
            let col = CSV_COLUMNS.iter().position(|n| *n == format!("prob_{c}")).unwrap();
            assert_eq!(r0[col].parse::<f32>().unwrap(), obj.probs[k], "prob_{c}");
        }
        assert_eq!(r0[26].parse::<f64>().unwrap(), obj.fp_lsperiod);
        assert!(rows.iter().all(|r| r[..30] == r0[..30]));
        // Sorted by mjd the rows are the light curve.
        let mut sorted = rows.clone();
        sorted.sort_by(|a, b| a[30].parse::<f64>().unwrap().total_cmp(&b[30].parse().unwrap()));
        for (r, d) in sorted.iter().zip(lc) {
            assert_eq!(r[30].parse::<f64>().unwrap(), d.mjd);
            assert_eq!(r[31].parse::<f32>().unwrap(), d.dra);
            assert_eq!(r[32].parse::<f32>().unwrap(), d.ddec);
            assert_eq!(r[33], d.filter.to_string());
            assert_eq!(r[34].parse::<f32>().unwrap(), d.m);
            assert_eq!(r[35].parse::<f32>().unwrap(), d.dm);
            assert!((57000.0..58500.0).contains(&d.mjd));
        }
    }
}

/// Runs of consecutive rows per object, in file order: ATO_ID → list of runs of mjds.
fn runs(rows: &[Vec<String>]) -> BTreeMap<String, Vec<Vec<f64>>> {
    let mut out: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    let mut prev: Option<&str> = None;
    for r in rows {
        let mjd: f64 = r[30].parse().unwrap();
        let runs = out.entry(r[0].clone()).or_default();
        if prev == Some(r[0].as_str()) {
            runs.last_mut().unwrap().push(mjd);
        } else {
            runs.push(vec![mjd]);
        }
        prev = Some(r[0].as_str());
    }
    out
}

#[test]
fn objects_are_split_into_runs() {
    let e = start(Config::default());
    let parts = all_partitions(&e);
    let (mut split, mut multi, mut unsorted_runs) = (0, 0, 0);
    for rows in parts.values() {
        let by_obj = runs(rows);
        for rs in by_obj.values() {
            if by_obj.len() > 1 {
                multi += 1;
                if rs.len() >= 2 {
                    split += 1;
                }
            }
            assert!(rs.len() <= 3, "{rs:?}");
            unsorted_runs += rs.iter().filter(|r| r.windows(2).any(|w| w[0] > w[1])).count();
        }
    }
    assert!(multi > 100);
    assert!(split * 10 >= multi * 9, "{split} of {multi} objects split");
    assert!(unsorted_runs > 100);

    let e = start(Config { split_runs: false, ..Config::default() });
    for rows in all_partitions(&e).values() {
        for rs in runs(rows).values() {
            assert_eq!(rs.len(), 1);
            assert!(rs[0].windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn index_page_links_every_partition() {
    let e = start(Config { band_deg: 7.5, objects: 50, ..Config::default() });
    let r = fetch(&e.lightcurves_url());
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(html.contains("<title>Index of /atlas/dr1</title>"));
    assert!(html.contains("Parent Directory"));
    let links: BTreeSet<String> = html
        .split("<a href=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .filter(|l| l.ends_with(".csv"))
        .collect();
    let want: BTreeSet<String> = e.dataset().partitions.iter().map(|p| p.0.clone()).collect();
    assert_eq!(links, want);
    assert_eq!(want.len(), 16);
    assert!(want.contains("atlas_lc_dr1_-22.5--15.csv"));
    for l in &links {
        assert_eq!(fetch(&format!("{}{l}", e.lightcurves_url())).status, 200);
    }
    let (base, _) = split(&e.lightcurves_url());
    let r = fetch(&format!("{base}/atlas/dr1"));
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(e.lightcurves_url().as_str()));
    assert_eq!(fetch(&format!("{}atlas_lc_dr1_-30--10.csv", e.lightcurves_url())).status, 404);
    assert_eq!(fetch(&format!("{base}/hlsp/atlas-var/nothing.fits")).status, 404);
    assert_eq!(request("POST", &e.catalog_url(), &[("Content-Length", "0")]).status, 405);
}

/// A PROPFIND with an optional `Depth` and a body.
fn propfind(url: &str, depth: Option<&str>, body: &str) -> Resp {
    let mut headers = vec![("Content-Type", "application/xml"), ("Content-Length", "")];
    let len = body.len().to_string();
    headers[1].1 = &len;
    if let Some(d) = depth {
        headers.push(("Depth", d));
    }
    let mut bytes = raw("PROPFIND", url, &headers, true);
    bytes.extend_from_slice(body.as_bytes());
    let (base, _) = split(url);
    send_raw(&base, &bytes).unwrap()
}

/// `(href, getcontentlength)` of each `D:response`.
fn members(xml: &str) -> Vec<(String, Option<u64>)> {
    xml.split("<D:response>")
        .skip(1)
        .map(|r| {
            let between = |a: &str, b: &str| r.split(a).nth(1).and_then(|t| t.split(b).next()).map(str::to_string);
            (
                between("<D:href>", "</D:href>").unwrap(),
                between("<D:getcontentlength>", "<").map(|n| n.parse().unwrap()),
            )
        })
        .collect()
}

#[test]
fn webdav_listing_as_a_pelican_origin_gives_it() {
    let e = start(Config { objects: 40, listing: atlas_var::Listing::WebDav, ..Config::default() });
    let folder = e.lightcurves_url();
    let (base, _) = split(&folder);
    let body = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/></D:prop></D:propfind>"#;
    let r = propfind(&folder, Some("1"), body);
    assert_eq!(r.status, 207);
    assert!(r.header("content-type").unwrap().starts_with("text/xml"));
    let got = members(&r.text());
    assert_eq!(got[0], ("/atlas/dr1/".to_string(), None), "the folder itself first");
    let want: Vec<(String, Option<u64>)> = e
        .dataset()
        .partitions
        .iter()
        .map(|p| (format!("/atlas/dr1/{}", p.0), Some(e.dataset().partition_csv(&p.0).unwrap().len() as u64)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(got[1..], want[..]);
    assert!(r.text().contains("<D:collection"));
    // Depth 0: the folder alone; an empty body is allprop; a file lists itself.
    assert_eq!(members(&propfind(&folder, Some("0"), "").text()), [("/atlas/dr1/".to_string(), None)]);
    let one = &want[0];
    let r = propfind(&format!("{base}{}", one.0), Some("1"), "");
    assert_eq!((r.status, members(&r.text())), (207, vec![one.clone()]));
    // Strict: infinite depth, a bad depth, a body that is not a propfind, an unknown path.
    let r = propfind(&folder, None, "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("propfind-finite-depth"));
    assert_eq!(propfind(&folder, Some("infinity"), "").status, 403);
    assert_eq!(propfind(&folder, Some("2"), "").status, 400);
    assert_eq!(propfind(&folder, Some("1"), "<D:propfind xmlns:D=\"DAV:\"><D:prop></D:propfind>").status, 400);
    assert_eq!(propfind(&folder, Some("1"), "<propfind><prop/></propfind>").status, 400, "not in the DAV: namespace");
    assert_eq!(propfind(&format!("{base}/atlas/nothing/"), Some("1"), "").status, 404);
    // GET on the folder is 405, as golang.org/x/net/webdav answers it; files are still served.
    assert_eq!(fetch(&folder).status, 405);
    assert_eq!(fetch(&format!("{base}{}", one.0)).status, 200);
}

#[test]
fn other_listing_modes_refuse_what_their_servers_refuse() {
    let apache = start(Config { objects: 10, ..Config::default() });
    let r = propfind(&apache.lightcurves_url(), Some("1"), "");
    assert_eq!(r.status, 405, "Apache without mod_dav");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let xrootd = start(Config { objects: 10, listing: atlas_var::Listing::Denied, ..Config::default() });
    assert_eq!(fetch(&xrootd.lightcurves_url()).status, 403);
    assert_eq!(propfind(&xrootd.lightcurves_url(), Some("1"), "").status, 403);
    let name = &xrootd.dataset().partitions[0].0;
    assert_eq!(fetch(&format!("{}{name}", xrootd.lightcurves_url())).status, 200);
}

#[test]
fn byte_ranges_and_validators() {
    let e = start(Config::default());
    let name = &e.dataset().partitions[4].0;
    let url = format!("{}{name}", e.lightcurves_url());
    let full = fetch(&url);
    assert_eq!(full.status, 200);
    let total = full.body.len();
    assert!(total > 10_000, "{total}");
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("content-length"), Some(total.to_string().as_str()));
    let etag = full.header("etag").unwrap().to_string();
    let lm = full.header("last-modified").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert!(httpdate::parse_http_date(&lm).is_ok());

    // ETag is stable: again, on HEAD, and from a second emulator with the same config.
    let head = request("HEAD", &url, &[]);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("content-length"), Some(total.to_string().as_str()));
    let e2 = start(Config::default());
    let again = fetch(&format!("{}{name}", e2.lightcurves_url()));
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("last-modified"), Some(lm.as_str()));
    assert_eq!(again.body, full.body);
    let other = start(Config { seed: 7, ..Config::default() });
    let differs = fetch(&format!("{}{name}", other.lightcurves_url()));
    assert_ne!(differs.header("etag"), Some(etag.as_str()));

    let r = request("GET", &url, &[("Range", "bytes=100-1099")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[100..1100]);
    assert_eq!(r.header("content-range"), Some(format!("bytes 100-1099/{total}").as_str()));
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = request("GET", &url, &[("Range", &format!("bytes={}-", total - 10))]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[total - 10..]);
    let r = request("GET", &url, &[("Range", &format!("bytes=5-{}", total + 500))]);
    assert_eq!((r.status, r.body.len()), (206, total - 5));
    let r = request("GET", &url, &[("Range", "bytes=-7")]);
    assert_eq!(r.body, full.body[total - 7..]);

    let r = request("GET", &url, &[("Range", &format!("bytes={total}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{total}").as_str()));

    // If-Range: matching ETag or date → 206; anything else → the whole file.
    let r = request("GET", &url, &[("Range", "bytes=10-19"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &full.body[10..20]));
    let r = request("GET", &url, &[("Range", "bytes=10-19"), ("If-Range", &lm)]);
    assert_eq!(r.status, 206);
    let r = request("GET", &url, &[("Range", "bytes=10-19"), ("If-Range", "\"stale\"")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
    let r = request("GET", &url, &[("Range", "bytes=10-19"), ("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT")]);
    assert_eq!(r.status, 200);
    let r = request("GET", &url, &[("Range", "bytes=10-19"), ("If-Range", &format!("W/{etag}"))]);
    assert_eq!(r.status, 200);

    // Several ranges are answered with the whole file; conditional GET gives 304.
    assert_eq!(request("GET", &url, &[("Range", "bytes=0-1,5-6")]).status, 200);
    let r = request("GET", &url, &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    // The catalogue supports ranges too.
    let cat = fetch(&e.catalog_url());
    let r = request("GET", &e.catalog_url(), &[("Range", "bytes=2880-5759")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, cat.body[2880..5760]);

    let m = e.meter();
    assert_eq!(m.range_requests, 7);
    assert_eq!(m.status_counts[&416], 1);
    assert_eq!(m.status_counts[&304], 1);
    assert!(m.user_agents.contains("atlas-var-tests/1"));
}

#[test]
fn keep_alive_serves_many_requests() {
    let e = start(Config { objects: 40, ..Config::default() });
    let (base, _) = split(&e.catalog_url());
    let mut c = connect(&base);
    let mut total = 0;
    for (name, _, _) in &e.dataset().partitions {
        let url = format!("{}{name}", e.lightcurves_url());
        c.get_mut().write_all(&raw("GET", &url, &[("Range", "bytes=0-99")], false)).unwrap();
        let r = read_response(&mut c).unwrap();
        assert!(r.status == 206 || r.status == 200, "{}", r.status);
        total += 1;
    }
    c.get_mut().write_all(&raw("HEAD", &e.catalog_url(), &[], false)).unwrap();
    let mut line = String::new();
    c.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    assert_eq!(e.meter().requests, total + 1);
    assert_eq!(e.meter().peak_inflight, 1);
}

/// Sends a GET and reads the head plus whatever body bytes arrive before the connection ends.
fn get_until_closed(url: &str, headers: &[(&str, &str)]) -> (u16, usize, Vec<u8>, Result<(), std::io::Error>) {
    let (base, _) = split(url);
    let mut s = TcpStream::connect(host(&base)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    s.write_all(&raw("GET", url, headers, false)).unwrap();
    let mut r = BufReader::new(s);
    let mut status = 0;
    let mut length = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            status = rest[..3].parse().unwrap();
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        match r.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
        if body.len() >= length {
            break Ok(());
        }
    };
    (status, length, body, end)
}

#[test]
fn reset_mid_body_is_metered() {
    let e = start(Config {
        faults: Faults { reset_mid_body_every_nth: Some(1), ..Faults::default() },
        ..Config::default()
    });
    let name = e.dataset().partitions[5].0.clone();
    let url = format!("{}{name}", e.lightcurves_url());
    let want = e.dataset().partition_csv(&name).unwrap();
    let total = want.len();

    let (status, length, body, _) = get_until_closed(&url, &[]);
    assert_eq!((status, length), (200, total));
    assert!(body.len() <= total / 2, "got {} of {total}", body.len());
    assert_eq!(body, want[..body.len()]);
    assert_eq!(e.meter().bytes_sent_per_file[&name], (total / 2) as u64);

    // The retry (a different target state: second attempt) succeeds; a resume from the
    // received bytes with If-Range as well.
    let r = fetch(&url);
    assert_eq!((r.status, r.body.len()), (200, total));
    let etag = r.header("etag").unwrap().to_string();
    let from = total / 2;
    let r = request("GET", &url, &[("Range", &format!("bytes={from}-")), ("If-Range", &etag)]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, want[from..]);
    let m = e.meter();
    assert_eq!(m.bytes_sent_per_file[&name], (total / 2 + total + (total - from)) as u64);
    assert_eq!((m.full_requests, m.range_requests), (2, 1));

    // A first-attempt range request is cut too: 206 head, half the slice.
    e.reset_meter();
    let cat = e.catalog_url();
    let (status, length, _, _) = get_until_closed(&format!("{cat}?x=1"), &[("Range", "bytes=1000-")]);
    let fits_len = e.dataset().catalog_fits().len();
    assert_eq!((status, length), (206, fits_len - 1000));
    assert_eq!(e.meter().bytes_sent_per_file[CATALOG_FILE], ((fits_len - 1000) / 2) as u64);
    assert_eq!(e.meter().range_requests, 1);
}

#[test]
fn unavailable_on_first_attempt_only() {
    let e = start(Config { faults: Faults { every_nth_503: Some(1), ..Faults::default() }, ..Config::default() });
    let url = format!("{}{}", e.lightcurves_url(), e.dataset().partitions[2].0);
    assert_eq!(fetch(&url).status, 503);
    assert_eq!(fetch(&url).status, 200);
    assert_eq!(fetch(&url).status, 200);
    assert_eq!(fetch(&e.catalog_url()).status, 503);
    assert_eq!(request("HEAD", &e.catalog_url(), &[]).status, 503);
    assert_eq!(request("HEAD", &e.catalog_url(), &[]).status, 200);
    assert_eq!(fetch(&e.catalog_url()).status, 200);
    let m = e.meter();
    assert_eq!(m.status_counts[&503], 3);
    assert_eq!(m.status_counts[&200], 4);
    assert_eq!(m.bytes_sent_per_file[CATALOG_FILE], e.dataset().catalog_fits().len() as u64);
    e.set_faults(Faults::default());
    e.forget_attempts();
    assert_eq!(fetch(&url).status, 200);

    // A fault period of n hits a stable subset of targets.
    let e = start(Config {
        objects: 10,
        faults: Faults { every_nth_503: Some(3), ..Faults::default() },
        ..Config::default()
    });
    let hit = |e: &AtlasVarEmulator| -> Vec<bool> {
        e.dataset().partitions.iter().map(|p| fetch(&format!("{}{}", e.lightcurves_url(), p.0)).status == 503).collect()
    };
    let a = hit(&e);
    assert!(a.iter().any(|x| *x) && !a.iter().all(|x| *x), "{a:?}");
    let e2 = start(Config {
        objects: 10,
        faults: Faults { every_nth_503: Some(3), ..Faults::default() },
        ..Config::default()
    });
    assert_eq!(hit(&e2), a);
}

#[test]
fn dataset_is_deterministic_and_writes_files() {
    let cfg = Config { objects: 80, ..Config::default() };
    let a = Dataset::generate(&cfg);
    let b = Dataset::generate(&cfg);
    assert_eq!(a, b);
    assert_eq!(a.catalog_fits(), b.catalog_fits());
    let c = Dataset::generate(&Config { seed: cfg.seed + 1, ..cfg.clone() });
    assert_ne!(a.catalog, c.catalog);
    assert!(a.partition_csv("atlas_lc_dr1_1-2.csv").is_none());

    let dir = std::env::temp_dir().join(format!("etd-atlas-var-test-{}", std::process::id()));
    let _ = fs_err::remove_dir_all(&dir);
    a.write_to(&dir).unwrap();
    let mut on_disk: Vec<String> =
        fs_err::read_dir(&dir).unwrap().map(|d| d.unwrap().file_name().into_string().unwrap()).collect();
    on_disk.sort();
    let mut want: Vec<String> = a.partitions.iter().map(|p| p.0.clone()).collect();
    want.push(CATALOG_FILE.to_string());
    want.sort();
    assert_eq!(on_disk, want);
    assert_eq!(fs_err::read(dir.join(CATALOG_FILE)).unwrap(), a.catalog_fits());
    for (name, _, _) in &a.partitions {
        assert_eq!(fs_err::read(dir.join(name)).unwrap(), a.partition_csv(name).unwrap());
    }
    let _ = fs_err::remove_dir_all(&dir);

    assert!(AtlasVarEmulator::start(Config { band_deg: 0.0, ..Config::default() }).is_err());
    assert!(AtlasVarEmulator::start(Config { detections_per_object: (5, 4), ..Config::default() }).is_err());
}

#[test]
fn binary_with_exit_on_stdin_eof_serves_until_stdin_closes() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("etd-atlas-var-bin-test-{}", std::process::id()));
    fs_err::create_dir_all(&dir).unwrap();
    let meter_file = dir.join("meter.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etd-emulator"))
        .args(["atlas-var", "--exit-on-stdin-eof", "--addr", "127.0.0.1:0", "--objects", "25", "--meter-file"])
        .arg(&meter_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut catalog, mut folder) = (String::new(), String::new());
    out.read_line(&mut catalog).unwrap();
    out.read_line(&mut folder).unwrap();
    let (catalog, folder) = (catalog.trim_end().to_string(), folder.trim_end().to_string());
    assert!(catalog.starts_with("http://127.0.0.1:") && catalog.ends_with(CATALOG_FILE), "{catalog}");
    assert!(folder.starts_with("http://127.0.0.1:") && folder.ends_with("/atlas/dr1/"), "{folder}");
    let r = fetch(&catalog);
    assert_eq!(r.status, 200);
    let (_, ext_off) = read_header(&r.body, 0);
    let (ext, _) = read_header(&r.body, ext_off);
    assert_eq!(int(&ext, "NAXIS2"), 25);
    assert_eq!(fetch(&folder).status, 200);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let m: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&meter_file).unwrap()).unwrap();
    assert_eq!(m["requests"], 2);
    assert_eq!(m["full_requests"], 1);
    assert_eq!(m["bytes_sent_per_file"][CATALOG_FILE], r.body.len() as u64);
    let _ = fs_err::remove_dir_all(&dir);
}

/// Started in the background (`etd-emulator atlas-var &`), stdin is closed at once: the emulator
/// keeps serving until SIGINT or SIGTERM, then writes the meter and exits 0.
#[test]
fn binary_with_closed_stdin_serves_until_a_signal() {
    use std::process::{Command, Stdio};
    for signal in ["INT", "TERM"] {
        let dir = std::env::temp_dir().join(format!("etd-atlas-var-signal-test-{}-{signal}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let meter_file = dir.join("meter.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_etd-emulator"))
            .args(["atlas-var", "--addr", "127.0.0.1:0", "--objects", "5", "--meter-file"])
            .arg(&meter_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Read both URL lines and keep stdout open: a closed pipe would fail the emulator's print.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut catalog, mut folder) = (String::new(), String::new());
        out.read_line(&mut catalog).unwrap();
        out.read_line(&mut folder).unwrap();
        // Give an emulator that stopped on the closed stdin the time to exit.
        std::thread::sleep(std::time::Duration::from_millis(300));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("SIG{signal}: the emulator exited ({status}) on a closed stdin");
        }
        assert_eq!(fetch(catalog.trim_end()).status, 200);
        let kill = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "SIG{signal}: {status}");
        let m: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&meter_file).unwrap()).unwrap();
        assert_eq!(m["requests"], 1, "SIG{signal}");
        drop(out);
        let _ = fs_err::remove_dir_all(&dir);
    }
}
