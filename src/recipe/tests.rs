//! Recipe parsing and resolution: every error names file, line, column and key path.

use std::path::PathBuf;

use super::*;
use crate::publish::config::Origin;

/// Write `text` as `recipe.yaml` in a temp dir with a `data/` folder and a targets CSV, then load it.
fn load_text(text: &str) -> (tempfile::TempDir, Result<Recipe, RecipeError>) {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("data")).unwrap();
    fs_err::write(
        dir.path().join("targets.csv"),
        "objid,ra,dec,class\nm51,202.47,47.19,spiral\nm87,187.70,12.39,elliptical\n",
    )
    .unwrap();
    let path = dir.path().join("recipe.yaml");
    fs_err::write(&path, text).unwrap();
    let result = load(&path);
    (dir, result)
}

fn err(text: &str) -> RecipeError {
    match load_text(text).1 {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

const LOCAL: &str = "version: 1\nname: t\nsource:\n  local:\n    dir: data\n";

#[test]
fn minimal_local_recipe_gets_defaults() {
    let (_d, r) = load_text(LOCAL);
    let r = r.unwrap();
    assert_eq!(r.name, "t");
    assert_eq!(r.shard.max_samples, DEFAULT_MAX_SAMPLES);
    assert_eq!(r.shard.max_bytes, DEFAULT_MAX_BYTES);
    assert_eq!(r.shard.splits, vec![("all".to_string(), 1.0)]);
    assert_eq!(r.image.outputs.len(), 2);
    assert!(r.dir.is_absolute());
    assert_eq!(r.sha256.len(), 64);
}

#[test]
fn unknown_key_names_line_column_and_suggests() {
    let e = err(&format!("{LOCAL}shard:\n  max_byte: 1GB\n"));
    assert_eq!(e.key, "shard.max_byte");
    assert_eq!((e.line, e.column), (Some(7), Some(3)));
    assert!(e.message.contains("unknown field `max_byte`"), "{}", e.message);
    assert_eq!(e.hint.as_deref(), Some("did you mean `max_bytes`?"));
    assert!(e.to_string().starts_with(&format!("{}:7:3: shard.max_byte: ", e.file.display())), "{e}");
}

#[test]
fn bad_units_say_what_was_expected() {
    let e = err(&format!("{LOCAL}shard:\n  max_bytes: 1 gigabyte\n"));
    assert_eq!(e.key, "shard.max_bytes");
    assert_eq!(e.line, Some(7));
    assert!(e.message.contains("100MB"), "{}", e.message);

    let e = err(&format!("{LOCAL}politeness:\n  timeout: 30\n"));
    assert_eq!(e.key, "politeness.timeout");
    assert!(e.message.contains("duration"), "{}", e.message);

    let e = err(&format!("{LOCAL}politeness:\n  rate: 4 per second\n"));
    assert_eq!(e.key, "politeness.rate");
    assert!(e.message.contains("4/s"), "{}", e.message);
}

#[test]
fn wrong_types_are_located() {
    let e = err(&format!("{LOCAL}shard:\n  max_samples: lots\n"));
    assert_eq!(e.key, "shard.max_samples");
    assert_eq!((e.line, e.column), (Some(7), Some(16)));
    assert_eq!(e.message, r#"expected a whole number, found "lots""#);
    let e = err("version: 1\nname: t\nsource:\n  ps1-cutouts:\n    filters: g\n");
    assert_eq!(e.key, "source.ps1-cutouts.filters");
    assert_eq!((e.line, e.column), (Some(5), Some(14)));
    assert_eq!(e.message, r#"expected a list such as [g], found "g""#);
    let e = err(&format!("{LOCAL}transform:\n  image:\n    stack_filters: maybe\n"));
    assert_eq!(e.message, r#"expected true or false, found "maybe""#);
}

#[test]
fn yaml_syntax_errors_name_their_own_line_and_column() {
    let e = err("this is: not: yaml: [\n");
    assert_eq!((e.line, e.column, e.key.as_str()), (Some(1), Some(13), ""));
    assert_eq!(e.message, "YAML syntax error: mapping values are not allowed in this context");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("quotes")), "{:?}", e.hint);
    // A broken line after valid keys (serde alone would first complain about the shape).
    let e = err(&format!("{LOCAL}  b: 'x\n"));
    assert_eq!((e.line, e.column), (Some(7), Some(1)));
    assert_eq!(
        e.message,
        "YAML syntax error: found unexpected end of stream, while scanning a quoted scalar at line 6 column 6"
    );
    let e = err(&format!("{LOCAL}---\nb: 1\n"));
    assert!(e.message.contains("more than one"), "{}", e.message);
}

#[test]
fn a_repeated_key_is_reported_where_it_repeats() {
    let e = err("version: 1\nname: t\nsource:\n  local:\n    dir: data\nname: u\n");
    assert_eq!((e.line, e.column, e.key.as_str()), (Some(6), Some(1), "name"));
    assert_eq!(e.message, "`name` is given a second time (first at line 2)");
    let e = err(&format!("{LOCAL}shard:\n  split: {{a: 0.5, a: 0.5}}\n"));
    assert_eq!((e.line, e.column, e.key.as_str()), (Some(7), Some(19), "shard.split.a"));
}

#[test]
fn split_fractions_must_sum_to_one() {
    let e = err(&format!("{LOCAL}shard:\n  split: {{train: 0.8, val: 0.3}}\n"));
    assert_eq!(e.key, "shard.split");
    assert_eq!((e.line, e.column), (Some(7), Some(10)));
    assert!(e.message.contains("sum to"), "{}", e.message);
    assert!(e.hint.is_some());
    let e = err(&format!("{LOCAL}shard:\n  split: {{Train: 1.0}}\n"));
    assert_eq!(e.key, "shard.split.Train");
}

#[test]
fn out_of_range_values() {
    let e = err(&format!("{LOCAL}shard:\n  max_samples: 0\n"));
    assert_eq!(e.key, "shard.max_samples");
    assert_eq!((e.line, e.column), (Some(7), Some(16)));
    let e = err(&format!("{LOCAL}shard:\n  compression: zstd\n  level: 40\n"));
    assert_eq!(e.key, "shard.level");
    assert_eq!(e.line, Some(8));
    let e = err(&format!("{LOCAL}shard:\n  level: 5\n"));
    assert!(e.message.contains("compression: zstd"), "{}", e.message);
}

#[test]
fn ps1_size_and_filters() {
    let base = "version: 1\nname: p\ntargets: {file: targets.csv, columns: {id: objid, label: class}}\nsource:\n  ps1-cutouts:\n";
    let e = err(&format!("{base}    size: 0\n"));
    assert_eq!(e.key, "source.ps1-cutouts.size");
    assert_eq!((e.line, e.column), (Some(6), Some(11)));
    let e = err(&format!("{base}    filters: [g, q]\n"));
    assert_eq!(e.key, "source.ps1-cutouts.filters[1]");
    assert_eq!((e.line, e.column), (Some(6), Some(18)));
    assert!(e.hint.as_deref().unwrap().contains("g, r, i, z, y"));
    let (_d, ok) = load_text(&format!("{base}    filters: [g, r, i]\n    size: 120\n"));
    let r = ok.unwrap();
    let t = r.targets.unwrap();
    assert_eq!(t.rows.len(), 2);
    assert_eq!(t.rows[0].id, "m51");
    assert_eq!(t.classes(), vec!["elliptical", "spiral"]);
    let e = err(&format!("{base}politeness: {{concurrency: 12}}\n"));
    assert_eq!(e.key, "politeness.concurrency");
}

#[test]
fn targets_rows_are_checked_with_file_and_line() {
    let (dir, _) = load_text(LOCAL);
    fs_err::write(dir.path().join("bad.csv"), "id,ra,dec\na,10,20\nb,10,95\n").unwrap();
    let path = dir.path().join("r.yaml");
    fs_err::write(&path, "version: 1\nname: p\ntargets: {file: bad.csv}\nsource:\n  ps1-cutouts: {}\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.file, dir.path().join("bad.csv"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("dec 95 is outside [-90, 90]"), "{}", e.message);

    fs_err::write(dir.path().join("dup.csv"), "id,ra,dec\na,10,20\na,11,21\n").unwrap();
    fs_err::write(&path, "version: 1\nname: p\ntargets: {file: dup.csv}\nsource:\n  ps1-cutouts: {}\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("duplicate id `a`"), "{}", e.message);

    fs_err::write(dir.path().join("nan.csv"), "id,ra,dec\na,nan,20\n").unwrap();
    fs_err::write(&path, "version: 1\nname: p\ntargets: {file: nan.csv}\nsource:\n  ps1-cutouts: {}\n").unwrap();
    assert!(load(&path).unwrap_err().message.contains("finite"));
}

#[test]
fn inline_targets_point_into_the_recipe() {
    let e = err("version: 1\nname: p\ntargets:\n  list:\n    - {id: a, ra: 10, dec: 1}\n    - {id: b, ra: 400, dec: 1}\nsource:\n  ps1-cutouts: {}\n");
    assert_eq!(e.key, "targets.list[1].ra");
    assert_eq!((e.line, e.column), (Some(6), Some(19)));
    assert!(e.message.contains("[0, 360)"), "{}", e.message);
}

#[test]
fn missing_files_and_folders() {
    let e = err("version: 1\nname: t\nsource:\n  local:\n    dir: nowhere\n");
    assert_eq!(e.key, "source.local.dir");
    assert_eq!((e.line, e.column), (Some(5), Some(10)));
    let e = err("version: 1\nname: p\ntargets: {file: missing.csv}\nsource:\n  ps1-cutouts: {}\n");
    assert_eq!(e.key, "targets.file");
    assert_eq!(e.line, Some(3));
    let e = load(&PathBuf::from("/definitely/not/here.yaml")).unwrap_err();
    assert!(e.message.contains("no such file"), "{}", e.message);
}

#[test]
fn source_kinds_and_names() {
    let e = err("version: 1\nname: t\nsource:\n  ftp: {}\n");
    assert_eq!(e.key, "source.ftp");
    assert_eq!(e.line, Some(4));
    assert!(e.hint.as_deref().unwrap().contains("ps1-cutouts"), "{e:?}");
    let e = err("version: 1\nname: Bad_Name\nsource:\n  local: {dir: data}\n");
    assert_eq!(e.key, "name");
    assert_eq!((e.line, e.column), (Some(2), Some(7)));
    let e = err("version: 2\nname: t\nsource:\n  local: {dir: data}\n");
    assert_eq!(e.key, "version");
    let e = err("version: 1\nname: t\ntargets: {list: [{ra: 1, dec: 2}]}\nsource:\n  local: {dir: data}\n");
    assert_eq!(e.key, "targets");
}

#[test]
fn atlas_sources_resolve() {
    let base = "version: 1\nname: a\ntargets: {file: targets.csv, columns: {id: objid}}\nsource:\n  atlas-fp:\n";
    let e = err(&format!("{base}    batch: 101\n"));
    assert_eq!(e.key, "source.atlas-fp.batch");
    let e = err(&format!("{base}    mjd_min: 60000\n    mjd_max: 59000\n"));
    assert_eq!(e.key, "source.atlas-fp.mjd_max");
    let e = err(&format!("{base}    token_env: T\n    token_file: t.txt\n"));
    assert!(e.message.contains("more than one way"), "{}", e.message);
    let (_d, ok) = load_text(&format!("{base}    mjd_min: 59000\n"));
    assert!(ok.is_ok());
    let e = err("version: 1\nname: v\nsource:\n  atlas-var:\n    catalog_url: https://x/c.fits\n    lightcurves_url: file:///d\n    classes: [MIRA, BOGUS]\n");
    assert_eq!(e.key, "source.atlas-var.classes[1]");
}

#[test]
fn publish_section() {
    let e = err(&format!("{LOCAL}publish: {{origin: /export, path: /abs, version: v1}}\n"));
    assert_eq!(e.key, "publish.path");
    for hostile in ["..", "ns/../..", "ns/./x", "ns//x", "..\\\\etc", "c:x", "a\\0b", "a\\nb", "ns/\\x1b[2J"] {
        let e = err(&format!("{LOCAL}publish: {{origin: /export, path: \"{hostile}\", version: v1}}\n"));
        assert_eq!(e.key, "publish.path", "{hostile}");
    }
    let e = err(&format!("{LOCAL}publish: {{origin: /export, path: ns/ds, version: v1, token_file: t}}\n"));
    assert_eq!(e.key, "publish.token_file");
    let (_d, ok) =
        load_text(&format!("{LOCAL}publish: {{origin: 'https://origin.example:8443/ns', path: ns/ds, version: v1}}\n"));
    assert!(matches!(ok.unwrap().publish.unwrap().origin, Origin::Url(_)));
}

#[test]
fn every_shipped_recipe_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut n = 0;
    for entry in fs_err::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "no recipes in {}", dir.display());
}

#[test]
fn targets_without_rows_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("empty.csv"), "objid,ra,dec\n").unwrap();
    let path = dir.path().join("recipe.yaml");
    fs_err::write(&path, "version: 1\nname: t\ntargets: {file: empty.csv}\nsource:\n  ps1-cutouts: {}\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.file, dir.path().join("empty.csv"));
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("header row but no rows"), "{}", e.message);
    let e = err("version: 1\nname: t\ntargets: {list: []}\nsource:\n  ps1-cutouts: {}\n");
    assert_eq!(e.key, "targets.list");
    assert!(e.message.contains("empty"), "{}", e.message);
}

#[test]
fn source_specific_rules_come_from_the_source() {
    // PS1: `fits` output needs FITS cutouts.
    let e = err("version: 1\nname: t\ntargets: {file: targets.csv, columns: {id: objid}}\nsource:\n  ps1-cutouts:\n    format: jpg\n    filters: [g]\ntransform:\n  image: {outputs: [npy, fits]}\n");
    assert_eq!(e.key, "transform.image.outputs");
    assert!(e.message.contains("`fits` output needs FITS cutouts"), "{}", e.message);
    assert!(e.hint.as_deref().unwrap().contains("format: fits"));
    // PS1: at most 10 in flight unless the archive's limit may be exceeded.
    let e = err("version: 1\nname: t\ntargets: {file: targets.csv, columns: {id: objid}}\nsource:\n  ps1-cutouts: {}\npoliteness: {concurrency: 11}\n");
    assert_eq!(e.key, "politeness.concurrency");
    assert!(e.message.contains("above PS1's stated maximum of 10"), "{}", e.message);
    // Local: politeness has no effect, said as a warning.
    let (_d, r) = load_text(&format!("{LOCAL}politeness: {{concurrency: 2}}\n"));
    let warnings = r.unwrap().warnings;
    assert_eq!(warnings, ["`politeness` has no effect with the local source: it makes no requests"]);
}
