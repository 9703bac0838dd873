//! The MAST astrocut source (TESScut) end to end against the loopback emulator
//! (`tests/emulators/src/astrocut`): sector look-ups then one cutout per (target, sector), under
//! injected faults, inside both of MAST's limits by the server's meter, arrays in the shards equal
//! to what the server sent, kill -9 and rerun, dry runs, task splits, refusals.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use etd_emulators::astrocut::{observations, pixels_of, AstrocutEmulator, Faults};

use super::common::{kill_9_fetches, stderr, stdout, Scratch};

/// `n` targets: every fifth within 6 degrees of the equator (no TESS sector in the emulator's
/// sky), labels from two classes.
fn targets_csv(n: usize) -> String {
    let mut s = String::from("name,ra,dec,class\n");
    for i in 0..n {
        let ra = (i as f64 * 29.3 + 3.1) % 360.0;
        let dec = -70.0 + (i as f64 * 17.9) % 140.0;
        let dec = if i % 5 == 3 {
            2.5
        } else if dec.abs() < 6.0 {
            dec + 12.0
        } else {
            dec
        };
        let class = ["rrlyr", "eclipsing"][i % 2];
        s.push_str(&format!("TIC {i:03},{ra:.4},{dec:.4},{class}\n"));
    }
    s
}

fn targets(n: usize) -> Vec<(String, f64, f64)> {
    targets_csv(n)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

fn recipe(base: &str, source: &str, politeness: &str) -> String {
    format!(
        "version: 1\nname: tess-test\ntargets: {{file: targets.csv, columns: {{id: name, label: class}}}}\n\
         source:\n  astrocut: {{service: tesscut, base_url: \"{base}\", size: 5{source}}}\n{politeness}"
    )
}

/// Members of every `.tar` shard in `dir`: name -> bytes.
fn members(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "tar") {
            let mut ar = tar::Archive::new(fs_err::File::open(&path).unwrap());
            for m in ar.entries().unwrap() {
                let mut m = m.unwrap();
                let name = m.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                m.read_to_end(&mut bytes).unwrap();
                out.insert(name, bytes);
            }
        }
    }
    out
}

