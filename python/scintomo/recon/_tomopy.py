"""Pass-through to TomoPy (https://tomopy.readthedocs.io), used when installed.

TomoPy threads itself (``ncore``); scintomo does not wrap it in its own pool.
Padding is done here (edge values, centre shifted by the pad) because
``tomopy.recon`` does not pad: unpadded gridrec wraps around (TomoPy issue
#481). The centre is passed unchanged: scintomo's centre is the one TomoPy's
``find_center*`` functions return.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError


def recon_tomopy(
    proj,
    theta,
    centers,
    *,
    algorithm,
    filter,
    pad_len,  # noqa: A002
    mask_ratio,
    n_threads,
    **kwargs,
) -> np.ndarray:
    try:
        import tomopy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ParameterError(
            "backend='tomopy' but TomoPy is not installed (conda install tomopy)"
        ) from e
    n_det = proj.shape[2]
    npad = max(0, (pad_len - n_det) // 2)
    if npad:
        proj = np.pad(proj, ((0, 0), (0, 0), (npad, npad)), mode="edge")
    opts = dict(kwargs)
    if algorithm in ("gridrec", "fbp") and "filter_name" not in opts:
        opts["filter_name"] = filter
    rec = tomopy.recon(
        np.ascontiguousarray(proj, dtype=np.float32),
        np.asarray(theta, dtype=np.float32),
        center=np.asarray(centers, dtype=np.float32) + npad,
        algorithm=algorithm,
        ncore=n_threads,
        **opts,
    )
    if npad:
        rec = rec[:, npad : npad + n_det, npad : npad + n_det]
    if mask_ratio is not None:
        rec = tomopy.circ_mask(rec, axis=0, ratio=mask_ratio)
    return np.ascontiguousarray(rec, dtype=np.float32)
