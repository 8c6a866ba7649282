"""Under ``strategy: ddp`` only global rank 0 publishes the model folder.

Runs Lightning's real subprocess launcher (``strategy: ddp``, two CPU processes, gloo): a script
under ``tmp_path`` calls the trainer; Lightning re-runs it as rank 1. Every rank records the
folders it published (``tasks.storage._publish``, which every local ``atomic_dir`` publish goes
through) and its result; rank 0 waits for its launched child and exits with the child's status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tasks.food_security.conftest_ml import write_sample_year

REPO = Path(__file__).resolve().parents[3]

# The parts every rank of the two publishing scripts runs: record each folder published through
# tasks.storage._publish (every local atomic_dir publish goes through it) ...
_RECORD_PUBLISHES = """
import gc, json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import tasks.storage as storage
from tasks.trainers.ranks import global_rank

published = []
original = storage._publish

def recording_publish(tmp, final):
    published.append(str(final))
    return original(tmp, final)

storage._publish = recording_publish
"""
# ... then write this rank's result and publishes; rank 0 waits for the rank it launched
# (Lightning's launcher does not) and exits with its status.
_REPORT_AND_WAIT = """
rank = global_rank()
(root / f"rank{{rank}}.json").write_text(json.dumps({{"result": result, "published": published}}))
if rank == 0:
    me = os.path.abspath(sys.argv[0])
    children = [o for o in gc.get_objects()
                if isinstance(o, subprocess.Popen) and me in list(o.args)]
    codes = [child.wait(timeout=600) for child in children]
    (root / "children.json").write_text(json.dumps(codes))
    sys.exit(max(codes, default=99))
"""

CROP_SCRIPT = _RECORD_PUBLISHES + """
from tasks.food_security.train import train_crop_model
from tests.tasks.food_security.conftest_ml import tiny_config

root, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = tiny_config(root, devices=2, strategy="ddp", epochs_phase1=1, epochs_phase2=1,
                  batch_size=32)
result = train_crop_model(cfg, "2017-09-01", output_dir=out)
""" + _REPORT_AND_WAIT


def _run_two_ranks(script: Path, args: list[str], scratch: Path) -> subprocess.CompletedProcess:
    from tasks.net import free_port

    env = {key: value for key, value in os.environ.items()
           if key not in {"LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK"}}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), TMPDIR=str(scratch),
               OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(script), *args], env=env, cwd=script.parent,
                          capture_output=True, text=True, timeout=900, check=False)


def test_crop_model_is_published_by_rank_zero_only(tmp_path: Path) -> None:
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    scratch.mkdir()
    write_sample_year(root, "2017-09-01", n_train=128, n_val=64, n_test=8)
    out = root / "models" / "lstm"
    script = tmp_path / "train_ddp.py"
    script.write_text(CROP_SCRIPT.format(repo=str(REPO)))

    run = _run_two_ranks(script, [str(root), str(out)], scratch)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert json.loads((root / "children.json").read_text()) == [0]  # rank 1 exited 0
    ranks = [json.loads((root / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    # rank 0 published the folder once; rank 1 published nothing
    assert ranks[0]["published"] == [str(out)]
    assert ranks[1]["published"] == []
    # one model folder, no temporaries beside it, no scratch folder of rank 1 left
    assert sorted(p.name for p in out.parent.iterdir()) == ["lstm"]
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("eeflow-rank")]
    assert sorted(p.name for p in out.iterdir()) == [
        "learning_curve.png", "logs", "manifest.json", "model.ckpt", "model.json", "phase1.ckpt"]
    card = json.loads((out / "model.json").read_text())
    # both ranks return the published folder and the card's values
    for rank in ranks:
        result = rank["result"]
        assert result["model_dir"] == str(out)
        assert result["checkpoint"] == str(out / "model.ckpt")
        assert result["metrics"] == card["metrics"]["validation"]
        assert result["monitor_value"] == card["card"]["monitor_value"]
        assert result["epochs"] == card["card"]["epochs"] == {"phase1": 1, "phase2": 1}
        assert result["n_samples"] == {"train": 128, "val": 64}
    assert set(card["metrics"]["validation"]) == {"val_loss", "val_accuracy", "val_median_f1",
                                                  "val_macro_f1"}
    assert 0.0 <= card["metrics"]["validation"]["val_accuracy"] <= 1.0


def test_other_ranks_get_a_scratch_folder_outside_the_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from tasks.trainers.ranks import rank_zero_dir, rank_zero_result

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    final = tmp_path / "out" / "model"
    with rank_zero_dir(final) as folder:
        assert folder.parent == tmp_path / "scratch" and folder.name.startswith("eeflow-rank1-")
        (folder / "model.json").write_text("{}")
    assert not folder.exists()
    assert not final.exists() and not (tmp_path / "out").exists()
    assert list((tmp_path / "scratch").iterdir()) == []
    # no process group: the value itself; None (no result on rank 0) is an error
    assert rank_zero_result(final) == final
    with pytest.raises(RuntimeError, match="rank 0 returned no result"):
        rank_zero_result(None)


def test_rank_zero_publishes_and_a_rank_change_publishes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from tasks.trainers.ranks import rank_zero_dir

    monkeypatch.setattr(rank_zero_only, "rank", 0)
    final = tmp_path / "model"
    with rank_zero_dir(final) as folder:
        assert folder.parent == tmp_path and folder != final
        (folder / "model.json").write_text("{}")
    assert (final / "model.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    other = tmp_path / "other"
    with pytest.raises(RuntimeError, match=r"rank 0 when it started writing .*other.* is rank 2"):
        with rank_zero_dir(other):
            monkeypatch.setattr(rank_zero_only, "rank", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary, no output


POLAR_SCRIPT = _RECORD_PUBLISHES + """
from tasks.polar.train import train_model
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

