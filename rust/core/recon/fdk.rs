//! The FDK stages after validation: weighting and ramp filtering of the
//! projections, then the voxel-driven back-projection (geometry and
//! conventions: `cone.rs`).
//!
//! Layout for speed (the usual fast CPU FDK arrangement; e.g. Scherl et al.
//! 2007, Treibig et al. 2013 "RabbitCT"): on a flat untilted detector the
//! column u and the distance weight (D / L)^2 of a voxel depend on (x, y) and
//! the angle only, and the row v is affine in z. So for each angle and each
//! voxel column (x, y) the two detector columns it falls between are blended
//! once over the rows the column's z range reaches, and the z loop is a 1-D
//! linear interpolation along that blend, v = v0 + z dv. The filtered
//! projections are stored transposed (column, row), so both the blend and
//! the z loop read contiguous memory, and the volume is worked in tiles of
//! (z chunk, 16 y, 16 x) whose accumulators stay in the core's L2 cache
//! while every angle passes over them. The arithmetic of each sample is the
//! bilinear interpolation of the plain loop, term for term.

use super::cone::ConeGeometry;
use super::{filter_response, pad_edge, Filter};
use crate::rfft::RealFft;
use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

/// Voxel rows (y) and columns (x) of a tile.
const TILE: usize = 16;
/// Longest run of z worked at once (bounds the tile's accumulators).
const Z_CHUNK: usize = 256;
/// Zeros past the blended rows, so a 16-row window starting at any row can
/// be loaded.
const WINDOW_SLACK: usize = 16;
/// Angles summed in float32 before the float64 accumulator takes them.
const ANGLE_BLOCK: usize = 32;

/// Cosine-weight, weight and ramp-filter every row; returns the filtered
/// projections transposed, (na, nd + 2 columns, nr + 2 rows) flattened with a
/// one-pixel zero border, so each detector column is contiguous and samples
/// off the detector read zeros without a branch.
pub(super) fn filter_projections(
    proj: ArrayView3<f32>,
    geo: &ConeGeometry,
    weights: ArrayView2<f32>,
    filter: Filter,
    np: usize,
) -> Vec<f32> {
    let (na, nr, nd) = proj.dim();
    let left = (np - nd) / 2;
    // Ramp in units of the detector pitch scaled to the axis (du D / Dsd).
    let da = geo.pixel * geo.sod / geo.sdd;
    let resp: Vec<f32> = filter_response(filter, np)[..np / 2 + 1]
        .iter()
        .map(|&v| (v / (np as f64 * da)) as f32)
        .collect();
    let r2c = RealFft::forward(np);
    let c2r = RealFft::inverse(np);
    let (w2, h2) = (nd + 2, nr + 2);
    let mut out = vec![0f32; na * h2 * w2];
    out.par_chunks_mut(h2 * w2).enumerate().for_each_init(
        || {
            let zero = Complex32::new(0.0, 0.0);
            (
                vec![0f32; np],
                vec![0f32; nd],
                vec![zero; r2c.complex_len()],
                vec![zero; r2c.scratch_len()],
                vec![zero; c2r.scratch_len()],
            )
        },
        |(buf, row, spec, s1, s2), (a, dst)| {
            let sdd2 = geo.sdd * geo.sdd;
            for r in 0..nr {
                let v = (r as f64 - geo.center_row) * geo.pixel;
                for (c, (o, &p)) in row
                    .iter_mut()
                    .zip(proj.slice(ndarray::s![a, r, ..]))
                    .enumerate()
                {
                    let u = (c as f64 - geo.center_col) * geo.pixel;
                    let cosw = geo.sdd / (sdd2 + u * u + v * v).sqrt();
                    *o = p * (cosw as f32) * weights[[a, c]];
                }
                pad_edge(row.iter(), nd, left, buf);
                r2c.r2c(buf, spec, s1);
                for (z, &h) in spec.iter_mut().zip(&resp) {
                    *z *= h;
                }
                c2r.c2r(spec, buf, s2);
                for (c, &v) in buf[left..left + nd].iter().enumerate() {
                    dst[(c + 1) * h2 + r + 1] = v;
                }
            }
        },
    );
    out
}

