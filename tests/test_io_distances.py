"""Source and detector distances read from NXtomo and DXchange files (fields
and units as the NeXus NXtomo/NXsource definitions and the DXchange
tomography reference give them) into ``scan.geometry``, and the pipeline
reconstructing such a file as cone beam without being told. The files are
written here with h5py, field by field."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest

from scintomo import io, pipeline
from scintomo.exceptions import FileFormatError, ScintomoWarning
from scintomo.pipeline import PipelineConfig
from scintomo.recon import ConeGeometry, reconstruct
from scintomo.simulate.cone import ellipsoid_cone_projections, shepp_logan_ellipsoids

SHAPE = (3, 8, 10)


def nxtomo(path, theta=None, **fields):
    """A minimal NXtomo file plus ``fields``: {path inside /entry: (value, units or None)}."""
    frames = np.ones((4, SHAPE[1], SHAPE[2]), np.float32)
    theta = np.linspace(0, np.pi, 4, endpoint=False) if theta is None else theta
    io.write_nxtomo(path, frames, theta=theta)
    with h5py.File(path, "a") as f:
        for p, (v, units) in fields.items():
            ds = f.create_dataset(f"entry/{p}", data=v)
            if units is not None:
                ds.attrs["units"] = units
    return path


def dxchange(path, **fields):
    frames = np.ones((4, SHAPE[1], SHAPE[2]), np.float32)
    io.write_dxchange(path, frames, theta=np.linspace(0, np.pi, 4, endpoint=False))
    with h5py.File(path, "a") as f:
        for p, (v, units) in fields.items():
            ds = f.create_dataset(f"measurement/instrument/{p}", data=v)
            if units is not None:
                ds.attrs["units"] = units
    return path


def test_nxtomo_distances_and_units(tmp_path):
    p = nxtomo(
        tmp_path / "lab.nxs",
        **{
            "instrument/source/distance": (-60.0, "mm"),  # NXsource: negative upstream
            "instrument/detector/distance": (0.19, "m"),
            "instrument/detector/x_pixel_size": (0.5, "mm"),
        },
    )
    with io.read(p) as scan:
        g = scan.geometry
        assert g == ConeGeometry("60mm", "250mm", "500um")
        assert g.magnification == pytest.approx(250 / 60)
        assert scan.metadata["geometry"]["source_detector_mm"] == pytest.approx(250.0)


def test_nxtomo_source_group_by_class_and_si_default(tmp_path):
    p = nxtomo(
        tmp_path / "lab.nxs",
        **{
            "instrument/tube/distance": (-4.0, "cm"),
            "instrument/detector/distance": (0.06, None),  # no units: SI metres
            "instrument/detector/x_pixel_size": (75.0, "micron"),
        },
    )
    with h5py.File(p, "a") as f:
        f["entry/instrument/tube"].attrs["NX_class"] = "NXsource"
    with io.read(p) as scan:
        assert scan.geometry == ConeGeometry(40.0, 100.0, 75.0)


@pytest.mark.parametrize("source", [None, (-55.0, "m"), (-1e9, "mm")])
def test_parallel_beam_files_stay_parallel(tmp_path, source):
    fields = {
        "instrument/detector/distance": (120.0, "mm"),
        "instrument/detector/x_pixel_size": (0.65, "um"),
    }
    if source is not None:
        fields["instrument/source/distance"] = source
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScintomoWarning)
        with io.read(nxtomo(tmp_path / "sync.nxs", **fields)) as scan:
            assert scan.geometry is None
            assert "geometry" not in scan.metadata


def test_incomplete_or_bad_fields(tmp_path):
    p = nxtomo(tmp_path / "a.nxs", **{"instrument/source/distance": (-60.0, "mm")})
    with pytest.warns(ScintomoWarning, match="sample-detector distance"):
        with io.read(p) as scan:
            assert scan.geometry is None
    p = nxtomo(
        tmp_path / "b.nxs",
        **{
            "instrument/source/distance": (-60.0, "s"),
            "instrument/detector/distance": (100.0, "mm"),
            "instrument/detector/x_pixel_size": (0.5, "mm"),
        },
    )
    with pytest.raises(FileFormatError, match="unit"):
        io.read(p)
    p = nxtomo(
        tmp_path / "c.nxs",
        **{
            "instrument/source/distance": (0.0, "mm"),
            "instrument/detector/distance": (100.0, "mm"),
            "instrument/detector/x_pixel_size": (0.5, "mm"),
        },
    )
    with pytest.raises(FileFormatError, match="source/distance"):
        io.read(p)


def test_dxchange_reference_fields(tmp_path):
    """dxfile's tomography reference: the source's position vector (no units: SI),
    the sample group's detector_distance, the physical pixel over the objective."""
    p = dxchange(
        tmp_path / "lab.h5",
        **{
            "source/geometry/translation/distances": ([0.0, 0.0, -0.03], None),
            "sample/detector_distance": (60.0, "mm"),
            "detector/pixel_size_x": (6.5e-6, None),
            "detection_system/objective/magnification": (13.0, None),
        },
    )
    with io.read(p) as scan:
        assert scan.geometry == ConeGeometry(30.0, 90.0, 0.5)


