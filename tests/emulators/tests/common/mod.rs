//! A tiny HTTP/1.1 test client on std sockets (no client crates).
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn host(base: &str) -> &str {
    base.strip_prefix("http://").unwrap()
}

pub fn connect(base: &str) -> BufReader<TcpStream> {
    let s = TcpStream::connect(host(base)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    BufReader::new(s)
}

/// Reads one response (head + Content-Length body) from a connection.
pub fn read_response(r: &mut BufReader<TcpStream>) -> io::Result<Resp> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut raw);
    resp.parse(&head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let status = resp.code.unwrap();
    let headers: Vec<(String, String)> =
        resp.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Resp { status, headers, body })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn send_raw(base: &str, raw: &[u8]) -> io::Result<Resp> {
    let mut c = connect(base);
    c.get_mut().write_all(raw)?;
    read_response(&mut c)
}

pub fn try_get_ua(base: &str, target: &str, ua: &str) -> io::Result<Resp> {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n", host(base));
    send_raw(base, raw.as_bytes())
}

pub fn try_get(base: &str, target: &str) -> io::Result<Resp> {
    try_get_ua(base, target, "etd-emulator-tests/1")
}

pub fn get(base: &str, target: &str) -> Resp {
    try_get(base, target).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// A multipart/form-data body with the given text fields and one `file` part.
pub fn multipart(fields: &[(&str, &str)], file: &str) -> (String, Vec<u8>) {
    let boundary = "----etdtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\nContent-Type: text/plain\r\n\r\n{file}\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The rows (split on spaces) of a ps1filenames table, after checking its header line.
pub fn table_rows(body: &str) -> Vec<Vec<String>> {
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("projcell subcell ra dec filter mjd type filename shortname badflag"));
    lines.map(|l| l.split(' ').map(str::to_string).collect()).collect()
}
