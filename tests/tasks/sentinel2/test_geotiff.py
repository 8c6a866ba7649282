"""Direct GeoTIFF decoding (tasks.sentinel2.geotiff) against rasterio reads of the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

import tasks.sentinel2.l2a as l2a
from tasks.sentinel2.geotiff import read_window, tiff_layout

REAL = Path(__file__).resolve().parents[2] / "data" / "s2_l2a_raster" / "S2A_34SGA_20200318_0_L2A"


def write_tif(path, data, **profile):
    """A single-band GeoTIFF on a 20 m grid in UTM 33N."""
    base = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
            "dtype": data.dtype.name, "crs": "EPSG:32633",
            "transform": Affine(20, 0, 500000, 0, -20, 5600000), "nodata": 0}
    with rasterio.open(path, "w", **{**base, **profile}) as dst:
        dst.write(data, 1)
    return path


def rasterio_read(path, window=None):
    with rasterio.open(path) as src:
        return src.read(1, window=window)


def random_windows(rng, height, width, n=12):
    out = [Window(0, 0, width, height), Window(width - 1, height - 1, 1, 1)]
    for _ in range(n):
        r, c = int(rng.integers(0, height)), int(rng.integers(0, width))
        out.append(Window(c, r, int(rng.integers(1, width - c + 1)),
                          int(rng.integers(1, height - r + 1))))
    return out


PROFILES = {
    "tiled deflate predictor 2": {"tiled": True, "blockxsize": 32, "blockysize": 32,
                                  "compress": "deflate", "predictor": 2},
    "tiled deflate": {"tiled": True, "blockxsize": 16, "blockysize": 48, "compress": "deflate"},
    "strips deflate predictor 2": {"compress": "deflate", "predictor": 2, "blockysize": 7},
    "strips uncompressed": {},
}


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_windows_equal_rasterio(tmp_path, name, dtype):
    rng = np.random.default_rng(3)
    # edge tiles / a short last strip: 100 x 70 is no multiple of any block size
    data = rng.integers(0, np.iinfo(dtype).max, (100, 70), endpoint=True).astype(dtype)
    data[40:60] = np.cumsum(data[40:60], axis=1, dtype=dtype)  # wrap-around differences too
    path = write_tif(tmp_path / "b.tif", data, **PROFILES[name])
    layout = tiff_layout(path)
    assert layout is not None and layout.dtype == np.dtype(dtype)
    assert (layout.height, layout.width, layout.pixel_size) == (100, 70, 20.0)
    assert np.array_equal(read_window(layout, 0, 0, 100, 70), data)
    for window in random_windows(rng, 100, 70):
        expected = rasterio_read(path, window)
        out = np.full(expected.shape, 7, dtype)
        got = read_window(layout, int(window.row_off), int(window.col_off),
                          int(window.height), int(window.width), out)
        assert got is out
        assert np.array_equal(got, expected), window


def test_real_cog_windows_at_10m_equal_rasterio():
    """Earth Search COGs (64 px tiles, 200 m pixels, overviews): the 10 m reader, both paths."""
    rng = np.random.default_rng(5)
    for name in ("B8A.tif", "SCL.tif"):
        path = REAL / name
        layout = tiff_layout(path)
        assert layout is not None and layout.pixel_size == 200.0
        with rasterio.open(path) as src:
            for factor in (1, 2, None):
                size = src.height * (factor or 20)
                for window in random_windows(rng, size, size, 6)[:5]:
                    expected = l2a.read_window_10m(src, window, factor)
                    got = l2a._read_layout_10m(layout, window, factor)
                    assert got is not None and np.array_equal(got, expected), (name, window)


def test_offset_arrays_beyond_the_first_bytes_read(tmp_path):
    """5000 one-row strips: the offset arrays (40 kB) lie past the head read at once."""
    data = np.random.default_rng(4).integers(0, 255, (5000, 8)).astype(np.uint8)
    path = write_tif(tmp_path / "strips.tif", data, compress="deflate", blockysize=1)
    layout = tiff_layout(path)
    assert layout is not None and len(layout.offsets) == 5000
    assert np.array_equal(read_window(layout, 0, 0, 5000, 8), data)
    assert np.array_equal(read_window(layout, 4321, 3, 600, 5), data[4321:4921, 3:8])


def test_sparse_blocks_take_the_nodata_value(tmp_path):
    data = np.full((64, 64), 9, np.uint16)
    data[:32, :32] = 5
    path = write_tif(tmp_path / "s.tif", data, tiled=True, blockxsize=32, blockysize=32,
                     compress="deflate", nodata=9, SPARSE_OK=True)
    layout = tiff_layout(path)
    assert layout is not None and layout.fill == 9
    assert layout.byte_counts[1:] == (0, 0, 0)  # GDAL left the all-nodata blocks out
    assert np.array_equal(read_window(layout, 0, 0, 64, 64), rasterio_read(path))


@pytest.mark.parametrize("profile", [{"compress": "lzw"}, {"compress": "zstd"}])
def test_other_compressions_go_to_rasterio(tmp_path, profile):
    path = write_tif(tmp_path / "o.tif", np.ones((16, 16), np.uint16), **profile)
    assert tiff_layout(path) is None
    acquisition_band = l2a._read_band_10m(path, Window(0, 0, 32, 32), None, "uint16")
    assert np.array_equal(acquisition_band, np.ones((32, 32), np.uint16))


def test_unsupported_files_and_hrefs_go_to_rasterio(tmp_path):
    rgb = tmp_path / "rgb.tif"
    with rasterio.open(rgb, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(np.ones((3, 8, 8), np.uint8))
    floats = write_tif(tmp_path / "f.tif", np.ones((8, 8), np.float32), compress="deflate")
    signed = write_tif(tmp_path / "i.tif", np.ones((8, 8), np.int16), compress="deflate")
    big = write_tif(tmp_path / "big.tif", np.ones((8, 8), np.uint16), compress="deflate",
                    BIGTIFF="YES")
    for path in (rgb, floats, signed, big):
        assert tiff_layout(path) is None, path
    assert np.array_equal(l2a._read_band_10m(big, Window(0, 0, 8, 8), None, "uint16"),
                          np.ones((8, 8), np.uint16))
    assert tiff_layout("https://example.org/B04.tif") is None
    assert tiff_layout("s3://bucket/B04.tif") is None
    assert tiff_layout(tmp_path / "B04.jp2") is None
    text = tmp_path / "not.tif"
    text.write_text("no tiff")
    assert tiff_layout(text) is None


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        tiff_layout(tmp_path / "nope.tif")


def test_window_outside_the_image_is_left_to_rasterio(tmp_path):
    path = write_tif(tmp_path / "b.tif", np.ones((16, 16), np.uint16), compress="deflate")
    layout = tiff_layout(path)
    assert layout is not None
    assert read_window(layout, 10, 0, 7, 16) is None
    assert read_window(layout, 0, -1, 4, 4) is None
    assert read_window(layout, 0, 0, 16, 16) is not None


def test_damaged_block_names_the_file(tmp_path):
    data = np.random.default_rng(1).integers(1, 60000, (64, 64)).astype(np.uint16)
    path = write_tif(tmp_path / "d.tif", data, tiled=True, blockxsize=32, blockysize=32,
                     compress="deflate")
    layout = tiff_layout(path)
    assert layout is not None
    raw = bytearray(path.read_bytes())
    start = layout.offsets[1]
    raw[start:start + layout.byte_counts[1]] = b"\x00" * layout.byte_counts[1]
    path.write_bytes(bytes(raw))
    assert np.array_equal(read_window(layout, 0, 0, 32, 32), data[:32, :32])  # block 0 intact
    with pytest.raises(ValueError, match=r"d\.tif: block 1 .*damaged"):
        read_window(layout, 0, 0, 32, 64)


def test_acquisition_band_of_the_wrong_type_is_refused(tmp_path):
    path = write_tif(tmp_path / "B04.tif", np.ones((8, 8), np.uint8), compress="deflate")
    with pytest.raises(l2a.L2AMetadataError, match="B04.tif: band raster of type uint8"):
        l2a._read_band_10m(path, Window(0, 0, 16, 16), None, "uint16")
