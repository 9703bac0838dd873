//! The request path against a scripted loopback server: retries, the retry budget, host-wide
//! `Retry-After`, truncated bodies and resets, concurrency and rate limits, the User-Agent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etd::net::client::{NetClient, NetError, Request};
use etd::net::Politeness;
use etd::units::Rate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server does with request number `n` (0-based).
#[derive(Clone)]
enum Action {
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Declare `declared` bytes, send `body`, close.
    Truncate {
        declared: usize,
        body: Vec<u8>,
    },
    /// Close without answering.
    Reset,
    /// Send `chunks` of a 200 answer, sleeping `gap` before each.
    Trickle {
        chunks: Vec<Vec<u8>>,
        gap: Duration,
    },
}

fn ok(body: &str) -> Action {
    Action::Reply { status: 200, headers: vec![], body: body.as_bytes().to_vec(), delay: Duration::ZERO }
}

/// Arrival times, request heads and the peak of requests in flight, as the server saw them.
#[derive(Default)]
struct Meter {
    arrivals: Mutex<Vec<(Instant, String)>>,
    inflight: AtomicUsize,
    peak: AtomicUsize,
}

async fn serve(script: impl Fn(usize) -> Action + Send + Sync + 'static) -> (String, Arc<Meter>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let meter = Arc::new(Meter::default());
    let script = Arc::new(script);
    let counter = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&meter);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (m, script, counter) = (Arc::clone(&m), Arc::clone(&script), Arc::clone(&counter));
            tokio::spawn(async move {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match sock.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    m.arrivals.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&head).into_owned()));
                    let now = m.inflight.fetch_add(1, Ordering::SeqCst) + 1;
                    m.peak.fetch_max(now, Ordering::SeqCst);
                    let action = script(n);
                    let keep = match action {
                        Action::Reply { status, headers, body, delay } => {
                            tokio::time::sleep(delay).await;
                            let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                            for (k, v) in headers {
                                out.push_str(&format!("{k}: {v}\r\n"));
                            }
                            out.push_str("\r\n");
                            let _ = sock.write_all(out.as_bytes()).await;
                            let _ = sock.write_all(&body).await;
                            true
                        }
                        Action::Truncate { declared, body } => {
                            let out = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n");
                            let _ = sock.write_all(out.as_bytes()).await;
                            let _ = sock.write_all(&body).await;
                            false
                        }
                        Action::Reset => false,
                        Action::Trickle { chunks, gap } => {
                            let len: usize = chunks.iter().map(Vec::len).sum();
                            let out = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                            let _ = sock.write_all(out.as_bytes()).await;
                            for chunk in chunks {
                                tokio::time::sleep(gap).await;
                                if sock.write_all(&chunk).await.is_err() {
                                    break;
                                }
                            }
                            true
                        }
                    };
                    m.inflight.fetch_sub(1, Ordering::SeqCst);
                    if !keep {
                        return;
                    }
                }
            });
        }
    });
    (base, meter)
}

fn politeness(concurrency: u32, rate: &str, retries: u32) -> Politeness {
    Politeness {
        concurrency,
        rate: Rate::parse(rate).unwrap(),
        retries,
        timeout: Duration::from_secs(10),
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        read_rate: None,
    }
}

