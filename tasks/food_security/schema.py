"""On-disk contracts of the food-security stages (names shared by writers and readers).

Monthly composites (``{root}/food_security/harmonise/{agronomic_year}/{tile}.zarr``, zarr v3 via
xarray): ``reflectance`` float32 (month=12, band, y, x) surface reflectance (0..1, offset removed),
months ordered September..August; ``valid_count`` uint16 (month, y, x) valid observations per
month; ``gap_filled`` uint8 (month, y, x) 1 where the month had no valid observation and was filled.
Attributes: ``crs``, ``transform`` (GDAL geotransform), ``tile``, ``agronomic_year``, ``bands``,
``months`` (ISO ``YYYY-MM`` strings).

Labels (``{root}/food_security/labels/{agronomic_year}/{tile}.zarr``): ``label`` int16 (y, x)
class index into :data:`tasks.domain.crops.CROP_CLASSES` order, -1 = no (reliable) label;
``parcel_id`` int64 (y, x), -1 = none. ``report.json`` beside: samples removed per rule and class.

Samples (``{root}/food_security/samples/{agronomic_year}/{split}.zarr``, split in train/val/test):
``x`` float32 (n, 12, band) reflectance time series; ``y`` int16 (n,) class index;
``tile`` (n,) tile name; ``row``/``col`` int32 pixel position in the tile; ``parcel_id`` int64.
Attributes: ``class_names``, ``class_counts``, ``bands``, ``band_mean``, ``band_std`` (train split
statistics), ``tiles``, ``dataset_version``.

Extensions (data side, additive; readers of the names above are unaffected): the labels store also
holds ``declared_label`` int16 (y, x), the class of the parcel as declared for every parcel pixel
before reliable-label selection (-1 outside parcels), and attrs ``crs``, ``transform``, ``tile``,
``class_names``; the samples stores also hold ``gap_filled`` uint8 (n, 12) per sample and attrs
``months``, ``split``, ``agronomic_year``, ``n_samples``. Raw inputs of a year (generator or
ingest): ``{root}/food_security/ingest/{agronomic_year}/l2a/{tile}/{item_id}/`` (STAC item + one
GeoTIFF per band, see :mod:`tasks.sentinel2.l2a`) and ``parcels.parquet`` (GeoParquet with
``FS_KENNUNG``, ``SNAR_CODE``, ``SNAR_BEZEICHNUNG``).
"""

from __future__ import annotations

NO_LABEL = -1
