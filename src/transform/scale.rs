//! Pixel scaling for astronomy image planes (none / asinh / zscale / minmax),
//! an IRAF/astropy-compatible zscale implementation, and deterministic 8-bit
//! PNG previews (zscale-stretched, flipped so that FITS row 0 ends up at the bottom).

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::error::{ImageError, ParameterError, ParameterErrorKind};
use image::{ExtendedColorType, ImageEncoder};

/// How the pixel values of an image plane are rescaled.
///
/// Serialized in lowercase (`"none"`, `"asinh"`, `"zscale"`, `"minmax"`).
/// In every mode non-finite pixels (NaN, ±inf) are left untouched and all
/// statistics are computed over the finite pixels only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Leave the pixels as they are.
    #[default]
    None,
    /// `y = asinh((x - median) / sigma)` with `sigma = 1.4826 * MAD`
    /// (median absolute deviation); `sigma` falls back to 1 when it is 0 or not finite.
    Asinh,
    /// Clip to the zscale limits `(z1, z2)` (see [`zscale_limits`]) and map
    /// linearly to `[0, 1]`; if `z2 <= z1` every finite pixel becomes 0.
    Zscale,
    /// `(x - min) / (max - min)` → `[0, 1]`; if `max == min` every finite pixel becomes 0.
    Minmax,
}

// ZScaleInterval defaults of astropy.visualization.
const ZS_N_SAMPLES: usize = 1000;
const ZS_CONTRAST: f64 = 0.25;
const ZS_MAX_REJECT: f64 = 0.5;
const ZS_MIN_NPIXELS: usize = 5;
const ZS_KREJ: f64 = 2.5;
const ZS_MAX_ITERATIONS: usize = 5;

/// Scale factor turning a MAD into a Gaussian-equivalent standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Scale one image plane in place. Non-finite pixels (NaN, ±inf) are left untouched.
///
/// Statistics (min/max, median, MAD, zscale limits) are taken over the finite
/// pixels only and computed in `f64`:
/// - [`Scale::None`]: pixels are left as they are.
/// - [`Scale::Minmax`]: `(x - min) / (max - min)` → `[0, 1]`; if `max == min`
///   every finite pixel becomes 0.
/// - [`Scale::Asinh`]: `asinh((x - median) / sigma)` with `sigma = 1.4826 * MAD`;
///   if `sigma` is 0 or not finite, 1 is used instead.
/// - [`Scale::Zscale`]: with `(z1, z2) = zscale_limits(plane)`, `x` is clipped to
///   `[z1, z2]` and mapped to `[0, 1]`; if `z2 <= z1` every finite pixel becomes 0.
///
/// A plane without finite pixels is left unchanged. The result is deterministic.
pub fn scale_plane(plane: &mut [f32], scale: Scale) {
    match scale {
        Scale::None => {}
        Scale::Minmax => scale_minmax(plane),
        Scale::Asinh => scale_asinh(plane),
        Scale::Zscale => {
            if let Some((z1, z2)) = zscale_limits(plane) {
                apply_linear(plane, f64::from(z1), f64::from(z2));
            }
        }
    }
}