fn npy<T: npyz::Deserialize>(bytes: &[u8]) -> (Vec<u64>, Vec<T>) {
    let npy = npyz::NpyFile::new(bytes).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<T>().unwrap())
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// The samples the emulator's sky gives `targets`: (key, target index, sector).
fn expected_samples(t: &[(String, f64, f64)], skip_sector: &[u32]) -> Vec<(String, usize, u32)> {
    let mut out = Vec::new();
    for (i, (id, ra, dec)) in t.iter().enumerate() {
        for o in observations(*ra, *dec) {
            if !skip_sector.contains(&o.sector) {
                out.push((format!("{}-s{:04}", id.replace(' ', "_"), o.sector), i, o.sector));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn fetch_shard_verify_under_faults_within_both_limits() {
    let t = targets(10);
    let faults = Faults {
        every_nth_503: Some((4, Some(1))),
        every_nth_slow: Some((5, Duration::from_millis(1500))),
        no_data_sectors: vec![27],
        cadences: 12,
        ..Faults::default()
    };
    let emu = AstrocutEmulator::start(faults).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(10));
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", fits: true", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    // 2 targets lie where TESS never looked; sector 27 answers {"msg"}: both fail for good.
    let no_data = t.iter().filter(|(_, ra, dec)| observations(*ra, *dec).iter().any(|o| o.sector == 27)).count();
    assert!(no_data > 0, "the targets should meet sector 27");
    assert_eq!(out.status.code(), Some(3), "{err}");
    let want = expected_samples(&t, &[27]);
    assert!(
        err.contains(&format!("{} done, {} failed (2 no-coverage, {no_data} no-data)", 8 + want.len(), 2 + no_data)),
        "{err}"
    );
    let m = emu.meter();
    assert_inside_limits_and_throttled(&m);
    assert!(m.by_endpoint["sector"] >= 10, "{m:?}");
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(failures.contains("\"kind\":\"no-data\"") && failures.contains("sector 27"), "{failures}");

    rerun_asks_nothing_then_shard(&s, &emu);
    let manifest = s.manifest();
    assert_eq!(manifest["samples"], want.len());
    assert_eq!(manifest["classes"], serde_json::json!(["eclipsing", "rrlyr"]));
    assert_eq!(manifest["fields"]["time.npy"], "numpy float64 (T,): mid-cadence times, BTJD (BJD - 2457000)");
    let all = members(&s.shards());
    for (key, i, sector) in &want {
        let (id, ra, dec) = &t[*i];
        let px = pixels_of(*ra, *dec, *sector, 5, 5, 12);
        let (shape, flux) = npy::<f32>(&all[&format!("{key}.npy")]);
        assert_eq!(shape, [12, 5, 5], "{key}");
        assert!(same_f32(&flux, &px.flux), "{key}");
        assert!(same_f32(&npy::<f32>(&all[&format!("{key}.fluxerr.npy")]).1, &px.flux_err));
        assert!(same_f32(&npy::<f32>(&all[&format!("{key}.bkg.npy")]).1, &px.bkg));
        assert_eq!(npy::<f64>(&all[&format!("{key}.time.npy")]).1, px.time);
        assert_eq!(npy::<i32>(&all[&format!("{key}.quality.npy")]).1, px.quality);
        assert_eq!(npy::<i32>(&all[&format!("{key}.cadence.npy")]).1, px.cadence);
        let (shape, ap) = npy::<i32>(&all[&format!("{key}.aperture.npy")]);
        assert_eq!((shape, ap), (vec![5, 5], px.aperture));
        let json: serde_json::Value = serde_json::from_slice(&all[&format!("{key}.json")]).unwrap();
        assert_eq!(json["id"], id.as_str());
        assert_eq!(json["sector"], *sector);
        assert_eq!(json["cadences"], 12);
        assert_eq!(json["wcs"]["CTYPE1"], "RA---TAN");
        assert!((json["wcs"]["CRVAL1"].as_f64().unwrap() - ra).abs() < 1e-9);
        assert!(json["url"].as_str().unwrap().ends_with(&format!("&units=px&sector={sector}&product=SPOC")));
        assert!((json["time_range_btjd"][1].as_f64().unwrap() - px.time[11]).abs() < 1e-9);
        let class = ["rrlyr", "eclipsing"][i % 2];
        assert_eq!(json["label"], class);
        assert_eq!(all[&format!("{key}.cls")], if class == "eclipsing" { b"0" } else { b"1" });
        assert!(all[&format!("{key}.fits")].starts_with(b"SIMPLE  ="));
    }
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// By the emulator's meter: inside the default politeness (3 in flight, 2/s) and so inside
/// both of MAST's limits, the 503 fault fired, and no request came inside a `Retry-After`.
fn assert_inside_limits_and_throttled(m: &etd_emulators::astrocut::Meter) {
    assert_eq!(m.over_limit, 0, "{m:?}");
    assert!(m.peak_inflight <= 3, "{m:?}");
    assert!(m.max_starts_in_any_1s <= 3, "{m:?}");
    assert!(m.status_counts.get(&503).copied().unwrap_or(0) > 0, "the 503 fault fired: {m:?}");
    assert_eq!(m.requests_during_retry_after, 0, "{m:?}");
}

/// A second fetch makes no request; the shard keeps the fetch failures' exit 3.
fn rerun_asks_nothing_then_shard(s: &Scratch, emu: &AstrocutEmulator) {
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "fetch failures keep exit 3: {}", stderr(&out));
}

const QUICK: &str = "politeness: {concurrency: 4, rate: 4/s}\n";

#[test]
fn kill_9_during_fetch_then_rerun_gives_the_uninterrupted_shards() {
    let faults = || Faults {
        latency: Duration::from_millis(20),
        every_nth_503: Some((5, None)),
        cadences: 8,
        ..Faults::default()
    };
    let emu = AstrocutEmulator::start(faults()).unwrap();
    let reference = Scratch::new();
    reference.write("targets.csv", targets_csv(8));
    reference.write("r.yaml", recipe(&emu.tesscut_url(), "", QUICK));
    let out = reference.etd().args(["run", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let s = Scratch::new();
    s.write("targets.csv", targets_csv(8));
    s.write("r.yaml", recipe(&emu.tesscut_url(), "", QUICK));
    emu.forget_attempts();
    kill_9_fetches(&s, &[900, 2500, 4000]);
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The killed runs did part of the work: the rerun asks for less than the whole.
    let total = 8 + expected_samples(&targets(8), &[]).len() as u64;
    assert!(emu.meter().by_endpoint.values().sum::<u64>() < total + 4, "{:?}", emu.meter());
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(s.shard_files() == reference.shard_files(), "the resumed run's shards differ");
}

#[test]
fn dry_run_makes_no_request_and_shows_requests_and_least_time() {
    let emu = AstrocutEmulator::start(Faults { cadences: 4, ..Faults::default() }).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(6));
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", sectors: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]", QUICK));
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 6, "{text}");
    let base = emu.tesscut_url();
    assert_eq!(
        text.lines().next().unwrap(),
        format!("TIC 000\tPOST {base}/sector (ra=3.1&dec=-70&product=SPOC)\tthen 1 astrocut per sector")
    );
    assert!(stderr(&out).contains("6 sector look-ups and 0 cutouts to fetch"), "{}", stderr(&out));
    assert!(!s.join("work").exists(), "a dry run writes nothing");

    // After the fetch, only the sectors the recipe lists were cut; listing all adds the others,
    // and the dry run names each cutout request.
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let cut = emu.meter().by_endpoint["astrocut"];
    let southern = expected_samples(&targets(6), &[]).iter().filter(|(_, _, s)| *s <= 13).count() as u64;
    assert_eq!(cut, southern);
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", sectors: all", QUICK));
    emu.reset_meter();
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(emu.meter().requests, 0);
    let text = stdout(&out);
    let more = expected_samples(&targets(6), &[]).len() as u64 - southern;
    assert_eq!(text.lines().count() as u64, more, "{text}");
    assert!(text.lines().all(|l| l.contains(" sector ") && l.contains("\tGET ")), "{text}");
    let at_least = format!("0 sector look-ups and {more} cutouts to fetch ({southern} done");
    assert!(stderr(&out).contains(&at_least), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("at least {more} requests, at least ")), "{}", stderr(&out));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, more, "only the new sectors are fetched");
    // A new size changes every cutout: everything is fetched again.
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", sectors: all", QUICK).replace("size: 5", "size: 6"));
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("fetched with other source settings"), "{}", stderr(&out));
    assert_eq!(emu.meter().by_endpoint["astrocut"], southern + more);
}

#[test]
fn a_task_split_gives_the_same_shards_as_one_run() {
    let emu = AstrocutEmulator::start(Faults { cadences: 4, ..Faults::default() }).unwrap();
    let whole = Scratch::new();
    whole.write("targets.csv", targets_csv(8));
    whole.write("r.yaml", recipe(&emu.tesscut_url(), "", QUICK));
    assert_eq!(whole.etd().args(["run", "r.yaml"]).output().unwrap().status.code(), Some(3));
    let split = Scratch::new();
    split.write("targets.csv", targets_csv(8));
    split.write("r.yaml", recipe(&emu.tesscut_url(), "", QUICK));
    emu.reset_meter();
    for i in ["0", "1"] {
        let out = split.etd().args(["fetch", "r.yaml", "--task-index", i, "--num-tasks", "2"]).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    }
    let m = emu.meter();
    assert_eq!(m.by_endpoint["sector"], 8, "each target is looked up by one task: {m:?}");
    assert_eq!(split.etd().args(["shard", "r.yaml"]).output().unwrap().status.code(), Some(3));
    assert!(split.shard_files() == whole.shard_files(), "the split run's shards differ");
    // No shared filesystem: each task fetches and writes its shard part in a workdir of its own
    // (a cutout's part is its target's task), and the merge gets only the parts.
    let etd_in = |workdir: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
        for var in etd::env_vars::ALL {
            cmd.env_remove(var);
        }
        cmd.current_dir(split.path()).arg("--workdir").arg(split.join(workdir)).args(args).output().unwrap()
    };
    for i in ["0", "1"] {
        let out = etd_in(&format!("task{i}"), &["run", "r.yaml", "--task-index", i, "--num-tasks", "2"]);
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    }
    let parts: Vec<String> =
        ["0", "1"].iter().map(|i| split.join(&format!("task{i}/parts/shard-{i}-of-2")).display().to_string()).collect();
    let out = etd_in("merged", &["shard", "r.yaml", "--merge", &parts[0], &parts[1]]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let merged = split.join("merged/shards");
    let mut files: Vec<(String, Vec<u8>)> = fs_err::read_dir(&merged)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs_err::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    assert!(files == whole.shard_files(), "the merged parts' shards differ");
}

