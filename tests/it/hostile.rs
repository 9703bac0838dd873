//! Hostile and broken servers (`etd_emulators::hostile`): each fault ends with a clear error for
//! the unit it hits, the other units of the run finish, nothing is buffered past the request's
//! bound, and a redirect to another host never carries a token there.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etd_emulators::hostile::{Hostile, HostileFault};
use etd_emulators::ps1::{Faults, Ps1Emulator};

use super::common::{stderr, Scratch};
use super::ps1::recipe;

/// Two targets; the fault hits the first (`ra=10.5&`) only.
const TARGETS: &str = "objid,ra,dec,class\ng0,10.5,20.25,spiral\ng1,11.5,21.25,elliptical\n";
const HIT: &str = "ra=10.5&";
const POLITENESS: &str = "{rate: 100/s, retries: 1, timeout: 1s}";

/// What a fetch left: exit code, stderr, `failures.jsonl` entries.
struct Run {
    code: Option<i32>,
    stderr: String,
    failures: Vec<serde_json::Value>,
}

fn fetch(emu: &Ps1Emulator, s: &Scratch) -> Run {
    s.write("targets.csv", TARGETS);
    s.write("r.yaml", recipe(&emu.base_url(), "r", POLITENESS, ""));
    let out = s.etd().args(["fetch", "r.yaml"]).env("ETD_TEST_NO_RETRY_DELAY", "1").output().unwrap();
    let failures = fs_err::read_to_string(s.join("work/failures.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Run { code: out.status.code(), stderr: stderr(&out), failures }
}

fn hostile_ps1(kind: Hostile) -> (Ps1Emulator, Run, Scratch) {
    let fault = HostileFault { kind, matching: HIT.into() };
    let emu = Ps1Emulator::start(Faults { hostile: Some(fault), ..Faults::default() }).unwrap();
    let s = Scratch::new();
    let run = fetch(&emu, &s);
    (emu, run, s)
}

/// The unit hit failed for good with `kind` and a reason containing `says`; the other finished.
fn failed_for_good(run: &Run, kind: &str, says: &str) {
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(run.failures.len(), 1, "{:?}", run.failures);
    let f = &run.failures[0];
    assert_eq!(f["kind"], kind, "{f}");
    let reason = f["reason"].as_str().unwrap();
    assert!(reason.contains(says), "{reason}");
    assert!(run.stderr.contains("1 done"), "{}", run.stderr);
}

/// The unit hit was left for a later run (transient), the other finished; exit 75.
fn left_for_later(run: &Run, says: &str) {
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    assert!(run.stderr.contains(says), "{}", run.stderr);
    assert!(run.stderr.contains("1 done"), "{}", run.stderr);
}

#[test]
fn an_endless_body_is_cut_at_the_cutouts_bound_and_fails_the_target() {
    etd_emulators::require_fixtures!();
    let (emu, run, s) = hostile_ps1(Hostile::EndlessBody);
    // size 24, fits: 65,536 + 24 * 24 * 8 bytes.
    failed_for_good(
        &run,
        "invalid-answer",
        "&size=24&format=fits: the answer goes on past 70144 bytes, the most this request can need; the rest was not read (after 2 tries;",
    );
    assert_eq!(emu.meter().by_endpoint["fitscut"], 3, "one try and one retry for g0, one for g1");
    let kept = s.join("work/rejected/ps1-cutouts/g0/r.fits");
    assert_eq!(fs_err::metadata(&kept).unwrap().len(), 70144, "what is kept is the bound, no more");
    let reason = run.failures[0]["reason"].as_str().unwrap().replace(&emu.base_url(), "[BASE]");
    let reason = reason.replace(&s.path().display().to_string(), "[TMP]");
    let reason = reason.split("fitscut.cgi?").map(|p| p.split_once("&ra=").map_or(p, |(_, r)| r)).collect::<Vec<_>>();
    insta::assert_snapshot!(reason.join("fitscut.cgi?…&ra="), @"GET [BASE]/cgi-bin/fitscut.cgi?…&ra=10.5&dec=20.25&size=24&format=fits: the answer goes on past 70144 bytes, the most this request can need; the rest was not read (after 2 tries; the answer is kept in [TMP]/work/rejected/ps1-cutouts/g0/r.fits)");
}

#[test]
fn a_slow_drip_hits_the_request_deadline_and_the_target_is_left_for_a_later_run() {
    etd_emulators::require_fixtures!();
    let started = Instant::now();
    let (_emu, run, _s) = hostile_ps1(Hostile::SlowDrip);
    // Deadline: 2 x 1 s timeout + 70,144 / 65,536 s = 3 s per attempt, two attempts.
    left_for_later(
        &run,
        "no complete answer within 3.0s (the deadline of a request whose answer is at most 70144 bytes)",
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn enormous_headers_fail_the_target_and_the_run_goes_on() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::HugeHeaders);
    failed_for_good(&run, "invalid-answer", "an answer that is not valid HTTP (message head is too large)");
}

#[test]
fn a_redirect_loop_is_refused() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::RedirectLoop);
    failed_for_good(&run, "refused", "HTTP 302: more than 5 redirects (a redirect loop?)");
}

