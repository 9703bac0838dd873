//! `etd publish` into a local origin folder and into a real XRootD HTTP origin (Debian's
//! `xrootd-server`, installed by `.ci/run`): publish, re-publish (no-op), conflicts (nothing
//! written), interrupted publishes completed by a rerun, the lock, `--dry-run`, `etd verify` on
//! the published version.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::{local_recipe, stderr, stdout, Scratch};

/// A dataset of `n` shards of about `mb` MB each (incompressible text), sharded in `s`.
pub fn dataset(s: &Scratch, n: usize, mb: usize, publish: &str) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..n {
        let mut text = String::with_capacity(mb << 20);
        while text.len() < mb << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(&format!("{x:016x}\n"));
        }
        s.write(&format!("data/f{i}.txt"), text);
    }
    s.write("r.yaml", local_recipe("pubtest", &format!("shard: {{max_samples: 1}}\n{publish}")));
    let out = s.etd().args(["fetch", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

pub fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs_err::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn local_origin_publish_republish_conflict_and_lock() {
    let s = Scratch::new();
    dataset(&s, 3, 1, "publish: {origin: origin, path: ns/pubtest, version: v1}\n");
    // Dry run: the plan, nothing written.
    let out = s.etd().args(["publish", "--dry-run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().filter(|l| l.starts_with("create")).count(), 4, "{}", stdout(&out));
    assert!(!s.join("origin/ns/pubtest/v1").exists());

    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dest = s.join("origin/ns/pubtest/v1");
    assert_eq!(listing(&dest), listing(&s.shards()), "the version holds exactly the shard folder");
    #[cfg(unix)]
    for e in fs_err::read_dir(&dest).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(e.unwrap().metadata().unwrap().permissions().mode() & 0o777, 0o644);
    }
    let names: Vec<String> = fs_err::read_dir(s.join("origin/ns/pubtest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".etd-staging")), "staging removed: {names:?}");
    let out = s.etd().arg("verify").arg(&dest).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Again: a no-op that says so.
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("already published with identical bytes"), "{}", stderr(&out));

    // Different bytes under a published name: an error naming the file and both checksums.
    let shard = s.shards().join("pubtest-000001.tar");
    let published = fs_err::read(&shard).unwrap();
    fs_err::write(dest.join("pubtest-000001.tar"), b"not the same bytes").unwrap();
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("conflict  pubtest-000001.tar") && err.contains("sha256"), "{err}");
    assert!(err.contains("new `publish.version`"), "{err}");
    fs_err::write(dest.join("pubtest-000001.tar"), published).unwrap();

    // A conflicting object placed beforehand in a new version: nothing else is written.
    fs_err::create_dir_all(s.join("origin/ns/pubtest/v2")).unwrap();
    fs_err::write(s.join("origin/ns/pubtest/v2/pubtest-000002.tar"), b"someone else's").unwrap();
    let text = fs_err::read_to_string(s.join("r.yaml")).unwrap().replace("version: v1", "version: v2");
    s.write("r.yaml", text);
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v2: Vec<String> = listing(&s.join("origin/ns/pubtest/v2")).into_iter().map(|(n, _)| n).collect();
    assert_eq!(v2, ["pubtest-000002.tar"], "nothing else written, no manifest");

    // The lock: a second publish of the same version waits its turn.
    fs_err::remove_file(s.join("origin/ns/pubtest/v2/pubtest-000002.tar")).unwrap();
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.join("origin/ns/pubtest/.etd-publish-v2.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("another etd publish"), "{}", stderr(&out));
    drop(lock);
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn local_publish_killed_midway_completes_on_rerun() {
    let s = Scratch::new();
    dataset(&s, 6, 4, "publish: {origin: origin, path: ns/pubtest, version: v1}\n");
    let dest = s.join("origin/ns/pubtest/v1");
    for delay_ms in [20u64, 60, 120] {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("etd"))
            .current_dir(s.path())
            .args(["--workdir", "work", "-q", "publish", "r.yaml"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever is visible is whole: every file under its final name equals the shard.
        if dest.exists() {
            for (name, bytes) in listing(&dest) {
                assert_eq!(bytes, fs_err::read(s.shards().join(&name)).unwrap(), "{name} is visible but not whole");
            }
        }
    }
    let out = s.etd().args(["publish", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listing(&dest), listing(&s.shards()));
    let out = s.etd().arg("verify").arg(&dest).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn run_fetches_shards_and_publishes() {
    let s = Scratch::new();
    s.write("data/a.txt", "x");
    s.write("r.yaml", local_recipe("runpub", "publish: {origin: origin, path: ns/runpub, version: v1}\n"));
    let out = s.etd().args(["run", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.join("origin/ns/runpub/v1/manifest.json").exists());
}

/// A real XRootD HTTP origin on free loopback ports, serving `<root>/data`.
pub struct Xrootd {
    child: Child,
    dir: tempfile::TempDir,
    pub url: String,
}

impl Xrootd {
    /// None (the test is skipped, or fails under CI=true) when `xrootd` is not installed.
    pub fn start() -> Option<Xrootd> {
        Self::start_with_checksums("adler32 crc32c md5")
    }

    /// An origin that computes only the checksums named (`xrootd.chksum`); "md5" is what a
    /// multiuser Pelican origin offers (it has no crc32c).
    pub fn start_with_checksums(checksums: &str) -> Option<Xrootd> {
        if Command::new("xrootd").arg("-v").output().is_err() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but xrootd is missing; .ci/run installs it");
            eprintln!("skipped: xrootd is not installed (apt-get install xrootd-server; .ci/run does)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = |_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (xrd_port, http_port) = (port(0), port(1));
        for sub in ["root/data", "admin"] {
            fs_err::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let root = is_root();
        let cfg = format!(
            "all.export /data\noss.localroot {root_dir}\nall.adminpath {admin}\nall.pidpath {admin}\n\
             xrd.port {xrd_port}\nxrd.protocol XrdHttp:{http_port} libXrdHttp.so\nxrootd.chksum {checksums}\n",
            root_dir = dir.path().join("root").display(),
            admin = dir.path().join("admin").display(),
        );
        fs_err::write(dir.path().join("xrd.cfg"), cfg).unwrap();
        let mut cmd = Command::new("xrootd");
        if root {
            // xrootd refuses to run as root: give the folders to `nobody` and run as it.
            let _ = Command::new("chown").arg("-R").arg("nobody").arg(dir.path()).status();
            let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
            cmd.args(["-R", "nobody"]);
        }
        cmd.arg("-c").arg(dir.path().join("xrd.cfg")).arg("-l").arg(dir.path().join("xrd.log"));
        cmd.args(["-n", &format!("etd{http_port}")]).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        let url = format!("http://127.0.0.1:{http_port}/data");
        // Dropping it kills and waits for the server, also if it never comes up.
        let server = Xrootd { child, dir, url };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = fs_err::read_to_string(server.dir.path().join("xrd.log")).unwrap_or_default();
        panic!("xrootd did not start: {log}");
    }

    /// Where an object under `/data/<rel>` lands on disk.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root/data").join(rel)
    }
}

impl Drop for Xrootd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub const BEARER: &str = "eyJhbGciOiJFUzI1NiJ9.etd-test-token.c2lnbmF0dXJl";

#[test]
fn xrootd_origin_publish_republish_conflict_and_interrupted_upload() {
    let Some(xrd) = Xrootd::start() else { return };
    let s = Scratch::new();
    let publish = format!("publish: {{origin: \"{}\", path: ns/pubtest, version: v1}}\n", xrd.url);
    dataset(&s, 3, 24, &publish);
    let etd = |args: &[&str]| {
        let mut c = s.etd();
        c.env("BEARER_TOKEN", BEARER).env("ETD_TEST_NO_RETRY_DELAY", "1").args(args);
        c.output().unwrap()
    };
    let out = etd(&["publish", "--dry-run", "r.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().filter(|l| l.starts_with("create")).count(), 4);
    assert!(!xrd.path("ns/pubtest/v1").exists());

    // Killed during its first upload, then completed by a rerun that replaces the cut-off object.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("etd"))
        .current_dir(s.path())
        .args(["--workdir", "work", "-q", "publish", "r.yaml"])
        .env("BEARER_TOKEN", BEARER)
        .spawn()
        .unwrap();
    let first = xrd.path("ns/pubtest/v1/pubtest-000000.tar");
    for _ in 0..20_000 {
        if fs_err::metadata(&first).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(Duration::from_micros(250));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let whole = fs_err::metadata(s.shards().join("pubtest-000000.tar")).unwrap().len();
    let cut = fs_err::metadata(&first).map(|m| m.len() < whole).unwrap_or(false);
    let out = etd(&["-vv", "publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    if cut {
        assert!(stderr(&out).contains(", 1 replaced,"), "the cut-off upload is replaced: {}", stderr(&out));
    }
    assert!(!stderr(&out).contains(BEARER), "the token is in the log");
    let dest = xrd.path("ns/pubtest/v1");
    assert_eq!(listing(&dest), listing(&s.shards()), "the origin holds exactly the shard folder");
    let out = s.etd().arg("verify").arg(&dest).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!fs_err::read_to_string(s.join("work/publish.jsonl")).unwrap().contains(BEARER));

    // Again: a no-op.
    let out = etd(&["publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("already published with identical bytes"), "{}", stderr(&out));

    // Changed bytes under a published name: refused, naming the file and both checksums.
    fs_err::write(dest.join("pubtest-000002.tar"), b"changed behind our back").unwrap();
    let out = etd(&["publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("conflict  pubtest-000002.tar") && stderr(&out).contains("md5"), "{}", stderr(&out));

    // A conflicting object placed beforehand in a new version: nothing else written, no manifest.
    fs_err::create_dir_all(xrd.path("ns/pubtest/v2")).unwrap();
    fs_err::write(xrd.path("ns/pubtest/v2/pubtest-000000.tar"), b"someone else's").unwrap();
    if is_root() {
        let _ = Command::new("chown").arg("-R").arg("nobody").arg(xrd.path("ns")).status();
    }
    let text = fs_err::read_to_string(s.join("r.yaml")).unwrap().replace("version: v1", "version: v2");
    s.write("r.yaml", text);
    let out = etd(&["publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v2: Vec<String> = listing(&xrd.path("ns/pubtest/v2")).into_iter().map(|(n, _)| n).collect();
    assert_eq!(v2, ["pubtest-000000.tar"]);
}

/// Shards are written without md5 (`shard.md5` is off by default): against an origin that
/// reports md5 alone, publish computes it from the files, so a re-publish is still recognised as
/// identical and a changed object of the same size is still a conflict.
#[test]
fn an_origin_with_md5_alone_is_checked_with_md5_computed_while_publishing() {
    let Some(xrd) = Xrootd::start_with_checksums("md5") else { return };
    let s = Scratch::new();
    let publish = format!("publish: {{origin: \"{}\", path: ns/md5only, version: v1}}\n", xrd.url);
    dataset(&s, 2, 2, &publish);
    let manifest = fs_err::read_to_string(s.shards().join("manifest.json")).unwrap();
    assert!(!manifest.contains("md5"), "{manifest}");
    let etd = |args: &[&str]| s.etd().env("BEARER_TOKEN", BEARER).args(args).output().unwrap();
    let out = etd(&["-vv", "publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("only the size was checked"), "{}", stderr(&out));
    let dest = xrd.path("ns/md5only/v1");
    assert_eq!(listing(&dest), listing(&s.shards()));

    let out = etd(&["publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("already published with identical bytes"), "{}", stderr(&out));

    // One byte changed, same size, in a later second than the upload (XRootD keeps a checksum
    // while the file's mtime in whole seconds is unchanged): only md5 can tell.
    std::thread::sleep(Duration::from_millis(1100));
    let object = dest.join("pubtest-000001.tar");
    let mut bytes = fs_err::read(&object).unwrap();
    bytes[600] ^= 1;
    fs_err::write(&object, &bytes).unwrap();
    let out = etd(&["publish", "r.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("conflict  pubtest-000001.tar") && err.matches("md5 ").count() >= 2, "{err}");

    // A manifest that lists md5 (`shard.md5: true`, or one written before the option) is
    // compared with the origin's md5 as it stands.
    let text = fs_err::read_to_string(s.join("r.yaml")).unwrap();
    s.write(
        "r.yaml",
        text.replace("max_samples: 1}", "max_samples: 1, md5: true}").replace("version: v1", "version: v2"),
    );
    let out = s.etd().args(["shard", "r.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(fs_err::read_to_string(s.shards().join("manifest.json")).unwrap().contains("\"md5\""));
    for _ in 0..2 {
        let out = etd(&["publish", "r.yaml"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(listing(&xrd.path("ns/md5only/v2")), listing(&s.shards()));
}
