"""Cone beam through the pipeline: the [geometry] section and its command-line
options, z-slabs that read only the detector rows their cone needs, and the
slab-by-slab volume against the whole-volume FDK of scintomo.recon (itself
tested against the analytic phantom in test_cone)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile

from scintomo import io, pipeline
from scintomo.cli import main
from scintomo.exceptions import ParameterError, StaleOutputError
from scintomo.pipeline import PipelineConfig
from scintomo.pipeline.geometry import ConePlan, resolve_geometry, slab_detector_rows
from scintomo.recon import ConeGeometry, reconstruct
from scintomo.recon._cone import reconstruct_cone
from scintomo.simulate.cone import ellipsoid_cone_projections, shepp_logan_ellipsoids

NR, NC, NA = 40, 40, 60
SHAPE = (30, 40, 40)
I0 = 20000.0


def geometry(**kw):
    return ConeGeometry(30.0, 90.0, "0.5mm", **kw)


def line_integrals(g):
    th = np.linspace(0, 2 * np.pi, NA, endpoint=False)
    e = shepp_logan_ellipsoids(0.8 * (NC / 2) * g.voxel_size, value=1 / g.voxel_size)
    return ellipsoid_cone_projections(e, th, g, (NR, NC), supersample=1).astype(np.float32), th


@pytest.fixture(scope="module")
def lab_scan(tmp_path_factory):
    """A DXchange file of raw counts (no geometry inside: DXchange has none) and the
    -log projections they stand for."""
    g = geometry(center_row=18.6)
    p, th = line_integrals(g)
    counts = (I0 * np.exp(-p.astype(np.float64))).astype(np.float32)
    flats = np.full((2, NR, NC), I0, np.float32)
    darks = np.zeros((1, NR, NC), np.float32)
    d = tmp_path_factory.mktemp("cone") / "data"
    d.mkdir()
    path = io.write_dxchange(d / "lab.h5", counts, flats, darks, th)
    minus_log = -np.log(counts.astype(np.float64) / I0).astype(np.float32)
    return path, g, minus_log, th


@pytest.mark.parametrize("tilt,center_row", [(0.0, None), (0.7, 18.6)])
def test_slabs_equal_the_whole_volume(tilt, center_row):
    g = geometry(center_row=center_row, tilt=tilt)
    p, th = line_integrals(g)
    whole, _ = reconstruct_cone(p, th, g, shape=SHAPE)
    for k0, k1 in [(0, 7), (7, 14), (14, 21), (21, 30)]:
        a0, a1 = slab_detector_rows(g, NR, NC, SHAPE, g.voxel_size, k0, k1)
        assert a1 - a0 < NR  # a slab reads part of the detector
        slab, _ = reconstruct_cone(
            p[:, a0:a1], th, g, shape=SHAPE, _rows=(a0, NR), _z_range=(k0, k1)
        )
        np.testing.assert_allclose(slab, whole[k0:k1], atol=1e-5 * np.abs(whole).max())
        if 0 < a0 and a1 < NR:  # the rows are needed: two fewer each side changes the slab
            cut, _ = reconstruct_cone(
                p[:, a0 + 2 : a1 - 2], th, g, shape=SHAPE, _rows=(a0 + 2, NR), _z_range=(k0, k1)
            )
            assert np.abs(cut - whole[k0:k1]).max() > 1e-3 * np.abs(whole).max()


def test_slab_rows_cover_where_the_voxels_project():
    """Independent of the formula: project every voxel corner of a slab at many angles with
    the geometry's own definition (source at sod, detector at sdd) and check the rows."""
    g = geometry(center_row=12.3)
    vox = g.voxel_size
    nz, ny, nx = SHAPE
    k0, k1 = 12, 18
    a0, a1 = slab_detector_rows(g, NR, NC, SHAPE, vox, k0, k1)
    assert 0 < a0 and a1 < NR  # not clipped by the detector's edges
    sod, sdd, px = g.source_object * 1e3 / vox, g.source_detector * 1e3 / vox, g.pixel_size / vox
    z = np.array([k0 - 0.5, k1 - 0.5]) - (nz - 1) / 2
    x = np.linspace(-nx / 2, nx / 2, 21)
    X, Y, Z = np.meshgrid(x, x, z, indexing="ij")
    for t in np.linspace(0, 2 * np.pi, 73):
        depth = X * math.sin(t) - Y * math.cos(t)  # towards the detector
        rows = 12.3 + sdd * Z / ((sod + depth) * px)
        assert rows.min() >= a0 - 0.5 and rows.max() <= a1 - 1.5 + 1.0


