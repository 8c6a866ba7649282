"""LUT interpolation checked against values computed by hand (kills the mutants of issue 19)."""

import numpy as np
import pytest

from tasks.sentinel1.lut import (
    AzimuthBlock,
    RangeVectors,
    interpolate_azimuth_blocks,
    interpolate_range_vectors,
    window_axes,
)


def _three_vectors() -> RangeVectors:
    """Lines 0, 10, 20 with values that are not linear in the line (so brackets matter)."""
    pixels = np.array([0.0, 10.0])
    return RangeVectors(
        np.array([0.0, 10.0, 20.0]),
        (pixels, pixels, pixels),
        (np.array([1.0, 2.0]), np.array([5.0, 6.0]), np.array([0.0, 100.0])),
    )


def test_rows_are_interpolated_between_the_bracketing_lines_only():
    got = interpolate_range_vectors(_three_vectors(), np.array([5, 15]), np.array([0, 5]))
    # row 5: halfway between line 0 and line 10; row 15: halfway between line 10 and line 20
    expected = np.array([[(1 + 5) / 2, (1.5 + 5.5) / 2], [(5 + 0) / 2, (5.5 + 50) / 2]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.dtype == np.float32


def test_rows_before_the_first_line_take_the_first_vector_not_the_last():
    got = interpolate_range_vectors(_three_vectors(), np.array([-3, 25]), np.array([10]))
    np.testing.assert_allclose(got, [[2.0], [100.0]])


def test_azimuth_block_covers_exactly_its_rows_and_columns():
    block = AzimuthBlock("EW2", 2, 5, 1, 2, np.array([2.0, 5.0]), np.array([2.0, 5.0]))
    got = interpolate_azimuth_blocks([block], np.arange(8), np.arange(4))
    expected = np.ones((8, 4))
    expected[2:6, 1:3] = np.array([2.0, 3.0, 4.0, 5.0])[:, None]  # first and last line included
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32


def test_a_block_outside_the_window_does_not_stop_later_blocks():
    away = AzimuthBlock("EW1", 100, 200, 0, 3, np.array([100.0, 200.0]), np.array([9.0, 9.0]))
    here = AzimuthBlock("EW2", 0, 3, 0, 3, np.array([0.0, 3.0]), np.array([2.0, 2.0]))
    got = interpolate_azimuth_blocks([away, here], np.arange(4), np.arange(4))
    np.testing.assert_array_equal(got, np.full((4, 4), 2.0))


def test_single_value_block_is_constant_over_its_rows():
    block = AzimuthBlock("EW3", 1, 2, 0, 1, np.array([1.0]), np.array([0.5]))
    got = interpolate_azimuth_blocks([block], np.arange(4), np.arange(3))
    expected = np.ones((4, 3))
    expected[1:3, 0:2] = 0.5
    np.testing.assert_array_equal(got, expected)


def test_window_axes_whole_image_steps_and_empty_columns():
    rows, cols = window_axes(None, (5, 3))
    assert rows.tolist() == [0, 1, 2, 3, 4] and cols.tolist() == [0, 1, 2]
    rows, cols = window_axes((slice(1, 6), slice(0, 5)), (10, 10), step=2)
    assert rows.tolist() == [1, 3, 5] and cols.tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="empty"):
        window_axes((slice(0, 3), slice(2, 2)), (10, 10))


def test_range_vectors_validation():
    with pytest.raises(ValueError, match="got 0 lines, 0 pixel arrays, 0 value arrays"):
        RangeVectors(np.array([]), (), ())
    with pytest.raises(ValueError, match="got 2 lines, 1 pixel arrays, 1 value arrays"):
        RangeVectors(np.array([0.0, 1.0]), (np.array([0.0]),), (np.array([1.0]),))
    with pytest.raises(ValueError, match="0 pixels but 0 values"):
        RangeVectors(np.array([0.0]), (np.array([]),), (np.array([]),))
    one_point = RangeVectors(np.array([0.0]), (np.array([4.0]),), (np.array([7.0]),))
    np.testing.assert_array_equal(
        interpolate_range_vectors(one_point, np.array([0]), np.array([0, 9])), [[7.0, 7.0]]
    )
