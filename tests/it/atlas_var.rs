//! ATLAS-VAR fetch against the loopback emulator: the catalog read and filtered, only the
//! partitions holding selected objects fetched, downloads resumed with range requests after a
//! connection reset (no byte fetched twice, as the emulator counts), never fetched again once
//! complete; and the same from a `file://` folder.
//!
//! Then fetch + shard end to end, each sample read back from the shards and compared with the
//! emulator's own data: the selection by class and region (objects without detections are failed
//! samples), every `npy` row and its dtype, `cls` and the manifest's class list, the json; rows
//! scattered through a partition; a partition far larger than the memory budget (spills, and
//! shards byte-identical to a run without spills); bad rows skipped with file and line, a bad
//! header failing without touching the shards; and the shipped `atlas-var-pulsators` recipe.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use etd_emulators::atlas_var::{AtlasVarEmulator, Config, Dataset, Detection, Faults, ObjectRow, CATALOG_FILE};

use super::common::{repo, stderr, stdout, Scratch};
use etd::report::plural;

pub(super) fn recipe(catalog: &str, lightcurves: &str) -> String {
    format!(
        "version: 1\nname: var-test\nsource:\n  atlas-var:\n    catalog_url: \"{catalog}\"\n    \
         lightcurves_url: \"{lightcurves}\"\n    classes: [dubious, CBF, PULSE]\n    \
         region: {{ra: [0, 360], dec: [0, 40]}}\n    memory: 64KB\n"
    )
}

/// The partitions the selection needs, from the emulator's own dataset.
fn expected_partitions(emu: &AtlasVarEmulator) -> BTreeSet<String> {
    let d = emu.dataset();
    d.catalog
        .rows
        .iter()
        .filter(|o| ["dubious", "CBF", "PULSE"].contains(&o.class.as_str()) && o.dec >= 0.0 && o.dec <= 40.0)
        .filter_map(|o| d.partition_for(o.dec).map(str::to_string))
        .collect()
}

#[test]
fn only_needed_partitions_are_fetched_resumed_and_never_twice() {
    let faults = Faults { reset_mid_body_every_nth: Some(1), ..Faults::default() };
    let emu = AtlasVarEmulator::start(Config { objects: 300, faults, ..Config::default() }).unwrap();
    let s = Scratch::new();
    s.write("r.yaml", recipe(&emu.catalog_url(), &emu.lightcurves_url()));
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want = expected_partitions(&emu);
    assert!(!want.is_empty() && want.len() < emu.dataset().partitions.len());
    let m = emu.meter();
    let fetched: BTreeSet<String> = m.bytes_sent_per_file.keys().filter(|f| f.ends_with(".csv")).cloned().collect();
    assert_eq!(fetched, want, "only the partitions holding selected objects");
    // Every first attempt was cut in half and resumed with a range request: each byte once.
    let catalog = emu.dataset().catalog_fits();
    let name = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits";
    assert_eq!(m.bytes_sent_per_file[name], catalog.len() as u64);
    assert_eq!(fs_err::read(s.join(&format!("work/raw/atlas-var/{name}"))).unwrap(), catalog);
    for p in &want {
        let bytes = emu.dataset().partition_csv(p).unwrap();
        assert_eq!(m.bytes_sent_per_file[p], bytes.len() as u64, "{p} fetched once");
        assert_eq!(fs_err::read(s.join(&format!("work/raw/atlas-var/{p}"))).unwrap(), bytes, "{p}");
    }
    assert!(m.range_requests as usize > want.len(), "resumed with ranges: {}", m.range_requests);
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap();
    assert!(journal.contains("\"unit\":\"catalog\""));
    for p in &want {
        assert!(journal.contains(&format!("\"unit\":\"partition/{p}\"")), "{p} journaled");
    }
    // A second fetch downloads nothing.
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(emu.meter().bytes_sent_per_file.values().all(|&b| b == 0), "{:?}", emu.meter().bytes_sent_per_file);
    assert!(stderr(&out).contains("0.0 MB downloaded"), "{}", stderr(&out));
}

#[test]
fn a_file_folder_is_used_in_place() {
    let emu = AtlasVarEmulator::start(Config { objects: 200, ..Config::default() }).unwrap();
    let s = Scratch::new();
    let dir = s.join("mirror");
    emu.dataset().write_to(&dir).unwrap();
    let catalog =
        url::Url::from_file_path(dir.join("hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits")).unwrap();
    let folder = url::Url::from_directory_path(&dir).unwrap();
    s.write("r.yaml", recipe(catalog.as_str(), folder.as_str()));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);
    let want = expected_partitions(&emu);
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 1 + want.len(), "{journal}");
    assert!(
        !s.join("work/raw/atlas-var")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".csv") }),
        "file:// partitions are not copied"
    );
}

