"""Corrupt, missing and mislabelled inputs: SAFE products, GeoParquet metadata, LUCAS shares.

Each case asserts the error type, that the message names the file (and the column or element),
and, where a stage ran before, that its earlier output is byte-identical afterwards.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.config.lucas import LucasConfig
from tasks.geoparquet import GeoParquetError, check_geo_columns
from tasks.lucas.points import LucasInputError
from tasks.lucas.run import run_lucas_evaluation
from tasks.sentinel1.safe import (
    MissingPolarisationError,
    SafeFormatError,
    WrongModeError,
    WrongProductTypeError,
    open_safe,
)
from tests.faults.conftest import snapshot

DAY = "2018-06-30"


def _copy(scene, tmp_path: Path) -> Path:
    dst = tmp_path / scene.safe_path.name
    shutil.copytree(scene.safe_path, dst)
    return dst


# --------------------------------------------------------------------------- SAFE products


@pytest.mark.parametrize("href", ["../../x.xml", "/etc/hostname", "..\\..\\x.xml"])
def test_manifest_link_outside_the_product_is_refused(small_scene, tmp_path, href):
    safe = _copy(small_scene, tmp_path / "p")
    outside = tmp_path / "x.xml"
    outside.write_text("<secret/>")
    manifest = safe / "manifest.safe"
    text = manifest.read_text()
    first = re.search(r'href="(\./annotation/s1[^"]*-hh-[^"]*\.xml)"', text).group(1)
    manifest.write_text(text.replace(f'href="{first}"', f'href="{href}"', 1))
    with pytest.raises(SafeFormatError, match=r"manifest\.safe.*points outside the product"):
        open_safe(safe)


def test_symlink_out_of_the_product_is_refused(small_scene, tmp_path):
    safe = _copy(small_scene, tmp_path / "p")
    noise = next((safe / "annotation" / "calibration").glob("noise-*-hv-*.xml"))
    outside = tmp_path / "elsewhere.xml"
    shutil.copy(noise, outside)
    noise.unlink()
    noise.symlink_to(outside)
    with pytest.raises(SafeFormatError, match="points outside the product"):
        open_safe(safe).noise_lut("HV")


def test_calibration_vector_of_the_wrong_length_names_the_file(small_scene, tmp_path):
    safe = _copy(small_scene, tmp_path)
    cal = next((safe / "annotation" / "calibration").glob("calibration-*-hh-*.xml"))
    text = cal.read_text()
    values = re.search(r"<sigmaNought[^>]*>([^<]*)</sigmaNought>", text)
    shorter = " ".join(values.group(1).split()[:-3])
    cal.write_text(text.replace(values.group(1), shorter, 1))
    with pytest.raises(SafeFormatError, match=rf"{cal.name}: sigmaNought LUT: vector 0"):
        open_safe(safe).calibration_lut("HH")


def test_missing_measurement_names_the_file(small_scene, tmp_path):
    safe = _copy(small_scene, tmp_path)
    tiff = next((safe / "measurement").glob("*-hv-*.tiff"))
    tiff.unlink()
    with pytest.raises(MissingPolarisationError, match=rf"{tiff.name}: measurement file"):
        open_safe(safe).require_polarisations(("HH", "HV"))


@pytest.mark.parametrize(
    ("element", "value", "error", "check"),
    [
        ("s1sarl1:mode", "IW", WrongModeError, lambda p: p.require_mode("EW")),
        ("s1sarl1:productType", "SLC", WrongProductTypeError,
         lambda p: p.require_product_type("GRD")),
        ("safe:familyName", "SENTINEL-2", SafeFormatError, None),
    ],
    ids=["mode-IW", "type-SLC", "family-S2"],
)
def test_mislabelled_product_is_refused(small_scene, tmp_path, element, value, error, check):
    safe = _copy(small_scene, tmp_path)
    manifest = safe / "manifest.safe"
    text = manifest.read_text()
    new, n = re.subn(rf"(<{element}[^>]*>)[^<]*(</{element}>)", rf"\g<1>{value}\g<2>", text,
                     count=1)
    assert n == 1, f"{element} not in the generated manifest"
    manifest.write_text(new)
    with pytest.raises(error, match=re.escape(str(safe))):
        product = open_safe(safe)
        check(product)


def test_corrupt_zip_product_is_refused(small_scene, tmp_path):
    archive = tmp_path / f"{small_scene.safe_path.stem}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in small_scene.safe_path.rglob("*"):
            zf.write(f, f.relative_to(small_scene.safe_path.parent))
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(SafeFormatError, match=rf"{archive.name}.*(zip|SAFE)"):
        open_safe(archive)


def test_corrupt_scene_fails_harmonise_and_keeps_the_previous_output(tmp_path):
    """A truncated measurement read by Dask process workers: exit 1, SafeFormatError, file named."""
    from tasks.config.common import load_config
    from tasks.polar.stages import harmonise_stage, ingest_stage
    from tests.faults.conftest import run_cli
    from tests.faults.test_error_boundary import tiny_polar_yaml

    day = "2026-01-15"
    config = tiny_polar_yaml(tmp_path)
    cfg = load_config(config)
    ingest_stage(cfg, day)
    harmonise_stage(cfg, day)
    out = tmp_path / "data" / "polar" / "harmonise" / day
    before = snapshot(out)
    scene = next((tmp_path / "data" / "polar" / "ingest" / day).glob("*.SAFE"))
    tiff = next((scene / "measurement").glob("*-hh-*.tiff"))
    tiff.write_bytes(tiff.read_bytes()[:3000])
    done = run_cli("polar", "harmonise", "-c", str(config), "-d", day,
                   "--set", "dask.cluster=local", "--set", "dask.workers=processes",
                   "--set", "dask.n_workers=1")
    assert done.returncode == 1, done.stderr
    assert "SafeFormatError" in done.stderr and tiff.name in done.stderr
    assert "eeflow polar harmonise" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(out) == before


# --------------------------------------------------------------------------- GeoParquet


def _with_geo(src: Path, dst: Path, edit) -> Path:
    table = pq.read_table(src)
    meta = dict(table.schema.metadata)
    geo = json.loads(meta[b"geo"])
    edit(geo)
    meta[b"geo"] = json.dumps(geo).encode()
    pq.write_table(table.replace_schema_metadata(meta), dst)
    return dst


def _rename_primary(geo: dict) -> None:
    old = geo["primary_column"]
    geo["primary_column"] = "geom"
    geo["columns"] = {"geom": geo["columns"].pop(old)}


def _bad_covering(geo: dict) -> None:
    column = geo["primary_column"]
    geo["columns"][column]["covering"] = {"bbox": {k: ["box", k] for k in
                                                   ("xmin", "ymin", "xmax", "ymax")}}


@pytest.mark.parametrize(("edit", "column"), [(_rename_primary, "'geom'"),
                                              (_bad_covering, "'box'")],
                         ids=["primary-column", "covering-bbox"])
def test_geoparquet_metadata_naming_a_missing_column(lucas_dir, tmp_path, edit, column):
    bad = _with_geo(lucas_dir / "model.parquet", tmp_path / "bad.parquet", edit)
    with pytest.raises(GeoParquetError, match=rf"bad\.parquet: .* no column {column}"):
        check_geo_columns(bad)
    with pytest.raises(GeoParquetError, match=r"bad\.parquet"):
        run_lucas_evaluation(LucasConfig(), lucas_dir / "points.csv", {"lstm": bad}, tmp_path,
                             DAY)
    assert not (tmp_path / "food_security").exists()


def test_parcel_map_with_broken_geo_metadata_names_the_file(lucas_dir, tmp_path):
    from tasks.food_security.labels import read_parcel_map

    bad = _with_geo(lucas_dir / "truth.parquet", tmp_path / "parcels.parquet", _rename_primary)
    with pytest.raises(GeoParquetError, match=r"parcels\.parquet: .*primary_column 'geom'"):
        read_parcel_map(bad, "crop_code")


# --------------------------------------------------------------------------- LUCAS share


def _partially_located(lucas_dir: Path, tmp_path: Path) -> Path:
    table = pd.read_csv(lucas_dir / "points.csv", dtype=str)
    cut = int(len(table) * 0.7)
    for column in ("TH_LAT", "GPS_LAT"):
        if column in table:
            table.loc[: cut - 1, column] = ""
    path = tmp_path / "partial.csv"
    table.to_csv(path, index=False)
    return path


def test_min_usable_share_comes_from_the_config(lucas_dir, tmp_path):
    points = _partially_located(lucas_dir, tmp_path)
    maps = {"lstm": lucas_dir / "model.parquet"}
    with pytest.raises(LucasInputError, match="< the required 50%"):
        run_lucas_evaluation(LucasConfig(), points, maps, tmp_path, DAY)
    summary = run_lucas_evaluation(LucasConfig(min_usable_share=0.2), points, maps, tmp_path, DAY)
    assert summary["points_used"]["lstm"] > 0


def test_min_usable_share_outside_0_1_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="min_usable_share"):
        LucasConfig(min_usable_share=1.5)
