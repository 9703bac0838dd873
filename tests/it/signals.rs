//! SIGINT and SIGTERM: fetch stops starting work, records what finished, prints its summary and
//! exits 130/143; a rerun ends with exactly the output of an uninterrupted run. Shard stops
//! without debris and leaves the previous shards as they were.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etd_emulators::ps1::{Faults, Ps1Emulator};

use super::common::{fits_f32, local_recipe, noise, stderr, Scratch};
use super::ps1::{recipe, targets_csv};

/// `etd --workdir work ARGS` in the scratch folder, stdout and stderr captured.
fn spawn(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("etd"));
    cmd.current_dir(s.path()).args(["--workdir", "work"]).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in etd::env_vars::ALL {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Wait (at most 60 s) until `ready` holds.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines of a journal, each checked to be a whole JSON entry.
fn journal_lines(path: &Path) -> usize {
    let text = fs_err::read_to_string(path).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "the journal ends in a torn line");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["unit"].is_string(), "{line}");
    }
    text.lines().count()
}

#[test]
fn sigint_and_sigterm_stop_fetch_with_a_summary_and_a_rerun_gives_the_uninterrupted_shards() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults { latency: Duration::from_millis(40), ..Faults::default() }).unwrap();
    let politeness = "{concurrency: 2, rate: 100/s}";
    let n = 60;
    let reference = Scratch::new();
    reference.write("targets.csv", targets_csv(n));
    reference.write("r.yaml", recipe(&emu.base_url(), "g", politeness, ""));
    assert_eq!(reference.etd().args(["run", "r.yaml"]).output().unwrap().status.code(), Some(3));

    let s = Scratch::new();
    s.write("targets.csv", targets_csv(n));
    s.write("r.yaml", recipe(&emu.base_url(), "g", politeness, ""));
    let journal = s.join("work/journal.jsonl");
    let mut seen = 0;
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = spawn(&s, &["run", "r.yaml"], &[]);
        wait_for("units in the journal", || journal_lines(&journal) >= seen + 3);
        kill(&child, signal);
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(&format!("SIG{signal}: no new units start")), "{err}");
        assert!(err.contains(" done, ") && err.contains("left for a later run"), "the summary line: {err}");
        assert!(err.contains(&format!("stopped by SIG{signal}: ")), "{err}");
        assert!(err.contains("the fetch was stopped by a signal; not sharding"), "{err}");
        assert!(!s.join("work/shards").exists());
        let now = journal_lines(&journal);
        assert!(now > seen && now < n, "{seen} -> {now} of {n} units");
        seen = now;
    }
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{} targets to fetch", n - seen)), "{}", stderr(&out));
    assert_eq!(s.shard_files(), reference.shard_files(), "the same shards as an uninterrupted run");
}

#[test]
fn sigterm_leaves_atlas_tasks_recorded_and_the_rerun_continues_them() {
    use etd_emulators::atlas_fp::{AtlasEmulator, Config};
    etd_emulators::require_fixtures!();
    let slow = Config {
        time_scale: 60.0,
        // Longer than the 5 s a stopping fetch gives the units under way.
        queue_time: Duration::from_secs(8),
        run_time: Duration::from_millis(300),
        ..Config::default()
    };
    let emu = AtlasEmulator::start(slow).unwrap();
    let s = Scratch::new();
    let rows: String = (0..6).map(|i| format!("sn{i},{}.5,{}.25\n", 10 + i, i)).collect();
    s.write("t.csv", format!("id,ra,dec\n{rows}"));
    s.write(
        "r.yaml",
        format!(
            "version: 1\nname: fp-sig\ntargets: {{file: t.csv}}\nsource:\n  atlas-fp:\n    base_url: \"{}\"\n    \
             mjd_min: 57000\n    poll: {{initial: 100ms, max: 200ms}}\npoliteness: {{rate: 50/s, read_rate: 300/s}}\n",
            emu.base_url()
        ),
    );
    let token = [("ATLAS_TOKEN", "0123456789abcdef0123456789abcdef01234567")];
    let child = spawn(&s, &["fetch", "r.yaml"], &token);
    let journal = s.join("work/journal.jsonl");
    wait_for("tasks in the journal", || journal_lines(&journal) >= 6);
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("stopped by SIGTERM: 0 targets not started, 6 under way left unfinished"), "{err}");
    let text = fs_err::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("\"status\":\"submitted\"")).count(), 6, "{text}");
    assert_eq!(emu.tasks().len(), 6);
    let mut rerun = s.etd();
    let out = rerun.env(token[0].0, token[0].1).args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 targets to submit and 6 tasks to continue"), "{}", stderr(&out));
    assert_eq!(emu.tasks().len(), 6, "nothing submitted twice");
    assert!(emu.tasks().iter().all(|t| t.deleted));
}