#[test]
fn a_download_cut_off_in_one_run_is_resumed_by_the_next() {
    // No retries: the first attempt at every file is cut halfway, so the run ends (exit 75) with
    // half-downloaded files, as a killed run would. The next run asks only for the rest.
    let faults = Faults { reset_mid_body_every_nth: Some(1), ..Faults::default() };
    let emu = AtlasVarEmulator::start(Config { objects: 150, faults, ..Config::default() }).unwrap();
    let s = Scratch::new();
    let text = recipe(&emu.catalog_url(), &emu.lightcurves_url()) + "politeness: {retries: 0, rate: 50/s}\n";
    s.write("r.yaml", text);
    // Each run ends at the first cut (a HEAD or a GET); the next one continues from there.
    let name = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits";
    let total = emu.dataset().catalog_fits().len() as u64;
    let (mut runs, mut resumed, mut saw_part) = (0, 0, false);
    loop {
        runs += 1;
        assert!(runs <= 40, "no progress after 40 runs");
        let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
        resumed += stderr(&out).matches("resuming at byte").count();
        let part = s.join(&format!("work/raw/atlas-var/{name}.part"));
        saw_part |= fs_err::metadata(&part).is_ok_and(|m| m.len() > 0 && m.len() < total);
        match out.status.code() {
            Some(0) => break,
            Some(75) => continue,
            other => panic!("exit {other:?}: {}", stderr(&out)),
        }
    }
    assert!(saw_part, "a run ended with a half-downloaded catalog");
    assert!(resumed > 0, "later runs resumed");
    let m = emu.meter();
    assert_eq!(m.bytes_sent_per_file[name], total, "each byte of the catalog was sent once");
    for p in expected_partitions(&emu) {
        let size = emu.dataset().partition_csv(&p).unwrap().len() as u64;
        assert_eq!(m.bytes_sent_per_file[&p], size, "{p}: each byte once");
    }
    assert!(!s.join(&format!("work/raw/atlas-var/{name}.part")).exists());
}

#[test]
fn a_webdav_origin_is_listed_with_propfind() {
    use etd_emulators::atlas_var::Listing;
    let emu = AtlasVarEmulator::start(Config { objects: 200, listing: Listing::WebDav, ..Config::default() }).unwrap();
    let s = Scratch::new();
    s.write("r.yaml", recipe(&emu.catalog_url(), &emu.lightcurves_url()));
    let out = s.etd().args(["-vv", "fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("asking with PROPFIND"), "{}", stderr(&out));
    let m = emu.meter();
    assert_eq!(m.status_counts.get(&207), Some(&1), "{:?}", m.status_counts);
    let fetched: BTreeSet<String> = m.bytes_sent_per_file.keys().filter(|f| f.ends_with(".csv")).cloned().collect();
    assert_eq!(fetched, expected_partitions(&emu), "only the partitions holding selected objects");
}

#[test]
fn a_folder_that_cannot_be_listed_is_a_clear_error() {
    use etd_emulators::atlas_var::Listing;
    let emu = AtlasVarEmulator::start(Config { objects: 50, listing: Listing::Denied, ..Config::default() }).unwrap();
    let s = Scratch::new();
    s.write("r.yaml", recipe(&emu.catalog_url(), &emu.lightcurves_url()));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "lightcurves_url {}: no partition files found (GET answered 403; PROPFIND answered 403)",
            emu.lightcurves_url()
        )),
        "{err}"
    );
    assert!(err.contains("WebDAV listing"), "the hint says what is expected: {err}");
    // Nothing else was asked of the server: no partition guessed, no retry of the refusals.
    assert!(emu.meter().bytes_sent_per_file.keys().all(|f| !f.ends_with(".csv")));
}

// ---------------------------------------------------------------------------------------------
// Fetch + shard end to end: the samples against the emulator's own data.
// ---------------------------------------------------------------------------------------------

/// The class list README documents for `cls` and the manifest's `classes` (not the emulator's
/// `prob_*` column order, which differs).
const DOC_CLASSES: [&str; 14] =
    ["CBF", "CBH", "DBF", "DBH", "HARD", "IRR", "LPV", "MIRA", "MPULSE", "MSINE", "NSINE", "PULSE", "SINE", "dubious"];

/// The documented `npy` record: (name, numpy type).
const NPY_FIELDS: [(&str, &str); 6] =
    [("mjd", "<f8"), ("filter", "|S1"), ("m", "<f4"), ("dm", "<f4"), ("dra", "<f4"), ("ddec", "<f4")];

/// Bytes of one packed `npy` record (f8 + S1 + 4 x f4).
const RECORD_BYTES: usize = 25;

/// One light-curve row as etd should store it: the CSV text parsed as f64, m/dm/dra/ddec as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rec {
    mjd: f64,
    filter: u8,
    m: f32,
    dm: f32,
    dra: f32,
    ddec: f32,
}

impl From<&Detection> for Rec {
    fn from(d: &Detection) -> Rec {
        Rec { mjd: d.mjd, filter: d.filter as u8, m: d.m, dm: d.dm, dra: d.dra, ddec: d.ddec }
    }
}

/// The emulator's detections of an object, sorted by MJD, as etd should store them.
fn expected_rows(d: &Dataset, id: &str) -> Vec<Rec> {
    let mut rows: Vec<Rec> = d.lightcurves.get(id).map(|v| v.iter().map(Rec::from).collect()).unwrap_or_default();
    rows.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
    rows
}

/// A recipe with the selection lines (indented under `atlas-var:`) and extra top-level YAML.
fn var_recipe(name: &str, catalog: &str, lightcurves: &str, selection: &str, memory: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: {name}\nsource:\n  atlas-var:\n    catalog_url: \"{catalog}\"\n    \
         lightcurves_url: \"{lightcurves}\"\n{selection}    memory: {memory}\n{extra}"
    )
}

/// Writes the data set as a `file://` mirror below the scratch folder; its two URLs.
fn file_mirror(s: &Scratch, d: &Dataset) -> (String, String) {
    let dir = s.join("mirror");
    d.write_to(&dir).unwrap();
    let catalog = url::Url::from_file_path(dir.join(CATALOG_FILE)).unwrap();
    let folder = url::Url::from_directory_path(&dir).unwrap();
    (catalog.to_string(), folder.to_string())
}

