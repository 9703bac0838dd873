//! Local, deterministic emulators of the archives `etd` talks to, for tests and benchmarks.
//!
//! Each emulator is a small std-thread HTTP/1.1 server (one thread per connection, keep-alive,
//! `Content-Length` and chunked request bodies) that follows the protocol notes in
//! `ARCHIVES.md`, refuses what the real server would refuse, can inject deterministic faults,
//! and meters how politely a client behaved.
//!
//! - [`ps1`]: the Pan-STARRS1 image cutout service at MAST (`ps1filenames.py`, `fitscut.cgi`).
//! - [`atlas_fp`]: the ATLAS forced-photometry server (`/forcedphot/`: token, task queue, results).

pub mod atlas_fp;
mod http;
pub mod ps1;
