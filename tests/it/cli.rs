//! The command line: help, exit codes, `check` plans, recipe errors, and commands not yet available.

use super::common::*;

#[test]
fn help_version_and_usage_errors() {
    let s = Scratch::new();
    s.etd().arg("--help").assert().success().stdout(predicates::str::contains("Exit codes"));
    s.etd().arg("--version").assert().success().stdout(predicates::str::contains(env!("CARGO_PKG_VERSION")));
    s.etd().arg("frobnicate").assert().code(2);
    s.etd().args(["check"]).assert().code(2);
}

#[test]
fn check_prints_the_quickstart_plan() {
    let s = Scratch::new();
    let out = s.etd().args(["check"]).arg(repo().join("recipes/quickstart.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text =
        stdout(&out).replace(&repo().display().to_string(), "[REPO]").replace(&s.path().display().to_string(), "[TMP]");
    insta::assert_snapshot!(text, @r"
    recipe       quickstart ([REPO]/recipes/quickstart.yaml)
    source       local
    inputs       4 files, 176.1 kB
    units        4 (one sample each)
    requests     0 (local files: no requests)
    split        all (100%): ~4 samples, 2 shards or more
    shards       zstd each at most 2 samples / 1GiB
    outputs      npy, json, png
    workdir      [TMP]/work
    ");
    // check writes nothing
    assert!(!s.join("work").exists());
}

#[test]
fn check_json_for_a_ps1_recipe_estimates_requests_and_time() {
    let s = Scratch::new();
    let rows: String = (0..100).map(|i| format!("g{i},{}.5,{}.25,spiral\n", i, i % 60)).collect();
    s.write("targets.csv", format!("objid,ra,dec,class\n{rows}"));
    s.write(
        "r.yaml",
        "version: 1\nname: p\ntargets: {file: targets.csv, columns: {id: objid, label: class}}\n\
         source:\n  ps1-cutouts: {filters: [g, r, i], size: 120}\npoliteness: {rate: 4/s}\n\
         shard: {max_samples: 30, split: {train: 0.9, val: 0.1}}\n",
    );
    let out = s.etd().args(["check", "--json", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["source"], "ps1-cutouts");
    assert_eq!(plan["fetch_available"], true);
    assert_eq!(plan["targets"], 100);
    assert_eq!(plan["requests"], 400); // 1 ps1filenames + 3 fitscut per target
    assert_eq!(plan["min_fetch_seconds"], 100.0); // 400 requests at 4/s
    assert_eq!(plan["politeness"]["concurrency"], 6);
    assert_eq!(plan["splits"][0]["name"], "train");
    assert_eq!(plan["splits"][0]["expected_shards"], 3);
    let text = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert!(stdout(&text).contains("1m 40s at 4/s with at most 6 in flight"), "{}", stdout(&text));
}

#[test]
fn recipe_errors_exit_2_with_location_and_hint() {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("r.yaml", local_recipe("t", "shard:\n  max_bytes: 1GB\n  compresion: zstd\n"));
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("r.yaml:8:3: shard.compresion: unknown field `compresion`"), "{err}");
    assert!(err.contains("hint: did you mean `compression`?"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn dry_runs_and_refusals_do_nothing() {
    let s = Scratch::new();
    s.write(
        "var.yaml",
        "version: 1\nname: p\nsource:\n  atlas-var:\n    catalog_url: https://x/c.fits\n    lightcurves_url: file:///d\n",
    );
    // ATLAS-VAR: a dry run makes no request and says what fetch would do.
    let out = s.etd().args(["fetch", "--dry-run", "var.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("catalog\tGET https://x/c.fits"), "{}", stdout(&out));
    s.write("data/a.txt", "x");
    s.write("pub.yaml", local_recipe("t", "publish: {origin: out, path: ns/t, version: v1}\n"));
    // A merge needs the parts of a split shard run.
    let out = s.etd().args(["shard", "pub.yaml", "--merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no shard part in"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--task-index I --num-tasks N"), "{}", stderr(&out));
    // Publishing needs a finished dataset.
    let out = s.etd().args(["publish", "pub.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no finished dataset to publish"), "{}", stderr(&out));
    assert!(!s.join("out").exists(), "nothing may be published");
}

#[test]
fn dry_run_lists_units_and_records_nothing() {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("data/b.csv", "y");
    s.write("data/b.json", "{}");
    s.write("r.yaml", local_recipe("t", ""));
    let out = s.etd().args(["fetch", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "a\ta.txt\nb\tb.csv b.json\n");
    assert!(!s.join("work").exists());
}

#[test]
fn shard_before_fetch_is_a_usage_error() {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("r.yaml", local_recipe("t", ""));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("run `etd fetch"), "{}", stderr(&out));
}
