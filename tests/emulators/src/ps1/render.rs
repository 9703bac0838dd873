//! JPEG/PNG rendering of cutouts (fitscut-like autoscale and optional asinh stretch).

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ExtendedColorType, GrayImage, ImageBuffer, ImageEncoder, RgbImage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
}

/// Value at fraction `q` (0..=1) of the sorted finite values (selection, O(n)).
fn quantile(vals: &mut [f32], q: f64) -> f32 {
    let idx = ((vals.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = vals.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    *v
}

/// Scales one channel to 8 bits: clip to the central `autoscale` percent of the histogram, then
/// a linear or asinh stretch. Blank (NaN) pixels become white, as in MAST's JPEGs off the cell.
fn scale(px: &[f32], autoscale: f64, asinh: bool) -> Vec<u8> {
    let mut finite: Vec<f32> = px.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return vec![255; px.len()];
    }
    let tail = (100.0 - autoscale).max(0.0) / 200.0;
    let lo = quantile(&mut finite, tail);
    let hi = quantile(&mut finite, 1.0 - tail);
    let span = if hi > lo { hi - lo } else { 1.0 };
    const SOFT: f32 = 10.0;
    let norm = SOFT.asinh();
    px.iter()
        .map(|&v| {
            if !v.is_finite() {
                return 255;
            }
            let t = ((v - lo) / span).clamp(0.0, 1.0);
            let t = if asinh { (t * SOFT).asinh() / norm } else { t };
            (t * 255.0).round() as u8
        })
        .collect()
}

/// Inserts a COM segment carrying `text` right after the JPEG SOI marker.
pub(crate) fn insert_com(jpeg: &[u8], text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let bytes = &bytes[..bytes.len().min(65_533)];
    let mut out = Vec::with_capacity(jpeg.len() + bytes.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((bytes.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Renders one (grey) or three (red, green, blue) `size` x `size` channels to an 8-bit image of
/// `out` x `out` pixels. FITS row 1 is the bottom row, so rows are flipped for display.
pub(crate) fn render(
    channels: &[Vec<f32>],
    size: u32,
    out: u32,
    autoscale: f64,
    asinh: bool,
    format: Format,
    com: Option<&str>,
) -> Result<Vec<u8>, String> {
    let n = size as usize;
    let scaled: Vec<Vec<u8>> = channels.iter().map(|c| scale(c, autoscale, asinh)).collect();
    let flip = |c: &[u8]| -> Vec<u8> { c.chunks_exact(n).rev().flatten().copied().collect() };
    let (raw, color) = if scaled.len() == 1 {
        let mut img = GrayImage::from_raw(size, size, flip(&scaled[0])).ok_or("bad image buffer")?;
        if out != size {
            img = image::imageops::resize(&img, out, out, FilterType::Triangle);
        }
        (img.into_raw(), ExtendedColorType::L8)
    } else {
        let (r, g, b) = (flip(&scaled[0]), flip(&scaled[1]), flip(&scaled[2]));
        let mut rgb = Vec::with_capacity(n * n * 3);
        for i in 0..n * n {
            rgb.extend_from_slice(&[r[i], g[i], b[i]]);
        }
        let mut img: RgbImage = ImageBuffer::from_raw(size, size, rgb).ok_or("bad image buffer")?;
        if out != size {
            img = image::imageops::resize(&img, out, out, FilterType::Triangle);
        }
        (img.into_raw(), ExtendedColorType::Rgb8)
    };
    let mut buf = Vec::new();
    match format {
        Format::Png => {
            PngEncoder::new(&mut buf).write_image(&raw, out, out, color).map_err(|e| e.to_string())?;
            Ok(buf)
        }
        Format::Jpeg => {
            JpegEncoder::new_with_quality(&mut buf, 85)
                .write_image(&raw, out, out, color)
                .map_err(|e| e.to_string())?;
            Ok(match com {
                Some(text) => insert_com(&buf, text),
                None => buf,
            })
        }
    }
}
