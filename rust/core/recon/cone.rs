//! Circular cone-beam (lab micro-CT) geometry, FDK reconstruction and a
//! matched Joseph forward / back-projector pair.
//!
//! Conventions (documented once for users in `python/scintomo/recon/__init__.py`;
//! the same as RTK's `ThreeDCircularProjectionGeometry` with RTK's y, the
//! rotation axis, as our z and RTK's z as our -y). Lengths are in voxel units.
//! Voxel (k, j, i) of an (nz, ny, nx) volume sits at x = i - (nx - 1) / 2,
//! y = (ny - 1) / 2 - j (up, as in the parallel-beam slices), z = k - (nz - 1)
//! / 2 + z_offset (along the rotation axis, the direction of increasing
//! detector rows; `z_offset` places a z-slab of a taller volume, 0 centres
//! the volume on the source plane).
//! At angle theta the source is at S = D (sin theta, -cos theta, 0), the
//! central ray runs along d = (-sin theta, cos theta, 0) and the detector's
//! untilted column axis is e_u = (cos theta, sin theta, 0), its row axis
//! e_v = z. A point P lands at u = Dsd (P . e_u) / L, v = Dsd z / L with
//! L = D + P . d, i.e. at column cc + u / du, row cr + v / du; far from the
//! source this is the parallel-beam rule x cos theta + y sin theta = s. A
//! detector tilted by phi in its plane has its column axis along
//! cos(phi) e_u + sin(phi) e_v and its row axis along -sin(phi) e_u +
//! cos(phi) e_v.

use super::Filter;
use crate::error::{CoreError, CoreResult};
use ndarray::{Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// A circular cone-beam scan and the volume it is reconstructed into; all
/// lengths in voxel units.
#[derive(Debug, Clone)]
pub struct ConeGeometry {
    /// Projection angles, radians.
    pub theta: Vec<f64>,
    /// Source to rotation axis.
    pub sod: f64,
    /// Source to detector.
    pub sdd: f64,
    /// Detector pixel pitch.
    pub pixel: f64,
    /// Column and row (pixel centres at integers) where the central ray meets
    /// the detector.
    pub center_col: f64,
    pub center_row: f64,
    /// In-plane detector tilt, radians.
    pub tilt: f64,
    /// Volume shape (nz, ny, nx).
    pub shape: (usize, usize, usize),
    /// Height of the volume's centre above the source plane: voxel k sits at
    /// z = k - (nz - 1) / 2 + z_offset. A cone is not shift-invariant along
    /// z, so a slab of a taller volume is this slab's rows with the offset
    /// that puts them where they are in the whole, not a centred volume.
    pub z_offset: f64,
}

impl ConeGeometry {
    fn check(&self, n_angles: usize, n_rows: usize, n_cols: usize) -> CoreResult<()> {
        let (nz, ny, nx) = self.shape;
        if nz == 0 || ny == 0 || nx == 0 {
            return Err(CoreError::shape(format!(
                "the volume shape must be positive, got {:?}",
                self.shape
            )));
        }
        if n_angles == 0 || n_rows == 0 || n_cols < 2 {
            return Err(CoreError::shape(format!(
                "projections must have at least 1 angle, 1 row and 2 columns, got ({n_angles}, {n_rows}, {n_cols})"
            )));
        }
        if self.theta.len() != n_angles {
            return Err(CoreError::shape(format!(
                "{} angles for {} projections",
                self.theta.len(),
                n_angles
            )));
        }
        let vals = [
            self.sod,
            self.sdd,
            self.pixel,
            self.center_col,
            self.center_row,
            self.tilt,
            self.z_offset,
        ];
        if vals.iter().chain(&self.theta).any(|v| !v.is_finite()) {
            return Err(CoreError::parameter(
                "the cone geometry and the angles must be finite",
            ));
        }
        if !(self.sod > 0.0 && self.sdd > self.sod && self.pixel > 0.0) {
            return Err(CoreError::parameter(format!(
                "need 0 < source_object ({}) < source_detector ({}) and pixel > 0 ({})",
                self.sod, self.sdd, self.pixel
            )));
        }
        let half = 0.5 * ((nx * nx + ny * ny) as f64).sqrt();
        if self.sod <= half {
            return Err(CoreError::parameter(format!(
                "the source ({} voxels from the axis) is inside the volume (half-diagonal {half:.1} voxels)",
                self.sod
            )));
        }
        Ok(())
    }

    /// The index-space position (i, j, k) of the origin (on the rotation
    /// axis, in the source plane): x = i - cx, y = cy - j, z = k - cz. Every
    /// kernel maps between voxels and space through this alone, so the z
    /// offset is honoured by FDK and the projector pair alike.
    pub(super) fn voxel_centre(&self) -> (f64, f64, f64) {
        let (nz, ny, nx) = self.shape;
        (
            (nx as f64 - 1.0) / 2.0,
            (ny as f64 - 1.0) / 2.0,
            (nz as f64 - 1.0) / 2.0 - self.z_offset,
        )
    }
}

/// FDK (Feldkamp, Davis and Kress 1984; Kak and Slaney 1988 eq. 3.191) of
/// `proj` (angle, row, column), -log line integrals, on an untilted
/// detector. `weights` (angle, column) multiply each projection before the
/// filter: the quadrature weight of the angle times the redundancy weight
/// (1/2 for a full turn, Parker's or Wang's otherwise). Returns (nz, ny, nx)
/// float32, attenuation per voxel.
pub fn fdk(
    proj: ArrayView3<f32>,
    geo: &ConeGeometry,
    weights: ArrayView2<f32>,
    filter: Filter,
    pad_len: usize,
) -> CoreResult<Array3<f32>> {
    let (na, nr, nd) = proj.dim();
    geo.check(na, nr, nd)?;
    if geo.tilt != 0.0 {
        return Err(CoreError::parameter(
            "FDK needs an untilted detector: resample the projections first",
        ));
    }
    if weights.dim() != (na, nd) {
        return Err(CoreError::shape(format!(
            "weights must be (angles, columns) = ({na}, {nd}), got {:?}",
            weights.dim()
        )));
    }
    if pad_len < nd || pad_len > (1 << 20) {
        return Err(CoreError::parameter(format!(
            "pad length {pad_len} must be between the detector width {nd} and 2^20"
        )));
    }
    let bad = proj
        .iter()
        .chain(weights.iter())
        .filter(|v| !v.is_finite())
        .count();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "projections and weights".into(),
            count: bad,
        });
    }
    let filtered = super::fdk::filter_projections(proj, geo, weights, filter, pad_len);
    Ok(super::fdk::backproject(&filtered, nr, nd, geo))
}

