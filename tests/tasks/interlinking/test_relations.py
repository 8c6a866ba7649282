from __future__ import annotations

import numpy as np
import pytest
import shapely

from tasks.interlinking.relations import RELATION_NAMES, relation_masks, relation_names

SQUARE = shapely.box(0, 0, 2, 2)

# (a, b, relations that must hold, relations that must not hold); all hand-checked
CASES = [
    (SQUARE, shapely.box(0, 0, 2, 2), {"equals", "intersects", "within", "contains", "covers",
                                       "covered_by"}, {"touches", "overlaps", "disjoint"}),
    (SQUARE, shapely.box(3, 3, 4, 4), {"disjoint"}, {"intersects", "touches"}),
    (SQUARE, shapely.box(2, 0, 3, 2), {"touches", "intersects"}, {"overlaps", "within"}),
    (SQUARE, shapely.box(1, 1, 3, 3), {"overlaps", "intersects"}, {"touches", "contains"}),
    (SQUARE, shapely.box(0.5, 0.5, 1, 1), {"contains", "covers", "intersects"},
     {"within", "equals"}),
    (shapely.box(0.5, 0.5, 1, 1), SQUARE, {"within", "covered_by", "intersects"},
     {"contains", "touches"}),
    # covers without contains: a line along the square's edge lies in its boundary only
    (SQUARE, shapely.LineString([(0, 0), (2, 0)]), {"covers", "touches", "intersects"},
     {"contains", "crosses"}),
    (shapely.LineString([(0, 0), (2, 0)]), SQUARE, {"covered_by", "touches"}, {"within"}),
    (shapely.LineString([(-1, 1), (3, 1)]), SQUARE, {"crosses", "intersects"},
     {"within", "overlaps"}),
    (SQUARE, shapely.LineString([(-1, 1), (3, 1)]), {"crosses"}, {"contains"}),
    (shapely.LineString([(0, -1), (0, 1)]), shapely.LineString([(-1, 0), (1, 0)]),
     {"crosses", "intersects"}, {"overlaps", "touches"}),
    (shapely.LineString([(0, 0), (2, 0)]), shapely.LineString([(1, 0), (3, 0)]),
     {"overlaps", "intersects"}, {"crosses"}),
    (shapely.Point(1, 1), SQUARE, {"within", "covered_by", "intersects"}, {"touches"}),
    (shapely.Point(0, 0), SQUARE, {"touches", "covered_by"}, {"within"}),
    (shapely.MultiPoint([(1, 1), (5, 5)]), SQUARE, {"crosses", "intersects"}, {"within"}),
    (shapely.MultiPoint([(1, 1), (5, 5)]), shapely.MultiPoint([(1, 1), (6, 6)]),
     {"overlaps"}, {"equals", "crosses"}),
    (shapely.Point(1, 1), shapely.Point(1, 1), {"equals", "within", "contains"}, {"overlaps"}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_hand_made_relations(case):
    a, b, hold, not_hold = CASES[case]
    masks = relation_masks(shapely.relate(np.array([a]), np.array([b])),
                           shapely.get_dimensions(np.array([a])),
                           shapely.get_dimensions(np.array([b])))
    names = set(relation_names(masks[0]))
    assert hold <= names, (shapely.relate(a, b), names)
    assert not (not_hold & names), (shapely.relate(a, b), names)


def test_every_relation_is_covered_by_a_hand_made_case():
    covered = set().union(*(hold for _, _, hold, _ in CASES))
    assert covered == set(RELATION_NAMES)


PREDICATES = {
    "equals": shapely.equals, "disjoint": shapely.disjoint, "intersects": shapely.intersects,
    "touches": shapely.touches, "crosses": shapely.crosses, "within": shapely.within,
    "contains": shapely.contains, "overlaps": shapely.overlaps, "covers": shapely.covers,
    "covered_by": shapely.covered_by,
}


def test_masks_agree_with_shapely_predicates_on_random_pairs(random_sets):
    source, target = random_sets
    rng = np.random.default_rng(1)
    tree = shapely.STRtree(target)
    a, b = tree.query(source, predicate="dwithin", distance=2.0)
    pick = rng.choice(a.size, size=min(a.size, 20_000), replace=False)
    ga, gb = source[a[pick]], target[b[pick]]
    masks = relation_masks(shapely.relate(ga, gb), shapely.get_dimensions(ga),
                           shapely.get_dimensions(gb))
    for bit, name in enumerate(RELATION_NAMES):
        expected = PREDICATES[name](ga, gb)
        got = (masks >> bit & 1).astype(bool)
        assert np.array_equal(got, expected), name
        assert expected.any(), f"no random pair holds {name}; the check proves nothing"


def test_bad_matrix_is_refused():
    with pytest.raises(ValueError, match="other than F 0 1 2"):
        relation_masks(np.array(["2FFF1FFFX"], dtype=object), [2], [2])
