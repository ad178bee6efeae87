"""Which backend ``reconstruct`` uses: the answer must not depend on what is
installed (issue #21)."""

from __future__ import annotations

import numpy as np

import scintomo.recon._recon as recon_module
from scintomo.recon import reconstruct
from scintomo.simulate import ellipse_projections, shepp_logan_ellipses


def test_auto_is_builtin_even_where_tomopy_imports(monkeypatch):
    """With TomoPy importable (simulated here, so the test runs everywhere),
    the default call still uses the built-in kernels, bit for bit."""
    monkeypatch.setattr(recon_module, "tomopy_available", lambda: True)
    n = 64
    theta = np.linspace(0, np.pi, 90, endpoint=False)
    p = ellipse_projections(shepp_logan_ellipses(n, fill=0.8), theta, n)
    auto = reconstruct(p, theta)
    assert auto.meta["backend"] == "builtin"
    assert np.array_equal(auto, reconstruct(p, theta, backend="builtin"))
    assert reconstruct(p, theta, backend="auto", algorithm="fbp").meta["backend"] == "builtin"
