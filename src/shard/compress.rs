//! `ZstdWriter`: one zstd frame written through libzstd's streaming API with the parameters
//! shards need, one of which the `zstd` crate does not expose (see [`ZstdWriter::new`]).

use std::io::{self, Write};
use std::ptr::NonNull;

use zstd_sys::{ZSTD_CCtx, ZSTD_EndDirective, ZSTD_cParameter, ZSTD_inBuffer, ZSTD_outBuffer};

/// A zstd frame being written to `W`: bytes handed to `write` are compressed (by `workers`
/// threads of libzstd's own) and the compressed bytes written to `W` as they come; the frame is
/// complete after [`finish`](Self::finish). Dropped unfinished, the frame is left incomplete.
pub struct ZstdWriter<W: Write> {
    cctx: NonNull<ZSTD_CCtx>,
    out: Vec<u8>,
    inner: W,
}

impl<W: Write> ZstdWriter<W> {
    /// A frame at `level` with a content checksum, compressed by `workers` threads (at least 1:
    /// zstd's multi-threaded mode writes the same bytes for any count of workers >= 1, so
    /// shards are identical on any machine), and without zstd 1.5.7's pre-splitter
    /// (`ZSTD_c_blockSplitterLevel` 1: blocks are cut at 128 KiB before compression, as zstd
    /// <= 1.5.6 and the `zstd` command of most distributions cut them; at the highest levels,
    /// the btopt strategies and up, zstd's later splitter, after sequences, still splits). By
    /// default the pre-splitter looks for block boundaries in every full block at every level.
    /// At level 3 (measured), on the shard benchmark's 20,000 FITS cutouts it took 1.6 times the
    /// CPU and gave a 0.2% *larger* output, on npy images 1.3 times the CPU and a 0.05% larger
    /// output; on source text it made the output 0.5% smaller at the same CPU, and light curves
    /// came out byte-identical (bench/README.md).
    pub fn new(inner: W, level: i32, workers: u32) -> io::Result<Self> {
        // SAFETY: plain constructor; a null return is handled.
        let cctx = NonNull::new(unsafe { zstd_sys::ZSTD_createCCtx() })
            .ok_or_else(|| io::Error::other("cannot allocate a zstd compression context"))?;
        // SAFETY: a plain function returning a size.
        let out_size = unsafe { zstd_sys::ZSTD_CStreamOutSize() };
        let mut w = ZstdWriter { cctx, out: vec![0; out_size], inner };
        w.set(ZSTD_cParameter::ZSTD_c_compressionLevel, level)?;
        w.set(ZSTD_cParameter::ZSTD_c_checksumFlag, 1)?;
        w.set(ZSTD_cParameter::ZSTD_c_nbWorkers, workers.max(1).min(i32::MAX as u32) as i32)?;
        // ZSTD_c_blockSplitterLevel (experimental in zstd.h, so named by its slot here).
        w.set(ZSTD_cParameter::ZSTD_c_experimentalParam20, 1)?;
        Ok(w)
    }

    fn set(&mut self, param: ZSTD_cParameter, value: i32) -> io::Result<()> {
        // SAFETY: the context is valid until drop; zstd checks the value.
        check(unsafe { zstd_sys::ZSTD_CCtx_setParameter(self.cctx.as_ptr(), param, value) })
            .map_err(|e| io::Error::other(format!("zstd refused parameter {param:?} = {value}: {e}")))
            .map(drop)
    }

    /// One call of `ZSTD_compressStream2` on `input` from `*pos`, the output written to `inner`;
    /// returns what zstd returns (for `e_end`: bytes still to flush).
    fn step(&mut self, input: &[u8], pos: &mut usize, end: ZSTD_EndDirective) -> io::Result<usize> {
        let mut inb = ZSTD_inBuffer { src: input.as_ptr().cast(), size: input.len(), pos: *pos };
        let mut outb = ZSTD_outBuffer { dst: self.out.as_mut_ptr().cast(), size: self.out.len(), pos: 0 };
        // SAFETY: both buffers are valid for their sizes for the call. In multi-threaded mode zstd
        // copies the input it takes into buffers of its own, so nothing is read after the call.
        let left = check(unsafe { zstd_sys::ZSTD_compressStream2(self.cctx.as_ptr(), &mut outb, &mut inb, end) })?;
        *pos = inb.pos;
        self.inner.write_all(&self.out[..outb.pos])?;
        Ok(left)
    }