/// A listener that records the head of every request it gets and answers 200 with nothing.
fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = heads.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = vec![0u8; 65536];
            let n = stream.read(&mut buf).unwrap_or(0);
            seen.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, heads)
}

#[test]
fn a_redirect_to_another_host_is_not_followed() {
    etd_emulators::require_fixtures!();
    let (other, heads) = recorder();
    let (_emu, run, _s) = hostile_ps1(Hostile::RedirectOtherHost(other.clone()));
    failed_for_good(
        &run,
        "refused",
        &format!("HTTP 302: a redirect to another host, not followed (the archive's credentials never leave it): {other}/cgi-bin/fitscut.cgi?"),
    );
    assert!(heads.lock().unwrap().is_empty(), "the other host was contacted: {:?}", heads.lock().unwrap());
}

#[test]
fn an_html_page_with_status_200_fails_the_target() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::Html200);
    failed_for_good(&run, "invalid-answer", "expected fits data, got text/html; charset=utf-8: <html>");
}

#[test]
fn a_content_length_shorter_than_the_body_fails_the_target() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::LengthShort);
    failed_for_good(&run, "invalid-answer", "fitscut.cgi answer");
}

#[test]
fn a_content_length_longer_than_the_body_leaves_the_target_for_a_later_run() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::LengthLong);
    left_for_later(&run, "failed after 1 retry");
}

#[test]
fn a_table_that_is_not_utf8_fails_the_target() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::BadUtf8Json);
    failed_for_good(&run, "invalid-answer", "ps1filenames.py answer");
    assert!(run.failures[0]["reason"].as_str().unwrap().contains("not UTF-8"), "{:?}", run.failures);
}

#[test]
fn a_fits_file_shorter_than_its_header_declares_fails_the_target() {
    etd_emulators::require_fixtures!();
    let (_emu, run, _s) = hostile_ps1(Hostile::TruncatedFits);
    failed_for_good(&run, "invalid-answer", "fitscut.cgi answer");
}

