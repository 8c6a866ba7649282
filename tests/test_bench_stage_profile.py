"""bench/stage_profile.py (issue 17): how py-spy samples become read / compute / write / start-up.

No stage runs here: the classifier is fed stacks in py-spy's raw format, as it writes them for a
stage process and its spawned Dask workers.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

PARENT = ('process 10:"/venv/bin/python /tmp/x/run_stage.py polar harmonise_stage {"a": 1} '
          '2026-01-15 {}"')
WORKER = ('process 11:"/venv/bin/python -c from multiprocessing.spawn import spawn_main; '
          'spawn_main(tracker_fd=22, pipe_handle=32) --multiprocessing-fork"')
TASK = "_process_tile (tasks/polar/harmonise.py:340);"


@pytest.fixture(scope="module")
def sp() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_stage_profile", BENCH / "stage_profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_stage_profile"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_stage_profile", None)


def _frames(*text: str) -> list[str]:
    return [f for f in ";".join(text).split(";") if f]


def test_a_workers_stack_loses_both_process_frames(sp: ModuleType) -> None:
    stack = (f"{PARENT};{WORKER};Worker.execute (distributed/worker.py:2200);"
             "boxcar (tasks/polar/harmonise.py:119)")
    assert sp.split_stack(stack) == ["Worker.execute (distributed/worker.py:2200)",
                                     "boxcar (tasks/polar/harmonise.py:119)"]
    assert sp.split_stack(f"{PARENT};{WORKER}") == []


@pytest.mark.parametrize(("frames", "category"), [
    # numpy under a project function: compute, even with to_zarr further out
    (_frames("to_zarr (xarray/core/dataset.py:2300);", TASK,
             "_wrapreduction (numpy/_core/fromnumeric.py:86)"), "compute"),
    # zarr encode under a project function: write
    (_frames(TASK, "Array.__setitem__ (zarr/core/array.py:2500);",
             "ZstdCodec._encode_single (zarr/codecs/zstd.py:80)"), "write"),
    (_frames(TASK, "DatasetReaderBase.read (rasterio/io.py:300)"), "read"),
    (_frames(TASK, "Path.write_text (pathlib.py:1060)"), "write"),
    (_frames(TASK, "loads (json/__init__.py:346)"), "read"),
    (_frames(TASK, "copy2 (shutil.py:436)"), "write"),
    # anything under the import machinery is start-up
    (_frames("<module> (run_stage.py:3);", "_find_and_load (<frozen importlib._bootstrap>:1176);",
             "<module> (torch/__init__.py:1)"), "start-up"),
    # the dask task boundary stops the scan before an outer writer
    (_frames("store (dask/array/core.py:1200);", "_execute_task (dask/core.py:90);",
             "nanmedian (numpy/lib/_nanfunctions_impl.py:1100)"), "compute"),
    # a waiting thread is idle, left out of the shares
    (_frames("Thread.run (threading.py:982);", "_worker (concurrent/futures/thread.py:81)"),
     "idle"),
    (_frames("BaseEventLoop._run_once (asyncio/base_events.py:1898);",
             "EpollSelector.select (selectors.py:468)"), "idle"),
    ([], "idle"),
])
def test_classify(sp: ModuleType, frames: list[str], category: str) -> None:
    assert sp.classify(frames) == category


def test_a_project_line_that_writes_is_write(
    sp: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "tasks" / "x.py"
    source.parent.mkdir()
    source.write_text("def f(fh, rows):\n    fh.write(rows)\n    return sum(rows)\n")
    monkeypatch.setattr(sp, "SOURCE_ROOT", [tmp_path])
    assert sp.classify(["f (tasks/x.py:2)"]) == "write"
    assert sp.classify(["f (tasks/x.py:3)"]) == "compute"


def test_summary_shares_idle_and_top_functions(sp: ModuleType) -> None:
    raw = "\n".join([
        f"{PARENT};{TASK}_wrapreduction (numpy/_core/fromnumeric.py:86) 60",
        f"{PARENT};{WORKER};{TASK}DatasetReaderBase.read (rasterio/io.py:300) 20",
        f"{PARENT};_find_and_load (<frozen importlib._bootstrap>:1176);"
        "<module> (geopandas/__init__.py:1) 20",
        f"{PARENT};Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:81) 50",
    ])
    summary = sp.summarise_profile(raw)
    assert summary["samples"] == 100
    assert summary["active_s"] == pytest.approx(100 / sp.RATE_HZ)
    assert summary["idle_s"] == pytest.approx(50 / sp.RATE_HZ)
    assert summary["share"] == {"read": 0.2, "compute": 0.6, "write": 0.0, "start-up": 0.2}
    assert summary["top_project_functions"][0] == ["tasks.polar.harmonise._process_tile [compute]",
                                                   pytest.approx(60 / sp.RATE_HZ)]
    assert summary["top_imports"] == [["geopandas", pytest.approx(20 / sp.RATE_HZ)]]
