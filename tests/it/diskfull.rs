//! Full disks: `fetch`, `shard` and `publish` on a small tmpfs stop with exit 75, name the full
//! folder, the free space and what the stage needs, leave no temporary file, record no unit as
//! failed, and a rerun after space is freed ends with exactly the output of an uninterrupted run.
//! Mounting a tmpfs needs root (CI runs as root); elsewhere each test says it is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use etd_emulators::ps1::{Faults, Ps1Emulator};

use super::common::{local_recipe, stderr, Scratch};

/// A tmpfs mounted at a folder for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `kib` KiB at `dir` (created), or `None` with a line saying why when not
    /// root outside CI. In CI (`CI` set) a failure to mount fails the test.
    fn mount(dir: &Path, kib: u64) -> Option<Tmpfs> {
        fs_err::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(std::env::var_os("CI").is_none(), "cannot mount a tmpfs in CI: {why}");
                eprintln!("skipped: mounting a tmpfs needs root ({why})");
                None
            }
        }
    }

    /// Grow (or shrink) the filesystem to `kib` KiB: space freed.
    fn resize(&self, kib: u64) {
        let out = Command::new("mount").args(["-o", &format!("remount,size={kib}k")]).arg(&self.0).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every file below `dir`, relative, sorted, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs_err::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((p.strip_prefix(root).unwrap().display().to_string(), fs_err::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `text` with every run of digits replaced by `N` (free space and estimates vary by filesystem).
fn regex_lite_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Names of temporary files etd left below `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".etd-tmp") || n.contains(".partial") || n.contains("staging") || n.ends_with(".part"))
        .collect()
}

fn ps1_scratch(emu: &Ps1Emulator) -> Scratch {
    let s = Scratch::new();
    let mut csv = String::from("objid,ra,dec,class\n");
    for i in 0..24 {
        csv.push_str(&format!("g{i:02},{},{},{}\n", 10.0 + i as f64 * 0.7, 20.0 + i as f64 * 0.3, ["a", "b"][i % 2]));
    }
    s.write("targets.csv", csv);
    s.write("r.yaml", super::ps1::recipe(&emu.base_url(), "r", "{rate: 200/s, retries: 1}", ""));
    s
}

/// The shards of an uninterrupted fetch and shard of the same recipe on an ordinary disk.
fn reference(emu: &Ps1Emulator) -> Vec<(String, Vec<u8>)> {
    let s = ps1_scratch(emu);
    for cmd in ["fetch", "shard"] {
        let out = s.etd().args([cmd, "r.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    s.shard_files()
}

fn says_disk_full(err: &str, stage: &str, dir: &Path) {
    let head = format!("error: {stage}: the disk holding {} is full (", dir.display());
    assert!(err.contains(&head), "{err}");
    assert!(err.contains(&format!("; {stage} needs about ")), "{err}");
    assert!(err.contains("hint: free space on the filesystem holding"), "{err}");
}

#[test]
fn fetch_on_a_full_disk_exits_75_and_a_rerun_after_freeing_space_gives_the_same_shards() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let want = reference(&emu);
    let s = ps1_scratch(&emu);
    let work = s.join("work");
    let Some(fs) = Tmpfs::mount(&work, 160) else { return };
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    says_disk_full(&err, "fetch", &work);
    let numbers = regex_lite_digits(&err.replace(&work.display().to_string(), "[WORK]"));
    let shown: Vec<&str> = numbers.lines().filter(|l| !l.starts_with(" INFO") && !l.contains("caused by")).collect();
    insta::assert_snapshot!(shown.join("\n"), @r"
    error: fetch: the disk holding [WORK] is full (N bytes free); fetch needs about N bytes more
      hint: free space on the filesystem holding [WORK] (or quota), then run the same command again: everything completed is kept and it continues from there
    ");
    assert!(temporaries(&work).is_empty(), "{:?}", temporaries(&work));
    assert!(!work.join("failures.jsonl").exists(), "no unit failed for good");
    fs.resize(4096);
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("already done"), "{}", stderr(&out));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.shard_files(), want);
}

#[test]
fn shard_on_a_full_disk_keeps_the_old_shards_leaves_no_partial_folder_and_reruns_to_the_same_shards() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let want = reference(&emu);
    let s = ps1_scratch(&emu);
    let work = s.join("work");
    let Some(fs) = Tmpfs::mount(&work, 4096) else { return };
    for cmd in ["fetch", "shard"] {
        let out = s.etd().args([cmd, "r.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let before = s.shard_files();
    // Room for what is there and a little more, not for a second set of shards beside the first.
    fs.resize(used_kib(&work) + 48);
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    says_disk_full(&err, "shard", &work);
    assert!(temporaries(&work).is_empty(), "{:?}", temporaries(&work));
    assert_eq!(s.shard_files(), before, "the old shards are intact");
    let failures = fs_err::read_to_string(work.join("failures.jsonl")).unwrap_or_default();
    assert!(!failures.contains("\"stage\":\"shard\""), "{failures}");
    fs.resize(8192);
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.shard_files(), want);
}

/// KiB used on the filesystem holding `dir`.
fn used_kib(dir: &Path) -> u64 {
    let out = Command::new("df").args(["-k", "--output=used"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn publish_to_a_full_origin_exits_75_leaves_no_staging_and_completes_on_rerun() {
    let s = Scratch::new();
    for i in 0..4 {
        let text: String = (0..40_000u32).map(|j| format!("{:08x}\n", j.wrapping_mul(2_654_435_761) ^ i)).collect();
        s.write(&format!("data/f{i}.txt"), text);
    }
    s.write(
        "r.yaml",
        local_recipe("pubfull", "shard: {max_samples: 1}\npublish: {origin: origin, path: ns/full, version: v1}\n"),
    );
    for cmd in ["fetch", "shard"] {
        let out = s.etd().args([cmd, "r.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let origin = s.join("origin");
    // Room for two of the four 360 kB shards.
    let Some(fs) = Tmpfs::mount(&origin, 800) else { return };
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    says_disk_full(&err, "publish", &origin.join("ns/full"));
    let temps: Vec<String> =
        tree(&origin).into_iter().map(|(n, _)| n).filter(|n| n.contains(".etd-tmp") || n.contains("staging")).collect();
    assert!(temps.is_empty(), "{temps:?}");
    fs.resize(8192);
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tree(&origin.join("ns/full/v1")), tree(&s.shards()));
}

#[test]
fn an_atlas_var_download_on_a_full_disk_exits_75_and_resumes_after_space_is_freed() {
    use etd_emulators::atlas_var::{AtlasVarEmulator, Config};
    let emu = AtlasVarEmulator::start(Config { objects: 300, ..Config::default() }).unwrap();
    let s = Scratch::new();
    s.write("r.yaml", super::atlas_var::recipe(&emu.catalog_url(), &emu.lightcurves_url()));
    let work = s.join("work");
    let Some(fs) = Tmpfs::mount(&work, 64) else { return };
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains(&format!("error: fetch: the disk holding {} is full (", work.display())), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!work.join("failures.jsonl").exists());
    fs.resize(16384);
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let raw = work.join("raw/atlas-var");
    let name = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits";
    assert_eq!(fs_err::read(raw.join(name)).unwrap(), emu.dataset().catalog_fits());
    for (file, _) in tree(&raw).iter().filter(|(n, _)| n.ends_with(".csv")) {
        assert_eq!(fs_err::read(raw.join(file)).unwrap(), emu.dataset().partition_csv(file).unwrap(), "{file}");
    }
    assert!(temporaries(&work).is_empty(), "{:?}", temporaries(&work));
}

/// Every file below `dir` (none when it is missing), for comparing a folder before and after.
fn tree_or_empty(dir: &Path) -> Vec<(String, Vec<u8>)> {
    if dir.is_dir() {
        tree(dir)
    } else {
        Vec::new()
    }
}

#[test]
fn shard_parts_and_their_merge_on_a_full_disk_exit_75_keep_earlier_outputs_and_rerun_to_the_same_shards() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let want = reference(&emu);
    let s = ps1_scratch(&emu);
    let work = s.join("work");
    let parts = work.join("parts");
    let Some(fs) = Tmpfs::mount(&work, 8192) else { return };
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let part = |i: &str| s.etd().args(["shard", "r.yaml", "--task-index", i, "--num-tasks", "2"]).output().unwrap();
    // Room for what is there and a little more, not for a part.
    let fill = || fs.resize(used_kib(&work) + 16);
    let full = |out: &std::process::Output, what: &str| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(75), "{what}: {err}");
        says_disk_full(&err, "shard", &work);
        assert!(temporaries(&work).is_empty(), "{what}: {:?}", temporaries(&work));
        let failures = fs_err::read_to_string(work.join("failures.jsonl")).unwrap_or_default();
        assert!(!failures.contains("\"stage\":\"shard\""), "{what}: {failures}");
    };

    fill();
    full(&part("0"), "the first part");
    assert!(tree_or_empty(&parts).is_empty(), "no part and no partial folder");
    fs.resize(8192);
    let out = part("0");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let part0 = tree(&parts);
    assert!(!part0.is_empty());

    // The second part, and task 0 run again, on a full disk: task 0's finished part is kept as it was.
    fill();
    full(&part("1"), "the second part");
    full(&part("0"), "the first part again");
    assert_eq!(tree(&parts), part0, "the finished part is intact");
    fs.resize(8192);
    let out = part("1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let both = tree(&parts);

    // The merge on a full disk: no shard folder, partial or whole; the parts stay for the rerun.
    fill();
    let out = s.etd().args(["shard", "r.yaml", "--merge"]).output().unwrap();
    full(&out, "the merge");
    assert!(!s.shards().exists(), "no shards from a merge that did not finish");
    assert_eq!(tree(&parts), both, "the parts are intact");
    fs.resize(16384);
    let out = s.etd().args(["shard", "r.yaml", "--merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.shard_files(), want, "the shards of an uninterrupted single run");
}