/// IRAF/astropy zscale display limits (z1, z2) of the finite pixels; None when there are no finite pixels.
///
/// Reimplements `astropy.visualization.ZScaleInterval().get_limits` with its
/// defaults (`n_samples=1000, contrast=0.25, max_reject=0.5, min_npixels=5,
/// krej=2.5, max_iterations=5`):
/// 1. the finite pixels (in row-major order) are sampled with stride
///    `max(1, floor(n / 1000))`, keeping at most 1000 samples, which are sorted;
/// 2. a straight line is fitted to the sorted samples against their index, with
///    iterative k-sigma rejection (`krej * std` of the residuals of the kept
///    samples) where each rejected sample also rejects its neighbours (dilation
///    by a window of `max(1, floor(0.01 * npix))` samples), until no more
///    samples are rejected, fewer than `max(5, floor(0.5 * npix))` remain, or
///    5 iterations have run;
/// 3. if enough samples remain, the limits are
///    `median ∓ slope / contrast * offset`, clamped to the sample range;
///    otherwise they are the sample minimum and maximum.
///
/// Always `z1 <= z2`; computed in `f64`, returned as `f32`.
pub fn zscale_limits(plane: &[f32]) -> Option<(f32, f32)> {
    let n_finite = plane.iter().filter(|v| v.is_finite()).count();
    if n_finite == 0 {
        return None;
    }
    // astropy: stride = int(max(1.0, values.size / n_samples))
    let stride = (n_finite as f64 / ZS_N_SAMPLES as f64).max(1.0) as usize;
    let mut samples: Vec<f64> = plane
        .iter()
        .filter(|v| v.is_finite())
        .step_by(stride.max(1))
        .take(ZS_N_SAMPLES)
        .map(|&v| f64::from(v))
        .collect();
    samples.sort_by(f64::total_cmp);

    let npix = samples.len();
    let (Some(&first), Some(&last)) = (samples.first(), samples.last()) else {
        return None;
    };
    let mut vmin = first;
    let mut vmax = last;

    let minpix = ZS_MIN_NPIXELS.max((npix as f64 * ZS_MAX_REJECT) as usize);
    let ngrow = 1usize.max((npix as f64 * 0.01) as usize);
    let mut badpix = vec![false; npix];
    let mut ngoodpix = npix;
    let mut last_ngoodpix = npix + 1;
    let mut fit: Option<(f64, f64)> = None;
    let mut flat = vec![0.0f64; npix];

    for _ in 0..ZS_MAX_ITERATIONS {
        if ngoodpix >= last_ngoodpix || ngoodpix < minpix {
            break;
        }
        let Some((slope, intercept)) = fit_line(&samples, &badpix) else {
            break;
        };
        fit = Some((slope, intercept));

        // Residuals from the fitted line.
        for (i, (f, &y)) in flat.iter_mut().zip(&samples).enumerate() {
            *f = y - (slope * i as f64 + intercept);
        }
        let threshold = ZS_KREJ * std_of_good(&flat, &badpix);

        // Reject every sample further than threshold from the line (cumulative).
        for (b, &f) in badpix.iter_mut().zip(&flat) {
            if f < -threshold || f > threshold {
                *b = true;
            }
        }
        badpix = dilate(&badpix, ngrow);

        last_ngoodpix = ngoodpix;
        ngoodpix = badpix.iter().filter(|&&b| !b).count();
    }

    if ngoodpix >= minpix {
        if let Some((slope, _)) = fit {
            // The least-squares slope of sorted samples is mathematically >= 0;
            // clamping only removes rounding noise and guarantees z1 <= z2.
            let slope = slope.max(0.0);
            let slope = if ZS_CONTRAST > 0.0 { slope / ZS_CONTRAST } else { slope };
            let center_pixel = (npix - 1) / 2;
            let median = median_of_sorted(&samples).unwrap_or(first);
            vmin = vmin.max(median - (center_pixel as f64 - 1.0) * slope);
            vmax = vmax.min(median + (npix - center_pixel) as f64 * slope);
        }
    }

    Some((vmin as f32, vmax as f32))
}

