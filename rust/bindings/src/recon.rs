//! Bindings of the recon kernels.

use numpy::{IntoPyArray, PyArray3, PyReadonlyArray3};
use pyo3::prelude::*;
use scintomo_core::recon::{self, Filter, Geometry};
use scintomo_core::CoreError;

use crate::errors::PyCoreError;
use crate::util::run;

/// Reconstruct (angle, row, column) float32 projections into (row, n_out,
/// n_out) float32 slices with the built-in FBP or gridding.
#[pyfunction]
#[pyo3(signature = (projections, theta, weights, centers, *, algorithm, filter, n_out, pad_len,
                    mask_radius = None, kernel_width = 4, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn recon_builtin<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    weights: Vec<f64>,
    centers: Vec<f64>,
    algorithm: &str,
    filter: &str,
    n_out: usize,
    pad_len: usize,
    mask_radius: Option<f64>,
    kernel_width: usize,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let filter = Filter::parse(filter).map_err(PyCoreError)?;
    let geo = Geometry { theta, weights, centers, n_out, pad_len, mask_radius, filter };
    let v = projections.as_array();
    let out = match algorithm {
        "fbp" => run(py, n_threads, || recon::fbp(v, &geo))?,
        "gridrec" => run(py, n_threads, || recon::gridrec(v, &geo, kernel_width))?,
        o => return Err(PyCoreError(CoreError::parameter(format!("unknown algorithm {o:?}"))).into()),
    };
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(recon_builtin, m)?)?;
    Ok(())
}
