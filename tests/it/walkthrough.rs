//! docs/emulators.md walks a new user through each archive emulator with shell commands. This
//! runs those commands as written (in a scratch folder instead of /tmp/etd-try, with the test
//! build's `etd` and `etd-emulator` on the PATH), so the walkthrough cannot rot.

use std::process::Command;

use super::common::{repo, Scratch};

#[test]
fn the_emulator_walkthroughs_run_as_written() {
    etd_emulators::require_fixtures!();
    let etd = assert_cmd::cargo::cargo_bin("etd");
    let bin_dir = etd.parent().unwrap().to_path_buf();
    if !bin_dir.join("etd-emulator").exists() {
        // Built by `cargo test --workspace` (the README's test command), not by `-p etd` alone.
        assert!(!etd_emulators::fixtures::under_ci(), "etd-emulator is not built in {}", bin_dir.display());
        eprintln!("skipped: etd-emulator is not built; run the tests with --workspace");
        return;
    }
    let page = fs_err::read_to_string(repo().join("docs/emulators.md")).unwrap();
    let blocks: Vec<&str> = page.split("```sh\n").skip(1).map(|b| &b[..b.find("```").unwrap()]).collect();
    assert!(blocks.len() >= 4, "the build block and one walkthrough per emulator");
    assert!(blocks[0].contains("cargo build"), "the first block builds; the test uses its own build");
    // The README's short PS1 walkthrough is the page's, line for line (after its own set-up lines).
    let readme = fs_err::read_to_string(repo().join("README.md")).unwrap();
    let at = readme.find("## Try the archives without touching them").expect("README: the emulator section");
    let short = &readme[at..];
    let short = &short[short.find("```sh\n").unwrap() + 6..];
    for line in short[..short.find("```").unwrap()].lines().skip(3).filter(|l| !l.is_empty()) {
        assert!(page.contains(line), "README line not in docs/emulators.md (keep them equal): {line}");
    }
    let s = Scratch::new();
    let try_dir = s.path().display().to_string();
    let mut script = String::from("set -eu\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for block in &blocks[1..] {
        script.push_str(&block.replace("/tmp/etd-try", &try_dir));
        script.push('\n');
    }
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(s.path()).env("PATH", path).env("REPO", repo());
    for var in etd::env_vars::ALL {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
    // Each walkthrough ends with a verified dataset, under its own name and workdir.
    for (dir, samples) in [("galaxies", 18), ("atlas", 6), ("var", 19)] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs_err::read(s.join(&format!("{dir}/shards/manifest.json"))).unwrap()).unwrap();
        assert_eq!(manifest["samples"], samples, "{dir}");
        assert!(manifest["name"].as_str().unwrap().ends_with("-emulated"), "{dir}: its own name");
    }
    assert_eq!(stdout.matches(": OK").count(), 3, "three `etd verify` runs said OK:\n{stdout}");
}