/// Visit the (flat voxel index, weight) pairs of Joseph's (1982) line
/// integral along the ray from `src` to `det` (voxel units, index space
/// given by the volume's centre): the ray is sampled once per voxel plane
/// across its dominant axis, bilinearly between the four nearest voxel
/// centres of that plane, each sample weighted by the ray length per plane.
#[inline]
fn joseph<F: FnMut(usize, f32)>(
    src: [f64; 3],
    det: [f64; 3],
    shape: (usize, usize, usize),
    mut f: F,
) {
    let (nz, ny, nx) = shape;
    let dims = [nx, ny, nz];
    let r = [det[0] - src[0], det[1] - src[1], det[2] - src[2]];
    let len = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
    let m = if r[0].abs() >= r[1].abs() && r[0].abs() >= r[2].abs() {
        0
    } else if r[1].abs() >= r[2].abs() {
        1
    } else {
        2
    };
    if r[m] == 0.0 {
        return;
    }
    let (a, b) = match m {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let step = (len / r[m].abs()) as f32;
    let strides = [1usize, nx, nx * ny];
    for n in 0..dims[m] {
        let t = (n as f64 - src[m]) / r[m];
        let pa = src[a] + t * r[a];
        let pb = src[b] + t * r[b];
        if pa <= -1.0 || pb <= -1.0 || pa >= dims[a] as f64 || pb >= dims[b] as f64 {
            continue;
        }
        let ia = pa.floor();
        let ib = pb.floor();
        let fa = (pa - ia) as f32;
        let fb = (pb - ib) as f32;
        let (ia, ib) = (ia as i64, ib as i64);
        let base = n * strides[m];
        for (da, wa) in [(0i64, 1.0 - fa), (1, fa)] {
            let qa = ia + da;
            if qa < 0 || qa >= dims[a] as i64 {
                continue;
            }
            for (db, wb) in [(0i64, 1.0 - fb), (1, fb)] {
                let qb = ib + db;
                if qb < 0 || qb >= dims[b] as i64 {
                    continue;
                }
                let w = wa * wb * step;
                if w != 0.0 {
                    f(
                        base + qa as usize * strides[a] + qb as usize * strides[b],
                        w,
                    );
                }
            }
        }
    }
}

/// Source and per-ray detector point of angle `a`, both in index space
/// (fi = x + cx, fj = cy - y, fk = z + cz): the closure maps (row, column)
/// to the detector pixel's centre.
fn ray_ends(geo: &ConeGeometry, theta: f64) -> ([f64; 3], impl Fn(usize, usize) -> [f64; 3] + '_) {
    let (cx, cy, cz) = geo.voxel_centre();
    let (cs, sn) = (theta.cos(), theta.sin());
    let (ct, st) = (geo.tilt.cos(), geo.tilt.sin());
    let src = [geo.sod * sn + cx, cy + geo.sod * cs, cz];
    let det = move |r: usize, c: usize| {
        let pc = (c as f64 - geo.center_col) * geo.pixel;
        let pr = (r as f64 - geo.center_row) * geo.pixel;
        // Detector coordinates along e_u and e_v (see the module docs).
        let u = pc * ct - pr * st;
        let v = pc * st + pr * ct;
        let q = geo.sdd - geo.sod; // axis to detector
        let x = -q * sn + u * cs;
        let y = q * cs + u * sn;
        [x + cx, cy - y, v + cz]
    };
    (src, det)
}

/// Cone-beam forward projection (Joseph): (nz, ny, nx) attenuation per voxel
/// -> (angle, n_rows, n_cols) line integrals.
pub fn cone_project(
    vol: ArrayView3<f32>,
    geo: &ConeGeometry,
    n_rows: usize,
    n_cols: usize,
) -> CoreResult<Array3<f32>> {
    if vol.dim() != geo.shape {
        return Err(CoreError::shape(format!(
            "volume {:?} does not match the geometry's shape {:?}",
            vol.dim(),
            geo.shape
        )));
    }
    let na = geo.theta.len();
    geo.check(na, n_rows, n_cols)?;
    let vol = vol.as_standard_layout();
    let v = vol.as_slice().unwrap_or(&[]);
    let mut out = Array3::<f32>::zeros((na, n_rows, n_cols));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(a, mut p)| {
            let (src, det) = ray_ends(geo, geo.theta[a]);
            for ((r, c), o) in p.indexed_iter_mut() {
                let mut s = 0f64;
                joseph(src, det(r, c), geo.shape, |idx, w| s += (w * v[idx]) as f64);
                *o = s as f32;
            }
        });
    Ok(out)
}

