"""``run_staged`` under DDP: only rank 0 uploads and publishes (issue 15).

Lightning's subprocess launcher re-runs a training stage in every rank; only global rank 0 writes
the model folder (``tasks.trainers.ranks``). On an ``s3://`` root the other ranks must therefore
not try to upload it (before, rank 1 raised ``FileNotFoundError`` for the folder it never wrote,
and the launcher killed rank 0 mid-upload). The rank is read from an initialised
``torch.distributed`` group; here a stand-in module plays that group.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from pydantic import BaseModel

from tasks.fs import s3_filesystem
from tasks.staging import StageIO, run_staged
from tasks.storage import write_manifest
from tests.tasks.test_storage_s3 import moto_endpoint, s3_root  # noqa: F401  (fixtures)

UNIT = "food_security/models/2024/lstm"


class _Cfg(BaseModel):
    data_root: str

    def is_remote_root(self) -> bool:
        return self.data_root.startswith("s3://")


def _fake_group(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    dist = types.ModuleType("torch.distributed")
    dist.is_available = lambda: True  # type: ignore[attr-defined]
    dist.is_initialized = lambda: True  # type: ignore[attr-defined]
    dist.get_rank = lambda: rank  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.distributed", dist)


def _stage(write: bool) -> object:
    def run(cfg: _Cfg) -> dict[str, str]:
        folder = Path(cfg.data_root) / UNIT
        if write:
            folder.mkdir(parents=True)
            (folder / "model.json").write_text('{"rank": 0}')
            write_manifest(folder, stage="train", inputs=[], config_hash="h", counts={"models": 1})
        return {"model_dir": str(folder)}
    return run


def test_a_rank_other_than_zero_uploads_nothing(s3_root: str,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_group(monkeypatch, rank=1)
    result = run_staged(_Cfg(data_root=s3_root), StageIO(outputs=(UNIT,)), _stage(write=False))
    assert result["model_dir"].endswith(UNIT)
    assert not result["model_dir"].startswith("s3://")  # rank 0's result is the one published
    assert not s3_filesystem().exists(f"{s3_root}/{UNIT}")


def test_rank_zero_publishes_and_still_refuses_a_missing_output(
        s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _fake_group(monkeypatch, rank=0)
    result = run_staged(_Cfg(data_root=s3_root), StageIO(outputs=(UNIT,)), _stage(write=True))
    assert result["model_dir"].startswith(f"{s3_root}/{UNIT}")
    with s3_filesystem().open(f"{result['model_dir']}/model.json") as f:
        assert f.read() == b'{"rank": 0}'
    with pytest.raises(FileNotFoundError):
        run_staged(_Cfg(data_root=s3_root), StageIO(outputs=(UNIT + "x",)), _stage(write=True))
