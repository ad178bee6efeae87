//! Bindings of the projector module (parallel-beam pair, the PSF in the
//! model) and of the iterative reconstructions (SIRT, CGLS, TV).

use numpy::{IntoPyArray, PyArray1, PyArray3, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use scintomo_core::recon::iterative::{self, IterOptions, IterReport};
use scintomo_core::recon::project::{Blurred, ConeProjector, ParallelProjector, Projector};
use scintomo_core::recon::ConeGeometry;
use scintomo_core::CoreError;

use crate::errors::PyCoreError;
use crate::util::run;

/// The base projector, followed by the PSF when given.
type Kernel = Option<(Vec<f32>, (usize, usize))>;

/// The PSF's values and shape, copied out of Python before the GIL is released.
fn kernel(psf: Option<PyReadonlyArray2<'_, f32>>) -> Kernel {
    psf.map(|k| {
        let a = k.as_array();
        (a.iter().copied().collect(), a.dim())
    })
}

fn with_psf<'a>(
    base: Box<dyn Projector + 'a>,
    psf: &Kernel,
    n_rows: usize,
    n_cols: usize,
) -> Result<Box<dyn Projector + 'a>, CoreError> {
    match psf {
        None => Ok(base),
        Some((v, (kh, kw))) => Ok(Box::new(Blurred::new(base, v, *kh, *kw, n_rows, n_cols)?)),
    }
}

fn flat(a: &PyReadonlyArray3<'_, f32>) -> Vec<f32> {
    a.as_array().iter().copied().collect()
}

fn shaped<'py>(
    py: Python<'py>,
    v: Vec<f32>,
    dim: (usize, usize, usize),
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let a = ndarray::Array3::from_shape_vec(dim, v)
        .map_err(|e| PyCoreError(CoreError::shape(e.to_string())))?;
    Ok(a.into_pyarray(py))
}

/// Linear (ASTRA `linear`) parallel-beam projection of (nz, n, n) slices
/// into (angle, nz, n_det) line integrals, optionally blurred by `psf`.
#[pyfunction]
#[pyo3(signature = (volume, theta, centers, *, n_det, psf = None, n_threads = None))]
fn parallel_project<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    centers: Vec<f64>,
    n_det: usize,
    psf: Option<PyReadonlyArray2<'py, f32>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let (nz, ny, nx) = volume.as_array().dim();
    if ny != nx || centers.len() != nz {
        return Err(PyCoreError(CoreError::shape(format!(
            "volume must be (slices, n, n) with one centre per slice, got {:?} and {} centres",
            (nz, ny, nx),
            centers.len()
        )))
        .into());
    }
    let x = flat(&volume);
    let na = theta.len();
    let psf = kernel(psf);
    let out = run(py, n_threads, || {
        let base = Box::new(ParallelProjector::new(&theta, &centers, nx, n_det)?);
        let op = with_psf(base, &psf, nz, n_det)?;
        let mut y = vec![0f32; op.proj_len()];
        op.forward(&x, &mut y);
        Ok(y)
    })?;
    shaped(py, out, (na, nz, n_det))
}

/// The exact transpose of `parallel_project`.
#[pyfunction]
#[pyo3(signature = (projections, theta, centers, *, n, psf = None, n_threads = None))]
fn parallel_backproject<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    centers: Vec<f64>,
    n: usize,
    psf: Option<PyReadonlyArray2<'py, f32>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let (na, nz, nd) = projections.as_array().dim();
    if na != theta.len() || nz != centers.len() {
        return Err(PyCoreError(CoreError::shape(format!(
            "projections {:?} for {} angles and {} centres",
            (na, nz, nd),
            theta.len(),
            centers.len()
        )))
        .into());
    }
    let y = flat(&projections);
    let psf = kernel(psf);
    let out = run(py, n_threads, || {
        let base = Box::new(ParallelProjector::new(&theta, &centers, n, nd)?);
        let op = with_psf(base, &psf, nz, nd)?;
        let mut x = vec![0f32; op.vol_len()];
        op.back(&y, &mut x);
        Ok(x)
    })?;
    shaped(py, out, (nz, n, n))
}

