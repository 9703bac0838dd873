//! Target-pixel files written with cfitsio in TESScut's layout, their invented pixel values,
//! and the deflated zip they travel in.

use super::Observation;
use fitsio::images::{ImageDescription, ImageType};
use fitsio::tables::{ColumnDataType, ColumnDescription};
use fitsio::FitsFile;
use std::io::Write;

/// The arrays of one cutout as the emulator makes them (tests compare the shards against these).
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub ny: usize,
    pub nx: usize,
    pub time: Vec<f64>,
    pub cadence: Vec<i32>,
    pub quality: Vec<i32>,
    /// Row-major (cadence, y, x).
    pub flux: Vec<f32>,
    pub flux_err: Vec<f32>,
    pub bkg: Vec<f32>,
    pub aperture: Vec<i32>,
}

/// The pixels of the cutout of (`ra`, `dec`) in sector `sector`, `ny` x `nx`, `cadences` long.
pub fn pixels_of(ra: f64, dec: f64, sector: u32, ny: usize, nx: usize, cadences: usize) -> Pixels {
    let seed = super::fnv1a(format!("{ra}:{dec}").as_bytes());
    let period = 0.5 + (seed % 1000) as f64 / 250.0; // days
    let amplitude = 50.0 + (seed >> 10) as f64 % 400.0;
    let peak = 1000.0 + (seed >> 20) as f64 % 5000.0;
    // Sector n starts about 27.4 days after sector n-1; BTJD of sector 1 starts near 1325.3.
    let t0 = 1325.3 + 27.4 * f64::from(sector - 1);
    let dt = 200.0 / 86400.0 * 9.0; // 30-minute cadences
    let (cy, cx) = ((ny as f64 - 1.0) / 2.0, (nx as f64 - 1.0) / 2.0);
    let mut p = Pixels {
        ny,
        nx,
        time: Vec::with_capacity(cadences),
        cadence: Vec::with_capacity(cadences),
        quality: Vec::with_capacity(cadences),
        flux: Vec::with_capacity(cadences * ny * nx),
        flux_err: Vec::with_capacity(cadences * ny * nx),
        bkg: Vec::with_capacity(cadences * ny * nx),
        aperture: Vec::with_capacity(ny * nx),
    };
    for t in 0..cadences {
        let time = t0 + dt * t as f64;
        p.time.push(time);
        p.cadence.push(4697 + (sector as i32 - 1) * 1400 + t as i32);
        let bad = t == 0;
        p.quality.push(if bad { 32 } else { 0 });
        let star = peak + amplitude * (2.0 * std::f64::consts::PI * time / period).sin();
        for y in 0..ny {
            for x in 0..nx {
                let r2 = (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2);
                let f = star * (-r2 / 2.0).exp() + 20.0 + ((x + 3 * y) % 7) as f64;
                p.flux.push(if bad { f32::NAN } else { f as f32 });
                p.flux_err.push(if bad { f32::NAN } else { (f.abs().sqrt() + 1.0) as f32 });
                p.bkg.push(20.0 + (t % 5) as f32 * 0.5);
            }
        }
    }
    for y in 0..ny {
        for x in 0..nx {
            let r2 = (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2);
            p.aperture.push(if r2 <= 2.0 { 2 + 1 } else { 1 });
        }
    }
    p
}

fn col(
    name: &str,
    typ: ColumnDataType,
    repeat: usize,
) -> fitsio::errors::Result<fitsio::tables::ConcreteColumnDescription> {
    ColumnDescription::new(name).with_type(typ).that_repeats(repeat).create()
}

