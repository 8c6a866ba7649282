"""One plot_learning_curve (tasks.plots) for both use cases, each with its own look."""

from pathlib import Path

from tasks.food_security.train import CURVE_STYLE as CROP_CURVE
from tasks.plots import CurvePanel, CurveStyle, _curve_series, plot_learning_curve
from tasks.polar.train import CURVE_STYLE as POLAR_CURVE

CSV = "epoch,step,train_loss,val_loss\n0,1,1.2,\n0,1,,1.1\n,2,0.9,\n1,3,,nan\n"


def test_series_follow_the_style(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text(CSV)
    keys = ["train_loss", "val_loss"]
    polar = _curve_series(log, keys, POLAR_CURVE, 0)  # 0-based, rows without epoch skipped
    assert polar["train_loss"] == {0: 1.2} and list(polar["val_loss"]) == [0, 1]  # NaN kept
    # 1-based, continuing an earlier phase (offset 5), a row without epoch is epoch 0, no NaN
    assert _curve_series(log, keys, CROP_CURVE, 5) == {"train_loss": {6: 0.9},
                                                      "val_loss": {6: 1.1}}
    plain = CurveStyle(panels=(CurvePanel((("val_loss", None),), "loss"),), figsize=(4, 3))
    assert _curve_series(tmp_path / "none.csv", keys, plain, 0) == {}


def test_missing_logs_give_no_polar_curve_but_an_empty_crop_figure(tmp_path: Path) -> None:
    assert plot_learning_curve([("train", tmp_path / "none.csv")], tmp_path / "p.png", "t",
                               POLAR_CURVE) is None
    assert not (tmp_path / "p.png").exists()
    png = plot_learning_curve([("phase1", tmp_path / "none.csv")], tmp_path / "c.png", "t",
                              CROP_CURVE)
    assert png == tmp_path / "c.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_two_phases_plot_into_one_png(tmp_path: Path) -> None:
    for phase in ("phase1", "phase2"):
        (tmp_path / phase).mkdir()
        (tmp_path / phase / "metrics.csv").write_text(CSV)
    png = plot_learning_curve([(p, tmp_path / p / "metrics.csv") for p in ("phase1", "phase2")],
                              tmp_path / "curve.png", "lstm", CROP_CURVE)
    assert png is not None and png.stat().st_size > 1000
