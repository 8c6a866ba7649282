"""Where the time goes: read / compute / write per stage of the polar demo day and a crop year.

Every stage runs as it runs under Airflow: a fresh Python process calling the stage function
(``tasks/polar/stages.py``, ``tasks/food_security/stages.py``, ``tasks/linked_data``) with the
project's YAML config (``configs/polar.yaml``, ``configs/food_security.yaml``: Dask LocalCluster
with 2 worker processes), only the data root moved to a scratch folder and training made tiny.
Each process is sampled by ``py-spy record --subprocesses`` (100 Hz, active threads only, Dask
worker processes included), so no stage code is instrumented. Every sample is then classified by
the functions on its stack, from the innermost frame outwards (:func:`classify`):

* ``start-up``: the import machinery anywhere on the stack (module imports, a fresh process per
  Airflow task pays them), and the start of the Dask cluster;
* ``read``: zarr / numcodecs reads and decodes, rasterio reads, parquet / vector-file / JSON /
  torch-checkpoint / plain-file reads;
* ``write``: zarr / numcodecs writes and encodes, rasterio writes (GeoTIFF / COG), parquet /
  GeoJSON / JSON / PNG / checkpoint writes, file copies (publish), triple-store loads;
* ``compute``: the rest (the science, the model, Python glue, Dask scheduling).

The scan stops at the first project frame (``tasks/``) or Dask task boundary: a NumPy call inside
a stage function is compute even when a writer is further out on the stack (``to_zarr`` of a
lazy graph computes the graph); a project frame at the top of the stack is judged by its source
line (``fh.write(...)`` is write). Shares are of the active samples (thread-seconds over all of
the stage's processes); wall time is the stage process's. Needs ``py-spy`` (in the venv).

``--quick`` (``make bench-quick``): polar ingest + harmonise of a 256 x 256 scene on the synchronous
Dask scheduler, a smoke run of the profiler and the classification, not the table's figures.

Usage: .venv/bin/python bench/stage_profile.py [--quick] [--use-case polar food_security]
"""

from __future__ import annotations

import argparse
import collections
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, add_quick_flag, report  # noqa: E402

RATE_HZ = 100
CATEGORIES = ("read", "compute", "write", "start-up")
POLAR_DAY = "2026-01-15"
CROP_DAY = "2018-03-01"

#: one stage in a fresh interpreter: argv = use case, stage, config overrides (JSON), run date,
#: keyword arguments (JSON)
RUNNER = r"""
import json, sys


def main() -> None:
    sys.path.insert(0, ".")
    from tasks.config.common import load_config
    use_case, stage, overrides, day, kwargs = sys.argv[1:6]
    if use_case == "polar":
        from tasks.config.polar import PolarConfig as Model
        from tasks.polar import stages
        path = "configs/polar.yaml"
    else:
        from tasks.config.food_security import FoodSecurityConfig as Model
        from tasks.food_security import stages
        path = "configs/food_security.yaml"
    cfg = load_config(path, json.loads(overrides), expect=Model)
    if stage in ("rdf_export_stage", "load_triples_stage") and use_case == "polar":
        from tasks.linked_data import stages as ld
        getattr(ld, stage)(cfg, day, product="ice_chart")
    else:
        getattr(stages, stage)(cfg, day, **json.loads(kwargs))
    print("STAGE-OK", stage)


if __name__ == "__main__":  # spawned Dask workers import this file too
    main()
"""


def polar_plan(quick: bool) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Config overrides and the stages of the polar demo day (training and charting one day)."""
    overrides: dict[str, Any] = {
        "train.epochs": 1, "train.width_multiplier": 0.25, "train.augment": False,
        "train.accelerator": "cpu",
    }  # the scene: configs/polar.yaml's (1200 x 1200)
    stages = ["ingest_stage", "harmonise_stage", "labels_stage", "patches_stage", "train_stage",
              "evaluate_stage", "predict_stage", "publish_stage", "rdf_export_stage",
              "load_triples_stage"]
    if quick:  # a smoke run of the profiler for `make bench-quick`: two stages, tiny scene
        overrides.update({"ingest.generator.lines": 256, "ingest.generator.samples": 256,
                          "harmonise.chunk": 128, "dask.cluster": "synchronous"})
        stages = stages[:2]
    return overrides, [(s, {}) for s in stages]


def crop_plan(quick: bool) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Config overrides and the main stages of one crop year (one tiny model)."""
    overrides: dict[str, Any] = {
        "train.model": "tempcnn", "train.epochs_phase1": 1, "train.epochs_phase2": 1,
        "train.accelerator": "cpu", "evaluate.models": ["tempcnn"],
    }
    if quick:
        overrides["ingest.generator.size_px"] = 64
        overrides["harmonise.chunk"] = 64
    stages: list[tuple[str, dict[str, Any]]] = [
        ("ingest_stage", {}), ("harmonise_stage", {}), ("labels_stage", {}),
        ("samples_stage", {}), ("train_stage", {"model": "tempcnn"}),
        ("predict_stage", {"tile": "33UVP", "model": "tempcnn"}),
        ("evaluate_stage", {"model": "tempcnn"}),
        ("rdf_export_stage", {}), ("load_triples_stage", {}),
    ]
    return overrides, stages


