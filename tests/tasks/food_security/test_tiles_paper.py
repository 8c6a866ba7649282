"""The paper's 15-tile crop setting (Table IV): tile ids, the 13 / 1 / 1 split, class imbalance."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tasks.config.common import load_config
from tasks.config.food_security import FoodSecurityConfig
from tasks.domain.crops import CROP_CLASSES
from tasks.sentinel2.generator import assign_crops
from tasks.sentinel2.tiles import (
    PAPER_TEST_TILE,
    PAPER_TILES,
    PAPER_VAL_TILE,
    paper_tiles,
    synthetic_tile_grid,
)

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "food_security.yaml"
MGRS = re.compile(r"^(32|33)[TU][A-HJ-NP-Z][A-HJ-NP-V]$")  # MGRS letters skip I and O


def test_fifteen_real_mgrs_tiles_split_13_1_1_with_t33uvp_for_testing_only() -> None:
    overrides = paper_tiles(128)
    # the config's own cross-checks (tiles named in the split exist, once) accept the split
    cfg = load_config(CONFIG, overrides, expect=FoodSecurityConfig)
    ids = [t.id for t in cfg.ingest.generator.tiles]
    assert ids == list(PAPER_TILES)
    assert len(set(ids)) == 15
    assert all(MGRS.match(t) for t in ids), ids
    split = cfg.samples.split
    assert (len(split.train_tiles), len(split.val_tiles), len(split.test_tiles)) == (13, 1, 1)
    assert split.test_tiles == ["33UVP"] == [PAPER_TEST_TILE]
    assert split.val_tiles == [PAPER_VAL_TILE]
    assert "33UVP" not in split.train_tiles + split.val_tiles
    assert sorted(split.train_tiles + split.val_tiles + split.test_tiles) == sorted(ids)
    assert cfg.evaluate.tile == cfg.predict.tile == "33UVP"
    assert cfg.ingest.generator.size_px == 128


def test_parcels_scale_with_tile_area_and_tiles_differ_in_acquisitions() -> None:
    small = paper_tiles(128)["ingest.generator.tiles"]
    full = paper_tiles(256)["ingest.generator.tiles"]
    assert isinstance(small, list) and isinstance(full, list)
    assert {t["parcels"] for t in full} == {120}
    assert {t["parcels"] for t in small} == {30}
    assert {t["revisit_days"] for t in full} == {3, 5}
    assert sum(1 for t in full if t.get("clouded_months")) == 5


def test_generated_tile_areas_do_not_overlap() -> None:
    grids = [synthetic_tile_grid(t, 1024) for t in PAPER_TILES]
    for i, a in enumerate(grids):
        for b in grids[i + 1:]:
            if a.epsg != b.epsg:
                continue
            (al, ab, ar, at), (bl, bb, br, bt) = a.bounds, b.bounds
            assert ar <= bl or br <= al or at <= bb or bt <= ab, (a.tile, b.tile)


def test_class_imbalance_over_the_fifteen_tiles_is_realistic() -> None:
    counts: Counter[str] = Counter()
    for tile in PAPER_TILES:
        crops = assign_crops(120, tile, 2017, seed=42, difficulty=1.0, unknown_code_fraction=0.0)
        counts.update(crops.declared_class)
    assert sum(counts.values()) == 15 * 120
    assert counts.most_common(1)[0][0] == "grassland"
    assert counts["grassland"] / (15 * 120) > 0.25
    present = [c for c in CROP_CLASSES if counts[c]]
    assert len(present) >= 14  # nearly all 16 classes occur somewhere in 1,800 parcels
    assert counts["grassland"] >= 40 * min(counts[c] for c in present)  # a long tail


@pytest.mark.parametrize(("size", "parcels"), [(31, 120), (30, 120), (5000, 120), (128, 0)])
def test_bad_sizes_are_refused_with_the_value(size: int, parcels: int) -> None:
    with pytest.raises(ValueError, match=str(size if parcels else parcels)):
        paper_tiles(size, parcels)


def test_tiles_of_two_utm_zones_make_one_parcel_map_that_maps_back_onto_each_tile(
    tmp_path: Path,
) -> None:
    import geopandas as gpd

    from tasks.sentinel2.generator import run_generate

    tiles = [{"id": "33UVP", "revisit_days": 30, "parcels": 6},
             {"id": "32TNT", "revisit_days": 30, "parcels": 6}]
    cfg = load_config(CONFIG, {
        "data_root": str(tmp_path), "ingest.generator.size_px": 32, "ingest.generator.tiles": tiles,
        "samples.split": {"train_tiles": ["32TNT"], "val_tiles": [], "test_tiles": ["33UVP"]},
        "evaluate.tile": "33UVP", "predict.tile": "33UVP",
    }, expect=FoodSecurityConfig)
    summary = run_generate(cfg, "2017-09-01")
    parcels = gpd.read_parquet(summary["parcel_map"])
    assert parcels.crs.to_epsg() == 32633  # the first tile's zone
    assert set(parcels["tile"]) == {"33UVP", "32TNT"}
    for tile, epsg in (("33UVP", 32633), ("32TNT", 32632)):
        own = parcels[parcels["tile"] == tile].to_crs(epsg)
        left, bottom, right, top = synthetic_tile_grid(tile, 32).bounds
        minx, miny, maxx, maxy = own.total_bounds
        assert left - 0.01 <= minx and maxx <= right + 0.01, (tile, own.total_bounds)
        assert bottom - 0.01 <= miny and maxy <= top + 0.01, (tile, own.total_bounds)
        # rectangles survive the round trip through the other zone (areas to 0.1 %)
        ha = own.geometry.area.to_numpy() / 1e4
        assert abs(ha - own["SL_FLAECHE_BRUTTO_HA"].to_numpy()).max() < 1e-3 * ha.max()
