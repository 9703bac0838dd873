mod common;

use common::*;
use etd_emulators::ps1::{self, Faults, Ps1Emulator};
use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const RA: f64 = 150.1;
const DEC: f64 = 2.2;

fn emu() -> Ps1Emulator {
    Ps1Emulator::start(Faults::default()).unwrap()
}

/// Stack file names for a position, taken from the emulator's own ps1filenames answer.
fn stack_files(base: &str, ra: f64, dec: f64, filters: &str) -> Vec<String> {
    let r = get(base, &format!("/cgi-bin/ps1filenames.py?ra={ra}&dec={dec}&filters={filters}"));
    assert_eq!(r.status, 200);
    table_rows(&r.text()).into_iter().map(|row| row[7].clone()).collect()
}

fn fitscut(base: &str, red: &str, extra: &str) -> Resp {
    get(base, &format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}{extra}", enc(red)))
}

#[test]
fn strict_requests_are_refused() {
    etd_emulators::require_fixtures!();
    let e = emu();
    let base = e.base_url();
    let red = &stack_files(&base, RA, DEC, "r")[0];
    let other = &stack_files(&base, 10.0, 40.0, "r")[0];
    let bad = [
        "/cgi-bin/ps1filenames.py?dec=10".to_string(),
        "/cgi-bin/ps1filenames.py?ra=10".to_string(),
        "/cgi-bin/ps1filenames.py?ra=360&dec=10".into(),
        "/cgi-bin/ps1filenames.py?ra=-1&dec=10".into(),
        "/cgi-bin/ps1filenames.py?ra=10&dec=91".into(),
        "/cgi-bin/ps1filenames.py?ra=nan&dec=10".into(),
        "/cgi-bin/ps1filenames.py?ra=inf&dec=10".into(),
        "/cgi-bin/ps1filenames.py?ra=1O&dec=10".into(),
        "/cgi-bin/ps1filenames.py?ra=10&dec=10&filters=rgbi".into(),
        "/cgi-bin/ps1filenames.py?ra=10&dec=10&filters=".into(),
        "/cgi-bin/ps1filenames.py?ra=10&dec=10&type=stack.psf".into(),
        "/cgi-bin/ps1filenames.py?ra=10&dec=10&type=stack,bogus".into(),
        "/cgi-bin/ps1filenames.py?skycell=1268.0".into(),
        "/cgi-bin/fitscut.cgi?ra=150.1&dec=2.2&size=240&format=fits".into(),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&format=fits", enc("/rings.v3.skycell/9999/000/x.fits")),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&format=fits", enc(other)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&size=0&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&size=6001&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&size=24x&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&format=gif", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec=abc&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&x={RA}&y={DEC}&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&green={}", enc(red), enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={0}&green={0}&blue={0}&ra={RA}&dec={DEC}&format=fits", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&autoscale=abc", enc(red)),
        format!("/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&asinh=maybe", enc(red)),
    ];
    for target in &bad {
        let r = get(&base, target);
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        assert!(!r.body.is_empty());
    }
    assert_eq!(get(&base, "/cgi-bin/ps1cutouts?pos=10+10").status, 404);
    assert_eq!(get(&base, "/").status, 404);
    assert_eq!(get(&base, "/rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.stk.r.unconv.fits").status, 404);
    // Accepted variants: x/y with wcs=1, upper-case parameter names, unknown parameters ignored.
    let ok =
        get(&base, &format!("/cgi-bin/fitscut.cgi?RED={}&x={RA}&y={DEC}&wcs=1&size=20&FORMAT=fits&foo=1", enc(red)));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let m = e.meter();
    assert_eq!(m.status_counts[&400], bad.len() as u64);
    assert_eq!(m.status_counts[&404], 3);
}

