"""On-disk contracts of the polar stages (names shared by writers and readers).

Harmonised scene (``{root}/polar/harmonise/{day}/{scene_id}.zarr``, zarr v3, written by xarray):
    ``backscatter`` float32 (band, y, x), band = HH, HV (sigma0 in dB) and incidence (degrees);
    ``land_mask`` uint8 (y, x), 1 = land; ``valid_mask`` uint8 (y, x), 1 = data present.
    Attributes: ``crs`` (WKT/EPSG string), ``transform`` (6 GDAL geotransform numbers of the
    y/x grid in that CRS), ``scene_id``, ``start_time``, ``pixel_spacing_m``; plus spatial_ref
    (rioxarray) so ``rio.crs`` / ``rio.transform()`` work.

Label raster (``{root}/polar/labels/{day}/{scene_id}.zarr``): ``label`` uint8 (y, x) with codes of
``ice_classes.csv`` (0 = no label / land; classes in :mod:`tasks.domain.ice`), and
``label_binary`` uint8 (0 = no label, 1 = water, 2 = ice), same grid and attributes as the
harmonised scene.

Training set (``{root}/polar/patches/{dataset_version}/patches_{size}.zarr``): ``x`` float32
(n, band, size, size) raw values (dB / degrees), ``y`` uint8 (n,) five-class code (1..5),
``scene`` (n,) index into attribute ``scenes``; attributes ``band_mean``, ``band_std``,
``class_counts``, ``bands``, ``patch_size``, ``stride``, ``min_purity``, ``dataset_version``.
"""

from __future__ import annotations

BANDS: tuple[str, ...] = ("HH", "HV", "incidence")
BACKSCATTER_VAR = "backscatter"
LAND_MASK_VAR = "land_mask"
VALID_MASK_VAR = "valid_mask"
LABEL_VAR = "label"
LABEL_BINARY_VAR = "label_binary"
NO_LABEL = 0