/// Voxel-driven back-projection with bilinear interpolation and the FDK
/// distance weight (D / L)^2 of the transposed, bordered filtered projections
/// `filt` (see [`filter_projections`]).
pub(super) fn backproject(filt: &[f32], nr: usize, nd: usize, geo: &ConeGeometry) -> Array3<f32> {
    let (nz, ny, nx) = geo.shape;
    let (cx, cy, cz) = geo.voxel_centre();
    let (w2, h2) = (nd + 2, nr + 2);
    let trig: Vec<(f64, f64)> = geo.theta.iter().map(|t| (t.cos(), t.sin())).collect();
    let na = trig.len();
    let mut out = Array3::<f32>::zeros((nz, ny, nx));
    if filt.len() < na * w2 * h2 {
        return out;
    }
    let zs: Vec<f32> = (0..nz).map(|k| (k as f64 - cz) as f32).collect();
    let cmax = (nd + 1) as f64;
    let kern = Kernel::new(nr);
    out.axis_chunks_iter_mut(Axis(1), TILE)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut strip)| {
            let j0 = b * TILE;
            let nj = strip.dim().1;
            let cap = TILE * TILE * Z_CHUNK.min(nz);
            let mut acc32 = vec![0f32; cap];
            let mut acc64 = vec![0f64; cap];
            let mut blend = vec![0f32; h2 + WINDOW_SLACK];
            for k0 in (0..nz).step_by(Z_CHUNK) {
                let nk = Z_CHUNK.min(nz - k0);
                let zc = &zs[k0..k0 + nk];
                for i0 in (0..nx).step_by(TILE) {
                    let ni = TILE.min(nx - i0);
                    let ncol = nj * ni;
                    acc64[..ncol * nk].fill(0.0);
                    for (a, &(cs, sn)) in trig.iter().enumerate() {
                        let p = &filt[a * w2 * h2..(a + 1) * w2 * h2];
                        for jj in 0..nj {
                            let y = cy - (j0 + jj) as f64;
                            for ii in 0..ni {
                                let x = (i0 + ii) as f64 - cx;
                                let l = geo.sod - x * sn + y * cs;
                                let m = geo.sdd / (l * geo.pixel);
                                let col = geo.center_col + 1.0 + (x * cs + y * sn) * m;
                                // Off the detector (or on its zero border) the
                                // sample is exactly zero for every z.
                                if !(col > 0.0 && col < cmax) {
                                    continue;
                                }
                                let c = col as f32;
                                let ci = (c as usize).min(nd);
                                let g = geo.sod / l;
                                let t = (jj * ni + ii) * nk;
                                kern.column(
                                    &p[ci * h2..(ci + 2) * h2],
                                    c - ci as f32,
                                    (geo.center_row + 1.0) as f32,
                                    m as f32,
                                    (g * g) as f32,
                                    zc,
                                    &mut blend,
                                    &mut acc32[t..t + nk],
                                );
                            }
                        }
                        if (a + 1) % ANGLE_BLOCK == 0 || a + 1 == na {
                            for (s, v) in acc64[..ncol * nk].iter_mut().zip(&mut acc32[..ncol * nk])
                            {
                                *s += *v as f64;
                                *v = 0.0;
                            }
                        }
                    }
                    for jj in 0..nj {
                        for ii in 0..ni {
                            let t = (jj * ni + ii) * nk;
                            for (s, &v) in acc64[t..t + nk].iter().enumerate() {
                                strip[[k0 + s, jj, i0 + ii]] = v as f32;
                            }
                        }
                    }
                }
            }
        });
    out
}

