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
    let mut ours = Vec::new();
    files(&repo(), &mut ours);
    let copies: Vec<String> = ours
        .iter()
        .filter_map(|p| theirs.get(&sha256(p)).map(|f| format!("{} is a copy of {}", p.display(), f.display())))
        .collect();
    assert!(copies.is_empty(), "never commit the shared fixtures; read them at test time:\n{}", copies.join("\n"));
}
