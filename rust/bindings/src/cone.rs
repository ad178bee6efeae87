//! Bindings of the cone-beam kernels (FDK, Joseph projector and its adjoint).

use numpy::{IntoPyArray, PyArray3, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use scintomo_core::recon::{self, ConeGeometry, Filter};

use crate::errors::PyCoreError;
use crate::util::run;

/// Lengths in voxel units; `shape` = (nz, ny, nx).
#[allow(clippy::too_many_arguments)]
fn geometry(
    theta: Vec<f64>,
    sod: f64,
    sdd: f64,
    pixel: f64,
    center_col: f64,
    center_row: f64,
    tilt: f64,
    shape: (usize, usize, usize),
    z_offset: f64,
) -> ConeGeometry {
    ConeGeometry {
        theta,
        sod,
        sdd,
        pixel,
        center_col,
        center_row,
        tilt,
        shape,
        z_offset,
    }
}

/// FDK of (angle, row, column) float32 projections on an untilted detector
/// into an (nz, ny, nx) float32 volume; `weights` (angle, column).
#[pyfunction]
#[pyo3(signature = (projections, theta, weights, *, sod, sdd, pixel, center_col, center_row,
                    shape, filter, pad_len, z_offset = 0.0, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn cone_fdk<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    weights: PyReadonlyArray2<'py, f32>,
    sod: f64,
    sdd: f64,
    pixel: f64,
    center_col: f64,
    center_row: f64,
    shape: (usize, usize, usize),
    filter: &str,
    pad_len: usize,
    z_offset: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let filter = Filter::parse(filter).map_err(PyCoreError)?;
    let geo = geometry(
        theta, sod, sdd, pixel, center_col, center_row, 0.0, shape, z_offset,
    );
    let (v, w) = (projections.as_array(), weights.as_array());
    let out = run(py, n_threads, || recon::fdk(v, &geo, w, filter, pad_len))?;
    Ok(out.into_pyarray(py))
}

/// Joseph cone-beam projection of an (nz, ny, nx) volume into (angle,
/// n_rows, n_cols) line integrals.
#[pyfunction]
#[pyo3(signature = (volume, theta, *, sod, sdd, pixel, center_col, center_row, tilt,
                    n_rows, n_cols, z_offset = 0.0, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn cone_project<'py>(
    py: Python<'py>,
    volume: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    sod: f64,
    sdd: f64,
    pixel: f64,
    center_col: f64,
    center_row: f64,
    tilt: f64,
    n_rows: usize,
    n_cols: usize,
    z_offset: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let v = volume.as_array();
    let geo = geometry(
        theta,
        sod,
        sdd,
        pixel,
        center_col,
        center_row,
        tilt,
        v.dim(),
        z_offset,
    );
    let out = run(py, n_threads, || {
        recon::cone_project(v, &geo, n_rows, n_cols)
    })?;
    Ok(out.into_pyarray(py))
}

/// The exact adjoint of `cone_project`.
#[pyfunction]
#[pyo3(signature = (projections, theta, *, sod, sdd, pixel, center_col, center_row, tilt,
                    shape, z_offset = 0.0, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn cone_backproject<'py>(
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
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let v = projections.as_array();
    let geo = geometry(
        theta, sod, sdd, pixel, center_col, center_row, tilt, shape, z_offset,
    );
    let out = run(py, n_threads, || recon::cone_backproject(v, &geo))?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cone_fdk, m)?)?;
    m.add_function(wrap_pyfunction!(cone_project, m)?)?;
    m.add_function(wrap_pyfunction!(cone_backproject, m)?)?;
    Ok(())
}
