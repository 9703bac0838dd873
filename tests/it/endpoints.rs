//! The archive endpoint (`base_url`) is provenance: units fetched from one endpoint never pass for
//! another's, and an endpoint where nothing listens stops the fetch early with a clear message.

use std::time::Duration;

use etd_emulators::ps1::{Faults, Ps1Emulator};

use super::common::{stderr, Scratch};
use super::ps1::{recipe, targets_csv};

const POLITE: &str = "{concurrency: 4, rate: 500/s}";

/// The `endpoint=` each done or failed unit of the workdir's journals was recorded with.
fn recorded_endpoints(s: &Scratch) -> Vec<String> {
    recorded(s).into_iter().map(|(_, e)| e).collect()
}

/// (status, endpoint) of each done or failed unit of the workdir's journals.
fn recorded(s: &Scratch) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(s.join("work")).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("journal") {
            for line in fs_err::read_to_string(&path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["status"] == "done" || v["status"] == "failed" {
                    let params = v["params"].as_str().unwrap();
                    let endpoint = params.rsplit_once(" endpoint=").unwrap().1.to_string();
                    out.push((v["status"].as_str().unwrap().to_string(), endpoint));
                }
            }
        }
    }
    out
}

#[test]
fn a_changed_base_url_fetches_everything_again_from_the_new_endpoint() {
    etd_emulators::require_fixtures!();
    let faults = Faults { latency: Duration::from_millis(1), ..Faults::default() };
    let (a, b) = (Ps1Emulator::start(faults.clone()).unwrap(), Ps1Emulator::start(faults).unwrap());
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(20));
    s.write("r.yaml", recipe(&a.base_url(), "g", POLITE, ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out)); // 2 targets without coverage
    assert_eq!(recorded_endpoints(&s), vec![a.base_url(); 20]);
    // Same settings, other endpoint: nothing counts as done.
    s.write("r.yaml", recipe(&format!("{}/", b.base_url()), "g", POLITE, ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "20 units were fetched from another endpoint ({}) than the recipe's now ({}); fetching them again",
            a.base_url(),
            b.base_url()
        )),
        "{err}"
    );
    assert!(err.contains("18 done, 2 failed"), "{err}");
    assert_eq!(b.meter().by_endpoint["ps1filenames"], 20, "every target listed again at B");
    assert_eq!(recorded_endpoints(&s)[20..], vec![b.base_url(); 20]);
    // Back at B with nothing changed: nothing to do.
    b.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(b.meter().requests, 0);
}

#[test]
fn shard_leaves_out_units_from_another_endpoint_with_a_warning() {
    etd_emulators::require_fixtures!();
    let faults = Faults { latency: Duration::from_millis(1), ..Faults::default() };
    let (a, b) = (Ps1Emulator::start(faults.clone()).unwrap(), Ps1Emulator::start(faults).unwrap());
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(20));
    s.write("r.yaml", recipe(&a.base_url(), "g", POLITE, ""));
    assert_eq!(s.etd().args(["run", "r.yaml"]).output().unwrap().status.code(), Some(3));
    let before = s.shard_files();
    // Point the recipe at B and fetch only half of it there (one task of two).
    s.write("r.yaml", recipe(&b.base_url(), "g", POLITE, ""));
    let out = s.etd().args(["fetch", "r.yaml", "--num-tasks", "2", "--task-index", "0"]).output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let from_b = recorded_endpoints(&s).iter().filter(|e| **e == b.base_url()).count();
    assert!(from_b > 0 && from_b < 20, "{from_b}");
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out).replace(&a.base_url(), "[A]").replace(&b.base_url(), "[B]");
    assert!(matches!(out.status.code(), Some(0 | 3)), "{err}");
    let warnings: String = err.lines().filter(|l| l.starts_with(" WARN")).map(|l| format!("{l}\n")).collect();
    let warnings = warnings.replace(&s.path().display().to_string(), "[TMP]");
    insta::assert_snapshot!(warnings, @r"
    WARN 9 units were fetched from another endpoint ([A]) than the recipe's now ([B]); leaving them out
    WARN hint: run `etd fetch [TMP]/r.yaml` to fetch them with the current settings
    WARN 2 targets failed to fetch and are not in the shards; see [TMP]/work/failures.jsonl
    ");
    assert_ne!(s.shard_files(), before);
    let done_b = recorded(&s).iter().filter(|(st, e)| st == "done" && *e == b.base_url()).count();
    assert_eq!(s.manifest()["samples"], done_b as u64, "only the units from B are in the shards");
}

