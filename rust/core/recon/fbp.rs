//! Filtered back-projection with linear interpolation (Kak and Slaney 1988,
//! ch. 3): each projection is padded (edge values), filtered by the windowed
//! ramp through a real FFT, then smeared back over the slice.

use super::{filter_response, mask_cols, pad_edge, Geometry};
use crate::error::CoreResult;
use crate::rfft::RealFft;
use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

/// Rows of the output processed together: the accumulators of a block stay
/// in cache while every projection passes over them once.
const ROW_BLOCK: usize = 8;
/// Angles summed in float32 before the float64 accumulator takes them.
const ANGLE_BLOCK: usize = 32;
/// Zeros after each filtered projection (see `backproject_row_avx2`).
const SLACK: usize = 8;

/// Reconstruct every detector row of `proj` (angle, row, column): returns
/// (row, n_out, n_out) float32.
pub fn fbp(proj: ArrayView3<f32>, geo: &Geometry) -> CoreResult<Array3<f32>> {
    geo.check(&proj)?;
    let (na, nr, nd) = proj.dim();
    let n = geo.n_out;
    let np = geo.pad_len;
    let left = (np - nd) / 2;
    let resp: Vec<f32> = filter_response(geo.filter, np)[..np / 2 + 1]
        .iter()
        .map(|&v| (v / np as f64) as f32)
        .collect();
    let r2c = RealFft::forward(np);
    let c2r = RealFft::inverse(np);
    let trig: Vec<(f32, f32)> = geo
        .theta
        .iter()
        .map(|t| (t.cos() as f32, t.sin() as f32))
        .collect();
    // Index range of the padded, filtered projection that any output pixel can reach.
    let reach = (n as f64) * std::f64::consts::FRAC_1_SQRT_2 + 2.0;

    // Work buffers besides the output: the filtered rows of one slice, each
    // thread's FFT buffers and each row block's accumulators.
    let threads = rayon::current_num_threads() as f64;
    let work = 2.0 * na as f64 * (np + SLACK) as f64 * 4.0
        + threads * (np as f64 * 4.0 + 3.0 * (np / 2 + 1) as f64 * 8.0)
        + threads * (ROW_BLOCK * n) as f64 * 12.0;
    crate::mem::check_bytes(
        geo.output_bytes(nr) + work,
        &format!("fbp with n_out = {n} and pad length {np}"),
    )?;
    let mut out = super::output(nr, n)?;
    for (r, mut slice) in out.axis_iter_mut(Axis(0)).enumerate() {
        let sino = proj.index_axis(Axis(1), r);
        let c = geo.centers[r];
        let axis = left as f64 + c; // padded index of the rotation axis
                                    // (check() keeps the axis on the detector; the clamp keeps i0 + 2 <= np
                                    // whatever the geometry, so the slices below cannot leave `buf`.)
        let i0 = ((axis - reach).floor().max(0.0) as usize).min(np - 2);
        let i1 = ((axis + reach).ceil() as usize + 2).min(np).max(i0 + 2);
        let len = i1 - i0;
        // (value, slope to the next sample) per angle, weights folded in.
        // Rows of `len` samples plus SLACK zeros, so the AVX2 kernel may load
        // 8 samples from any valid index.
        let stride = len + SLACK;
        let mut pv = vec![0f32; na * stride];
        let mut dv = vec![0f32; na * stride];
        pv.par_chunks_mut(stride)
            .zip(dv.par_chunks_mut(stride))
            .enumerate()
            .for_each_init(
                || {
                    let zero = Complex32::new(0.0, 0.0);
                    (
                        vec![0f32; np],
                        vec![zero; r2c.complex_len()],
                        vec![zero; r2c.scratch_len()],
                        vec![zero; c2r.scratch_len()],
                    )
                },
                |(buf, spec, s1, s2), (a, (pdst, ddst))| {
                    pad_edge(sino.row(a).iter(), nd, left, buf);
                    r2c.r2c(buf, spec, s1);
                    let w = geo.weights[a] as f32;
                    for (z, &h) in spec.iter_mut().zip(&resp) {
                        *z *= h * w;
                    }
                    // (c2r ignores the imaginary parts at DC and Nyquist.)
                    c2r.c2r(spec, buf, s2);
                    for (k, (pk, dk)) in pdst[..len]
                        .iter_mut()
                        .zip(ddst[..len].iter_mut())
                        .enumerate()
                    {
                        let v = buf[i0 + k];
                        let nx = if i0 + k + 1 < np { buf[i0 + k + 1] } else { v };
                        *pk = v;
                        *dk = nx - v;
                    }
                },
            );
        let h = (n as f64 - 1.0) / 2.0;
        let off = axis - i0 as f64; // index in `pd` rows of s = 0
        let rows = slice.as_slice_mut();
        let Some(rows) = rows else { continue };
        rows.par_chunks_mut(ROW_BLOCK * n)
            .enumerate()
            .for_each(|(b, blk)| {
                let r0 = b * ROW_BLOCK;
                let nrows = blk.len() / n;
                let mut acc64 = vec![0f64; nrows * n];
                let mut acc32 = vec![0f32; nrows * n];
                let ranges: Vec<(usize, usize)> = (0..nrows)
                    .map(|k| mask_cols(n, r0 + k, geo.mask_radius))
                    .collect();
                for (a, &(cs, sn)) in trig.iter().enumerate() {
                    let p_row = &pv[a * stride..(a + 1) * stride];
                    let d_row = &dv[a * stride..(a + 1) * stride];
                    for k in 0..nrows {
                        let (c0, c1) = ranges[k];
                        if c0 >= c1 {
                            continue;
                        }
                        let y = h - (r0 + k) as f64;
                        // t(col) = t0 + col * cs, must stay in [0, len - 2].
                        let t0 = off + y * sn as f64 - h * cs as f64;
                        let (lo, hi) = valid_cols(t0, cs as f64, (len - 2) as f64, c0, c1);
                        let acc = &mut acc32[k * n..(k + 1) * n];
                        if lo < hi {
                            backproject_row(
                                &mut acc[lo..hi],
                                p_row,
                                d_row,
                                len,
                                t0 as f32 + lo as f32 * cs,
                                cs,
                            );
                        }
                    }
                    if (a + 1) % ANGLE_BLOCK == 0 || a + 1 == na {
                        for (s, v) in acc64.iter_mut().zip(acc32.iter_mut()) {
                            *s += *v as f64;
                            *v = 0.0;
                        }
                    }
                }
                for (o, s) in blk.iter_mut().zip(&acc64) {
                    *o = *s as f32;
                }
            });
    }
    Ok(out)
}

