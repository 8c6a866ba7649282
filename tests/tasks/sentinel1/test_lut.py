import numpy as np

from tasks.sentinel1.lut import (
    AzimuthBlock,
    RangeVectors,
    interpolate_azimuth_blocks,
    interpolate_range_vectors,
    window_axes,
)


def test_range_vectors_are_bilinear_on_a_plane():
    lines = np.array([0.0, 10.0, 30.0])
    pixels = np.array([0.0, 5.0, 20.0])
    plane = lambda r, c: 2.0 * r + 3.0 * c + 1.0  # noqa: E731
    vectors = RangeVectors(
        lines, tuple(pixels for _ in lines), tuple(plane(ln, pixels) for ln in lines)
    )
    rows, cols = np.arange(0, 31), np.arange(0, 21)
    got = interpolate_range_vectors(vectors, rows, cols)
    np.testing.assert_allclose(got, plane(rows[:, None], cols[None, :]), rtol=1e-6)


def test_range_vectors_hold_values_beyond_the_ends():
    vectors = RangeVectors(np.array([5.0]), (np.array([0.0, 10.0]),), (np.array([1.0, 3.0]),))
    got = interpolate_range_vectors(vectors, np.array([0, 100]), np.array([-5, 5, 50]))
    np.testing.assert_allclose(got, [[1, 2, 3], [1, 2, 3]])


def test_azimuth_blocks_scale_only_their_rectangle():
    block = AzimuthBlock("EW1", 0, 9, 0, 4, np.array([0.0, 9.0]), np.array([1.0, 2.0]))
    got = interpolate_azimuth_blocks([block], np.arange(10), np.arange(8))
    assert got.shape == (10, 8)
    np.testing.assert_allclose(got[:, 5:], 1.0)
    np.testing.assert_allclose(got[9, :5], 2.0)
    np.testing.assert_allclose(got[0, :5], 1.0)


def test_window_axes_rejects_empty_windows():
    rows, cols = window_axes((slice(2, 5), slice(None)), (10, 4))
    assert rows.tolist() == [2, 3, 4] and cols.tolist() == [0, 1, 2, 3]
    try:
        window_axes((slice(20, 30), slice(None)), (10, 4))
    except ValueError as err:
        assert "empty" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_vector_length_mismatch_is_an_error():
    try:
        RangeVectors(np.array([0.0]), (np.array([0.0, 1.0]),), (np.array([1.0]),))
    except ValueError as err:
        assert "2 pixels but 1 values" in str(err)
    else:
        raise AssertionError("expected ValueError")