/// Paths and ports out of a message.
fn clean(text: &str, s: &Scratch) -> String {
    text.replace(&s.path().display().to_string(), "[TMP]")
}

#[test]
fn limits_and_withdrawn_products_are_refused_with_the_reason() {
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(2));
    let base = emu.tesscut_url();
    s.write("r.yaml", recipe(&base, "", "politeness: {rate: 6/s}\n"));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(clean(&stderr(&out), &s), @r"
    error: r.yaml:6:20: politeness.rate: 6/s is above MAST's limit of 5 requests per second for TESScut
      hint: TESScut answers 503 above 5 requests per second or 10 simultaneous calls, and MAST blocks heavy clients; pass --exceed-archive-limits only for a mirror or with the archive's permission
    ");
    // `check` needs no server; a fixed base URL keeps the columns in the messages fixed.
    let fixed = "http://127.0.0.1:9/tesscut/api/v0.1";
    s.write("r.yaml", recipe(fixed, "", "politeness: {concurrency: 11}\n"));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(clean(&stderr(&out), &s), @r"
    error: r.yaml:6:27: politeness.concurrency: 11 requests in flight is above MAST's limit of 10 for TESScut
      hint: TESScut answers 503 above 5 requests per second or 10 simultaneous calls, and MAST blocks heavy clients; pass --exceed-archive-limits only for a mirror or with the archive's permission
    ");
    s.write("r.yaml", recipe(fixed, "", "politeness: {read_rate: 6/s}\n"));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("politeness.read_rate: this source does not limit reads apart from writes"),
        "{}",
        stderr(&out)
    );
    s.write("r.yaml", recipe(fixed, ", product: TICA", ""));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(clean(&stderr(&out), &s), @r"
    error: r.yaml:5:99: source.astrocut.product: TICA products are withdrawn: TESScut no longer serves cutouts of TESS Image Calibrator images
      hint: use `product: SPOC` (the default)
    ");
    s.write("r.yaml", recipe(fixed, ", sectors: [1, 27]", "politeness: {rate: 1/s}\n"));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("requests     6 (per target: 1 sector look-up + at most 2 astrocut"), "{text}");
    assert!(text.contains("min time     6.0s at 1/s with at most 3 in flight"), "{text}");
    // A target gives one sample per sector: units and splits count targets, and say so.
    assert!(text.contains("units        2 (one sample per sector that observed the target)\n"), "{text}");
    assert!(text.contains(": ~2 targets (one sample per sector that observed the target), 1 shard or more"), "{text}");
    s.write("r.yaml", recipe(&base, "", "politeness: {concurrency: 11, rate: 6/s}\n"));
    let out = s.etd().args(["fetch", "--dry-run", "--exceed-archive-limits", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("politeness.concurrency: 11 requests in flight is above MAST's limit of 10"), "{err}");
    assert!(err.contains("politeness.rate: 6/s is above MAST's limit of 5"), "{err}");
    assert_eq!(emu.meter().requests, 0);
}

/// `curl` of `base/q` with `args`: the body, then a line with the status and content type; empty
/// without curl. Paced inside 5 requests per second.
fn curl(base: &str, args: &[&str], q: &str) -> String {
    std::thread::sleep(Duration::from_millis(250));
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code} %{content_type}"])
        .args(args)
        .arg(format!("{base}/{q}"))
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

#[test]
fn the_emulator_refuses_what_the_service_refuses() {
    let emu = AstrocutEmulator::start(Faults { cadences: 2, ..Faults::default() }).unwrap();
    let base = emu.tesscut_url();
    let get = |q: &str| curl(&base, &[], q);
    if get("sector?ra=1&dec=-70").is_empty() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    assert!(get("sector?ra=1&dec=-70").ends_with("200 application/json"));
    assert!(get("sector?ra=1&dec=-70&radius=3q").ends_with("400 application/json"));
    assert!(get("astrocut?ra=1&dec=-70&x=5&y=5&units=furlong").ends_with("400 application/json"));
    assert!(get("astrocut?ra=1&dec=-70&x=5&y=5&product=TICA").ends_with("400 application/json"));
    assert!(get("astrocut?ra=1&dec=-70&x=500&y=5").ends_with("400 application/json"));
    assert!(get("astrocut?ra=1&dec=2&x=5&y=5").starts_with("{\"msg\":"));
    assert!(get("astrocut?ra=1&dec=-70&x=5&y=5&sector=1").ends_with("200 application/zip"));
    assert!(get("nothing").ends_with("404 text/plain; charset=utf-8"));
}

/// The Python consumers; None (skipped, or failed under CI) when they are missing.
fn interop_python() -> Option<std::path::PathBuf> {
    let python = super::interop::python();
    if python.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but the python consumers are missing");
        eprintln!("skipped: no python with webdataset, numpy and astropy (set ETD_TEST_PYTHON)");
    }
    python
}

#[test]
fn numpy_reads_every_array_and_astropy_reads_the_fits_field() {
    let Some(python) = interop_python() else { return };
    let emu = AstrocutEmulator::start(Faults { cadences: 6, ..Faults::default() }).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(3));
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", fits: true", QUICK));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = r#"
import glob, io, json, sys
import numpy as np, webdataset as wds
from astropy.io import fits
n = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.tar")):
    for s in wds.WebDataset(path, shardshuffle=False):
        a = {k: np.load(io.BytesIO(s[k])) for k in ["npy", "fluxerr.npy", "bkg.npy", "time.npy", "quality.npy", "cadence.npy", "aperture.npy"]}
        meta = json.loads(s["json"])
        t, h, w = meta["shape"]
        assert a["npy"].dtype == np.float32 and a["npy"].shape == (t, h, w), a["npy"].shape
        assert a["fluxerr.npy"].shape == (t, h, w) and a["bkg.npy"].dtype == np.float32
        assert a["time.npy"].dtype == np.float64 and a["time.npy"].shape == (t,)
        assert a["quality.npy"].dtype == np.int32 and a["cadence.npy"].shape == (t,)
        assert a["aperture.npy"].shape == (h, w)
        with fits.open(io.BytesIO(s["fits"])) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "PIXELS", "APERTURE"], [h.name for h in hdul]
            assert hdul[0].header["SECTOR"] == meta["sector"]
            flux = hdul["PIXELS"].data["FLUX"]
            assert np.array_equal(flux, a["npy"], equal_nan=True)
            assert np.array_equal(hdul["PIXELS"].data["TIME"], a["time.npy"])
            assert np.array_equal(hdul["APERTURE"].data, a["aperture.npy"])
        n += 1
