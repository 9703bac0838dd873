//! The exact text of user messages (issue 11 §3): recipe errors in words at their real place,
//! environment variables named, usage errors with hints, readable rates and plurals.

use std::process::Output;

use super::common::*;

/// Temp folders in messages become `[TMP]`, user and group ids `[UID]` and `[GID]`.
fn snapshot_filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"/\S*?\.tmp[A-Za-z0-9]{6}", "[TMP]"), (r"\buid \d+", "uid [UID]"), (r"\bgid \d+", "gid [GID]")]
}

macro_rules! assert_text {
    ($text:expr, @$snap:literal) => {
        insta::with_settings!({ filters => snapshot_filters() }, {
            insta::assert_snapshot!($text, @$snap);
        });
    };
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// `etd check FILE` on a recipe with this text.
fn check(text: &str) -> Output {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("r.yaml", text);
    s.etd().args(["check", "r.yaml"]).output().unwrap()
}

#[test]
fn yaml_syntax_error_names_its_line_and_column() {
    let out = check("this is: not: yaml: [\n");
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:1:13: YAML syntax error: mapping values are not allowed in this context
      hint: write one `key: value` per line, nested keys indented with spaces; put quotes around a value that holds `: ` or ` #`, or starts with [ { * & ! | > or a quote
    ");
}

#[test]
fn wrong_types_are_said_in_words() {
    let out = check(&local_recipe("t", "shard:\n  max_samples: lots\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r#"
    error: r.yaml:7:16: shard.max_samples: expected a whole number, found "lots"
    "#);
    let out = check(
        "version: 1\nname: t\ntargets: {list: [{id: a, ra: 1, dec: 2}]}\nsource:\n  ps1-cutouts:\n    filters: g\n",
    );
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r#"
    error: r.yaml:6:14: source.ps1-cutouts.filters: expected a list such as [g], found "g"
    "#);
    let out = check(&local_recipe("t", "transform:\n  image:\n    stack_filters: maybe\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r#"
    error: r.yaml:8:20: transform.image.stack_filters: expected true or false, found "maybe"
    "#);
}

#[test]
fn a_duplicate_key_is_reported_on_its_own_line() {
    let out = check(&local_recipe("t", "shard:\n  max_samples: 5\n  max_samples: 6\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:8:3: shard.max_samples: `max_samples` is given a second time (first at line 7)
      hint: a key may appear once in each mapping: keep one `max_samples` and delete the other
    ");
}

#[test]
fn a_bad_job_completion_index_is_named() {
    let s = Scratch::new();
    s.write(
        "r.yaml",
        "version: 1\nname: p\ntargets: {list: [{id: a, ra: 1, dec: 2}]}\nsource:\n  ps1-cutouts:\n    base_url: http://127.0.0.1:9\n",
    );
    let out = s.etd().env("JOB_COMPLETION_INDEX", "3").args(["fetch", "--num-tasks", "2", "r.yaml"]).output().unwrap();
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: task index 3 from $JOB_COMPLETION_INDEX is not below --num-tasks 2
      hint: set --num-tasks to the job's completions (at least 4 for this index), or pass --task-index to override $JOB_COMPLETION_INDEX
    ");
}

#[test]
fn verify_without_a_manifest_hints_at_what_it_needs() {
    let s = Scratch::new();
    fs_err::create_dir_all(s.join("empty")).unwrap();
    let out = s.etd().args(["verify", "empty"]).output().unwrap();
    assert_eq!(code(&out), Some(1));
    assert_text!(stderr(&out), @r"
    error: empty holds no manifest.json
      hint: verify takes a shard folder written by `etd shard` (such as etd-work/<name>/shards) or its manifest.json; the manifest is written last, so a folder without one holds no finished dataset
    ");
    let out = s.etd().args(["verify", "nowhere"]).output().unwrap();
    assert_eq!(code(&out), Some(1));
    assert_text!(stderr(&out), @r"
    error: nowhere: no such file or folder
      hint: verify takes a shard folder written by `etd shard` (such as etd-work/<name>/shards) or its manifest.json; the manifest is written last, so a folder without one holds no finished dataset
    ");
}

#[test]
fn inspect_of_a_path_that_is_not_a_shard_is_a_usage_error() {
    let s = Scratch::new();
    s.write("README.md", "# hello\n");
    let out = s.etd().args(["inspect", "README.md"]).output().unwrap();
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: README.md is not a shard: a shard's name ends in .tar or .tar.zst
      hint: inspect lists one shard file written by `etd shard`, such as etd-work/<name>/shards/<name>-000000.tar.zst
    ");
    fs_err::create_dir_all(s.join("shards")).unwrap();
    let out = s.etd().args(["inspect", "shards"]).output().unwrap();
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: shards is a folder, not a shard file
      hint: to check every shard in a folder against its manifest, run `etd verify shards`
    ");
    let out = s.etd().args(["inspect", "gone.tar"]).output().unwrap();
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: gone.tar: no such file
      hint: inspect lists one shard file written by `etd shard`, such as etd-work/<name>/shards/<name>-000000.tar.zst
    ");
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_empty_targets_file_is_an_error() {
    let s = Scratch::new();
    s.write("t.csv", "objid,ra,dec\n");
    s.write("r.yaml", "version: 1\nname: p\ntargets: {file: t.csv}\nsource:\n  ps1-cutouts: {}\n");
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: [TMP]/t.csv:1: the targets file has a header row but no rows: there is nothing to fetch
      hint: add one row per target below the header (or point `targets.file` at the full list)
    ");
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_invalid_progress_interval_is_a_usage_error() {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("r.yaml", local_recipe("t", ""));
    let out = s.etd().env("ETD_PROGRESS_INTERVAL", "abc").args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: $ETD_PROGRESS_INTERVAL is `abc`: expected a number of seconds, 0 or more (such as 5 or 0.5)
      hint: it sets the seconds between progress lines; unset it for the default of 5
    ");
    assert!(!s.join("work").exists(), "nothing ran");
    let out = s.etd().env("ETD_PROGRESS_INTERVAL", "0.5").args(["-q", "fetch", "r.yaml"]).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
}

#[test]
fn rates_and_counts_read_well() {
    let s = Scratch::new();
    s.write(
        "r.yaml",
        "version: 1\nname: p\ntargets: {list: [{id: a, ra: 1, dec: 2}]}\nsource:\n  ps1-cutouts:\n    \
         base_url: http://127.0.0.1:9\n    filters: [g]\npoliteness: {rate: 5/s}\nshard: {max_samples: 1}\n",
    );
    let out = s.etd().args(["check", "r.yaml"]).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_text!(stdout(&out), @r"
    recipe       p ([TMP]/r.yaml)
    source       ps1-cutouts
    targets      1
    inputs       1 target
    units        1 (one sample each)
    requests     2 (per target: 1 ps1filenames.py + 1 fitscut.cgi)
    min time     0.4s at 5/s with at most 6 in flight
    split        all (100%): ~1 sample, 1 shard or more
    shards       none each at most 1 sample / 1GiB
    outputs      npy, json
    workdir      [TMP]/work
    ");
    // The rate one of six tasks may use: 5/s over 6 is 50/min.
    let out = s.etd().args(["fetch", "--dry-run", "--task-index", "0", "--num-tasks", "6", "r.yaml"]).output().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_text!(stderr(&out), @r"
     INFO dry run (task 0 of 6): 0 targets to fetch (0 owned, 0 done, 0 failed earlier); 0 requests; at least 0.0s at 50/min per task; 0 requests made
    ");
}

/// An origin folder this process cannot write: `publish` names the folder, the permission and
/// its mode, and `publish --dry-run` checks it too. As root (who may write anywhere) etd runs as
/// the user `nobody` (uid 65534) so the kernel refuses it as it refuses any user.
#[test]
fn publish_names_the_missing_permission() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("r.yaml", local_recipe("t", "publish: {origin: origin, path: ns/t, version: v1}\n"));
    s.etd().args(["-q", "fetch", "r.yaml"]).assert().success();
    s.etd().args(["-q", "shard", "r.yaml"]).assert().success();
    fs_err::create_dir_all(s.join("origin")).unwrap();
    fs_err::create_dir_all(s.join("open")).unwrap();
    for entry in ["", "data", "work", "work/shards", "open"] {
        fs_err::set_permissions(s.join(entry), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for file in fs_err::read_dir(s.join("work")).unwrap().chain(fs_err::read_dir(s.shards()).unwrap()) {
        let file = file.unwrap().path();
        if file.is_file() {
            fs_err::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
    fs_err::set_permissions(s.join("origin"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let privileged = fs_err::write(s.join("origin/probe"), "x").is_ok();
    let publish = |args: &[&str]| -> Output {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
        for var in etd::env_vars::ALL {
            cmd.env_remove(var);
        }
        cmd.current_dir(s.path()).arg("--workdir").arg(s.join("work")).args(args);
        if privileged {
            cmd.uid(65534).gid(65534);
        }
        cmd.output().unwrap()
    };
    let out = publish(&["publish", "r.yaml"]);
    assert_eq!(code(&out), Some(1));
    assert_text!(stderr(&out), @r"
    error: cannot publish into [TMP]/origin/ns/t/v1: no write permission on the folder [TMP]/origin (mode 0555, owner uid [UID], group gid [GID]), where etd must create ns/t/
      hint: run etd as a user who may write there (the origin's owner or a member of its group with write permission), or have its owner grant that (e.g. chmod g+w); `etd publish --dry-run` checks again without writing
    ");
    let out = publish(&["publish", "--dry-run", "r.yaml"]);
    assert_eq!(code(&out), Some(1));
    assert!(stderr(&out).contains("no write permission on the folder"), "{}", stderr(&out));
    assert!(!s.join("origin/ns").exists());
    // A writable origin: the dry run says so and writes nothing.
    s.write("r.yaml", local_recipe("t", "publish: {origin: open, path: ns/t, version: v1}\n"));
    let out = publish(&["publish", "--dry-run", "r.yaml"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_text!(stderr(&out), @r"
     INFO dry run: 2 objects for [TMP]/open/ns/t/v1/; the destination is writable; nothing was written
    ");
    assert!(!s.join("open/ns").exists());
}

#[test]
fn a_transform_section_the_source_does_not_use_is_refused_at_its_key() {
    let var = "version: 1\nname: v\nsource:\n  atlas-var:\n    catalog_url: https://x/c.fits\n    lightcurves_url: file:///d\n";
    let out = check(&format!("{var}transform:\n  lightcurve: {{quality: faq-cuts}}\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:8:3: transform.lightcurve: the atlas-var source makes no use of transform.lightcurve
      hint: the atlas-var source uses no transform section: its samples' fields are fixed; remove `transform.lightcurve`
    ");
    let out = check(&format!("{var}transform:\n  image: {{}}\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:8:3: transform.image: the atlas-var source makes no use of transform.image
      hint: the atlas-var source uses no transform section: its samples' fields are fixed; remove `transform.image`
    ");
    // Refused before the section's own content is checked.
    let out = check(&local_recipe("t", "transform:\n  image: {nan: zero}\n  lightcurve: {outputs: []}\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:8:3: transform.lightcurve: the local source makes no use of transform.lightcurve
      hint: the local source uses transform.image; remove `transform.lightcurve`
    ");
    let fp = "version: 1\nname: f\ntargets: {list: [{id: a, ra: 1, dec: 2}]}\nsource:\n  atlas-fp: {}\n";
    let out = check(&format!("{fp}transform: {{lightcurve: {{quality: all}}, image: {{outputs: [npy]}}}}\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:6:41: transform.image: the atlas-fp source makes no use of transform.image
      hint: the atlas-fp source uses transform.lightcurve; remove `transform.image`
    ");
    let ps1 = "version: 1\nname: p\ntargets: {list: [{id: a, ra: 1, dec: 2}]}\nsource:\n  ps1-cutouts: {}\n";
    let out = check(&format!("{ps1}transform:\n  lightcurve:\n    outputs: [npy]\n"));
    assert_eq!(code(&out), Some(2));
    assert_text!(stderr(&out), @r"
    error: r.yaml:7:3: transform.lightcurve: the ps1-cutouts source makes no use of transform.lightcurve
      hint: the ps1-cutouts source uses transform.image; remove `transform.lightcurve`
    ");
    // The sections a source does use, and an empty `transform`, pass.
    for text in [
        format!("{var}transform: {{}}\n"),
        format!("{fp}transform:\n  lightcurve: {{quality: faq-cuts}}\n"),
        format!("{ps1}transform:\n  image: {{outputs: [npy]}}\n"),
        local_recipe("t", "transform:\n  image: {nan: zero}\n"),
    ] {
        let out = check(&text);
        assert_eq!(code(&out), Some(0), "{text}\n{}", stderr(&out));
    }
}