#[test]
fn filenames_table() {
    etd_emulators::require_fixtures!();
    let e = emu();
    let base = e.base_url();
    let r = get(&base, "/cgi-bin/ps1filenames.py?ra=150.10&dec=2.2&filters=gri&type=stack");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let rows = table_rows(&r.text());
    assert_eq!(rows.len(), 3);
    let (p, s): (u32, u32) = (rows[0][0].parse().unwrap(), rows[0][1].parse().unwrap());
    assert!((635..=2643).contains(&p) && s < 100);
    for (row, band) in rows.iter().zip(["g", "r", "i"]) {
        assert_eq!(row.len(), 10);
        assert_eq!(&row[2..7], &["150.1", "2.2", band, "0.0", "stack"]);
        assert_eq!(
            row[7],
            format!("/rings.v3.skycell/{p:04}/{s:03}/rings.v3.skycell.{p:04}.{s:03}.stk.{band}.unconv.fits")
        );
        assert_eq!(row[8], row[7].rsplit('/').next().unwrap());
        assert_eq!(row[9], "0");
    }
    // Comma-separated filters give the same table; the default is grizy / stack.
    let r2 = get(&base, "/cgi-bin/ps1filenames.py?ra=150.10&dec=2.2&filters=g,r,i");
    assert_eq!(r2.body, r.body);
    let all = table_rows(&get(&base, "/cgi-bin/ps1filenames.py?ra=150.1&dec=2.2").text());
    assert_eq!(all.iter().map(|r| r[4].as_str()).collect::<Vec<_>>(), ["g", "r", "i", "z", "y"]);
    // Warps and auxiliary types.
    let w = table_rows(&get(&base, "/cgi-bin/ps1filenames.py?ra=150.1&dec=2.2&filters=r&type=warp,stack.wt").text());
    let warps: Vec<_> = w.iter().filter(|r| r[6] == "warp").collect();
    assert!((2..=5).contains(&warps.len()));
    for row in &warps {
        let mjd: f64 = row[5].parse().unwrap();
        assert!(mjd > 55000.0 && mjd < 57100.0);
        let day = mjd.trunc() as u64;
        let frac = ((mjd.fract() * 1e5) + 1e-7).floor() as u64;
        assert!(row[8].ends_with(&format!(".wrp.r.{day}_{frac:05}.fits")), "{row:?}");
    }
    assert!(w.iter().any(|r| r[6] == "stack.wt" && r[8].ends_with(".stk.r.unconv.wt.fits") && r[5] == "0.0"));
    // Every listed file can be cut out.
    for row in &w {
        let c = get(&base, &format!("/cgi-bin/fitscut.cgi?red={}&ra=150.1&dec=2.2&size=16&format=fits", enc(&row[7])));
        assert_eq!(c.status, 200, "{}", row[7]);
    }
    // No coverage south of -30: header only.
    let south = get(&base, "/cgi-bin/ps1filenames.py?ra=10&dec=-45");
    assert_eq!(south.status, 200);
    assert_eq!(south.text(), "projcell subcell ra dec filter mjd type filename shortname badflag\n");
    // Skycell queries (either case) give the skycell centre.
    let sc = format!("{p:04}.{s:03}");
    let a = get(&base, &format!("/cgi-bin/ps1filenames.py?skycell={sc}&filters=r"));
    let b = get(&base, &format!("/cgi-bin/ps1filenames.py?SKYCELL={sc}&filters=r"));
    assert_eq!(a.body, b.body);
    let rows = table_rows(&a.text());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][7], all[1][7]);
    let (cra, cdec): (f64, f64) = (rows[0][2].parse().unwrap(), rows[0][3].parse().unwrap());
    assert!((cra - RA).abs() < 0.5 && (cdec - DEC).abs() < 0.5);
    // A HEAD request gets the headers only.
    let mut c = connect(&base);
    c.get_mut().write_all(b"HEAD /cgi-bin/ps1filenames.py?ra=150.1&dec=2.2 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        head.push(b[0] as char);
    }
    assert!(head.starts_with("HTTP/1.1 200"));
}

