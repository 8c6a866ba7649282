"""Ice-chart codes, colours and the PNG quicklook.

Ice white, water blue, land black, as the paper's Fig. 18; five-class charts use the colours of
``ice_classes.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.domain import ice

#: Chart raster code of pixels without data (outside the swath / invalid).
CHART_NODATA = 0
#: Chart raster code of land.
CHART_LAND = 255
NODATA_COLOUR = "#7f7f7f"
LAND_COLOUR = "#000000"


@dataclass(frozen=True)
class ChartClass:
    """One value of the chart raster."""

    code: int
    name: str
    label: str
    colour: str


def chart_classes(class_scheme: str) -> list[ChartClass]:
    """Chart raster values of ``class_scheme``: classes 1..n (model index + 1), then land.

    ``binary``: 1 water (blue), 2 ice (white); ``five_class``: the codes and colours of
    ``ice_classes.csv``. Land is :data:`CHART_LAND`, no data :data:`CHART_NODATA`.
    """
    if class_scheme == "binary":
        water = next(c for c in ice.ice_classes() if c.binary_code == 0)
        classes = [ChartClass(1, "water", "Open water", water.colour),
                   ChartClass(2, "ice", "Sea ice", "#ffffff")]
    elif class_scheme == "five_class":
        classes = [ChartClass(c.code, c.name, c.label, c.colour) for c in ice.ice_classes()]
    else:
        raise ValueError(
            f"class scheme {class_scheme!r} unknown; allowed: ['five_class', 'binary']"
        )
    return classes + [ChartClass(CHART_LAND, "land", "Land", LAND_COLOUR)]


def colourise(chart: np.ndarray, class_scheme: str) -> np.ndarray:
    """RGB uint8 image (y, x, 3) of a chart raster."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:] = _rgb(NODATA_COLOUR)
    for c in chart_classes(class_scheme):
        lut[c.code] = _rgb(c.colour)
    return lut[chart]


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def read_decimated(chart_tif: Path, max_size: int) -> np.ndarray:
    """Read a chart GeoTIFF at most ``max_size`` pixels on its long side (nearest neighbour)."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(chart_tif) as src:
        factor = max(1, int(np.ceil(max(src.height, src.width) / max_size)))
        shape = (max(1, src.height // factor), max(1, src.width // factor))
        return src.read(1, out_shape=shape, resampling=Resampling.nearest)


def render_quicklook(chart_tif: Path, out_png: Path, class_scheme: str, title: str = "",
                     max_size: int = 1600) -> Path:
    """Write a PNG quicklook of a chart GeoTIFF with a legend of the classes present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    chart = read_decimated(chart_tif, max_size)
    present = set(np.unique(chart).tolist())
    handles = [Patch(facecolor=c.colour, edgecolor="black", label=c.label)
               for c in chart_classes(class_scheme) if c.code in present]
    if CHART_NODATA in present:
        handles.append(Patch(facecolor=NODATA_COLOUR, edgecolor="black", label="No data"))
    height, width = chart.shape
    fig_w = 8.0
    fig, ax = plt.subplots(figsize=(fig_w, fig_w * height / width + 0.8))
    ax.imshow(colourise(chart, class_scheme), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01),
              ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110, facecolor="white", bbox_inches="tight")
    plt.close(fig)
    return out_png