/// `etd <args> r.yaml` in the scratch folder; asserts the exit code.
fn etd_ok(s: &Scratch, cmd: &str, code: i32) -> String {
    let out = s.etd().args([cmd, "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(code), "etd {cmd}: {}", stderr(&out));
    stderr(&out)
}

/// Every sample of the shards listed in `shards/manifest.json`: key -> field -> bytes.
fn read_samples(shards: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(shards.join("manifest.json")).unwrap()).unwrap();
    let mut out: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for shard in manifest["shards"].as_array().unwrap() {
        let name = shard["name"].as_str().unwrap();
        let bytes = fs_err::read(shards.join(name)).unwrap();
        let tar = if name.ends_with(".zst") { zstd::stream::decode_all(bytes.as_slice()).unwrap() } else { bytes };
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut in_shard = 0;
        for m in ar.entries().unwrap() {
            let mut m = m.unwrap();
            let member = m.path().unwrap().to_string_lossy().into_owned();
            let (key, field) = member.split_once('.').unwrap_or_else(|| panic!("{name}: member {member} has no field"));
            let mut data = Vec::new();
            m.read_to_end(&mut data).unwrap();
            let sample = out.entry(key.to_string()).or_default();
            if sample.is_empty() {
                in_shard += 1;
            }
            assert!(sample.insert(field.to_string(), data).is_none(), "{name}: {member} twice");
        }
        assert_eq!(in_shard, shard["samples"].as_u64().unwrap(), "{name}: samples");
    }
    assert_eq!(out.len() as u64, manifest["samples"].as_u64().unwrap(), "manifest samples");
    out
}

/// Parses a light curve's `npy`: checks the magic, the structured dtype, C order, a 1-d shape and
/// the size; returns the records.
fn read_npy(bytes: &[u8]) -> Vec<Rec> {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "npy magic");
    let header_len = match bytes[6] {
        1 => 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
        2 | 3 => 12 + u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
        v => panic!("npy version {v}"),
    };
    let npy = npyz::NpyFile::new(bytes).expect("npy header");
    let want = npyz::DType::Record(
        NPY_FIELDS
            .iter()
            .map(|(name, ty)| npyz::Field { name: name.to_string(), dtype: npyz::DType::Plain(ty.parse().unwrap()) })
            .collect(),
    );
    assert_eq!(npy.dtype(), want, "npy dtype");
    assert_eq!(npy.order(), npyz::Order::C);
    let shape = npy.shape().to_vec();
    assert_eq!(shape.len(), 1, "a 1-d array: {shape:?}");
    let n = shape[0] as usize;
    assert_eq!(bytes.len(), header_len + n * RECORD_BYTES, "header + {n} packed records");
    let f32_at = |c: &[u8], i: usize| f32::from_le_bytes(c[i..i + 4].try_into().unwrap());
    bytes[header_len..]
        .chunks_exact(RECORD_BYTES)
        .map(|c| Rec {
            mjd: f64::from_le_bytes(c[..8].try_into().unwrap()),
            filter: c[8],
            m: f32_at(c, 9),
            dm: f32_at(c, 13),
            dra: f32_at(c, 17),
            ddec: f32_at(c, 21),
        })
        .collect()
}

/// A sample decoded: its json, light curve and `cls`.
struct VarSample {
    key: String,
    json: serde_json::Value,
    rows: Vec<Rec>,
    cls: usize,
}

/// The samples by `ATO_ID` (from each sample's json); every sample has exactly npy, json, cls.
fn var_samples(shards: &Path) -> BTreeMap<String, VarSample> {
    let mut out = BTreeMap::new();
    for (key, fields) in read_samples(shards) {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["cls", "json", "npy"], "{key}: fields");
        let json: serde_json::Value = serde_json::from_slice(&fields["json"]).unwrap();
        let cls = std::str::from_utf8(&fields["cls"]).unwrap().parse::<usize>().unwrap();
        let rows = read_npy(&fields["npy"]);
        let id = json["ATO_ID"].as_str().unwrap_or_else(|| panic!("{key}: json without ATO_ID")).to_string();
        assert!(out.insert(id.clone(), VarSample { key, json, rows, cls }).is_none(), "{id} twice");
    }
    out
}

fn is_sorted_by_mjd(rows: &[Rec]) -> bool {
    rows.windows(2).all(|w| w[0].mjd <= w[1].mjd)
}

/// `(objects, rows kept, rows read, spills)` from shard's `atlas-var: ... to disk` line.
fn group_log(stderr: &str) -> (u64, u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("atlas-var: ") && l.ends_with(" to disk"))
        .unwrap_or_else(|| panic!("no `atlas-var: ... to disk` line in:\n{stderr}"));
    let text = &line[line.find("atlas-var: ").unwrap_or_else(|| panic!("{line}")) + "atlas-var: ".len()..];
    let nums: Vec<u64> =
        text.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect();
    assert_eq!(nums.len(), 4, "{line}");
    assert!(
        text == format!(
            "{} selected; {} of {} kept; {} to disk",
            plural(nums[0], "object"),
            nums[1],
            plural(nums[2], "row"),
            plural(nums[3], "spill")
        ),
        "{line}"
    );
    (nums[0], nums[1], nums[2], nums[3])
}

