//! Progress and logs on stderr without a terminal: periodic lines, `-q`, JSON log lines.

use super::common::*;

fn setup(s: &Scratch) {
    for i in 0..5 {
        s.write(&format!("data/x{i}.txt"), format!("{i}"));
    }
    s.write("r.yaml", local_recipe("l", ""));
}

#[test]
fn without_a_terminal_progress_is_logged_as_lines() {
    let s = Scratch::new();
    setup(&s);
    let out = s.etd().env("ETD_PROGRESS_INTERVAL", "0").args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("fetch: 5/5 samples"), "{err}");
    assert!(err.contains("shard: 5/5 samples"), "{err}");
    assert!(!err.contains('\u{1b}'), "no escape codes without a terminal: {err:?}");
    assert!(stdout(&out).is_empty(), "stdout is for data only");
}

#[test]
fn quiet_prints_nothing_on_success() {
    let s = Scratch::new();
    setup(&s);
    let out = s.etd().env("ETD_PROGRESS_INTERVAL", "0").args(["-q", "run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out), "");
}

#[test]
fn json_log_lines_parse() {
    let s = Scratch::new();
    setup(&s);
    let out =
        s.etd().env("ETD_PROGRESS_INTERVAL", "0").args(["--log-format", "json", "run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    let lines: Vec<serde_json::Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO" && l["message"].as_str().unwrap().starts_with("manifest: ")),
        "{err}"
    );
}