def cone_cfg(path, out, *, nsino=7, fmt="h5", **geo):
    cfg = PipelineConfig()
    cfg.input.file = str(path)
    cfg.output.folder = str(out)
    cfg.output.format = fmt
    cfg.output.nsino_per_chunk = nsino
    cfg.recon.filter = "shepp"
    cfg.run.n_threads = 1
    cfg.run.progress = False
    cfg.geometry.type = "cone"
    cfg.geometry.source_object = "30mm"
    cfg.geometry.source_detector = "90mm"
    cfg.geometry.pixel_size = "0.5mm"
    cfg.geometry.center_row = 18.6
    cfg.geometry.shape = list(SHAPE)
    for k, v in geo.items():
        setattr(cfg.geometry, k, v)
    return cfg


def test_pipeline_cone_slabs_equal_reconstruct_and_read_only_their_rows(
    lab_scan, tmp_path, monkeypatch
):
    path, g, minus_log, th = lab_scan
    truth = reconstruct(minus_log, th, geometry=g, algorithm="fdk", shape=SHAPE, filter="shepp")
    reads = []
    real = pipeline.read.read_block

    def spy(scan, r0, r1, *, halo=0):
        reads.append((r0, r1))
        return real(scan, r0, r1, halo=halo)

    monkeypatch.setattr(pipeline.read, "read_block", spy)
    res = pipeline.run(cone_cfg(path, tmp_path / "out"))
    assert res.shape == SHAPE and res.n_blocks == 5
    assert max(b - a for a, b in reads) < NR
    import h5py

    with h5py.File(res.output) as f:
        vol = f["exchange/data"][()]
        meta = {k: f["exchange/data"].attrs.get(k) for k in f["exchange/data"].attrs}
    np.testing.assert_allclose(vol, truth, atol=1e-5 * np.abs(truth).max())
    text = json.dumps({k: str(v) for k, v in meta.items()})
    assert "source_detector_mm" in text and "fdk" in text


def test_pipeline_cone_resume_and_a_changed_geometry_is_refused(lab_scan, tmp_path):
    path, *_ = lab_scan
    out = tmp_path / "out"
    first = pipeline.run(cone_cfg(path, out, fmt="tiff"))
    again = pipeline.run(cone_cfg(path, out, fmt="tiff"))
    assert again.n_skipped == again.n_blocks == first.n_blocks
    desc = json.loads(
        tifffile.TiffFile(next(iter(sorted(out.rglob("*.tiff"))))).pages[0].description
    )
    assert desc["geometry"]["source_object_mm"] == 30.0
    with pytest.raises(StaleOutputError, match="source_object"):
        pipeline.run(cone_cfg(path, out, fmt="tiff", source_object="31mm"))


def test_scan_geometry_is_used_when_none_is_given():
    class Scan:
        geometry = geometry(center_column=19.0)
        shape = (NA, NR, NC)

    cfg = PipelineConfig()
    assert resolve_geometry(cfg, Scan()) == Scan.geometry  # [geometry] empty: the scan's
    cfg.geometry.source_object = "35mm"  # a value given wins over the scan's
    g = resolve_geometry(cfg, Scan())
    assert g.source_object == 35.0 and g.center_column == 19.0
    cfg.geometry.type = "parallel"
    assert resolve_geometry(cfg, Scan()) is None

    class Bare:
        geometry = None

    cfg = PipelineConfig()
    assert resolve_geometry(cfg, Bare()) is None
    cfg.geometry.type = "cone"
    cfg.geometry.source_object = "30mm"
    with pytest.raises(ParameterError, match=r"source_detector.*pixel_size"):
        resolve_geometry(cfg, Bare())


def test_geometry_section_in_toml(tmp_path):
    cfg = cone_cfg("x.h5", tmp_path)
    p = cfg.write(tmp_path / "c.toml")
    back = PipelineConfig.from_toml(p)
    assert back.to_toml() == cfg.to_toml()
    import tomllib

    sec = tomllib.loads(p.read_text())["geometry"]  # an independent parser
    assert sec["type"] == "cone" and sec["source_object"] == "30mm"
    assert sec["shape"] == list(SHAPE) and math.isnan(sec["center_column"])
    for bad, msg in (
        ("type = 'fan'", "geometry.type"),
        ("shape = [1, 2]", "geometry.shape"),
        ("tilt = 50.0", "geometry.tilt"),
    ):
        (tmp_path / "b.toml").write_text(f"[geometry]\n{bad}\n")
        with pytest.raises(ParameterError, match=msg):
            PipelineConfig.from_toml(tmp_path / "b.toml")