#[test]
fn sigterm_during_shard_leaves_no_debris_and_the_old_shards_intact() {
    let s = Scratch::new();
    for i in 0..600 {
        s.write(&format!("data/img{i:04}.fits"), fits_f32(96, 96, &noise(96 * 96, i), &[]));
    }
    let outputs = "transform:\n  image: {scale: zscale, outputs: [npy, json, png, fits]}\nshard: {max_samples: 50}\n";
    s.write("r.yaml", local_recipe("sig", outputs));
    assert_eq!(s.etd().args(["run", "r.yaml"]).output().unwrap().status.code(), Some(0));
    let before = s.shard_files();
    let child = spawn(&s, &["shard", "r.yaml"], &[]);
    wait_for("shard to start writing", || s.join("work/shards.partial").exists());
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    insta::assert_snapshot!(err.lines().filter(|l| !l.starts_with(" INFO")).collect::<Vec<_>>().join("\n"), @r"
    error: stopped by SIGTERM: shard did not finish; the previous shards are intact
      hint: run the same command again to continue
    ");
    assert_eq!(s.shard_files(), before, "the old shards are intact");
    let left: Vec<String> = fs_err::read_dir(s.join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.contains("old") || n == "tmp")
        .collect();
    assert!(left.is_empty(), "debris: {left:?}");
}

/// A local dataset of `n` shards of about 1 MB each (one sample per shard), fetched and sharded.
fn big_local_dataset(s: &Scratch, n: usize, extra: &str) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..n {
        let mut text = String::with_capacity(1 << 20);
        while text.len() < 1 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(&format!("{x:016x}\n"));
        }
        s.write(&format!("data/f{i:03}.txt"), text);
    }
    s.write("r.yaml", local_recipe("big", &format!("shard: {{max_samples: 1}}\n{extra}")));
    for cmd in ["fetch", "shard"] {
        let out = s.etd().args([cmd, "r.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

#[test]
fn sigint_during_verify_stops_between_shards_with_exit_130_and_says_how_far_it_got() {
    let s = Scratch::new();
    big_local_dataset(&s, 150, "");
    let child = spawn(&s, &["verify", "work/shards"], &[]);
    std::thread::sleep(Duration::from_millis(150));
    kill(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(line.starts_with("error: stopped by SIGINT: verify did not finish: "), "{err}");
    assert!(line.ends_with(" of 150 checked, 0 problems found so far"), "{err}");
    assert!(!line.contains(": 150 shards of"), "stopped before the end: {err}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(": stopped by SIGINT after ") && !text.contains("OK"), "{text}");
}

#[test]
fn sigterm_during_local_publish_leaves_whole_files_and_the_rerun_completes() {
    let s = Scratch::new();
    big_local_dataset(&s, 120, "publish: {origin: origin, path: ns/big, version: v1}\n");
    let child = spawn(&s, &["publish", "r.yaml"], &[]);
    let dest = s.join("origin/ns/big/v1");
    wait_for("publish to start copying", || s.join("origin/ns/big").exists());
    std::thread::sleep(Duration::from_millis(200));
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    // Every file under a final name is whole (equal to its shard); no temporary file remains.
    let shards = s.shards();
    for e in fs_err::read_dir(&dest).into_iter().flatten() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".etd-tmp"), "{name}");
        if e.file_type().unwrap().is_file() {
            assert_eq!(fs_err::read(e.path()).unwrap(), fs_err::read(shards.join(&name)).unwrap(), "{name}");
        }
    }
    assert!(!dest.join("manifest.json").exists(), "the manifest is published last");
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names = |d: &Path| {
        let mut v: Vec<String> =
            fs_err::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&dest), names(&shards));
}

#[test]
fn a_second_signal_ends_a_stopping_fetch_at_once() {
    etd_emulators::require_fixtures!();
    // Every answer takes 3 s: the first signal waits for the units under way (up to 5 s).
    let emu = Ps1Emulator::start(Faults { latency: Duration::from_secs(3), ..Faults::default() }).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(8));
    s.write("r.yaml", recipe(&emu.base_url(), "g", "{concurrency: 2, rate: 100/s}", ""));
    let mut child = spawn(&s, &["fetch", "r.yaml"], &[]);
    wait_for("the first requests", || emu.meter().requests > 0);
    kill(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the first signal lets units under way finish");
    let second = Instant::now();
    kill(&child, "INT");
    let status = child.wait().unwrap();
    assert!(second.elapsed() < Duration::from_secs(1), "ended {:?} after the second signal", second.elapsed());
    assert_eq!(status.code(), Some(130));
    journal_lines(&s.join("work/journal.jsonl"));
}

#[test]
fn sigterm_during_an_atlas_var_download_keeps_whole_files_and_the_rerun_completes() {
    use etd_emulators::atlas_var::{AtlasVarEmulator, Config};
    let emu =
        AtlasVarEmulator::start(Config { objects: 300, latency: Duration::from_millis(400), ..Config::default() })
            .unwrap();
    let s = Scratch::new();
    s.write("r.yaml", super::atlas_var::recipe(&emu.catalog_url(), &emu.lightcurves_url()));
    let child = spawn(&s, &["fetch", "r.yaml"], &[]);
    wait_for("the first requests", || emu.meter().requests > 1);
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    journal_lines(&s.join("work/journal.jsonl"));
    let raw = s.join("work/raw/atlas-var");
    let check = |final_only: bool| {
        for e in fs_err::read_dir(&raw).into_iter().flatten() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let want = if name.ends_with(".csv") {
                emu.dataset().partition_csv(&name).unwrap()
            } else if name.ends_with(".fits") {
                emu.dataset().catalog_fits()
            } else {
                assert!(!final_only || name.ends_with(".json"), "left behind: {name}");
                continue;
            };
            assert_eq!(fs_err::read(raw.join(&name)).unwrap(), want, "{name} is whole under its final name");
        }
    };
    check(false);
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    check(true);
}