/// Checks one sample against the catalog row and the emulator's light curve.
fn check_sample(d: &Dataset, o: &ObjectRow, s: &VarSample) {
    let id = &o.ato_id;
    assert_eq!(s.key, id.replace(['.', '+'], "_"), "{id}: key");
    let want_cls = DOC_CLASSES.iter().position(|c| *c == o.class).unwrap();
    assert_eq!(s.cls, want_cls, "{id}: cls of {}", o.class);
    let j = &s.json;
    assert_eq!(j["CLASS"], o.class.as_str(), "{id}");
    assert_eq!(j["cls"], want_cls, "{id}");
    assert_eq!(j["ra"].as_f64(), Some(o.ra), "{id}: ra");
    assert_eq!(j["dec"].as_f64(), Some(o.dec), "{id}: dec");
    // Probabilities by name (the FITS columns are in the emulator's order, not DOC_CLASSES').
    for (name, p) in EMU_CLASSES.iter().zip(o.probs) {
        let v = j["probabilities"][format!("prob_{name}")].as_f64();
        assert_eq!(v, Some(p.to_string().parse::<f64>().unwrap()), "{id}: prob_{name} = {p}");
    }
    let cat = &j["catalog"];
    let periods = [
        ("fp_LSperiod", o.fp_lsperiod),
        ("fp_period", o.fp_period),
        ("ls_Pday", o.ls_pday),
        ("fp_lngfitper", o.fp_lngfitper),
    ];
    for (k, v) in periods {
        assert_eq!(cat[k].as_f64(), Some(v), "{id}: {k}");
    }
    for (k, v) in [
        ("gmag", o.gmag),
        ("rmag", o.rmag),
        ("imag", o.imag),
        ("zmag", o.zmag),
        ("ymag", o.ymag),
        ("vf_c_med", o.vf_c_med),
        ("vf_o_med", o.vf_o_med),
    ] {
        assert_eq!(cat[k].as_f64().map(|x| x as f32), Some(v), "{id}: {k}");
    }
    let want = expected_rows(d, id);
    assert_eq!(s.rows.len(), want.len(), "{id}: rows");
    assert_eq!(s.rows, want, "{id}: the light curve, sorted by mjd");
    assert_eq!(j["rows"], want.len(), "{id}");
    let mut per_filter: BTreeMap<String, u64> = BTreeMap::new();
    for r in &want {
        *per_filter.entry((r.filter as char).to_string()).or_default() += 1;
    }
    assert_eq!(j["rows_per_filter"], serde_json::to_value(&per_filter).unwrap(), "{id}");
    assert_eq!(j["mjd_min"].as_f64(), want.first().map(|r| r.mjd), "{id}");
    assert_eq!(j["mjd_max"].as_f64(), want.last().map(|r| r.mjd), "{id}");
}

/// The FITS `prob_*` columns' order in the emulator (`etd_emulators::atlas_var::CLASSES`).
const EMU_CLASSES: [&str; 14] = etd_emulators::atlas_var::CLASSES;

#[test]
fn shard_selects_by_class_and_region_and_samples_equal_the_emulator_data() {
    // (0, 15) detections: some selected objects have none, and must become failed samples.
    let cfg = Config { objects: 600, seed: 11, detections_per_object: (0, 15), ..Config::default() };
    let emu = AtlasVarEmulator::start(cfg).unwrap();
    let d = emu.dataset();
    let classes = ["CBF", "PULSE", "LPV", "IRR"];
    let class_ok = |o: &ObjectRow| classes.contains(&o.class.as_str());
    let ra_ok = |o: &ObjectRow| (40.0..=250.0).contains(&o.ra);
    let dec_ok = |o: &ObjectRow| (-12.5..=35.0).contains(&o.dec);
    let in_region = |o: &ObjectRow| ra_ok(o) && dec_ok(o);
    let selected: Vec<&ObjectRow> = d.catalog.rows.iter().filter(|o| class_ok(o) && in_region(o)).collect();
    let has_rows = |o: &ObjectRow| d.lightcurves.get(&o.ato_id).is_some_and(|v| !v.is_empty());
    let with_rows: BTreeSet<&str> = selected.iter().filter(|o| has_rows(o)).map(|o| o.ato_id.as_str()).collect();
    let without: BTreeSet<&str> = selected.iter().filter(|o| !has_rows(o)).map(|o| o.ato_id.as_str()).collect();
    // The selection must matter in every way it can.
    assert!(with_rows.len() >= 20, "{} selected objects with rows", with_rows.len());
    assert!(!without.is_empty(), "a selected object without detections");
    assert!(d.catalog.rows.iter().any(|o| !class_ok(o) && in_region(o)), "excluded by class only");
    assert!(d.catalog.rows.iter().any(|o| class_ok(o) && dec_ok(o) && !ra_ok(o)), "excluded by ra only");
    assert!(d.catalog.rows.iter().any(|o| class_ok(o) && ra_ok(o) && !dec_ok(o)), "excluded by dec only");

    let s = Scratch::new();
    let selection = "    classes: [CBF, PULSE, LPV, IRR]\n    region: {ra: [40, 250], dec: [-12.5, 35]}\n";
    let extra = "politeness: {rate: 50/s}\nshard: {max_samples: 16}\n";
    s.write("r.yaml", var_recipe("var-e2e", &emu.catalog_url(), &emu.lightcurves_url(), selection, "256MB", extra));
    etd_ok(&s, "fetch", 0);
    // Objects without rows fail (exit 3); the others are sharded.
    let log = etd_ok(&s, "shard", 3);
    let (objects, kept, _, spills) = group_log(&log);
    assert_eq!(objects as usize, selected.len(), "{log}");
    let total: usize = with_rows.iter().map(|id| d.lightcurves[*id].len()).sum();
    assert_eq!(kept as usize, total, "{log}");
    assert_eq!(spills, 0, "{log}");

    let samples = var_samples(&s.shards());
    let got: BTreeSet<&str> = samples.keys().map(String::as_str).collect();
    assert_eq!(got, with_rows, "exactly the selected objects that have detections");
    for o in &selected {
        if let Some(sample) = samples.get(&o.ato_id) {
            check_sample(d, o, sample);
        }
    }
    let manifest = s.manifest();
    assert_eq!(manifest["classes"], serde_json::json!(DOC_CLASSES), "manifest classes");
    assert!(manifest["shards"].as_array().unwrap().len() > 1, "several shards: {manifest}");
    // The objects without rows are the failed samples.
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    let failed: BTreeSet<String> = failures
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|f| assert_eq!(f["stage"], "shard", "{f}"))
        .map(|f| f["unit"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed, without.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(), "{failures}");
    let out = s.etd().arg("verify").arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "verify: {}\n{}", stdout(&out), stderr(&out));
}