#[test]
fn filenames_bulk_post() {
    etd_emulators::require_fixtures!();
    let e = emu();
    let base = e.base_url();
    let (ctype, body) = multipart(&[("filters", "gr"), ("type", "stack")], "150.1 2.2\n10.0 -45.0\n\n10.5 40.25\n");
    let mut raw = format!(
        "POST /cgi-bin/ps1filenames.py HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = send_raw(&base, &raw).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = table_rows(&r.text());
    let got: Vec<_> = rows.iter().map(|r| (r[2].as_str(), r[3].as_str(), r[4].as_str())).collect();
    assert_eq!(got, [("150.1", "2.2", "g"), ("150.1", "2.2", "r"), ("10.5", "40.25", "g"), ("10.5", "40.25", "r")]);
    let single = table_rows(&get(&base, "/cgi-bin/ps1filenames.py?ra=10.5&dec=40.25&filters=gr").text());
    assert_eq!(rows[2..], single[..]);

    // The same upload with chunked transfer coding and Expect: 100-continue.
    let mut raw = format!(
        "POST /cgi-bin/ps1filenames.py HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(37) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut c = connect(&base);
    c.get_mut().write_all(&raw).unwrap();
    let cont = read_response(&mut c).unwrap();
    assert_eq!(cont.status, 100);
    let r2 = read_response(&mut c).unwrap();
    assert_eq!(r2.body, r.body);

    // A bad line is refused.
    let (ctype, body) = multipart(&[], "150.1 2.2\nabc def\n");
    let mut raw = format!(
        "POST /cgi-bin/ps1filenames.py HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    assert_eq!(send_raw(&base, &raw).unwrap().status, 400);
}

/// Header cards and big-endian float32 data of a single-HDU FITS file.
fn parse_fits(bytes: &[u8]) -> (Vec<String>, Vec<f32>) {
    assert_eq!(bytes.len() % 2880, 0);
    let mut cards = Vec::new();
    let mut off = 0;
    loop {
        let c = std::str::from_utf8(&bytes[off..off + 80]).unwrap().to_string();
        off += 80;
        if c.starts_with("END ") {
            break;
        }
        cards.push(c);
    }
    assert!(bytes[off..off.div_ceil(2880) * 2880].iter().all(|&b| b == b' '));
    let start = off.div_ceil(2880) * 2880;
    let value = |k: &str| -> String {
        let c = cards.iter().find(|c| c.starts_with(&format!("{k:<8}="))).unwrap();
        c[10..].split(" / ").next().unwrap().trim().to_string()
    };
    assert_eq!(value("BITPIX"), "-32");
    let n = value("NAXIS1").parse::<usize>().unwrap() * value("NAXIS2").parse::<usize>().unwrap();
    let data: Vec<f32> =
        bytes[start..start + 4 * n].chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert!(bytes[start + 4 * n..].iter().all(|&b| b == 0));
    (cards, data)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn card<'a>(cards: &'a [String], prefix: &str) -> &'a str {
    cards.iter().find(|c| c.starts_with(prefix)).unwrap_or_else(|| panic!("no card {prefix}")).trim_end()
}

#[test]
fn fits_cutout() {
    etd_emulators::require_fixtures!();
    let e = emu();
    let base = e.base_url();
    let files = stack_files(&base, RA, DEC, "gr");
    let r = fitscut(&base, &files[1], "&size=240&format=fits&imagename=cutout_x.fits");
    assert_eq!(r.status, 200);
    assert!(matches!(r.header("content-type"), Some("image/fits" | "application/fits")));
    assert_eq!(r.header("content-length").unwrap(), r.body.len().to_string());
    let (cards, data) = parse_fits(&r.body);
    assert_eq!(card(&cards, "SIMPLE"), "SIMPLE  =                    T / file does conform to FITS standard");
    assert_eq!(card(&cards, "NAXIS1"), "NAXIS1  =                  240 / length of data axis 1");
    assert_eq!(card(&cards, "NAXIS2"), "NAXIS2  =                  240 / length of data axis 2");
    assert_eq!(card(&cards, "CRVAL1"), "CRVAL1  =                150.1");
    assert_eq!(card(&cards, "CRVAL2"), "CRVAL2  =                  2.2");
    assert_eq!(card(&cards, "CRPIX1"), "CRPIX1  =                120.5 / Reference pixel shifted for cutout");
    assert_eq!(card(&cards, "CTYPE1"), "CTYPE1  = 'RA---TAN'");
    assert_eq!(card(&cards, "CDELT1"), "CDELT1  = 6.94444461259988E-05");
    assert_eq!(
        card(&cards, "HIERARCH FPA.FILTER ="),
        "HIERARCH FPA.FILTER = 'r.00000 ' / Filter used (instrument name)"
    );
    assert_eq!(card(&cards, "RADESYS"), "RADESYS = 'FK5     '           / added by fitscut");
    assert_eq!(card(&cards, "TIMESYS"), "TIMESYS = 'TAI     '           / added by fitscut");
    assert_eq!(card(&cards, "EXPTIME"), "EXPTIME =                 572. / Exposure time (sec)");
    assert!(!cards.iter().any(|c| c.starts_with("BSOFTEN") || c.starts_with("BZERO") || c.starts_with("BSCALE")));
    let (px, h, w) = ps1::cutout_pixels(&files[1], RA, DEC, 240).unwrap();
    assert_eq!((h, w), (240, 240));
    assert!(same_bits(&px, &data));
    assert!(data.iter().filter(|v| v.is_finite()).count() > 50_000);

    // The g band has its own filter card and different pixels on the same grid.
    let g = fitscut(&base, &files[0], "&size=240&format=fits");
    let (gcards, gdata) = parse_fits(&g.body);
    assert_eq!(
        card(&gcards, "HIERARCH FPA.FILTER ="),
        "HIERARCH FPA.FILTER = 'g.00000 ' / Filter used (instrument name)"
    );
    assert!(!same_bits(&gdata, &data));
    // Repeatable.
    assert_eq!(fitscut(&base, &files[1], "&size=240&format=fits").body, r.body);

    // Larger than the fixture: off-cell pixels are NaN; still a valid answer.
    let big = fitscut(&base, &files[1], "&size=1000&format=fits");
    assert_eq!(big.status, 200);
    let (bcards, bdata) = parse_fits(&big.body);
    assert_eq!(card(&bcards, "NAXIS1"), "NAXIS1  =                 1000 / length of data axis 1");
    assert!(bdata[0].is_nan() && bdata[999].is_nan() && bdata[999 * 1000].is_nan() && bdata[1_000_000 - 1].is_nan());
    assert!(bdata.iter().filter(|v| v.is_nan()).count() >= 1_000_000 - 700 * 700);
    let (bpx, _, _) = ps1::cutout_pixels(&files[1], RA, DEC, 1000).unwrap();
    assert!(same_bits(&bpx, &bdata));

    // The library refuses what the server refuses.
    assert!(ps1::cutout_pixels(&files[1], 10.0, 40.0, 240).is_err());
    assert!(ps1::cutout_pixels(&files[1], RA, DEC, 0).is_err());
    assert!(ps1::covers(RA, DEC) && !ps1::covers(RA, -30.5));
}

fn com_segment(jpeg: &[u8]) -> Option<String> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if marker == 0xFE {
            return Some(String::from_utf8_lossy(&jpeg[i + 4..i + 2 + len]).into_owned());
        }
        if marker == 0xDA {
            return None;
        }
        i += 2 + len;
    }
    None
}