/// The exact adjoint (transpose) of [`cone_project`]: (angle, row, column)
/// -> (nz, ny, nx), unweighted.
pub fn cone_backproject(proj: ArrayView3<f32>, geo: &ConeGeometry) -> CoreResult<Array3<f32>> {
    let (na, nr, nc) = proj.dim();
    geo.check(na, nr, nc)?;
    let (nz, ny, nx) = geo.shape;
    let nvox = nz * ny * nx;
    let nt = rayon::current_num_threads().max(1);
    let chunk = na.div_ceil(nt).max(1);
    let idx: Vec<usize> = (0..na).collect();
    let sum = idx
        .par_chunks(chunk)
        .map(|angles| {
            let mut acc = vec![0f64; nvox];
            for &a in angles {
                let (src, det) = ray_ends(geo, geo.theta[a]);
                for r in 0..nr {
                    for c in 0..nc {
                        let y = proj[[a, r, c]] as f64;
                        if y != 0.0 {
                            joseph(src, det(r, c), geo.shape, |i, w| acc[i] += y * w as f64);
                        }
                    }
                }
            }
            acc
        })
        .reduce_with(|mut x, y| {
            for (p, q) in x.iter_mut().zip(&y) {
                *p += q;
            }
            x
        })
        .unwrap_or_else(|| vec![0f64; nvox]);
    let data: Vec<f32> = sum.iter().map(|&v| v as f32).collect();
    Array3::from_shape_vec((nz, ny, nx), data).map_err(|e| CoreError::shape(format!("volume: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(shape: (usize, usize, usize), na: usize) -> ConeGeometry {
        ConeGeometry {
            theta: (0..na).map(|a| a as f64 * 0.37).collect(),
            sod: 60.0,
            sdd: 150.0,
            pixel: 2.0,
            center_col: 11.3,
            center_row: 6.8,
            tilt: 0.05,
            shape,
            z_offset: 0.0,
        }
    }

    /// Pseudo-random numbers in [-0.5, 0.5).
    fn rng(mut s: u64) -> impl FnMut() -> f32 {
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32 - 0.5
        }
    }

    /// <A x, y> = <x, A^T y> with a pseudo-random x and y, centred and off
    /// the source plane.
    #[test]
    fn adjoint() {
        for z_offset in [0.0, 2.5, -3.0] {
            adjoint_case(z_offset);
        }
    }

    fn adjoint_case(z_offset: f64) {
        let g = ConeGeometry {
            z_offset,
            ..geo((9, 12, 10), 5)
        };
        let mut rnd = rng(12345);
        let x = Array3::from_shape_fn(g.shape, |_| rnd());
        let y = Array3::from_shape_fn((5, 14, 22), |_| rnd());
        let ax = cone_project(x.view(), &g, 14, 22).unwrap();
        let aty = cone_backproject(y.view(), &g).unwrap();
        let l: f64 = ax
            .iter()
            .zip(&y)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        let r: f64 = x
            .iter()
            .zip(&aty)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        assert!(
            (l - r).abs() <= 1e-5 * l.abs().max(r.abs()),
            "z_offset {z_offset}: {l} {r}"
        );
    }

    /// Slices k0..k1 of a (nz, ny, nx) volume as their own volume: the slab's
    /// centre sits k0 + (ns - 1) / 2 - (nz - 1) / 2 above the whole's.
    fn slab_geo(g: &ConeGeometry, k0: usize, k1: usize) -> ConeGeometry {
        let (nz, ny, nx) = g.shape;
        let ns = k1 - k0;
        ConeGeometry {
            shape: (ns, ny, nx),
            z_offset: g.z_offset + k0 as f64 + (ns as f64 - 1.0) / 2.0 - (nz as f64 - 1.0) / 2.0,
            ..g.clone()
        }
    }

    /// FDK of a z-slab with its offset is the same slices of the whole
    /// volume (every slab of an uneven split, the outer ones far off the
    /// source plane).
    #[test]
    fn fdk_slab_matches_whole() {
        let mut g = geo((13, 10, 10), 24);
        g.theta = (0..24)
            .map(|a| a as f64 * std::f64::consts::TAU / 24.0)
            .collect();
        g.tilt = 0.0;
        g.center_row = 9.4;
        let (nr, nd) = (20, 22);
        let mut rnd = rng(777);
        let proj = Array3::from_shape_fn((24, nr, nd), |_| rnd() + 0.5);
        let w = ndarray::Array2::from_elem((24, nd), 0.5f32);
        let whole = fdk(proj.view(), &g, w.view(), Filter::Shepp, 32).unwrap();
        let peak = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.0);
        for (k0, k1) in [(0, 3), (3, 8), (8, 9), (9, 13), (0, 13)] {
            let sg = slab_geo(&g, k0, k1);
            let slab = fdk(proj.view(), &sg, w.view(), Filter::Shepp, 32).unwrap();
            let want = whole.slice(ndarray::s![k0..k1, .., ..]);
            let err = slab
                .iter()
                .zip(want.iter())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-6 * peak, "slab {k0}..{k1}: {err} (peak {peak})");
        }
    }

    /// The projector honours the offset too: a slab projects like the whole
    /// volume that is zero outside it, and back-projects into its slices.
    #[test]
    fn projector_slab_matches_whole() {
        let g = geo((11, 12, 10), 4);
        let (k0, k1) = (6, 10);
        let sg = slab_geo(&g, k0, k1);
        let mut rnd = rng(99);
        let x = Array3::from_shape_fn(sg.shape, |_| rnd());
        let mut xw = Array3::<f32>::zeros(g.shape);
        xw.slice_mut(ndarray::s![k0..k1, .., ..]).assign(&x);
        let p = cone_project(x.view(), &sg, 16, 24).unwrap();
        let pw = cone_project(xw.view(), &g, 16, 24).unwrap();
        let peak = pw.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = p
            .iter()
            .zip(&pw)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(peak > 0.0 && err <= 1e-5 * peak, "{err} (peak {peak})");
        let bw = cone_backproject(pw.view(), &g).unwrap();
        let b = cone_backproject(pw.view(), &sg).unwrap();
        let want = bw.slice(ndarray::s![k0..k1, .., ..]);
        let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = b
            .iter()
            .zip(want.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(peak > 0.0 && err <= 1e-5 * peak, "{err} (peak {peak})");
    }

    /// A uniform volume's central ray through the axis has the chord length nx.
    #[test]
    fn central_ray_length() {
        let mut g = geo((3, 16, 16), 1);
        g.theta = vec![0.0];
        g.tilt = 0.0;
        g.center_col = 10.0;
        g.center_row = 5.0;
        let x = Array3::from_elem(g.shape, 1.0f32);
        let p = cone_project(x.view(), &g, 11, 21).unwrap();
        assert!((p[[0, 5, 10]] - 16.0).abs() < 1e-4, "{}", p[[0, 5, 10]]);
    }

    #[test]
    fn bad_geometry() {
        let mut g = geo((4, 40, 40), 2);
        g.sod = 20.0; // inside the volume
        let x = Array3::<f32>::zeros(g.shape);
        assert!(matches!(
            cone_project(x.view(), &g, 4, 4),
            Err(CoreError::Parameter(_))
        ));
    }
}