/// acc[k] += linear interpolation of (p, d) at t0 + k * cs; the first
/// `valid` samples of p and d are data, then at least SLACK zeros. Every t
/// is in [0, valid - 2] up to rounding, and the index is clamped so it
/// cannot leave the row.
#[inline]
fn backproject_row(acc: &mut [f32], p: &[f32], d: &[f32], valid: usize, t0: f32, cs: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if p.len() >= valid + SLACK
            && d.len() >= valid + SLACK
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above), and the
            // rows carry the slack the kernel reads into.
            unsafe { backproject_row_avx2(acc, p, d, valid, t0, cs) };
            return;
        }
    }
    backproject_row_generic(acc, p, d, valid, t0, cs)
}

/// Eight pixels at a time without gathers: |cs| <= 1, so their eight
/// indices lie within 8 consecutive samples starting at the smallest one
/// (lane 0 when cs >= 0, lane 7 otherwise); one unaligned load of 8 samples
/// and a lane permutation replace the gather.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backproject_row_avx2(
    acc: &mut [f32],
    p: &[f32],
    d: &[f32],
    valid: usize,
    t0: f32,
    cs: f32,
) {
    use std::arch::x86_64::*;
    if valid < 2 {
        return;
    }
    let len = acc.len();
    let vcs = _mm256_set1_ps(cs);
    let vt0 = _mm256_set1_ps(t0);
    let lane = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let vmax = _mm256_set1_epi32((valid - 2) as i32);
    let vzero = _mm256_setzero_si256();
    let seven = _mm256_set1_epi32(7);
    let neg = cs < 0.0;
    let mut k = 0;
    while k + 8 <= len {
        let kk = _mm256_add_ps(_mm256_set1_ps(k as f32), lane);
        let t = _mm256_fmadd_ps(kk, vcs, vt0);
        let i = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(t), vzero), vmax);
        let f = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
        let imin = if neg {
            _mm256_extract_epi32::<7>(i)
        } else {
            _mm256_extract_epi32::<0>(i)
        };
        // Offsets 0..=7 (clamped against a rounding corner; the permutation
        // only reads the low 3 bits anyway, so nothing can go out of bounds).
        let o = _mm256_min_epi32(
            _mm256_max_epi32(_mm256_sub_epi32(i, _mm256_set1_epi32(imin)), vzero),
            seven,
        );
        // SAFETY: 0 <= imin <= valid - 2, and the rows hold valid + SLACK samples.
        let base = imin as usize;
        let pw = _mm256_loadu_ps(p.as_ptr().add(base));
        let dw = _mm256_loadu_ps(d.as_ptr().add(base));
        let pk = _mm256_permutevar8x32_ps(pw, o);
        let dk = _mm256_permutevar8x32_ps(dw, o);
        let out = acc.as_mut_ptr().add(k);
        _mm256_storeu_ps(
            out,
            _mm256_add_ps(_mm256_loadu_ps(out), _mm256_fmadd_ps(f, dk, pk)),
        );
        k += 8;
    }
    if k < len {
        backproject_row_generic(&mut acc[k..], p, d, valid, t0 + k as f32 * cs, cs);
    }
}

#[inline(always)]
fn backproject_row_generic(acc: &mut [f32], p: &[f32], d: &[f32], valid: usize, t0: f32, cs: f32) {
    let n = valid.min(p.len()).min(d.len());
    if n < 2 {
        return;
    }
    let imax = (n - 2) as i32;
    for (k, o) in acc.iter_mut().enumerate() {
        let t = t0 + k as f32 * cs;
        let i = (t as i32).clamp(0, imax) as usize;
        let f = t - i as f32;
        *o += p[i] + f * d[i];
    }
}

/// Columns [lo, hi) within [c0, c1) where 0 <= t0 + col * cs <= tmax.
#[inline]
fn valid_cols(t0: f64, cs: f64, tmax: f64, c0: usize, c1: usize) -> (usize, usize) {
    let (mut lo, mut hi) = (c0 as f64, c1 as f64);
    if cs.abs() < 1e-12 {
        if t0 < 0.0 || t0 > tmax {
            return (c0, c0);
        }
    } else {
        let a = -t0 / cs;
        let b = (tmax - t0) / cs;
        let (a, b) = if cs > 0.0 { (a, b) } else { (b, a) };
        lo = lo.max(a.ceil());
        hi = hi.min(b.floor() + 1.0);
    }
    // Rounding at the ends is harmless: the kernel clamps the index.
    let lo = lo.max(c0 as f64) as usize;
    let hi = (hi.max(lo as f64) as usize).min(c1);
    (lo, hi)
}