/// Cone-beam projector (and PSF) as one operator, for the adjoint test of
/// the blurred pair; `adjoint` selects A^T.
#[pyfunction]
#[pyo3(signature = (data, theta, *, sod, sdd, pixel, center_col, center_row, tilt, shape,
                    n_rows, n_cols, z_offset = 0.0, psf = None, adjoint = false, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn cone_apply<'py>(
    py: Python<'py>,
    data: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    sod: f64,
    sdd: f64,
    pixel: f64,
    center_col: f64,
    center_row: f64,
    tilt: f64,
    shape: (usize, usize, usize),
    n_rows: usize,
    n_cols: usize,
    z_offset: f64,
    psf: Option<PyReadonlyArray2<'py, f32>>,
    adjoint: bool,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let na = theta.len();
    let want = if adjoint { (na, n_rows, n_cols) } else { shape };
    if data.as_array().dim() != want {
        return Err(PyCoreError(CoreError::shape(format!(
            "input {:?}, expected {want:?}",
            data.as_array().dim()
        )))
        .into());
    }
    let geo = ConeGeometry {
        theta,
        sod,
        sdd,
        pixel,
        center_col,
        center_row,
        tilt,
        shape,
        z_offset,
    };
    let v = flat(&data);
    let psf = kernel(psf);
    let out = run(py, n_threads, || {
        let base = Box::new(ConeProjector::new(geo, n_rows, n_cols)?);
        let op = with_psf(base, &psf, n_rows, n_cols)?;
        if adjoint {
            let mut x = vec![0f32; op.vol_len()];
            op.back(&v, &mut x);
            Ok(x)
        } else {
            let mut y = vec![0f32; op.proj_len()];
            op.forward(&v, &mut y);
            Ok(y)
        }
    })?;
    shaped(py, out, if adjoint { shape } else { (na, n_rows, n_cols) })
}

/// What every iterative call shares.
struct Solve<'py> {
    algorithm: String,
    opts: IterOptions,
    b: Vec<f32>,
    w: Option<Vec<f32>>,
    x: Vec<f32>,
    callback: Option<Py<PyAny>>,
    callback_x: bool,
    _py: std::marker::PhantomData<&'py ()>,
}

type Outcome<'py> = (Bound<'py, PyArray3<f32>>, Vec<f64>, Vec<f64>, String);

impl<'py> Solve<'py> {
    fn go(
        mut self,
        py: Python<'py>,
        n_threads: Option<usize>,
        make: impl FnOnce() -> Result<Box<dyn Projector + 'static>, PyCoreError> + Send,
        vol_shape: (usize, usize, usize),
    ) -> PyResult<Outcome<'py>> {
        let mut cb_err: Option<PyErr> = None;
        let cb = self.callback.take();
        let want_x = self.callback_x;
        let (alg, opts) = (self.algorithm.clone(), self.opts.clone());
        let (b, w) = (std::mem::take(&mut self.b), self.w.take());
        let mut x = std::mem::take(&mut self.x);
        let err_slot = &mut cb_err;
        let rep: IterReport = run(py, n_threads, || {
            let op = make().map_err(|e| e.0)?;
            let mut monitor = |k: usize, res: f64, change: f64, xk: &[f32]| -> bool {
                let Some(cb) = &cb else { return true };
                Python::attach(|py| {
                    let arr = if want_x {
                        Some(PyArray1::from_slice(py, xk))
                    } else {
                        None
                    };
                    match cb.call1(py, (k, res, change, arr)) {
                        Ok(v) => !v.bind(py).is_truthy().unwrap_or(false),
                        Err(e) => {
                            *err_slot = Some(e);
                            false
                        }
                    }
                })
            };
            let w = w.as_deref();
            match alg.as_str() {
                "sirt" => iterative::sirt(op.as_ref(), &b, w, &mut x, &opts, &mut monitor),
                "cgls" => iterative::cgls(op.as_ref(), &b, w, &mut x, &opts, &mut monitor),
                "tv" => iterative::tv(op.as_ref(), &b, w, &mut x, &opts, &mut monitor),
                other => Err(CoreError::parameter(format!(
                    "algorithm must be sirt, cgls or tv, got {other:?}"
                ))),
            }
        })?;
        if let Some(e) = cb_err {
            return Err(e);
        }
        Ok((
            shaped(py, x, vol_shape)?,
            rep.residuals,
            rep.changes,
            rep.stop.name().to_string(),
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    algorithm: &str,
    projections: &PyReadonlyArray3<'py, f32>,
    x0: Option<PyReadonlyArray3<'py, f32>>,
    vol_shape: (usize, usize, usize),
    weights: Option<PyReadonlyArray3<'py, f32>>,
    opts: IterOptions,
    callback: Option<Py<PyAny>>,
    callback_x: bool,
) -> PyResult<Solve<'py>> {
    let pdim = projections.as_array().dim();
    if let Some(w) = &weights {
        if w.as_array().dim() != pdim {
            return Err(PyCoreError(CoreError::shape(format!(
                "weights must have the projections' shape {pdim:?}, got {:?}",
                w.as_array().dim()
            )))
            .into());
        }
    }
    let x = match &x0 {
        Some(a) => {
            if a.as_array().dim() != vol_shape {
                return Err(PyCoreError(CoreError::shape(format!(
                    "x0 must have the volume's shape {vol_shape:?}, got {:?}",
                    a.as_array().dim()
                )))
                .into());
            }
            flat(a)
        }
        None => vec![0f32; vol_shape.0 * vol_shape.1 * vol_shape.2],
    };
    Ok(Solve {
        algorithm: algorithm.to_string(),
        opts,
        b: flat(projections),
        w: weights.as_ref().map(flat),
        x,
        callback,
        callback_x,
        _py: std::marker::PhantomData,
    })
}

#[allow(clippy::too_many_arguments)]
fn options(
    iterations: usize,
    nonnegative: bool,
    tol: Option<f64>,
    discrepancy: Option<f64>,
    n_subsets: usize,
    tv_weight: f64,
    tv_shape: (usize, usize, usize),
    tv_3d: bool,
) -> IterOptions {
    IterOptions {
        iterations,
        nonnegative,
        tol,
        discrepancy,
        n_subsets,
        tv_weight,
        tv_shape,
        tv_3d,
    }
}

/// SIRT / CGLS / TV of (angle, slice, column) parallel-beam projections into
/// (slice, n, n); returns (volume, residuals, changes, stop reason).
#[pyfunction]
#[pyo3(signature = (projections, theta, centers, *, n, algorithm, iterations, x0 = None,
                    psf = None, weights = None, nonnegative = true, tol = None,
                    discrepancy = None, n_subsets = 1, tv_weight = 0.0, callback = None,
                    callback_x = false, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn parallel_iterative<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    centers: Vec<f64>,
    n: usize,
    algorithm: &str,
    iterations: usize,
    x0: Option<PyReadonlyArray3<'py, f32>>,
    psf: Option<PyReadonlyArray2<'py, f32>>,
    weights: Option<PyReadonlyArray3<'py, f32>>,
    nonnegative: bool,
    tol: Option<f64>,
    discrepancy: Option<f64>,
    n_subsets: usize,
    tv_weight: f64,
    callback: Option<Py<PyAny>>,
    callback_x: bool,
    n_threads: Option<usize>,
) -> PyResult<Outcome<'py>> {
    let (na, nz, nd) = projections.as_array().dim();
    if na != theta.len() || nz != centers.len() {
        return Err(PyCoreError(CoreError::shape(format!(
            "projections {:?} for {} angles and {} centres",
            (na, nz, nd),
            theta.len(),
            centers.len()
        )))
        .into());
    }
    let shape = (nz, n, n);
    let opts = options(
        iterations,
        nonnegative,
        tol,
        discrepancy,
        n_subsets,
        tv_weight,
        shape,
        false,
    );
    let psf = kernel(psf);
    let s = solve(
        algorithm,
        &projections,
        x0,
        shape,
        weights,
        opts,
        callback,
        callback_x,
    )?;
    s.go(
        py,
        n_threads,
        move || {
            let base: Box<dyn Projector> =
                Box::new(ParallelProjector::new(&theta, &centers, n, nd)?);
            Ok(with_psf(base, &psf, nz, nd)?)
        },
        shape,
    )
}

