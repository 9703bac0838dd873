//! The ATLAS forced-photometry source end to end against the loopback ATLAS emulator: throttled
//! writes, polling, downloads, deletions, `kill -9` and resume, 404 resubmission, the token kept
//! out of every output, and the light curves in the shards equal to the real result files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use etd_emulators::atlas_fp::{result_text_for, AtlasEmulator, Config, FakeResult};

use super::common::{stderr, stdout, Scratch};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

/// Throttle windows of 1 s instead of 60 s, so the server allows 60 writes per second.
fn fast_server() -> Config {
    Config {
        time_scale: 60.0,
        queue_time: Duration::from_millis(150),
        run_time: Duration::from_millis(150),
        ..Config::default()
    }
}

fn targets_csv(n: usize) -> String {
    let mut s = String::from("id,ra,dec,label\n");
    for i in 0..n {
        let ra = 3.0 + (i as f64 * 1.1) % 350.0;
        let dec = -40.0 + (i as f64 * 0.77) % 80.0;
        s.push_str(&format!("sn{i:04},{ra:.5},{dec:.5},{}\n", ["Ia", "II"][i % 2]));
    }
    s
}

/// Politeness scaled like the server: 50 writes per (scaled) minute, reads well below 600.
fn recipe(base: &str, extra_source: &str, politeness: &str) -> String {
    format!(
        "version: 1\nname: fp-test\ntargets: {{file: t.csv}}\n\
         source:\n  atlas-fp:\n    base_url: \"{base}\"\n    mjd_min: 57000\n    batch: 40\n    \
         poll: {{initial: 100ms, max: 300ms}}\n{extra_source}\
         politeness: {politeness}\n"
    )
}

const POLITE: &str = "{rate: 50/s, read_rate: 300/s, concurrency: 8, retries: 6}";

fn members(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar);
    for m in ar.entries().unwrap() {
        let mut m = m.unwrap();
        let name = m.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn shard_members(s: &Scratch) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for (name, bytes) in s.shard_files() {
        if name.ends_with(".tar") {
            all.extend(members(&bytes));
        }
    }
    all
}

/// Every file below `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn etd_fp(s: &Scratch) -> assert_cmd::Command {
    let mut cmd = s.etd();
    cmd.env("ATLAS_TOKEN", TOKEN).env("ETD_TEST_NO_RETRY_DELAY", "1");
    cmd
}

#[test]
fn light_curves_end_to_end_within_the_write_limit_and_no_task_left_behind() {
    etd_emulators::require_fixtures!();
    let emu = AtlasEmulator::start(fast_server()).unwrap();
    let s = Scratch::new();
    let n = 200;
    s.write("t.csv", targets_csv(n));
    // Five targets without photometry.
    let rows: Vec<(f64, f64)> = targets_csv(n)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    for i in [3, 50, 99, 120, 199] {
        emu.set_result_for(rows[i].0, rows[i].1, FakeResult::NoData);
    }
    s.write("r.yaml", recipe(&emu.base_url(), "", POLITE));
    let out = etd_fp(&s).args(["-vv", "fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("195 done, 5 failed (5 no-data)"), "{err}");
    assert!(!err.contains(TOKEN), "the token is in the log");

    let m = emu.meter();
    assert!(m.max_writes_in_any_window <= 60, "writes in one window: {}", m.max_writes_in_any_window);
    assert_eq!(m.throttled, 0, "50/s stays below the server's 60 per window");
    assert_eq!(
        m.posts,
        5,
        "200 targets in batches of 40: {}",
        err.lines().filter(|l| l.contains("WARN")).take(10).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(m.deletes, 200, "every task deleted, the failed ones too");
    assert_eq!(m.authorization_headers_seen, BTreeSet::from(["Token".to_string()]));
    let tasks = emu.tasks();
    assert_eq!(tasks.len(), n, "one task per target");
    assert!(tasks.iter().all(|t| t.deleted), "tasks left on the server");
    assert!(tasks.iter().all(|t| t.comment.as_deref() == Some("etd:fp-test")));
    assert!(tasks.iter().all(|t| t.mjd_min == Some(57000.0) && !t.use_reduced));

    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 5);
    assert!(failures.contains("\"unit\":\"sn0003\"") && failures.contains("no-data"), "{failures}");

    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(s.manifest()["samples"], 195);
    assert_eq!(s.manifest()["classes"], serde_json::json!(["II", "Ia"]));
    let all = shard_members(&s);
    for (i, (ra, dec)) in rows.iter().enumerate() {
        let key = format!("sn{i:04}");
        if [3, 50, 99, 120, 199].contains(&i) {
            assert!(!all.contains_key(&format!("{key}.npy")));
            continue;
        }
        let text = result_text_for(*ra, *dec);
        assert_eq!(all[&format!("{key}.txt")], text.as_bytes(), "{key}: txt is the original bytes");
        // The npy's mjd column equals the file's first column.
        let npy = npyz::NpyFile::new(&all[&format!("{key}.npy")][..]).unwrap();
        let n_rows = npy.shape()[0] as usize;
        let want: Vec<f64> =
            text.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().parse().unwrap()).collect();
        assert_eq!(n_rows, want.len());
        let bytes = &all[&format!("{key}.npy")];
        let data = &bytes[bytes.len() - n_rows * 109..];
        let got: Vec<f64> = data.chunks(109).map(|r| f64::from_le_bytes(r[..8].try_into().unwrap())).collect();
        assert_eq!(got, want, "{key}");
        let json: serde_json::Value = serde_json::from_slice(&all[&format!("{key}.json")]).unwrap();
        assert_eq!(json["target"]["id"], key);
        assert!(json["task_url"].as_str().unwrap().contains("/forcedphot/queue/"));
        assert_eq!(all[&format!("{key}.cls")], if i % 2 == 0 { b"1" } else { b"0" });
    }
    // The token is nowhere in the workdir: journal, failures, raw files, shards, manifest.
    for f in files(&s.join("work")) {
        let bytes = fs_err::read(&f).unwrap();
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "token in {}", f.display());
    }
}