/// 8-bit PNG preview of an image stored row-major with shape (H, W) or (C, H, W).
/// C == 3: RGB from planes 0,1,2 (R,G,B); otherwise grey from plane 0.
///
/// Each used plane is stretched independently through its own
/// [`zscale_limits`] `(z1, z2)`: `round(255 * (clip(x, z1, z2) - z1) / (z2 - z1))`;
/// non-finite pixels, planes without finite pixels and planes with `z2 <= z1`
/// give 0. FITS row 0 is the bottom of the sky image, so the image is flipped
/// vertically (PNG row 0 = last input row) to put north up.
/// The PNG is encoded with fixed settings (default compression, adaptive
/// filtering), so the same input always gives the same bytes.
///
/// # Errors
/// An [`ImageError`] (dimension mismatch) when the shape is not 2-D or 3-D, has a
/// zero extent, is too large for PNG, or does not match `data.len()`; encoder errors are passed on.
pub fn preview_png(data: &[f32], shape: &[usize]) -> Result<Vec<u8>, image::ImageError> {
    let (c, h, w) = match *shape {
        [h, w] => (1, h, w),
        [c, h, w] => (c, h, w),
        _ => return Err(dimension_error()),
    };
    let plane_len = h.checked_mul(w).ok_or_else(dimension_error)?;
    let total = plane_len.checked_mul(c).ok_or_else(dimension_error)?;
    if total != data.len() || c == 0 || h == 0 || w == 0 {
        return Err(dimension_error());
    }
    let width = u32::try_from(w).map_err(|_| dimension_error())?;
    let height = u32::try_from(h).map_err(|_| dimension_error())?;

    let (nchan, color) = if c == 3 { (3, ExtendedColorType::Rgb8) } else { (1, ExtendedColorType::L8) };
    let mut pixels = vec![0u8; plane_len * nchan];
    for (ch, plane) in data.chunks_exact(plane_len).take(nchan).enumerate() {
        let limits = zscale_limits(plane).filter(|&(z1, z2)| z2 > z1);
        let Some((z1, z2)) = limits else {
            continue; // every pixel of this channel stays 0
        };
        let (z1, z2) = (f64::from(z1), f64::from(z2));
        let span = z2 - z1;
        for (row_in, src_row) in plane.chunks_exact(w).enumerate() {
            let row_out = h - 1 - row_in;
            let dst_row = &mut pixels[row_out * w * nchan..(row_out + 1) * w * nchan];
            for (dst, &x) in dst_row.chunks_exact_mut(nchan).zip(src_row) {
                if x.is_finite() {
                    let t = (f64::from(x).clamp(z1, z2) - z1) / span;
                    dst[ch] = (t * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }

    let mut out = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive);
    encoder.write_image(&pixels, width, height, color)?;
    Ok(out)
}

fn dimension_error() -> ImageError {
    ImageError::Parameter(ParameterError::from_kind(ParameterErrorKind::DimensionMismatch))
}

/// Minmax scaling over the finite pixels.
fn scale_minmax(plane: &mut [f32]) {
    let mut range: Option<(f32, f32)> = None;
    for &x in plane.iter().filter(|v| v.is_finite()) {
        range = Some(match range {
            None => (x, x),
            Some((lo, hi)) => (lo.min(x), hi.max(x)),
        });
    }
    if let Some((lo, hi)) = range {
        apply_linear(plane, f64::from(lo), f64::from(hi));
    }
}

/// Clip finite pixels to `[lo, hi]` and map them to `[0, 1]`; all finite pixels
/// become 0 when `hi <= lo`.
fn apply_linear(plane: &mut [f32], lo: f64, hi: f64) {
    let span = hi - lo;
    for x in plane.iter_mut().filter(|v| v.is_finite()) {
        *x = if span > 0.0 { ((f64::from(*x).clamp(lo, hi) - lo) / span) as f32 } else { 0.0 };
    }
}

/// Asinh stretch around the median with a MAD-based sigma.
fn scale_asinh(plane: &mut [f32]) {
    let mut values: Vec<f64> = plane.iter().filter(|v| v.is_finite()).map(|&v| f64::from(v)).collect();
    let Some(median) = median_in_place(&mut values) else {
        return;
    };
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    let mad = median_in_place(&mut values).unwrap_or(0.0);
    let mut sigma = MAD_TO_SIGMA * mad;
    if !(sigma.is_finite() && sigma > 0.0) {
        sigma = 1.0;
    }
    for x in plane.iter_mut().filter(|v| v.is_finite()) {
        *x = libm::asinh((f64::from(*x) - median) / sigma) as f32;
    }
}

/// Median (numpy convention: mean of the two middle values for even counts).
/// Reorders `values`. `None` for an empty slice.
fn median_in_place(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (lower, &mut upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        return Some(upper);
    }
    let below = lower.iter().copied().max_by(f64::total_cmp)?;
    Some((below + upper) / 2.0)
}

/// Median of an already sorted slice (numpy convention).
fn median_of_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    if n % 2 == 1 {
        Some(sorted[n / 2])
    } else {
        Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0)
    }
}

/// Least-squares line `y = slope * i + intercept` through the samples not
/// flagged in `bad` (x = sample index). `None` if fewer than 2 samples are used.
fn fit_line(y: &[f64], bad: &[bool]) -> Option<(f64, f64)> {
    let good = || y.iter().zip(bad).enumerate().filter(|(_, (_, &b))| !b).map(|(i, (&v, _))| (i as f64, v));
    let n = good().count();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (sx, sy) = good().fold((0.0, 0.0), |(sx, sy), (x, v)| (sx + x, sy + v));
    let (xm, ym) = (sx / nf, sy / nf);
    let (sxx, sxy) = good().fold((0.0, 0.0), |(sxx, sxy), (x, v)| {
        let dx = x - xm;
        (sxx + dx * dx, sxy + dx * (v - ym))
    });
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, ym - slope * xm))
}

