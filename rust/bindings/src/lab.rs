//! Bindings of the lab-scan correction kernels (beam hardening, undistortion, drift shifts).

use numpy::PyReadwriteArrayDyn;
use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArrayDyn, PyReadwriteArray3};
use pyo3::prelude::*;
use scintomo_core::lab::{self, Linearisation, Remap};

use crate::errors::PyCoreError;
use crate::util::run;

/// Beam-hardening polynomial sum_k c_k p^k (k = 1..n) of `data` into `out`
/// (`data=None`: `out` in place), tangent above `p_max`. Returns the count above it.
#[pyfunction]
#[pyo3(signature = (data, out, *, coefficients, p_max, n_threads = None))]
fn lab_linearise(
    py: Python<'_>,
    data: Option<PyReadonlyArrayDyn<'_, f32>>,
    mut out: PyReadwriteArrayDyn<'_, f32>,
    coefficients: Vec<f64>,
    p_max: f64,
    n_threads: Option<usize>,
) -> PyResult<u64> {
    let lin = Linearisation::new(&coefficients, p_max).map_err(PyCoreError)?;
    let o = out.as_array_mut();
    match data {
        None => run(py, n_threads, || lab::linearise_inplace(o, &lin)),
        Some(d) => {
            let v = d.as_array();
            run(py, n_threads, || lab::linearise(v, &lin, o))
        }
    }
}

/// Bilinear remap (edges continued) of every frame of `stack` (N, H_in, W_in) into
/// `out` (N, H, W): output pixel (r, c) takes the input at (rows[r, c], cols[r, c]).
#[pyfunction]
#[pyo3(signature = (stack, out, rows, cols, *, n_threads = None))]
fn lab_remap(
    py: Python<'_>,
    stack: PyReadonlyArray3<'_, f32>,
    mut out: PyReadwriteArray3<'_, f32>,
    rows: PyReadonlyArray2<'_, f64>,
    cols: PyReadonlyArray2<'_, f64>,
    n_threads: Option<usize>,
) -> PyResult<()> {
    let (s, r, c) = (stack.as_array(), rows.as_array(), cols.as_array());
    let o = out.as_array_mut();
    let in_shape = (s.shape()[1], s.shape()[2]);
    run(py, n_threads, || {
        let map = Remap::new(r, c, in_shape)?;
        lab::remap(s, &map, o)
    })
}

/// Undo per-view shifts bilinearly (edges continued): out[i] is stack[i] moved by -shifts[i].
#[pyfunction]
#[pyo3(signature = (stack, out, shifts, *, n_threads = None))]
fn lab_shift(
    py: Python<'_>,
    stack: PyReadonlyArray3<'_, f32>,
    mut out: PyReadwriteArray3<'_, f32>,
    shifts: PyReadonlyArray2<'_, f64>,
    n_threads: Option<usize>,
) -> PyResult<()> {
    let (s, sh) = (stack.as_array(), shifts.as_array());
    let o = out.as_array_mut();
    run(py, n_threads, || lab::shift_frames(s, sh, o))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lab_linearise, m)?)?;
    m.add_function(wrap_pyfunction!(lab_remap, m)?)?;
    m.add_function(wrap_pyfunction!(lab_shift, m)?)?;
    Ok(())
}
