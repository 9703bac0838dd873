//! ATLAS-VAR fetch against the loopback emulator: the catalog read and filtered, only the
//! partitions holding selected objects fetched, downloads resumed with range requests after a
//! connection reset (no byte fetched twice, as the emulator counts), never fetched again once
//! complete; and the same from a `file://` folder.

use std::collections::BTreeSet;

use etd_emulators::atlas_var::{AtlasVarEmulator, Config, Faults};

use super::common::{stderr, Scratch};

fn recipe(catalog: &str, lightcurves: &str) -> String {
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
    assert_eq!(std::fs::read(s.join(&format!("work/raw/atlas-var/{name}"))).unwrap(), catalog);
    for p in &want {
        let bytes = emu.dataset().partition_csv(p).unwrap();
        assert_eq!(m.bytes_sent_per_file[p], bytes.len() as u64, "{p} fetched once");
        assert_eq!(std::fs::read(s.join(&format!("work/raw/atlas-var/{p}"))).unwrap(), bytes, "{p}");
    }
    assert!(m.range_requests as usize > want.len(), "resumed with ranges: {}", m.range_requests);
    let journal = std::fs::read_to_string(s.join("work/journal.jsonl")).unwrap();
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
    let journal = std::fs::read_to_string(s.join("work/journal.jsonl")).unwrap();
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
        saw_part |= std::fs::metadata(&part).is_ok_and(|m| m.len() > 0 && m.len() < total);
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
