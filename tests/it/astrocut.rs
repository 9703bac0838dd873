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
        let dec = if i % 5 == 3 { 2.5 } else if dec.abs() < 6.0 { dec + 12.0 } else { dec };
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
        assert_eq!(json["wcs"]["CRVAL1"], *ra);
        assert!(json["url"].as_str().unwrap().ends_with(&format!("&units=px&sector={sector}&product=SPOC")));
        assert_eq!(json["time_range_btjd"][1], px.time[11]);
        let class = ["rrlyr", "eclipsing"][i % 2];
        assert_eq!(json["label"], class);
        assert_eq!(all[&format!("{key}.cls")], if class == "eclipsing" { b"0" } else { b"1" });
        assert!(all[&format!("{key}.fits")].starts_with(b"SIMPLE  ="));
    }
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
