"""The pipeline on a Dask LocalCluster of 2 worker processes gives the same
volume, bit for bit, as the single-process run."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from scintomo import io, pipeline
from scintomo.simulate import simulate_scan

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import test_pipeline  # noqa: E402  (tests/ is on sys.path under pytest)
from test_pipeline import cfg_for, fbp_numpy, read_volume  # noqa: E402


@pytest.fixture(scope="module")
def client():
    # the workers cannot import the test modules: send the stand-in reconstruction by value
    cloudpickle.register_pickle_by_value(test_pipeline)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    c = pipeline.make_client("local:2")
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


@pytest.mark.parametrize("fmt", ["zarr", "h5"])
def test_two_workers_match_one_process_bit_for_bit(tmp_path, client, fmt):
    sim = simulate_scan(n_angles=48, n_rows=9, n_cols=32, seed=3)
    p = io.write_nxtomo(
        tmp_path / "raw" / "s.nxs",
        sim.projections,
        sim.flats_before,
        sim.darks,
        sim.theta,
        flats_after=sim.flats_after,
    )
    one = cfg_for(p, fmt, nsino=2, output__folder=str(tmp_path / "one"), zinger__enabled=True)
    two = cfg_for(p, fmt, nsino=2, output__folder=str(tmp_path / "two"), zinger__enabled=True)
    pipeline.run(one, recon_fn=fbp_numpy)
    r2 = pipeline.run(two, recon_fn=fbp_numpy, client=client)
    assert r2.n_workers == 2 and r2.n_blocks == 5
    v1 = read_volume(pipeline.output_paths(one, p)["full"], fmt)
    v2 = read_volume(pipeline.output_paths(two, p)["full"], fmt)
    assert v1.shape == (9, 32, 32) and np.isfinite(v1).all()
    np.testing.assert_array_equal(v1, v2)


def test_an_interrupted_run_resumed_on_dask_is_bit_equal_and_carries_its_record(tmp_path, client):
    """TIFF slices written by the workers carry the run's metadata, and a run interrupted in
    one process resumes on the cluster (Dask or not does not change the result)."""
    import tifffile

    sim = simulate_scan(n_angles=48, n_rows=9, n_cols=32, seed=3)
    p = io.write_dxchange(
        tmp_path / "raw" / "s.h5", sim.projections, sim.flats, sim.darks, sim.theta
    )
    calls = []

    def crashing(proj, theta, **kw):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("killed")
        return fbp_numpy(proj, theta, **kw)

    one = cfg_for(p, "tiff", nsino=2, output__folder=str(tmp_path / "one"))
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run(one, recon_fn=crashing)
    res = pipeline.run(one, recon_fn=fbp_numpy, client=client)
    assert (res.n_workers, res.n_blocks, res.n_skipped) == (2, 5, 2)
    ref = cfg_for(p, "tiff", nsino=2, output__folder=str(tmp_path / "ref"))
    pipeline.run(ref, recon_fn=fbp_numpy)
    out = pipeline.output_paths(one, p)["full"]
    np.testing.assert_array_equal(
        read_volume(out, "tiff"), read_volume(pipeline.output_paths(ref, p)["full"], "tiff")
    )
    with tifffile.TiffFile(out / "recon_00008.tiff") as tf:  # written by a worker
        meta = tf.shaped_metadata[0]
    assert meta["row"] == 8 and meta["center_px"] == 15.5
    assert meta["provenance"]["input"]["path"] == str(p.resolve())


def test_cone_slabs_on_two_workers_match_one_process_bit_for_bit(tmp_path, client):
    """Cone beam: each worker reads its slab's detector rows and reconstructs the slab."""
    from test_pipeline_cone import cone_cfg, line_integrals

    from scintomo.recon import ConeGeometry

    g = ConeGeometry(30.0, 90.0, "0.5mm", center_row=18.6)
    p, th = line_integrals(g)
    counts = (2e4 * np.exp(-p.astype(np.float64))).astype(np.float32)
    flats = np.full((2, *counts.shape[1:]), 2e4, np.float32)
    path = io.write_dxchange(tmp_path / "raw" / "lab.h5", counts, flats, None, th)
    one, two = (cone_cfg(path, tmp_path / name, fmt="zarr") for name in ("one", "two"))
    r1 = pipeline.run(one)
    r2 = pipeline.run(two, client=client)
    assert r2.n_workers == 2 and r2.n_blocks == r1.n_blocks == 5
    v1 = read_volume(pipeline.output_paths(one, path)["full"], "zarr")
    v2 = read_volume(pipeline.output_paths(two, path)["full"], "zarr")
    assert v1.shape == (30, 40, 40) and np.abs(v1).max() > 0.5
    np.testing.assert_array_equal(v1, v2)
