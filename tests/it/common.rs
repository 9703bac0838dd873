//! Test helpers: a temp folder with recipes and data, and `etd` commands with a clean environment.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real PS1 cutout (from the shared fixtures folder; see `etd_emulators::fixtures`).
pub fn ps1_fixture() -> PathBuf {
    fixture(etd_emulators::fixtures::PS1_CUTOUT)
}

/// A real ATLAS forced-photometry result file by job name.
pub fn atlas_fixture(job: &str) -> PathBuf {
    fixture(&etd_emulators::fixtures::atlas_result(job))
}

/// The path of a real fixture; a test calls `etd_emulators::require_fixtures!()` first.
pub fn fixture(rel: &str) -> PathBuf {
    etd_emulators::fixtures::path(rel).unwrap_or_else(|e| panic!("{e}"))
}

/// A scratch folder for one test.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, bytes).unwrap();
        path
    }

    pub fn copy(&self, from: &Path, rel: &str) -> PathBuf {
        let bytes = fs_err::read(from).unwrap();
        self.write(rel, bytes)
    }

    /// `etd` with etd's environment variables cleared, run in this folder, `--workdir work`.
    pub fn etd(&self) -> Command {
        let mut cmd = Command::cargo_bin("etd").unwrap();
        for var in etd::env_vars::ALL {
            cmd.env_remove(var);
        }
        cmd.current_dir(self.path()).arg("--workdir").arg(self.join("work"));
        cmd
    }

    pub fn shards(&self) -> PathBuf {
        self.join("work/shards")
    }

    /// Every file in the shard folder with its bytes, sorted by name.
    pub fn shard_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = fs_err::read_dir(self.shards())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), fs_err::read(e.path()).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    pub fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(&fs_err::read(self.shards().join("manifest.json")).unwrap()).unwrap()
    }
}

/// A local-source recipe over `data/` with extra YAML appended.
pub fn local_recipe(name: &str, extra: &str) -> String {
    format!("version: 1\nname: {name}\nsource:\n  local:\n    dir: data\n{extra}")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A minimal valid FITS file: one float32 primary image of `w` x `h` (row-major, first row =
/// FITS row 1) plus extra header cards (`KEY = value` text, at most 80 bytes each).
pub fn fits_f32(w: usize, h: usize, data: &[f32], extra: &[&str]) -> Vec<u8> {
    assert_eq!(data.len(), w * h);
    let mut cards = vec![
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                  -32".to_string(),
        "NAXIS   =                    2".to_string(),
        format!("NAXIS1  = {w:>20}"),
        format!("NAXIS2  = {h:>20}"),
    ];
    cards.extend(extra.iter().map(|c| c.to_string()));
    cards.push("END".to_string());
    let mut out = Vec::new();
    for c in cards {
        out.extend(format!("{c:<80}").as_bytes());
    }
    out.resize(out.len().div_ceil(2880) * 2880, b' ');
    for v in data {
        out.extend(v.to_be_bytes());
    }
    out.resize(out.len().div_ceil(2880) * 2880, 0);
    out
}

/// Deterministic pseudo-random floats (xorshift), with a few NaNs.
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 97 == 13 {
                f32::NAN
            } else {
                (x % 10_000) as f32 / 100.0 - 20.0
            }
        })
        .collect()
}

/// Start `etd fetch` in `s` and kill it with SIGKILL after each of `delays_ms` in turn.
pub fn kill_9_fetches(s: &Scratch, delays_ms: &[u64]) {
    for &delay_ms in delays_ms {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
            .current_dir(s.path())
            .args(["--workdir", "work", "-q", "fetch", "r.yaml"])
            .env("ETD_TEST_NO_RETRY_DELAY", "1")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
}
