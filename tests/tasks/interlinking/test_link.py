from __future__ import annotations

import numpy as np
import pytest
import shapely

from tasks.config.common import DaskConfig
from tasks.dask_cluster import dask_client
from tasks.interlinking.grid import (
    EquiGrid,
    candidate_pairs,
    column_strips,
    grid_from_data,
    mbrs_intersect,
)
from tasks.interlinking.link import interlink
from tasks.interlinking.relations import relation_bit


def _pairs(source, target):
    return set(zip(source.tolist(), target.tolist(), strict=True))


def test_filtering_loses_no_true_pair_against_strtree(random_sets):
    source, target = random_sets
    result = interlink(source, target)
    truth = _pairs(*shapely.STRtree(target).query(source, predicate="intersects"))
    related = (result.masks & relation_bit("intersects")) > 0
    assert truth and _pairs(result.source[related], result.target[related]) == truth
    # every verified pair has intersecting MBRs, and the rest are disjoint
    assert mbrs_intersect(shapely.bounds(source), shapely.bounds(target),
                          result.source, result.target).all()
    assert ((result.masks[~related] & relation_bit("disjoint")) > 0).all()


@pytest.mark.parametrize("cell_factor", [0.25, 1.0, 4.0])
def test_every_candidate_pair_once_and_all_cell_sharing_pairs(random_sets, cell_factor):
    source, target = random_sets
    bounds_a, bounds_b = shapely.bounds(source), shapely.bounds(target)
    grid = grid_from_data(bounds_a, bounds_b, cell_factor)
    ranges_a, ranges_b = grid.cell_ranges(bounds_a), grid.cell_ranges(bounds_b)
    chunks = list(candidate_pairs(ranges_a, ranges_b, 0, grid.nx, grid.ny, max_pairs=5000))
    assert len(chunks) > 1  # several chunks exercised
    src = np.concatenate([c[0] for c in chunks])
    tgt = np.concatenate([c[1] for c in chunks])
    keys = src * len(target) + tgt
    assert np.unique(keys).size == keys.size, "a pair was produced twice"
    # brute force: pairs whose cell ranges overlap
    a, b = np.meshgrid(np.arange(len(source)), np.arange(len(target)), indexing="ij")
    a, b = a.ravel(), b.ravel()
    share = ((np.maximum(ranges_a[a, 0], ranges_b[b, 0]) <= np.minimum(ranges_a[a, 2],
                                                                       ranges_b[b, 2]))
             & (np.maximum(ranges_a[a, 1], ranges_b[b, 1]) <= np.minimum(ranges_a[a, 3],
                                                                         ranges_b[b, 3])))
    assert _pairs(src, tgt) == _pairs(a[share], b[share])


def test_strips_give_the_same_pairs_once(random_sets):
    source, target = random_sets
    single = interlink(source, target)
    for n in (2, 5, 16):
        parted = interlink(source, target, n_partitions=n, max_pairs=3000)
        assert parted.candidates == single.candidates
        for field in ("source", "target", "de9im", "masks"):
            assert np.array_equal(getattr(parted, field), getattr(single, field)), (n, field)


def test_column_strips_cover_the_grid():
    ranges = np.array([[0, 0, 9, 0], [3, 0, 3, 5], [7, 1, 8, 2]])
    strips = column_strips(ranges, ranges, 10, 4)
    assert strips[0][0] == 0 and strips[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(strips[:-1], strips[1:], strict=True))


def test_grid_cell_size_comes_from_the_source_mbrs():
    source = shapely.bounds(shapely.box([0, 10], [0, 0], [2, 14], [4, 8]))
    target = np.array([[0.0, 0.0, 0.0, 0.0], [20.0, 20.0, 20.0, 20.0]])
    grid = grid_from_data(source, target)
    assert isinstance(grid, EquiGrid)
    assert (grid.dx, grid.dy) == (3.0, 6.0)  # mean widths (2, 4) and heights (4, 8)
    points_only = grid_from_data(target, source)  # source without extent: the target's
    assert (points_only.dx, points_only.dy) == (3.0, 6.0)
    with pytest.raises(ValueError, match="cell_factor"):
        grid_from_data(source, target, 0)


def test_dask_result_equals_single_process(random_sets):
    source, target = random_sets
    single = interlink(source, target)
    cfg = DaskConfig(cluster="local", n_workers=2, threads_per_worker=1, memory_limit="1GiB")
    with dask_client(cfg) as client:
        distributed = interlink(source, target, n_partitions=6, client=client)
    assert distributed.candidates == single.candidates
    for field in ("source", "target", "de9im", "masks"):
        assert np.array_equal(getattr(distributed, field), getattr(single, field)), field


def test_generated_sets_have_their_intended_relations(generated):
    parcels = generated.parcels.geometry.to_numpy()
    fields = generated.fields
    result = interlink(parcels, fields.geometry.to_numpy())
    found = {(s, t): m for s, t, m in zip(result.source.tolist(), result.target.tolist(),
                                          result.masks.tolist(), strict=True)}
    # the relation is written parcel (source) -> field (target): the inverse of the intent
    inverse = {"equals": "equals", "within": "contains", "overlaps": "overlaps",
               "contains": "within"}
    for kind in ("equal", "shrunk", "split", "merged", "shifted"):
        rows = fields[fields["kind"] == kind]
        assert len(rows), kind
        bit = relation_bit(inverse[rows["intended"].iloc[0]])
        held = [found.get((p, f), 0) & bit for p, f in zip(rows["parcel_row"], rows["field_id"],
                                                            strict=True)]
        share = np.mean(np.asarray(held) > 0)
        assert share >= (0.97 if kind == "shifted" else 1.0), (kind, share)
    merged = fields[fields["kind"] == "merged"]
    assert all(found[(p, f)] & relation_bit("within")
               for p, f in zip(merged["parcel_row_2"], merged["field_id"], strict=True))
    ditch_rows = fields.index[fields["kind"] == "ditch"]
    crossing = [t for (_, t), m in found.items() if m & relation_bit("crosses")]
    assert set(ditch_rows) <= set(crossing)


def test_missing_geometries_are_refused():
    with pytest.raises(ValueError, match="source: 1 missing or empty"):
        interlink(np.array([shapely.Point(0, 0), None]), np.array([shapely.Point(0, 0)]))