    /// End the frame (wait for the workers, write the last bytes and the checksum); returns `W`.
    pub fn finish(mut self) -> io::Result<W> {
        let mut pos = 0;
        while self.step(&[], &mut pos, ZSTD_EndDirective::ZSTD_e_end)? != 0 {}
        self.inner.flush()?;
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the context is freed once and `inner`
        // and `out` are moved out exactly once.
        unsafe {
            zstd_sys::ZSTD_freeCCtx(this.cctx.as_ptr());
            drop(std::ptr::read(&this.out));
            Ok(std::ptr::read(&this.inner))
        }
    }
}

impl<W: Write> Write for ZstdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pos = 0;
        while pos < buf.len() {
            self.step(buf, &mut pos, ZSTD_EndDirective::ZSTD_e_continue)?;
        }
        Ok(buf.len())
    }

    /// Flushes `W` only: what zstd holds comes out with later writes or at `finish`. (A zstd
    /// flush would end a block there and so make the bytes depend on when callers flush; this
    /// bends `Write::flush`'s promise so that they do not.)
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for ZstdWriter<W> {
    fn drop(&mut self) {
        // SAFETY: freed once (finish does not drop); this waits for zstd's worker threads.
        unsafe { zstd_sys::ZSTD_freeCCtx(self.cctx.as_ptr()) };
    }
}

/// A zstd return code as a count, or its error name.
fn check(code: usize) -> io::Result<usize> {
    // SAFETY: plain functions of a return code; the name is a static C string.
    unsafe {
        if zstd_sys::ZSTD_isError(code) != 0 {
            let name = std::ffi::CStr::from_ptr(zstd_sys::ZSTD_getErrorName(code));
            return Err(io::Error::other(format!("zstd: {}", name.to_string_lossy())));
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that compress a little, like image data: a smooth signal plus noise.
    fn image_like(n: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n / 4)
            .flat_map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (i % 4096) as f32 / 64.0 + (x % 1000) as f32 / 1000.0;
                v.to_be_bytes()
            })
            .collect()
    }

    /// `data` compressed at level 3 by `workers`, handed over `piece` bytes at a time (with a
    /// `flush` after each piece when `flush`).
    fn compress(data: &[u8], workers: u32, piece: usize, flush: bool) -> Vec<u8> {
        let mut w = ZstdWriter::new(Vec::new(), 3, workers).unwrap();
        for p in data.chunks(piece) {
            w.write_all(p).unwrap();
            if flush {
                w.flush().unwrap();
            }
        }
        w.finish().unwrap()
    }

    #[test]
    fn frames_decode_with_the_zstd_crate_and_do_not_depend_on_workers_writes_or_flushes() {
        // 20 MiB: more than two of zstd's 8 MiB jobs at level 3, so the workers share the frame.
        let data = image_like(20 << 20);
        let one = compress(&data, 1, 1 << 20, false);
        assert!(one.len() < data.len());
        assert_eq!(zstd::stream::decode_all(one.as_slice()).unwrap(), data);
        assert_eq!(compress(&data, 3, 1 << 20, false), one, "same bytes for any worker count");
        assert_eq!(compress(&data, 2, 100_000, true), one, "same bytes for any write sizes and flushes");
        // Magic number, then the frame header descriptor: its bit 2 says a checksum follows.
        assert_eq!(one[..4], [0x28, 0xb5, 0x2f, 0xfd]);
        assert_ne!(one[4] & 0x04, 0, "content checksum flag");
        // Empty input: a valid, empty frame.
        assert_eq!(zstd::stream::decode_all(compress(&[], 1, 1, false).as_slice()).unwrap(), b"");
    }

    #[test]
    fn blocks_are_not_pre_split() {
        // The library's default at level 3 (zstd 1.5.7: pre-splitting) writes other bytes for
        // the same data and settings; both decode to the data.
        let data = image_like(4 << 20);
        let ours = compress(&data, 1, 1 << 20, false);
        let mut default = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        default.include_checksum(true).unwrap();
        default.multithread(1).unwrap();
        default.write_all(&data).unwrap();
        let default = default.finish().unwrap();
        assert_ne!(ours, default, "the library default pre-splits these blocks");
        assert_eq!(zstd::stream::decode_all(default.as_slice()).unwrap(), data);
    }
}
