//! Bindings of the detector kernels (noise power spectrum, afterglow fits).

use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use scintomo_core::detector::{self, DecayModel};
use scintomo_core::CoreError;

use crate::errors::PyCoreError;
use crate::util::{run, Stack3};
use crate::with_view;

type F32Map<'py> = Bound<'py, PyArray2<f32>>;

/// Sum over regions of |DFT|^2 of detrended regions of a frame series.
/// Returns (power (roi, roi // 2 + 1) float64, n_rois, mean signal).
#[pyfunction]
#[pyo3(signature = (frames, *, roi, step, order, per_roi, n_threads = None))]
fn nps_sum<'py>(
    py: Python<'py>,
    frames: Stack3<'py>,
    roi: usize,
    step: usize,
    order: usize,
    per_roi: bool,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, usize, f64)> {
    let r = with_view!(frames, Stack3, |v| run(
        py,
        n_threads,
        || detector::nps_sum(v, roi, step, order, per_roi)
    ))?;
    Ok((r.power.into_pyarray(py), r.n_rois, r.mean))
}

/// Per-pixel decay fit y = A g(t; 1/tau) + B. Returns (A, tau, B, rss) maps.
#[pyfunction]
#[pyo3(signature = (frames, times, *, model, exponent, offset, k_min, k_max, rel_tol, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn decay_fit<'py>(
    py: Python<'py>,
    frames: Stack3<'py>,
    times: Vec<f64>,
    model: &str,
    exponent: f64,
    offset: bool,
    k_min: f64,
    k_max: f64,
    rel_tol: f64,
    n_threads: Option<usize>,
) -> PyResult<(F32Map<'py>, F32Map<'py>, F32Map<'py>, F32Map<'py>)> {
    let m = match model {
        "exponential" => DecayModel::Exponential,
        "hyperbolic" => DecayModel::Hyperbolic { n: exponent },
        o => {
            return Err(
                PyCoreError(CoreError::parameter(format!("unknown decay model {o:?}"))).into(),
            )
        }
    };
    let f = with_view!(frames, Stack3, |v| run(py, n_threads, || {
        detector::decay_fit(v, &times, m, offset, k_min, k_max, rel_tol)
    }))?;
    Ok((
        f.amplitude.into_pyarray(py),
        f.tau.into_pyarray(py),
        f.offset.into_pyarray(py),
        f.rss.into_pyarray(py),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(nps_sum, m)?)?;
    m.add_function(wrap_pyfunction!(decay_fit, m)?)?;
    Ok(())
}
