//! The shards as their real consumers read them: Python webdataset + numpy + astropy, GNU tar and
//! zstd. Needs the pinned venv (`.ci/run` makes it at `.venv`, or set `ETD_TEST_PYTHON`); without it
//! the test says it was skipped, and under `CI=true` a missing tool fails it.

use std::path::PathBuf;
use std::process::Command;

use super::common::*;

/// A Python with webdataset, numpy and astropy (`ETD_TEST_PYTHON`, or the venv `.ci/run` makes).
pub(super) fn python() -> Option<PathBuf> {
    let candidates = [std::env::var_os("ETD_TEST_PYTHON").map(PathBuf::from), Some(repo().join(".venv/bin/python"))];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p).args(["-c", "import webdataset, numpy, astropy"]).output().is_ok_and(|o| o.status.success())
    })
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Skip (or, in CI, fail) when a consumer is missing.
fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but {what} is missing; .ci/run installs it");
        eprintln!("skipped: {what} is not installed (run .ci/run, or see README 'Tests')");
    }
    ok
}

fn build(compression: &str) -> Scratch {
    let s = Scratch::new();
    s.copy(&ps1_fixture(), "data/ps1/cutout.fits");
    for job in ["job00128", "job01064", "job01088"] {
        s.copy(&atlas_fixture(job), &format!("data/atlas/{job}.txt"));
    }
    for i in 0..5 {
        s.write(&format!("data/syn/s{i}.fits"), fits_f32(8, 6, &noise(48, i + 1), &[]));
    }
    s.write(
        "r.yaml",
        local_recipe("interop", &format!("transform:\n  image: {{nan: zero, outputs: [npy, json, png]}}\nshard: {{max_samples: 3, compression: {compression}}}\n")),
    );
    s.etd().args(["run", "r.yaml"]).assert().success();
    s
}

#[test]
fn python_webdataset_reads_every_sample_and_npy_equals_astropy() {
    etd_emulators::require_fixtures!();
    let Some(py) = python() else {
        require(false, "a Python with webdataset, numpy and astropy");
        return;
    };
    if !require(tool("zstd"), "zstd") {
        return;
    }
    for compression in ["none", "zstd"] {
        let s = build(compression);
        let out = Command::new(&py)
            .arg(repo().join("tests/interop/check_shards.py"))
            .arg(s.shards())
            .arg(s.join("data"))
            .arg("zero")
            .output()
            .unwrap();
        assert!(out.status.success(), "{compression}: {}\n{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("webdataset read 9 samples"), "{}", stdout(&out));
    }
}

#[test]
fn gnu_tar_lists_members_and_zstd_test_passes() {
    etd_emulators::require_fixtures!();
    if !require(tool("tar") && tool("zstd"), "GNU tar and zstd") {
        return;
    }
    for compression in ["none", "zstd"] {
        let s = build(compression);
        let manifest = s.manifest();
        for shard in manifest["shards"].as_array().unwrap() {
            let path = s.shards().join(shard["name"].as_str().unwrap());
            let listing = if compression == "zstd" {
                let t = Command::new("zstd").arg("-tq").arg(&path).output().unwrap();
                assert!(t.status.success(), "zstd -t {}: {}", path.display(), stderr(&t));
                Command::new("tar").env("TZ", "UTC").arg("--zstd").arg("-tvf").arg(&path).output().unwrap()
            } else {
                Command::new("tar").env("TZ", "UTC").arg("-tvf").arg(&path).output().unwrap()
            };
            assert!(listing.status.success(), "tar -t {}: {}", path.display(), stderr(&listing));
            let text = stdout(&listing);
            for line in text.lines() {
                assert!(line.starts_with("-rw-r--r-- 0/0"), "{line}");
                assert!(line.contains("1970-01-01 00:00"), "{line}");
            }
            let members = text.lines().count();
            assert!(members >= shard["samples"].as_u64().unwrap() as usize);
        }
    }
}

#[test]
fn python_webdataset_reads_ps1_samples_with_multi_part_fields() {
    etd_emulators::require_fixtures!();
    let Some(py) = python() else {
        require(false, "a Python with webdataset, numpy and astropy");
        return;
    };
    if !require(tool("zstd"), "zstd") {
        return;
    }
    let emu = etd_emulators::ps1::Ps1Emulator::start(Default::default()).unwrap();
    let s = Scratch::new();
    let rows: String = (0..12).map(|i| format!("t{i},{}.25,{}.5,{}\n", 10 + i * 7, i * 4, ["a", "b"][i % 2])).collect();
    s.write("t.csv", format!("id,ra,dec,label\n{rows}"));
    s.write(
        "r.yaml",
        format!(
            "version: 1\nname: ps1-interop\ntargets: {{file: t.csv}}\n\
             source:\n  ps1-cutouts: {{base_url: \"{}\", filters: [g, r, i], size: 32}}\n\
             politeness: {{rate: 500/s}}\n\
             transform:\n  image: {{nan: keep, outputs: [npy, json, fits, png]}}\n\
             shard: {{max_samples: 5, compression: zstd}}\n",
            emu.base_url()
        ),
    );
    s.etd().args(["run", "r.yaml"]).assert().success();
    let out = Command::new(&py)
        .arg(repo().join("tests/interop/check_ps1_shards.py"))
        .arg(s.shards())
        .arg("gri")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("webdataset read 12 PS1 samples"), "{}", stdout(&out));
}