#[test]
fn jpeg_and_png() {
    etd_emulators::require_fixtures!();
    let e = emu();
    let base = e.base_url();
    let files = stack_files(&base, RA, DEC, "grizy");
    // Default format is JPEG, default size 240.
    let j = fitscut(&base, &files[1], "");
    assert_eq!(j.status, 200);
    assert_eq!(j.header("content-type"), Some("image/jpeg"));
    assert_eq!(&j.body[2..4], &[0xFF, 0xFE], "COM right after SOI");
    let com = com_segment(&j.body).expect("COM segment");
    let lines: Vec<&str> = com.split('\n').collect();
    assert!(lines.iter().any(|l| l.starts_with("CTYPE1  = 'RA---TAN'")));
    assert!(lines.iter().any(|l| l.starts_with("NAXIS1  =") && l.ends_with(" 240")));
    let img = image::load_from_memory(&j.body).unwrap();
    assert_eq!((img.width(), img.height()), (240, 240));
    assert_eq!(img.color(), image::ColorType::L8);

    let small = fitscut(&base, &files[1], "&output_size=100&asinh=1&autoscale=99.75");
    let img = image::load_from_memory(&small.body).unwrap();
    assert_eq!((img.width(), img.height()), (100, 100));
    assert!(com_segment(&small.body).unwrap().contains("NAXIS1  =                  100"));
    let zoomed = fitscut(&base, &files[1], "&zoom=0.3&format=png");
    assert_eq!(image::load_from_memory(&zoomed.body).unwrap().width(), 80);

    // Colour: y, i, g as red, green, blue (STScI geturl ordering).
    let c = get(
        &base,
        &format!(
            "/cgi-bin/fitscut.cgi?ra={RA}&dec={DEC}&size=300&format=png&red={}&green={}&blue={}",
            enc(&files[4]),
            enc(&files[2]),
            enc(&files[0])
        ),
    );
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.header("content-type"), Some("image/png"));
    let img = image::load_from_memory(&c.body).unwrap();
    assert_eq!(img.color(), image::ColorType::Rgb8);
    assert_eq!((img.width(), img.height()), (300, 300));
    let rgb = img.to_rgb8();
    assert!(rgb.pixels().any(|p| p[0] != p[2]), "channels differ");
    // Grey PNG.
    let gp = fitscut(&base, &files[1], "&format=png");
    assert_eq!(image::load_from_memory(&gp.body).unwrap().color(), image::ColorType::L8);
}