/// Per object of a partition file (data rows in file order): how many separate blocks of
/// consecutive lines its rows form, and its MJDs in file order.
fn blocks(csv: &str) -> BTreeMap<String, (usize, Vec<f64>)> {
    let mut out: BTreeMap<String, (usize, Vec<f64>)> = BTreeMap::new();
    let mut last: Option<&str> = None;
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let entry = out.entry(fields[0].to_string()).or_default();
        if last != Some(fields[0]) {
            entry.0 += 1;
        }
        entry.1.push(fields[30].parse().unwrap());
        last = Some(fields[0]);
    }
    out
}

#[test]
fn rows_scattered_through_a_partition_make_one_whole_sorted_sample() {
    let cfg = Config { objects: 300, seed: 21, split_runs: true, ..Config::default() };
    let emu = AtlasVarEmulator::start(cfg).unwrap();
    let d = emu.dataset();
    let s = Scratch::new();
    // A small budget as well: an object's runs also end up in different spill files.
    let selection = "    region: {ra: [0, 360], dec: [0, 20]}\n";
    let extra = "politeness: {rate: 50/s}\n";
    s.write("r.yaml", var_recipe("var-scatter", &emu.catalog_url(), &emu.lightcurves_url(), selection, "64KB", extra));
    etd_ok(&s, "fetch", 0);
    let log = etd_ok(&s, "shard", 0);
    assert!(group_log(&log).3 > 0, "spills: {log}");
    let samples = var_samples(&s.shards());
    let mut scattered = 0;
    let mut unsorted_in_file = 0;
    for name in ["atlas_lc_dr1_0-10.csv", "atlas_lc_dr1_10-20.csv"] {
        let csv = String::from_utf8(d.partition_csv(name).unwrap()).unwrap();
        for (id, (runs, mjds)) in blocks(&csv) {
            if runs < 2 {
                continue;
            }
            scattered += 1;
            unsorted_in_file += usize::from(!mjds.windows(2).all(|w| w[0] <= w[1]));
            let sample = samples.get(&id).unwrap_or_else(|| panic!("{id} ({runs} blocks in {name}) has no sample"));
            assert_eq!(sample.rows.len(), mjds.len(), "{id}: every row of its {runs} blocks");
            assert!(is_sorted_by_mjd(&sample.rows), "{id}: sorted by mjd");
            assert_eq!(sample.rows, expected_rows(d, &id), "{id}");
            let o = d.catalog.rows.iter().find(|o| o.ato_id == id).unwrap();
            check_sample(d, o, sample);
        }
    }
    assert!(scattered > 10, "objects whose rows are not contiguous in their partition: {scattered}");
    assert!(unsorted_in_file > 0, "rows out of mjd order in the file");
}

// ---------------------------------------------------------------------------------------------
// Memory budget: a partition far larger than the budget.
// ---------------------------------------------------------------------------------------------

/// Every file of a shard folder, with manifest.json's `recipe_sha256` (the recipes differ in
/// `memory`) taken out.
fn shard_folder(s: &Scratch) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let mut manifest = s.manifest();
    manifest.as_object_mut().unwrap().remove("recipe_sha256").expect("manifest.recipe_sha256");
    let files = s.shard_files().into_iter().filter(|(n, _)| n != "manifest.json").collect();
    (files, manifest)
}

#[test]
fn a_partition_far_larger_than_the_memory_budget_spills_and_shards_identically() {
    // One band: a single partition file of many MB.
    let cfg = Config { objects: 1500, seed: 5, band_deg: 120.0, detections_per_object: (30, 50), ..Config::default() };
    let d = Dataset::generate(&cfg);
    assert_eq!(d.partitions.len(), 1);
    let small = Scratch::new();
    let (catalog, folder) = file_mirror(&small, &d);
    let size = fs_err::metadata(small.join("mirror").join(&d.partitions[0].0)).unwrap().len();
    assert!(size > 10_000_000, "partition of {size} bytes");
    let rows: usize = d.lightcurves.values().map(Vec::len).sum();
    let big = Scratch::new();
    small.write("r.yaml", var_recipe("var-memory", &catalog, &folder, "", "64KB", ""));
    big.write("r.yaml", var_recipe("var-memory", &catalog, &folder, "", "1GB", ""));
    let mut spills = Vec::new();
    for s in [&small, &big] {
        etd_ok(s, "fetch", 0);
        let log = etd_ok(s, "shard", 0);
        let (objects, kept, read, k) = group_log(&log);
        assert_eq!((objects, kept, read), (1500, rows as u64, rows as u64), "{log}");
        spills.push(k);
    }
    // Held rows take at least their 25 packed bytes each; with at most twice the budget held at
    // once, the rows need this many runs.
    let least = (rows * RECORD_BYTES / (2 * 64_000)) as u64;
    assert!(spills[0] + 1 >= least && spills[0] > 0, "64KB: {} spills, at least {least} expected", spills[0]);
    assert_eq!(spills[1], 0, "1GB: no spill");
    let (a, b) = (shard_folder(&small), shard_folder(&big));
    assert_eq!(a.0.len(), b.0.len(), "shard count");
    for ((na, ba), (nb, bb)) in a.0.iter().zip(&b.0) {
        assert_eq!(na, nb);
        assert!(ba == bb, "{na} differs between memory: 64KB and memory: 1GB");
    }
    assert_eq!(a.1, b.1, "manifest.json (but recipe_sha256)");
    assert_eq!(a.1["samples"], 1500);
    // And the samples are right, not just equal.
    let samples = var_samples(&small.shards());
    for o in &d.catalog.rows {
        check_sample(&d, o, &samples[&o.ato_id]);
    }
    assert!(!small.join("work/tmp/atlas-var-group").exists(), "spill files are removed");
}