print(n)
"#;
    let out = std::process::Command::new(python).arg("-c").arg(script).arg(s.shards()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = expected_samples(&targets(3), &[]).len();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.to_string());
}

#[test]
fn the_repository_recipe_checks_and_runs_against_the_emulator() {
    let path = super::common::repo().join("recipes/tess-variable-stars.yaml");
    let s = Scratch::new();
    let out = s.etd().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("source       astrocut"), "{}", stdout(&out));

    let emu = AstrocutEmulator::start(Faults { cadences: 4, ..Faults::default() }).unwrap();
    let text = fs_err::read_to_string(&path).unwrap();
    assert!(text.contains("  astrocut:\n"));
    let text = text.replace("  astrocut:\n", &format!("  astrocut:\n    base_url: \"{}\"\n", emu.tesscut_url()));
    s.write("r.yaml", text);
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let manifest = s.manifest();
    assert_eq!(manifest["samples"], 10, "five stars, two sectors each in the emulator's sky");
    assert_eq!(manifest["classes"], serde_json::json!(["alpha2-cvn", "cepheid", "gamma-dor", "lbv", "semiregular"]));
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn big_cutouts_wait_for_the_slow_server_and_damaged_zips_are_kept_and_refused() {
    let emu = AstrocutEmulator::start(Faults {
        big_cutout_delay: Duration::from_millis(2500),
        cadences: 3,
        ..Faults::default()
    })
    .unwrap();
    let s = Scratch::new();
    s.write("targets.csv", "name,ra,dec,class\nTIC 1,3.1,-70,rrlyr\n");
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", sectors: [1]", QUICK).replace("size: 5", "size: 31"));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = emu.meter();
    assert_eq!(m.requests, 2, "a slow answer is waited for, not retried: {m:?}");
    let (shape, _) = npy::<f32>(&members(&s.shards())["TIC_1-s0001.npy"]);
    assert_eq!(shape, [3, 31, 31]);

    emu.set_faults(Faults { damaged_zips: true, cadences: 3, ..Faults::default() });
    let s = Scratch::new();
    s.write("targets.csv", "name,ra,dec,class\nTIC 1,3.1,-70,rrlyr\n");
    s.write("r.yaml", recipe(&emu.tesscut_url(), ", sectors: [1]", QUICK));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    let line = clean(failures.trim(), &s).replace(&emu.tesscut_url(), "[BASE]");
    insta::assert_snapshot!(line, @r#"{"unit":"TIC 1 sector 1","stage":"fetch","kind":"invalid-answer","reason":"the astrocut answer of [BASE]/astrocut?ra=3.1&dec=-70&y=5&x=5&units=px&sector=1&product=SPOC is not a whole zip of FITS files (nor a {\"msg\"} answer): member `tess-s0001-4-1_3.1_-70_5x5_astrocut.fits` does not inflate: corrupt deflate stream (after 2 tries; the answer is kept in [TMP]/work/rejected/astrocut/TIC_1/astrocut_3.1_-70_5x5.zip)"}"#);
    let kept = s.join("work/rejected/astrocut/TIC_1/astrocut_3.1_-70_5x5.zip");
    assert!(kept.is_file(), "the refused answer is kept as the server named it");
}

#[test]
fn the_workdir_stays_locked_while_the_cutouts_are_fetched() {
    let emu = AstrocutEmulator::start(Faults { latency: Duration::from_millis(400), cadences: 3, ..Faults::default() })
        .unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(2));
    s.write("r.yaml", recipe(&emu.tesscut_url(), "", QUICK));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
        .current_dir(s.path())
        .args(["--workdir", "work", "-q", "fetch", "r.yaml"])
        .spawn()
        .unwrap();
    // Wait until both look-ups are journaled: the cutouts are under way then.
    let journal = s.join("work/journal.jsonl");
    let started = std::time::Instant::now();
    while fs_err::read_to_string(&journal).map_or(0, |j| j.lines().count()) < 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "the look-ups never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert!(stderr(&out).contains("another etd process is using the workdir"), "{}", stderr(&out));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// ---- Zcut: deep-field mosaics ----

use etd_emulators::astrocut::zcut;

/// Galaxies in the emulator's GOODS-North (all three of its surveys, or only `goods_north` at
/// the edge), one in GOODS-South, and one no survey covers; two classes.
const ZCUT_TARGETS: &str = "name,ra,dec,class\n\
    GN 1,189.2283,62.2380,spiral\n\
    GN 2,189.1061,62.2421,elliptical\n\
    GN 3,189.2995,62.3700,spiral\n\
    GS 1,53.1220,-27.8050,elliptical\n\
    Nowhere,10.0,10.0,spiral\n";

fn zcut_targets() -> Vec<(String, f64, f64, String)> {
    ZCUT_TARGETS
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].to_string())
        })
        .collect()
}

fn zcut_recipe(base: &str, source: &str, rest: &str) -> String {
    format!(
        "version: 1\nname: zcut-test\ntargets: {{file: targets.csv, columns: {{id: name, label: class}}}}\n\
         source:\n  astrocut: {{service: zcut, base_url: \"{base}\", size: 24{source}}}\n{rest}"
    )
}

const ZCUT_IMAGE: &str = "transform: {image: {outputs: [npy, json, fits], nan: keep}}\n";

