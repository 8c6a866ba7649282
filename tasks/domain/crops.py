"""Crop classes and the Sentinel-2 bands of the crop models.

INVEKOS / HCAT3 code lists that map declared crops to these classes: :mod:`tasks.domain.crop_codes`.
"""

from __future__ import annotations

#: Sentinel-2 L2A bands used (10 m and 20 m bands resampled to 10 m).
S2_BANDS: tuple[str, ...] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)

#: The 16 crop classes of the paper, in model-output order.
CROP_CLASSES: tuple[str, ...] = (
    "grassland",
    "maize",
    "legumes",
    "winter_caraway",
    "winter_wheat",
    "rapeseed",
    "potato",
    "rye",
    "winter_barley",
    "beet",
    "spring_barley",
    "soy",
    "sunflower",
    "permanent_plantations",
    "triticale",
    "other",
)