// ---------------------------------------------------------------------------------------------
// Bad input.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_rows_are_skipped_with_file_and_line_and_a_bad_header_fails_without_touching_the_shards() {
    let cfg = Config { objects: 200, seed: 9, detections_per_object: (10, 30), ..Config::default() };
    let d = Dataset::generate(&cfg);
    let s = Scratch::new();
    let (catalog, folder) = file_mirror(&s, &d);
    let name = "atlas_lc_dr1_0-10.csv";
    let path = s.join("mirror").join(name);
    let text = fs_err::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Two rows of two different objects (1-based line numbers; the header is line 1).
    let id_of = |l: &str| l.split(',').next().unwrap().to_string();
    let (la, lb) = (3, (4..=lines.len()).find(|&i| id_of(&lines[i - 1]) != id_of(&lines[2])).unwrap());
    let (a, b) = (id_of(&lines[la - 1]), id_of(&lines[lb - 1]));
    let mut fa: Vec<String> = lines[la - 1].split(',').map(str::to_string).collect();
    let fb: Vec<String> = lines[lb - 1].split(',').map(str::to_string).collect();
    let (mjd_a, mjd_b): (f64, f64) = (fa[30].parse().unwrap(), fb[30].parse().unwrap());
    fa[34] = format!("{}x", fa[34]);
    let garbled = fa[34].clone();
    lines[la - 1] = fa.join(",");
    lines[lb - 1] = fb[..20].join(",");
    fs_err::write(&path, lines.join("\n") + "\n").unwrap();

    s.write(
        "r.yaml",
        var_recipe("var-bad", &catalog, &folder, "    region: {ra: [0, 360], dec: [0, 30]}\n", "1MB", ""),
    );
    etd_ok(&s, "fetch", 0);
    let log = etd_ok(&s, "shard", 0);
    assert!(log.contains(&format!("{name}:{la}: row skipped: m `{garbled}` is not a number")), "{log}");
    assert!(log.contains(&format!("{name}:{lb}: row skipped: 20 fields, expected 36")), "{log}");
    assert!(log.contains("2 rows did not parse and were skipped"), "{log}");
    let samples = var_samples(&s.shards());
    let selected: Vec<&ObjectRow> = d.catalog.rows.iter().filter(|o| (0.0..=30.0).contains(&o.dec)).collect();
    assert_eq!(samples.len(), selected.len(), "every selected object has a sample");
    for o in &selected {
        let sample = &samples[&o.ato_id];
        let mut want = expected_rows(&d, &o.ato_id);
        if o.ato_id == a {
            want.retain(|r| r.mjd != mjd_a);
        }
        if o.ato_id == b {
            want.retain(|r| r.mjd != mjd_b);
        }
        assert_eq!(sample.rows, want, "{}: all rows but the bad ones", o.ato_id);
    }
    assert_eq!(samples[&a].rows.len() + 1, d.lightcurves[&a].len());
    assert_eq!(samples[&b].rows.len() + 1, d.lightcurves[&b].len());

    // A wrong header: `shard` fails naming the file and line 1, and the shards stay as they were.
    assert!(s.shards().is_dir());
    let before = s.shard_files();
    let corrupt = fs_err::read_to_string(&path).unwrap().replacen(",mjd,", ",MJD,", 1);
    fs_err::write(&path, corrupt).unwrap();
    etd_ok(&s, "fetch", 0);
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error:") && err.contains(&format!("{name}: line 1: expected the 36-column")), "{err}");
    assert!(err.contains("MJD"), "the header found: {err}");
    assert!(s.shards().is_dir(), "the earlier shards are still there");
    assert_eq!(s.shard_files(), before, "the earlier shards are untouched");
    assert!(!s.join("work/shards.partial").exists() && !s.join("work/shards.old").exists());
}

/// A small `file://` mirror, fetched and sharded once; the scratch folder, the data set and a
/// partition holding selected objects.
fn sharded_mirror(seed: u64) -> (Scratch, Dataset, std::path::PathBuf) {
    let d = Dataset::generate(&Config { objects: 120, seed, detections_per_object: (5, 15), ..Config::default() });
    let s = Scratch::new();
    let (catalog, folder) = file_mirror(&s, &d);
    s.write(
        "r.yaml",
        var_recipe("var-changed", &catalog, &folder, "    region: {ra: [0, 360], dec: [0, 10]}\n", "1MB", ""),
    );
    etd_ok(&s, "fetch", 0);
    etd_ok(&s, "shard", 0);
    assert!(s.manifest()["samples"].as_u64().unwrap() > 3);
    let path = s.join("mirror/atlas_lc_dr1_0-10.csv");
    (s, d, path)
}