def test_dxchange_tomoscan_layout(tmp_path):
    """APS tomoscan's layout: sample_motor_stack/detector_distance and the objective's
    resolution (the pixel at the scintillator) in microns."""
    p = dxchange(
        tmp_path / "lab.h5",
        **{
            "source/distance": (-25.0, "mm"),
            "sample_motor_stack/detector_distance": (75.0, "mm"),
            "detector/pixel_size": (6.5, "microns"),
            "detection_system/objective/resolution": (0.325, "microns"),
        },
    )
    with io.read(p) as scan:
        assert scan.geometry == ConeGeometry(25.0, 100.0, 0.325)
    with io.read(dxchange(tmp_path / "sync.h5", **{"detector/pixel_size": (6.5, "um")})) as s:
        assert s.geometry is None


def test_pipeline_reconstructs_a_recorded_cone_geometry(tmp_path):
    """No [geometry]: the file's distances make it a cone-beam run (FDK), equal to
    reconstruct with the same geometry given by hand, the geometry in the output."""
    g = ConeGeometry(30.0, 90.0, "0.5mm")
    nr, nc, na = 16, 24, 90
    th = np.linspace(0, 2 * np.pi, na, endpoint=False)
    e = shepp_logan_ellipsoids(0.8 * (nc / 2) * g.voxel_size, value=1 / g.voxel_size)
    p = ellipsoid_cone_projections(e, th, g, (nr, nc), supersample=1)
    counts = (1e4 * np.exp(-p)).astype(np.float32)
    path = tmp_path / "lab.nxs"
    io.write_nxtomo(path, counts, flats=np.full((2, nr, nc), 1e4, np.float32), theta=th)
    with h5py.File(path, "a") as f:
        for k, v, u in (
            ("source/distance", -3.0, "cm"),
            ("detector/distance", 60.0, "mm"),
            ("detector/x_pixel_size", 500.0, "um"),
        ):
            f.create_dataset(f"entry/instrument/{k}", data=v).attrs["units"] = u
    cfg = PipelineConfig()
    cfg.input.file = str(path)
    cfg.output.folder = str(tmp_path / "out")
    cfg.output.format = "h5"
    cfg.recon.filter = "shepp"
    cfg.run.n_threads = 1
    cfg.run.progress = False
    res = pipeline.run(cfg)
    minus_log = -np.log(counts.astype(np.float64) / 1e4).astype(np.float32)
    truth = reconstruct(minus_log, th, geometry=g, filter="shepp")
    assert res.shape == truth.shape == (nr, nc, nc)
    with h5py.File(res.output) as f:
        vol = f["exchange/data"][()]
        attrs = dict(f["exchange/data"].attrs)
    np.testing.assert_allclose(vol, truth, atol=1e-5 * np.abs(truth).max())
    text = json.dumps({k: str(v) for k, v in attrs.items()})
    assert "source_detector_mm" in text and "fdk" in text
