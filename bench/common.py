"""Shared helpers of the benchmarks in bench/: a CPU/wall timer, the summary line and the JSON.

The rules every benchmark follows (issue 17):

* the headline ratio is against the strongest simple baseline measured in the same run;
* rates per core divide by user + system CPU time (this process and its children);
* each run prints one summary line ``P<n>: ratio=..., goal=..., met=yes/no`` and writes its
  figures to ``bench/results/<name>.json`` so a script can compare runs;
* ``--quick`` (see :func:`add_quick_flag`) runs a small version, used by ``make bench-quick``.

Typical use::

    from common import Timer, add_quick_flag, report   # bench/ is on sys.path when run as a script

    parser = argparse.ArgumentParser()
    add_quick_flag(parser)
    args = parser.parse_args()
    with Timer() as base:
        baseline()
    with Timer() as ours:
        ours_()
    ratio = base.wall_s / ours.wall_s
    report("p9_example", ratio, ">= 1.0x", ratio >= 1.0,
           {"baseline": base.as_dict(), "ours": ours.as_dict()}, baseline="plain loop")
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
# Load average when the benchmark module started (importing this module), for report().
_LOAD_AT_IMPORT: tuple[float, float, float] = os.getloadavg()
_DATE_AT_IMPORT: str = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _cpu_seconds() -> tuple[float, float]:
    """User and system CPU seconds of this process plus its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set (MiB): the larger of this process's and its largest waited-for child's.

    ``ru_maxrss`` is a high-water mark since process start, so it cannot be reset per timed
    section; benchmarks that need a per-section peak run that section in a subprocess.
    """
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(me, kids) / 1024.0  # Linux reports KiB


@dataclass
class Timer:
    """Context manager measuring wall time, user + system CPU time and peak RSS of a section.

    CPU time counts this process and its children (``RUSAGE_SELF + RUSAGE_CHILDREN``); a child
    counts once it has been waited for, so run subprocesses to completion inside the section.
    Threads of this process (BLAS, zarr codecs, Dask threads) are in ``RUSAGE_SELF``.

    Attributes:
        wall_s: wall-clock seconds of the section.
        user_s: user CPU seconds (process + children).
        sys_s: system CPU seconds (process + children).
        peak_rss_mb: peak RSS (MiB) at the section's end, process or largest child.
    """

    wall_s: float = 0.0
    user_s: float = 0.0
    sys_s: float = 0.0
    peak_rss_mb: float = 0.0
    _t0: float = field(default=0.0, repr=False)
    _cpu0: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds: the divisor of every per-core rate."""
        return self.user_s + self.sys_s

    def __enter__(self) -> Timer:
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.wall_s = time.perf_counter() - self._t0
        user, system = _cpu_seconds()
        self.user_s = user - self._cpu0[0]
        self.sys_s = system - self._cpu0[1]
        self.peak_rss_mb = peak_rss_mb()

    def per_cpu_s(self, amount: float) -> float:
        """``amount`` per CPU-second (user + system); ``nan`` when no CPU time was recorded."""
        return amount / self.cpu_s if self.cpu_s > 0 else math.nan

    def as_dict(self) -> dict[str, float]:
        """The figures as a JSON-ready dict (seconds and MiB)."""
        return {"wall_s": round(self.wall_s, 4), "user_s": round(self.user_s, 4),
                "sys_s": round(self.sys_s, 4), "cpu_s": round(self.cpu_s, 4),
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


def add_quick_flag(parser: argparse.ArgumentParser) -> None:
    """Add the common ``--quick`` flag: a small version of the benchmark (seconds, not minutes).

    Every benchmark's ``--quick`` run is part of ``make bench-quick``, which runs them all in
    sequence in under 5 minutes on 2 idle cores.
    """
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for `make bench-quick` (a smoke run, not a headline)")


def _git_rev() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine_facts() -> dict[str, Any]:
    """Cores, load average at start (import of this module) and now, git revision and dates."""
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_start": [round(x, 2) for x in _LOAD_AT_IMPORT],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "git_rev": _git_rev(),
        "started": _DATE_AT_IMPORT,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
    }


def summary_label(name: str) -> str:
    """``p7_lucas`` -> ``P7``; names without a ``p<n>_`` prefix are used as they are."""
    match = re.match(r"p(\d+)(?:_|$)", name)
    return f"P{match.group(1)}" if match else name


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def report(name: str, ratio: float | None, goal: str, met: bool | None,
           figures: dict[str, Any], baseline: str, *, quick: bool = False,
           results_dir: Path | None = None) -> Path:
    """Print the one-line summary and write ``<results_dir>/<name>.json``.

    Args:
        name: benchmark name, the JSON's stem (``p7_lucas``); ``p<n>_...`` prints as ``P<n>``.
        ratio: the headline ratio against ``baseline`` (higher = better unless ``goal`` says
            otherwise); ``None`` when the run could not measure it.
        goal: the goal in words, e.g. ``">= 0.8x zarr copy"`` or ``"<= 60 s wall"``.
        met: whether the goal was met in this run (``None``: not applicable / not measured).
        figures: every figure of the run (JSON-serialisable; other values are written as str).
        baseline: the headline's baseline in words (``"STRtree query"``).
        quick: the run was a ``--quick`` run; written to the JSON as ``quick`` and the file
            is ``<name>.quick.json`` so a quick run never overwrites a full run's figures.
        results_dir: where the JSON goes (default ``bench/results``).

    Returns:
        The path of the JSON file.
    """
    met_word = "n/a" if met is None else ("yes" if met else "no")
    label = summary_label(name)
    print(f"{label}: ratio={_fmt(ratio)}, goal={goal}, met={met_word}"
          f" (baseline: {baseline}{', quick' if quick else ''})", flush=True)
    folder = results_dir if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{'.quick' if quick else ''}.json"
    doc = {"name": name, "label": label, "ratio": ratio, "goal": goal, "met": met,
           "baseline": baseline, "quick": quick, "figures": figures,
           "machine": machine_facts()}
    path.write_text(json.dumps(doc, indent=1, default=str, allow_nan=True) + "\n")
    return path