/// The partition's text with the `m` of its first data row rewritten by `edit`.
fn edit_first_m(path: &Path, edit: impl Fn(&str) -> String) {
    let text = fs_err::read_to_string(path).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let (first, others) = rest.split_once('\n').unwrap();
    let mut fields: Vec<String> = first.split(',').map(str::to_string).collect();
    fields[34] = edit(&fields[34]);
    fs_err::write(path, format!("{header}\n{}\n{others}", fields.join(","))).unwrap();
}

#[test]
fn a_partition_whose_size_changed_since_fetch_is_refused() {
    let (s, _, path) = sharded_mirror(31);
    let before = s.shard_files();
    // `15.123` -> `15.1230`: the same value, one byte more.
    edit_first_m(&path, |m| format!("{m}0"));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("atlas_lc_dr1_0-10.csv") && err.contains("changed since it was fetched"), "{err}");
    assert!(err.contains("hint: run `etd fetch` again"), "{err}");
    assert_eq!(s.shard_files(), before, "the shards are untouched");
}

#[test]
fn a_partition_changed_in_place_since_fetch_is_refused() {
    // README: `shard` "refuses, naming the file, any input that changed since it was fetched".
    let (s, _, path) = sharded_mirror(31);
    let before = s.shard_files();
    // One digit of a magnitude: same size, different data (and sha256) than fetch recorded.
    edit_first_m(&path, |m| {
        let (head, last) = m.split_at(m.len() - 1);
        format!("{head}{}", if last == "9" { 0 } else { last.parse::<u8>().unwrap() + 1 })
    });
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains("atlas_lc_dr1_0-10.csv") && err.contains("changed since it was fetched"), "{err}");
    assert_eq!(s.shard_files(), before, "the shards are untouched");
}

#[test]
fn a_stray_quote_skips_only_its_own_row() {
    // The partitions are a database dump without quoting; a garbled field that happens to start
    // with `"` is one bad row (README: "rows that do not parse are skipped and reported with file
    // and line"), not the end of the file.
    let (s, d, path) = sharded_mirror(32);
    let text = fs_err::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines.len() > 40, "{} lines", lines.len());
    let mut fields: Vec<String> = lines[2].split(',').map(str::to_string).collect();
    let (id, mjd): (String, f64) = (fields[0].clone(), fields[30].parse().unwrap());
    fields[34] = format!("\"{}", fields[34]);
    lines[2] = fields.join(",");
    fs_err::write(&path, lines.join("\n") + "\n").unwrap();
    etd_ok(&s, "fetch", 0);
    let log = etd_ok(&s, "shard", 0);
    assert!(log.contains("atlas_lc_dr1_0-10.csv:3: row skipped"), "{log}");
    assert!(log.contains("1 row did not parse and was skipped"), "{log}");
    let samples = var_samples(&s.shards());
    for o in d.catalog.rows.iter().filter(|o| (0.0..=10.0).contains(&o.dec)) {
        let mut want = expected_rows(&d, &o.ato_id);
        if o.ato_id == id {
            want.retain(|r| r.mjd != mjd);
        }
        assert_eq!(samples[&o.ato_id].rows.len(), want.len(), "{}: rows", o.ato_id);
    }
}

// ---------------------------------------------------------------------------------------------
// The shipped recipe.
// ---------------------------------------------------------------------------------------------

/// `unit_hash(Sample, seed, id)` as etd documents it: the first 53 bits of sha256("sample", 0x00,
/// seed as 8 little-endian bytes, id), over 2^53.
fn sample_hash(seed: u64, id: &str) -> f64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"sample\0");
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    let digest = h.finalize();
    (u64::from_be_bytes(digest[..8].try_into().unwrap()) >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn the_shipped_pulsators_recipe_runs_against_the_emulator() {
    let cfg = Config { objects: 2500, seed: 7, band_deg: 30.0, detections_per_object: (5, 20), ..Config::default() };
    let emu = AtlasVarEmulator::start(cfg).unwrap();
    let d = emu.dataset();
    let shipped = fs_err::read_to_string(repo().join("recipes/atlas-var-pulsators.yaml")).unwrap();
    let cat = "https://dtn.example.org/atlas/hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits";
    let lcs = "https://dtn.example.org/atlas/dr1/";
    assert!(shipped.contains(&format!("catalog_url: {cat}")) && shipped.contains(&format!("lightcurves_url: {lcs}")));
    let s = Scratch::new();
    s.write("r.yaml", shipped.replace(cat, &emu.catalog_url()).replace(lcs, &emu.lightcurves_url()));
    // Its selection: MIRA, PULSE, CBF with probability >= 0.8, a quarter of them (seed 7).
    let own = |o: &ObjectRow| o.probs[EMU_CLASSES.iter().position(|c| *c == o.class).unwrap()];
    let sure: Vec<&ObjectRow> = d
        .catalog
        .rows
        .iter()
        .filter(|o| ["MIRA", "PULSE", "CBF"].contains(&o.class.as_str()) && f64::from(own(o)) >= 0.8)
        .collect();
    let want: BTreeSet<&str> =
        sure.iter().filter(|o| sample_hash(7, &o.ato_id) < 0.25).map(|o| o.ato_id.as_str()).collect();
    assert!(!want.is_empty() && want.len() < sure.len(), "{} of {}", want.len(), sure.len());

    etd_ok(&s, "fetch", 0);
    etd_ok(&s, "shard", 0);
    let manifest = s.manifest();
    assert_eq!(manifest["compression"], "zstd");
    for (split, v) in manifest["splits"].as_object().unwrap() {
        assert!(["train", "val", "test"].contains(&split.as_str()), "{split}: {v}");
    }
    let samples = var_samples(&s.shards());
    let got: BTreeSet<&str> = samples.keys().map(String::as_str).collect();
    assert_eq!(got, want);
    for o in &sure {
        if let Some(sample) = samples.get(&o.ato_id) {
            check_sample(d, o, sample);
        }
    }
    let out = s.etd().arg("verify").arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "verify: {}\n{}", stdout(&out), stderr(&out));
}

