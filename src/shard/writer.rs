//! `ShardWriter`: one thread per shard that owns its tar (and zstd) stream. Samples arrive in
//! batches over a bounded channel; the file's size, sha256, crc32c (and md5 if asked) are computed
//! while it is written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use anyhow::Context;

use super::manifest::ShardEntry;
use crate::sample::Fields;

/// Batches queued between the packer and one shard's writer thread.
const CHANNEL_BATCHES: usize = 1;
/// A batch is sent once it holds this many tar bytes (or [`BATCH_SAMPLES`] samples): the
/// writer thread wakes once per batch, not once per small sample. (At 128 KiB / 64 samples the
/// hand-offs of small ATLAS-VAR samples left a fifth of two cores idle while shards were written.)
const BATCH_BYTES: u64 = 1 << 20;
const BATCH_SAMPLES: usize = 1024;
/// tar block size.
pub const TAR_BLOCK: u64 = 512;
/// Largest size or mtime a ustar header's 11 octal digits hold.
pub const USTAR_MAX: u64 = 0o77777777777;

/// Bytes one sample takes in an uncompressed tar: a header block per member plus padded data.
pub fn tar_bytes(fields: &Fields) -> u64 {
    fields.iter().map(|(_, data)| TAR_BLOCK + (data.len() as u64).div_ceil(TAR_BLOCK) * TAR_BLOCK).sum()
}

/// A sample ready to pack.
pub struct PackedSample {
    pub key: String,
    /// The original id (recorded by parts; shards do not hold it).
    pub id: String,
    pub fields: Fields,
}

/// Settings shared by every shard of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct TarSettings {
    pub mtime: u64,
    /// zstd level, or None for a plain `.tar`.
    pub zstd_level: Option<i32>,
    /// zstd worker threads per shard (at least 1; the output does not depend on it).
    pub zstd_workers: u32,
    /// Whether the manifest records each shard's md5 (`shard.md5`).
    pub md5: bool,
}

/// A shard being written on its own thread.
pub struct ShardWriter {
    tx: Option<SyncSender<Vec<PackedSample>>>,
    /// The batch being filled, and its tar bytes.
    batch: Vec<PackedSample>,
    batch_bytes: u64,
    handle: Option<JoinHandle<anyhow::Result<ShardEntry>>>,
    path: PathBuf,
}

impl ShardWriter {
    /// Start writing `dir/name`.
    pub fn spawn(dir: &Path, name: String, split: String, settings: TarSettings) -> anyhow::Result<Self> {
        let path = dir.join(&name);
        let (tx, rx) = sync_channel::<Vec<PackedSample>>(CHANNEL_BATCHES);
        let thread_path = path.clone();
        let handle = std::thread::Builder::new()
            .name(format!("shard {name}"))
            .spawn(move || write_shard(&thread_path, name, split, settings, rx.into_iter().flatten()))
            .context("cannot start a shard writer thread")?;
        Ok(ShardWriter { tx: Some(tx), batch: Vec::new(), batch_bytes: 0, handle: Some(handle), path })
    }

    /// Queue a sample of `bytes` tar bytes ([`tar_bytes`]; blocks while the writer is
    /// CHANNEL_BATCHES batches behind).
    pub fn send(&mut self, sample: PackedSample, bytes: u64) -> anyhow::Result<()> {
        self.batch_bytes += bytes;
        self.batch.push(sample);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_SAMPLES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let tx = self.tx.as_ref().context("shard writer already finished")?;
        if tx.send(batch).is_err() {
            // The writer thread stopped early: its error says why.
            return Err(self.join().err().unwrap_or_else(|| anyhow::anyhow!("shard writer stopped")));
        }
        Ok(())
    }

    /// Send what is batched and close the stream: the writer thread finishes the file (the end
    /// of the compression, the digests, the fsync) on its own, and frees its compressor, while
    /// the next shard is written.
    pub fn close_input(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.tx.take();
        Ok(())
    }

    /// Close the stream and wait for the file to be complete and synced.
    pub fn finish(mut self) -> anyhow::Result<ShardEntry> {
        self.close_input()?;
        self.join()
    }

