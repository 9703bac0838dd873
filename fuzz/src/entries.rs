//! One entry function per parser of outside input, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`, run with `cargo fuzz`) and the stable smoke test of the normal suite
//! (`tests/it/fuzz.rs`, which includes this file). Each entry takes arbitrary bytes and drives the
//! parser the way etd does with an archive's answer or a user's file; a panic, a hang or runaway
//! memory is a bug. Parsers that read a file are given one in a per-thread scratch folder.
//!
//! Seeds are written here (`seeds`) or read at run time from the repository (`recipes/`) and the
//! shared fixtures folder (`$ETD_FIXTURES`, else `../shared/fixtures` beside the checkout): no
//! archive file is copied into the repository.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use fs_err as fs;

use etd::shard::manifest::{Manifest, ShardEntry, SplitEntry, FORMAT, MANIFEST_NAME};
use etd::shard::Compression;
use etd::sources::atlas_var::group::{self, PartitionFile, Selection};
use etd::sources::atlas_var::{catalog, partitions, AtlasVarConfig};
use etd::transform::image::{self, ImageOutput, ImageTransform, NanPolicy, Provenance};
use etd::transform::lightcurve::{self, LightCurveMeta, LightCurveOutputs, Quality};
use etd::transform::scale::Scale;

/// An entry: (name, function).
pub type Entry = (&'static str, fn(&[u8]));

/// Every fuzz target, by name (the file name under `fuzz/fuzz_targets/`).
pub const TARGETS: &[Entry] = &[
    ("recipe_yaml", recipe_yaml),
    ("targets_csv", targets_csv),
    ("ps1_table", ps1_table),
    ("atlas_fp_result", atlas_fp_result),
    ("atlas_fp_task_json", atlas_fp_task_json),
    ("atlas_var_rows", atlas_var_rows),
    ("atlas_var_catalog", atlas_var_catalog),
    ("fits_image", fits_image),
    ("listing_html", listing_html),
    ("listing_webdav", listing_webdav),
    ("manifest_json", manifest_json),
    ("shard_tar", shard_tar),
    ("shard_zstd", shard_zstd),
];

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// A folder of this thread's own, kept for the life of the thread (one per fuzzing process).
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            // /dev/shm when there is one: the file-based targets write every input.
            let base = Path::new("/dev/shm");
            let dir = if base.is_dir() {
                tempfile::Builder::new().prefix("etd-fuzz-").tempdir_in(base)
            } else {
                Err(std::io::Error::other("no /dev/shm"))
            };
            let dir =
                dir.or_else(|_| tempfile::Builder::new().prefix("etd-fuzz-").tempdir()).expect("a scratch folder");
            *s = Some(dir);
        }
        s.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default()
    })
}

fn put(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).expect("writing a scratch file");
}

/// A targets file the recipe targets name, so recipe inputs get past `targets:`.
const TARGETS_CSV: &str = "id,ra,dec,label\nm51,202.4696,47.1952,spiral\nm87,187.7059,12.3911,elliptical\n";

/// The recipe YAML: the file a user writes, loaded as `etd check` does (parse, locate, resolve,
/// read its targets file).
pub fn recipe_yaml(data: &[u8]) {
    let dir = scratch().join("recipe");
    let targets = dir.join("targets");
    if !targets.is_dir() {
        fs::create_dir_all(&targets).expect("scratch folder");
        for name in ["galaxies.csv", "transients.csv", "targets.csv"] {
            put(&targets.join(name), TARGETS_CSV.as_bytes());
        }
        put(&dir.join("targets.csv"), TARGETS_CSV.as_bytes());
    }
    let path = dir.join("recipe.yaml");
    put(&path, data);
    if let Err(e) = etd::recipe::load(&path) {
        let _ = e.to_string();
    }
}

/// Recipes that read the fuzzed targets file, one per kind of `targets:` section.
const TARGETS_RECIPES: [&str; 3] = [
    "version: 1\nname: fz\ntargets:\n  file: t.csv\n  columns: {id: objid, ra: ra, dec: dec, label: class}\n\
     source:\n  ps1-cutouts: {filters: [g], size: 64}\n",
    "version: 1\nname: fz\ntargets: t.csv\nsource:\n  ps1-cutouts: {filters: [g, r], size: 64}\n",
    "version: 1\nname: fz\ntargets: {file: t.csv}\nsource:\n  atlas-fp: {}\nshard: {split: {train: 0.5, val: 0.5}}\n",
];