#[test]
fn keep_alive_connection() {
    etd_emulators::require_fixtures!();
    let e = emu();
    let base = e.base_url();
    let mut c = connect(&base);
    for _ in 0..2 {
        c.get_mut()
            .write_all(b"GET /cgi-bin/ps1filenames.py?ra=150.1&dec=2.2&filters=r HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(table_rows(&r.text()).len(), 1);
    }
    // Two pipelined requests, the second asking to close.
    c.get_mut()
        .write_all(
            b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /cgi-bin/ps1filenames.py?ra=1&dec=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 404);
    let last = read_response(&mut c).unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(e.meter().requests, 4);
}

fn fault_emu(f: Faults) -> (Ps1Emulator, String, String) {
    let e = Ps1Emulator::start(f).unwrap();
    let base = e.base_url();
    let target = format!(
        "/cgi-bin/fitscut.cgi?red={}&ra={RA}&dec={DEC}&size=64&format=fits",
        enc(&ps1::stack_filenames(RA, DEC, "r")[0])
    );
    (e, base, target)
}

#[test]
fn fault_429_then_retry() {
    etd_emulators::require_fixtures!();
    let (e, base, target) = fault_emu(Faults { every_nth_429: Some((1, 2)), ..Faults::default() });
    let r = get(&base, &target);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    // A client that ignores Retry-After is seen doing so.
    std::thread::sleep(Duration::from_millis(200));
    let r2 = get(&base, &target);
    assert_eq!(r2.status, 200);
    let m = e.meter();
    assert_eq!(m.throttles.len(), 1);
    assert_eq!(m.throttles[0].1, 2000.0);
    assert_eq!(m.requests_during_retry_after, 1);
    assert_eq!(m.status_counts[&429], 1);
    assert_eq!(m.status_counts[&200], 1);
}

#[test]
fn fault_503_then_retry() {
    etd_emulators::require_fixtures!();
    let (e, base, target) = fault_emu(Faults { every_nth_503: Some(1), ..Faults::default() });
    assert_eq!(get(&base, &target).status, 503);
    assert_eq!(get(&base, &target).status, 200);
    // Another URL fails once too.
    let t2 = target.replace("size=64", "size=65");
    assert_eq!(get(&base, &t2).status, 503);
    assert_eq!(get(&base, &t2).status, 200);
    assert_eq!(e.meter().status_counts[&503], 2);
}

#[test]
fn fault_reset_then_retry() {
    etd_emulators::require_fixtures!();
    let (e, base, target) = fault_emu(Faults { every_nth_reset: Some(1), ..Faults::default() });
    assert!(try_get(&base, &target).is_err());
    assert_eq!(get(&base, &target).status, 200);
    assert_eq!(e.meter().requests, 2);
}

#[test]
fn fault_truncate_then_retry() {
    etd_emulators::require_fixtures!();
    let (_e, base, target) = fault_emu(Faults { every_nth_truncate: Some(1), ..Faults::default() });
    let mut c = connect(&base);
    c.get_mut().write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    let err = read_response(&mut c).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    let ok = get(&base, &target);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.len(), 2880 * (ok.body.len() / 2880));
}

#[test]
fn fault_slow_then_retry() {
    etd_emulators::require_fixtures!();
    let (_e, base, target) =
        fault_emu(Faults { every_nth_slow: Some((1, Duration::from_millis(700))), ..Faults::default() });
    let t = std::time::Instant::now();
    assert_eq!(get(&base, &target).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(700));
    let t = std::time::Instant::now();
    assert_eq!(get(&base, &target).status, 200);
    assert!(t.elapsed() < Duration::from_millis(650));
}

