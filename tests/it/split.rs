//! Batch work splits: every source's fetch splits, `etd shard` runs as N parts and a merge, and
//! the shards are byte-identical to a single process for any N, with a shared workdir or with a
//! workdir per task (no shared filesystem, as on the OSPool).

use std::path::{Path, PathBuf};

use super::common::*;
use super::shard::synthetic_dataset;

/// Every file of a shard folder with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs_err::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn etd_in(s: &Scratch, workdir: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
    for var in etd::env_vars::ALL {
        cmd.env_remove(var);
    }
    cmd.current_dir(s.path()).arg("--workdir").arg(s.join(workdir)).args(args).output().unwrap()
}

fn ok(out: std::process::Output, codes: &[i32]) -> String {
    let err = stderr(&out);
    assert!(codes.contains(&out.status.code().unwrap_or(-1)), "exit {:?}\n{err}", out.status.code());
    err
}

const RECIPE_EXTRA: &str = "transform:\n  image: {scale: zscale, outputs: [npy, json, png]}\n\
     shard: {max_samples: 5, max_bytes: 9KB, compression: zstd, split: {train: 0.7, val: 0.3}, shuffle_seed: 4}\n";

/// A local dataset of 30 images (one damaged, so one sample fails) and its single-process shards.
fn local_single() -> (Scratch, Vec<(String, Vec<u8>)>) {
    let s = Scratch::new();
    synthetic_dataset(&s, 30);
    s.write("data/img007.fits", b"SIMPLE  = not a fits file".repeat(200));
    s.write("r.yaml", local_recipe("split", RECIPE_EXTRA));
    ok(etd_in(&s, "single", &["fetch", "r.yaml"]), &[0]);
    ok(etd_in(&s, "single", &["shard", "r.yaml"]), &[3]);
    let single = files(&s.join("single/shards"));
    (s, single)
}

#[test]
fn shared_workdir_parts_merge_to_the_single_process_shards_for_any_n() {
    let (s, single) = local_single();
    for n in [1u32, 2, 3, 7] {
        let w = format!("shared-{n}");
        let n_text = n.to_string();
        for i in 0..n {
            let split = ["--task-index", &i.to_string(), "--num-tasks", &n_text];
            ok(etd_in(&s, &w, &[&["fetch", "r.yaml"][..], &split[..]].concat()), &[0]);
        }
        for i in 0..n {
            let split = ["--task-index", &i.to_string(), "--num-tasks", &n_text];
            let err = ok(etd_in(&s, &w, &[&["shard", "r.yaml"][..], &split[..]].concat()), &[0]);
            assert!(err.contains(&format!("shard (task {i} of {n})")), "{err}");
            assert!(s.join(&format!("{w}/parts/shard-{i}-of-{n}/part.json")).is_file());
        }
        let err = ok(etd_in(&s, &w, &["shard", "r.yaml", "--merge"]), &[3]);
        assert!(err.contains("1 sample failed"), "{err}");
        assert_eq!(files(&s.join(&format!("{w}/shards"))), single, "N = {n}");
        let failures = fs_err::read_to_string(s.join(&format!("{w}/failures.jsonl"))).unwrap();
        assert!(failures.contains("img007"), "{failures}");
    }
}

