//! Digests of bytes as they are written or read: size, sha256, md5 and crc32c.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use fs_err as fs;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Bytes read at once by `hash_file`.
const HASH_BUF: usize = 1 << 20;

thread_local! {
    /// `hash_file`'s read buffer, one per thread and kept: a fresh zeroed 1 MiB per file was a
    /// fifth of `etd fetch`'s CPU on a folder of 20 KB files (bench/README.md).
    static HASH_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hash a file in one streaming pass: (size, sha256).
pub fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    HASH_BUFFER.with_borrow_mut(|buf| -> anyhow::Result<()> {
        if buf.len() < HASH_BUF {
            buf.resize(HASH_BUF, 0);
        }
        loop {
            let n = file.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
    })?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// The digests of everything written through a `HashingWriter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub sha256: String,
    /// None when the writer was made without md5 ([`HashingWriter::with_md5`]).
    pub md5: Option<String>,
    pub crc32c: String,
}

/// Bytes handed to the digest threads at once.
const DIGEST_CHUNK: usize = 1 << 20;
/// Chunks queued per digest thread (bounds memory to a few MiB per shard).
const DIGEST_QUEUE: usize = 4;

/// Passes bytes through while computing size, sha256, crc32c and (unless made
/// [`with_md5`](Self::with_md5) `false`) md5. Bytes are gathered into 1 MiB chunks; each full
/// chunk is written to the inner writer in one call (so the inner writer needs no buffer of its
/// own) and handed to the digest threads (sha256 + crc32c; md5) over bounded channels, so the
/// digests stay off the writer's critical path. Chunk buffers are reused once every thread is
/// done with them (no fresh allocation, no page faults, per MiB).
///
/// The threads start with the first chunk handed over: less than 1 MiB in all (a manifest, a
/// small shard) is digested on the caller's thread at `finish`, since starting and joining
/// threads costs more than hashing a few KiB.
pub struct HashingWriter<W> {
    inner: W,
    size: u64,
    md5: bool,
    pending: Vec<u8>,
    /// Chunks handed to the digest threads, oldest first; reused when no thread holds them.
    sent: VecDeque<Arc<Vec<u8>>>,
    /// The digest threads (sha256 + crc32c, then md5 if computed), once started.
    threads: Option<Vec<DigestThread>>,
}

/// A thread folding chunks into digests.
struct DigestThread {
    tx: Option<SyncSender<Arc<Vec<u8>>>>,
    handle: Option<JoinHandle<Vec<String>>>,
}

impl DigestThread {
    fn spawn(
        name: &str,
        fold: impl FnOnce(std::sync::mpsc::Receiver<Arc<Vec<u8>>>) -> Vec<String> + Send + 'static,
    ) -> Self {
        let (tx, rx) = sync_channel(DIGEST_QUEUE);
        let handle = std::thread::Builder::new().name(name.into()).spawn(move || fold(rx)).ok();
        DigestThread { tx: Some(tx), handle }
    }

    fn send(&self, chunk: &Arc<Vec<u8>>) {
        if let Some(tx) = &self.tx {
            // A closed channel means the thread is gone; `finish` then reports it.
            let _ = tx.send(Arc::clone(chunk));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.tx.take();
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

/// md5 of all chunks (folded on its own thread).
fn fold_md5(chunks: impl IntoIterator<Item = Arc<Vec<u8>>>) -> Vec<String> {
    let mut h = Md5::new();
    for chunk in chunks {
        h.update(chunk.as_slice());
    }
    vec![hex::encode(h.finalize())]
}

/// sha256 and CRC-32C of all chunks (folded on its own thread).
fn fold_sha_crc(chunks: impl IntoIterator<Item = Arc<Vec<u8>>>) -> Vec<String> {
    let (mut h, mut crc) = (Sha256::new(), 0u32);
    for chunk in chunks {
        h.update(chunk.as_slice());
        crc = crc32c::crc32c_append(crc, &chunk);
    }
    vec![hex::encode(h.finalize()), format!("{crc:08x}")]
}

impl<W> HashingWriter<W> {
    /// Size, sha256, crc32c and md5.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, size: 0, md5: true, pending: Vec::new(), sent: VecDeque::new(), threads: None }
    }

    /// [`new`](Self::new) if `md5`, else size, sha256 and crc32c only: md5 has no hardware
    /// help and costs more CPU than the other two together (shards record it only when a
    /// recipe asks, `shard.md5`).
    pub fn with_md5(inner: W, md5: bool) -> Self {
        HashingWriter { md5, ..Self::new(inner) }
    }

    /// An empty chunk buffer: the oldest sent one if every thread is done with it, else a new one.
    fn next_buffer(&mut self) -> Vec<u8> {
        if self.sent.len() > 2 * DIGEST_QUEUE + 2 {
            self.sent.pop_front();
        }
        if self.sent.front().is_some_and(|c| Arc::strong_count(c) == 1) {
            if let Some(Ok(mut buf)) = self.sent.pop_front().map(Arc::try_unwrap) {
                buf.clear();
                return buf;
            }
        }
        Vec::with_capacity(DIGEST_CHUNK)
    }
}

impl<W: Write> HashingWriter<W> {
    pub fn finish(mut self) -> io::Result<(W, Digests)> {
        let folded: Vec<String> = if self.threads.is_none() {
            // Less than one chunk in all: digested here.
            self.inner.write_all(&self.pending)?;
            let chunk = [Arc::new(std::mem::take(&mut self.pending))];
            let mut folded = fold_sha_crc(chunk.clone());
            if self.md5 {
                folded.extend(fold_md5(chunk));
            }
            folded
        } else {
            self.flush_pending()?;
            self.threads.take().into_iter().flatten().flat_map(DigestThread::finish).collect()
        };
        let (sha256, crc32c, md5) = match (folded.as_slice(), self.md5) {
            ([sha256, crc32c], false) => (sha256, crc32c, None),
            ([sha256, crc32c, md5], true) => (sha256, crc32c, Some(md5.clone())),
            _ => return Err(io::Error::other("a digest thread failed")),
        };
        Ok((self.inner, Digests { size: self.size, sha256: sha256.clone(), md5, crc32c: crc32c.clone() }))
    }

    /// Write the gathered bytes to the inner writer and hand them to the digest threads.
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.inner.write_all(&self.pending)?;
        let next = self.next_buffer();
        let chunk = Arc::new(std::mem::replace(&mut self.pending, next));
        let md5 = self.md5;
        let threads = self.threads.get_or_insert_with(|| {
            let mut threads = vec![DigestThread::spawn("sha256", fold_sha_crc)];
            if md5 {
                threads.push(DigestThread::spawn("md5", fold_md5));
            }
            threads
        });
        for t in threads.iter() {
            t.send(&chunk);
        }
        self.sent.push_back(chunk);
        Ok(())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = rest.len().min(DIGEST_CHUNK - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            self.size += take as u64;
            rest = &rest[take..];
            if self.pending.len() == DIGEST_CHUNK {
                self.flush_pending()?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_over_many_chunks_match_one_pass() {
        let data: Vec<u8> = (0..(3 * DIGEST_CHUNK + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = HashingWriter::new(Vec::new());
        for piece in data.chunks(100_003) {
            w.write_all(piece).unwrap();
        }
        let (out, d) = w.finish().unwrap();
        assert_eq!(out, data);
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(d.md5, Some(hex::encode(Md5::digest(&data))));
        assert_eq!(d.crc32c, format!("{:08x}", crc32c::crc32c(&data)));
        assert_eq!(d.size, data.len() as u64);
    }

    #[test]
    fn reused_chunk_buffers_hold_only_their_own_bytes() {
        // 20 chunks, each a different byte pattern: a reused buffer with stale bytes would show.
        let data: Vec<u8> = (0..(20 * DIGEST_CHUNK + 7)).map(|i| ((i / DIGEST_CHUNK) * 31 + i % 13) as u8).collect();
        let mut w = HashingWriter::new(Vec::new());
        for piece in data.chunks(DIGEST_CHUNK / 3 + 1) {
            w.write_all(piece).unwrap();
        }
        let (out, d) = w.finish().unwrap();
        assert!(out == data);
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(d.md5, Some(hex::encode(Md5::digest(&data))));
    }

    #[test]
    fn errors_of_the_inner_writer_are_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = HashingWriter::new(Full);
        w.write_all(b"abc").unwrap(); // gathered, not yet written
        assert_eq!(w.finish().err().unwrap().to_string(), "disk full");
        let mut w = HashingWriter::new(Full);
        assert!(w.write_all(&vec![0u8; DIGEST_CHUNK]).is_err());
    }

    #[test]
    fn small_and_chunk_sized_inputs_have_the_digests_of_one_pass() {
        // Below one chunk (digested at `finish`), exactly one chunk (handed to the threads, nothing
        // left at `finish`), and one chunk and a byte.
        for len in [0, 1, 4096, DIGEST_CHUNK - 1, DIGEST_CHUNK, DIGEST_CHUNK + 1] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let mut w = HashingWriter::new(Vec::new());
            w.write_all(&data).unwrap();
            assert_eq!(w.threads.is_some(), len >= DIGEST_CHUNK, "{len} bytes");
            let (out, d) = w.finish().unwrap();
            assert!(out == data, "{len} bytes");
            assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)), "{len} bytes");
            assert_eq!(d.md5, Some(hex::encode(Md5::digest(&data))), "{len} bytes");
            assert_eq!(d.crc32c, format!("{:08x}", crc32c::crc32c(&data)), "{len} bytes");
            assert_eq!(d.size, len as u64);
        }
    }

    #[test]
    fn without_md5_the_other_digests_are_the_same() {
        for len in [5, 2 * DIGEST_CHUNK + 3] {
            let data: Vec<u8> = (0..len).map(|i| (i * 11 % 253) as u8).collect();
            let mut all = HashingWriter::new(Vec::new());
            let mut some = HashingWriter::with_md5(Vec::new(), false);
            all.write_all(&data).unwrap();
            some.write_all(&data).unwrap();
            let ((a_out, a), (s_out, s)) = (all.finish().unwrap(), some.finish().unwrap());
            assert!(a_out == data && s_out == data, "{len} bytes");
            assert_eq!(s.md5, None, "{len} bytes");
            assert!(a.md5.is_some(), "{len} bytes");
            assert_eq!(Digests { md5: None, ..a }, s, "{len} bytes");
        }
    }

    #[test]
    fn digests_of_known_bytes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"123456789").unwrap();
        let (_, d) = w.finish().unwrap();
        assert_eq!(d.crc32c, "e3069283"); // CRC-32C check value
        assert_eq!(d.md5.as_deref(), Some("25f9e794323b453885f5181f1b624d0b"));
        assert_eq!(d.size, 9);
    }
}