/// SIRT / CGLS / TV of cone-beam projections into a (nz, ny, nx) volume.
#[pyfunction]
#[pyo3(signature = (projections, theta, *, sod, sdd, pixel, center_col, center_row, tilt, shape,
                    z_offset = 0.0, algorithm, iterations, x0 = None, psf = None, weights = None,
                    nonnegative = true, tol = None, discrepancy = None, n_subsets = 1,
                    tv_weight = 0.0, callback = None, callback_x = false, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn cone_iterative<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    sod: f64,
    sdd: f64,
    pixel: f64,
    center_col: f64,
    center_row: f64,
    tilt: f64,
    shape: (usize, usize, usize),
    z_offset: f64,
    algorithm: &str,
    iterations: usize,
    x0: Option<PyReadonlyArray3<'py, f32>>,
    psf: Option<PyReadonlyArray2<'py, f32>>,
    weights: Option<PyReadonlyArray3<'py, f32>>,
    nonnegative: bool,
    tol: Option<f64>,
    discrepancy: Option<f64>,
    n_subsets: usize,
    tv_weight: f64,
    callback: Option<Py<PyAny>>,
    callback_x: bool,
    n_threads: Option<usize>,
) -> PyResult<Outcome<'py>> {
    let (_, nr, nc) = projections.as_array().dim();
    let geo = ConeGeometry {
        theta,
        sod,
        sdd,
        pixel,
        center_col,
        center_row,
        tilt,
        shape,
        z_offset,
    };
    let opts = options(
        iterations,
        nonnegative,
        tol,
        discrepancy,
        n_subsets,
        tv_weight,
        shape,
        true,
    );
    let psf = kernel(psf);
    let s = solve(
        algorithm,
        &projections,
        x0,
        shape,
        weights,
        opts,
        callback,
        callback_x,
    )?;
    s.go(
        py,
        n_threads,
        move || {
            let base: Box<dyn Projector> = Box::new(ConeProjector::new(geo, nr, nc)?);
            Ok(with_psf(base, &psf, nr, nc)?)
        },
        shape,
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parallel_project, m)?)?;
    m.add_function(wrap_pyfunction!(parallel_backproject, m)?)?;
    m.add_function(wrap_pyfunction!(cone_apply, m)?)?;
    m.add_function(wrap_pyfunction!(parallel_iterative, m)?)?;
    m.add_function(wrap_pyfunction!(cone_iterative, m)?)?;
    Ok(())
}
