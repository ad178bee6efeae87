//! Joseph's (1982) cone-beam forward projector and its exact transpose, on
//! the circular geometry of `recon/cone.rs` (its module docs give the
//! conventions); moved here from `cone.rs` so that FDK, the Python entry
//! points and the iterative methods share one projector pair.

use super::Projector;
use crate::error::{CoreError, CoreResult};
use crate::recon::ConeGeometry;
use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

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
    let op = ConeProjector::new(geo.clone(), n_rows, n_cols)?;
    let vol = vol.as_standard_layout();
    let v = vol.as_slice().unwrap_or(&[]);
    let mut out = Array3::<f32>::zeros((geo.theta.len(), n_rows, n_cols));
    if let Some(o) = out.as_slice_mut() {
        op.forward(v, o);
    }
    Ok(out)
}

/// The exact adjoint (transpose) of [`cone_project`]: (angle, row, column)
/// -> (nz, ny, nx), unweighted.
pub fn cone_backproject(proj: ArrayView3<f32>, geo: &ConeGeometry) -> CoreResult<Array3<f32>> {
    let (_, nr, nc) = proj.dim();
    let op = ConeProjector::new(geo.clone(), nr, nc)?;
    if proj.dim().0 != geo.theta.len() {
        return Err(CoreError::shape(format!(
            "{} angles for {} projections",
            geo.theta.len(),
            proj.dim().0
        )));
    }
    let proj = proj.as_standard_layout();
    let p = proj.as_slice().unwrap_or(&[]);
    let mut out = Array3::<f32>::zeros(geo.shape);
    if let Some(o) = out.as_slice_mut() {
        op.back(p, o);
    }
    Ok(out)
}

/// The cone-beam pair on an (n_rows, n_cols) detector as a [`Projector`].
#[derive(Debug, Clone)]
pub struct ConeProjector {
    geo: ConeGeometry,
    nr: usize,
    nc: usize,
}

impl ConeProjector {
    pub fn new(geo: ConeGeometry, n_rows: usize, n_cols: usize) -> CoreResult<Self> {
        geo.check(geo.theta.len(), n_rows, n_cols)?;
        Ok(ConeProjector {
            geo,
            nr: n_rows,
            nc: n_cols,
        })
    }

    pub fn geometry(&self) -> &ConeGeometry {
        &self.geo
    }
}

impl Projector for ConeProjector {
    fn vol_len(&self) -> usize {
        let (nz, ny, nx) = self.geo.shape;
        nz * ny * nx
    }

    fn proj_len(&self) -> usize {
        self.geo.theta.len() * self.nr * self.nc
    }

    fn n_angles(&self) -> usize {
        self.geo.theta.len()
    }

    fn forward(&self, v: &[f32], y: &mut [f32]) {
        let (geo, nr, nc) = (&self.geo, self.nr, self.nc);
        if v.len() != self.vol_len() || y.len() != self.proj_len() {
            return;
        }
        y.par_chunks_mut(nr * nc).enumerate().for_each(|(a, p)| {
            let (src, det) = ray_ends(geo, geo.theta[a]);
            for (rc, o) in p.iter_mut().enumerate() {
                let mut s = 0f64;
                joseph(src, det(rc / nc, rc % nc), geo.shape, |idx, w| {
                    s += (w * v[idx]) as f64
                });
                *o = s as f32;
            }
        });
    }

    fn back(&self, proj: &[f32], x: &mut [f32]) {
        let (geo, nr, nc) = (&self.geo, self.nr, self.nc);
        let na = geo.theta.len();
        let nvox = self.vol_len();
        if x.len() != nvox || proj.len() != self.proj_len() {
            return;
        }
        // Rays scatter into the volume: each task accumulates its angles in
        // its own float64 volume, summed at the end.
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
                            let y = proj[(a * nr + r) * nc + c] as f64;
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
        x.par_iter_mut().zip(&sum).for_each(|(o, s)| *o = *s as f32);
    }

    fn subset(&self, angles: &[usize]) -> Box<dyn Projector + '_> {
        let mut s = self.clone();
        s.geo.theta = angles.iter().map(|&a| self.geo.theta[a]).collect();
        Box::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::cone::test_support::{geo, rng, slab_geo};

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