/// Peak resident memory of `etd fetch` while every cutout is an endless body, four at a time.
#[test]
fn memory_stays_bounded_against_endless_bodies() {
    etd_emulators::require_fixtures!();
    let fault = HostileFault::all(Hostile::EndlessBody);
    let emu = Ps1Emulator::start(Faults { hostile: Some(fault), ..Faults::default() }).unwrap();
    let s = Scratch::new();
    let mut csv = String::from("objid,ra,dec,class\n");
    for i in 0..6 {
        csv.push_str(&format!("g{i},{},{},spiral\n", 10.0 + i as f64, 20.0 + i as f64 * 0.5));
    }
    s.write("targets.csv", csv);
    // A cutout of 1000 pixels: a bound of 8 MB per answer, four answers in flight.
    let r = recipe(&emu.base_url(), "r", "{rate: 100/s, retries: 1, timeout: 5s, concurrency: 4}", "")
        .replace("size: 24", "size: 1000");
    s.write("r.yaml", r);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
    for var in etd::env_vars::ALL {
        cmd.env_remove(var);
    }
    let child = cmd
        .current_dir(s.path())
        .arg("--workdir")
        .arg(s.join("work"))
        .args(["fetch", "r.yaml"])
        .env("ETD_TEST_NO_RETRY_DELAY", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // VmHWM: the peak resident set of the process since its exec, read until it exits.
    let status_file = format!("/proc/{}/status", child.id());
    let mut child = child;
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = fs_err::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let peak_mb = peak_kb as f64 / 1024.0;
    assert_eq!(status.code(), Some(3), "every target fails as an invalid answer");
    // 4 x 8 MB bodies at most, plus etd itself.
    assert!(peak_mb < 100.0, "peak RSS {peak_mb:.0} MB");
    eprintln!("peak RSS of etd fetch against endless bodies: {peak_mb:.0} MB");
}

mod atlas_fp {
    use std::time::Duration;

    use etd_emulators::atlas_fp::{AtlasEmulator, Config, FakeResult, Faults};
    use etd_emulators::hostile::{Hostile, HostileFault};

    use super::super::common::{stderr, Scratch};
    use super::recorder;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

    /// The fault hits the first target's task (job00001) only; the second finishes.
    fn run(kind: Hostile, matching: &str) -> (AtlasEmulator, std::process::Output, Scratch) {
        let faults = Faults { hostile: Some(HostileFault { kind, matching: matching.into() }), ..Faults::default() };
        let cfg = Config {
            time_scale: 60.0,
            queue_time: Duration::from_millis(100),
            run_time: Duration::from_millis(100),
            faults,
            ..Config::default()
        };
        let emu = AtlasEmulator::start(cfg).unwrap();
        for (ra, dec) in [(3.0, -40.0), (4.1, -39.23)] {
            emu.set_result_for(ra, dec, FakeResult::Fixture("job00128"));
        }
        let s = Scratch::new();
        s.write("t.csv", "id,ra,dec,label\nsn0000,3.00000,-40.00000,Ia\nsn0001,4.10000,-39.23000,II\n");
        s.write(
            "r.yaml",
            format!(
                "version: 1\nname: fp-test\ntargets: {{file: t.csv}}\nsource:\n  atlas-fp:\n    base_url: \"{}\"\n    \
                 mjd_min: 57000\n    mjd_max: 57010\n    batch: 40\n    poll: {{initial: 100ms, max: 300ms}}\n\
                 politeness: {{rate: 50/s, read_rate: 300/s, concurrency: 8, retries: 1, timeout: 1s}}\n",
                emu.base_url()
            ),
        );
        let out = s
            .etd()
            .env("ATLAS_TOKEN", TOKEN)
            .env("ETD_TEST_NO_RETRY_DELAY", "1")
            .args(["fetch", "r.yaml"])
            .output()
            .unwrap();
        (emu, out, s)
    }

    fn failures(s: &Scratch) -> String {
        fs_err::read_to_string(s.join("work/failures.jsonl")).unwrap_or_default()
    }

    #[test]
    fn a_result_redirected_to_another_host_never_carries_the_token_there() {
        etd_emulators::require_fixtures!();
        let (other, heads) = recorder();
        let (_emu, out, s) = run(Hostile::RedirectOtherHost(other.clone()), "job00001");
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("1 done, 1 failed (1 refused)"), "{}", stderr(&out));
        let f = failures(&s);
        assert!(f.contains("HTTP 302: a redirect to another host, not followed"), "{f}");
        let heads = heads.lock().unwrap();
        assert!(heads.is_empty(), "the other host was contacted: {heads:?}");
        assert!(!f.contains(TOKEN) && !stderr(&out).contains(TOKEN));
    }

    #[test]
    fn an_endless_result_is_cut_at_the_bound_of_its_mjd_range() {
        etd_emulators::require_fixtures!();
        let (_emu, out, s) = run(Hostile::EndlessBody, "job00001");
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("1 done, 1 failed (1 invalid-answer)"), "{}", stderr(&out));
        // 11 days (57000 to 57010) of 64 rows of 256 bytes, plus 64 KiB.
        let f = failures(&s);
        assert!(f.contains("/static/results/job00001.txt: the answer goes on past 245760 bytes"), "{f}");
        let kept = fs_err::metadata(s.join("work/rejected/atlas-fp/sn0000/job00001.txt")).unwrap();
        assert_eq!(kept.len(), 245_760);
    }

    #[test]
    fn task_json_that_is_not_utf8_leaves_the_target_for_a_later_run() {
        etd_emulators::require_fixtures!();
        let (_emu, out, s) = run(Hostile::BadUtf8Json, "queue/1/");
        assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("the answer is not task JSON"), "{err}");
        assert!(err.contains("1 done"), "{err}");
        assert!(failures(&s).is_empty());
    }
}

