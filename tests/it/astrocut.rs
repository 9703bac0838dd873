//! The MAST astrocut source (TESScut) end to end against the loopback emulator
//! (`tests/emulators/src/astrocut`): sector look-ups then one cutout per (target, sector), under
//! injected faults, inside both of MAST's limits by the server's meter, arrays in the shards equal
//! to what the server sent, kill -9 and rerun, dry runs, task splits, refusals.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use etd_emulators::astrocut::{observations, pixels_of, AstrocutEmulator, Faults};

use super::common::{stderr, stdout, Scratch};

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
    assert_eq!(m.over_limit, 0, "{m:?}");
    assert!(m.peak_inflight <= 3, "{m:?}");
    assert!(m.max_starts_in_any_1s <= 3, "{m:?}");
    assert!(m.status_counts.get(&503).copied().unwrap_or(0) > 0, "the 503 fault fired: {m:?}");
    assert_eq!(m.requests_during_retry_after, 0, "{m:?}");
    assert!(m.by_endpoint["sector"] >= 10, "{m:?}");
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(failures.contains("\"kind\":\"no-data\"") && failures.contains("sector 27"), "{failures}");

    // A rerun makes no request.
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);

    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "fetch failures keep exit 3: {}", stderr(&out));
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
    for delay_ms in [900u64, 2500, 4000] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
            .current_dir(s.path())
            .args(["--workdir", "work", "-q", "fetch", "r.yaml"])
            .env("ETD_TEST_NO_RETRY_DELAY", "1")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
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
    s.write("r.yaml", recipe(&base, "", "politeness: {concurrency: 11, rate: 6/s}\n"));
    let out = s.etd().args(["fetch", "--dry-run", "--exceed-archive-limits", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("politeness.concurrency: 11 requests in flight is above MAST's limit of 10"), "{err}");
    assert!(err.contains("politeness.rate: 6/s is above MAST's limit of 5"), "{err}");
    assert_eq!(emu.meter().requests, 0);
}

#[test]
fn the_emulator_refuses_what_the_service_refuses() {
    let emu = AstrocutEmulator::start(Faults { cadences: 2, ..Faults::default() }).unwrap();
    let base = emu.tesscut_url();
    let get = |q: &str| {
        std::thread::sleep(Duration::from_millis(250)); // inside 5 requests per second
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code} %{content_type}"])
            .arg(format!("{base}/{q}"))
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
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

#[test]
fn numpy_reads_every_array_and_astropy_reads_the_fits_field() {
    let python = [
        std::env::var_os("ETD_TEST_PYTHON").map(std::path::PathBuf::from),
        Some(super::common::repo().join(".venv/bin/python")),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import webdataset, numpy, astropy"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but the python consumers are missing");
        eprintln!("skipped: no python with webdataset, numpy and astropy (set ETD_TEST_PYTHON)");
        return;
    };
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