#[test]
fn files_fetched_from_other_urls_are_left_out_of_the_shards() {
    // Fetch and shard from one mirror, then point the recipe at another one (other data, other
    // partitions): shard must not mix in what came from the first, and says to fetch again.
    let (s, _, _) = sharded_mirror(41);
    let other = Dataset::generate(&Config { objects: 80, seed: 42, band_deg: 5.0, ..Config::default() });
    let dir = s.join("mirror2");
    other.write_to(&dir).unwrap();
    let catalog = url::Url::from_file_path(dir.join(CATALOG_FILE)).unwrap();
    let folder = url::Url::from_directory_path(&dir).unwrap();
    let selection = "    region: {ra: [0, 360], dec: [0, 10]}\n";
    s.write("r.yaml", var_recipe("var-changed", catalog.as_str(), folder.as_str(), selection, "1MB", ""));
    let before = s.shard_files();
    let err = etd_ok(&s, "shard", 2);
    assert!(err.contains("fetched with other source settings"), "{err}");
    assert!(err.contains("nothing has been fetched into") && err.contains("hint: run `etd fetch"), "{err}");
    assert_eq!(s.shard_files(), before, "the shards are untouched");
    etd_ok(&s, "fetch", 0);
    etd_ok(&s, "shard", 0);
    let samples = var_samples(&s.shards());
    let want: BTreeSet<String> = other
        .catalog
        .rows
        .iter()
        .filter(|o| (0.0..=10.0).contains(&o.dec) && other.lightcurves.get(&o.ato_id).is_some_and(|l| !l.is_empty()))
        .map(|o| o.ato_id.clone())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(samples.keys().cloned().collect::<BTreeSet<_>>(), want);
    for o in other.catalog.rows.iter().filter(|o| want.contains(&o.ato_id)) {
        check_sample(&other, o, &samples[&o.ato_id]);
    }
}

#[test]
fn file_times_are_trusted_only_when_not_racy() {
    // A file written just before fetch may be rewritten within the same timestamp tick: its time
    // is not recorded (0), so shard hashes it. An older file's time is recorded, and a file that
    // is only touched later is hashed and accepted.
    let d = Dataset::generate(&Config { objects: 60, seed: 51, ..Config::default() });
    let s = Scratch::new();
    let (catalog, folder) = file_mirror(&s, &d);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let aged = s.join(&format!("mirror/{CATALOG_FILE}"));
    fs_err::File::options().write(true).open(&aged).unwrap().set_modified(old).unwrap();
    // The catalog's change time is now too: it must be 2 s old before its times are recorded.
    // The partitions are then written again, the same bytes, just before the fetch.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for entry in fs_err::read_dir(s.join("mirror")).unwrap() {
        let path = entry.unwrap().path();
        if path != aged && path.is_file() {
            let bytes = fs_err::read(&path).unwrap();
            fs_err::write(&path, bytes).unwrap();
        }
    }
    s.write("r.yaml", var_recipe("var-times", &catalog, &folder, "", "1MB", ""));
    etd_ok(&s, "fetch", 0);
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap();
    let times: Vec<(String, i64)> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|v| v["inputs"].as_array().cloned().unwrap_or_default())
        .map(|i| (i["path"].as_str().unwrap().to_string(), i["mtime_ns"].as_i64().unwrap()))
        .collect();
    let want_old = old.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    for (path, t) in &times {
        if path.ends_with(CATALOG_FILE) {
            assert_eq!(*t, want_old, "an old file's time is kept");
        } else {
            assert_eq!(*t, 0, "{path}: a file written just now has no trusted time");
        }
    }
    etd_ok(&s, "shard", 0);
    // Touched, not changed: accepted (after hashing).
    fs_err::File::options()
        .write(true)
        .open(&aged)
        .unwrap()
        .set_modified(old + std::time::Duration::from_secs(5))
        .unwrap();
    etd_ok(&s, "shard", 0);
}

#[test]
fn an_empty_selection_warns_at_fetch_and_at_shard_and_progress_counts_partitions() {
    // The default emulator's catalog holds no MIRA/PULSE/CBF at probability >= 0.8 in a quarter
    // sample: the shipped recipe selects nothing there.
    let emu = AtlasVarEmulator::start(Config::default()).unwrap();
    let shipped = fs_err::read_to_string(repo().join("recipes/atlas-var-pulsators.yaml")).unwrap();
    let cat = "https://dtn.example.org/atlas/hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits";
    let lcs = "https://dtn.example.org/atlas/dr1/";
    let s = Scratch::new();
    s.write("r.yaml", shipped.replace(cat, &emu.catalog_url()).replace(lcs, &emu.lightcurves_url()));
    let out = s.etd().env("ETD_PROGRESS_INTERVAL", "0").args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with(" WARN")).collect();
    insta::assert_snapshot!(warnings.join("\n"), @r"
    WARN the selection matches no object in the ATLAS-VAR catalog: the dataset will be empty
    WARN hint: the objects are chosen by source.atlas-var.classes, min_probability, region, sample and limit; widen them (or remove them to take every object)
    ");
    assert!(!err.contains(" samples"), "fetch counts partitions: {err}");
    let err = etd_ok(&s, "shard", 0);
    assert!(err.contains("WARN the dataset is empty: no sample was made"), "{err}");
}