mod atlas_var {
    use etd_emulators::atlas_var::{AtlasVarEmulator, Config, Faults};
    use etd_emulators::hostile::{Hostile, HostileFault};

    use super::super::common::{stderr, Scratch};

    /// Every partition GET is answered with `kind`; the catalogue is served as it is.
    fn run(kind: Hostile) -> (AtlasVarEmulator, std::process::Output, Scratch) {
        let faults = Faults { hostile: Some(HostileFault { kind, matching: ".csv".into() }), ..Faults::default() };
        let emu = AtlasVarEmulator::start(Config { objects: 150, faults, ..Config::default() }).unwrap();
        let s = Scratch::new();
        let text = super::super::atlas_var::recipe(&emu.catalog_url(), &emu.lightcurves_url())
            + "politeness: {retries: 1, rate: 50/s, timeout: 1s}\n";
        s.write("r.yaml", text);
        let out = s.etd().env("ETD_TEST_NO_RETRY_DELAY", "1").args(["fetch", "r.yaml"]).output().unwrap();
        (emu, out, s)
    }

    fn parts(s: &Scratch) -> Vec<String> {
        let dir = s.join("work/raw/atlas-var");
        let mut found: Vec<String> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".csv.part") || n.ends_with(".csv"))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn an_endless_partition_stops_at_its_head_size_and_leaves_nothing_to_resume() {
        let (_emu, out, s) = run(Hostile::EndlessBody);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("the file goes on past"), "{err}");
        assert!(err.contains("its size when asked; the rest was not read"), "{err}");
        assert!(parts(&s).is_empty(), "no partition nor part file kept: {:?}", parts(&s));
    }

    #[test]
    fn a_partition_redirected_to_another_host_is_not_followed() {
        let (other, heads) = super::recorder();
        let (_emu, out, s) = run(Hostile::RedirectOtherHost(other));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("HTTP 302: a redirect to another host, not followed"), "{err}");
        assert!(heads.lock().unwrap().is_empty());
        assert!(parts(&s).iter().all(|p| p.ends_with(".part")), "{:?}", parts(&s));
    }
}

/// The request path itself: a bearer token (publish to an https origin) follows a redirect within
/// its origin, and is never sent to another host.
#[test]
fn a_bearer_token_follows_redirects_within_the_origin_only() {
    use etd::net::client::{Auth, NetClient, NetError, Request, Secret};
    let (other, other_heads) = recorder();
    // The origin: `/same` redirects to `/final` (same origin), `/away` to the other host.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = heads.clone();
    let to_other = other.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = vec![0u8; 65536];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answer = if head.starts_with("GET /same ") {
                "HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else if head.starts_with("GET /away ") {
                format!("HTTP/1.1 302 Found\r\nLocation: {to_other}/stolen\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string()
            };
            seen.lock().unwrap().push(head);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    let politeness = etd::net::Politeness {
        concurrency: 1,
        rate: etd::units::Rate::parse("100/s").unwrap(),
        retries: 0,
        timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
        read_rate: None,
    };
    let client = NetClient::new(politeness, 1).unwrap();
    let token = "secret-bearer-token";
    let get = |path: &str| {
        Request::get(url::Url::parse(&format!("{base}{path}")).unwrap()).auth(Some(Auth::Bearer(Secret::new(token))))
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let followed = rt.block_on(client.send(&get("/same"))).unwrap();
    assert_eq!(followed.body, b"ok");
    let finals: Vec<String> = heads.lock().unwrap().iter().filter(|h| h.starts_with("GET /final ")).cloned().collect();
    assert_eq!(finals.len(), 1);
    assert!(finals[0].contains(&format!("Bearer {token}")), "the token follows within the origin: {}", finals[0]);
    match rt.block_on(client.send(&get("/away"))) {
        Err(NetError::Refused { status: 302, body, .. }) => {
            assert!(body.starts_with("a redirect to another host, not followed"), "{body}")
        }
        other => panic!("expected a refused redirect, got {other:?}"),
    }
    assert!(other_heads.lock().unwrap().is_empty(), "the other host was contacted");
}