/// The samples the emulator's sky gives: (key, target index, survey), key order.
fn zcut_expected(skip: &[&str]) -> Vec<(String, usize, &'static zcut::Survey)> {
    let mut out = Vec::new();
    for (i, (id, ra, dec, _)) in zcut_targets().iter().enumerate() {
        for s in zcut::surveys_at(*ra, *dec) {
            if !skip.contains(&s.name) {
                out.push((format!("{}-{}", id.replace(' ', "_"), s.name), i, s));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn zcut_fetch_shard_verify_under_faults_within_both_limits() {
    let faults = Faults {
        every_nth_503: Some((3, Some(1))),
        every_nth_slow: Some((4, Duration::from_millis(1200))),
        no_data_surveys: vec!["goods_north".into()],
        ..Faults::default()
    };
    let emu = AstrocutEmulator::start(faults).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", ZCUT_TARGETS);
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), "", ZCUT_IMAGE));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // 1 target no survey covers; goods_north answers {"msg"} for the 3 GOODS-N galaxies.
    let want = zcut_expected(&["goods_north"]);
    assert_eq!(want.len(), 5, "{want:?}");
    assert!(err.contains(&format!("{} done, 4 failed (1 no-coverage, 3 no-data)", 4 + want.len())), "{err}");
    let m = emu.meter();
    assert_inside_limits_and_throttled(&m);
    assert!(m.by_endpoint["survey"] >= 5 && !m.by_endpoint.contains_key("sector"), "{m:?}");
    assert!(m.cutouts.iter().all(|c| c.starts_with("/zcut/api/v0.1/astrocut?") && c.ends_with("&format=fits")));
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(failures.contains("\"unit\":\"GN 3 survey goods_north\",\"stage\":\"fetch\",\"kind\":\"no-data\""));
    assert!(failures.contains("\"unit\":\"Nowhere\"") && failures.contains("no Zcut survey covers"), "{failures}");

    rerun_asks_nothing_then_shard(&s, &emu);
    let manifest = s.manifest();
    assert_eq!(manifest["samples"], want.len());
    assert_eq!(manifest["classes"], serde_json::json!(["elliptical", "spiral"]));
    let all = members(&s.shards());
    let t = zcut_targets();
    for (key, i, survey) in &want {
        let (id, ra, dec, class) = &t[*i];
        let planes: Vec<f32> =
            (0..survey.mosaics.len()).flat_map(|m| zcut::pixels_of(survey, m, *ra, *dec, 24, 24)).collect();
        let (shape, px) = npy::<f32>(&all[&format!("{key}.npy")]);
        let c = survey.mosaics.len() as u64;
        assert_eq!(shape, if c == 1 { vec![24, 24] } else { vec![c, 24, 24] }, "{key}");
        assert!(same_f32(&px, &planes), "{key}: the pixels are what the server sent");
        let json: serde_json::Value = serde_json::from_slice(&all[&format!("{key}.json")]).unwrap();
        assert_eq!(json["id"], id.as_str());
        assert_eq!(json["survey"], survey.name);
        assert_eq!(json["service"], "zcut");
        let origs: Vec<&str> =
            json["channels"].as_array().unwrap().iter().map(|c| c["orig_file"].as_str().unwrap()).collect();
        let want_origs: Vec<&str> = survey.mosaics.iter().map(|m| m.0).collect();
        assert_eq!(origs, want_origs, "{key}");
        assert_eq!(json["header"]["CTYPE1"], "RA---TAN");
        assert!((json["header"]["CRVAL2"].as_f64().unwrap() - dec).abs() < 1e-9);
        assert_eq!(json["nonfinite_pixels"], if c > 1 { 1 } else { 0 }, "{key}");
        let url = json["url"].as_str().unwrap();
        assert!(url.ends_with(&format!("&y=24&x=24&units=px&survey={}&format=fits", survey.name)), "{url}");
        assert_eq!(json["raw_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(json["label"], class.as_str());
        assert_eq!(all[&format!("{key}.cls")], if class == "elliptical" { b"0" } else { b"1" });
        assert!(all[&format!("{key}.fits")].starts_with(b"SIMPLE  ="));
    }
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn zcut_png_and_jpg_cutouts_become_image_fields() {
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", "name,ra,dec,class\nGN 1,189.2283,62.2380,spiral\n");
    let image = "transform: {image: {outputs: [npy, json, png]}}\n";
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), ", format: png, survey: [candels_gn_60mas, goods_north]", image));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = members(&s.shards());
    let survey = zcut::survey("candels_gn_60mas").unwrap();
    let grey: Vec<f32> = (0..3)
        .flat_map(|m| zcut::grey_of(&zcut::pixels_of(survey, m, 189.2283, 62.238, 24, 24), 24, 24))
        .map(f32::from)
        .collect();
    let (shape, px) = npy::<f32>(&all["GN_1-candels_gn_60mas.npy"]);
    assert_eq!((shape, px), (vec![3, 24, 24], grey), "png pixels arrive exactly, image row 0 first");
    // One png member passes through as it came; three become a preview.
    let single = &all["GN_1-goods_north.png"];
    let goods = zcut::survey("goods_north").unwrap();
    assert_eq!(single, &zcut::image(goods, 0, 189.2283, 62.238, 24, 24, true).unwrap());
    assert!(all["GN_1-candels_gn_60mas.png"].starts_with(b"\x89PNG"));
    let json: serde_json::Value = serde_json::from_slice(&all["GN_1-goods_north.json"]).unwrap();
    assert_eq!((json["format"].as_str(), json["shape"].clone()), (Some("png"), serde_json::json!([24, 24])));

    // jpg: lossy, so only the shape; and a jpg has no FITS file to keep.
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), ", format: jpg, survey: goods_north", image));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("fetched with other source settings"), "{}", stderr(&out));
    let (shape, _) = npy::<f32>(&members(&s.shards())["GN_1-goods_north.npy"]);
    assert_eq!(shape, [24, 24]);
    s.write("r.yaml", zcut_recipe("http://127.0.0.1:9/zcut/api/v0.1", ", format: jpg", ZCUT_IMAGE));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("transform.image.outputs: a Zcut jpg cutout has no FITS file to put in the `fits` field"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn zcut_kill_9_during_fetch_then_rerun_gives_the_uninterrupted_shards() {
    let faults = || Faults { latency: Duration::from_millis(150), every_nth_503: Some((5, None)), ..Faults::default() };
    let emu = AstrocutEmulator::start(faults()).unwrap();
    let reference = Scratch::new();
    reference.write("targets.csv", ZCUT_TARGETS);
    reference.write("r.yaml", zcut_recipe(&emu.zcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")));
    let out = reference.etd().args(["run", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let s = Scratch::new();
    s.write("targets.csv", ZCUT_TARGETS);
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")));
    emu.forget_attempts();
    kill_9_fetches(&s, &[700, 1500]);
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap_or_default();
    assert!(journal.lines().count() > 0, "the killed runs journaled some units");
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let total = 5 + zcut_expected(&[]).len() as u64;
    let m = emu.meter();
    assert!(m.by_endpoint.values().sum::<u64>() < total, "the rerun asked for less than the whole: {m:?}");
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(s.shard_files() == reference.shard_files(), "the resumed run's shards differ");
}

#[test]
fn zcut_dry_run_limits_and_truncated_zips() {
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", ZCUT_TARGETS);
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), ", survey: [candels_gn_60mas, goods_north]", QUICK));
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);
    let text = stdout(&out);
    let base = emu.zcut_url();
    assert_eq!(
        text.lines().next().unwrap(),
        format!("GN 1\tPOST {base}/survey (ra=189.2283&dec=62.238)\tthen 1 astrocut per survey")
    );
    assert!(stderr(&out).contains("5 survey look-ups and 0 cutouts to fetch"), "{}", stderr(&out));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // GN 1 and GN 2 in both surveys, GN 3 in goods_north only.
    assert_eq!(emu.meter().by_endpoint["zcut-astrocut"], 5);
    // Adding a survey fetches only its cutouts, and the dry run names them.
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), ", survey: all", QUICK));
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains(" survey ") && l.contains("\tGET ")), "{text}");
    assert!(text.contains(&format!("GN 1 survey candels_gn_30mas\tGET {base}/astrocut?ra=189.2283&dec=62.238&y=24&x=24&units=px&survey=candels_gn_30mas&format=fits")), "{text}");

    // Above MAST's limits: refused, naming the service.
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), "", "politeness: {rate: 6/s}\n"));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("politeness.rate: 6/s is above MAST's limit of 5 requests per second for Zcut"), "{err}");
    assert!(err.contains("hint: Zcut answers 503 above 5 requests per second or 10 simultaneous calls"), "{err}");
    s.write("r.yaml", zcut_recipe("http://127.0.0.1:9/zcut/api/v0.1", ", survey: [goods_north]", QUICK));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("requests     10 (per target: 1 survey look-up + at most 1 astrocut"),
        "{}",
        stdout(&out)
    );

    // A zip cut short (its Content-Length agreeing) is refused and kept, not sharded.
    emu.set_faults(Faults { truncated_zips: true, ..Faults::default() });
    let s = Scratch::new();
    s.write("targets.csv", "name,ra,dec,class\nGN 1,189.2283,62.2380,spiral\n");
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), ", survey: goods_north", QUICK));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(failures.contains("\"unit\":\"GN 1 survey goods_north\",\"stage\":\"fetch\",\"kind\":\"invalid-answer\""));
    assert!(failures.contains("is not a whole zip of FITS files"), "{failures}");
    assert!(failures.contains("end-of-central-directory"), "{failures}");
}

