//! A deliberately small HTTP/1.1 server core on std sockets: request heads are parsed with
//! `httparse`, bodies are read by `Content-Length` or chunked transfer coding, connections are
//! kept alive unless the client (or an error) says otherwise.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Largest request head we accept (bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body we accept (bytes).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    /// The request target exactly as sent (path + query).
    pub target: String,
    pub path: String,
    pub query: String,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// When the request head was complete.
    pub head_at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What reading the next request on a connection produced.
pub(crate) enum ReadOutcome {
    Request(Box<Request>),
    /// The peer closed the connection between requests.
    Eof,
    /// The request could not be parsed; answer with this status and close.
    Bad(u16, &'static str),
}

/// A buffered server-side connection.
pub(crate) struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn { stream, buf: Vec::with_capacity(8192) }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Makes sure at least `n` bytes are buffered; false on EOF.
    fn want(&mut self, n: usize) -> io::Result<bool> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes one CRLF (or LF) terminated line, without the terminator.
    fn take_line(&mut self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.len() > limit || self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads the next request (head and body).
    pub fn read_request(&mut self) -> io::Result<ReadOutcome> {
        let (head_len, method, target, minor, headers) = loop {
            // Tolerate stray CRLFs between pipelined requests (RFC 9112 2.2).
            while self.buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
                self.buf.remove(0);
            }
            if !self.buf.is_empty() {
                let mut raw = [httparse::EMPTY_HEADER; 100];
                let mut req = httparse::Request::new(&mut raw);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let mut headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len());
                        for h in req.headers.iter() {
                            let value = match std::str::from_utf8(h.value) {
                                Ok(v) => v.trim().to_string(),
                                Err(_) => String::from_utf8_lossy(h.value).trim().to_string(),
                            };
                            headers.push((h.name.to_ascii_lowercase(), value));
                        }
                        let method = req.method.unwrap_or("").to_string();
                        let target = req.path.unwrap_or("").to_string();
                        break (n, method, target, req.version.unwrap_or(1), headers);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD {
                            return Ok(ReadOutcome::Bad(431, "request head too large"));
                        }
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        return Ok(ReadOutcome::Bad(431, "too many header fields"));
                    }
                    Err(_) => return Ok(ReadOutcome::Bad(400, "malformed request")),
                }
            }
            if self.fill()? == 0 {
                return Ok(if self.buf.is_empty() {
                    ReadOutcome::Eof
                } else {
                    ReadOutcome::Bad(400, "truncated head")
                });
            }
        };
        let head_at = Instant::now();
        self.buf.drain(..head_len);

        let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let connection = get("connection").unwrap_or_default().to_ascii_lowercase();
        let keep_alive = if minor == 0 {
            connection.split(',').any(|t| t.trim() == "keep-alive")
        } else {
            !connection.split(',').any(|t| t.trim() == "close")
        };
        let chunked = get("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let length = match get("content-length") {
            Some(v) => match v.parse::<usize>() {
                Ok(n) => Some(n),
                Err(_) => return Ok(ReadOutcome::Bad(400, "bad Content-Length")),
            },
            None => None,
        };
        if length.unwrap_or(0) > MAX_BODY {
            return Ok(ReadOutcome::Bad(413, "request body too large"));
        }
        if (chunked || length.unwrap_or(0) > 0) && get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = if chunked {
            match self.read_chunked()? {
                Ok(b) => b,
                Err((status, msg)) => return Ok(ReadOutcome::Bad(status, msg)),
            }
        } else if let Some(n) = length {
            if !self.want(n)? {
                return Ok(ReadOutcome::Bad(400, "truncated body"));
            }
            self.buf.drain(..n).collect()
        } else {
            Vec::new()
        };

        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (target.clone(), String::new()),
        };
        Ok(ReadOutcome::Request(Box::new(Request { method, target, path, query, headers, body, keep_alive, head_at })))
    }

    #[allow(clippy::type_complexity)]
    fn read_chunked(&mut self) -> io::Result<Result<Vec<u8>, (u16, &'static str)>> {
        let mut body = Vec::new();
        loop {
            let Some(line) = self.take_line(4096)? else { return Ok(Err((400, "bad chunk"))) };
            let line = String::from_utf8_lossy(&line);
            let size_text = line.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else { return Ok(Err((400, "bad chunk size"))) };
            if size == 0 {
                // Trailer section, ended by an empty line.
                loop {
                    match self.take_line(MAX_HEAD)? {
                        Some(l) if l.is_empty() => return Ok(Ok(body)),
                        Some(_) => continue,
                        None => return Ok(Err((400, "bad chunk trailer"))),
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Ok(Err((413, "request body too large")));
            }
            if !self.want(size + 2)? {
                return Ok(Err((400, "truncated chunk")));
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, headers: Vec::new(), body }
    }

    pub fn text(status: u16, text: impl Into<String>) -> Response {
        let mut t = text.into();
        if !t.ends_with('\n') {
            t.push('\n');
        }
        Response::new(status, "text/plain; charset=utf-8", t.into_bytes())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The status line and header block. 1xx, 204 and 304 answers carry no body, so they get
    /// neither `Content-Type` nor `Content-Length` (RFC 9110 8.6).
    pub fn head_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut h = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: Apache (etd-emulator)\r\n",
            self.status,
            reason(self.status),
            httpdate::fmt_http_date(SystemTime::now()),
        );
        if !matches!(self.status, 100..=199 | 204 | 304) {
            h.push_str(&format!("Content-Type: {}\r\nContent-Length: {}\r\n", self.content_type, self.body.len()));
        }
        for (k, v) in &self.headers {
            h.push_str(k);
            h.push_str(": ");
            h.push_str(v);
            h.push_str("\r\n");
        }
        h.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
        h.into_bytes()
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Waits (up to `limit`) until the peer has acknowledged every byte written to `stream`, so a
/// reset that follows discards nothing the test counts as sent (Linux: `SIOCOUTQ` is the bytes
/// not yet acknowledged). Elsewhere it waits a short while instead.
pub(crate) fn wait_acknowledged(stream: &TcpStream, limit: std::time::Duration) {
    let until = std::time::Instant::now() + limit;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        loop {
            let mut unacked: libc::c_int = 0;
            // SAFETY: SIOCOUTQ writes one int through the pointer; the fd is open for the call.
            let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unacked) };
            if rc != 0 || unacked == 0 || std::time::Instant::now() >= until {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = stream;
        std::thread::sleep(limit.min(std::time::Duration::from_millis(50)).min(until - std::time::Instant::now()));
    }
}

/// Closes a socket so that the peer sees a reset (SO_LINGER with a zero timeout).
pub(crate) fn abort(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}

/// The address to connect to for a listener's address (`0.0.0.0` and `::` become loopback).
pub(crate) fn connect_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// The accepting side of an emulator: each connection is served on its own thread; dropping it
/// stops accepting and closes the connections still open.
pub(crate) struct Acceptor {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    open: Arc<Mutex<HashMap<u64, TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Accept on `listener`; `serve` gets each connection on a thread named `{name}-conn-N`.
    pub fn start(
        listener: TcpListener,
        name: &str,
        serve: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> io::Result<Acceptor> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let (stop, conns, prefix) = (stopping.clone(), open.clone(), name.to_string());
        let serve = Arc::new(serve);
        let thread = std::thread::Builder::new().name(format!("{name}-accept")).spawn(move || {
            for (id, stream) in (0u64..).zip(listener.incoming()) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if let Ok(c) = stream.try_clone() {
                    conns.lock().unwrap().insert(id, c);
                }
                let (serve, conns2) = (serve.clone(), conns.clone());
                let spawned = std::thread::Builder::new().name(format!("{prefix}-conn-{id}")).spawn(move || {
                    serve(stream);
                    conns2.lock().unwrap().remove(&id);
                });
                if spawned.is_err() {
                    conns.lock().unwrap().remove(&id);
                }
            }
        })?;
        Ok(Acceptor { addr, stopping, open, thread: Some(thread) })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&connect_addr(self.addr), Duration::from_secs(1));
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        for (_, c) in self.open.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Requests being answered now, and the most seen at once (the emulators' politeness meter).
#[derive(Default)]
pub(crate) struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    /// One more request in flight until the guard is dropped; the count including it.
    pub fn enter(&self) -> (InFlightGuard<'_>, usize) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        (InFlightGuard(self), now)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// The peak restarts from the requests in flight now.
    pub fn reset_peak(&self) {
        self.peak.store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// Leaves [`InFlight`] when dropped.
pub(crate) struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}