# ---------------------------------------------------------------------------- classification
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_READ_NAME = re.compile(r"(^|_)(get|read|decode|load|open|getitem|fetch|sample|exists)"
                        r"|__getitem__|from_zarr|open_zarr|open_dataset|read_parquet|read_file"
                        r"|read_table|read_dataframe|open_rasterio")
_WRITE_NAME = re.compile(r"(^|_)(set|write|encode|put|save|store|create|consolidate|dump|flush"
                         r"|copy|build_overviews|savefig|print_png|serialize|close)"
                         r"|__setitem__|to_zarr|to_parquet|to_file|to_raster|write_dataframe"
                         r"|bulk_load|copyfile|copytree")
#: library folders whose functions are classified by their name (read / write words)
_IO_LIBS = ("zarr/", "numcodecs/", "rasterio/", "rioxarray/", "pyarrow/", "pyogrio/",
            "geopandas/io/", "fiona/", "fsspec/", "s3fs/", "obstore/", "PIL/", "imageio/",
            "matplotlib/backends/", "gzip.py", "bz2.py", "lzma.py", "tifffile/", "h5py/")
#: plain-Python I/O helpers: (file suffix, function name) -> category
_PY_IO = {("json/__init__.py", "load"): "read", ("json/__init__.py", "loads"): "read",
          ("json/__init__.py", "dump"): "write", ("json/__init__.py", "dumps"): "write",
          ("pathlib.py", "read_text"): "read", ("pathlib.py", "read_bytes"): "read",
          ("pathlib.py", "write_text"): "write", ("pathlib.py", "write_bytes"): "write",
          ("torch/serialization.py", "load"): "read", ("torch/serialization.py", "save"): "write",
          ("csv.py", "__next__"): "read", ("yaml/__init__.py", "safe_load"): "read"}
_WRITE_LINE = re.compile(r"\.(write|writelines|writerow|writerows|bulk_load|to_parquet|to_file"
                         r"|to_zarr|to_raster|to_csv|dump|save|savefig|put_file|flush)\(|"
                         r"\bshutil\.|open\([^)]*[\"'][wa]b?[\"']")
_READ_LINE = re.compile(r"\.(read|read_text|read_bytes|readlines|read_csv|read_parquet|read_file"
                        r"|open_zarr|open_dataset|load)\(|\bjson\.load\(|\bopen\(")
_DASK_BOUNDARY = re.compile(r"dask/(core|_task_spec|local|threaded)\.py$|distributed/worker\.py$")
#: a sample whose innermost frame is one of these is a thread waiting (queue, lock, selector,
#: child process), not working: counted as idle and left out of the shares
_IDLE_LEAF = re.compile(r"(threading\.py|multiprocessing/(connection|synchronize|popen_\w+)\.py"
                        r"|subprocess\.py|concurrent/futures/_base\.py)$|selectors\.py$"
                        r"|queue\.py$|concurrent/futures/thread\.py$|socket\.py$")
_IDLE_FUNC = re.compile(r"(^|\.)(wait|join|_wait_for_tstate_lock|acquire|select|poll|_poll|get"
                        r"|_worker|_recv|_recv_bytes|recv_bytes|accept|_try_wait|communicate"
                        r"|_communicate|result)$")
_STARTUP_FILE = re.compile(r"<frozen importlib\._bootstrap|distributed/deploy/")


def parse_frame(text: str) -> tuple[str, str, int]:
    """``"func (path/file.py:12)"`` -> ``(func, path, line)`` (line 0 when absent)."""
    m = _FRAME.match(text.strip())
    if not m:
        return text.strip(), "", 0
    return m["func"], m["file"], int(m["line"] or 0)


#: where the profiled stages' source lives (``--checkout``), for the source lines of frames
SOURCE_ROOT = [REPO]


def _source_line(file: str, line: int) -> str:
    for base in (SOURCE_ROOT[0], Path("/")):
        path = base / file
        if line and path.is_file():
            return linecache.getline(str(path), line)
    return ""


def _project(file: str) -> bool:
    return file.startswith("tasks/") or "/tasks/" in file and "site-packages" not in file


