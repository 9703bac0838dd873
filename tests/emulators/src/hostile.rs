//! Hostile and broken answers, shared by the emulators: a server that never stops sending, drips
//! a byte at a time, sends enormous headers, redirects in circles or to another host, serves an
//! HTML page with status 200, lies about `Content-Length` in either direction, sends JSON that is
//! not UTF-8 or a FITS file whose header declares more data than the body holds.
//!
//! An emulator applies a [`Hostile`] fault to the answers of one kind of request (PS1: cutouts;
//! ATLAS-FP: result files, or task JSON for `bad-utf8-json`; ATLAS-VAR: partition files) whose
//! targets it picks, on every attempt: a hostile server does not mend its ways on a retry.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::str::FromStr;
use std::time::Duration;

use crate::http::Response;

/// One kind of hostile answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// `200`, no `Content-Length`, a body that never ends (until the client hangs up).
    EndlessBody,
    /// The right answer, one byte every [`DRIP_INTERVAL`]: the idle timeout never fires.
    SlowDrip,
    /// A `200` whose head holds a 1 MiB header field.
    HugeHeaders,
    /// `302` to the very same URL, for ever.
    RedirectLoop,
    /// `302` to the same path and query on another origin (`http://host:port`).
    RedirectOtherHost(String),
    /// `200 text/html`: a maintenance page instead of the data.
    Html200,
    /// `Content-Length` half the body's length; the whole body is sent, then the connection closed.
    LengthShort,
    /// `Content-Length` twice the body's length; the body is sent, then the connection closed.
    LengthLong,
    /// JSON whose string values hold bytes that are not UTF-8.
    BadUtf8Json,
    /// A FITS file cut after its header and half its data, with a `Content-Length` that matches
    /// what is sent: the transfer is whole, the file is not.
    TruncatedFits,
}

/// The pause between two bytes of [`Hostile::SlowDrip`].
pub const DRIP_INTERVAL: Duration = Duration::from_millis(300);

/// The length of [`Hostile::HugeHeaders`]'s header field.
pub const HUGE_HEADER: usize = 1 << 20;

/// Every kind's name, as `--fault` takes it (`redirect-other-host=http://HOST:PORT`).
pub const NAMES: &[&str] = &[
    "endless-body",
    "slow-drip",
    "huge-headers",
    "redirect-loop",
    "redirect-other-host=URL",
    "html-200",
    "length-short",
    "length-long",
    "bad-utf8-json",
    "truncated-fits",
];

impl FromStr for Hostile {
    type Err = String;

    fn from_str(s: &str) -> Result<Hostile, String> {
        Ok(match s {
            "endless-body" => Hostile::EndlessBody,
            "slow-drip" => Hostile::SlowDrip,
            "huge-headers" => Hostile::HugeHeaders,
            "redirect-loop" => Hostile::RedirectLoop,
            "html-200" => Hostile::Html200,
            "length-short" => Hostile::LengthShort,
            "length-long" => Hostile::LengthLong,
            "bad-utf8-json" => Hostile::BadUtf8Json,
            "truncated-fits" => Hostile::TruncatedFits,
            _ => match s.strip_prefix("redirect-other-host=") {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    Hostile::RedirectOtherHost(url.trim_end_matches('/').to_string())
                }
                _ => return Err(format!("unknown fault {s:?}; one of {}", NAMES.join(", "))),
            },
        })
    }
}

/// A hostile fault and the targets it hits: those (path and query, as sent) that contain
/// `matching` (`""`: all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostileFault {
    pub kind: Hostile,
    pub matching: String,
}

impl HostileFault {
    /// Every request of the kind the emulator applies it to.
    pub fn all(kind: Hostile) -> HostileFault {
        HostileFault { kind, matching: String::new() }
    }

    /// Whether this fault hits `target`.
    pub fn hits(&self, target: &str) -> bool {
        target.contains(&self.matching)
    }
}

impl FromStr for HostileFault {
    type Err = String;

    /// `KIND` or `KIND@TEXT` (only targets containing TEXT).
    fn from_str(s: &str) -> Result<HostileFault, String> {
        let (kind, matching) = s.split_once('@').unwrap_or((s, ""));
        Ok(HostileFault { kind: kind.parse()?, matching: matching.to_string() })
    }
}

/// The maintenance page [`Hostile::Html200`] serves.
pub const HTML_PAGE: &str =
    "<html><head><title>Service notice</title></head><body>Down for maintenance.</body></html>\n";

/// JSON with bytes that are not UTF-8 in a string value.
pub const BAD_UTF8_JSON: &[u8] = b"{\"url\": \"http://x/\xff\xfe\xfd\", \"finishtimestamp\": \"\xc3\x28\"}";