#[test]
fn throttled_writes_wait_as_the_server_says() {
    etd_emulators::require_fixtures!();
    // The server allows 20 writes per (scaled) minute of 1 s; etd is told it may do 200/s.
    let emu = AtlasEmulator::start(Config { write_rate_per_min: 20, ..fast_server() }).unwrap();
    let s = Scratch::new();
    s.write("t.csv", targets_csv(40));
    s.write("r.yaml", recipe(&emu.base_url(), "", "{rate: 200/s, read_rate: 300/s, retries: 20}"));
    let out = etd_fp(&s).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = emu.meter();
    assert!(m.throttled > 0, "the server throttled");
    assert_eq!(m.writes_during_retry_after, 0, "writes inside a Retry-After window");
    assert!(emu.tasks().iter().all(|t| t.deleted));
    assert!(stderr(&out).contains("waited on throttles"), "{}", stderr(&out));
}

#[test]
fn kill_9_then_rerun_submits_nothing_twice_and_gives_the_same_light_curves() {
    etd_emulators::require_fixtures!();
    let slow = Config { queue_time: Duration::from_millis(600), run_time: Duration::from_millis(400), ..fast_server() };
    let emu = AtlasEmulator::start(slow.clone()).unwrap();
    let reference_emu = AtlasEmulator::start(slow).unwrap();
    let n = 60;
    let reference = Scratch::new();
    reference.write("t.csv", targets_csv(n));
    reference.write("r.yaml", recipe(&reference_emu.base_url(), "    max_in_flight: 30\n", POLITE));
    let out = etd_fp(&reference).args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let s = Scratch::new();
    s.write("t.csv", targets_csv(n));
    s.write("r.yaml", recipe(&emu.base_url(), "    max_in_flight: 30\n", POLITE));
    for delay_ms in [300u64, 900, 1500, 2100] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
            .current_dir(s.path())
            .args(["--workdir", "work", "-q", "fetch", "r.yaml"])
            .env("ATLAS_TOKEN", TOKEN)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = etd_fp(&s).args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tasks = emu.tasks();
    let mut per_target: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for t in &tasks {
        *per_target.entry((t.ra.unwrap().to_bits(), t.dec.unwrap().to_bits())).or_default() += 1;
    }
    assert_eq!(per_target.len(), n);
    assert!(per_target.values().all(|&c| c == 1), "a target was submitted twice: {per_target:?}");
    assert!(tasks.iter().all(|t| t.deleted), "tasks left on the server");
    // Same light curves; the json differs only in the server's task and result URLs.
    let (a, b) = (shard_members(&s), shard_members(&reference));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        if name.ends_with(".json") {
            let strip = |v: &[u8]| {
                let mut j: serde_json::Value = serde_json::from_slice(v).unwrap();
                j.as_object_mut().unwrap().remove("task_url");
                j.as_object_mut().unwrap().remove("result_url");
                j
            };
            assert_eq!(strip(bytes), strip(&b[name]), "{name}");
        } else {
            assert_eq!(bytes, &b[name], "{name}");
        }
    }
}

