//! The repository holds no copy of the real archive files in the shared fixtures folder: they come
//! from other people's repositories and are read from there at test time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::common::repo;

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs_err::read(path).unwrap()))
}

/// Every file below `dir`, skipping build output, virtual environments and git's own folder.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs_err::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            if !matches!(name.to_str(), Some(".git" | "target" | ".venv" | "etd-work")) {
                files(&path, out);
            }
        } else if ty.is_file() {
            out.push(path);
        }
    }
}

/// The files that could be committed: tracked, or untracked and not ignored, as git lists them.
/// A fuzz campaign's `fuzz/seeds/` and `fuzz/corpus/` hold copies of the fixtures by design and
/// are ignored. Outside a git checkout (an unpacked source archive), every file.
fn repo_files(root: &Path) -> Vec<PathBuf> {
    let listed = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output();
    match listed {
        Ok(o) if o.status.success() => o
            .stdout
            .split(|b| *b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| root.join(String::from_utf8_lossy(name).as_ref()))
            .filter(|p| p.is_file())
            .collect(),
        _ => {
            let mut all = Vec::new();
            files(root, &mut all);
            all
        }
    }
}

#[test]
fn no_file_in_the_repository_is_a_copy_of_a_shared_fixture() {
    let fixtures = etd_emulators::fixtures::dir();
    if !fixtures.is_dir() {
        assert!(!etd_emulators::fixtures::under_ci(), "the shared fixtures folder {} is missing", fixtures.display());
        eprintln!("skipped: no shared fixtures folder at {}", fixtures.display());
        return;
    }
    let mut theirs = Vec::new();
    files(&fixtures, &mut theirs);
    let theirs: HashMap<String, PathBuf> =
        theirs.into_iter().filter(|p| p.extension().is_none_or(|e| e != "md")).map(|p| (sha256(&p), p)).collect();
    assert!(theirs.len() >= 7, "expected the PS1 cutout and six ATLAS results in {}", fixtures.display());
    let ours = repo_files(&repo());
    assert!(ours.iter().any(|p| p.ends_with("src/main.rs")), "the repository's own files are listed");
    let copies: Vec<String> = ours
        .iter()
        .filter_map(|p| theirs.get(&sha256(p)).map(|f| format!("{} is a copy of {}", p.display(), f.display())))
        .collect();
    assert!(copies.is_empty(), "never commit the shared fixtures; read them at test time:\n{}", copies.join("\n"));
}