def test_cli_geometry_cone_with_pixel_size(lab_scan, tmp_path, capsys):
    path, g, minus_log, th = lab_scan
    out = tmp_path / "cli"
    rc = main(
        [
            "recon",
            "--file-name",
            str(path),
            "--reconstruction-type",
            "full",
            "--geometry",
            "cone",
            "--source-object-distance",
            "30mm",
            "--source-detector-distance",
            "9cm",
            "--pixel-size",
            "500um",
            "--center-row",
            "18.6",
            "--filter",
            "shepp",
            "--save-format",
            "h5",
            "--output-folder",
            str(out),
            "--nsino-per-chunk",
            "16",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    import h5py

    with h5py.File(next(out.glob("*.h5"))) as f:
        vol = f["exchange/data"][()]
    truth = reconstruct(minus_log, th, geometry=g, algorithm="fdk", filter="shepp")
    assert vol.shape == truth.shape == (NR, NC, NC)
    np.testing.assert_allclose(vol, truth, atol=1e-5 * np.abs(truth).max())
    # phase retrieval and cone beam with one --pixel-size: which pixel is it?
    rc = main(
        ["recon", "--file-name", str(path), "--reconstruction-type", "full", "--geometry", "cone"]
        + "--pixel-size 500um --retrieve-phase-method paganin --energy 20".split()
        + "--propagation-distance 10 --delta-beta 100 --no-progress".split()
    )
    assert rc != 0 and "--detector-pixel-size" in capsys.readouterr().err


def test_fdk_on_parallel_is_a_clear_error(lab_scan, tmp_path):
    path, *_ = lab_scan
    cfg = cone_cfg(path, tmp_path)
    cfg.geometry.type = "parallel"
    cfg.recon.algorithm = "fdk"
    with pytest.raises(ParameterError, match="fdk is for cone-beam"):
        pipeline.run(cfg)


def test_try_on_cone_writes_candidate_columns_and_tilts(tmp_path, capsys):
    """try on a cone-beam scan: the FDK slice for each candidate central-ray column and
    detector tilt, equal to reconstruct with that geometry, each set scored. (The
    sharpness scores do not pick the true column or tilt on this small noise-free phantom,
    as for parallel beam: they are a hint for real data; find_cone_center measures both.)"""
    g = geometry(center_row=18.6, center_column=20.5, tilt=1.5)
    p, th = line_integrals(g)
    counts = (I0 * np.exp(-p.astype(np.float64))).astype(np.float32)
    d = tmp_path / "data"
    d.mkdir()
    path = io.write_dxchange(d / "lab.h5", counts, np.full((2, NR, NC), I0, np.float32), None, th)
    cfg = cone_cfg(path, tmp_path / "out", center_column=20.5)
    cfg.center.search_width, cfg.center.search_step = 1.5, 0.5
    cfg.center.tilt_search_width, cfg.center.tilt_search_step = 3.0, 0.75
    res = pipeline.try_centers(cfg)
    k = res.row
    assert res.centers == (19.0, 19.5, 20.0, 20.5, 21.0, 21.5, 22.0)
    assert res.tilts == (-3.0, -2.25, -1.5, -0.75, 0.0, 0.75, 1.5, 2.25, 3.0)
    assert len(res.files) == 7 and len(res.tilt_files) == 9
    assert res.best_center in res.centers and res.best_tilt in res.tilts
    minus_log = -np.log(counts.astype(np.float64) / I0).astype(np.float32)
    want = reconstruct(
        minus_log,
        th,
        geometry=geometry(center_row=18.6, center_column=20.5, tilt=0.75),
        shape=SHAPE,
        filter="shepp",
    )[k]
    got = tifffile.imread(res.tilt_files[5])
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())
    desc = json.loads(tifffile.TiffFile(res.tilt_files[5]).pages[0].description)
    assert desc["geometry"]["tilt_deg"] == 0.75
    scores = json.loads(
        (tmp_path / "out" / "try_center" / "lab" / "try_tilt_scores.json").read_text()
    )
    assert scores["centers_px"] == list(res.tilts) and len(scores["files"]) == 9
    # the column candidates: each at the configured tilt (0 here) and its own column
    want = reconstruct(
        minus_log,
        th,
        geometry=geometry(center_row=18.6, center_column=19.5, tilt=0.0),
        shape=SHAPE,
        filter="shepp",
    )[k]
    np.testing.assert_allclose(tifffile.imread(res.files[1]), want, atol=1e-5 * np.abs(want).max())


def test_cone_plan_pickles():
    import pickle

    plan = ConePlan(geometry(), SHAPE, 100.0, NR, NC)
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_cli_try_on_cone_with_tilts(lab_scan, tmp_path, capsys):
    path, *_ = lab_scan
    rc = main(
        ["recon", "--file-name", str(path), "--reconstruction-type", "try"]
        + "--geometry cone --source-object-distance 30mm --source-detector-distance 90mm".split()
        + "--detector-pixel-size 0.5mm --center-row 18.6 --center-search-width 0.5".split()
        + "--tilt-search-width 0.5 --tilt-search-step 0.25 --threads 1 --no-progress".split()
        + ["--output-folder", str(tmp_path)]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "3 centres" in out.out and "5 tilts -0.500 .. 0.500 deg" in out.out
    assert len(list(tmp_path.rglob("*_tilt*.tiff"))) == 5