    fn join(&mut self) -> anyhow::Result<ShardEntry> {
        self.tx.take();
        let handle = self.handle.take().context("shard writer already joined")?;
        match handle.join() {
            Ok(result) => result.with_context(|| format!("cannot write shard {}", self.path.display())),
            Err(_) => Err(anyhow::anyhow!("shard writer for {} panicked", self.path.display())),
        }
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn write_shard(
    path: &Path,
    name: String,
    split: String,
    settings: TarSettings,
    samples: impl Iterator<Item = PackedSample>,
) -> anyhow::Result<ShardEntry> {
    // Written around the page cache where the file system allows it (see `DirectFile`).
    let file = crate::fsx::DirectFile::create(path)?;
    let mut hashing = crate::digest::HashingWriter::with_md5(file, settings.md5);
    let count = match settings.zstd_level {
        None => write_tar(&mut hashing, samples, settings.mtime)?,
        Some(level) => {
            // The same bytes for any worker count (see `ZstdWriter::new`), so the output stays
            // identical on any machine while compression uses every core.
            let mut enc = super::compress::ZstdWriter::new(&mut hashing, level, settings.zstd_workers)?;
            let n = write_tar(&mut enc, samples, settings.mtime)?;
            enc.finish()?;
            n
        }
    };
    let (file, digests) = hashing.finish()?;
    file.finish()?.sync_all()?;
    Ok(ShardEntry {
        name,
        split,
        samples: count,
        bytes: digests.size,
        sha256: digests.sha256,
        md5: digests.md5,
        crc32c: digests.crc32c,
    })
}

/// Write samples as a plain ustar archive; returns the sample count.
fn write_tar<W: Write>(out: W, samples: impl Iterator<Item = PackedSample>, mtime: u64) -> anyhow::Result<u64> {
    let mut builder = tar::Builder::new(out);
    let mut count = 0;
    for sample in samples {
        for (field, data) in &sample.fields {
            let header = ustar_header(&format!("{}.{field}", sample.key), data.len() as u64, mtime)?;
            builder.append(&header, data.as_slice())?;
        }
        count += 1;
    }
    builder.into_inner()?.flush()?;
    Ok(count)
}

/// A plain ustar header: regular file, mode 0644, uid/gid 0, empty user/group names.
pub fn ustar_header(name: &str, size: u64, mtime: u64) -> anyhow::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    if name.len() > crate::keys::MAX_MEMBER_NAME {
        anyhow::bail!("member name `{name}` is longer than 100 bytes");
    }
    // Larger values would need GNU base-256 fields, which plain ustar does not have.
    if size > USTAR_MAX {
        anyhow::bail!("member `{name}` is {size} bytes; a plain ustar member holds at most {USTAR_MAX} (8 GiB)");
    }
    if mtime > USTAR_MAX {
        anyhow::bail!("mtime {mtime} does not fit a ustar header (at most {USTAR_MAX})");
    }
    // Names up to 100 bytes fit the name field whole; no prefix, no GNU/pax extension.
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_plain_ustar() {
        let h = ustar_header("abc.npy", 10, 7).unwrap();
        let bytes = h.as_bytes();
        assert_eq!(&bytes[257..263], b"ustar\0");
        assert_eq!(&bytes[263..265], b"00");
        assert_eq!(&bytes[265..297], &[0u8; 32]); // uname empty
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.mtime().unwrap(), 7);
        assert_eq!(h.path().unwrap().to_str(), Some("abc.npy"));
        let long = format!("{}.npy", "k".repeat(96));
        assert_eq!(ustar_header(&long, 1, 0).unwrap().path().unwrap().to_str().unwrap(), long);
        assert!(ustar_header(&format!("{}.npy", "k".repeat(97)), 1, 0).is_err());
        assert!(ustar_header("a.npy", USTAR_MAX + 1, 0).is_err());
        assert!(ustar_header("a.npy", 1, USTAR_MAX + 1).is_err());
    }

    #[test]
    fn tar_size_accounting() {
        let fields = vec![("a".to_string(), vec![0u8; 1]), ("b".to_string(), vec![0u8; 512])];
        assert_eq!(tar_bytes(&fields), 512 + 512 + 512 + 512);
        let mut out = Vec::new();
        write_tar(&mut out, vec![PackedSample { key: "k".into(), id: "k".into(), fields }].into_iter(), 0).unwrap();
        assert_eq!(out.len() as u64, 2048 + 1024);
    }
}