/// `n` concurrent GETs of `/0`..`/n-1`; every one must succeed.
async fn send_all(client: &Arc<NetClient>, base: &str, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (c, u) = (Arc::clone(client), url(base, &format!("/{i}")));
        tasks.push(tokio::spawn(async move { c.send(&Request::get(u)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

fn url(base: &str, path: &str) -> url::Url {
    url::Url::parse(&format!("{base}{path}")).unwrap()
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let (base, meter) = serve(|n| match n {
        0 => Action::Reply { status: 503, headers: vec![], body: b"busy".to_vec(), delay: Duration::ZERO },
        1 => Action::Truncate { declared: 100, body: b"short".to_vec() },
        2 => Action::Reset,
        _ => ok("payload"),
    })
    .await;
    let client = NetClient::new(politeness(2, "100/s", 5), 1).unwrap();
    let got = client.send(&Request::get(url(&base, "/a"))).await.unwrap();
    assert_eq!(got.body, b"payload");
    assert_eq!(meter.arrivals.lock().unwrap().len(), 4);
    assert_eq!(client.stats.retries.load(Ordering::Relaxed), 3);
    let head = meter.arrivals.lock().unwrap()[0].1.to_ascii_lowercase();
    assert!(head.contains(&format!("user-agent: etd/{}", env!("CARGO_PKG_VERSION"))), "{head}");
}

#[tokio::test]
async fn client_errors_fail_at_once_and_budgets_run_out() {
    let (base, meter) = serve(|n| {
        let status = if n == 0 { 404 } else { 500 };
        Action::Reply { status, headers: vec![], body: b"nope".to_vec(), delay: Duration::ZERO }
    })
    .await;
    let client = NetClient::new(politeness(1, "100/s", 2), 1).unwrap();
    let err = client.send(&Request::get(url(&base, "/missing"))).await.unwrap_err();
    assert!(matches!(err, NetError::Refused { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("/missing") && err.to_string().contains("404"), "{err}");
    let err = client.send(&Request::get(url(&base, "/down"))).await.unwrap_err();
    assert!(matches!(err, NetError::Exhausted { retries: 2, .. }), "{err}");
    assert!(err.to_string().contains("after 2 retries"), "{err}");
    assert_eq!(meter.arrivals.lock().unwrap().len(), 4);
    let (exit, hint) = etd::commands::diagnostics::classify(&anyhow::Error::new(err));
    assert_eq!(exit, etd::error::Exit::TempFail);
    assert!(hint.is_some());
}

#[tokio::test]
async fn the_timeout_is_for_silence_not_for_a_slow_download() {
    // Timeout 300 ms. Request 0: the body stalls for 600 ms after 2 bytes (dropped, retried).
    // Request 1: the body arrives in 6 parts 150 ms apart, 900 ms in all (fine: never silent).
    let (base, meter) = serve(|n| match n {
        0 => Action::Trickle { chunks: vec![b"ab".to_vec(), b"cdef".to_vec()], gap: Duration::from_millis(600) },
        _ => Action::Trickle { chunks: vec![b"x".to_vec(); 6], gap: Duration::from_millis(150) },
    })
    .await;
    let mut p = politeness(2, "100/s", 2);
    p.timeout = Duration::from_millis(300);
    let client = NetClient::new(p, 1).unwrap();
    let got = client.send(&Request::get(url(&base, "/big"))).await.unwrap();
    assert_eq!(got.body, b"xxxxxx");
    assert_eq!(meter.arrivals.lock().unwrap().len(), 2);
    assert_eq!(client.stats.retries.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn retry_after_pauses_the_whole_host() {
    let (base, meter) = serve(|n| {
        if n == 3 {
            Action::Reply {
                status: 429,
                headers: vec![("Retry-After", "1".into())],
                body: vec![],
                delay: Duration::ZERO,
            }
        } else {
            Action::Reply { status: 200, headers: vec![], body: b"x".to_vec(), delay: Duration::from_millis(20) }
        }
    })
    .await;
    let client = Arc::new(NetClient::new(politeness(4, "1000/s", 3), 1).unwrap());
    send_all(&client, &base, 12).await;
    let arrivals = meter.arrivals.lock().unwrap();
    let t429 = arrivals[3].0;
    // Requests already on their way may land just after the 429; none may start inside the window.
    let inside = arrivals
        .iter()
        .filter(|(t, _)| *t > t429 + Duration::from_millis(100) && *t < t429 + Duration::from_millis(950))
        .count();
    assert_eq!(inside, 0, "requests during the Retry-After window");
    let t = client.throttled();
    assert!(t >= Duration::from_millis(900) && t < Duration::from_millis(1500), "{t:?}");
}

#[tokio::test]
async fn requests_queued_during_a_pause_do_not_burst_when_it_ends() {
    // Request 1 gets `Retry-After: 1` while the others queue for the rate limiter (20/s). When
    // the pause ends they must go one per 50 ms again, not all at once.
    let (base, meter) = serve(|n| {
        if n == 1 {
            Action::Reply {
                status: 429,
                headers: vec![("Retry-After", "1".into())],
                body: vec![],
                delay: Duration::ZERO,
            }
        } else {
            Action::Reply { status: 200, headers: vec![], body: b"x".to_vec(), delay: Duration::from_millis(5) }
        }
    })
    .await;
    let client = Arc::new(NetClient::new(politeness(6, "20/s", 3), 1).unwrap());
    send_all(&client, &base, 8).await;
    let arrivals: Vec<Instant> = meter.arrivals.lock().unwrap().iter().map(|(t, _)| *t).collect();
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(40), "two requests {gap:?} apart at 20/s: {arrivals:?}");
    }
    assert!(arrivals[arrivals.len() - 1] - arrivals[1] >= Duration::from_millis(1000));
}

#[tokio::test]
async fn concurrency_and_rate_limits_hold() {
    let (base, meter) = serve(|_| Action::Reply {
        status: 200,
        headers: vec![],
        body: b"x".to_vec(),
        delay: Duration::from_millis(60),
    })
    .await;
    let client = Arc::new(NetClient::new(politeness(3, "1000/s", 0), 1).unwrap());
    send_all(&client, &base, 15).await;
    let peak = meter.peak.load(Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "peak in flight {peak}");

    let (base, meter) = serve(|_| ok("y")).await;
    let client = Arc::new(NetClient::new(politeness(10, "20/s", 0), 1).unwrap());
    send_all(&client, &base, 12).await;
    let mut times: Vec<Instant> = meter.arrivals.lock().unwrap().iter().map(|(t, _)| *t).collect();
    times.sort();
    // 20/s with no burst: starts 50 ms apart, so 12 starts span at least 11 x 50 ms (less slack).
    let span = times[11] - times[0];
    assert!(span >= Duration::from_millis(500), "12 starts in {span:?}");
    let tightest = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(tightest >= Duration::from_millis(25), "two starts {tightest:?} apart");
}

#[tokio::test]
async fn tasks_split_the_budget() {
    let p = politeness(10, "20/s", 0);
    let one = etd::net::limiter::HostLimiter::new(&p, 1);
    let quarter = etd::net::limiter::HostLimiter::new(&p, 4);
    assert_eq!(one.concurrency(), 10);
    assert_eq!(quarter.concurrency(), 2);
    let lots = etd::net::limiter::HostLimiter::new(&p, 64);
    assert_eq!(lots.concurrency(), 1);
}

#[tokio::test]
async fn a_whole_answer_that_does_not_parse_gets_one_retry_and_its_bytes_come_back() {
    // Every answer is a whole 200 (Content-Length matches) that the check refuses.
    let (base, meter) = serve(|n| ok(&format!("not a table {n}"))).await;
    let client = NetClient::new(politeness(1, "100/s", 6), 1).unwrap();
    let check = |f: &etd::net::client::Fetched| -> Result<(), String> {
        if f.body.starts_with(b"table") {
            Ok(())
        } else {
            Err(format!("line 1: `{}` is not a table", String::from_utf8_lossy(&f.body)))
        }
    };
    let err = client.send_valid(&Request::get(url(&base, "/t")), check).await.unwrap_err();
    assert_eq!(meter.arrivals.lock().unwrap().len(), 2, "one try and one retry, not the budget of 6");
    match &err {
        NetError::Invalid { retries, reason, body, .. } => {
            assert_eq!(*retries, 1);
            assert_eq!(reason, "line 1: `not a table 1` is not a table");
            assert_eq!(body.0, b"not a table 1", "the last answer's bytes as received");
        }
        other => panic!("expected an invalid answer, got {other}"),
    }
    // A retry that parses succeeds; transport faults before it do not use up the one retry.
    let (base, meter) = serve(|n| match n {
        0 => ok("garbage"),
        1 => Action::Truncate { declared: 100, body: b"table cut".to_vec() },
        2 => Action::Reset,
        _ => ok("table ok"),
    })
    .await;
    let got = client.send_valid(&Request::get(url(&base, "/t")), check).await.unwrap();
    assert_eq!(got.body, b"table ok");
    assert_eq!(meter.arrivals.lock().unwrap().len(), 4);
    // Truncated bodies alone are retried within the whole budget, as before.
    let (base, meter) = serve(|n| match n {
        0..=4 => Action::Truncate { declared: 100, body: b"table cut".to_vec() },
        _ => ok("table whole"),
    })
    .await;
    let got = client.send_valid(&Request::get(url(&base, "/t")), check).await.unwrap();
    assert_eq!(got.body, b"table whole");
    assert_eq!(meter.arrivals.lock().unwrap().len(), 6);
}