#[test]
fn a_task_gone_from_the_server_is_submitted_again() {
    etd_emulators::require_fixtures!();
    let slow = Config { queue_time: Duration::from_millis(1500), ..fast_server() };
    let emu = AtlasEmulator::start(slow).unwrap();
    let s = Scratch::new();
    s.write("t.csv", targets_csv(4));
    s.write("r.yaml", recipe(&emu.base_url(), "", POLITE));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
        .current_dir(s.path())
        .args(["--workdir", "work", "-q", "fetch", "r.yaml"])
        .env("ATLAS_TOKEN", TOKEN)
        .spawn()
        .unwrap();
    // Wait until the batch is journaled, then kill and expire one task.
    for _ in 0..100 {
        if fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap_or_default().lines().count() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = emu.tasks();
    assert_eq!(first.len(), 4);
    emu.archive_task(first[1].id);
    let out = etd_fp(&s).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("is gone from the server"), "{}", stderr(&out));
    let tasks = emu.tasks();
    assert_eq!(tasks.len(), 5, "only the expired task was submitted again");
    assert!(tasks.iter().all(|t| t.deleted || t.state == "archived"), "{tasks:?}");
}

#[test]
fn the_token_never_shows_and_login_and_token_files_work() {
    etd_emulators::require_fixtures!();
    let emu = AtlasEmulator::start(fast_server()).unwrap();
    let s = Scratch::new();
    s.write("t.csv", targets_csv(3));
    // --dry-run: no request, no token needed, none printed.
    s.write("r.yaml", recipe(&emu.base_url(), "", POLITE));
    let out = etd_fp(&s).args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.meter().requests, 0);
    assert_eq!(stdout(&out).lines().count(), 3);
    assert!(stdout(&out).contains("POST http://127.0.0.1:"), "{}", stdout(&out));
    assert!(!stdout(&out).contains(TOKEN) && !stderr(&out).contains(TOKEN));
    // No token: exit 2 with a hint, before any request.
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("$ATLAS_TOKEN is not set") && stderr(&out).contains("apitoken"));
    assert_eq!(emu.meter().requests, 0);
    // A wrong token: the server's 401 is reported without the token.
    let out = s.etd().env("ATLAS_TOKEN", "f".repeat(40)).args(["-vv", "fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused the credentials"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&"f".repeat(40)), "{}", stderr(&out));
    // The error line names the refused request once.
    let error = stderr(&out).lines().find(|l| l.starts_with("error: ")).unwrap_or_default().to_string();
    let error = error.replace(&emu.base_url(), "[BASE]");
    insta::assert_snapshot!(
        error,
        @r#"error: the ATLAS server refused the credentials: POST [BASE]/queue/ failed: HTTP 401: {"detail":"Invalid token."}"#
    );
    assert!(!s.join("work/failures.jsonl").exists(), "a bad token is not a failure of the targets");
    // Username and password from the environment.
    s.write(
        "login.yaml",
        recipe(&emu.base_url(), "    username_env: FP_USER\n    password_env: FP_PASS\n", POLITE)
            .replace("name: fp-test", "name: fp-login"),
    );
    let out =
        s.etd().env("FP_USER", "etd").env("FP_PASS", "secret").args(["-vv", "fetch", "login.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("secret") && !stderr(&out).contains(TOKEN));
    let out = s.etd().env("FP_USER", "etd").env("FP_PASS", "wrong").args(["fetch", "login.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused the username and password"));
    // A token file readable by others gets a warning.
    let token_file = s.write("token", format!("{TOKEN}\n"));
    #[cfg(unix)]
    fs_err::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    s.write(
        "file.yaml",
        recipe(&emu.base_url(), "    token_file: token\n", POLITE).replace("name: fp-test", "name: fp-file"),
    );
    let out = s.etd().args(["fetch", "file.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("readable by group or others"), "{}", stderr(&out));
}

/// `job00128.txt` with line 17's `uJy` replaced by `12x`: arrives whole, does not parse.
fn broken_result() -> Vec<u8> {
    let text = fs_err::read_to_string(super::common::atlas_fixture("job00128")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut f: Vec<&str> = lines[16].split_whitespace().collect();
    f[3] = "12x";
    lines[16] = f.join(" ");
    format!("{}\n", lines.join("\n")).into_bytes()
}

#[test]
fn a_whole_answer_that_does_not_parse_is_read_twice_kept_and_failed_then_retry_failed_fetches_it() {
    etd_emulators::require_fixtures!();
    let emu = AtlasEmulator::start(fast_server()).unwrap();
    let s = Scratch::new();
    s.write("t.csv", targets_csv(2));
    let (ra, dec) = (3.0, -40.0); // sn0000
    let broken = broken_result();
    emu.set_result_for(ra, dec, FakeResult::Bytes(broken.clone()));
    s.write("r.yaml", recipe(&emu.base_url(), "", POLITE));
    let out = etd_fp(&s).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("1 done, 1 failed (1 invalid-answer)"), "{err}");
    // The broken file was read twice (one retry), the good one once; not the budget of 6.
    let reads = emu.meter().result_reads;
    assert_eq!(reads.values().copied().collect::<Vec<_>>(), vec![2, 1], "{reads:?}");
    let name = reads.iter().find(|(_, &n)| n == 2).map(|(k, _)| k.clone()).unwrap();
    // What the archive sent is kept byte for byte, named as the archive named it.
    let kept = s.join(&format!("work/rejected/atlas-fp/sn0000/{name}"));
    assert_eq!(fs_err::read(&kept).unwrap(), broken);
    assert!(!s.join("work/raw/atlas-fp/sn0000").exists(), "nothing under raw/ for the refused answer");
    let clean = |t: &str| t.replace(&emu.base_url(), "[BASE]").replace(&s.path().display().to_string(), "[TMP]");
    assert_eq!(name, "job00001.txt", "sn0000 is the first line of the batch");
    let line = err.lines().find(|l| l.contains("is not an integer")).expect("the parse error is logged");
    insta::assert_snapshot!(clean(&line[line.find("sn0000").unwrap()..]), @"sn0000: result [BASE]/static/results/job00001.txt line 17: uJy `12x` is not an integer (after 2 tries; the answer is kept in [TMP]/work/rejected/atlas-fp/sn0000/job00001.txt)");
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    insta::assert_snapshot!(clean(failures.trim()), @r#"{"unit":"sn0000","stage":"fetch","kind":"invalid-answer","reason":"result [BASE]/static/results/job00001.txt line 17: uJy `12x` is not an integer (after 2 tries; the answer is kept in [TMP]/work/rejected/atlas-fp/sn0000/job00001.txt)"}"#);
    assert!(emu.tasks().iter().all(|t| t.deleted), "the failed target's task is deleted too");

    // The archive fixed it: --retry-failed fetches the target again, and it shards.
    emu.set_result_for(ra, dec, FakeResult::Fixture("job00128"));
    let out = etd_fp(&s).args(["fetch", "--retry-failed", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.meter().result_reads.values().sum::<u64>(), 4, "one more read, of the new task's result");
    assert!(kept.exists(), "the rejected copy stays for the user to look at");
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = shard_members(&s);
    let want = fs_err::read(super::common::atlas_fixture("job00128")).unwrap();
    assert_eq!(all["sn0000.txt"], want);
}

#[test]
fn truncated_result_bodies_are_still_retried_within_the_budget() {
    etd_emulators::require_fixtures!();
    let faults = etd_emulators::atlas_fp::Faults { truncate_result_reads: 3, ..Default::default() };
    let emu = AtlasEmulator::start(Config { faults, ..fast_server() }).unwrap();
    let s = Scratch::new();
    s.write("t.csv", targets_csv(1));
    emu.set_result_for(3.0, -40.0, FakeResult::Fixture("job01381"));
    s.write("r.yaml", recipe(&emu.base_url(), "", POLITE));
    let out = etd_fp(&s).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reads = emu.meter().result_reads;
    assert_eq!(reads.values().copied().collect::<Vec<_>>(), vec![4], "three cut short, the fourth whole: {reads:?}");
    assert!(!s.join("work/rejected").exists());
    let stored = files(&s.join("work/raw/atlas-fp/sn0000"));
    assert_eq!(stored.len(), 1);
    assert_eq!(fs_err::read(&stored[0]).unwrap(), fs_err::read(super::common::atlas_fixture("job01381")).unwrap());
}

#[test]
fn tasks_submitted_to_another_endpoint_are_neither_followed_nor_deleted_from_the_new_one() {
    etd_emulators::require_fixtures!();
    // A never finishes in time: its tasks stay recorded as submitted.
    let a = AtlasEmulator::start(Config { queue_time: Duration::from_secs(30), ..fast_server() }).unwrap();
    let b = AtlasEmulator::start(fast_server()).unwrap();
    let s = Scratch::new();
    s.write("t.csv", targets_csv(6));
    let give_up = recipe(&a.base_url(), "", POLITE).replace("max: 300ms}", "max: 300ms, give_up_after: 1s}");
    s.write("r.yaml", give_up);
    let out = etd_fp(&s).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert_eq!(a.tasks().len(), 6);
    a.reset_meter();
    s.write("r.yaml", recipe(&b.base_url(), "", POLITE));
    let out = etd_fp(&s).args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("6 targets to submit and 0 tasks to continue"), "{err}");
    assert!(err.contains("6 tasks recorded on the server were submitted to another endpoint"), "{err}");
    assert_eq!(a.meter().requests, 0, "A was neither polled nor sent B's token");
    assert_eq!(b.tasks().len(), 6);
    assert!(b.tasks().iter().all(|t| t.deleted));
}

#[test]
fn three_tasks_share_the_write_budget_and_the_queue_and_shard_as_parts() {
    etd_emulators::require_fixtures!();
    let emu = AtlasEmulator::start(fast_server()).unwrap();
    let s = Scratch::new();
    let n = 90;
    s.write("t.csv", targets_csv(n));
    s.write("r.yaml", recipe(&emu.base_url(), "    max_in_flight: 12\n", POLITE).replace("batch: 40", "batch: 4"));
    // Three tasks at once in one workdir: each queues at most 12 / 3 = 4 tasks and writes at a
    // third of the rate, so together they stay inside both of the server's limits.
    let children: Vec<_> = (0..3)
        .map(|i| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
            for var in etd::env_vars::ALL {
                cmd.env_remove(var);
            }
            cmd.current_dir(s.path()).env("ATLAS_TOKEN", TOKEN);
            cmd.args(["--workdir", "work", "fetch", "r.yaml", "--num-tasks", "3", "--task-index", &i.to_string()]);
            cmd.stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let m = emu.meter();
    assert!(m.max_queued_seen <= 12, "queued at once: {}", m.max_queued_seen);
    assert!(m.max_writes_in_any_window <= 60, "writes in one window: {}", m.max_writes_in_any_window);
    let tasks = emu.tasks();
    assert_eq!(tasks.len(), n, "one task per target over all three");
    assert!(tasks.iter().all(|t| t.deleted), "tasks left on the server");
    // Shard as one process, then as three parts and a merge: the same bytes.
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let single = s.shard_files();
    fs_err::remove_dir_all(s.shards()).unwrap();
    for i in 0..3 {
        let out =
            s.etd().args(["shard", "r.yaml", "--num-tasks", "3", "--task-index", &i.to_string()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = s.etd().args(["shard", "r.yaml", "--merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.shard_files(), single);
    // More tasks than the queue allows are refused.
    s.write("q.yaml", recipe(&emu.base_url(), "    max_in_flight: 2\n", POLITE).replace("batch: 40", "batch: 2"));
    let out = etd_fp(&s).args(["fetch", "q.yaml", "--num-tasks", "3", "--task-index", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--num-tasks 3 is more than source.atlas-fp.max_in_flight (2)"), "{}", stderr(&out));
}
