//! Digests of bytes as they are written or read: size, sha256, md5 and crc32c.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use fs_err as fs;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Hash a file in one streaming pass: (size, sha256).
pub fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// The digests of everything written through a `HashingWriter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub sha256: String,
    pub md5: String,
    pub crc32c: String,
}

/// Bytes handed to the digest threads at once.
const DIGEST_CHUNK: usize = 1 << 20;
/// Chunks queued per digest thread (bounds memory to a few MiB per shard).
const DIGEST_QUEUE: usize = 4;

/// Passes bytes through while computing size, sha256, md5 and crc32c. The digests run on two
/// threads of their own (md5; sha256 + crc32c), fed 1 MiB chunks over bounded channels, so they
/// stay off the writer's critical path.
pub struct HashingWriter<W> {
    inner: W,
    size: u64,
    pending: Vec<u8>,
    md5: Option<DigestThread>,
    sha: Option<DigestThread>,
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

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        let md5 = DigestThread::spawn("md5", |rx| {
            let mut h = Md5::new();
            for chunk in rx {
                h.update(chunk.as_slice());
            }
            vec![hex::encode(h.finalize())]
        });
        let sha = DigestThread::spawn("sha256", |rx| {
            let (mut h, mut crc) = (Sha256::new(), 0u32);
            for chunk in rx {
                h.update(chunk.as_slice());
                crc = crc32c::crc32c_append(crc, &chunk);
            }
            vec![hex::encode(h.finalize()), format!("{crc:08x}")]
        });
        HashingWriter { inner, size: 0, pending: Vec::with_capacity(DIGEST_CHUNK), md5: Some(md5), sha: Some(sha) }
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let chunk = Arc::new(std::mem::replace(&mut self.pending, Vec::with_capacity(DIGEST_CHUNK)));
        for t in [&self.md5, &self.sha].into_iter().flatten() {
            t.send(&chunk);
        }
    }

    pub fn finish(mut self) -> io::Result<(W, Digests)> {
        self.flush_pending();
        let md5 = self.md5.take().map(DigestThread::finish).unwrap_or_default();
        let sha = self.sha.take().map(DigestThread::finish).unwrap_or_default();
        match (md5.as_slice(), sha.as_slice()) {
            ([md5], [sha256, crc32c]) => {
                let d = Digests { size: self.size, sha256: sha256.clone(), md5: md5.clone(), crc32c: crc32c.clone() };
                Ok((self.inner, d))
            }
            _ => Err(io::Error::other("a digest thread failed")),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = &buf[..n];
        self.size += n as u64;
        let mut rest = done;
        while !rest.is_empty() {
            let take = rest.len().min(DIGEST_CHUNK - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == DIGEST_CHUNK {
                self.flush_pending();
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
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
        assert_eq!(d.md5, hex::encode(Md5::digest(&data)));
        assert_eq!(d.crc32c, format!("{:08x}", crc32c::crc32c(&data)));
        assert_eq!(d.size, data.len() as u64);
    }

    #[test]
    fn digests_of_known_bytes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"123456789").unwrap();
        let (_, d) = w.finish().unwrap();
        assert_eq!(d.crc32c, "e3069283"); // CRC-32C check value
        assert_eq!(d.md5, "25f9e794323b453885f5181f1b624d0b");
        assert_eq!(d.size, 9);
    }
}
