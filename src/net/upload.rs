//! The body of an upload: the file read a chunk at a time as the connection takes it, with the
//! size and crc32c of what was handed to the connection counted on the way, so the publisher can
//! compare what it actually sent with the manifest (ORIGINS.md: "values computed while streaming").

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from the file per chunk of the body.
const CHUNK: usize = 256 << 10;

/// What an upload's body handed to the connection (its last attempt).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub size: u64,
    pub crc32c: u32,
}

/// Where a request records what its upload sent (see [`crate::net::client::Request::record_sent`]).
pub type SentSlot = Arc<Mutex<Sent>>;

/// `len` bytes of `file` as a stream of chunks; a file that ends early is an error (the
/// `Content-Length` promised `len`), a file that grew is sent up to `len`.
pub(super) struct UploadBody {
    file: tokio::fs::File,
    left: u64,
    buf: Box<[u8]>,
    sent: Option<SentSlot>,
}

impl UploadBody {
    /// The body of one attempt; `sent` starts again from nothing.
    pub(super) fn new(file: tokio::fs::File, len: u64, sent: Option<SentSlot>) -> Self {
        if let Some(slot) = &sent {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Sent::default();
        }
        let buf = vec![0u8; len.min(CHUNK as u64) as usize].into_boxed_slice();
        UploadBody { file, left: len, buf, sent }
    }
}

impl futures_core::Stream for UploadBody {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = this.left.min(this.buf.len() as u64) as usize;
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended {} bytes early while it was sent", this.left),
            )))),
            Poll::Ready(Ok(())) => {
                let chunk = rb.filled();
                this.left -= chunk.len() as u64;
                if let Some(slot) = &this.sent {
                    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                    s.size += chunk.len() as u64;
                    s.crc32c = crc32c::crc32c_append(s.crc32c, chunk);
                }
                Poll::Ready(Some(Ok(bytes::Bytes::copy_from_slice(chunk))))
            }
        }
    }
}
