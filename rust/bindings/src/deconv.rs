//! Bindings of the deconvolution kernels.

use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyReadwriteArray3};
use pyo3::prelude::*;
use scintomo_core::deconv::{self, Boundary, Noise, RlOptions, WienerBoundary, WienerOptions};
use scintomo_core::CoreError;

use crate::errors::PyCoreError;
use crate::util::run;

/// Richardson-Lucy on a float32 stack into `out`. Returns, per image,
/// (iterations done, stopped by the discrepancy rule, discrepancy history).
#[pyfunction]
#[pyo3(signature = (stack, psf, out, mask = None, *, iterations, boundary, accelerate, tv,
                    noise = None, tau = 1.0, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn richardson_lucy<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray3<'py, f32>,
    psf: PyReadonlyArray2<'py, f32>,
    mut out: PyReadwriteArray3<'py, f32>,
    mask: Option<PyReadonlyArray3<'py, u8>>,
    iterations: usize,
    boundary: &str,
    accelerate: bool,
    tv: f32,
    noise: Option<(f32, f32)>,
    tau: f32,
    n_threads: Option<usize>,
) -> PyResult<Vec<(usize, bool, Vec<f64>)>> {
    let boundary = match boundary {
        "zero" => Boundary::Zero,
        "padded" => Boundary::Padded,
        o => {
            return Err(PyCoreError(CoreError::parameter(format!("unknown boundary {o:?}"))).into())
        }
    };
    let opts = RlOptions {
        iterations,
        boundary,
        accelerate,
        tv,
        noise: noise.map(|(gain, read_noise)| Noise { gain, read_noise }),
        tau,
        strip_rows: None,
    };
    let (s, k) = (stack.as_array(), psf.as_array());
    let m = mask.as_ref().map(|m| m.as_array());
    let o = out.as_array_mut();
    let reps = run(py, n_threads, || deconv::richardson_lucy(s, k, m, o, &opts))?;
    Ok(reps
        .into_iter()
        .map(|r| (r.iterations, r.stopped, r.discrepancy))
        .collect())
}

/// Wiener/Tikhonov deconvolution of a float32 stack into `out`.
#[pyfunction]
#[pyo3(signature = (stack, psf, out, *, balance, boundary, pad = None, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn wiener<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray3<'py, f32>,
    psf: PyReadonlyArray2<'py, f32>,
    mut out: PyReadwriteArray3<'py, f32>,
    balance: f32,
    boundary: &str,
    pad: Option<(usize, usize)>,
    n_threads: Option<usize>,
) -> PyResult<()> {
    let boundary = match boundary {
        "periodic" => WienerBoundary::Periodic,
        "reflect" => WienerBoundary::Reflect,
        o => {
            return Err(PyCoreError(CoreError::parameter(format!("unknown boundary {o:?}"))).into())
        }
    };
    let opts = WienerOptions {
        balance,
        boundary,
        pad,
    };
    let (s, k) = (stack.as_array(), psf.as_array());
    let o = out.as_array_mut();
    run(py, n_threads, || deconv::wiener(s, k, o, &opts))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(richardson_lucy, m)?)?;
    m.add_function(wrap_pyfunction!(wiener, m)?)?;
    Ok(())
}