def classify(frames: list[str]) -> str:
    """Category of one sample (or ``idle``); ``frames`` outermost first (py-spy's raw order)."""
    parsed = [parse_frame(f) for f in frames]
    if not parsed:
        return "idle"
    leaf_func, leaf_file, _ = parsed[-1]
    if _IDLE_LEAF.search(leaf_file) and _IDLE_FUNC.search(leaf_func):
        return "idle"
    if any(_STARTUP_FILE.search(file) for _, file, _ in parsed):
        return "start-up"
    for func, file, line in reversed(parsed):
        if _project(file):
            source = _source_line(file, line)
            if _WRITE_LINE.search(source):
                return "write"
            if _READ_LINE.search(source):
                return "read"
            return "compute"
        if _DASK_BOUNDARY.search(file):
            return "compute"
        for (suffix, name), category in _PY_IO.items():
            if file.endswith(suffix) and func.split(".")[-1] == name:
                return category
        if file.endswith("shutil.py"):
            return "write"
        if any(lib in file for lib in _IO_LIBS):
            name = func.split(".")[-1]
            if _WRITE_NAME.search(name):
                return "write"
            if _READ_NAME.search(name):
                return "read"
    return "compute"


def innermost_project_function(frames: list[str]) -> str | None:
    """``module.function`` of the innermost ``tasks/`` frame of a sample (None: none)."""
    for frame in reversed(frames):
        func, file, _ = parse_frame(frame)
        if _project(file):
            module = file[file.index("tasks/"):].removesuffix(".py").replace("/", ".")
            return f"{module}.{func.split('.')[-1]}"
    return None


def imported_package(frames: list[str]) -> str | None:
    """The package a start-up sample is importing: the outermost third-party ``<module>`` frame
    (``tasks`` when only project modules are on the stack); None when no module is loading."""
    modules = [parse_frame(f)[1] for f in frames if f.startswith("<module> ")]
    if not modules:
        return None
    third_party = [m for m in modules if not m.startswith(("tasks/", "<")) and "/tmp" not in m
                   and not m.endswith("run_stage.py") and "__editable__" not in m]
    if not third_party:
        return "tasks"
    return third_party[0].split("/")[0].removesuffix(".py")


def split_stack(stack: str) -> list[str]:
    """The Python frames of one py-spy raw stack, outermost first.

    With ``--subprocesses`` a stack starts with ``process PID:"command line"`` (a child's with its
    parent's and its own), and a command line may itself hold ``;`` (``-c "...; spawn_main(...)"``
    of a spawned Dask worker).
    """
    while stack.startswith("process "):  # a worker's stack starts with its parent's frame too
        end = stack.find('";')
        stack = "" if end < 0 else stack[end + 2:]
    return [f for f in stack.split(";") if f and not f.startswith("thread ")]


def summarise_profile(raw: str) -> dict[str, Any]:
    """Samples per category and the project functions taking the most samples, from py-spy raw."""
    counts: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    leaf_compute: collections.Counter[str] = collections.Counter()
    imports: collections.Counter[str] = collections.Counter()
    for row in raw.splitlines():
        stack, _, n = row.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = split_stack(stack)
        category = classify(frames)
        counts[category] += int(n)
        owner = innermost_project_function(frames)
        if owner and category != "idle":
            functions[f"{owner} [{category}]"] += int(n)
        if category == "start-up":
            imports[imported_package(frames) or "cluster start"] += int(n)
        if category == "compute" and frames:
            leaf_compute[frames[-1].split(" (")[0]] += int(n)
    idle = counts.pop("idle", 0)
    total = sum(counts.values())
    return {
        "samples": total,
        "active_s": round(total / RATE_HZ, 2),
        "idle_s": round(idle / RATE_HZ, 2),
        "share": {c: round(counts[c] / total, 4) if total else 0.0 for c in CATEGORIES},
        "top_project_functions": [[f, round(n / RATE_HZ, 2)] for f, n in functions.most_common(6)],
        "top_compute_leaves": [[f, round(n / RATE_HZ, 2)] for f, n in leaf_compute.most_common(4)],
        "top_imports": [[f, round(n / RATE_HZ, 2)] for f, n in imports.most_common(5)],
    }


