"""Sentinel-2 L2A SAFE products (the CDSE / CREODIAS layout, JPEG 2000 bands) as acquisitions.

Layout read::

    {product}.SAFE/MTD_MSIL2A.xml                                  product metadata
    {product}.SAFE/GRANULE/L2A_{tile}_.../MTD_TL.xml               tile metadata (CRS, grids)
    {product}.SAFE/GRANULE/L2A_{tile}_.../IMG_DATA/R10m/{tile}_{time}_B04_10m.jp2   (R20m, R60m)

The raster names come from the product's own ``IMAGE_FILE`` list and its ``imageFormat``
(``JPEG2000`` -> ``.jp2``; a few processing centres wrote ``GeoTIFF`` -> ``.tif``). Each band is
taken at its native resolution (10 m: B02 B03 B04 B08; 20 m: B05 B06 B07 B8A B11 B12 and SCL), so
the result reads like any other :class:`~tasks.sentinel2.l2a.L2AAcquisition`. The DN ->
reflectance offset comes from the product's ``BOA_ADD_OFFSET_VALUES_LIST``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.sentinel2.l2a import BAND_RESOLUTION_M, SCL_ASSET, L2AAcquisition
from tasks.sentinel2.metadata import (
    L2AMetadataError,
    read_product_metadata,
    safe_reflectance_scaling,
)

PRODUCT_METADATA = "MTD_MSIL2A.xml"


def read_safe(safe_dir: str | os.PathLike[str], *, check_files: bool = True) -> L2AAcquisition:
    """Read an L2A SAFE product folder into an acquisition (bands at native resolution + SCL).

    Args:
        safe_dir: the ``*.SAFE`` folder (unzipped).
        check_files: raise when a listed band raster is missing (default); False only parses.

    Raises:
        L2AMetadataError: no / bad ``MTD_MSIL2A.xml``, or a band missing from its IMAGE_FILE list.
        FileNotFoundError: a band raster the metadata lists is not in the folder.

    """
    safe = Path(safe_dir)
    mtd_path = safe / PRODUCT_METADATA
    if not mtd_path.is_file():
        raise L2AMetadataError(
            f"{safe}: no {PRODUCT_METADATA}; pass an unzipped Sentinel-2 L2A .SAFE folder"
        )
    product = read_product_metadata(mtd_path)
    assets: dict[str, Path | str] = {}
    scale: dict[str, float] = {}
    offset: dict[str, float] = {}
    rules: dict[str, str] = {}
    for band, resolution in [*BAND_RESOLUTION_M.items(), (SCL_ASSET, 20)]:
        relative = product.image_files.get((band, resolution))
        if relative is None:
            raise L2AMetadataError(
                f"{mtd_path}: IMAGE_FILE list has no {band} at {resolution} m; listed: "
                f"{sorted(f'{b}_{r}m' for b, r in product.image_files)}"
            )
        path = safe / relative
        if check_files and not path.is_file():
            raise FileNotFoundError(
                f"{path}: band {band} listed in {PRODUCT_METADATA} ({product.image_format}) is "
                "missing; the download is incomplete, re-fetch or re-extract the product"
            )
        assets[band] = path
        if band != SCL_ASSET:
            scaling = safe_reflectance_scaling(product, band)
            scale[band], offset[band], rules[band] = scaling.scale, scaling.offset, scaling.rule
    return L2AAcquisition(
        tile=product.tile, date=product.sensing_start.date(),
        item_id=product.product_uri.removesuffix(".SAFE"), item_path=mtd_path, assets=assets,
        scale=scale, offset=offset, cloud_cover=product.cloud_cover, offset_rule=rules,
    )