#[test]
fn the_zcut_emulator_refuses_what_the_service_refuses() {
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let base = emu.zcut_url();
    let get = |q: &str| curl(&base, &[], q);
    let post = |form: &str, q: &str| curl(&base, &["--data", form], q);
    if get("survey?ra=189.2&dec=62.2").is_empty() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    assert!(get("survey?ra=189.2&dec=62.2").ends_with("405 text/plain; charset=utf-8"), "the look-up is POST only");
    let found = post("ra=189.2283&dec=62.238", "survey");
    assert!(found.starts_with(r#"{"surveys":["candels_gn_30mas","candels_gn_60mas","goods_north"]}"#), "{found}");
    assert!(post("ra=10&dec=10", "survey").starts_with(r#"{"surveys":[]}"#));
    assert!(post("ra=10&dec=10&radius=3q", "survey").ends_with("400 application/json"));
    assert!(post("ra=400&dec=10", "survey").ends_with("400 application/json"));
    assert!(get("astrocut?ra=189.2283&dec=62.238&x=5&y=5&units=furlong").ends_with("400 application/json"));
    assert!(get("astrocut?ra=189.2283&dec=62.238&x=5&y=5&format=gif").ends_with("400 application/json"));
    assert!(get("astrocut?ra=189.2283&dec=62.238&x=5000&y=5").ends_with("400 application/json"));
    assert!(get("astrocut?ra=10&dec=10&x=5&y=5").starts_with("{\"msg\":"));
    assert!(get("astrocut?ra=189.2283&dec=62.238&x=5&y=5&survey=candels_gs_60mas").starts_with("{\"msg\":"));
    assert!(get("astrocut?ra=189.2283&dec=62.238&x=5&y=5&survey=goods_north").ends_with("200 application/zip"));
}

/// Run `per_sample` (Python, with `s` the sample dict, `np`, `json`, `io`, `fits` imported) over
/// every sample of the shards of `scratch`; the number of samples.
fn python_over_samples(python: &Path, scratch: &Scratch, per_sample: &str) -> usize {
    let indented: String = per_sample.lines().map(|l| format!("        {l}\n")).collect();
    let script = format!(
        "import glob, io, json, sys\nimport numpy as np, webdataset as wds\nfrom astropy.io import fits\nn = 0\n\
         for path in sorted(glob.glob(sys.argv[1] + \"/*.tar\")):\n    for s in wds.WebDataset(path, shardshuffle=False):\n\
         {indented}        n += 1\nprint(n)\n"
    );
    let out = std::process::Command::new(python).arg("-c").arg(script).arg(scratch.shards()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn zcut_numpy_reads_every_array_and_astropy_reads_the_fits_field() {
    let Some(python) = interop_python() else { return };
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", ZCUT_TARGETS);
    s.write("r.yaml", zcut_recipe(&emu.zcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let per_sample = r#"
a = np.load(io.BytesIO(s["npy"]))
meta = json.loads(s["json"])
assert a.dtype == np.float32 and list(a.shape) == meta["shape"], (a.shape, meta["shape"])
with fits.open(io.BytesIO(s["fits"])) as hdul:
    images = [h for h in hdul[1:] if h.data is not None]
    assert [h.header["ORIG_FLE"] for h in images] == [c["orig_file"] for c in meta["channels"]]
    stacked = np.stack([h.data for h in images]) if len(images) > 1 else images[0].data
    assert np.array_equal(stacked.astype(np.float32), a, equal_nan=True)
"#;
    let n = python_over_samples(&python, &s, per_sample);
    assert_eq!(n, zcut_expected(&[]).len());
}

#[test]
fn the_repository_zcut_recipe_checks_and_runs_against_the_emulator() {
    let path = super::common::repo().join("recipes/goods-north-zcut.yaml");
    let s = Scratch::new();
    let out = s.etd().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("source       astrocut"), "{}", stdout(&out));

    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let text = fs_err::read_to_string(&path).unwrap();
    assert!(text.contains("  astrocut:\n"));
    let text = text.replace("  astrocut:\n", &format!("  astrocut:\n    base_url: \"{}\"\n", emu.zcut_url()));
    // Plain tar shards, to read the arrays back here.
    assert!(text.contains("compression: zstd"));
    s.write("r.yaml", text.replace("compression: zstd", "compression: none"));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let manifest = s.manifest();
    assert_eq!(manifest["samples"], 7, "GN-z11 and HDF850.1 in three surveys, GN20 in goods_north only");
    assert_eq!(manifest["classes"], serde_json::json!(["high-redshift", "submillimetre"]));
    let all = members(&s.shards());
    let (shape, _) = npy::<f32>(&all["HDF850_1-candels_gn_60mas.npy"]);
    assert_eq!(shape, [3, 100, 100], "6 arcsec of 0.06 arcsec pixels, three filters");
    let (shape, _) = npy::<f32>(&all["GN20-goods_north.npy"]);
    assert_eq!(shape, [200, 200]);
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

// ---- HAPcut: Hubble Advanced Products ----

use etd_emulators::astrocut::hapcut;

/// Two positions in the skycell with three products, one in the GOODS-North cell (one product),
/// one no product covers.
const HAPCUT_TARGETS: &str = "name,ra,dec,class\n\
    A 1,351.3478,-28.4978,cluster\n\
    A 2,351.3500,-28.4900,cluster\n\
    HDF,189.2058,62.2161,field\n\
    Nowhere,10.0,10.0,field\n";

fn hapcut_recipe(base: &str, source: &str, rest: &str) -> String {
    format!(
        "version: 1\nname: hapcut-test\ntargets: {{file: targets.csv, columns: {{id: name, label: class}}}}\n\
         source:\n  astrocut: {{service: hapcut, base_url: \"{base}\", size: 20{source}}}\n{rest}"
    )
}

/// (key, target index, product index, member name) of every sample the emulator's sky gives.
fn hapcut_expected() -> Vec<(String, usize, usize, String)> {
    let mut out = Vec::new();
    for (i, l) in HAPCUT_TARGETS.lines().skip(1).enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let (ra, dec): (f64, f64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        for cell in hapcut::skycells_at(ra, dec) {
            for (p, &product) in cell.products.iter().enumerate() {
                let (ins, det, filter) = product;
                let key = format!("{}-{}-{ins}_{det}_{filter}", f[0].replace(' ', "_"), cell.name);
                out.push((key, i, p, hapcut::file_name(cell, product, ra, dec)));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hapcut_fetch_shard_verify_under_faults_within_both_limits() {
    let faults = Faults {
        every_nth_503: Some((2, Some(1))),
        every_nth_slow: Some((3, Duration::from_millis(800))),
        ..Faults::default()
    };
    let emu = AstrocutEmulator::start(faults).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", HAPCUT_TARGETS);
    s.write("r.yaml", hapcut_recipe(&emu.hapcut_url(), "", ZCUT_IMAGE));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("3 done, 1 failed (1 no-data)"), "{err}");
    let m = emu.meter();
    assert_inside_limits_and_throttled(&m);
    assert_eq!(m.by_endpoint.keys().collect::<Vec<_>>(), ["hapcut-astrocut"], "no look-up: {m:?}");
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(failures.contains("\"unit\":\"Nowhere\",\"stage\":\"fetch\",\"kind\":\"no-data\""), "{failures}");
    rerun_asks_nothing_then_shard(&s, &emu);

    let want = hapcut_expected();
    assert_eq!(want.len(), 7);
    let manifest = s.manifest();
    assert_eq!(manifest["samples"], 7);
    assert!(manifest["fields"]["wht.npy"].as_str().unwrap().contains("WHT image"), "{manifest}");
    let all = members(&s.shards());
    let lines: Vec<&str> = HAPCUT_TARGETS.lines().skip(1).collect();
    for (key, i, p, member) in &want {
        let f: Vec<&str> = lines[*i].split(',').collect();
        let (ra, dec): (f64, f64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let (sci, wht) = hapcut::pixels_of(*p, ra, dec, 20, 20);
        let (shape, px) = npy::<f32>(&all[&format!("{key}.npy")]);
        assert_eq!(shape, [20, 20], "{key}");
        assert!(same_f32(&px, &sci), "{key}: SCI as the server sent it");
        let (shape, w) = npy::<f32>(&all[&format!("{key}.wht.npy")]);
        assert_eq!(shape, [20, 20], "{key}");
        assert!(same_f32(&w, &wht), "{key}: WHT as the server sent it");
        let json: serde_json::Value = serde_json::from_slice(&all[&format!("{key}.json")]).unwrap();
        assert_eq!(json["service"], "hapcut");
        assert_eq!(json["member"], member.as_str());
        let product = json["product"].as_str().unwrap();
        assert!(product.starts_with("p") && key.ends_with(&format!("-{product}")), "{key}: {product}");
        assert_eq!(json["filter"], member.rsplit('_').next().unwrap().trim_end_matches(".fits"));
        assert_eq!(json["header"]["CTYPE2"], "DEC--TAN");
        assert!(json["url"].as_str().unwrap().ends_with("&y=20&x=20&units=px"));
        assert_eq!(json["label"], f[3]);
        assert!(all[&format!("{key}.fits")].starts_with(b"SIMPLE  ="));
    }
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // FITS only: another format is a recipe error.
    s.write("r.yaml", hapcut_recipe(&emu.hapcut_url(), ", format: png", ""));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("source.astrocut.format: HAPcut serves FITS only, not `png`"), "{}", stderr(&out));
}

#[test]
fn hapcut_kill_9_resume_dry_run_and_truncated_zips() {
    let targets: String = std::iter::once("name,ra,dec,class\n".to_string())
        .chain((0..8).map(|i| format!("A {i},{:.4},-28.4978,cluster\n", 351.3400 + i as f64 * 0.002)))
        .collect();
    let emu = AstrocutEmulator::start(Faults { latency: Duration::from_millis(400), ..Faults::default() }).unwrap();
    let reference = Scratch::new();
    reference.write("targets.csv", &targets);
    reference.write("r.yaml", hapcut_recipe(&emu.hapcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")));
    let out = reference.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let s = Scratch::new();
    s.write("targets.csv", &targets);
    s.write("r.yaml", hapcut_recipe(&emu.hapcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")));
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 8, "{text}");
    let base = emu.hapcut_url();
    assert_eq!(
        text.lines().next().unwrap(),
        format!("A 0\tGET {base}/astrocut?ra=351.34&dec=-28.4978&y=20&x=20&units=px")
    );
    assert!(
        stderr(&out).contains("dry run: 8 cutouts to fetch (0 done, 0 failed earlier); at least 8 requests"),
        "{}",
        stderr(&out)
    );
    emu.reset_meter();
    kill_9_fetches(&s, &[900]);
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap_or_default();
    let done = journal.lines().count() as u64;
    assert!(done > 0 && done < 8, "the killed run fetched part of the work: {done}");
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(emu.meter().requests <= 8 - done + 4, "at most what was in flight is fetched again: {:?}", emu.meter());
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.shard_files() == reference.shard_files(), "the resumed run's shards differ");

    emu.set_faults(Faults { truncated_zips: true, ..Faults::default() });
    let s = Scratch::new();
    s.write("targets.csv", "name,ra,dec,class\nA 1,351.3478,-28.4978,cluster\n");
    s.write("r.yaml", hapcut_recipe(&emu.hapcut_url(), "", QUICK));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(failures.contains("\"unit\":\"A 1\",\"stage\":\"fetch\",\"kind\":\"invalid-answer\""), "{failures}");
    assert!(failures.contains("is not a whole zip of HAPcut FITS files"), "{failures}");
}

#[test]
fn the_hapcut_emulator_refuses_what_the_service_refuses() {
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let base = emu.hapcut_url();
    let get = |args: &[&str], q: &str| curl(&base, args, q);
    if get(&[], "astrocut?ra=10&dec=10&x=5&y=5").is_empty() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    assert!(get(&[], "astrocut?ra=10&dec=10&x=5&y=5").starts_with("{\"msg\":"));
    assert!(get(&[], "astrocut?ra=351.3478&dec=-28.4978&x=5&y=5&units=furlong").ends_with("400 application/json"));
    assert!(get(&[], "astrocut?ra=351.3478&dec=-28.4978&x=5").ends_with("400 application/json"));
    assert!(get(&[], "astrocut?ra=351.3478&dec=-98&x=5&y=5").ends_with("400 application/json"));
    assert!(get(&["--data", "ra=1"], "astrocut").starts_with("method not allowed"));
    assert!(get(&[], "astrocut?ra=351.3478&dec=-28.4978&x=5&y=5").ends_with("200 application/zip"));
}

#[test]
fn hapcut_numpy_reads_every_array_and_astropy_reads_the_fits_field() {
    let Some(python) = interop_python() else { return };
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", HAPCUT_TARGETS);
    s.write("r.yaml", hapcut_recipe(&emu.hapcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let per_sample = r#"
sci, wht = np.load(io.BytesIO(s["npy"])), np.load(io.BytesIO(s["wht.npy"]))
meta = json.loads(s["json"])
assert sci.dtype == np.float32 and list(sci.shape) == meta["shape"] and wht.shape == sci.shape
with fits.open(io.BytesIO(s["fits"])) as hdul:
    assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT"], [h.name for h in hdul]
    assert np.array_equal(hdul["SCI"].data, sci, equal_nan=True)
    assert np.array_equal(hdul["WHT"].data, wht, equal_nan=True)
    assert hdul[0].header["FILTER"].lower() == meta["filter"]
"#;
    let n = python_over_samples(&python, &s, per_sample);
    assert_eq!(n, hapcut_expected().len());
}

#[test]
fn the_repository_hapcut_recipe_checks_and_runs_against_the_emulator() {
    let path = super::common::repo().join("recipes/hst-hapcut.yaml");
    let s = Scratch::new();
    let out = s.etd().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("requests     2 (per target: 1 astrocut"), "{}", stdout(&out));
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let text = fs_err::read_to_string(&path).unwrap();
    let text = text.replace("  astrocut:\n", &format!("  astrocut:\n    base_url: \"{}\"\n", emu.hapcut_url()));
    s.write("r.yaml", text.replace("compression: zstd", "compression: none"));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.manifest()["samples"], 4, "three products at the documented position, one in the HDF-N");
    let all = members(&s.shards());
    let (shape, _) = npy::<f32>(&all["HDF-N-p1889x07y19-acs_wfc_f435w.wht.npy"]);
    assert_eq!(shape, [100, 100], "4 arcsec of 0.04 arcsec pixels");
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn zcut_and_hapcut_task_splits_give_the_same_shards_as_one_run() {
    let emu = AstrocutEmulator::start(Faults::default()).unwrap();
    let cases = [
        (ZCUT_TARGETS, zcut_recipe(&emu.zcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")), "survey"),
        (HAPCUT_TARGETS, hapcut_recipe(&emu.hapcut_url(), "", &format!("{ZCUT_IMAGE}{QUICK}")), "hapcut-astrocut"),
    ];
    for (targets, recipe, first) in cases {
        let whole = Scratch::new();
        whole.write("targets.csv", targets);
        whole.write("r.yaml", &recipe);
        assert_eq!(whole.etd().args(["run", "r.yaml"]).output().unwrap().status.code(), Some(3));
        let split = Scratch::new();
        split.write("targets.csv", targets);
        split.write("r.yaml", &recipe);
        emu.reset_meter();
        for i in ["0", "1", "2"] {
            let out = split.etd().args(["fetch", "r.yaml", "--task-index", i, "--num-tasks", "3"]).output().unwrap();
            assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
        }
        let m = emu.meter();
        let n = targets.lines().count() as u64 - 1;
        assert_eq!(m.by_endpoint[first], n, "each target's first request is made by one task: {m:?}");
        assert_eq!(split.etd().args(["shard", "r.yaml"]).output().unwrap().status.code(), Some(3));
        assert!(split.shard_files() == whole.shard_files(), "the split run's shards differ ({first})");
    }
}
