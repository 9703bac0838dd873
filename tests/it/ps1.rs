//! The PS1 cutout source end to end against the loopback PS1 emulator (`tests/emulators`): fetch
//! under injected faults, politeness as the server measured it, the arrays in the shards equal to
//! what the server sent, kill -9 and rerun, dry runs, batch task splits, failures and resumption.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use etd_emulators::ps1::{cutout_pixels, Faults, Ps1Emulator};

use super::common::{kill_9_fetches, stderr, stdout, Scratch};

/// `n` targets: every tenth below dec -30 (no PS1 coverage), labels from three classes.
pub(super) fn targets_csv(n: usize) -> String {
    let mut s = String::from("objid,ra,dec,class\n");
    for i in 0..n {
        let ra = (i as f64 * 1.37) % 360.0;
        let dec = if i % 10 == 7 { -45.0 + (i % 5) as f64 } else { -20.0 + (i as f64 * 0.73) % 100.0 };
        let class = ["spiral", "elliptical", "irregular"][i % 3];
        s.push_str(&format!("g{i:04},{ra:.4},{dec:.4},{class}\n"));
    }
    s
}

pub(super) fn recipe(base: &str, filters: &str, politeness: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: ps1-test\ntargets: {{file: targets.csv, columns: {{id: objid, label: class}}}}\n\
         source:\n  ps1-cutouts: {{base_url: \"{base}\", filters: [{filters}], size: 24}}\n\
         politeness: {politeness}\n\
         transform:\n  image: {{nan: keep, scale: none, outputs: [npy, json, fits]}}\n{extra}"
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

/// Most arrivals inside any window of `window_ms`.
fn max_in_window(arrivals_ms: &[f64], window_ms: f64) -> usize {
    let mut t = arrivals_ms.to_vec();
    t.sort_by(f64::total_cmp);
    let mut first = 0;
    let mut most = 0;
    for last in 0..t.len() {
        while t[last] - t[first] >= window_ms {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

fn npy_f32(bytes: &[u8]) -> (Vec<u64>, Vec<f32>) {
    let npy = npyz::NpyFile::new(bytes).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn journal_units(dir: &Path) -> Vec<(String, String)> {
    let mut units = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("journal") {
            for line in fs_err::read_to_string(&path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                units.push((v["unit"].as_str().unwrap().to_string(), v["status"].as_str().unwrap().to_string()));
            }
        }
    }
    units
}

#[test]
fn fetch_and_shard_under_faults_stays_polite_and_keeps_the_served_arrays() {
    etd_emulators::require_fixtures!();
    let faults = Faults {
        every_nth_429: Some((97, 1)),
        every_nth_503: Some(13),
        every_nth_reset: Some(17),
        every_nth_truncate: Some(19),
        every_nth_slow: Some((23, Duration::from_millis(300))),
        latency: Duration::from_millis(3),
        ..Faults::default()
    };
    let emu = Ps1Emulator::start(faults).unwrap();
    let s = Scratch::new();
    let n = 200;
    s.write("targets.csv", targets_csv(n));
    s.write(
        "r.yaml",
        recipe(&emu.base_url(), "g, r, i", "{concurrency: 6, rate: 100/s, retries: 6}", "shard: {max_samples: 64}\n"),
    );
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    // 20 targets have no coverage: they fail permanently, the rest are fetched.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("180 done, 20 failed (20 no-coverage)"), "{err}");
    let m = emu.meter();
    assert_eq!(m.over_limit, 0);
    assert!(m.peak_inflight <= 6, "peak in flight {}", m.peak_inflight);
    assert!(m.peak_inflight >= 3, "the limit should be used: peak {}", m.peak_inflight);
    // Burst 1 at 100/s: at most 100·W + 1 starts in any window of W seconds at the client. The
    // server sees them after a delay that varies by a few ms (two cores shared with the
    // emulator), so allow 20 ms of jitter: 2 requests.
    for w in [1.0, 5.0] {
        let most = max_in_window(&m.arrivals_ms, w * 1000.0);
        assert!(most as f64 <= 100.0 * w + 1.0 + 2.0, "{most} starts in {w} s");
    }
    assert!(m.max_starts_in_any_1s >= 50, "the rate should be used: {}", m.max_starts_in_any_1s);
    assert!(!m.throttles.is_empty(), "the 429 fault fired");
    assert_eq!(m.requests_during_retry_after, 0, "requests inside a Retry-After window");
    assert!(m.status_counts.get(&503).copied().unwrap_or(0) > 0);
    assert_eq!(m.user_agents.iter().collect::<Vec<_>>(), [&format!("etd/{}", env!("CARGO_PKG_VERSION"))]);

    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 20);
    assert!(failures.lines().all(|l| l.contains("\"kind\":\"no-coverage\"")), "{failures}");

    // A rerun skips what is done and what failed permanently: no request at all.
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);

    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "fetch failures keep exit 3: {}", stderr(&out));
    let manifest = s.manifest();
    assert_eq!(manifest["samples"], 180);
    assert_eq!(manifest["classes"], serde_json::json!(["elliptical", "irregular", "spiral"]));
    let all = members(&s.shards());
    let mut checked = 0;
    for i in (0..n).filter(|i| i % 10 != 7) {
        let key = format!("g{i:04}");
        let json: serde_json::Value = serde_json::from_slice(&all[&format!("{key}.json")]).unwrap();
        let class = ["spiral", "elliptical", "irregular"][i % 3];
        assert_eq!(json["label"], class);
        let cls = ["elliptical", "irregular", "spiral"].iter().position(|c| *c == class).unwrap();
        assert_eq!(all[&format!("{key}.cls")], cls.to_string().into_bytes());
        let (shape, data) = npy_f32(&all[&format!("{key}.npy")]);
        assert_eq!(shape, [3, 24, 24]);
        for (c, f) in ["g", "r", "i"].iter().enumerate() {
            let url = json["filters_meta"][f]["url"].as_str().unwrap();
            let q = query(url);
            let (ra, dec): (f64, f64) = (q["ra"].parse().unwrap(), q["dec"].parse().unwrap());
            let (want, h, w) = cutout_pixels(&q["red"], ra, dec, 24).unwrap();
            assert_eq!((h, w), (24, 24));
            assert!(same_f32(&data[c * 576..(c + 1) * 576], &want), "{key} filter {f}");
            assert!(all.contains_key(&format!("{key}.{f}.fits")));
        }
        checked += 1;
    }
    assert_eq!(checked, 180);
    let out = s.etd().args(["verify"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn dry_run_makes_no_request_and_prints_the_plan() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(30));
    s.write("r.yaml", recipe(&emu.base_url(), "g, r", "{rate: 4/s}", ""));
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 30);
    assert!(text.lines().next().unwrap().starts_with("g0000\tGET http://127.0.0.1:"), "{text}");
    assert!(text.contains("/cgi-bin/ps1filenames.py?ra=0&dec=-20&filters=gr&type=stack\tthen 2 fitscut.cgi"), "{text}");
    // 30 targets x 3 requests at 4/s
    assert!(stderr(&out).contains("90 requests; at least 22.5s at 4/s"), "{}", stderr(&out));
    assert!(!s.join("work").exists(), "a dry run writes nothing");
}

#[test]
fn tasks_split_the_units_disjointly_and_shard_merges_them() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults { latency: Duration::from_millis(2), ..Faults::default() }).unwrap();
    let s = Scratch::new();
    let n = 60;
    s.write("targets.csv", targets_csv(n));
    s.write("r.yaml", recipe(&emu.base_url(), "r", "{concurrency: 6, rate: 300/s}", ""));
    // Three tasks at once in one shared workdir, as an HTCondor cluster with a shared filesystem.
    let children: Vec<_> = (0..3)
        .map(|i| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
            cmd.current_dir(s.path()).args(["--workdir", "work", "fetch", "r.yaml", "--num-tasks", "3"]);
            cmd.env("JOB_COMPLETION_INDEX", i.to_string()).stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        // 3 for a task that owns targets without coverage, else 0.
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    }
    let m = emu.meter();
    // Every target listed exactly once; the three tasks together stayed within the limit.
    assert_eq!(m.by_endpoint["ps1filenames"], n as u64);
    assert_eq!(m.by_endpoint["fitscut"], (n - n / 10) as u64);
    assert!(m.peak_inflight <= 6, "peak {}", m.peak_inflight);
    let units = journal_units(&s.join("work"));
    let ids: BTreeSet<&str> = units.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(units.len(), n, "each unit journaled once");
    assert_eq!(ids.len(), n);
    let task_files = fs_err::read_dir(s.join("work"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("journal.task-"));
    assert_eq!(task_files.count(), 3);
    // A second round fetches nothing; shard merges the three journals.
    emu.reset_meter();
    for i in 0..3 {
        let out =
            s.etd().args(["fetch", "r.yaml", "--num-tasks", "3", "--task-index", &i.to_string()]).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    }
    assert_eq!(emu.meter().requests, 0);
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(s.manifest()["samples"], (n - n / 10) as u64);
    // The same shards as one task fetching everything.
    let one = Scratch::new();
    one.write("targets.csv", targets_csv(n));
    one.write("r.yaml", recipe(&emu.base_url(), "r", "{concurrency: 6, rate: 300/s}", ""));
    assert_eq!(one.etd().args(["run", "r.yaml"]).output().unwrap().status.code(), Some(3));
    assert_eq!(one.shard_files(), s.shard_files());
    // Shard as three tasks too, then merge: the same bytes again.
    fs_err::remove_dir_all(s.shards()).unwrap();
    for i in 0..3 {
        let out =
            s.etd().args(["shard", "r.yaml", "--num-tasks", "3", "--task-index", &i.to_string()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = s.etd().args(["shard", "r.yaml", "--merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(one.shard_files(), s.shard_files());
}

#[test]
fn kill_9_during_fetch_then_rerun_gives_the_uninterrupted_shards() {
    etd_emulators::require_fixtures!();
    let emu =
        Ps1Emulator::start(Faults { latency: Duration::from_millis(15), every_nth_503: Some(11), ..Faults::default() })
            .unwrap();
    let politeness = "{concurrency: 6, rate: 200/s}";
    let reference = Scratch::new();
    reference.write("targets.csv", targets_csv(80));
    reference.write("r.yaml", recipe(&emu.base_url(), "g, z", politeness, ""));
    let out = reference.etd().args(["run", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let s = Scratch::new();
    s.write("targets.csv", targets_csv(80));
    s.write("r.yaml", recipe(&emu.base_url(), "g, z", politeness, ""));
    kill_9_fetches(&s, &[250, 600, 1100]);
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(s.shard_files(), reference.shard_files());
    let leftovers: Vec<_> = walk(&s.join("work/raw")).into_iter().filter(|p| p.contains(".etd-tmp-")).collect();
    assert!(leftovers.is_empty(), "partial files of killed runs are cleaned up: {leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn permanent_failures_wait_for_retry_failed_and_refusals_are_permanent() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(10));
    s.write("r.yaml", recipe(&emu.base_url(), "g", "{rate: 500/s}", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(emu.meter().requests, 0, "failed units are not retried without --retry-failed");
    let out = s.etd().args(["fetch", "r.yaml", "--retry-failed"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(emu.meter().requests, 1, "only the failed unit is asked again");
    // A raw file deleted by hand: that target is fetched again (2 requests), nothing else.
    fs_err::remove_file(s.join("work/raw/ps1-cutouts/g0003/g.fits")).unwrap();
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("1 target recorded as done has raw files missing"), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 2);
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(s.manifest()["samples"], 9);
    // An answer the server refuses (404 under a wrong base path) is a permanent failure that
    // names the URL, not a crash and not a retry loop.
    let s = Scratch::new();
    s.write("targets.csv", "objid,ra,dec,class\na,10,20,x\n");
    s.write("r.yaml", recipe(&format!("{}/mirror", emu.base_url()), "g", "{rate: 500/s}", ""));
    emu.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 1, "4xx is not retried");
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert!(
        failures.contains("\"kind\":\"not-found\"") && failures.contains("/mirror/cgi-bin/ps1filenames.py"),
        "{failures}"
    );
}

#[test]
fn an_unreachable_archive_exits_75_and_records_nothing() {
    etd_emulators::require_fixtures!();
    // Bind and drop a listener: connections to this port are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(100));
    s.write("r.yaml", recipe(&format!("http://127.0.0.1:{port}"), "g", "{rate: 1000/s, retries: 2}", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("nothing is listening at http://127.0.0.1:{port}")), "{err}");
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap_or_default();
    assert!(journal.is_empty(), "nothing recorded: {journal}");
    // `run` does not shard an incomplete fetch, and keeps its exit code for the batch system.
    let out = s.etd().args(["run", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing is listening at"), "{}", stderr(&out));
    assert!(!s.join("work/shards").exists());
}

#[test]
fn concurrency_above_the_archive_limit_needs_the_override_flag() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(3));
    s.write("r.yaml", recipe(&emu.base_url(), "g", "{concurrency: 12, rate: 500/s}", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("politeness.concurrency") && err.contains("--exceed-archive-limits"), "{err}");
    assert_eq!(emu.meter().requests, 0);
    let out = s.etd().args(["fetch", "r.yaml", "--exceed-archive-limits"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("above PS1's stated maximum"));
}

/// A repository recipe, pointed at the emulator.
fn repo_recipe(s: &Scratch, name: &str, base: &str) {
    let text = fs_err::read_to_string(super::common::repo().join("recipes").join(name)).unwrap();
    assert!(text.contains("  ps1-cutouts:\n"), "{name}");
    let text = text.replace("  ps1-cutouts:\n", &format!("  ps1-cutouts:\n    base_url: \"{base}\"\n"));
    s.write(name, text);
}

#[test]
fn the_repository_recipes_run_end_to_end() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.copy(&super::common::repo().join("recipes/targets/galaxies.csv"), "targets/galaxies.csv");
    repo_recipe(&s, "ps1-galaxy-morphology.yaml", &emu.base_url());
    let out = s.etd().args(["run", "ps1-galaxy-morphology.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = s.manifest();
    assert_eq!(m["samples"], 18);
    assert_eq!(m["classes"], serde_json::json!(["elliptical", "irregular", "lenticular", "spiral"]));
    assert_eq!(m["splits"].as_object().unwrap().keys().collect::<Vec<_>>(), ["train", "val"]);
    // 120x120 g band, one filter: (H,W).
    let out = s
        .etd()
        .args(["inspect", "--json"])
        .arg(s.shards().join("ps1-galaxy-morphology-train-000000.tar.zst"))
        .output()
        .unwrap();
    assert!(stdout(&out).contains("\"npy\""), "{}", stdout(&out));

    let s = Scratch::new();
    repo_recipe(&s, "ps1-crab-color.yaml", &emu.base_url());
    let out = s.etd().args(["run", "ps1-crab-color.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let zst = fs_err::read(s.shards().join("ps1-crab-color-000000.tar.zst")).unwrap();
    let tar = zstd::decode_all(&zst[..]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("x.tar"), tar).unwrap();
    let all = members(dir.path());
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(names, ["crab.cls", "crab.g.fits", "crab.i.fits", "crab.json", "crab.npy", "crab.png", "crab.r.fits"]);
    let (shape, _) = npy_f32(&all["crab.npy"]);
    assert_eq!(shape, [3, 1200, 1200]);
}

/// `etd run` of the one target `m1` in g, r, i, the test recipe's `size: 24}` replaced by `source`
/// and its image outputs by `outputs`; exit 0 checked. The emulator and the scratch folder.
/// Callers check `require_fixtures!` first.
fn run_m1(source: &str, outputs: &str) -> (Ps1Emulator, Scratch) {
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", "objid,ra,dec,class\nm1,83.63321,22.01446,snr\n");
    s.write(
        "r.yaml",
        recipe(&emu.base_url(), "g, r, i", "{rate: 100/s}", "")
            .replace("size: 24}", source)
            .replace("outputs: [npy, json, fits]", outputs),
    );
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (emu, s)
}

#[test]
fn colour_jpg_cutouts_become_rgb_arrays_with_the_wcs_from_the_jpeg() {
    etd_emulators::require_fixtures!();
    let (emu, s) = run_m1("size: 40, format: jpg}", "outputs: [npy, json, png]");
    assert_eq!(emu.meter().by_endpoint["fitscut"], 1, "one colour request, not three");
    let raw = fs_err::read(s.join("work/raw/ps1-cutouts/m1/color.jpg")).unwrap();
    let picture = image::load_from_memory(&raw).unwrap().to_rgb8();
    let all = members(&s.shards());
    let (shape, data) = npy_f32(&all["m1.npy"]);
    assert_eq!(shape, [3, 40, 40]);
    for (i, p) in picture.pixels().enumerate() {
        for c in 0..3 {
            assert_eq!(data[c * 1600 + i], f32::from(p.0[c]));
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&all["m1.json"]).unwrap();
    assert_eq!(json["filters_meta"]["color"]["header"]["CTYPE1"], "RA---TAN");
    let url = json["filters_meta"]["color"]["url"].as_str().unwrap();
    let q = query(url);
    // Reddest first, as MAST's examples order them.
    assert!(q["red"].contains(".stk.i.") && q["green"].contains(".stk.r.") && q["blue"].contains(".stk.g."), "{url}");
    assert!(all["m1.png"].starts_with(b"\x89PNG"));
}

#[test]
fn a_whole_cutout_that_is_not_fits_is_read_twice_kept_under_rejected_and_fails_the_target() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults { html_instead_of_cutouts: true, ..Faults::default() }).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", "objid,ra,dec,class\ng0,10.5,20.25,spiral\n");
    s.write("r.yaml", recipe(&emu.base_url(), "r", "{rate: 100/s, retries: 6}", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let m = emu.meter();
    assert_eq!(m.by_endpoint["ps1filenames"], 1);
    assert_eq!(m.by_endpoint["fitscut"], 2, "one try and one retry, not the budget of 6");
    let kept = s.join("work/rejected/ps1-cutouts/g0/r.fits");
    assert_eq!(fs_err::read_to_string(&kept).unwrap(), etd_emulators::ps1::MAINTENANCE_PAGE);
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(failures.trim()).unwrap();
    assert_eq!(entry["kind"], "invalid-answer");
    let reason = entry["reason"].as_str().unwrap();
    assert!(reason.starts_with(&format!("fitscut.cgi answer {}/cgi-bin/fitscut.cgi?", emu.base_url())), "{reason}");
    assert!(reason.contains(": expected fits data, got text/html; charset=utf-8: <html>"), "{reason}");
    assert!(reason.ends_with(&format!("(after 2 tries; the answer is kept in {})", kept.display())), "{reason}");
}

/// Cutouts too large to hold a whole target's in memory (3 x 1100 x 1100 float32, 4.8 MB each)
/// are stored as they come: the target's files and journal are those of small ones, in the
/// recipe's order, and the arrays reach the shards whole.
#[test]
fn large_cutouts_are_stored_as_they_come_and_journaled_in_order() {
    etd_emulators::require_fixtures!();
    let (_emu, s) = run_m1("size: 1100}", "outputs: [npy]");
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    let paths: Vec<&str> = entry["inputs"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["m1/ps1filenames.txt", "m1/g.fits", "m1/r.fits", "m1/i.fits"]);
    let mut names: Vec<String> = fs_err::read_dir(s.join("work/raw/ps1-cutouts/m1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["g.fits", "i.fits", "ps1filenames.txt", "r.fits"], "no temporary files left");
    for input in entry["inputs"].as_array().unwrap() {
        let raw = fs_err::read(s.join("work/raw/ps1-cutouts").join(input["path"].as_str().unwrap())).unwrap();
        assert_eq!(raw.len() as u64, input["size"].as_u64().unwrap());
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&raw)), input["sha256"].as_str().unwrap());
    }
    let (shape, _) = npy_f32(&members(&s.shards())["m1.npy"]);
    assert_eq!(shape, [3, 1100, 1100]);
}
