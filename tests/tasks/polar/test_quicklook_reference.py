"""Chart colours, decimated reads and the PNG quicklook, value by value (issue 19)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.polar import quicklook
from tasks.polar.quicklook import (
    CHART_LAND,
    CHART_NODATA,
    chart_classes,
    colourise,
    read_decimated,
    render_quicklook,
)


def test_chart_classes_binary_and_five_class():
    binary = chart_classes("binary")
    assert [(c.code, c.name, c.label, c.colour) for c in binary] == [
        (1, "water", "Open water", "#1f5fbf"),
        (2, "ice", "Sea ice", "#ffffff"),
        (255, "land", "Land", "#000000"),
    ]
    five = chart_classes("five_class")
    assert [(c.code, c.name, c.colour) for c in five] == [
        (1, "water", "#1f5fbf"), (2, "brash_pancake", "#c9e6ff"), (3, "young", "#e4f1ff"),
        (4, "level_first_year", "#f4f8ff"), (5, "deformed", "#ffffff"), (255, "land", "#000000"),
    ]
    assert five[1].label == "Brash / pancake ice"
    assert (CHART_NODATA, CHART_LAND) == (0, 255)
    with pytest.raises(ValueError) as err:
        chart_classes("three")
    assert str(err.value) == "class scheme 'three' unknown; allowed: ['five_class', 'binary']"


def test_colourise_maps_codes_and_unknown_codes_to_no_data_grey():
    chart = np.array([[0, 1, 2], [255, 7, 1]], dtype=np.uint8)
    rgb = colourise(chart, "binary")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    grey, blue, white, black = (127, 127, 127), (0x1F, 0x5F, 0xBF), (255, 255, 255), (0, 0, 0)
    assert [tuple(p) for p in rgb.reshape(-1, 3)] == [grey, blue, white, black, grey, blue]
    five = colourise(np.array([[2, 3, 4, 5]], dtype=np.uint8), "five_class")
    assert [tuple(p) for p in five[0]] == [
        (0xC9, 0xE6, 0xFF), (0xE4, 0xF1, 0xFF), (0xF4, 0xF8, 0xFF), (0xFF, 0xFF, 0xFF)
    ]
    assert quicklook._rgb("#0a0b0c") == (10, 11, 12) and quicklook._rgb("a0b0c0") == (160, 176, 192)


def _chart_tif(path: Path, chart: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", height=chart.shape[0], width=chart.shape[1],
                       count=1, dtype="uint8", crs="EPSG:3413",
                       transform=from_origin(0, 0, 40, 40)) as dst:
        dst.write(chart, 1)
    return path


def test_read_decimated_reads_nearest_at_most_max_size(tmp_path):
    chart = (np.arange(10 * 25).reshape(10, 25) % 251).astype(np.uint8)
    tif = _chart_tif(tmp_path / "chart.tif", chart)
    np.testing.assert_array_equal(read_decimated(tif, 25), chart)  # fits: read as it is
    np.testing.assert_array_equal(read_decimated(tif, 100), chart)
    small = read_decimated(tif, 10)  # factor ceil(25 / 10) = 3
    assert small.shape == (3, 8)
    assert set(np.unique(small).tolist()) <= set(np.unique(chart).tolist())  # nearest: no blends
    assert read_decimated(tif, 24).shape == (5, 12)  # factor 2
    tiny = _chart_tif(tmp_path / "tiny.tif", np.full((2, 30), 3, dtype=np.uint8))
    assert read_decimated(tiny, 5).shape == (1, 5)  # never fewer than one row


def test_render_quicklook_legend_lists_the_classes_present(tmp_path, monkeypatch):
    import matplotlib.axes

    seen: dict = {}
    real_legend, real_title = matplotlib.axes.Axes.legend, matplotlib.axes.Axes.set_title

    def legend(self, *args, **kwargs):
        seen["labels"] = [h.get_label() for h in kwargs["handles"]]
        seen["faces"] = [tuple(round(v, 3) for v in h.get_facecolor()) for h in kwargs["handles"]]
        seen["ncol"] = kwargs["ncol"]
        return real_legend(self, *args, **kwargs)

    def set_title(self, label, *args, **kwargs):
        seen["title"] = label
        return real_title(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", legend)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", set_title)
    chart = np.zeros((40, 80), dtype=np.uint8)
    chart[:, 20:40], chart[:, 40:60], chart[:, 60:] = 1, 3, CHART_LAND
    tif = _chart_tif(tmp_path / "chart.tif", chart)
    out = render_quicklook(tif, tmp_path / "q.png", "five_class", title="2026-11-25")
    assert out == tmp_path / "q.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen["labels"] == [
        "Open water (calm, windy, leads)", "Young ice", "Land", "No data"
    ]
    assert seen["faces"][-1] == (0.498, 0.498, 0.498, 1.0) and seen["ncol"] == 4
    assert seen["title"] == "2026-11-25"

    from PIL import Image

    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[1] > image.shape[0]  # a wide chart gives a wide image
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert {(0x1F, 0x5F, 0xBF), (0xE4, 0xF1, 0xFF), (0, 0, 0), (127, 127, 127)} <= colours
    assert (0xC9, 0xE6, 0xFF) not in colours  # brash ice is not in the chart nor the legend

    seen.clear()
    binary = _chart_tif(tmp_path / "b.tif", np.array([[1, 2]] * 4, dtype=np.uint8))
    render_quicklook(binary, tmp_path / "b.png", "binary")
    assert seen["labels"] == ["Open water", "Sea ice"] and seen["ncol"] == 2
    assert "title" not in seen  # no title given: none set


def test_read_decimated_keeps_one_column_at_least(tmp_path):
    narrow = _chart_tif(tmp_path / "narrow.tif", np.full((30, 2), 4, dtype=np.uint8))
    assert read_decimated(narrow, 5).shape == (5, 1)


def test_render_quicklook_reads_at_most_1600_pixels_by_default(tmp_path, monkeypatch):
    asked: list[int] = []
    real = quicklook.read_decimated

    def spy(chart_tif, max_size):
        asked.append(max_size)
        return real(chart_tif, max_size)

    monkeypatch.setattr(quicklook, "read_decimated", spy)
    tif = _chart_tif(tmp_path / "c.tif", np.ones((4, 8), dtype=np.uint8))
    render_quicklook(tif, tmp_path / "a.png", "binary")
    render_quicklook(tif, tmp_path / "b.png", "binary", max_size=6)
    assert asked == [1600, 6]


#: Size and sha256 of the decoded RGB pixels of the reference quicklook below, recorded with
#: matplotlib REFERENCE_MATPLOTLIB; any change of layout, size, colours, legend or fonts changes
#: them (re-record only for a deliberate change of the product or another matplotlib).
REFERENCE_MATPLOTLIB = "3.11.2"
REFERENCE_QUICKLOOK = (
    (600, 780), "d45ff98f87540db4a509779618dacec38b187d39976b01fabcb9641f9f50bc83"
)


def _render_fresh(tif: Path, png: Path, scheme: str, title: str | None = None) -> Path:
    """``render_quicklook`` in a fresh interpreter: the reference pixels must not depend on what
    earlier tests left in this process (in the full suite the same call rendered other pixels)."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from tasks.polar.quicklook import "
            "render_quicklook; render_quicklook(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], "
            "title=sys.argv[4])")
    subprocess.run([sys.executable, "-c", code, str(tif), str(png), scheme, title or ""],
                   check=True, cwd=Path(__file__).resolve().parents[3])
    return png