/// The targets CSV: the first byte picks a recipe that names it, the rest is the file.
pub fn targets_csv(data: &[u8]) {
    let Some((&pick, csv)) = data.split_first() else { return };
    let dir = scratch().join("targets");
    fs::create_dir_all(&dir).expect("scratch folder");
    let recipe = dir.join("recipe.yaml");
    put(&recipe, TARGETS_RECIPES[pick as usize % TARGETS_RECIPES.len()].as_bytes());
    put(&dir.join("t.csv"), csv);
    if let Err(e) = etd::recipe::load(&recipe) {
        let _ = e.to_string();
    }
}

/// The PS1 `ps1filenames.py` table, read as the PS1 fetch reads it.
pub fn ps1_table(data: &[u8]) {
    if let Ok(rows) = etd::sources::ps1::table::parse(&String::from_utf8_lossy(data)) {
        let _ = rows.len();
    }
}

/// An ATLAS forced-photometry result file: parsed at fetch, then made into fields at shard time.
pub fn atlas_fp_result(data: &[u8]) {
    if lightcurve::parse_bytes(data).is_err() {
        return;
    }
    let outputs = LightCurveOutputs { npy: true, json: true, txt: false };
    let meta = LightCurveMeta {
        target: serde_json::json!({"id": "fz", "ra": 1.0, "dec": 2.0}),
        task_url: None,
        result_url: None,
        sha256: "0",
        use_reduced: false,
    };
    for quality in [Quality::All, Quality::FaqCuts] {
        let fields =
            lightcurve::lightcurve_fields(data, quality, outputs, &meta).expect("a parsed result makes fields");
        assert!(!fields.is_empty());
    }
}

/// The ATLAS task JSON: the answer to a submission (one task or a list) and to a poll.
pub fn atlas_fp_task_json(data: &[u8]) {
    for t in etd::sources::atlas_fp::fetch::submitted_tasks(data) {
        let _ = url::Url::parse(&t.url);
    }
    if let Ok(t) = serde_json::from_slice::<etd::sources::atlas_fp::fetch::Task>(data) {
        let _ = (t.finishtimestamp.is_some(), t.error_msg.map(|e| e.trim().to_string()), t.result_url);
    }
}

/// ATLAS-VAR light-curve rows: the bytes are a partition CSV file, grouped by object as at shard
/// time (tiny memory budget, so runs spill and merge), then every object's rows made into `npy`.
pub fn atlas_var_rows(data: &[u8]) {
    let dir = scratch().join("rows");
    let work = dir.join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).expect("scratch folder");
    let path = dir.join("atlas_lc_dr1_0-10.csv");
    put(&path, data);
    let ids: Vec<String> = ["A", "B", "1", "ATO J000.0000+00.0000", ""].iter().map(|s| s.to_string()).collect();
    let selection = Selection::new(&ids);
    let parts = [PartitionFile { path, name: "atlas_lc_dr1_0-10.csv".into(), size: data.len() as u64 }];
    let Ok((grouped, _report)) = group::group(&selection, &parts, 1, &work) else { return };
    for i in 0..ids.len() {
        let rows = grouped.rows(i).expect("grouped rows read back");
        group::npy(&rows).expect("rows make an npy");
    }
}

/// The ATLAS-VAR object catalog, a FITS binary table read with cfitsio.
pub fn atlas_var_catalog(data: &[u8]) {
    let dir = scratch().join("catalog");
    fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join("catalog.fits");
    put(&path, data);
    let url = url::Url::parse("file:///nowhere/catalog.fits").expect("a URL");
    let cfg = AtlasVarConfig {
        catalog_url: url.clone(),
        lightcurves_url: url,
        classes: vec!["MIRA".into(), "PULSE".into(), "CBF".into()],
        min_probability: Some(0.5),
        region: Some(((0.0, 360.0), (-90.0, 90.0))),
        sample: None,
        limit: Some(1000),
        memory: 1 << 20,
    };
    if let Ok(objects) = catalog::read(&path, &cfg) {
        for o in &objects {
            let _ = (o.class_index(), o.own_probability(), serde_json::to_vec(o));
        }
    }
}

