//! fetch + shard end to end on the real sample data and synthetic FITS files.

use super::common::*;

pub fn synthetic_dataset(s: &Scratch, n: usize) {
    for i in 0..n {
        let data = noise(16 * 12, i as u64 + 1);
        s.write(&format!("data/img{i:03}.fits"), fits_f32(16, 12, &data, &["EXPTIME =                 30.0"]));
        if i % 3 == 0 {
            s.write(&format!("data/img{i:03}.txt"), format!("notes for {i}\n"));
        }
    }
}

#[test]
fn quickstart_runs_and_verifies() {
    let s = Scratch::new();
    let out = s.etd().args(["run"]).arg(repo().join("recipes/quickstart.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("manifest: {}", s.shards().join("manifest.json").display())), "{err}");
    let m = s.manifest();
    // The README shows this manifest as it is: keep them equal.
    let readme = fs_err::read_to_string(repo().join("README.md")).unwrap();
    let at = readme.find("`shards/manifest.json` is written last").expect("README: the manifest section");
    let block = &readme[at..];
    let json = &block[block.find("```json\n").unwrap() + 8..];
    let shown: serde_json::Value = serde_json::from_str(&json[..json.find("```").unwrap()]).unwrap();
    assert_eq!(m, shown, "the README's manifest example is not what the quickstart makes; paste the new one");
    assert_eq!(m["samples"], 4);
    assert_eq!(m["compression"], "zstd");
    assert_eq!(m["splits"]["all"]["url"], "quickstart-{000000..000001}.tar.zst");
    let fields: Vec<&str> = m["fields"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(fields, ["jpg", "json", "npy", "png"]);
    s.etd().arg("verify").arg(s.shards()).assert().success();
    let mut listing = String::new();
    for shard in ["quickstart-000000.tar.zst", "quickstart-000001.tar.zst"] {
        let out = s.etd().arg("inspect").arg(s.shards().join(shard)).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        listing.push_str(&stdout(&out));
    }
    // The Zcut FITS cutout (its first image HDU, 100x100 float32) and the three Zcut JPEGs.
    assert!(listing.contains("zcut-fits_candels_gn_30mas_189_49206_62_20615_100px"), "{listing}");
    assert!(listing.contains("npy (39.2 KiB)"), "{listing}");
    for band in ["f606w", "f814w", "f850lp"] {
        assert!(listing.contains(&format!("zcut-jpg_candels_gn_{band}_189_49206_62_20615_100px")), "{listing}");
    }
}

#[test]
fn same_inputs_same_bytes_on_any_thread_count() {
    let s = Scratch::new();
    synthetic_dataset(&s, 40);
    s.write(
        "r.yaml",
        local_recipe(
            "det",
            "transform:\n  image: {scale: zscale, outputs: [npy, json, png, fits]}\n\
             shard: {max_samples: 7, compression: zstd, split: {train: 0.75, val: 0.25}, shuffle_seed: 11}\n",
        ),
    );
    let mut results = Vec::new();
    // 8 threads also changes the transform chunk size (4 x threads, at least 16).
    for threads in ["1", "2", "2", "8"] {
        let _ = fs_err::remove_dir_all(s.join("work"));
        let out = s.etd().env("RAYON_NUM_THREADS", threads).args(["run", "r.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        results.push(s.shard_files());
    }
    assert_eq!(results[0], results[1], "1 thread vs 2 threads");
    assert_eq!(results[1], results[2], "two runs with 2 threads");
    assert_eq!(results[0], results[3], "1 thread vs 8 threads");
    let m = s.manifest();
    assert_eq!(m["samples"], 40);
    let train = m["splits"]["train"]["samples"].as_u64().unwrap();
    assert!(train > 20 && train < 40, "{train}");
    for shard in m["shards"].as_array().unwrap() {
        assert!(shard["samples"].as_u64().unwrap() <= 7);
    }
    s.etd().arg("verify").arg(s.shards()).assert().success();
}

#[test]
fn shuffle_seed_changes_order_not_content() {
    let s = Scratch::new();
    synthetic_dataset(&s, 12);
    let keys_for = |extra: &str| {
        s.write("r.yaml", local_recipe("o", &format!("shard: {{max_samples: 100{extra}}}\n")));
        let _ = fs_err::remove_dir_all(s.join("work"));
        s.etd().args(["run", "r.yaml"]).assert().success();
        let out = s.etd().args(["inspect", "--json"]).arg(s.shards().join("o-000000.tar")).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["samples"].as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let sorted = keys_for("");
    let shuffled = keys_for(", shuffle_seed: 3");
    assert_ne!(sorted, shuffled);
    let mut again = shuffled.clone();
    again.sort();
    assert_eq!(sorted, again);
    assert_eq!(keys_for(", shuffle_seed: 3"), shuffled);
}

#[test]
fn max_bytes_starts_new_shards() {
    let s = Scratch::new();
    synthetic_dataset(&s, 10);
    // each sample: fits (2 blocks of 2880 -> 5760 B) => tar ~6.6 KB per sample
    s.write("r.yaml", local_recipe("b", "transform:\n  image: {outputs: [fits]}\nshard: {max_bytes: 20KB}\n"));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let m = s.manifest();
    let shards = m["shards"].as_array().unwrap();
    assert!(shards.len() >= 4, "{}", shards.len());
    for sh in shards {
        assert!(sh["bytes"].as_u64().unwrap() <= 20_000, "{sh}");
    }
}

#[test]
fn md5_is_in_the_manifest_only_when_the_recipe_asks() {
    use md5::Digest;
    let s = Scratch::new();
    synthetic_dataset(&s, 6);
    let recipe = |md5: &str| {
        local_recipe("m", &format!("transform:\n  image: {{outputs: [fits]}}\nshard: {{max_samples: 2{md5}}}\n"))
    };
    s.write("r.yaml", recipe(""));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let without = s.manifest();
    s.write("r.yaml", recipe(", md5: true"));
    s.etd().args(["shard", "r.yaml"]).assert().success();
    let with = s.manifest();
    let (a, b) = (without["shards"].as_array().unwrap(), with["shards"].as_array().unwrap());
    assert_eq!(a.len(), 3);
    for (a, b) in a.iter().zip(b) {
        assert!(a.get("md5").is_none(), "{a}");
        let bytes = fs_err::read(s.shards().join(b["name"].as_str().unwrap())).unwrap();
        assert_eq!(b["md5"].as_str().unwrap(), hex::encode(md5::Md5::digest(&bytes)));
        // The shards are the same bytes either way.
        assert_eq!(a["sha256"], b["sha256"]);
    }
    s.etd().arg("verify").arg(s.shards()).assert().success();
    // A flipped byte is found by md5 too once the manifest has it.
    let first = s.shards().join(b[0]["name"].as_str().unwrap());
    let mut bytes = fs_err::read(&first).unwrap();
    bytes[600] ^= 1;
    fs_err::write(&first, &bytes).unwrap();
    let out = s.etd().args(["verify", "--json"]).arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("md5-mismatch"), "{}", stdout(&out));

    s.write("r.yaml", recipe(", md5: 1"));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("shard.md5"), "{}", stderr(&out));
}

#[test]
fn corrupt_fits_goes_to_failures_and_exit_3() {
    etd_emulators::require_fixtures!();
    let s = Scratch::new();
    let bytes = fs_err::read(ps1_fixture()).unwrap();
    s.write("data/good.fits", &bytes);
    s.write("data/truncated.fits", &bytes[..bytes.len() / 2]);
    s.write("data/garbage.fits", b"this is not a FITS file at all");
    s.copy(&atlas_fixture("job00128"), "data/lc.txt");
    s.write("r.yaml", local_recipe("c", ""));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = failures.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{failures}");
    assert_eq!(lines[0]["unit"], "garbage");
    assert!(lines[0]["reason"].as_str().unwrap().contains("not a FITS file"), "{failures}");
    assert_eq!(lines[1]["unit"], "truncated");
    assert!(lines[1]["reason"].as_str().unwrap().contains("truncated FITS"), "{failures}");
    assert_eq!(lines[1]["stage"], "shard");
    let m = s.manifest();
    assert_eq!(m["samples"], 2);
    s.etd().arg("verify").arg(s.shards()).assert().success();
    // Fixing one input and deleting the other: re-fetch records both changes, shard is clean.
    s.write("data/truncated.fits", &bytes);
    fs_err::remove_file(s.join("data/garbage.fits")).unwrap();
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert!(stderr(&out).contains("1 unit recorded, 2 unchanged, 1 removed"), "{}", stderr(&out));
    s.etd().args(["shard", "r.yaml"]).assert().success();
    assert_eq!(fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap(), "");
    assert_eq!(s.manifest()["samples"], 3);
}

#[test]
fn changed_input_is_refused_and_old_shards_survive() {
    let s = Scratch::new();
    synthetic_dataset(&s, 5);
    s.write("r.yaml", local_recipe("ch", ""));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let before = s.shard_files();
    s.write("data/img003.txt", "edited after fetch\n");
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("img003.txt") && err.contains("changed since it was fetched"), "{err}");
    assert!(err.contains("hint: run `etd fetch` again"), "{err}");
    assert_eq!(s.shard_files(), before, "a refused shard run leaves the old shards as they were");
    // Re-fetching records the change; the next shard run succeeds with the new content.
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert!(stderr(&out).contains("1 unit recorded, 4 unchanged, 0 removed"), "{}", stderr(&out));
    s.etd().args(["shard", "r.yaml"]).assert().success();
    assert_ne!(s.shard_files(), before);
}

#[test]
fn recorded_times_spare_the_hash_but_not_the_check() {
    // Files modified an hour ago: fetch records their modification and change times, and shard
    // trusts a file whose size and both times are unchanged instead of hashing it again.
    let s = Scratch::new();
    synthetic_dataset(&s, 4);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let set_old = |name: &str| {
        fs_err::File::options().write(true).open(s.join(name)).unwrap().set_modified(old).unwrap();
    };
    for name in ["img000.fits", "img000.txt", "img001.fits", "img002.fits", "img003.fits", "img003.txt"] {
        set_old(&format!("data/{name}"));
    }
    // Their change time is now: recorded only once it is older than 2 s.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    s.write("r.yaml", local_recipe("times", ""));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap();
    let old_ns = old.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for i in v["inputs"].as_array().unwrap() {
            assert_eq!(i["mtime_ns"].as_i64(), Some(old_ns), "{line}");
            assert!(i["ctime_ns"].as_i64().unwrap() > old_ns, "{line}");
        }
    }
    let before = s.shard_files();
    // New bytes of the same size, the modification time set back: the change time shows it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.write("data/img000.txt", "notes for 9\n");
    set_old("data/img000.txt");
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("img000.txt") && err.contains("changed since it was fetched"), "{err}");
    assert_eq!(s.shard_files(), before, "a refused shard run leaves the old shards as they were");
    // The old bytes back: only touched, so hashed and accepted, and the shards are the same.
    s.write("data/img000.txt", "notes for 0\n");
    set_old("data/img000.txt");
    s.etd().args(["shard", "r.yaml"]).assert().success();
    assert_eq!(s.shard_files(), before);
    // fetch hashes the touched file, finds its bytes unchanged and records its new times (once
    // they are 2 s old), so the next shard need not hash it; all four units count as unchanged.
    let lines = |s: &Scratch| fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap().lines().count();
    let before_lines = lines(&s);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert!(stderr(&out).contains("0 units recorded, 4 unchanged, 0 removed"), "{}", stderr(&out));
    assert_eq!(lines(&s), before_lines + 1, "the touched unit's line is written again with its times");
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert!(stderr(&out).contains("0 units recorded, 4 unchanged, 0 removed"), "{}", stderr(&out));
    assert_eq!(lines(&s), before_lines + 1, "and only once");
}

#[test]
fn shards_written_through_the_page_cache_are_the_same_and_a_bad_etd_direct_io_is_a_usage_error() {
    let s = Scratch::new();
    synthetic_dataset(&s, 5);
    s.write("r.yaml", local_recipe("dio", "shard: {compression: zstd}\n"));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let around = s.shard_files();
    s.etd().env("ETD_DIRECT_IO", "0").args(["shard", "r.yaml"]).assert().success();
    assert_eq!(s.shard_files(), around, "the same bytes written through the page cache");
    let out = s.etd().env("ETD_DIRECT_IO", "sometimes").args(["shard", "r.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("$ETD_DIRECT_IO=sometimes: expected 1 or on") && err.contains("0 or off"), "{err}");
    assert_eq!(s.shard_files(), around);
}

#[test]
fn key_collisions_are_errors() {
    let s = Scratch::new();
    s.write("data/a b.txt", "1");
    s.write("data/a_b.txt", "2");
    s.write("r.yaml", local_recipe("k", ""));
    s.etd().args(["fetch", "r.yaml"]).assert().success();
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ids `a b` and `a_b` both map to key `a_b`"), "{}", stderr(&out));
    assert!(!s.shards().exists());
}

#[test]
fn refetch_skips_unchanged_and_rerun_is_identical() {
    let s = Scratch::new();
    synthetic_dataset(&s, 6);
    // Files 2 s old have their times recorded at once, so the journal does not change below
    // however long the two runs take (younger files are recorded without times, and their
    // times are added by the first fetch that finds them older).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    s.write("r.yaml", local_recipe("re", "shard: {compression: zstd}\n"));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let first = s.shard_files();
    let journal = fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap();
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert!(stderr(&out).contains("0 units recorded, 6 unchanged, 0 removed"), "{}", stderr(&out));
    assert_eq!(fs_err::read_to_string(s.join("work/journal.jsonl")).unwrap(), journal);
    assert_eq!(s.shard_files(), first);
}

#[test]
fn generated_field_clash_is_an_error() {
    let s = Scratch::new();
    s.write("data/x.fits", fits_f32(2, 2, &[1.0, 2.0, 3.0, 4.0], &[]));
    s.write("data/x.json", "{}");
    s.write("r.yaml", local_recipe("f", ""));
    s.etd().args(["fetch", "r.yaml"]).assert().success();
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("x.json would become field `json`"), "{}", stderr(&out));
}

#[test]
fn npy_holds_the_fits_pixels() {
    let s = Scratch::new();
    let data = [1.5f32, f32::NAN, -3.0, 4.25, 5.0, 6.0];
    s.write(
        "data/p.fits",
        fits_f32(3, 2, &data, &["BSCALE  =                  1.0", "BZERO   =                  0.0"]),
    );
    s.write("r.yaml", local_recipe("n", "transform:\n  image: {nan: zero, outputs: [npy]}\n"));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let shard = fs_err::read(s.shards().join("n-000000.tar")).unwrap();
    let mut ar = tar::Archive::new(shard.as_slice());
    let mut entry = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("p.npy"));
    let mut npy = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut npy).unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'shape': (2, 3"), "{header}");
    let values: Vec<f32> =
        npy[10 + header_len..].chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(values, [1.5, 0.0, -3.0, 4.25, 5.0, 6.0]);
}

#[test]
fn samples_without_images_keep_their_original_id_in_json() {
    let s = Scratch::new();
    s.write("data/SN 2020abc.txt", "light curve");
    s.write("r.yaml", local_recipe("id", ""));
    s.etd().args(["run", "r.yaml"]).assert().success();
    let shard = fs_err::read(s.shards().join("id-000000.tar")).unwrap();
    let mut ar = tar::Archive::new(shard.as_slice());
    let names: Vec<String> =
        ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["SN_2020abc.json", "SN_2020abc.txt"]);
    let mut ar = tar::Archive::new(shard.as_slice());
    let mut first = ar.entries().unwrap().next().unwrap().unwrap();
    let meta: serde_json::Value = serde_json::from_reader(&mut first).unwrap();
    assert_eq!(meta["id"], "SN 2020abc");
    assert_eq!(meta["inputs"][0]["path"], "SN 2020abc.txt");
}