#[test]
fn numpy_reads_atlas_light_curves_as_structured_arrays() {
    etd_emulators::require_fixtures!();
    let Some(py) = python() else {
        require(false, "a Python with webdataset, numpy and astropy");
        return;
    };
    if !require(tool("zstd"), "zstd") {
        return;
    }
    let emu = fast_atlas_emulator();
    let s = Scratch::new();
    let rows: String = (0..9).map(|i| format!("t{i},{}.5,{}.25\n", 20 + i * 30, i * 5)).collect();
    s.write("t.csv", format!("id,ra,dec\n{rows}"));
    s.write(
        "r.yaml",
        format!(
            "version: 1\nname: fp-interop\ntargets: {{file: t.csv}}\n\
             source:\n  atlas-fp: {{base_url: \"{}\", mjd_min: 57000, poll: {{initial: 50ms, max: 100ms}}}}\n\
             politeness: {{rate: 40/s, read_rate: 200/s}}\n\
             shard: {{max_samples: 4, compression: zstd}}\n",
            emu.base_url()
        ),
    );
    s.etd().env("ATLAS_TOKEN", "0123456789abcdef0123456789abcdef01234567").args(["run", "r.yaml"]).assert().success();
    let out =
        Command::new(&py).arg(repo().join("tests/interop/check_lightcurves.py")).arg(s.shards()).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("webdataset read 9 light curves"), "{}", stdout(&out));
}

#[test]
fn numpy_reads_atlas_var_light_curves_with_the_documented_dtype() {
    let Some(py) = python() else {
        require(false, "a Python with webdataset, numpy and astropy");
        return;
    };
    if !require(tool("zstd"), "zstd") {
        return;
    }
    let emu = etd_emulators::atlas_var::AtlasVarEmulator::start(etd_emulators::atlas_var::Config::default()).unwrap();
    let s = Scratch::new();
    s.write(
        "r.yaml",
        format!(
            "version: 1\nname: var-interop\n\
             source:\n  atlas-var: {{catalog_url: \"{}\", lightcurves_url: \"{}\", region: {{ra: [0, 360], dec: [0, 30]}}}}\n\
             politeness: {{rate: 50/s}}\n\
             shard: {{max_samples: 10, compression: zstd, split: {{train: 0.8, val: 0.2}}}}\n",
            emu.catalog_url(),
            emu.lightcurves_url()
        ),
    );
    s.etd().args(["run", "r.yaml"]).assert().success();
    let samples = s.manifest()["samples"].as_u64().unwrap();
    assert!(samples > 20, "{samples}");
    let out =
        Command::new(&py).arg(repo().join("tests/interop/check_var_lightcurves.py")).arg(s.shards()).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("webdataset read {samples} ATLAS-VAR light curves")), "{}", stdout(&out));
}

#[test]
fn every_real_atlas_result_goes_through_fetch_and_shard_and_numpy_reads_it_column_for_column() {
    use etd_emulators::atlas_fp::FakeResult;
    use etd_emulators::fixtures::ATLAS_RESULTS;
    etd_emulators::require_fixtures!();
    let emu = fast_atlas_emulator();
    // One target per real result file: nan rows, five filters, southern units 03a/04a, and
    // fluxes beyond 32-bit integers.
    let s = Scratch::new();
    let mut rows = String::from("id,ra,dec\n");
    for (i, job) in ATLAS_RESULTS.iter().enumerate() {
        let (ra, dec) = (15.5 + i as f64 * 40.0, -60.25 + i as f64 * 20.0);
        emu.set_result_for(ra, dec, FakeResult::Fixture(job));
        rows.push_str(&format!("{job},{ra},{dec}\n"));
    }
    s.write("t.csv", rows);
    s.write(
        "r.yaml",
        format!(
            "version: 1\nname: fp-real\ntargets: {{file: t.csv}}\n\
             source:\n  atlas-fp: {{base_url: \"{}\", mjd_min: 57000, poll: {{initial: 50ms, max: 100ms}}}}\n\
             politeness: {{rate: 40/s, read_rate: 200/s}}\n\
             shard: {{max_samples: 4, compression: zstd}}\n",
            emu.base_url()
        ),
    );
    let token = "0123456789abcdef0123456789abcdef01234567";
    let out = s.etd().env("ATLAS_TOKEN", token).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.manifest()["samples"], 6);
    // Each sample's txt is its fixture byte for byte (so the Python check compares with the text).
    let mut seen = 0;
    for (name, bytes) in s.shard_files() {
        if !name.ends_with(".tar.zst") {
            continue;
        }
        let tar = zstd::decode_all(&bytes[..]).unwrap();
        for m in tar::Archive::new(&tar[..]).entries().unwrap() {
            let mut m = m.unwrap();
            let path = m.path().unwrap().to_string_lossy().into_owned();
            if let Some(key) = path.strip_suffix(".txt") {
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut m, &mut got).unwrap();
                assert_eq!(got, fs_err::read(atlas_fixture(key)).unwrap(), "{key}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 6);
    let Some(py) = python() else {
        require(false, "a Python with webdataset, numpy and astropy");
        return;
    };
    let out =
        Command::new(&py).arg(repo().join("tests/interop/check_lightcurves.py")).arg(s.shards()).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("webdataset read 6 light curves (3855 rows)"), "{text}");
    assert!(
        text.contains("filters Hcior; units 01a 02a 03a 04a; nan chi/N rows 2; largest |uJy| 529808083386"),
        "{text}"
    );
}

/// An ATLAS forced-photometry emulator whose tasks queue and run for 50 ms, with throttle
/// windows 60 times shorter.
fn fast_atlas_emulator() -> etd_emulators::atlas_fp::AtlasEmulator {
    etd_emulators::atlas_fp::AtlasEmulator::start(etd_emulators::atlas_fp::Config {
        time_scale: 60.0,
        queue_time: std::time::Duration::from_millis(50),
        run_time: std::time::Duration::from_millis(50),
        ..Default::default()
    })
    .unwrap()
}