/// Population standard deviation (ddof = 0) of the values not flagged in `bad`.
fn std_of_good(values: &[f64], bad: &[bool]) -> f64 {
    let good = || values.iter().zip(bad).filter(|(_, &b)| !b).map(|(&v, _)| v);
    let n = good().count();
    if n == 0 {
        return f64::NAN;
    }
    let nf = n as f64;
    let mean = good().sum::<f64>() / nf;
    let var = good().map(|v| (v - mean) * (v - mean)).sum::<f64>() / nf;
    var.sqrt()
}

/// Dilate a boolean mask like `numpy.convolve(mask, ones(k, bool), mode="same")`:
/// a set element at `p` sets `p - (k-1)/2 ..= p + k/2` (clipped to the mask).
fn dilate(mask: &[bool], k: usize) -> Vec<bool> {
    let n = mask.len();
    let mut out = vec![false; n];
    let before = (k.max(1) - 1) / 2;
    let after = k.max(1) / 2;
    for (p, _) in mask.iter().enumerate().filter(|(_, &b)| b) {
        let lo = p.saturating_sub(before);
        let hi = (p + after).min(n.saturating_sub(1));
        for o in &mut out[lo..=hi] {
            *o = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64 step; deterministic test-data generator.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(state: &mut u64) -> f64 {
        (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (Irwin-Hall, 12 uniforms).
    fn normal(state: &mut u64) -> f64 {
        (0..12).map(|_| uniform(state)).sum::<f64>() - 6.0
    }

    fn normal_outliers() -> Vec<f32> {
        let mut s = 1u64;
        (0..12_000)
            .map(|i| {
                if i % 97 == 0 {
                    1.0e4 + i as f32
                } else if i % 211 == 0 {
                    -500.0
                } else {
                    (100.0 + 5.0 * normal(&mut s)) as f32
                }
            })
            .collect()
    }

    fn linear_gradient() -> Vec<f32> {
        (0..64 * 80).map(|i| 10.0 + (i % 80) as f32 + 0.5 * (i / 80) as f32).collect()
    }

    fn quadratic_gradient() -> Vec<f32> {
        (0..2500)
            .map(|i| {
                let t = i as f32 * 0.01;
                1.0 + t * t
            })
            .collect()
    }

    fn nan_mix() -> Vec<f32> {
        let mut s = 7u64;
        (0..3000)
            .map(|i| {
                let v = (20.0 + 3.0 * normal(&mut s)) as f32;
                if i % 7 == 0 {
                    f32::NAN
                } else if i % 13 == 0 {
                    f32::INFINITY
                } else if i % 17 == 0 {
                    f32::NEG_INFINITY
                } else {
                    v
                }
            })
            .collect()
    }

    fn small_normal() -> Vec<f32> {
        let mut s = 3u64;
        (0..20).map(|_| (50.0 + 2.0 * normal(&mut s)) as f32).collect()
    }

    fn skewed_2500() -> Vec<f32> {
        let mut s = 11u64;
        (0..2500)
            .map(|_| {
                let u = uniform(&mut s);
                (5.0 + 1000.0 * u * u * u) as f32
            })
            .collect()
    }

    fn first_1000_of_1999() -> Vec<f32> {
        let mut s = 13u64;
        (0..1999).map(|i| (i as f64 * 0.1 + normal(&mut s)) as f32).collect()
    }

    fn assert_rel(actual: f32, expected: f64, what: &str) {
        let a = f64::from(actual);
        let tol = 1e-5 * expected.abs().max(a.abs());
        assert!((a - expected).abs() <= tol, "{what}: got {a}, expected {expected}");
    }

    fn check_limits(data: &[f32], z1: f64, z2: f64, what: &str) {
        let (a, b) = zscale_limits(data).expect("finite pixels present");
        assert_rel(a, z1, what);
        assert_rel(b, z2, what);
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    // ---- Scale variants -------------------------------------------------

    #[test]
    fn none_leaves_pixels() {
        let orig = [1.5f32, -3.0, f32::NAN, f32::INFINITY, 1e30];
        let mut v = orig;
        scale_plane(&mut v, Scale::None);
        assert!(same_bits(&v, &orig));
    }

    #[test]
    fn minmax_known_values_and_nonfinite_untouched() {
        let mut v = [2.0f32, f32::NAN, 4.0, 6.0, f32::INFINITY, f32::NEG_INFINITY, 3.0];
        scale_plane(&mut v, Scale::Minmax);
        assert_eq!(v[0], 0.0);
        assert!(v[1].is_nan());
        assert_eq!(v[2], 0.5);
        assert_eq!(v[3], 1.0);
        assert_eq!(v[4], f32::INFINITY);
        assert_eq!(v[5], f32::NEG_INFINITY);
        assert_eq!(v[6], 0.25);
    }

    #[test]
    fn minmax_constant_and_empty() {
        let mut v = [7.0f32, 7.0, f32::NAN, 7.0];
        scale_plane(&mut v, Scale::Minmax);
        assert_eq!(&v[..2], &[0.0, 0.0]);
        assert!(v[2].is_nan());
        assert_eq!(v[3], 0.0);

        let mut all_nan = [f32::NAN, f32::INFINITY];
        scale_plane(&mut all_nan, Scale::Minmax);
        assert!(all_nan[0].is_nan());
        assert_eq!(all_nan[1], f32::INFINITY);

        let mut empty: [f32; 0] = [];
        for s in [Scale::None, Scale::Asinh, Scale::Zscale, Scale::Minmax] {
            scale_plane(&mut empty, s);
        }
    }

    #[test]
    fn asinh_known_values_odd_count() {
        // median 3, |x - 3| = [2, 1, 0, 1, 97] -> MAD 1, sigma 1.4826
        let mut v = [1.0f32, 2.0, 3.0, 4.0, 100.0, f32::NAN];
        scale_plane(&mut v, Scale::Asinh);
        let expect = [
            -1.107_966_066_f64, // asinh(-2 / 1.4826)
            -0.631_643_398,     // asinh(-1 / 1.4826)
            0.0,
            0.631_643_398,
            4.874_119_255, // asinh(97 / 1.4826)
        ];
        for (i, e) in expect.iter().enumerate() {
            assert!((f64::from(v[i]) - e).abs() < 1e-6, "{i}: {} vs {e}", v[i]);
        }
        assert!(v[5].is_nan());
    }

    #[test]
    fn asinh_even_count_uses_mean_of_middle_values() {
        // median 2.5, |x - 2.5| = [1.5, 0.5, 0.5, 1.5] -> MAD 1.0
        let mut v = [4.0f32, 1.0, 3.0, 2.0];
        scale_plane(&mut v, Scale::Asinh);
        let sigma = 1.4826f64;
        for (x, orig) in v.iter().zip([4.0f64, 1.0, 3.0, 2.0]) {
            let e = ((orig - 2.5) / sigma).asinh();
            assert!((f64::from(*x) - e).abs() < 1e-6);
        }
    }

    #[test]
    fn asinh_zero_mad_uses_sigma_one() {
        let mut v = [5.0f32, 5.0, 5.0, 6.0, f32::NEG_INFINITY];
        scale_plane(&mut v, Scale::Asinh);
        assert_eq!(&v[..3], &[0.0, 0.0, 0.0]);
        assert!((f64::from(v[3]) - 0.881_373_587).abs() < 1e-6); // asinh(1)
        assert_eq!(v[4], f32::NEG_INFINITY);
    }

    #[test]
    fn zscale_scale_small_array() {
        // < 5 finite pixels: limits are (min, max) = (1, 3)
        let mut v = [3.0f32, 1.0, 2.0, f32::NAN];
        scale_plane(&mut v, Scale::Zscale);
        assert_eq!(&v[..3], &[1.0, 0.0, 0.5]);
        assert!(v[3].is_nan());
    }

    #[test]
    fn zscale_scale_clips_to_unit_interval() {
        let data = normal_outliers();
        let mut v = data.clone();
        scale_plane(&mut v, Scale::Zscale);
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
        // outliers (1e4 + i) are clipped to 1, the -500 pixels to 0
        assert_eq!(v[97], 1.0);
        assert_eq!(v[211], 0.0);
    }

    #[test]
    fn zscale_scale_constant_gives_zero() {
        let mut v = [2.5f32; 10];
        v[4] = f32::NAN;
        scale_plane(&mut v, Scale::Zscale);
        assert!(v.iter().enumerate().all(|(i, x)| if i == 4 { x.is_nan() } else { *x == 0.0 }));
    }

    #[test]
    fn scaling_is_deterministic() {
        for s in [Scale::Asinh, Scale::Zscale, Scale::Minmax] {
            let mut a = nan_mix();
            let mut b = nan_mix();
            scale_plane(&mut a, s);
            scale_plane(&mut b, s);
            assert!(same_bits(&a, &b));
        }
    }

    #[test]
    fn scale_serde_is_lowercase() {
        let json =
            serde_json::to_string(&[Scale::None, Scale::Asinh, Scale::Zscale, Scale::Minmax]).expect("serialize");
        assert_eq!(json, r#"["none","asinh","zscale","minmax"]"#);
        let back: Scale = serde_json::from_str("\"zscale\"").expect("deserialize");
        assert_eq!(back, Scale::Zscale);
        assert_eq!(Scale::default(), Scale::None);
    }

    // ---- zscale_limits vs astropy ---------------------------------------
    //
    // Expected values were computed with astropy 8.0.2 (numpy 2.4.6) as
    // `ZScaleInterval().get_limits(a)` on exactly the same float32 arrays
    // (produced by the generators above and written out as little-endian f32).
    // astropy 8.0.2 drops non-finite (and masked) values before sampling.

    #[test]
    fn zscale_astropy_normal_with_outliers() {
        check_limits(&normal_outliers(), 69.118_963_510_770_16, 131.613_262_721_492_7, "normal_outliers");
    }

    #[test]
    fn zscale_astropy_gradients() {
        check_limits(&linear_gradient(), 10.0, 115.5, "linear_gradient");
        check_limits(&quadratic_gradient(), 1.0, 400.200_378_417_968_75, "quadratic_gradient");
    }

    #[test]
    fn zscale_astropy_nan_and_inf() {
        check_limits(&nan_mix(), 10.591_237_068_176_27, 28.173_170_089_721_68, "nan_mix");
        check_limits(&[5.0, f32::NAN, -2.0, f32::INFINITY], -2.0, 5.0, "tiny_nan_inf");
    }

    #[test]
    fn zscale_astropy_tiny_arrays() {
        check_limits(&[3.0, 1.0, 2.0], 1.0, 3.0, "tiny3");
        check_limits(&[7.25], 7.25, 7.25, "single");
        check_limits(&[4.0, 1.0, 3.0, 2.0], 1.0, 4.0, "four");
        check_limits(&small_normal(), 45.376_708_984_375, 52.577_388_763_427_734, "small_normal");
    }

    #[test]
    fn zscale_astropy_constant_arrays() {
        // astropy: (3.500000000000001, 3.499999999999999) and
        // (-1.9999999999999962, -2.0000000000000036), i.e. rounding noise
        // around the constant; we return the constant exactly.
        assert_eq!(zscale_limits(&[3.5f32; 50]), Some((3.5, 3.5)));
        assert_eq!(zscale_limits(&[-2.0f32; 3000]), Some((-2.0, -2.0)));
    }

    #[test]
    fn zscale_astropy_stride_and_sample_cap() {
        // 2500 pixels: stride 2, first 1000 of the 1250 strided samples
        check_limits(&skewed_2500(), 5.000_002_861_022_949, 1_001.825_683_593_75, "skewed_2500");
        // 1999 pixels: stride 1, only the first 1000 pixels are sampled
        check_limits(&first_1000_of_1999(), -1.834_388_971_328_735_4, 101.414_749_145_507_81, "first_1000_of_1999");
    }

    #[test]
    fn zscale_limits_none_without_finite_pixels() {
        assert_eq!(zscale_limits(&[]), None);
        assert_eq!(zscale_limits(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]), None);
    }

    #[test]
    fn zscale_limits_ordered() {
        for data in [normal_outliers(), nan_mix(), skewed_2500(), small_normal()] {
            let (a, b) = zscale_limits(&data).expect("finite pixels");
            assert!(a <= b);
        }
    }

    #[test]
    fn dilate_matches_numpy_same_convolution() {
        let mut m = vec![false; 12];
        m[6] = true;
        let on = |k| -> Vec<usize> { dilate(&m, k).iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i).collect() };
        // numpy.convolve(m, ones(k, bool), mode="same")
        assert_eq!(on(1), vec![6]);
        assert_eq!(on(2), vec![6, 7]);
        assert_eq!(on(3), vec![5, 6, 7]);
        assert_eq!(on(4), vec![5, 6, 7, 8]);
        assert_eq!(on(5), vec![4, 5, 6, 7, 8]);
    }

    // ---- preview_png ----------------------------------------------------

    fn decode(png: &[u8]) -> image::DynamicImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("valid PNG")
    }

    #[test]
    fn preview_grey_dimensions() {
        let data = linear_gradient(); // 64 rows x 80 columns
        let png = preview_png(&data, &[64, 80]).expect("encode");
        let img = decode(&png);
        assert_eq!((img.width(), img.height()), (80, 64));
        assert_eq!(img.color(), image::ColorType::L8);
    }

    #[test]
    fn preview_vertical_flip() {
        // 4 rows x 3 columns, value = row index; limits (0, 3)
        let data: Vec<f32> = (0..12).map(|i| (i / 3) as f32).collect();
        let png = preview_png(&data, &[4, 3]).expect("encode");
        let img = decode(&png).to_luma8();
        assert_eq!((img.width(), img.height()), (3, 4));
        // output row 0 = last input row (brightest), last output row = input row 0
        let rows: Vec<u8> = (0..4).map(|y| img.get_pixel(0, y).0[0]).collect();
        assert_eq!(rows, vec![255, 170, 85, 0]);
        for y in 0..4 {
            for x in 1..3 {
                assert_eq!(img.get_pixel(x, y), img.get_pixel(0, y));
            }
        }
    }

    #[test]
    fn preview_rgb_from_three_planes() {
        // shape (3, 2, 2); R = row gradient, G = constant, B = reversed gradient
        let r = [0.0f32, 0.0, 1.0, 1.0];
        let g = [5.0f32; 4];
        let b = [1.0f32, 1.0, 0.0, 0.0];
        let data: Vec<f32> = r.iter().chain(&g).chain(&b).copied().collect();
        let png = preview_png(&data, &[3, 2, 2]).expect("encode");
        let img = decode(&png);
        assert_eq!(img.color(), image::ColorType::Rgb8);
        let img = img.to_rgb8();
        assert_eq!((img.width(), img.height()), (2, 2));
        assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]); // input row 1
        assert_eq!(img.get_pixel(1, 1).0, [0, 0, 255]); // input row 0
    }

    #[test]
    fn preview_non_rgb_channel_counts_are_grey_from_plane_0() {
        // C = 2: grey from plane 0 only
        let data = [0.0f32, 1.0, 2.0, 3.0, 9.0, 9.0, 9.0, 9.0];
        let img = decode(&preview_png(&data, &[2, 2, 2]).expect("encode"));
        assert_eq!(img.color(), image::ColorType::L8);
        let img = img.to_luma8();
        assert_eq!(img.as_raw(), &vec![170, 255, 0, 85]);

        // C = 1 behaves like 2-D
        let a = preview_png(&data[..4], &[1, 2, 2]).expect("encode");
        let b = preview_png(&data[..4], &[2, 2]).expect("encode");
        assert_eq!(a, b);
    }

    #[test]
    fn preview_nonfinite_pixels_are_black() {
        let data = [f32::NAN, 1.0, 2.0, 3.0, f32::INFINITY, 4.0];
        let img = decode(&preview_png(&data, &[2, 3]).expect("encode")).to_luma8();
        // flipped: output row 0 = input row 1 = [3, inf, 4]
        assert_eq!(img.as_raw(), &vec![170, 0, 255, 0, 0, 85]);
        let all_nan = [f32::NAN; 4];
        let img = decode(&preview_png(&all_nan, &[2, 2]).expect("encode")).to_luma8();
        assert!(img.as_raw().iter().all(|&p| p == 0));
    }

    #[test]
    fn preview_shape_errors() {
        let data = vec![0.0f32; 12];
        assert!(preview_png(&data, &[3, 5]).is_err());
        assert!(preview_png(&data, &[2, 2, 2]).is_err());
        assert!(preview_png(&data, &[12]).is_err());
        assert!(preview_png(&data, &[1, 1, 3, 4]).is_err());
        assert!(preview_png(&data, &[]).is_err());
        assert!(preview_png(&[], &[0, 4]).is_err());
        assert!(preview_png(&[], &[0, 3, 4]).is_err());
        assert!(preview_png(&data, &[usize::MAX, 2]).is_err());
        assert!(preview_png(&data, &[2, usize::MAX, 2]).is_err());
        assert!(preview_png(&data, &[3, 4]).is_ok());
    }

    #[test]
    fn preview_is_deterministic() {
        let data = normal_outliers(); // 120 x 100
        let a = preview_png(&data, &[120, 100]).expect("encode");
        let b = preview_png(&data, &[120, 100]).expect("encode");
        assert_eq!(a, b);
        let rgb: Vec<f32> = normal_outliers()
            .into_iter()
            .chain(linear_gradient().into_iter().cycle().take(12_000))
            .chain(nan_mix().into_iter().cycle().take(12_000))
            .collect();
        let a = preview_png(&rgb, &[3, 120, 100]).expect("encode");
        let b = preview_png(&rgb, &[3, 120, 100]).expect("encode");
        assert_eq!(a, b);
    }
}