#[test]
fn a_workdir_per_task_merges_from_part_folders_anywhere() {
    let (s, single) = local_single();
    let n = 3;
    let mut parts: Vec<PathBuf> = Vec::new();
    for i in 0..n {
        // Each task in its own workdir, as on execute points that share no filesystem; the
        // environment gives the index, as a Kubernetes Indexed Job's or a Slurm array's does.
        let w = format!("task{i}");
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
        for var in etd::env_vars::ALL {
            cmd.env_remove(var);
        }
        cmd.current_dir(s.path()).arg("--workdir").arg(s.join(&w));
        let env: Vec<(&str, String)> = if i == 1 {
            vec![("JOB_COMPLETION_INDEX", i.to_string())]
        } else {
            vec![
                ("SLURM_ARRAY_TASK_ID", (i + 10).to_string()),
                ("SLURM_ARRAY_TASK_MIN", "10".into()),
                ("SLURM_ARRAY_TASK_MAX", "12".into()),
                ("SLURM_ARRAY_TASK_COUNT", "3".into()),
            ]
        };
        let count = if i == 1 { vec!["--num-tasks", "3"] } else { vec![] };
        // `etd run` as one task fetches and writes its part in one go.
        let stages: &[&str] = if i == 2 { &["run"] } else { &["fetch", "shard"] };
        for &stage in stages {
            let mut c = std::process::Command::new(cmd.get_program());
            c.args(cmd.get_args()).current_dir(s.path());
            for var in etd::env_vars::ALL {
                c.env_remove(var);
            }
            c.envs(env.iter().map(|(k, v)| (k, v.as_str()))).arg(stage).arg("r.yaml").args(&count);
            ok(c.output().unwrap(), &[0]);
        }
        let part = s.join(&format!("{w}/parts/shard-{i}-of-{n}"));
        // Only the part travels back: move it somewhere else, as a file transfer would.
        let moved = s.join(&format!("transferred/p{i}"));
        fs_err::create_dir_all(moved.parent().unwrap()).unwrap();
        fs_err::rename(&part, &moved).unwrap();
        parts.push(moved);
    }
    let mut args: Vec<String> = vec!["shard".into(), "r.yaml".into(), "--merge".into()];
    args.extend(parts.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(etd_in(&s, "merged", &args), &[3]);
    assert_eq!(files(&s.join("merged/shards")), single);
    assert!(!s.join("merged/journal.jsonl").exists(), "the merge needs no fetched data");
    s.etd().arg("verify").arg(s.join("merged/shards")).assert().success();
}

#[test]
fn merge_refuses_incomplete_foreign_or_damaged_parts() {
    let (s, _) = local_single();
    for i in 0..3 {
        let split = ["--task-index", &i.to_string(), "--num-tasks", "3"];
        ok(etd_in(&s, "w", &[&["fetch", "r.yaml"][..], &split[..]].concat()), &[0]);
        ok(etd_in(&s, "w", &[&["shard", "r.yaml"][..], &split[..]].concat()), &[0]);
    }
    let parts = s.join("w/parts");
    let part = |i: u32| parts.join(format!("shard-{i}-of-3")).display().to_string();
    // A missing part.
    let err = ok(etd_in(&s, "m", &["shard", "r.yaml", "--merge", &part(0), &part(2)]), &[2]);
    assert!(err.contains("the parts of task 1 of 3 are missing"), "{err}");
    // The same part twice.
    let err = ok(etd_in(&s, "m", &["shard", "r.yaml", "--merge", &part(0), &part(1), &part(2), &part(1)]), &[2]);
    assert!(err.contains("are both task 1 of 3"), "{err}");
    // Another recipe (the same but for a comment) is another dataset.
    s.write("other.yaml", format!("# other\n{}", local_recipe("split", RECIPE_EXTRA)));
    let err = ok(etd_in(&s, "w", &["shard", "other.yaml", "--merge"]), &[2]);
    assert!(err.contains("made from another recipe"), "{err}");
    // A part of another split beside them.
    ok(etd_in(&s, "w", &["shard", "r.yaml", "--task-index", "0", "--num-tasks", "2"]), &[0]);
    let err = ok(etd_in(&s, "w", &["shard", "r.yaml", "--merge"]), &[2]);
    assert!(err.contains("holds parts of 2 different splits (of-2, of-3)"), "{err}");
    fs_err::remove_dir_all(parts.join("shard-0-of-2")).unwrap();
    // A damaged part: nothing is written, the previous shards stay.
    ok(etd_in(&s, "w", &["shard", "r.yaml", "--merge"]), &[3]);
    let before = files(&s.join("w/shards"));
    let samples = parts.join("shard-2-of-3/samples.tar");
    let mut bytes = fs_err::read(&samples).unwrap();
    bytes[700] ^= 1;
    fs_err::write(&samples, bytes).unwrap();
    let err = ok(etd_in(&s, "w", &["shard", "r.yaml", "--merge"]), &[1]);
    assert!(err.contains("shard-2-of-3/samples.tar") && err.contains("damaged or cut short"), "{err}");
    assert_eq!(files(&s.join("w/shards")), before);
    assert!(!s.join("w/shards.partial").exists());
}

#[test]
fn a_part_is_a_plain_tar_gnu_tar_lists() {
    let (s, _) = local_single();
    ok(etd_in(&s, "w", &["fetch", "r.yaml"]), &[0]);
    ok(etd_in(&s, "w", &["shard", "r.yaml", "--task-index", "0", "--num-tasks", "2"]), &[0]);
    let dir = s.join("w/parts/shard-0-of-2");
    let index: serde_json::Value = serde_json::from_slice(&fs_err::read(dir.join("part.json")).unwrap()).unwrap();
    assert_eq!(index["format"], "etd-shard-part/1");
    assert_eq!((index["task"].as_u64(), index["tasks"].as_u64()), (Some(0), Some(2)));
    let out = std::process::Command::new("tar").arg("-tf").arg(dir.join("samples.tar")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    let samples = index["samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    for sample in samples {
        let key = sample["key"].as_str().unwrap();
        assert!(listed.contains(&format!("{key}.npy\n")), "{key}: {listed}");
    }
    // No leftovers of the writing.
    let names: Vec<String> =
        fs_err::read_dir(s.join("w/parts")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names, ["shard-0-of-2"]);
}

#[test]
fn atlas_var_splits_its_partitions_and_parts_need_every_tasks_data() {
    use etd_emulators::atlas_var::{AtlasVarEmulator, Config};
    let emu =
        AtlasVarEmulator::start(Config { objects: 400, seed: 5, detections_per_object: (0, 12), ..Config::default() })
            .unwrap();
    let s = Scratch::new();
    s.write(
        "r.yaml",
        format!(
            "version: 1\nname: var-split\nsource:\n  atlas-var:\n    catalog_url: \"{}\"\n    lightcurves_url: \"{}\"\n    \
             classes: [CBF, PULSE, LPV, IRR]\n    region: {{ra: [0, 360], dec: [-30, 60]}}\n    memory: 64KB\n\
             politeness: {{rate: 100/s, concurrency: 4}}\nshard: {{max_samples: 9, compression: zstd}}\n",
            emu.catalog_url(),
            emu.lightcurves_url()
        ),
    );
    ok(etd_in(&s, "single", &["fetch", "r.yaml"]), &[0]);
    ok(etd_in(&s, "single", &["shard", "r.yaml"]), &[0, 3]);
    let single = files(&s.join("single/shards"));
    let partitions_once = emu.meter().bytes_sent_per_file.keys().filter(|f| f.ends_with(".csv")).count();
    assert!(partitions_once >= 3, "{partitions_once} partitions: too few to split");
    emu.reset_meter();
    // Three tasks in one shared workdir: together they fetch each needed partition once.
    for i in 0..3 {
        let err = ok(etd_in(&s, "w", &["fetch", "r.yaml", "--task-index", &i.to_string(), "--num-tasks", "3"]), &[0]);
        assert!(err.contains(&format!("(task {i} of 3: ")), "{err}");
    }
    let m = emu.meter();
    let csv: Vec<(&String, &u64)> = m.bytes_sent_per_file.iter().filter(|(f, _)| f.ends_with(".csv")).collect();
    assert_eq!(csv.len(), partitions_once, "the same partitions as one task: {csv:?}");
    let single_raw = s.join("single/raw/atlas-var");
    for (name, bytes) in csv {
        assert_eq!(*bytes, fs_err::metadata(single_raw.join(name)).unwrap().len(), "{name} sent once");
    }
    for i in 0..3 {
        ok(etd_in(&s, "w", &["shard", "r.yaml", "--task-index", &i.to_string(), "--num-tasks", "3"]), &[0]);
    }
    ok(etd_in(&s, "w", &["shard", "r.yaml", "--merge"]), &[0, 3]);
    assert_eq!(files(&s.join("w/shards")), single);
    // A task's own workdir holds only its partitions: its light curves would be incomplete.
    ok(etd_in(&s, "alone", &["fetch", "r.yaml", "--task-index", "1", "--num-tasks", "3"]), &[0]);
    let err = ok(etd_in(&s, "alone", &["shard", "r.yaml", "--task-index", "1", "--num-tasks", "3"]), &[2]);
    assert!(err.contains("holds the fetch journals of task 1 of 3 only"), "{err}");
    assert!(err.contains("need every fetch task's data"), "{err}");
}

#[test]
fn more_tasks_than_requests_in_flight_are_refused() {
    let s = Scratch::new();
    s.write("targets.csv", "objid,ra,dec,class\na,10,20,x\n");
    s.write("r.yaml", super::ps1::recipe("http://127.0.0.1:9", "g", "{concurrency: 4}", ""));
    let out = s.etd().args(["fetch", "r.yaml", "--task-index", "0", "--num-tasks", "5"]).output().unwrap();
    let err = ok(out, &[2]);
    assert!(err.contains("--num-tasks 5 is more than the 4 requests in flight the politeness allows"), "{err}");
    assert!(err.contains("hint: use at most 4 tasks"), "{err}");
}