#[test]
fn sigterm_during_a_shard_part_or_a_merge_leaves_no_part_and_no_debris() {
    let s = Scratch::new();
    for i in 0..600 {
        s.write(&format!("data/img{i:04}.fits"), fits_f32(96, 96, &noise(96 * 96, i), &[]));
    }
    let outputs = "transform:\n  image: {scale: zscale, outputs: [npy, json, png, fits]}\nshard: {max_samples: 50}\n";
    s.write("r.yaml", local_recipe("sig", outputs));
    assert_eq!(s.etd().args(["fetch", "r.yaml"]).output().unwrap().status.code(), Some(0));
    // A part stopped half-way leaves neither the part nor its partial folder: the engine's retry
    // starts the task over.
    let split = ["shard", "r.yaml", "--task-index", "0", "--num-tasks", "2"];
    let child = spawn(&s, &split, &[]);
    wait_for("the part to start", || s.join("work/parts/shard-0-of-2.partial/samples.tar").exists());
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("error: stopped by SIGTERM: the shard task did not finish; it leaves no part"), "{err}");
    let left: Vec<String> = fs_err::read_dir(s.join("work/parts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "debris: {left:?}");
    // The retry and the other task make the parts; a merge stopped half-way keeps nothing either.
    for i in ["0", "1"] {
        let out = s.etd().args(["shard", "r.yaml", "--task-index", i, "--num-tasks", "2"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let child = spawn(&s, &["shard", "r.yaml", "--merge"], &[]);
    wait_for("the merge to start writing", || s.join("work/shards.partial").exists());
    kill(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(!s.join("work/shards.partial").exists() && !s.join("work/shards").exists());
    // Run again: the shards of one process.
    assert_eq!(s.etd().args(["shard", "r.yaml", "--merge"]).output().unwrap().status.code(), Some(0));
    let merged = s.shard_files();
    assert_eq!(s.etd().args(["shard", "r.yaml"]).output().unwrap().status.code(), Some(0));
    assert_eq!(s.shard_files(), merged);
}

#[test]
fn sigint_and_sigterm_during_a_publish_to_an_xrootd_origin_leave_whole_objects_and_the_rerun_completes() {
    use super::publish::{dataset, listing, Xrootd, BEARER};
    let Some(xrd) = Xrootd::start() else { return };
    let s = Scratch::new();
    let n = 16;
    let publish = format!("publish: {{origin: \"{}\", path: ns/sig, version: v1}}\n", xrd.url);
    dataset(&s, n, 2, &publish);
    let dest = xrd.path("ns/sig/v1");
    let journal = s.join("work/publish.jsonl");
    let verified = || fs_err::read_to_string(&journal).unwrap_or_default().matches("\"status\":\"verified\"").count();
    let token = [("BEARER_TOKEN", BEARER)];
    let mut seen = 0;
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = spawn(&s, &["publish", "r.yaml"], &token);
        wait_for("an upload verified", || verified() > seen);
        kill(&child, signal);
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(&format!("stopped by SIG{signal}: publish did not finish")), "{err}");
        // The upload under way when the signal came is finished: every object under its final
        // name is whole (equal to its shard), and the manifest, published last, is not there.
        let objects = listing(&dest);
        for (name, bytes) in &objects {
            assert!(bytes == &fs_err::read(s.shards().join(name)).unwrap(), "{name} is not whole after SIG{signal}");
        }
        assert!(!dest.join("manifest.json").exists(), "the manifest is published last");
        let now = verified();
        assert!(now > seen && now < n, "{seen} -> {now} of {n} shards");
        assert_eq!(objects.len(), now, "every object there was verified");
        seen = now;
    }
    let mut rerun = s.etd();
    let out = rerun.env(token[0].0, token[0].1).args(["publish", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary = format!("{} objects written", n + 1 - seen);
    let kept = format!(", 0 replaced, {seen} already there and identical");
    assert!(err.contains(&summary) && err.contains(&kept), "only what is missing is uploaded: {err}");
    assert_eq!(listing(&dest), listing(&s.shards()), "the origin holds exactly the shard folder");
    let out = s.etd().arg("verify").arg(&dest).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