/// Answer `target` (path and query as sent) with `kind`, in place of `normal`, and close the
/// connection. Returns once the answer is sent or the client hung up.
pub(crate) fn answer(stream: &mut TcpStream, kind: &Hostile, target: &str, normal: &Response) -> io::Result<()> {
    let result = send(stream, kind, target, normal);
    let _ = stream.shutdown(Shutdown::Both);
    match result {
        // The client hanging up on a hostile answer is the point.
        Err(e) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) => Ok(()),
        other => other,
    }
}

fn head(status: u16, content_type: &str, length: Option<usize>, extra: &[(&str, String)]) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status} {}\r\nServer: Apache (etd-emulator)\r\n", crate::http::reason(status));
    if !content_type.is_empty() {
        h.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some(n) = length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("Connection: close\r\n\r\n");
    h.into_bytes()
}

fn send(stream: &mut TcpStream, kind: &Hostile, target: &str, normal: &Response) -> io::Result<()> {
    let ct = normal.content_type;
    match kind {
        Hostile::EndlessBody => {
            stream.write_all(&head(200, ct, None, &[]))?;
            let block = vec![b'A'; 64 * 1024];
            loop {
                stream.write_all(&block)?;
            }
        }
        Hostile::SlowDrip => {
            stream.write_all(&head(200, ct, Some(normal.body.len()), &[]))?;
            for b in &normal.body {
                stream.write_all(std::slice::from_ref(b))?;
                stream.flush()?;
                std::thread::sleep(DRIP_INTERVAL);
            }
            Ok(())
        }
        Hostile::HugeHeaders => {
            let pad = "x".repeat(HUGE_HEADER);
            stream.write_all(&head(200, ct, Some(normal.body.len()), &[("X-Padding", pad)]))?;
            stream.write_all(&normal.body)
        }
        Hostile::RedirectLoop => {
            let body = b"Moved\n";
            stream.write_all(&head(302, "text/plain", Some(body.len()), &[("Location", target.to_string())]))?;
            stream.write_all(body)
        }
        Hostile::RedirectOtherHost(origin) => {
            let body = b"Moved\n";
            let to = format!("{origin}{target}");
            stream.write_all(&head(302, "text/plain", Some(body.len()), &[("Location", to)]))?;
            stream.write_all(body)
        }
        Hostile::Html200 => {
            stream.write_all(&head(200, "text/html; charset=utf-8", Some(HTML_PAGE.len()), &[]))?;
            stream.write_all(HTML_PAGE.as_bytes())
        }
        Hostile::LengthShort => {
            stream.write_all(&head(200, ct, Some(normal.body.len() / 2), &[]))?;
            stream.write_all(&normal.body)
        }
        Hostile::LengthLong => {
            stream.write_all(&head(200, ct, Some(normal.body.len() * 2), &[]))?;
            stream.write_all(&normal.body)
        }
        Hostile::BadUtf8Json => {
            stream.write_all(&head(200, "application/json", Some(BAD_UTF8_JSON.len()), &[]))?;
            stream.write_all(BAD_UTF8_JSON)
        }
        Hostile::TruncatedFits => {
            // The header: 2880-byte blocks up to the one holding END.
            let body = &normal.body;
            let mut end = body.len();
            for (i, card) in body.chunks(80).enumerate() {
                if card.starts_with(b"END ") || card == b"END" {
                    end = ((i * 80) / 2880 + 1) * 2880;
                    break;
                }
            }
            let cut = (end + (body.len().saturating_sub(end)) / 2).min(body.len());
            stream.write_all(&head(200, ct, Some(cut), &[]))?;
            stream.write_all(&body[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_and_others_do_not() {
        for name in NAMES {
            let name = name.replace("=URL", "=http://127.0.0.1:9");
            assert!(name.parse::<Hostile>().is_ok(), "{name}");
        }
        assert!("redirect-other-host".parse::<Hostile>().is_err());
        let e = "slow".parse::<Hostile>().unwrap_err();
        assert!(e.contains("endless-body, slow-drip"), "{e}");
    }

    #[test]
    fn a_fault_hits_the_targets_that_contain_its_text() {
        let f: HostileFault = "html-200@ra=10.5&".parse().unwrap();
        assert_eq!(f.kind, Hostile::Html200);
        assert!(f.hits("/cgi-bin/fitscut.cgi?red=x&ra=10.5&dec=2"));
        assert!(!f.hits("/cgi-bin/fitscut.cgi?red=x&ra=10.55&dec=2"));
        assert!(HostileFault::all(Hostile::SlowDrip).hits("/anything"));
    }
}