/// A FITS image (a PS1 cutout, a local file): the structure check, cfitsio's header and pixels,
/// then every output field.
pub fn fits_image(data: &[u8]) {
    let cfg = ImageTransform {
        stack_filters: false,
        nan: NanPolicy::Zero,
        scale: [Scale::None, Scale::Asinh, Scale::Zscale, Scale::Minmax][data.len() % 4],
        outputs: vec![ImageOutput::Npy, ImageOutput::Json, ImageOutput::Fits, ImageOutput::Png],
    };
    let prov = Provenance { id: "fz", inputs: &[] };
    let _ = image::fits_fields(data, &cfg, &prov);
    let pass = ImageTransform { outputs: vec![ImageOutput::Fits], ..cfg };
    let _ = image::fits_fields(data, &pass, &prov);
}

/// The HTML index page of the ATLAS-VAR light-curve folder.
pub fn listing_html(data: &[u8]) {
    let parts = partitions::from_index(&String::from_utf8_lossy(data));
    let _ = partitions::needed(&parts, [0.0, -30.5, 89.9]);
}

/// A WebDAV `PROPFIND` answer (ATLAS-VAR folder on an OSDF/XRootD origin) and the `Digest`
/// header of a publish origin.
pub fn listing_webdav(data: &[u8]) {
    if let Ok(parts) = partitions::from_multistatus(data) {
        let _ = partitions::needed(&parts, [0.0, -30.5, 89.9]);
    }
    let mut reported = etd::publish::https::Reported::default();
    etd::publish::https::parse_digest(&String::from_utf8_lossy(data), &mut reported);
}

/// A small valid shard: two samples.
fn little_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("s0001.cls", &b"1"[..]),
        ("s0001.json", &b"{\"id\":\"s0001\"}\n"[..]),
        ("s0002.cls", &b"0"[..]),
        ("s0002.txt", &b"hello"[..]),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("tar in memory");
    }
    b.into_inner().expect("tar in memory")
}

/// `manifest.json` of a shard folder: read by `verify` (with one real shard beside it) and by
/// `publish` (which lists what to upload).
pub fn manifest_json(data: &[u8]) {
    let dir = scratch().join("manifest");
    if !dir.is_dir() {
        fs::create_dir_all(&dir).expect("scratch folder");
        put(&dir.join("fz-train-000000.tar"), &little_tar());
    }
    put(&dir.join(MANIFEST_NAME), data);
    if let Ok(report) = etd::shard::verify::verify_path(&dir) {
        let _ = etd::shard::verify::render_verify_text(&report);
    }
    let _ = etd::publish::items(&dir);
}

/// The manifest etd would write for `shard` (one shard of `samples` samples).
fn manifest_for(name: &str, shard: &[u8], samples: u64, zstd: bool) -> Vec<u8> {
    let d = etd::publish::digest_bytes(shard).expect("digests in memory");
    let mut splits = indexmap::IndexMap::new();
    splits.insert("train".to_string(), SplitEntry { samples, shards: 1, url: Some(name.to_string()) });
    let m = Manifest {
        format: FORMAT.into(),
        etd_version: etd::VERSION.into(),
        name: "fz".into(),
        recipe_sha256: "0".repeat(64),
        compression: if zstd { "zstd" } else { "none" }.into(),
        samples,
        splits,
        shards: vec![ShardEntry {
            name: name.into(),
            split: "train".into(),
            samples,
            bytes: d.size,
            sha256: d.sha256,
            // With and without md5, as `shard.md5` writes them.
            md5: d.md5.filter(|_| zstd),
            crc32c: d.crc32c,
        }],
        fields: [("cls", "class"), ("json", "metadata"), ("txt", "text"), ("npy", "array")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        classes: Some(vec!["a".into(), "b".into()]),
    };
    m.to_bytes()
}

/// Verify and inspect a shard file `name` holding `bytes`, with a manifest that matches it.
fn check_shard(sub: &str, name: &str, bytes: &[u8], zstd: bool) {
    let dir = scratch().join(sub);
    fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join(name);
    put(&path, bytes);
    let compression = if zstd { Compression::Zstd } else { Compression::None };
    let mut members = 0u64;
    let scanned = etd::shard::read::scan_stream(bytes, compression, name, |_, data| {
        members += 1;
        std::io::copy(data, &mut std::io::sink())?;
        Ok(())
    });
    let samples = scanned.map(|s| s.samples).unwrap_or(0);
    if let Ok(report) = etd::shard::inspect::inspect_shard(&path) {
        let _ = etd::shard::inspect::render_inspect_text(&report);
    }
    put(&dir.join(MANIFEST_NAME), &manifest_for(name, bytes, samples, zstd));
    if let Ok(report) = etd::shard::verify::verify_path(&dir) {
        let _ = etd::shard::verify::render_verify_text(&report);
    }
}

/// A tar shard, as `verify` and `inspect` read it; the same tar compressed as `.tar.zst`.
pub fn shard_tar(data: &[u8]) {
    check_shard("tar", "fz-train-000000.tar", data, false);
    let z = zstd::bulk::compress(data, 1).expect("zstd in memory");
    check_shard("tarzst", "fz-train-000000.tar.zst", &z, true);
}

/// A `.tar.zst` shard's bytes as stored (broken frames, trailing data, a second frame).
pub fn shard_zstd(data: &[u8]) {
    check_shard("zst", "fz-train-000000.tar.zst", data, true);
}

// ---- seeds ---------------------------------------------------------------------------------

/// 80-character FITS header cards, padded to whole 2880-byte blocks.
fn fits_header(cards: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cards.iter().map(String::as_str).chain(["END"]) {
        let mut card = format!("{c:<80}");
        card.truncate(80);
        out.extend_from_slice(card.as_bytes());
    }
    out.resize(out.len().div_ceil(2880) * 2880, b' ');
    out
}

fn card(key: &str, value: &str) -> String {
    format!("{key:<8}= {value:>20}")
}

fn pad_data(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(2880) * 2880, 0);
}