def test_render_quicklook_pixels_match_the_reference(tmp_path):
    import hashlib

    import matplotlib
    from PIL import Image

    if matplotlib.__version__ != REFERENCE_MATPLOTLIB:
        pytest.skip(f"reference pixels recorded with matplotlib {REFERENCE_MATPLOTLIB}, "
                    f"not {matplotlib.__version__} (text rendering differs between releases)")

    chart = np.zeros((60, 90), dtype=np.uint8)
    chart[:, 15:35], chart[:, 35:50], chart[:, 50:70], chart[:, 70:] = 1, 2, 5, CHART_LAND
    chart[40:, :10] = 3
    tif = _chart_tif(tmp_path / "chart.tif", chart)
    out = _render_fresh(tif, tmp_path / "q.png", "five_class", title="Fram Strait 2026-11-25")
    pixels = np.asarray(Image.open(out).convert("RGB"))
    found = (pixels.shape[:2], hashlib.sha256(pixels.tobytes()).hexdigest())
    assert found == REFERENCE_QUICKLOOK


#: The same for a chart shown smaller than its pixels (1500 columns in ~870): nearest neighbour
#: keeps the class colours, matplotlib's default interpolation would blend the stripes.
REFERENCE_DOWNSAMPLED = (
    (164, 869), "f99dd64cb02d6c7542e1da594728c119b6e3f7f66eaf392690d71e499f673e96"
)


def test_render_quicklook_of_a_large_chart_matches_the_reference(tmp_path):
    import hashlib

    import matplotlib
    from PIL import Image

    if matplotlib.__version__ != REFERENCE_MATPLOTLIB:
        pytest.skip(f"reference pixels recorded with matplotlib {REFERENCE_MATPLOTLIB}")
    chart = np.ones((200, 1500), dtype=np.uint8)
    chart[:, 1::2] = CHART_LAND  # one-pixel stripes
    chart[100:, ::3] = 2
    tif = _chart_tif(tmp_path / "chart.tif", chart)
    out = _render_fresh(tif, tmp_path / "q.png", "binary")
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert (pixels.shape[:2], hashlib.sha256(pixels.tobytes()).hexdigest()) == REFERENCE_DOWNSAMPLED
