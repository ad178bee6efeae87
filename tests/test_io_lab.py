"""Lab CT formats: Nikon/X-Tek (.xtekct + TIFFs) and Zeiss TXRM (OLE2).

No vendor file may be committed, so each test writes a small one from the
published layouts (CIL's NikonDataReader / ZEISSDataReader, DXchange's
read_txrm): the .xtekct INI text and TIFFs with tifffile, the TXRM compound
file with tests/_cfb.py. The expected geometry is worked out by hand here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from _cfb import build_cfb

import scintomo.io as sio
from scintomo.exceptions import FileFormatError, ParameterError
from scintomo.recon import ConeGeometry

H, W, N = 6, 8, 5


def _xtek(tmp_path, *, ctdata=True, extra="", drop=(), name="scan", n_files=N, shape=(H, W)):
    rng = np.random.default_rng(1)
    proj = rng.integers(100, 60000, size=(N, H, W), dtype=np.uint16)
    keys = {
        "Name": name,
        "Projections": N,
        "SrcToObject": "50.0",
        "SrcToDetector": "500.0",
        "DetectorPixelsX": W,
        "DetectorPixelsY": H,
        "DetectorPixelSizeX": "0.2",
        "DetectorPixelSizeY": "0.2",
        "DetectorOffsetX": "0.4",
        "DetectorOffsetY": "-0.1",
        "ObjectOffsetX": "0.01",
        "InitialAngle": "10",
        "AngularStep": "72",
        "WhiteLevel": "60000",
        "XraykV": "80",
        "InputSeparator": "_",
    }
    text = "[XTekCT]\n" + "".join(f"{k}={v}\n" for k, v in keys.items() if k not in drop) + extra
    (tmp_path / f"{name}.xtekct").write_text(text)
    for i in range(n_files):
        frame = proj[i] if shape == (H, W) else np.zeros(shape, np.uint16)
        tifffile.imwrite(tmp_path / f"{name}_{i + 1:04d}.tif", frame)
    if ctdata:
        lines = ["Projection\tAngle(deg)\tTime", "", "header"]
        lines += [f"{i + 1}\t{3.5 * i:.3f}\t{i * 0.5:.1f}" for i in range(N)]
        (tmp_path / "_ctdata.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / f"{name}.xtekct", proj


def test_xtek_geometry_angles_and_lazy_rows(tmp_path):
    path, proj = _xtek(tmp_path)
    assert sio.detect_format(path) == "xtek"
    assert sio.detect_format(tmp_path) == "xtek"  # the folder holding it
    with sio.read(path) as scan:
        g = scan.geometry
        assert isinstance(g, ConeGeometry)
        assert (g.source_object, g.source_detector) == (50.0, 500.0)
        assert g.pixel_size == pytest.approx(200.0)  # micrometres
        # The signs of CIL's NikonDataReader (TomographicImaging/CIL,
        # Wrappers/Python/cil/io/NikonDataReader.py; checked on real scans in CIL PR
        # #1292): rotation axis at x = -ObjectOffsetX, detector centre at
        # x = -DetectorOffsetX, z = +DetectorOffsetY, and the image's pixel 0 at the
        # panel's "top-right", which CIL's ASTRA conversion
        # (convert_geometry_to_astra_vec_3D.py) turns into columns stepping along -x
        # and rows along -z. TIGRE's NikonDataLoader also negates ObjectOffsetX
        # (COR = -ObjectOffsetX) but says it does not know the sign; CCPi's C++ reader
        # ignores the offsets. So: axis at x = -0.01 mm -> -0.1 mm at the detector
        # (M = 10), detector centre at x = -0.4 mm: the axis lies 0.3 mm = 1.5 px
        # towards +x of the centre, i.e. 1.5 columns before it (columns run along -x).
        assert g.center_column == pytest.approx(3.5 - 1.5)
        # detector centre 0.1 mm below the source's height: the central ray meets it
        # 0.5 px above its middle row (rows run downward)
        assert g.center_row == pytest.approx(2.5 - 0.5)
        # measured angles of _ctdata.txt + InitialAngle, in radians
        np.testing.assert_allclose(scan.theta, np.deg2rad(10 + 3.5 * np.arange(N)))
        np.testing.assert_array_equal(scan.projections[:, 2:4, :], proj[:, 2:4, :])
        np.testing.assert_array_equal(scan.projections[3], proj[3])
        assert scan.darks is None
        flats = np.asarray(scan.flats[:, 1:3, :])
        assert flats.shape == (1, 2, W) and np.all(flats == 60000)
        assert scan.metadata["format"] == "xtek" and scan.metadata["kvp"] == 80
    with sio.read(tmp_path) as scan:
        assert scan.shape == (N, H, W)


def test_xtek_white_level_flatfield(tmp_path):
    """The white level stands in for flats: correct() gives value / WhiteLevel."""
    from scintomo.flatfield import correct

    path, proj = _xtek(tmp_path)
    with sio.read(path) as scan:
        out = correct(np.asarray(scan.projections[:]), np.asarray(scan.flats[:]), None)
    np.testing.assert_allclose(out, proj / 60000.0, rtol=1e-5)


def test_xtek_regular_angles_without_ctdata(tmp_path):
    path, _ = _xtek(tmp_path, ctdata=False)
    with sio.read(path) as scan:
        np.testing.assert_allclose(scan.theta, np.deg2rad(10 + 72 * np.arange(N)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"drop": ("SrcToObject",)}, "no SrcToObject"),
        ({"extra": "DetectorPixelSizeX=wide\n", "drop": ("DetectorPixelSizeX",)}, "not a number"),
        ({"n_files": N - 1}, "Projections=5 but 4 files"),
        ({"shape": (H + 1, W)}, "DetectorPixelsY"),
    ],
)
def test_xtek_bad_files(tmp_path, kwargs, match):
    path, _ = _xtek(tmp_path, **kwargs)
    with pytest.raises(FileFormatError, match=match):
        sio.read(path)


def test_xtek_foreign_and_mismatched(tmp_path):
    foreign = tmp_path / "x.xtekct"
    foreign.write_text("just some notes\nno section here\n")
    with pytest.raises(FileFormatError, match="XTekCT"):
        sio.read(foreign, format="xtek")
    sub = tmp_path / "a"
    sub.mkdir()
    path, _ = _xtek(sub)
    (path.parent / "_ctdata.txt").write_text("P A T\n\n\n1 0 0\n2 1 0\n")
    with pytest.raises(FileFormatError, match="2 angles for 5"):
        sio.read(path)
    with pytest.raises(ParameterError, match="degrees"):
        sio.read(path, angle_unit="rad")
    # an angles file from elsewhere (the pipeline's [input] angles) is read with its unit
    rad = np.linspace(0, np.pi, N)
    (tmp_path / "angles.txt").write_text("\n".join(repr(float(a)) for a in rad))
    with sio.read(path, angles=str(tmp_path / "angles.txt"), angle_unit="rad") as scan:
        np.testing.assert_allclose(scan.theta, rad)
    with pytest.raises(ParameterError, match="prefix"):
        sio.read(path, prefix="proj")


# --------------------------------------------------------------------- Zeiss TXRM


def _txrm_streams(n=N, h=H, w=W, *, dtype="<u2", seed=2):
    rng = np.random.default_rng(seed)
    views = rng.integers(0, 4000, size=(n, h, w)).astype(dtype)
    ref = rng.uniform(3000, 4000, size=(h, w)).astype("<f4")
    angles = np.linspace(-90, 90, n).astype("<f4")
    streams = {
        "ImageInfo/ImageWidth": np.uint32(w).tobytes(),
        "ImageInfo/ImageHeight": np.uint32(h).tobytes(),
        "ImageInfo/ImagesTaken": np.uint32(n).tobytes(),
        "ImageInfo/NoOfImages": np.uint32(n).tobytes(),
        "ImageInfo/DataType": np.uint32(5 if dtype == "<u2" else 10).tobytes(),
        "ImageInfo/Angles": angles.tobytes(),
        "ImageInfo/PixelSize": np.float32(2.0).tobytes(),  # um at the object
        "ImageInfo/StoRADistance": np.full(n, -25.0, "<f4").tobytes(),  # mm, negative
        "ImageInfo/DtoRADistance": np.full(n, 75.0, "<f4").tobytes(),
        "ImageInfo/Voltage": np.float32(60.0).tobytes(),
        "ReferenceData/Image": ref.tobytes(),
        "ReferenceData/DataType": np.uint32(10).tobytes(),
        "Alignment/X-Shifts": np.arange(n, dtype="<f4").tobytes(),
        "Alignment/Y-Shifts": (-np.arange(n, dtype="<f4")).tobytes(),
    }
    for k in range(n):
        streams[f"ImageData{1 + k // 100}/Image{k + 1}"] = views[k].tobytes()
    return streams, views, ref, angles


def test_txrm_reads_views_geometry_reference_shifts(tmp_path):
    streams, views, ref, angles = _txrm_streams()
    path = tmp_path / "scan.txrm"
    path.write_bytes(build_cfb(streams))
    assert sio.detect_format(path) == "txrm"
    with sio.read(path) as scan:
        assert scan.shape == (N, H, W) and scan.projections.dtype == np.uint16
        np.testing.assert_array_equal(scan.projections[:, 1:4, 2:5], views[:, 1:4, 2:5])
        np.testing.assert_array_equal(scan.projections[[4, 0]], views[[4, 0]])
        np.testing.assert_allclose(scan.theta, np.deg2rad(angles.astype(np.float64)))
        np.testing.assert_array_equal(scan.flats[0], ref)
        g = scan.geometry
        assert (g.source_object, g.source_detector) == (25.0, 100.0)
        assert g.pixel_size == pytest.approx(8.0)  # 2 um at the object x M = 4
        assert g.voxel_size == pytest.approx(2.0)
        assert scan.metadata["x_shifts"] == list(range(N))
        assert scan.metadata["kvp"] == 60.0


def test_txrm_over_100_views_float(tmp_path):
    """Views 101.. live in ImageData2/ (DXchange's layout)."""
    streams, views, _, _ = _txrm_streams(n=103, h=3, w=4, dtype="<f4")
    path = tmp_path / "many.txm"
    path.write_bytes(build_cfb(streams))
    with sio.read(path) as scan:
        assert scan.projections.dtype == np.float32
        np.testing.assert_array_equal(scan.projections[99:103], views[99:103])


def test_txrm_truncated_and_foreign(tmp_path):
    streams, _, _, _ = _txrm_streams(n=3, h=40, w=60)  # views of 4800 B: regular sectors
    data = build_cfb(streams)
    cut = tmp_path / "cut.txrm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError):
        with sio.read(cut) as scan:
            np.asarray(scan.projections[:])
    foreign = tmp_path / "foreign.txrm"
    foreign.write_bytes(b"GIF89a" + bytes(600))
    with pytest.raises(FileFormatError, match="OLE2"):
        sio.read_txrm(foreign)
    other = tmp_path / "word.txrm"  # an OLE2 file without Zeiss streams
    other.write_bytes(build_cfb({"WordDocument": b"x" * 100}))
    with pytest.raises(FileFormatError, match="ImageInfo/ImageWidth"):
        sio.read(other)
    del streams["ImageData1/Image3"]
    gap = tmp_path / "gap.txrm"
    gap.write_bytes(build_cfb(streams))
    with pytest.raises(FileFormatError, match="Image3"):
        sio.read(gap)


def test_txrm_unknown_dtype(tmp_path):
    streams, _, _, _ = _txrm_streams()
    streams["ImageInfo/DataType"] = np.uint32(3).tobytes()
    path = tmp_path / "s.txrm"
    path.write_bytes(build_cfb(streams))
    with pytest.raises(FileFormatError, match="DataType 3"):
        sio.read(path)


def test_geometry_units_match_cone_class():
    """The readers hand ConeGeometry millimetres and micrometres (its units)."""
    g = ConeGeometry(source_object=50.0, source_detector=500.0, pixel_size=200.0)
    assert math.isclose(g.voxel_size, 20.0)
