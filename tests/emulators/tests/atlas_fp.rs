mod common;

use common::{read_response, Resp};
use etd_emulators::atlas_fp::{self, AtlasEmulator, Config, FakeResult, Faults};
use serde_json::Value;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

fn start(cfg: Config) -> (AtlasEmulator, String) {
    let e = AtlasEmulator::start(cfg).unwrap();
    let base = e.base_url();
    (e, base)
}

/// `127.0.0.1:PORT` of a base URL.
fn hostport(base: &str) -> &str {
    base.strip_prefix("http://").unwrap().split('/').next().unwrap()
}

/// The request target for a path under the base (`/queue/`) or an absolute URL.
fn target(base: &str, path: &str) -> String {
    if let Some(rest) = path.strip_prefix("http://") {
        return format!("/{}", rest.split_once('/').unwrap().1);
    }
    format!("{}{path}", base.strip_prefix(&format!("http://{}", hostport(base))).unwrap())
}

fn raw_request(method: &str, base: &str, path: &str, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: etd-atlas-tests/1\r\n",
        target(base, path),
        hostport(base)
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn try_request(method: &str, base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Resp> {
    let mut c = BufReader::new(TcpStream::connect(hostport(base))?);
    c.get_ref().set_read_timeout(Some(Duration::from_secs(30)))?;
    c.get_mut().write_all(&raw_request(method, base, path, headers, body, true))?;
    read_response(&mut c)
}

fn request(method: &str, base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    try_request(method, base, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&").into_bytes()
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn auth(token: &str) -> String {
    format!("Token {token}")
}

fn post(base: &str, path: &str, token: &str, fields: &[(&str, &str)]) -> Resp {
    let a = auth(token);
    request("POST", base, path, &[("Authorization", &a), FORM, ("Accept", "application/json")], &form(fields))
}

fn get(base: &str, path: &str, token: Option<&str>) -> Resp {
    let a = token.map(auth);
    let headers: Vec<(&str, &str)> = a.iter().map(|a| ("Authorization", a.as_str())).collect();
    request("GET", base, path, &headers, b"")
}

fn delete(base: &str, path: &str, token: &str) -> Resp {
    request("DELETE", base, path, &[("Authorization", &auth(token))], b"")
}

fn json(r: &Resp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn quick() -> Config {
    Config { queue_time: Duration::from_millis(400), run_time: Duration::from_millis(400), ..Config::default() }
}

fn slow() -> Config {
    Config { queue_time: Duration::from_secs(600), ..Config::default() }
}

fn fixture_file(name: &str) -> Vec<u8> {
    etd_emulators::fixtures::bytes(&etd_emulators::fixtures::atlas_result(name)).unwrap().to_vec()
}

#[test]
fn token_endpoint() {
    etd_emulators::require_fixtures!();
    let (_e, base) = start(Config::default());
    let ok = request("POST", &base, "/api-token-auth/", &[FORM], &form(&[("username", "etd"), ("password", "secret")]));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert_eq!(ok.text(), format!("{{\"token\":\"{TOKEN}\"}}"));
    let js = request(
        "POST",
        &base,
        "/api-token-auth/",
        &[("Content-Type", "application/json")],
        br#"{"username": "etd", "password": "secret"}"#,
    );
    assert_eq!(json(&js)["token"], TOKEN);

    let bad = request("POST", &base, "/api-token-auth/", &[FORM], &form(&[("username", "etd"), ("password", "nope")]));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.text(), r#"{"non_field_errors":["Unable to log in with provided credentials."]}"#);
    let missing = request("POST", &base, "/api-token-auth/", &[FORM], &form(&[("username", "etd")]));
    assert_eq!(missing.status, 400);
    assert_eq!(missing.text(), r#"{"password":["This field is required."]}"#);
    let none = request("POST", &base, "/api-token-auth/", &[FORM], b"");
    assert_eq!(none.text(), r#"{"username":["This field is required."],"password":["This field is required."]}"#);
    let blank = request("POST", &base, "/api-token-auth/", &[FORM], &form(&[("username", ""), ("password", "x")]));
    assert_eq!(blank.text(), r#"{"username":["This field may not be blank."]}"#);

    let wrong_method = get(&base, "/api-token-auth/", None);
    assert_eq!(wrong_method.status, 405);
    assert_eq!(json(&wrong_method)["detail"], "Method \"GET\" not allowed.");
    // The real paths end in a slash; Django redirects the bare one (a POST loses its body).
    let bare =
        request("POST", &base, "/api-token-auth", &[FORM], &form(&[("username", "etd"), ("password", "secret")]));
    assert_eq!(bare.status, 301);
    assert_eq!(bare.header("location"), Some("/forcedphot/api-token-auth/"));
}

#[test]
fn authentication_and_permissions() {
    etd_emulators::require_fixtures!();
    let cfg = Config {
        users: vec![
            ("etd".into(), "secret".into(), TOKEN.into()),
            ("other".into(), "pw2".into(), "ffffffffffffffffffffffffffffffffffffffff".into()),
        ],
        ..slow()
    };
    let (e, base) = start(cfg);
    let anon = request("POST", &base, "/queue/", &[FORM], &form(&[("ra", "10"), ("dec", "20")]));
    assert_eq!(anon.status, 401);
    assert_eq!(anon.text(), r#"{"detail":"Authentication credentials were not provided."}"#);
    assert_eq!(anon.header("www-authenticate"), Some("Basic realm=\"api\""));

    let bad = post(&base, "/queue/", "0000000000000000000000000000000000000000", &[("ra", "10"), ("dec", "20")]);
    assert_eq!(bad.status, 401);
    assert_eq!(json(&bad)["detail"], "Invalid token.");
    // A bad token is refused even where no credentials are needed (DRF authenticates first).
    assert_eq!(get(&base, "/queue/1/", Some("nope")).status, 401);
    let malformed = request("GET", &base, "/queue/", &[("Authorization", "Token a b")], b"");
    assert_eq!(json(&malformed)["detail"], "Invalid token header. Token string should not contain spaces.");

    let basic = format!("Basic {}", "ZXRkOnNlY3JldA=="); // etd:secret
    let created =
        request("POST", &base, "/queue/", &[("Authorization", &basic), FORM], &form(&[("ra", "1"), ("dec", "2")]));
    assert_eq!(created.status, 201, "{}", created.text());
    let bad_basic = request("GET", &base, "/queue/", &[("Authorization", "Basic ZXRkOm5vcGU=")], b"");
    assert_eq!(json(&bad_basic)["detail"], "Invalid username/password.");

    assert_eq!(get(&base, "/queue/", None).status, 403);
    assert_eq!(json(&get(&base, "/queue/", None))["detail"], "You do not have permission to perform this action.");
    // Detail is public; deleting someone else's task is not.
    let url = json(&created)["url"].as_str().unwrap().to_string();
    assert_eq!(get(&base, &url, None).status, 200);
    let theirs = delete(&base, &url, "ffffffffffffffffffffffffffffffffffffffff");
    assert_eq!(theirs.status, 403);
    assert_eq!(json(&theirs)["detail"], "You must be the owner of this object.");
    assert_eq!(get(&base, "/queue/", Some("ffffffffffffffffffffffffffffffffffffffff")).status, 200);
    assert_eq!(json(&get(&base, "/queue/", Some("ffffffffffffffffffffffffffffffffffffffff")))["taskcount"], 0);

    let m = e.meter();
    let schemes: Vec<&str> = m.authorization_headers_seen.iter().map(String::as_str).collect();
    assert_eq!(schemes, ["", "Basic", "Token"]);
    assert!(m.user_agents.contains("etd-atlas-tests/1"));
}

const FIELDS: [&str; 37] = [
    "url",
    "id",
    "user_id",
    "username",
    "timestamp",
    "mpc_name",
    "ra",
    "dec",
    "mjd_min",
    "mjd_max",
    "radec_epoch_year",
    "propermotion_ra",
    "propermotion_dec",
    "use_reduced",
    "finished",
    "result_url",
    "comment",
    "send_email",
    "callback_url",
    "starttimestamp",
    "finishtimestamp",
    "error_msg",
    "previewimage_url",
    "parent_task_id",
    "parent_task_url",
    "request_type",
    "pdfplot_url",
    "queuepos",
    "imagerequest_task_id",
    "imagerequest_url",
    "imagerequest_finished",
    "result_imagestack_url",
    "result_imagezip_url",
    "userqueuedtasks_on_submit",
    "waittime",
    "runtime",
    "attempt_count",
];

/// Keys of a JSON object in the order they were sent.
fn key_order(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap();
    let mut keys: Vec<(usize, String)> =
        v.as_object().unwrap().keys().map(|k| (body.find(&format!("\"{k}\":")).unwrap(), k.clone())).collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn created_task_json() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(slow());
    let r = post(
        &base,
        "/queue/",
        TOKEN,
        &[("ra", "150.1"), ("dec", "-2.5"), ("mjd_max", "70000"), ("comment", "sn:etd"), ("use_reduced", "true")],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(key_order(&r.text()), FIELDS);
    let t = json(&r);
    assert_eq!(t["url"], format!("{base}/queue/1/"));
    assert_eq!(r.header("location"), Some(format!("{base}/queue/1/").as_str()));
    assert_eq!(t["id"], 1);
    assert_eq!(t["user_id"], 1);
    assert_eq!(t["username"], "etd");
    assert_eq!(t["ra"], 150.1);
    assert_eq!(t["dec"], -2.5);
    assert_eq!(t["mjd_max"], 70000.0);
    assert_eq!(t["use_reduced"], true);
    assert_eq!(t["send_email"], false, "an omitted form checkbox reads as false");
    assert_eq!(t["comment"], "sn:etd");
    assert_eq!(t["request_type"], "FP");
    assert_eq!(t["finished"], false);
    assert_eq!(t["queuepos"], 0);
    assert_eq!(t["attempt_count"], 0);
    for k in ["starttimestamp", "finishtimestamp", "result_url", "error_msg", "waittime", "runtime", "mpc_name"] {
        assert!(t[k].is_null(), "{k}: {}", t[k]);
    }
    let ts = t["timestamp"].as_str().unwrap();
    assert!(ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    // The default lower bound is 30 days ago, rounded to 5 decimals.
    let now_mjd =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() / 86400.0 + 40587.0;
    let mjd_min = t["mjd_min"].as_f64().unwrap();
    assert!((now_mjd - 30.0 - mjd_min).abs() < 0.001, "{mjd_min}");
    assert_eq!((mjd_min * 1e5).round() / 1e5, mjd_min);

    // JSON bodies work too, and there an omitted boolean keeps the model default.
    let a = auth(TOKEN);
    let j = request(
        "POST",
        &base,
        "/queue/",
        &[("Authorization", &a), ("Content-Type", "application/json")],
        br#"{"ra": 0, "dec": 0, "mjd_min": null, "radec_epoch_year": 2000, "callback_url": "https://example.org/cb"}"#,
    );
    assert_eq!(j.status, 201, "{}", j.text());
    let t = json(&j);
    assert_eq!(t["send_email"], true);
    assert!(t["mjd_min"].is_null());
    assert_eq!(t["radec_epoch_year"], "2000.0");
    assert_eq!(t["queuepos"], 1);
    assert_eq!(t["userqueuedtasks_on_submit"], 1);
    assert_eq!(t["callback_url"], "https://example.org/cb");
    // Anyone may read it, but the callback URL is the submitter's secret.
    assert!(json(&get(&base, "/queue/2/", None))["callback_url"].is_null());

    let snap = e.tasks();
    assert_eq!(snap.len(), 2);
    assert_eq!((snap[0].ra, snap[0].dec, snap[0].state), (Some(150.1), Some(-2.5), "queued"));
    assert_eq!(snap[0].comment.as_deref(), Some("sn:etd"));
}

#[test]
fn radeclist_submissions() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(slow());
    let r = post(
        &base,
        "/queue/",
        TOKEN,
        &[("radeclist", "10.5 20\n11,21\r\n\n00 52 20.21 +56 34 03.9\n"), ("mjd_min", "59000")],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let list = json(&r);
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["ra"], 10.5);
    assert_eq!(items[1]["dec"], 21.0);
    assert!((items[2]["ra"].as_f64().unwrap() - 13.0842083).abs() < 1e-6);
    assert!((items[2]["dec"].as_f64().unwrap() - 56.56775).abs() < 1e-6);
    assert!(items.iter().all(|t| t["mjd_min"] == 59000.0));
    assert!(r.header("location").is_none());

    let mpc = post(&base, "/queue/", TOKEN, &[("radeclist", "mpc Makemake")]);
    assert_eq!(mpc.status, 201, "{}", mpc.text());
    assert_eq!(json(&mpc)[0]["mpc_name"], "Makemake");
    assert!(json(&mpc)[0]["ra"].is_null());

    let lines: String = (0..101).map(|i| format!("{}.0 10.0\n", i)).collect();
    let big = post(&base, "/queue/", TOKEN, &[("radeclist", &lines)]);
    assert_eq!(big.status, 400);
    assert_eq!(big.text(), r#"{"radeclist":"Number of lines (101) is above the limit of 100"}"#);
    let exactly: String = (0..100).map(|i| format!("{}.0 10.0\n", i)).collect();
    assert_eq!(json(&post(&base, "/queue/", TOKEN, &[("radeclist", &exactly)])).as_array().unwrap().len(), 100);

    let bad_line = post(&base, "/queue/", TOKEN, &[("radeclist", "10 20\n400 10")]);
    assert_eq!(bad_line.status, 400);
    assert_eq!(
        json(&bad_line)["radeclist"],
        "Error on line 2: could not convert ra to decimal degrees, could not parse sexegesimal input. Original value was `400`"
    );
    let one_col = post(&base, "/queue/", TOKEN, &[("radeclist", "10")]);
    assert!(json(&one_col)["radeclist"].as_str().unwrap().starts_with("Error on line 1: Could not find two columns."));
    assert_eq!(e.tasks().len(), 104);
}

#[test]
fn invalid_submissions_are_refused() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(slow());
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("ra", "nan"), ("dec", "20")], r#"{"ra":{"ra":"ra must be a finite floating-point number."}}"#),
        (&[("ra", "inf"), ("dec", "20")], r#"{"ra":{"ra":"ra must be a finite floating-point number."}}"#),
        (&[("dec", "20")], r#"{"ra":["dec was set but ra is missing."]}"#),
        (&[("ra", "abc"), ("dec", "20")], r#"{"ra":["A valid number is required."]}"#),
        (&[], r#"{"non_field_errors":["Either an mpc_name or (ra, dec) must be specified."]}"#),
        (
            &[("ra", "1"), ("dec", "2"), ("mjd_min", "60000"), ("mjd_max", "59000")],
            r#"{"mjd_max":["mjd_max must be greater than mjd_min (60000.0 was applied)."]}"#,
        ),
        (&[("ra", "1"), ("dec", "2"), ("mjd_max", "-5")], r#"{"mjd_max":["mjd_max must be a positive MJD."]}"#),
        (
            &[("ra", "1"), ("dec", "2"), ("mpc_name", "Ceres")],
            r#"{"mpc_name":["mpc_name was given but RA and Dec were not empty."]}"#,
        ),
    ];
    for (fields, expected) in cases {
        let r = post(&base, "/queue/", TOKEN, fields);
        assert_eq!(r.status, 400, "{fields:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.text(), expected, "{fields:?}");
    }
    let long = "x".repeat(301);
    assert_eq!(
        post(&base, "/queue/", TOKEN, &[("ra", "1"), ("dec", "2"), ("comment", &long)]).text(),
        r#"{"comment":["Ensure this field has no more than 300 characters."]}"#
    );
    let a = auth(TOKEN);
    let plain = request("POST", &base, "/queue/", &[("Authorization", &a), ("Content-Type", "text/plain")], b"ra=1");
    assert_eq!(plain.status, 415);
    assert_eq!(json(&plain)["detail"], "Unsupported media type \"text/plain\" in request.");
    let broken =
        request("POST", &base, "/queue/", &[("Authorization", &a), ("Content-Type", "application/json")], b"{ra");
    assert_eq!(broken.status, 400);
    assert!(json(&broken)["detail"].as_str().unwrap().starts_with("JSON parse error - "));
    let html_only = request("GET", &base, "/queue/", &[("Authorization", &a), ("Accept", "text/html")], b"");
    assert_eq!(html_only.status, 406);
    assert!(e.tasks().is_empty());
}

/// Polls a task until it finishes, returning every state seen and the final JSON.
fn poll(base: &str, url: &str) -> (Vec<&'static str>, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let r = get(base, url, None);
        assert_eq!(r.status, 200, "{}", r.text());
        let t = json(&r);
        let state = if !t["finishtimestamp"].is_null() {
            "finished"
        } else if !t["starttimestamp"].is_null() {
            "running"
        } else {
            "queued"
        };
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        if state == "finished" {
            return (seen, t);
        }
        assert!(Instant::now() < deadline, "task never finished: {seen:?}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn lifecycle_result_and_deletion() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(quick());
    let r = post(&base, "/queue/", TOKEN, &[("ra", "29.86137"), ("dec", "30.72672")]);
    let url = json(&r)["url"].as_str().unwrap().to_string();
    let (seen, t) = poll(&base, &url);
    assert_eq!(seen, ["queued", "running", "finished"]);
    assert_eq!(t["finished"], true);
    assert!(t["queuepos"].is_null());
    assert!(t["error_msg"].is_null());
    assert_eq!(t["attempt_count"], 1);
    assert_eq!(t["runtime"], 0.4);
    let result_url = t["result_url"].as_str().unwrap();
    assert_eq!(result_url, format!("{base}/static/results/job00001.txt"));

    let file = get(&base, result_url, Some(TOKEN));
    assert_eq!(file.status, 200);
    assert_eq!(file.header("content-type"), Some("text/plain"));
    assert_eq!(file.text(), atlas_fp::result_text_for(29.86137, 30.72672));
    let fixtures = ["job00128", "job01064", "job01088"].map(fixture_file);
    assert!(fixtures.contains(&file.body), "the result must be one of the real files, byte for byte");
    assert!(file.text().starts_with("###MJD          m      dm   uJy   duJy F err chi/N     RA       Dec"));

    let gone = delete(&base, &url, TOKEN);
    assert_eq!(gone.status, 204);
    assert!(gone.body.is_empty());
    assert!(gone.header("content-length").is_none());
    let after = get(&base, &url, None);
    assert_eq!(after.status, 404);
    assert_eq!(after.text(), "Page not found");
    assert_eq!(get(&base, result_url, None).status, 404);
    assert_eq!(json(&get(&base, "/queue/", Some(TOKEN)))["taskcount"], 0);

    // An unfinished task is removed outright.
    let q = json(&post(&base, "/queue/", TOKEN, &[("ra", "1"), ("dec", "2")]));
    let qurl = q["url"].as_str().unwrap();
    assert_eq!(delete(&base, qurl, TOKEN).status, 204);
    let after = get(&base, qurl, None);
    assert_eq!(after.status, 404);
    assert_eq!(after.text(), r#"{"detail":"No Task matches the given query."}"#);
    assert_eq!(delete(&base, qurl, TOKEN).status, 404);

    let snap = e.tasks();
    assert_eq!((snap[0].state, snap[0].deleted), ("archived", true));
    assert_eq!((snap[1].state, snap[1].deleted), ("cancelled", true));
}

#[test]
fn fake_results_and_expiry() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(quick());
    e.set_result_for(10.0, 20.0, FakeResult::NoData);
    e.set_result_for(11.0, 21.0, FakeResult::Fixture("job00128"));
    let none = json(&post(&base, "/queue/", TOKEN, &[("ra", "10"), ("dec", "20")]));
    let fixed = json(&post(&base, "/queue/", TOKEN, &[("ra", "11.0"), ("dec", "21")]));
    let (_, t) = poll(&base, none["url"].as_str().unwrap());
    assert_eq!(t["error_msg"], "No data returned");
    assert!(t["result_url"].is_null());
    assert_eq!(get(&base, &format!("/static/results/job{:05}.txt", t["id"].as_u64().unwrap()), None).status, 404);
    let (_, t) = poll(&base, fixed["url"].as_str().unwrap());
    let body = get(&base, t["result_url"].as_str().unwrap(), None).body;
    assert_eq!(body, fixture_file("job00128"));
    // Expiry: the task is archived and its file goes.
    e.archive_task(t["id"].as_u64().unwrap());
    assert_eq!(get(&base, fixed["url"].as_str().unwrap(), None).status, 404);
    assert_eq!(get(&base, t["result_url"].as_str().unwrap(), None).status, 404);
    assert_eq!(get(&base, "/static/results/job2.txt", None).status, 404);
}

#[test]
fn every_fixture_given_bytes_and_cut_short_reads_are_served_and_counted() {
    etd_emulators::require_fixtures!();
    let faults = Faults { truncate_result_reads: 1, ..Faults::default() };
    let (e, base) = start(Config { faults, ..quick() });
    let broken = b"###MJD m\n\xff broken but whole\n".to_vec();
    let mut urls = Vec::new();
    for (i, name) in etd_emulators::fixtures::ATLAS_RESULTS.iter().enumerate() {
        e.set_result_for(i as f64, 1.0, FakeResult::Fixture(name));
    }
    e.set_result_for(9.0, 1.0, FakeResult::Bytes(broken.clone()));
    for ra in [0, 1, 2, 3, 4, 5, 9] {
        let t = json(&post(&base, "/queue/", TOKEN, &[("ra", &ra.to_string()), ("dec", "1")]));
        urls.push(t["url"].as_str().unwrap().to_string());
    }
    for (i, url) in urls.iter().enumerate() {
        let (_, t) = poll(&base, url);
        let result_url = t["result_url"].as_str().unwrap();
        // First read: the whole Content-Length announced, half the body sent, then closed.
        let mut conn = TcpStream::connect(hostport(&base)).unwrap();
        conn.write_all(&raw_request("GET", &base, result_url, &[], b"", true)).unwrap();
        let mut cut = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut cut).unwrap();
        let head_end = cut.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let want = match etd_emulators::fixtures::ATLAS_RESULTS.get(i) {
            Some(name) => fixture_file(name),
            None => broken.clone(),
        };
        let head = String::from_utf8_lossy(&cut[..head_end]).to_ascii_lowercase();
        assert!(head.contains(&format!("content-length: {}", want.len())), "{head}");
        assert_eq!(cut.len() - head_end, want.len() / 2);
        // Second read: whole, byte for byte.
        assert_eq!(get(&base, result_url, None).body, want, "{result_url}");
    }
    let reads = e.meter().result_reads;
    assert_eq!(reads.len(), 7);
    assert!(reads.values().all(|&n| n == 2), "{reads:?}");
}

/// POSTs on one keep-alive connection.
struct Conn {
    base: String,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn new(base: &str) -> Conn {
        let s = TcpStream::connect(hostport(base)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { base: base.to_string(), r: BufReader::new(s) }
    }

    fn post(&mut self, fields: &[(&str, &str)]) -> Resp {
        let a = auth(TOKEN);
        let raw = raw_request("POST", &self.base, "/queue/", &[("Authorization", &a), FORM], &form(fields), false);
        self.r.get_mut().write_all(&raw).unwrap();
        read_response(&mut self.r).unwrap()
    }
}

#[test]
fn write_throttle_sixty_per_scaled_minute() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(Config { time_scale: 60.0, ..slow() });
    let mut c = Conn::new(&base);
    let t0 = Instant::now();
    for i in 0..60 {
        let r = c.post(&[("ra", &format!("{i}")), ("dec", "1")]);
        assert_eq!(r.status, 201, "write {i}: {}", r.text());
    }
    let r = c.post(&[("ra", "61"), ("dec", "1")]);
    assert!(t0.elapsed() < Duration::from_millis(900), "60 writes took {:?}; the window is 1 s", t0.elapsed());
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), r#"{"detail":"Request was throttled. Expected available in 1 second."}"#);
    assert_eq!(r.header("retry-after"), Some("1"));
    std::thread::sleep(Duration::from_secs(1));
    let again = c.post(&[("ra", "61"), ("dec", "1")]);
    assert_eq!(again.status, 201, "{}", again.text());
    let m = e.meter();
    assert_eq!(m.throttled, 1);
    assert_eq!(m.posts, 62);
    assert_eq!(m.max_writes_in_any_window, 61);
    assert_eq!(m.writes_during_retry_after, 0);
    assert_eq!(m.status_counts[&429], 1);
    assert_eq!(m.by_route["queue-list"], 62);
    assert_eq!(m.max_queued_seen, 61);
}

#[test]
fn write_throttle_plural_and_early_retries() {
    etd_emulators::require_fixtures!();
    // time_scale 20: the 60 s window lasts 3 s.
    let (e, base) = start(Config { time_scale: 20.0, write_rate_per_min: 5, ..slow() });
    let mut c = Conn::new(&base);
    for i in 0..5 {
        assert_eq!(c.post(&[("ra", &format!("{i}")), ("dec", "1")]).status, 201);
    }
    // Throttling comes before validation: an invalid write is refused with 429, not 400.
    let r = c.post(&[("ra", "nan")]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.text(), r#"{"detail":"Request was throttled. Expected available in 3 seconds."}"#);
    std::thread::sleep(Duration::from_millis(300));
    // Refused requests are not recorded, so this one waits for the same oldest request.
    let early = c.post(&[("ra", "9"), ("dec", "1")]);
    assert_eq!(early.status, 429);
    let n: u64 = early.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&n));
    // Reads have their own scope.
    assert_eq!(get(&base, "/queue/", Some(TOKEN)).status, 200);
    let m = e.meter();
    assert_eq!(m.throttled, 2);
    assert_eq!(m.writes_during_retry_after, 1);
}

#[test]
fn read_throttle_is_separate() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(Config { time_scale: 60.0, read_rate_per_min: Some(3), ..slow() });
    for _ in 0..3 {
        assert_eq!(get(&base, "/queue/", Some(TOKEN)).status, 200);
    }
    let r = get(&base, "/queue/", Some(TOKEN));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(post(&base, "/queue/", TOKEN, &[("ra", "1"), ("dec", "2")]).status, 201);
    // Result files are static (served by Apache), never throttled.
    assert_eq!(get(&base, "/static/results/job00001.txt", None).status, 404);
    assert_eq!(e.meter().writes_during_retry_after, 0);
}

#[test]
fn list_pagination() {
    etd_emulators::require_fixtures!();
    let (_e, base) = start(slow());
    let lines: String = (1..=8).map(|i| format!("{i} {i}\n")).collect();
    assert_eq!(post(&base, "/queue/", TOKEN, &[("radeclist", &lines)]).status, 201);
    let first = get(&base, "/queue/", Some(TOKEN));
    assert_eq!(first.status, 200);
    assert_eq!(key_order(&first.text()), ["next", "previous", "pagefirsttaskposition", "taskcount", "results"]);
    let p1 = json(&first);
    assert_eq!(p1["taskcount"], 8);
    assert_eq!(p1["pagefirsttaskposition"], 0);
    assert!(p1["previous"].is_null());
    let ids: Vec<u64> = p1["results"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [8, 7, 6, 5, 4, 3], "newest first, 6 per page");
    let next = p1["next"].as_str().unwrap();
    assert!(next.starts_with(&format!("{base}/queue/?cursor=")), "{next}");
    let p2 = json(&get(&base, next, Some(TOKEN)));
    let ids: Vec<u64> = p2["results"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(p2["pagefirsttaskposition"], 6);
    assert!(p2["next"].is_null());
    assert_eq!(p2["previous"], format!("{base}/queue/"));

    let small = json(&get(&base, "/queue/?pagesize=3&ordering=id", Some(TOKEN)));
    let ids: Vec<u64> = small["results"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(small["next"].as_str().unwrap().contains("ordering=id&pagesize=3"));
    assert_eq!(json(&get(&base, "/queue/?pagesize=1000", Some(TOKEN)))["results"].as_array().unwrap().len(), 8);
    assert_eq!(json(&get(&base, "/queue/?started=true", Some(TOKEN)))["taskcount"], 0);
    assert_eq!(json(&get(&base, "/queue/?started=false", Some(TOKEN)))["taskcount"], 8);
    assert_eq!(get(&base, "/queue/?cursor=bogus", Some(TOKEN)).status, 404);

    // Conditional requests.
    let tag = first.header("etag").unwrap().to_string();
    let a = auth(TOKEN);
    let same = request("GET", &base, "/queue/", &[("Authorization", &a), ("If-None-Match", &tag)], b"");
    assert_eq!(same.status, 304);
    assert!(same.body.is_empty());
}

#[test]
fn too_many_queued_tasks() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(Config { max_queued: 3, ..slow() });
    for i in 0..3 {
        assert_eq!(post(&base, "/queue/", TOKEN, &[("ra", &i.to_string()), ("dec", "1")]).status, 201);
    }
    let r = post(&base, "/queue/", TOKEN, &[("ra", "5"), ("dec", "1")]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        r#"{"non_field_errors":"ERROR: You have too many queued tasks (3 queued + 1 requested > 3)."}"#
    );
    // Deleting a queued task frees a slot; a radeclist counts all its lines.
    assert_eq!(delete(&base, "/queue/1/", TOKEN).status, 204);
    let two = post(&base, "/queue/", TOKEN, &[("radeclist", "1 1\n2 2")]);
    assert_eq!(json(&two)["non_field_errors"], "ERROR: You have too many queued tasks (2 queued + 2 requested > 3).");
    assert_eq!(post(&base, "/queue/", TOKEN, &[("radeclist", "1 1")]).status, 201);
    assert_eq!(e.meter().max_queued_seen, 3);
}

#[test]
fn faults_hit_first_attempts_only() {
    etd_emulators::require_fixtures!();
    let (e, base) = start(Config { faults: Faults { every_nth_503: Some(1), ..Faults::default() }, ..slow() });
    let r = post(&base, "/queue/", TOKEN, &[("ra", "1"), ("dec", "2")]);
    assert_eq!(r.status, 503);
    assert!(e.tasks().is_empty(), "a faulted submission creates nothing");
    assert_eq!(post(&base, "/queue/", TOKEN, &[("ra", "1"), ("dec", "2")]).status, 201);
    e.set_faults(Faults { every_nth_reset: Some(1), ..Faults::default() });
    assert!(try_request("GET", &base, "/queue/1/", &[], b"").is_err());
    assert_eq!(get(&base, "/queue/1/", None).status, 200);
    e.set_faults(Faults::default());
    e.forget_attempts();
    assert_eq!(get(&base, "/queue/1/", None).status, 200);
}

#[test]
fn binary_with_exit_on_stdin_eof_serves_until_stdin_closes() {
    etd_emulators::require_fixtures!();
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("etd-atlas-emulator-test-{}", std::process::id()));
    fs_err::create_dir_all(&dir).unwrap();
    let meter_file = dir.join("meter.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etd-emulator"))
        .args(["atlas-fp", "--exit-on-stdin-eof", "--addr", "127.0.0.1:0", "--time-scale", "60", "--meter-file"])
        .arg(&meter_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut base, mut token) = (String::new(), String::new());
    out.read_line(&mut base).unwrap();
    out.read_line(&mut token).unwrap();
    let (base, token) = (base.trim_end().to_string(), token.trim_end().to_string());
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/forcedphot"), "{base}");
    assert_eq!(token, TOKEN);
    assert_eq!(post(&base, "/queue/", &token, &[("ra", "1"), ("dec", "2")]).status, 201);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let m: Value = serde_json::from_str(&fs_err::read_to_string(&meter_file).unwrap()).unwrap();
    assert_eq!(m["requests"], 1);
    assert_eq!(m["posts"], 1);
    assert_eq!(m["by_route"]["queue-list"], 1);
    let _ = fs_err::remove_dir_all(&dir);
}
