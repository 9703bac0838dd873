//! Hostile names: target ids, tar member names in `verify`/`inspect` input, symlinks in a local
//! source folder. Nothing is ever written outside the workdir (or the publish origin path).

use std::collections::BTreeSet;
use std::path::Path;

use etd_emulators::ps1::{Faults, Ps1Emulator};

use super::common::{local_recipe, stderr, Scratch};

/// Every path below `dir` (files, folders and links), relative.
fn all_paths(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn hostile_target_ids_become_plain_keys_inside_the_workdir() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults::default()).unwrap();
    let s = Scratch::new();
    let ids = ["../../etc/x", "/abs/olute", "CON", "nul.txt", "a\u{0}b", "ok"];
    let mut csv = String::from("objid,ra,dec,class\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("\"{id}\",{},{},c\n", 10.0 + i as f64, 20.0));
    }
    s.write("targets.csv", csv);
    s.write("r.yaml", super::ps1::recipe(&emu.base_url(), "r", "{rate: 100/s, retries: 1}", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    let before: BTreeSet<String> = ["r.yaml", "targets.csv"].iter().map(|s| s.to_string()).collect();
    let outside: BTreeSet<String> =
        all_paths(s.path()).into_iter().filter(|p| !p.starts_with("work")).collect::<BTreeSet<_>>();
    assert_eq!(outside, before, "only the workdir was written: {err}");
    assert!(!Path::new("/etc/x").exists() && !Path::new("/abs").exists());
    assert_eq!(out.status.code(), Some(0), "{err}");
    {
        let keys: BTreeSet<String> = fs_err::read_dir(s.join("work/raw/ps1-cutouts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for k in &keys {
            assert!(etd::keys::key_problem(k).is_none(), "{k}");
        }
        let want: BTreeSet<String> =
            ["etc_x", "abs_olute", "CON", "nul_txt", "a_b", "ok"].iter().map(|s| s.to_string()).collect();
        assert_eq!(keys, want);
    }
    // An id with nothing usable in a key is a recipe error before anything is fetched.
    s.write(
        "targets.csv",
        "objid,ra,dec,class
..,10,20,c
",
    );
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("id `..` has no character usable in a key"), "{}", stderr(&out));
}

#[test]
fn an_id_of_ten_thousand_characters_is_a_recipe_error_shown_cut_short() {
    let s = Scratch::new();
    let long = "x".repeat(10_000);
    s.write("targets.csv", format!("objid,ra,dec,class\n{long},10,20,c\nok,11,20,c\n"));
    s.write("r.yaml", super::ps1::recipe("http://127.0.0.1:9", "r", "{rate: 100/s, retries: 1}", ""));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.len() < 2000, "the id is not printed whole: {} bytes", err.len());
    assert!(!s.join("work/raw").exists());
}

/// One hand-made ustar header block (entry type `flag`) and `data` padded to a block.
fn raw_member(out: &mut Vec<u8>, name: &[u8], flag: u8, data: &[u8]) {
    let mut block = [0u8; 512];
    block[..name.len()].copy_from_slice(name);
    block[100..108].copy_from_slice(b"0000644\0");
    block[108..116].copy_from_slice(b"0000000\0");
    block[116..124].copy_from_slice(b"0000000\0");
    block[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = flag;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&block);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn hostile_member_names_in_verify_and_inspect_input_are_read_not_written_nor_echoed_raw() {
    let s = Scratch::new();
    let mut tar = Vec::new();
    raw_member(&mut tar, b"../../evil.npy", b'0', b"x");
    raw_member(&mut tar, b"/abs/evil.npy", b'0', b"x");
    raw_member(&mut tar, b"a\x1b[2Jb.npy", b'0', b"x");
    raw_member(&mut tar, b"link.npy", b'2', b"");
    tar.extend_from_slice(&[0u8; 1024]);
    s.write("ds/x-000000.tar", &tar);
    s.write("ds/manifest.json", "{}");
    let before = all_paths(s.path());
    for args in [vec!["inspect", "ds/x-000000.tar"], vec!["verify", "ds"]] {
        let out = s.etd().args(&args).output().unwrap();
        assert!(matches!(out.status.code(), Some(0..=3)), "{args:?}: {:?} {}", out.status, stderr(&out));
        for stream in [&out.stdout, &out.stderr] {
            assert!(!stream.contains(&0x1b), "{args:?} printed a raw escape: {}", String::from_utf8_lossy(stream));
        }
    }
    assert_eq!(all_paths(s.path()), before, "verify and inspect write nothing");
    assert!(!s.path().parent().unwrap().join("evil.npy").exists() && !Path::new("/abs/evil.npy").exists());
}

/// Policy: a local source reads the files its pattern matches, following symlinks (a data folder
/// of links into a shared archive is common); it never writes to the folder nor through a link.
#[test]
fn symlinks_in_a_local_folder_are_followed_for_reading_and_nothing_is_written_through_them() {
    let s = Scratch::new();
    s.write("outside/secret.txt", "outside the folder\n");
    s.write("data/a.txt", "a\n");
    std::os::unix::fs::symlink(s.join("outside/secret.txt"), s.join("data/b.txt")).unwrap();
    std::os::unix::fs::symlink(s.join("outside"), s.join("data/sub")).unwrap();
    s.write("r.yaml", local_recipe("links", ""));
    let outside_before = all_paths(&s.join("outside"));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(all_paths(&s.join("outside")), outside_before, "nothing written through a link");
    assert_eq!(fs_err::read_to_string(s.join("outside/secret.txt")).unwrap(), "outside the folder\n");
    let mut names = Vec::new();
    for (file, bytes) in s.shard_files().into_iter().filter(|(n, _)| n.ends_with(".tar")) {
        let mut ar = tar::Archive::new(bytes.as_slice());
        for m in ar.entries().unwrap() {
            names.push(m.unwrap().path().unwrap().display().to_string());
        }
        assert!(!file.contains('/'));
    }
    names.sort();
    assert!(names.iter().any(|n| n.starts_with("b.")), "the linked file is a sample, named in the folder: {names:?}");
}