#[test]
fn a_journal_of_etd_0_1_0_without_endpoints_counts_as_from_elsewhere() {
    etd_emulators::require_fixtures!();
    let a = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(10));
    s.write("r.yaml", recipe(&a.base_url(), "g", POLITE, ""));
    assert_eq!(s.etd().args(["fetch", "r.yaml"]).output().unwrap().status.code(), Some(3));
    // What etd 0.1.0 wrote: the same settings, no endpoint.
    let journal = s.join("work/journal.jsonl");
    let old = fs_err::read_to_string(&journal).unwrap().replace(&format!(" endpoint={}", a.base_url()), "");
    fs_err::write(&journal, old).unwrap();
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out).replace(&a.base_url(), "[A]");
    assert!(
        err.contains(
            "10 units were fetched by etd 0.1.0, which did not record the endpoint, so they may come from \
                      another endpoint than the recipe's now ([A]); leaving them out"
        ),
        "{err}"
    );
    a.reset_meter();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(a.meter().by_endpoint["ps1filenames"], 10, "fetched again");
}

/// A port where nothing listens: bind a listener, take its port, drop it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn nothing_listening_stops_after_a_few_retries_with_a_hint() {
    etd_emulators::require_fixtures!();
    let port = closed_port();
    let s = Scratch::new();
    s.write("targets.csv", targets_csv(100));
    s.write("r.yaml", recipe(&format!("http://127.0.0.1:{port}"), "g", "{concurrency: 1, retries: 8}", ""));
    let out = s.etd().args(["-v", "fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    let err = stderr(&out).replace(&port.to_string(), "[PORT]");
    assert_eq!(out.status.code(), Some(75), "{err}");
    // Two units under way (twice the concurrency), each at most 1 try + 2 retries.
    let retries = err.lines().filter(|l| l.contains("; retry ")).count();
    assert!((2..=4).contains(&retries), "{retries} retries:\n{err}");
    let last: Vec<&str> = err.lines().skip_while(|l| !l.starts_with("error:")).collect();
    insta::assert_snapshot!(last.join("\n"), @r"
    error: nothing is listening at http://127.0.0.1:[PORT] — is the server running?
      hint: http://127.0.0.1:[PORT] refused every connection and has not answered once in this run; start the server or correct base_url in the recipe, then run the same command again
    ");
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap_or_default();
    assert!(journal.is_empty(), "nothing recorded: {journal}");
}

#[test]
fn nothing_listening_stops_atlas_fp_and_atlas_var_too() {
    let port = closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let s = Scratch::new();
    s.write("t.csv", "id,ra,dec\na,1,2\nb,3,4\n");
    s.write(
        "fp.yaml",
        format!("version: 1\nname: fp\ntargets: {{file: t.csv}}\nsource:\n  atlas-fp: {{base_url: \"{base}/forcedphot\"}}\n"),
    );
    s.write(
        "var.yaml",
        format!(
            "version: 1\nname: var\nsource:\n  atlas-var: {{catalog_url: \"{base}/cat.csv\", lightcurves_url: \"{base}/lc/\"}}\n"
        ),
    );
    for recipe in ["fp.yaml", "var.yaml"] {
        let out = s
            .etd()
            .args(["fetch", recipe])
            .env("ETD_TEST_NO_RETRY_DELAY", "1")
            .env("ATLAS_TOKEN", "0123456789abcdef0123456789abcdef01234567")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(75), "{recipe}: {err}");
        assert!(err.contains(&format!("nothing is listening at {base} — is the server running?")), "{recipe}: {err}");
    }
}