#[test]
fn faults_pick_a_stable_subset() {
    etd_emulators::require_fixtures!();
    let f = Faults { every_nth_503: Some(3), ..Faults::default() };
    let run = |order: &[usize]| -> Vec<usize> {
        let e = Ps1Emulator::start(f.clone()).unwrap();
        let base = e.base_url();
        let mut failed: Vec<usize> = order
            .iter()
            .copied()
            .filter(|i| get(&base, &format!("/cgi-bin/ps1filenames.py?ra={i}&dec=10&filters=r")).status == 503)
            .collect();
        for i in order {
            assert_eq!(get(&base, &format!("/cgi-bin/ps1filenames.py?ra={i}&dec=10&filters=r")).status, 200);
        }
        failed.sort_unstable();
        failed
    };
    let forward: Vec<usize> = (0..30).collect();
    let backward: Vec<usize> = (0..30).rev().collect();
    let a = run(&forward);
    assert!(!a.is_empty() && a.len() < 30, "{a:?}");
    assert_eq!(a, run(&backward));
}

#[test]
fn meter_sees_parallel_clients() {
    etd_emulators::require_fixtures!();
    let e = Ps1Emulator::start(Faults { latency: Duration::from_millis(500), ..Faults::default() }).unwrap();
    let base = e.base_url();
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (b, base) = (barrier.clone(), base.clone());
            std::thread::spawn(move || {
                b.wait();
                try_get_ua(&base, &format!("/cgi-bin/ps1filenames.py?ra={i}&dec=5"), &format!("client/{}", i % 2))
                    .unwrap()
                    .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let m = e.meter();
    assert_eq!(m.requests, 6);
    assert_eq!(m.peak_inflight, 6);
    assert_eq!(m.by_endpoint["ps1filenames"], 6);
    assert_eq!(m.arrivals_ms.len(), 6);
    assert!(m.arrivals_ms.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(m.max_starts_in_any_1s, 6);
    assert_eq!(m.user_agents.iter().cloned().collect::<Vec<_>>(), ["client/0", "client/1"]);
    assert_eq!(m.over_limit, 0);
    // The meter serialises to JSON.
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["peak_inflight"], 6);
    // A server thread may still be finishing its last answer (its in-flight count drops after
    // the write the client already read), and a reset keeps requests still in flight: wait.
    for _ in 0..200 {
        e.reset_meter();
        if e.meter().peak_inflight == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(e.meter().requests, 0);
    assert_eq!(e.meter().peak_inflight, 0);
}

#[test]
fn max_inflight_refuses_extra_requests() {
    etd_emulators::require_fixtures!();
    let e =
        Ps1Emulator::start(Faults { latency: Duration::from_millis(500), max_inflight: Some(2), ..Faults::default() })
            .unwrap();
    let base = e.base_url();
    let barrier = Arc::new(Barrier::new(5));
    let handles: Vec<_> = (0..5)
        .map(|i| {
            let (b, base) = (barrier.clone(), base.clone());
            std::thread::spawn(move || {
                b.wait();
                get(&base, &format!("/cgi-bin/ps1filenames.py?ra={i}&dec=5")).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503, 503]);
    let m = e.meter();
    assert_eq!(m.over_limit, 3);
    assert_eq!(m.status_counts[&503], 3);
    e.set_faults(Faults::default());
    assert_eq!(get(&base, "/cgi-bin/ps1filenames.py?ra=1&dec=5").status, 200);
}

#[test]
fn binary_with_exit_on_stdin_eof_serves_until_stdin_closes() {
    etd_emulators::require_fixtures!();
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("etd-emulator-test-{}", std::process::id()));
    fs_err::create_dir_all(&dir).unwrap();
    let meter_file = dir.join("meter.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etd-emulator"))
        .args(["ps1", "--exit-on-stdin-eof", "--addr", "127.0.0.1:0", "--latency-ms", "5", "--meter-file"])
        .arg(&meter_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim_end().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(get(&base, "/cgi-bin/ps1filenames.py?ra=1&dec=1&filters=r").status, 200);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let m: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&meter_file).unwrap()).unwrap();
    assert_eq!(m["requests"], 1);
    assert_eq!(m["by_endpoint"]["ps1filenames"], 1);
    let _ = fs_err::remove_dir_all(&dir);
}