#[test]
fn kill_9_during_shard_keeps_old_shards_and_rerun_matches() {
    let s = Scratch::new();
    for i in 0..150 {
        s.write(&format!("data/k{i:03}.fits"), fits_f32(64, 64, &noise(64 * 64, i + 1), &[]));
    }
    s.write(
        "r.yaml",
        local_recipe("kill", "transform:\n  image: {scale: zscale, outputs: [npy, png, json]}\nshard: {max_samples: 20, compression: zstd, level: 19}\n"),
    );
    s.etd().args(["run", "r.yaml"]).assert().success();
    let baseline = s.shard_files();
    let mut killed_mid_run = 0;
    for delay_ms in [150u64, 400, 900] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
            .current_dir(s.path())
            .args(["-q", "--workdir"])
            .arg(s.join("work"))
            .args(["shard", "r.yaml"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        killed_mid_run += s.join("work/shards.partial").exists() as u32;
        // Whenever it died, the published shard folder is the complete previous one.
        assert_eq!(s.shard_files(), baseline, "shards/ changed by a run killed after {delay_ms} ms");
        s.etd().arg("verify").arg(s.shards()).assert().success();
    }
    assert!(killed_mid_run > 0, "no kill landed while shards were being written");
    // The next run cleans up and ends with exactly the uninterrupted output.
    s.etd().args(["shard", "r.yaml"]).assert().success();
    assert_eq!(s.shard_files(), baseline);
    assert!(!s.join("work/shards.partial").exists());
    assert!(!s.join("work/shards.old").exists());
}