# ---------------------------------------------------------------------------- running
def run_stage(use_case: str, stage: str, kwargs: dict[str, Any], overrides: dict[str, Any],
              day: str, scratch: Path, checkout: Path = REPO) -> dict[str, Any]:
    """Run one stage in a fresh process under py-spy; return wall time and the profile summary.

    The raw profile stays in ``scratch`` as ``{use_case}-{stage}.txt``.
    """
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        found = shutil.which("py-spy")
        if not found:
            raise SystemExit("py-spy not found next to the interpreter or on PATH; install it "
                             "into the venv (uv pip install py-spy)")
        py_spy = Path(found)
    raw = scratch / f"{use_case}-{stage}.txt"
    runner = scratch / "run_stage.py"  # a file, not -c: py-spy's raw lines hold the command line
    runner.write_text(RUNNER)
    cmd = [str(py_spy), "record", "--subprocesses", "-r", str(RATE_HZ), "--format", "raw",
           "-o", str(raw), "--", sys.executable, str(runner), use_case, stage,
           json.dumps(overrides), day, json.dumps(kwargs)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t0
    if done.returncode != 0 or "STAGE-OK" not in done.stdout:
        raise RuntimeError(f"{use_case} {stage} failed (exit {done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    summary = summarise_profile(raw.read_text() if raw.exists() else "")
    return {"use_case": use_case, "stage": stage.removesuffix("_stage"), "wall_s": round(wall, 2),
            "checkout": str(checkout), **summary}


def print_table(rows: list[dict[str, Any]]) -> None:
    """The markdown table of RESULTS.md: one row per stage."""
    print("| use case | stage | wall (s) | active thread-s | read | compute | write | start-up "
          "| top project function (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["share"]
        top = r["top_project_functions"][0] if r["top_project_functions"] else ["-", 0]
        print(f"| {r['use_case']} | {r['stage']} | {r['wall_s']:.1f} | {r['active_s']:.1f} | "
              + " | ".join(f"{100 * share[c]:.0f} %" for c in CATEGORIES)
              + f" | {top[0]} ({top[1]:.1f}) |")


def totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Active thread-seconds per category over all stages."""
    out = dict.fromkeys(CATEGORIES, 0.0)
    for r in rows:
        for c in CATEGORIES:
            out[c] += r["share"][c] * r["active_s"]
    return {c: round(v, 2) for c, v in out.items()}


def run_all(use_cases: list[str], quick: bool, profiles: Path,
            checkout: Path = REPO) -> list[dict[str, Any]]:
    """Run every stage of ``use_cases`` under py-spy, profiles kept in ``profiles``."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stage-profile-") as tmp:
        for use_case in use_cases:
            plan, day = (polar_plan, POLAR_DAY) if use_case == "polar" else (crop_plan, CROP_DAY)
            overrides, stages = plan(quick)
            overrides = {**overrides, "data_root": str(Path(tmp) / use_case)}
            for stage, kwargs in stages:
                row = run_stage(use_case, stage, kwargs, overrides, day, profiles, checkout)
                print(json.dumps(row), flush=True)
                rows.append(row)
                (profiles / "rows.json").write_text(json.dumps(rows, indent=1))
    return rows


def resummarise(profiles: Path) -> list[dict[str, Any]]:
    """Classify the raw profiles of an earlier run again (``rows.json`` gives the wall times)."""
    rows = json.loads((profiles / "rows.json").read_text())
    for row in rows:
        raw = profiles / f"{row['use_case']}-{row['stage']}_stage.txt"
        SOURCE_ROOT[0] = Path(row.get("checkout", REPO))
        row.update(summarise_profile(raw.read_text()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", nargs="+", choices=("polar", "food_security"),
                        default=None, help="default: both (--quick: polar only)")
    parser.add_argument("--profiles", type=Path, default=None,
                        help="keep the raw py-spy profiles and rows.json in this folder")
    parser.add_argument("--from-profiles", type=Path, default=None,
                        help="run nothing: classify the profiles an earlier --profiles run kept")
    parser.add_argument("--checkout", type=Path, default=REPO,
                        help="run the stages of this source tree (e.g. a `git archive` of a "
                        "commit) with this interpreter; default: this repository")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.use_case is None:
        args.use_case = ["polar"] if args.quick else ["polar", "food_security"]
    SOURCE_ROOT[0] = args.checkout.resolve()
    if args.from_profiles is not None:
        rows = resummarise(args.from_profiles)
    elif args.profiles is not None:
        args.profiles.mkdir(parents=True, exist_ok=True)
        rows = run_all(args.use_case, args.quick, args.profiles, args.checkout.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="stage-profiles-") as kept:
            rows = run_all(args.use_case, args.quick, Path(kept), args.checkout.resolve())
    print_table(rows)
    total = totals(rows)
    active = sum(total.values())
    heaviest = max(rows, key=lambda r: r["wall_s"])
    print(f"totals (active thread-s): {total}; heaviest stage: {heaviest['use_case']} "
          f"{heaviest['stage']} {heaviest['wall_s']:.1f} s wall")
    report("stage_profile", None, "none (where the time goes)", None,
           {"rows": rows, "totals_active_s": total,
            "io_share": round((total["read"] + total["write"]) / active, 4) if active else None,
            "rate_hz": RATE_HZ, "categories": list(CATEGORIES)},
           baseline="none: a split of each stage's sampled time", quick=args.quick)


if __name__ == "__main__":
    main()