/// The z loop of one voxel column at one angle, with its CPU dispatch.
struct Kernel {
    nr: usize,
    rmax: f32,
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Kernel {
    fn new(nr: usize) -> Self {
        Kernel {
            nr,
            rmax: (nr + 1) as f32,
            #[cfg(target_arch = "x86_64")]
            avx2: std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
        }
    }

    /// acc[k] += wgt * bilinear sample at (row r0 + zs[k] rsc, column ci + fc),
    /// `cols` being the detector columns ci and ci + 1 (2 (nr + 2) values,
    /// bordered), `blend` scratch of nr + 2.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn column(
        &self,
        cols: &[f32],
        fc: f32,
        r0: f32,
        rsc: f32,
        wgt: f32,
        zs: &[f32],
        blend: &mut [f32],
        acc: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if self.avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked in `new`).
                unsafe { self.column_avx2(cols, fc, r0, rsc, wgt, zs, blend, acc) };
                return;
            }
        }
        self.column_generic(cols, fc, r0, rsc, wgt, zs, blend, acc)
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn column_avx2(
        &self,
        cols: &[f32],
        fc: f32,
        r0: f32,
        rsc: f32,
        wgt: f32,
        zs: &[f32],
        blend: &mut [f32],
        acc: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let h2 = self.nr + 2;
        let Some((lo, hi)) = self.blend_rows(cols, fc, r0, rsc, zs, blend) else {
            return;
        };
        let n = acc.len().min(zs.len());
        let nri = self.nr as i32;
        // The gathers read blend[ri] and blend[ri + 1] with lo <= ri < hi < h2
        // (ri clamped to nr below, and the rows grow with z).
        debug_assert!(lo <= hi && hi < h2 && blend.len() == h2 + WINDOW_SLACK);
        let bp = blend.as_ptr();
        let (vr0, vrsc, vw) = (_mm256_set1_ps(r0), _mm256_set1_ps(rsc), _mm256_set1_ps(wgt));
        let (vzero, vmax, vnr) = (
            _mm256_setzero_ps(),
            _mm256_set1_ps(self.rmax),
            _mm256_set1_epi32(nri),
        );
        let (one, seven) = (_mm256_set1_epi32(1), _mm256_set1_epi32(7));
        let mut k = 0;
        // The same operations, in the same order and rounding, as the scalar
        // loop (separate multiplies and adds, no fused ones), so both paths
        // give the same bits.
        while k + 8 <= n {
            let z = _mm256_loadu_ps(zs.as_ptr().add(k));
            let r = _mm256_add_ps(vr0, _mm256_mul_ps(z, vrsc));
            let r = _mm256_min_ps(_mm256_max_ps(r, vzero), vmax);
            let ri = _mm256_min_epi32(_mm256_cvttps_epi32(r), vnr);
            let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
            // The eight rows sit in a window of 16 from the first (the rows
            // grow with z) whenever the row step is below about 2 per voxel,
            // the usual case: two loads and in-register permutes then pick
            // blend[ri] and blend[ri + 1], much cheaper than gathers.
            let base = _mm256_cvtsi256_si32(ri);
            let last = _mm256_extract_epi32::<7>(ri);
            let (t, b) = if last - base <= 14 {
                let idx = _mm256_sub_epi32(ri, _mm256_set1_epi32(base));
                let idx1 = _mm256_add_epi32(idx, one);
                // SAFETY: 0 <= base <= nr and blend.len() >= nr + 2 + 16.
                let w0 = _mm256_loadu_ps(bp.add(base as usize));
                let w1 = _mm256_loadu_ps(bp.add(base as usize + 8));
                let m0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, seven));
                let m1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx1, seven));
                (
                    _mm256_blendv_ps(
                        _mm256_permutevar8x32_ps(w0, idx),
                        _mm256_permutevar8x32_ps(w1, idx),
                        m0,
                    ),
                    _mm256_blendv_ps(
                        _mm256_permutevar8x32_ps(w0, idx1),
                        _mm256_permutevar8x32_ps(w1, idx1),
                        m1,
                    ),
                )
            } else {
                // SAFETY: 0 <= ri <= nr, so ri + 1 < h2 <= blend.len().
                (
                    _mm256_i32gather_ps::<4>(bp, ri),
                    _mm256_i32gather_ps::<4>(bp.add(1), ri),
                )
            };
            let v = _mm256_add_ps(t, _mm256_mul_ps(fr, _mm256_sub_ps(b, t)));
            let o = acc.as_mut_ptr().add(k);
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), _mm256_mul_ps(vw, v)));
            k += 8;
        }
        self.z_loop(&blend[..h2], r0, rsc, wgt, &zs[k..n], &mut acc[k..n]);
    }

    /// Fill `blend[lo..=hi]` with the column-interpolated detector (the
    /// `top` and `bottom` of each bilinear sample) over the rows the z range
    /// reaches; returns (lo, hi). The row grows with z (rsc > 0 and rounding
    /// is monotonic), so the first and last z bound the rows read.
    #[inline(always)]
    fn blend_rows(
        &self,
        cols: &[f32],
        fc: f32,
        r0: f32,
        rsc: f32,
        zs: &[f32],
        blend: &mut [f32],
    ) -> Option<(usize, usize)> {
        let h2 = self.nr + 2;
        if cols.len() != 2 * h2 || blend.len() != h2 + WINDOW_SLACK || zs.is_empty() {
            return None;
        }
        let (c0, c1) = cols.split_at(h2);
        let row = |z: f32| (r0 + z * rsc).clamp(0.0, self.rmax);
        let lo = (row(zs[0]) as usize).min(self.nr);
        let hi = (row(zs[zs.len() - 1]) as usize).min(self.nr) + 1;
        for ((b, &a), &d) in blend[lo..=hi]
            .iter_mut()
            .zip(&c0[lo..=hi])
            .zip(&c1[lo..=hi])
        {
            *b = a + fc * (d - a);
        }
        Some((lo, hi))
    }

    /// acc[k] += wgt * linear sample of `blend` at row r0 + zs[k] rsc.
    #[inline(always)]
    fn z_loop(&self, blend: &[f32], r0: f32, rsc: f32, wgt: f32, zs: &[f32], acc: &mut [f32]) {
        let nri = self.nr;
        if blend.len() < nri + 2 {
            return;
        }
        for (o, &z) in acc.iter_mut().zip(zs) {
            let r = (r0 + z * rsc).clamp(0.0, self.rmax);
            // Saturating cast (NaN -> 0), then clamped: ri <= nr.
            let ri = (r as usize).min(nri);
            let fr = r - ri as f32;
            // SAFETY: ri + 1 <= nr + 1 < blend.len().
            let (t, b) = unsafe { (*blend.get_unchecked(ri), *blend.get_unchecked(ri + 1)) };
            *o += wgt * (t + fr * (b - t));
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn column_generic(
        &self,
        cols: &[f32],
        fc: f32,
        r0: f32,
        rsc: f32,
        wgt: f32,
        zs: &[f32],
        blend: &mut [f32],
        acc: &mut [f32],
    ) {
        if self.blend_rows(cols, fc, r0, rsc, zs, blend).is_some() {
            self.z_loop(&blend[..self.nr + 2], r0, rsc, wgt, zs, acc);
        }
    }
}
