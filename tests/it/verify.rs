//! `etd verify` and `etd inspect` on shards etd wrote, intact and damaged.

use super::common::*;

fn dataset(s: &Scratch, extra: &str) {
    for i in 0..6 {
        s.write(&format!("data/s{i}.fits"), fits_f32(4, 4, &noise(16, i + 1), &[]));
    }
    s.write("r.yaml", local_recipe("v", &format!("shard: {{max_samples: 2{extra}}}\n")));
    s.etd().args(["run", "r.yaml"]).assert().success();
}

#[test]
fn intact_dataset_verifies_via_folder_and_manifest() {
    let s = Scratch::new();
    dataset(&s, ", compression: zstd");
    let out = s.etd().arg("verify").arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).trim(), "verified 3 shards, 6 samples: OK");
    s.etd().arg("verify").arg(s.shards().join("manifest.json")).assert().success();
    let json = s.etd().args(["verify", "--json"]).arg(s.shards()).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn damage_is_reported_and_exit_is_1() {
    let s = Scratch::new();
    dataset(&s, "");
    let shard = s.shards().join("v-000001.tar");
    let mut bytes = fs_err::read(&shard).unwrap();
    bytes[700] ^= 0xff;
    fs_err::write(&shard, bytes).unwrap();
    fs_err::remove_file(s.shards().join("v-000002.tar")).unwrap();
    s.write("work/shards/stray.txt", "?");
    let out = s.etd().arg("verify").arg(s.shards()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("v-000001.tar: sha256-mismatch"), "{text}");
    assert!(text.contains("v-000002.tar: missing-file"), "{text}");
    assert!(text.contains("stray.txt: unexpected-file"), "{text}");
}

#[test]
fn verify_without_manifest_is_an_error() {
    let s = Scratch::new();
    fs_err::create_dir_all(s.join("empty")).unwrap();
    let out = s.etd().arg("verify").arg(s.join("empty")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("manifest.json"), "{}", stderr(&out));
}

#[test]
fn inspect_lists_samples_in_tar_and_zst() {
    for (extra, name) in [("", "v-000000.tar"), (", compression: zstd", "v-000000.tar.zst")] {
        let s = Scratch::new();
        dataset(&s, extra);
        let out = s.etd().args(["inspect", "--json"]).arg(s.shards().join(name)).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0]["key"], "s0");
        let fields: Vec<&str> =
            samples[0]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(fields, ["json", "npy"]);
        assert_eq!(samples[0]["fields"][1]["bytes"], 128 + 64);
    }
}