/// A small float32 image, a 16-bit image with BZERO/BSCALE, and an image in an extension.
fn fits_seeds() -> Vec<Vec<u8>> {
    let mut f32_image = fits_header(&[
        card("SIMPLE", "T"),
        card("BITPIX", "-32"),
        card("NAXIS", "2"),
        card("NAXIS1", "6"),
        card("NAXIS2", "5"),
        card("EXPTIME", "30.0"),
        card("FILTER", "'r       '"),
        "HIERARCH FPA.ZP = 25.0".to_string(),
        card("RADESYS", "'ICRS    '"),
    ]);
    for i in 0..30 {
        let v = if i == 7 { f32::NAN } else { i as f32 * 1.5 - 3.0 };
        f32_image.extend_from_slice(&v.to_be_bytes());
    }
    pad_data(&mut f32_image);

    let mut i16_image = fits_header(&[
        card("SIMPLE", "T"),
        card("BITPIX", "16"),
        card("NAXIS", "3"),
        card("NAXIS1", "4"),
        card("NAXIS2", "4"),
        card("NAXIS3", "2"),
        card("BZERO", "32768"),
        card("BSCALE", "0.5"),
        card("BSOFTEN", "2.0"),
        card("BOFFSET", "1.0"),
    ]);
    for i in 0..32i16 {
        i16_image.extend_from_slice(&(i * 97 - 1000).to_be_bytes());
    }
    pad_data(&mut i16_image);

    let mut ext = fits_header(&[card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T")]);
    ext.extend(fits_header(&[
        card("XTENSION", "'IMAGE   '"),
        card("BITPIX", "-64"),
        card("NAXIS", "2"),
        card("NAXIS1", "3"),
        card("NAXIS2", "3"),
        card("PCOUNT", "0"),
        card("GCOUNT", "1"),
    ]));
    for i in 0..9 {
        ext.extend_from_slice(&(i as f64 / 7.0).to_be_bytes());
    }
    pad_data(&mut ext);
    vec![f32_image, i16_image, ext]
}

/// A real FITS file cut down at run time to a 4x4 image with its whole header (a fast seed: a
/// campaign's inputs are at most 64 KiB): every `NAXISn` card set to 4, the first pixels kept.
fn shrunk_fits(real: &[u8]) -> Option<Vec<u8>> {
    let mut header = Vec::new();
    let mut bitpix: usize = 0;
    let mut axes = 0u32;
    for card in real.chunks(80) {
        let key = std::str::from_utf8(card.get(..8)?).ok()?.trim_end();
        let value = || std::str::from_utf8(card.get(10..30)?).ok()?.trim().parse::<i64>().ok();
        let mut card = card.to_vec();
        if key == "BITPIX" {
            bitpix = value()?.unsigned_abs() as usize / 8;
        } else if key.starts_with("NAXIS") && key.len() > 5 {
            card[10..30].copy_from_slice(format!("{:>20}", 4).as_bytes());
            axes += 1;
        }
        header.extend_from_slice(&card);
        if key == "END" {
            break;
        }
    }
    header.resize(header.len().div_ceil(2880) * 2880, b' ');
    let data_len = bitpix * 4usize.pow(axes);
    let mut out = header.clone();
    out.extend_from_slice(real.get(header.len()..header.len() + data_len)?);
    pad_data(&mut out);
    Some(out)
}

/// A small ATLAS-VAR object table: the columns etd reads, a few objects of several classes.
fn catalog_seed() -> Vec<u8> {
    let mut out = fits_header(&[card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T")]);
    let cols: [(&str, &str, usize); 7] = [
        ("ATO_ID", "'24A     '", 24),
        ("ra", "'D       '", 8),
        ("dec", "'D       '", 8),
        ("CLASS", "'8A      '", 8),
        ("prob_MIRA", "'E       '", 4),
        ("prob_PULSE", "'E       '", 4),
        ("fp_period", "'E       '", 4),
    ];
    let row_bytes: usize = cols.iter().map(|c| c.2).sum();
    let rows = [
        ("ATO J000.1000+01.0000", 0.1, 1.0, "MIRA", 0.9f32, 0.05f32, 310.5f32),
        ("ATO J010.0000-20.5000", 10.0, -20.5, "PULSE", 0.1, 0.85, 0.61),
        ("ATO J200.0000+45.0000", 200.0, 45.0, "CBF", 0.0, 0.0, 1.2),
        ("ATO J300.0000-80.0000", 300.0, -80.0, "dubious", f32::NAN, 0.2, f32::NAN),
    ];
    let mut cards = vec![
        card("XTENSION", "'BINTABLE'"),
        card("BITPIX", "8"),
        card("NAXIS", "2"),
        card("NAXIS1", &row_bytes.to_string()),
        card("NAXIS2", &rows.len().to_string()),
        card("PCOUNT", "0"),
        card("GCOUNT", "1"),
        card("TFIELDS", &cols.len().to_string()),
    ];
    for (i, (name, form, _)) in cols.iter().enumerate() {
        cards.push(card(&format!("TTYPE{}", i + 1), &format!("'{name:<8}'")));
        cards.push(card(&format!("TFORM{}", i + 1), form));
    }
    out.extend(fits_header(&cards));
    for (id, ra, dec, class, p1, p2, period) in rows {
        out.extend_from_slice(format!("{id:<24}").as_bytes());
        out.extend_from_slice(&f64::to_be_bytes(ra));
        out.extend_from_slice(&f64::to_be_bytes(dec));
        out.extend_from_slice(format!("{class:<8}").as_bytes());
        for v in [p1, p2, period] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    pad_data(&mut out);
    out
}

/// A partition line: 36 fields, the ones etd reads filled in.
fn partition_line(id: &str, mjd: &str, filter: &str, m: &str) -> String {
    let mut f = vec!["0"; 36];
    f[0] = id;
    f[30] = mjd;
    f[31] = "0.010";
    f[32] = "-0.020";
    f[33] = filter;
    f[34] = m;
    f[35] = "0.050";
    f.join(",")
}

fn zstd_of(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).expect("zstd in memory")
}

fn t(out: &mut Vec<Vec<u8>>, s: &str) {
    out.push(s.as_bytes().to_vec());
}

/// Every regular file below `dir` (none when it is missing).
fn files_below(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            files_below(&p, out);
        } else if let Ok(bytes) = fs::read(&p) {
            out.push(bytes);
        }
    }
}

/// The shared fixtures folder: `$ETD_FIXTURES`, else `../shared/fixtures` beside the checkout.
pub fn fixtures_dir(repo: &Path) -> PathBuf {
    match std::env::var_os("ETD_FIXTURES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => repo.join("../shared/fixtures"),
    }
}

/// The seeds of `target`: written here, plus the repository's recipes and the real fixtures
/// read at run time (`repo` is the checkout). Fixtures that are missing are left out.
pub fn seeds(target: &str, repo: &Path) -> Vec<Vec<u8>> {
    let fixtures = fixtures_dir(repo);
    let mut out: Vec<Vec<u8>> = Vec::new();
    match target {
        "recipe_yaml" => {
            t(&mut out, "version: 1\nname: fz\ntargets: {file: targets.csv, columns: {id: id}}\nsource:\n  ps1-cutouts: {filters: [g, r, i], size: 240, format: fits}\ntransform:\n  image: {scale: zscale, outputs: [npy, png, json]}\nshard: {max_samples: 10, max_bytes: 1MB, compression: zstd, level: 19, split: {train: 0.8, val: 0.2}, seed: 3}\nfetch: {concurrency: 2, rate: 1/s, timeout: 30s}\n");
            t(&mut out, "version: 1\nname: fz\nsource:\n  atlas-var: {catalog_url: 'file:///c.fits', lightcurves_url: 'https://h.example/dr1/', classes: [MIRA], min_probability: 0.5, region: {ra: [0, 10], dec: [-5, 5]}, sample: {fraction: 0.5, seed: 1}, limit: 10, memory: 64MB}\npublish: {origin: 'https://o.example/data/', path: a/b}\n");
            t(&mut out, "version: 1\nname: fz\ntargets: targets.csv\nsource:\n  atlas-fp: {base_url: 'https://fallingstar-data.com/forcedphot/', mjd_min: 59000, use_reduced: true}\ntransform:\n  lightcurve: {quality: faq-cuts, outputs: [npy, json, txt]}\n");
            t(&mut out, "version: 1\nname: fz\nsource:\n  local: {dir: ., pattern: '**/*.fits'}\n");
            files_below(&repo.join("recipes"), &mut out);
            out.retain(|s| !s.starts_with(b"id,") && !s.starts_with(b"objid,"));
        }
        "targets_csv" => {
            t(&mut out, "\0objid,name,ra,dec,class\nngc1,A,10.5,-20.25,spiral\nngc2,B,359.9,89.9,elliptical\n");
            t(&mut out, "\x01id,ra,dec\na,1,2\nb,3,-4\n");
            t(&mut out, "\x02id,ra,dec,label\n\"a,1\",1e1,2.5,\"x y\"\nb, 3 , -4 ,\n");
            for name in ["galaxies.csv", "transients.csv"] {
                if let Ok(b) = fs::read(repo.join("recipes/targets").join(name)) {
                    out.push([&[0u8][..], &b].concat());
                    out.push([&[1u8][..], &b].concat());
                }
            }
        }
        "ps1_table" => {
            t(&mut out, "projcell subcell ra dec filter mjd type filename shortname badflag\n\
                  1268 0 83.633 22.0145 r 0 stack /rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.stk.r.unconv.fits rings.v3.skycell.1268.000.stk.r.unconv.fits 0\n\
                  1268 0 83.633 22.0145 g 0 stack /rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.stk.g.unconv.fits rings.v3.skycell.1268.000.stk.g.unconv.fits 0\n");
            t(&mut out, "projcell subcell ra dec filter mjd type filename shortname\n");
            t(&mut out, "projcell subcell ra dec filter mjd type filename shortname\n2000 41 10 -5 y 55000.5 warp /a/b.fits b.fits\n");
        }
        "atlas_fp_result" => {
            t(&mut out, "###MJD          m      dm   uJy   duJy F err chi/N     RA       Dec        x        y     maj  min   phi  apfit mag5sig Sky   Obs\n\
                  59000.1 17.5 0.05 350 12 o 0 1.1 10.0 -20.0 100.0 200.0 2.5 2.3 -60.0 -0.4 19.5 20.1 01a59000o0001o\n\
                  59001.2 -18.6 0.1 -130 10 c 0 0.8 10.0 -20.0 101.0 201.0 2.5 2.3 -61.0 -0.4 19.4 20.0 02a59001o0002c\n\
                  59002.3 nan nan 5 1000 o 1 nan 10.0 -20.0 nan nan nan nan nan nan nan nan 03a59002o0003o\n");
            files_below(&fixtures.join("atlas-fp"), &mut out);
        }
        "atlas_fp_task_json" => {
            t(
                &mut out,
                r#"{"url":"https://fallingstar-data.com/forcedphot/queue/1/","ra":10.5,"dec":-20.25,"mjd_min":59000.0,"starttimestamp":"2024-01-01T00:00:00Z","finishtimestamp":"2024-01-01T00:05:00Z","result_url":"https://fallingstar-data.com/forcedphot/static/results/job00001.txt","error_msg":null}"#,
            );
            t(
                &mut out,
                r#"[{"url":"https://h/queue/2/","ra":1,"dec":2},{"url":"https://h/queue/3/","ra":3,"dec":4,"finishtimestamp":"x","error_msg":"No data returned"}]"#,
            );
            t(&mut out, r#"{"url":"u","finishtimestamp":"t","error_msg":"  ","result_url":null}"#);
        }
        "atlas_var_rows" => {
            let header = group::CSV_HEADER.join(",");
            let rows = [
                partition_line("A", "58000.100000", "o", "15.100"),
                partition_line("B", "58001.200000", "c", "16.200"),
                partition_line("A", "57999.000000", "c", "15.300"),
                partition_line("1", "58002.5", "o", "nan"),
                partition_line("C", "58003.5", "o", "14.0"),
            ];
            t(&mut out, &format!("{header}\n{}\n", rows.join("\n")));
            t(&mut out, &format!("{header}\n{}\n", partition_line("A", "inf", "o", "1")));
            t(&mut out, &format!("{header}\nA,1,2\n{}\n", partition_line("B", "5e4", "oo", "1")));
        }
        "atlas_var_catalog" => {
            out.push(catalog_seed());
        }
        "fits_image" => {
            out.extend(fits_seeds());
            let mut real = Vec::new();
            files_below(&fixtures.join("ps1"), &mut real);
            out.extend(real.iter().filter_map(|f| shrunk_fits(f)));
            out.extend(real);
        }
        "listing_html" => {
            t(
                &mut out,
                "<html><body><h1>Index of /dr1/</h1><pre><a href=\"../\">../</a>\n\
                  <a href=\"atlas_lc_dr1_-30--28.csv\">atlas_lc_dr1_-30--28.csv</a> 12-Jan-2024 1G\n\
                  <a href='atlas_lc_dr1_0-2.csv'>x</a> <a href=/dr1/atlas_lc_dr1_2-4.csv>y</a>\n\
                  <a href=\"https://h/dr1/atlas_lc_dr1_88-90.csv\">z</a></pre></body></html>\n",
            );
        }
        "listing_webdav" => {
            t(&mut out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\
                  <D:response><D:href>/dr1/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\
                  <D:response><D:href>/dr1/atlas_lc_dr1_-30--28.csv</D:href><D:propstat><D:prop><D:getcontentlength>123</D:getcontentlength></D:prop></D:propstat></D:response>\
                  <D:response><D:href>https://h/dr1/atlas%5Flc_dr1_0-2.csv</D:href></D:response>\
                  <D:response><D:href><![CDATA[/dr1/atlas_lc_dr1_2-4.csv]]></D:href></D:response>\
                  <D:response><D:href>/dr1/atlas&#95;lc_dr1_4-6.csv&amp;</D:href></D:response></D:multistatus>\n");
            t(
                &mut out,
                "<multistatus xmlns=\"DAV:\"><response><href>atlas_lc_dr1_10-12.csv</href></response></multistatus>",
            );
            t(&mut out, "md5=sZRqySSS0jR8YjW00mERhA==, crc32c=353DD8BE");
            t(&mut out, "crc32c=NT3Yvg==");
        }
        "manifest_json" => {
            let tar = little_tar();
            out.push(manifest_for("fz-train-000000.tar", &tar, 2, false));
            out.push(manifest_for("fz-train-000001.tar", &tar, 1, false));
            out.push(b"{\"format\":\"webdataset\"}".to_vec());
        }
        "shard_tar" => {
            out.push(little_tar());
        }
        "shard_zstd" => {
            let tar = little_tar();
            out.push(zstd_of(&tar));
            let mut two = zstd_of(&tar);
            two.extend(zstd_of(b"trailing"));
            out.push(two);
        }
        other => panic!("no fuzz target `{other}`"),
    }
    out
}

/// Write every target's seeds under `dir/<target>/` (the starting corpus of a campaign).
pub fn write_corpus(dir: &Path, repo: &Path) -> std::io::Result<()> {
    for (name, _) in TARGETS {
        let sub = dir.join(name);
        fs::create_dir_all(&sub)?;
        for (i, seed) in seeds(name, repo).iter().enumerate() {
            let mut f = fs::File::create(sub.join(format!("seed-{i:03}")))?;
            f.write_all(seed)?;
        }
    }
    Ok(())
}
