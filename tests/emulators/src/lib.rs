//! Local, deterministic emulators of the archives `etd` talks to, for tests and benchmarks.
//!
//! Each emulator is a small std-thread HTTP/1.1 server (one thread per connection, keep-alive,
//! `Content-Length` and chunked request bodies) that follows the protocol notes in
//! `docs/archives.md`, refuses what the real server would refuse, can inject deterministic faults,
//! and meters how politely a client behaved.
//!
//! - [`astrocut`]: MAST's TESScut service (`sector` look-ups, `astrocut` zips of target-pixel files).
//! - [`ps1`]: the Pan-STARRS1 image cutout service at MAST (`ps1filenames.py`, `fitscut.cgi`).
//! - [`atlas_fp`]: the ATLAS forced-photometry server (`/forcedphot/`: token, task queue, results).
//! - [`atlas_var`]: the ATLAS-VAR DR1 object-catalogue FITS table (MAST) and the declination-band
//!   light-curve CSV files (UH re-packaging), as static files with byte ranges.

pub mod astrocut;
pub mod atlas_fp;
pub mod atlas_var;
pub mod fixtures;
pub mod hostile;
mod http;
pub mod ps1;
pub mod synthetic;