root, dataset = Path(sys.argv[1]), Path(sys.argv[2])
cfg = tiny_polar_config(root, train={{"model": "adhoc_cnn", "patch_size": 20,
    "width_multiplier": 0.125, "augment": False, "devices": 2, "strategy": "ddp"}})
result = train_model(cfg, dataset)  # a new time-stamped folder under polar/models
""" + _REPORT_AND_WAIT


def _write_patch_set(path: Path, n: int = 96, size: int = 20) -> Path:
    import numpy as np
    import zarr

    rng = np.random.default_rng(0)
    codes = rng.integers(1, 6, n)
    codes[:5] = np.arange(1, 6)
    x = rng.normal(0, 1, (n, 3, size, size)).astype(np.float32) + codes[:, None, None, None]
    group = zarr.open_group(str(path), mode="w")
    group.create_array("x", data=x, chunks=(32, 3, size, size))
    group.create_array("y", data=codes.astype(np.uint8))
    group.attrs.update({"bands": ["HH", "HV", "incidence"], "band_mean": [3.0, 3.0, 3.0],
                        "band_std": [1.5, 1.5, 1.5], "patch_size": size,
                        "dataset_version": "ddp-test"})
    return path


@pytest.mark.slow  # a second spawned pair (~70 s wall at load 20); the crop test covers DDP
def test_polar_model_is_published_by_rank_zero_only(tmp_path: Path) -> None:
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    scratch.mkdir()
    dataset = _write_patch_set(tmp_path / "patches_20.zarr")
    script = tmp_path / "train_polar_ddp.py"
    script.write_text(POLAR_SCRIPT.format(repo=str(REPO)))

    run = _run_two_ranks(script, [str(root), str(dataset)], scratch)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert json.loads((root / "children.json").read_text()) == [0]
    ranks = [json.loads((root / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    models = root / "polar" / "models"
    (folder,) = models.iterdir()  # one model folder, no temporary beside it
    assert ranks[0]["published"] == [str(folder)]
    assert ranks[1]["published"] == []
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("eeflow-rank")]
    card = json.loads((folder / "model.json").read_text())
    for rank in ranks:  # rank 1 names rank 0's time-stamped folder, with the card's values
        result = rank["result"]
        assert result["model_dir"] == str(folder)
        assert result["checkpoint"] == str(folder / "checkpoints" / "best.ckpt")
        assert result["monitor_value"] == card["monitor_value"]
        assert result["metrics"] == card["val_metrics"]
        assert result["epochs"] == {"train": card["epochs_trained"]}
        assert result["n_samples"] == {"train": card["n_train"], "val": card["n_val"]}
    assert (folder / "model.pt").is_file() and (folder / "checkpoints" / "best.ckpt").is_file()


FAILING_SCRIPT = """
import os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import tasks.storage as storage
from tasks.food_security.train import train_crop_model
from tests.tasks.food_security.conftest_ml import tiny_config

root, out = Path(sys.argv[1]), Path(sys.argv[2])

def failing_publish(tmp, final):
    raise OSError("injected publish failure")

storage._publish = failing_publish
cfg = tiny_config(root, devices=2, strategy="ddp", epochs_phase1=1, epochs_phase2=1,
                  batch_size=32)
rank = os.environ.get("LOCAL_RANK", "0")
try:
    train_crop_model(cfg, "2017-09-01", output_dir=out)
    (root / f"outcome{{rank}}.txt").write_text("returned")
except BaseException as err:
    (root / f"outcome{{rank}}.txt").write_text(f"{{type(err).__name__}}: {{err}}")
    raise
"""


@pytest.mark.slow  # a further spawned pair (~60 s wall at load 20)
def test_a_failed_publish_on_rank_zero_fails_the_other_rank_without_a_hang(
        tmp_path: Path) -> None:
    import time

    root, scratch = tmp_path / "root", tmp_path / "scratch"
    scratch.mkdir()
    write_sample_year(root, "2017-09-01", n_train=128, n_val=64, n_test=8)
    out = root / "models" / "lstm"
    script = tmp_path / "train_ddp_failing.py"
    script.write_text(FAILING_SCRIPT.format(repo=str(REPO)))

    run = _run_two_ranks(script, [str(root), str(out)], scratch)

    assert run.returncode != 0
    outcome = root / "outcome1.txt"
    deadline = time.monotonic() + 300  # rank 1 is not waited for by the failed rank 0
    while not outcome.exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert (root / "outcome0.txt").read_text() == "OSError: injected publish failure"
    # rank 1 waited for rank 0's result and fails when rank 0's process is gone
    assert outcome.read_text().startswith("RuntimeError"), outcome.read_text()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("eeflow-rank")]