/// The target-pixel file of one observation, as bytes.
pub fn write(
    ra: f64,
    dec: f64,
    o: Observation,
    ny: usize,
    nx: usize,
    cadences: usize,
) -> fitsio::errors::Result<Vec<u8>> {
    let p = pixels_of(ra, dec, o.sector, ny, nx, cadences);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tpf.fits");
    {
        let mut f = FitsFile::create(&path).open()?;
        let primary = f.primary_hdu()?;
        for (k, v) in
            [("ORIGIN", "STScI/MAST"), ("TELESCOP", "TESS"), ("INSTRUME", "TESS Photometer"), ("CREATOR", "astrocut")]
        {
            primary.write_key(&mut f, k, v)?;
        }
        primary.write_key(&mut f, "SECTOR", i64::from(o.sector))?;
        primary.write_key(&mut f, "CAMERA", i64::from(o.camera))?;
        primary.write_key(&mut f, "CCD", i64::from(o.ccd))?;
        primary.write_key(&mut f, "RA_OBJ", ra)?;
        primary.write_key(&mut f, "DEC_OBJ", dec)?;
        let n = ny * nx;
        let columns = [
            col("TIME", ColumnDataType::Double, 1)?,
            col("TIMECORR", ColumnDataType::Float, 1)?,
            col("CADENCENO", ColumnDataType::Int, 1)?,
            col("RAW_CNTS", ColumnDataType::Int, n)?,
            col("FLUX", ColumnDataType::Float, n)?,
            col("FLUX_ERR", ColumnDataType::Float, n)?,
            col("FLUX_BKG", ColumnDataType::Float, n)?,
            col("FLUX_BKG_ERR", ColumnDataType::Float, n)?,
            col("QUALITY", ColumnDataType::Int, 1)?,
            col("POS_CORR1", ColumnDataType::Float, 1)?,
            col("POS_CORR2", ColumnDataType::Float, 1)?,
            col("FFI_FILE", ColumnDataType::String, 38)?,
        ];
        let table = f.create_table("PIXELS", &columns)?;
        for i in [4, 5, 6, 7, 8] {
            table.write_key(&mut f, &format!("TDIM{i}"), format!("({nx},{ny})"))?;
        }
        table.write_key(&mut f, "TUNIT1", "BJD - 2457000, days")?;
        table.write_key(&mut f, "TUNIT5", "e-/s")?;
        table.write_col(&mut f, "TIME", &p.time)?;
        table.write_col(&mut f, "TIMECORR", &vec![0.001f32; cadences])?;
        table.write_col(&mut f, "CADENCENO", &p.cadence)?;
        let raw: Vec<i32> = p.flux.iter().map(|x| if x.is_nan() { 0 } else { (*x * 2.0) as i32 }).collect();
        table.write_col(&mut f, "RAW_CNTS", &raw)?;
        table.write_col(&mut f, "FLUX", &p.flux)?;
        table.write_col(&mut f, "FLUX_ERR", &p.flux_err)?;
        table.write_col(&mut f, "FLUX_BKG", &p.bkg)?;
        table.write_col(&mut f, "FLUX_BKG_ERR", &vec![0.5f32; cadences * n])?;
        table.write_col(&mut f, "QUALITY", &p.quality)?;
        table.write_col(&mut f, "POS_CORR1", &vec![0.0f32; cadences])?;
        table.write_col(&mut f, "POS_CORR2", &vec![0.0f32; cadences])?;
        let ffi: Vec<String> = (0..cadences)
            .map(|t| {
                format!(
                    "tess{:013}-s{:04}-{}-{}-0120-s_ffic.fits",
                    2018206045859u64 + t as u64,
                    o.sector,
                    o.camera,
                    o.ccd
                )[..38]
                    .to_string()
            })
            .collect();
        table.write_col(&mut f, "FFI_FILE", &ffi)?;
        let desc = ImageDescription { data_type: ImageType::Long, dimensions: &[ny, nx] };
        let ap = f.create_image("APERTURE", &desc)?;
        ap.write_image(&mut f, &p.aperture)?;
        let scale = 21.0 / 3600.0;
        for (k, v) in
            [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CUNIT1", "deg"), ("CUNIT2", "deg"), ("RADESYS", "ICRS")]
        {
            ap.write_key(&mut f, k, v)?;
        }
        ap.write_key(&mut f, "WCSAXES", 2i64)?;
        for (k, v) in [
            ("CRVAL1", ra),
            ("CRVAL2", dec),
            ("CRPIX1", (nx as f64 + 1.0) / 2.0),
            ("CRPIX2", (ny as f64 + 1.0) / 2.0),
            ("PC1_1", -scale),
            ("PC1_2", 0.0),
            ("PC2_1", 0.0),
            ("PC2_2", scale),
        ] {
            ap.write_key(&mut f, k, v)?;
        }
    }
    Ok(fs_err::read(&path)?)
}

/// A deflated zip of `files` (name, bytes), as TESScut sends them.
pub fn zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in files {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        let body = enc.write_all(data).and_then(|()| enc.finish()).unwrap_or_default();
        let offset = out.len() as u32;
        let fields = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&8u16.to_le_bytes()); // deflate
            v.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&(body.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(b"PK\x03\x04");
        fields(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&20u16.to_le_bytes()); // version made by
        fields(&mut cd);
        cd.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        cd.extend_from_slice(&offset.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
