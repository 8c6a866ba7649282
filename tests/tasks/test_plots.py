from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.plots import plot_confusion_matrix

LABELS = ["open_water", "new_ice", "first_year_ice"]
MATRIX = np.array([[50, 3, 0], [4, 20, 6], [0, 2, 40]])


def read_png(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return image


def test_square_matrix_png_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "confusion.png"
    returned = plot_confusion_matrix(MATRIX, LABELS, target, "sea ice\naccuracy 90 %",
                                     cell_text="counts_and_share", show_zero_cells=True)
    assert returned == target and target.stat().st_size > 1000
    image = read_png(target)
    assert image.width > 200 and image.height > 200
    assert sorted(p.name for p in target.parent.iterdir()) == ["confusion.png"]  # no temp file
    again = plot_confusion_matrix(MATRIX, LABELS, target, "sea ice\naccuracy 90 %",
                                  cell_text="counts_and_share", show_zero_cells=True)
    assert again == target and read_png(target).size == image.size


def test_rectangular_matrix_with_predicted_labels_and_support(tmp_path: Path) -> None:
    matrix = np.array([[5.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])  # a class without points
    path = plot_confusion_matrix(matrix, ["wheat", "maize"], str(tmp_path / "lucas.png"),
                                 "map vs LUCAS", predicted_labels=["wheat", "maize", "rye",
                                                                   "no_instance"],
                                 row_support=True, dpi=110)
    assert isinstance(path, Path) and read_png(path).width > 100


def test_counts_colouring_and_dropped_empty_classes(tmp_path: Path) -> None:
    matrix = np.zeros((5, 5), dtype=np.int64)
    matrix[np.ix_([0, 3], [0, 3])] = [[9, 1], [2, 7]]
    path = plot_confusion_matrix(matrix, list("abcde"), tmp_path / "crop.png", "crops",
                                 drop_empty_classes=True, normalise=False)
    assert read_png(path).height > 100


@pytest.mark.parametrize(
    ("matrix", "labels", "kwargs", "message"),
    [
        (np.ones((2, 3)), ["a", "b"], {}, r"shape \(2, 3\) is not square; give predicted_labels"),
        (np.ones((3, 3)), ["a", "b"], {}, r"2 labels for a confusion matrix with 3 rows"),
        (np.ones((2, 3)), ["a", "b"], {"predicted_labels": ["x", "y"]},
         r"2 predicted_labels for a confusion matrix with 3 columns"),
        (np.ones(4), ["a"], {}, r"must be 2-D"),
        (np.zeros((0, 0)), [], {}, r"is empty"),
        (np.array([[1, -1], [0, 2]]), ["a", "b"], {}, r"finite, non-negative counts"),
        (np.array([[1, np.nan], [0, 2]]), ["a", "b"], {}, r"finite, non-negative counts"),
        (np.array([["1", "2"], ["3", "4"]]), ["a", "b"], {}, r"must hold real counts"),
        (np.zeros((2, 2)), ["a", "b"], {"drop_empty_classes": True}, r"holds no count"),
        (np.ones((2, 3)), ["a", "b"], {"predicted_labels": ["a", "b", "c"],
                                       "drop_empty_classes": True}, r"needs a square matrix"),
        (np.ones((2, 2)), ["a", "b"], {"cell_text": "percent"}, r"cell_text 'percent'"),
    ],
)
def test_bad_input_raises_a_clear_error(tmp_path: Path, matrix: np.ndarray, labels: list[str],
                                        kwargs: dict, message: str) -> None:
    target = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=message):
        plot_confusion_matrix(matrix, labels, target, "bad", **kwargs)
    assert not target.exists()
