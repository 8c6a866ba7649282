"""Byte-identity check of eeflow's data products across two revisions (issue 12: pure refactor).

Two sub-commands:

``produce --rev REV --out DIR [--checkout PATH]``
    Checks ``REV`` out with ``git worktree add --detach`` under ``/tmp`` (or uses ``--checkout``),
    then runs, with this interpreter (``sys.executable``, the project's venv) and ``EEFLOW_HOME``
    set to that checkout, without Airflow:

    * the polar demo: ``eeflow polar training`` on the generated scenes of 2026-01-14, then
      ``eeflow polar daily`` for 2026-01-15 (ingest, harmonise, predict, publish, RDF export, load
      into the embedded store), as ``eeflow demo`` does under Airflow;
    * one agronomic crop year (2017-09_2018-08): ``eeflow crops`` ingest (generator), harmonise,
      labels, samples, train (lstm, tempcnn, starrnn), predict (every tile), evaluate, then
      ``eeflow lucas evaluate`` on survey points derived from the predicted fields;
    * the RDF export (``eeflow rdf export``, no server) of the vocabulary, the ice chart and the
      crop fields (not ``model``: no registry without the experiments; not ``evaluation``: its
      mapping fails on ``comparison.json`` at 51ea29e).

    Configs are the tiny ones of ``tests/e2e`` at the baseline 51ea29e (same keys as
    ``configs/*.yaml``), written under ``DIR/configs`` with ``data_root: DIR/data``; top-level
    sections a later revision's shipped config has and the baseline's lacks (e.g.
    ``linked_data: {config: ...}``) are copied in. Each step's log goes to ``DIR/logs``; the
    revision, paths, start / end times and per-step wall times to ``DIR/produce.json``. Command
    names and options are resolved against the checkout's own ``--help`` (a step lists its known
    spellings); a step that fails or does not exist is recorded and the run goes on. Every
    process gets ``PYTHONHASHSEED=0``, ``TZ=UTC`` and ``nice``. ``--only STEP`` reruns steps
    into an existing DIR. Takes 4-17 minutes on 2 shared cores (most of it polar training and
    Dask start-ups).

``compare DIR_A DIR_B [--all]``
    Walks both ``data`` trees, pairs files after masking time-stamped folder and file names,
    and compares them: text (JSON, YAML, TTL, N-Triples, CSV, ...) with volatile values masked:
    any timestamp (ISO, compact ``YYYYMMDDTHHMMSS``, Unix s / ms) that falls within the produce
    run (so data dates stay compared), the checkout / output paths and the commit, atomic-write
    ``.tmp-*`` suffixes, and the values of ``code_version``, ``config_hash`` (it covers
    ``data_root``), STAC ``file:checksum`` / ``file:size`` and timing keys (``*seconds*``,
    ``*_s``, ``warp_share``). Binary files byte by byte, falling back to decoded values for
    parquet (pyarrow), GeoTIFF (rasterio), PNG (Pillow), zarr arrays, checkpoints (torch tensors)
    and the pyoxigraph store (sorted quads) when the bytes differ (reported as
    ``decoded-identical`` with the reason); TensorBoard event logs are skipped. ``model.json``
    differences are reported as ``schema`` (allowed); the weights are checked through the
    ``*.pt`` / ``*.ckpt`` files next to it.
    Prints a summary table (identical / masked-identical / decoded-identical / schema /
    differs / only in A / only in B / skipped) and the non-identical files; exits 1 if a data
    product differs or is missing on one side.

Usage::

    .venv/bin/python bench/compare_outputs.py produce --rev 51ea29e --out /tmp/eeflow_baseline
    .venv/bin/python bench/compare_outputs.py produce --rev HEAD --out /tmp/eeflow_head
    .venv/bin/python bench/compare_outputs.py compare /tmp/eeflow_baseline /tmp/eeflow_head
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BASELINE = "51ea29e"  # the revision before issue 12's refactor, whose configs the tiny ones match
TRAINING_DATE = "2026-01-14"
CHART_DATE = "2026-01-15"
CROP_DATE = "2017-09-01"
CROP_MODELS = ("lstm", "tempcnn", "starrnn")

# The tiny configs of tests/e2e/conftest.py (data_root is set per run).
POLAR: dict[str, Any] = {
    "use_case": "polar",
    "seed": 7,
    "dask": {"cluster": "local", "n_workers": 2, "memory_limit": "1GiB"},
    "ingest": {"generator": {"lines": 320, "samples": 320, "scenes_per_day": 1}},
    "harmonise": {"chunk": 160},
    "patches": {"sizes": [20], "max_per_class": 150, "min_purity": 0.8},
    "train": {"model": "adhoc_cnn", "patch_size": 20, "epochs": 1, "batch_size": 32},
    "predict": {"tile": 160},
}
FOOD_SECURITY: dict[str, Any] = {
    "use_case": "food_security",
    "seed": 3,
    "dask": {"cluster": "local", "n_workers": 1, "memory_limit": "1GiB"},
    "ingest": {"generator": {"size_px": 48, "tiles": [
        {"id": "33UWP", "revisit_days": 10, "parcels": 20},
        {"id": "33UXP", "revisit_days": 10, "parcels": 20},
        {"id": "33UVP", "revisit_days": 10, "parcels": 20}]}},
    "harmonise": {"chunk": 48},
    "samples": {"max_per_class": 200},
    "train": {"layers": 1, "cells": 8, "epochs_phase1": 1, "epochs_phase2": 1,
              "batch_size": 128, "accelerator": "cpu"},
}
CROP_TILES = tuple(t["id"] for t in FOOD_SECURITY["ingest"]["generator"]["tiles"])
# not exported: "model" (needs a model registry, which only the experiments fill) and
# "evaluation" (at 51ea29e its mapping fails on food_security/evaluate/*/comparison.json)
RDF_PRODUCTS = (("vocabulary", CHART_DATE), ("ice_chart", CHART_DATE),
                ("crop_field_instances", CROP_DATE))


# --------------------------------------------------------------------------------------- produce
class Checkout:
    """One revision's checkout: runs its ``eeflow`` entry point and reads its ``--help``."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path = path
        self.out = out
        self.env = {**os.environ, "EEFLOW_HOME": str(path), "PYTHONHASHSEED": "0", "TZ": "UTC",
                    "PYTHONPATH": str(path), "NO_COLOR": "1", "COLUMNS": "200",
                    "TERM": "dumb", "CUDA_VISIBLE_DEVICES": ""}
        self.env.pop("FORCE_COLOR", None)
        self._help: dict[tuple[str, ...], str] = {}

    def entry_point(self) -> str:
        """Return the ``module:function`` of the checkout's ``eeflow`` script (pyproject)."""
        text = (self.path / "pyproject.toml").read_text()
        match = re.search(r'^eeflow\s*=\s*"([\w.]+):(\w+)"', text, re.M)
        if not match:
            raise SystemExit(f"no eeflow script in {self.path}/pyproject.toml")
        return f"{match.group(1)}:{match.group(2)}"

    def argv(self, words: list[str]) -> list[str]:
        """Return the command line running ``eeflow WORDS`` from the checkout's sources."""
        module, function = self.entry_point().split(":")
        launcher = (f"import sys; sys.argv[0] = 'eeflow'; from {module} import {function}; "
                    f"{function}()")
        return ["nice", "-n", "10", sys.executable, "-c", launcher, *words]

    def help(self, words: tuple[str, ...]) -> str:
        """Return (cached) ``eeflow WORDS --help``; empty when the command does not exist."""
        if words not in self._help:
            done = subprocess.run(self.argv([*words, "--help"]), cwd=self.path, env=self.env,
                                  capture_output=True, text=True, check=False)
            self._help[words] = done.stdout if done.returncode == 0 else ""
        return self._help[words]

    def subcommands(self, group: tuple[str, ...]) -> set[str]:
        """Return the sub-command names listed in the ``Commands`` box of a group's help."""
        text = self.help(group)
        box = text.split("Commands", 1)[1] if "Commands" in text else ""
        return set(re.findall(r"^[│|]\s([a-z][\w-]*)\s", box, re.M))

    def options(self, words: tuple[str, ...]) -> set[str]:
        """Return the long options of a command's help."""
        return set(re.findall(r"(--[a-z][a-z0-9-]*)", self.help(words)))

    def resolve(self, spellings: list[tuple[str, ...]]) -> tuple[str, ...] | None:
        """Return the first spelling of a command that exists in this checkout (None: none)."""
        for words in spellings:
            if words[-1] in self.subcommands(words[:-1]):
                return words
        return None


@dataclass
class Step:
    """One CLI call of the produce run: its known spellings and how to build its arguments."""

    name: str
    spellings: list[tuple[str, ...]]
    arguments: Callable[[set[str]], list[str]]
    before: Callable[[], None] | None = None


def _run_date(options: set[str], day: str) -> list[str]:
    return ["--run-date", day] if "--run-date" in options else ["-d", day]


def make_checkout(rev: str, checkout: Path | None) -> Path:
    """Return the checkout of ``rev``: ``checkout`` if given, else a detached worktree in /tmp."""
    if checkout is not None:
        return checkout.resolve()
    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = Path("/tmp") / f"eeflow_src_{sha[:10]}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=REPO,
                       check=True)
    return path


def new_config_sections(checkout: Path, name: str) -> dict[str, Any]:
    """Return the top-level sections of the checkout's ``configs/NAME.yaml`` added since BASELINE.

    The tiny configs are those of BASELINE; a section a later revision made necessary (e.g.
    ``linked_data: {config: ...}``) is carried over from that revision's shipped config.
    """
    shipped = yaml.safe_load((checkout / "configs" / f"{name}.yaml").read_text()) or {}
    done = subprocess.run(["git", "show", f"{BASELINE}:configs/{name}.yaml"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    baseline = yaml.safe_load(done.stdout) or {}
    return {key: value for key, value in shipped.items() if key not in baseline}


def write_configs(out: Path, checkout: Path) -> dict[str, Path]:
    """Write the run's polar, food-security and linked-data configs under ``out/configs``."""
    folder = out / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    data_root = str(out / "data")
    linked = yaml.safe_load((checkout / "configs" / "linked_data.yaml").read_text())
    configs = {"polar": POLAR, "food_security": FOOD_SECURITY, "linked_data": linked}
    paths = {}
    for name, cfg in configs.items():
        path = folder / f"{name}.yaml"
        cfg = {**new_config_sections(checkout, name), **cfg, "data_root": data_root}
        if name == "food_security":
            cfg["lucas"] = {"points_path": str(out / "lucas_points.csv")}
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        paths[name] = path
    return paths


def write_lucas_points(out: Path) -> None:
    """Write LUCAS-like survey points (2018 primary-data columns) inside the predicted fields.

    One point per predicted field instance of every tile (its representative point, WGS 84),
    labelled with the LUCAS LC1 code of a fixed cycle of crop codes, surveyed on 2018-06-15.
    """
    import geopandas as gpd
    import pandas as pd

    files = sorted((out / "data" / "food_security" / "predict").glob("*/*/*_instances.parquet"))
    frames = [gpd.read_parquet(p) for p in files]
    fields = pd.concat(frames, ignore_index=True)
    points = fields.geometry.representative_point().to_crs("EPSG:4326")
    codes = ["B11", "B16", "B13", "B32", "E10", "B21"]
    header = ("POINT_ID,NUTS0,TH_LAT,TH_LONG,OFFICE_PI,SURVEY_DATE,GPS_PROJ,GPS_PREC,GPS_LAT,"
              "GPS_EW,GPS_LONG,OBS_DIST,OBS_TYPE,LC1,LC1_SPEC,LC1_PERC,LU1")
    rows = [header]
    for i, point in enumerate(points):
        lat, lon = f"{point.y:.9f}", f"{point.x:.9f}"
        country = "AT" if point.x < 17.16 else "SK"  # the eastern test tile lies in Slovakia
        rows.append(f"{47000000 + i},{country},{lat},{lon},0,15/06/18,1,5,{lat},1,{lon},5,1,"
                    f"{codes[i % len(codes)]},8,100,U111")
    (out / "lucas_points.csv").write_text("\n".join(rows) + "\n")


def produce_steps(out: Path, configs: dict[str, Path]) -> list[Step]:
    """Return the CLI steps of one produce run, in order."""
    polar, crops, linked = (str(configs[k]) for k in ("polar", "food_security", "linked_data"))

    def with_config(config: str, day: str, *extra: str) -> Callable[[set[str]], list[str]]:
        return lambda opts: ["--config", config, *_run_date(opts, day), *extra]

    steps = [
        Step("polar training", [("polar", "training"), ("polar", "train-pipeline")],
             with_config(polar, TRAINING_DATE)),
        Step("polar daily", [("polar", "daily"), ("polar", "daily-chart")],
             with_config(polar, CHART_DATE)),
        Step("crops ingest", [("crops", "ingest"), ("crops", "generate")],
             with_config(crops, CROP_DATE)),
    ]
    for stage in ("harmonise", "labels", "samples"):
        steps.append(Step(f"crops {stage}", [("crops", stage)], with_config(crops, CROP_DATE)))
    for model in CROP_MODELS:
        steps.append(Step(f"crops train {model}", [("crops", "train")],
                          with_config(crops, CROP_DATE, "--model", model)))
    for tile in CROP_TILES:
        steps.append(Step(f"crops predict {tile}", [("crops", "predict")],
                          with_config(crops, CROP_DATE, "--tile", tile)))
    steps.append(Step("crops evaluate", [("crops", "evaluate")], with_config(crops, CROP_DATE)))
    lucas_maps: list[str] = []
    for tile in CROP_TILES:
        path = out / "data" / "food_security" / "predict" / "2017-09_2018-08" / tile
        lucas_maps += ["--map", f"{tile}={path / f'{tile}_instances.parquet'}"]
    steps.append(Step("lucas evaluate", [("lucas", "evaluate")],
                      lambda opts: ["--points", str(out / "lucas_points.csv"), *lucas_maps,
                                    "--config", crops, *_run_date(opts, CROP_DATE),
                                    "--root", str(out / "data"),
                                    # each tile's map covers a third of the points
                                    *(["--min-usable-share", "0.1"]
                                      if "--min-usable-share" in opts else [])],
                      before=lambda: write_lucas_points(out)))
    for product, day in RDF_PRODUCTS:
        steps.append(Step(f"rdf export {product}", [("rdf", "export")],
                          with_config(linked, day, "--product", product)))
    return steps


def _utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def produce(rev: str, out: Path, checkout: Path | None, only: list[str] | None) -> int:
    """Run every step for ``rev`` into ``out``; return 0 when all succeeded."""
    out = out.resolve()
    if out.exists() and not only:
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    path = make_checkout(rev, checkout)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                         text=True, check=True).stdout.strip()
    status = subprocess.run(["git", "status", "--short"], cwd=path, capture_output=True,
                            text=True, check=True).stdout
    co = Checkout(path, out)
    configs = write_configs(out, path)
    record: dict[str, Any] = {"rev": rev, "commit": sha, "dirty": bool(status.strip()),
                              "checkout": str(path), "out": str(out),
                              "python": sys.executable, "steps": []}
    total = time.monotonic()
    record["started"] = _utc_now()
    failed = 0
    for step in produce_steps(out, configs):
        if only and not any(step.name.startswith(o) for o in only):
            continue
        words = co.resolve(step.spellings)
        argv = [*(words or step.spellings[0]), *step.arguments(co.options(words or ()))]
        started = time.monotonic()
        log = out / "logs" / (step.name.replace(" ", "_") + ".log")
        try:
            if words is None:
                raise LookupError(f"none of {[' '.join(w) for w in step.spellings]} exists")
            if step.before:
                step.before()
            with log.open("w") as handle:
                rc = subprocess.run(co.argv(argv), cwd=path, env=co.env, stdout=handle,
                                    stderr=subprocess.STDOUT, check=False).returncode
        except Exception as err:  # a failing helper step is reported like a failing command
            log.write_text(f"{type(err).__name__}: {err}\n")
            rc = 99
        seconds = round(time.monotonic() - started, 1)
        record["steps"].append({"step": step.name, "argv": ["eeflow", *argv], "rc": rc,
                                "seconds": seconds})
        print(f"{'ok ' if rc == 0 else 'FAIL'} {seconds:7.1f}s  eeflow {' '.join(argv)}",
              flush=True)
        failed += rc != 0
    record["finished"] = _utc_now()
    record["seconds"] = round(time.monotonic() - total, 1)
    previous = out / "produce.json"
    if only and previous.is_file():  # a partial rerun: keep the other steps' records
        old = json.loads(previous.read_text())
        rerun = {s["step"] for s in record["steps"]}
        record["steps"] = [s for s in old["steps"] if s["step"] not in rerun] + record["steps"]
        record["started"] = old.get("started", record["started"])
    (out / "produce.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(record['steps']) - failed}/{len(record['steps'])} steps ok in "
          f"{record['seconds']} s; outputs in {out / 'data'}")
    return 1 if failed else 0



# --------------------------------------------------------------------------------------- compare
IDENTICAL, MASKED, DECODED, SCHEMA = "identical", "masked-identical", "decoded-identical", "schema"
DIFFERS, ONLY_A, ONLY_B, SKIPPED = "differs", "only in A", "only in B", "skipped"
STATUSES = (IDENTICAL, MASKED, DECODED, SCHEMA, DIFFERS, ONLY_A, ONLY_B, SKIPPED)
FAILING = (DIFFERS, ONLY_A, ONLY_B)

# process-specific parts of file and folder names (wall-clock times are masked by mask_text)
NAME_MASKS = (
    (re.compile(r"events\.out\.tfevents\.\d+\.[^/]+"), "events.out.tfevents.<TS>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<ID>"),
)
TEXT_SUFFIXES = {".json", ".geojson", ".yaml", ".yml", ".ttl", ".nt", ".nq", ".csv", ".txt",
                 ".md", ".html", ".svg", ".xml", ".wkt", ".sparql", ".rq", ".log"}
# keys whose values are measurements of the run or of its environment, not data (wall-clock
# times are masked by value, wherever they are: see _is_now); config_hash covers data_root, which
# differs between two produce runs; file:checksum / file:size are STAC facts of a file whose own
# comparison masks it
VOLATILE_KEY = re.compile(
    r"^(code_version|config_hash|file:checksum|file:size|\w*seconds\w*|\w*_s|duration\w*|elapsed\w*|"
    r"warp_share|hostname|pid|python)$", re.I)
TEMP_SUFFIX = re.compile(r"\.tmp-[A-Za-z0-9-]+")  # tasks.storage's atomic-write folders
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
COMPACT_TIME = re.compile(r"\d{8}T\d{6}Z?")
# a checkpoint / weights file: compared by its tensors when the bytes differ
WEIGHT_SUFFIXES = {".pt", ".pth", ".ckpt", ".safetensors"}
SKIP_NAMES = re.compile(r"(^|/)(LOCK|LOG(\.old\.\d+)?|\.lock)$")


@dataclass
class Run:
    """One produce output: its data tree and the volatile strings to mask in its files."""

    root: Path
    record: dict[str, Any]

    @classmethod
    def load(cls, folder: Path) -> Run:
        """Read ``folder/produce.json`` (written by ``produce``)."""
        record = json.loads((folder / "produce.json").read_text())
        return cls(folder.resolve(), record)

    @property
    def data(self) -> Path:
        """Return the data root of the run."""
        return self.root / "data"

    def replacements(self) -> list[tuple[str, str]]:
        """Return (literal, placeholder) pairs: the run's paths and commit."""
        pairs = [(self.record["out"], "<OUT>"), (self.record["checkout"], "<CHECKOUT>")]
        commit = self.record.get("commit", "")
        if commit:
            pairs += [(commit, "<COMMIT>"), (commit[:12], "<COMMIT>"), (commit[:7], "<COMMIT>")]
        return pairs


def mask_name(relative: str, run: Run) -> str:
    """Return a relative path with its wall-clock times and process ids replaced."""
    for pattern, placeholder in NAME_MASKS:
        relative = pattern.sub(placeholder, relative)
    return mask_text(relative, run)


def walk(run: Run) -> dict[str, list[Path]]:
    """Map each masked relative path of the run's data files to its files (sorted).

    A pyoxigraph / RocksDB store folder counts as one entry (its folder), compared by content.
    """
    files: dict[str, list[Path]] = {}
    stores: set[Path] = set()
    for path in sorted(run.data.rglob("*")):
        if any(path.is_relative_to(s) for s in stores):
            continue
        if path.is_dir() and (path / "CURRENT").is_file() and (path / "IDENTITY").is_file():
            stores.add(path)
        elif not path.is_file():
            continue
        files.setdefault(mask_name(path.relative_to(run.data).as_posix(), run), []).append(path)
    return files


def mask_text(text: str, run: Run) -> str:
    """Mask the run's paths and commit, and wall-clock times, in a text."""
    for literal, placeholder in run.replacements():
        text = text.replace(literal, placeholder)
    text = TEMP_SUFFIX.sub(".tmp-<ID>", text)
    text = ISO_TIME.sub(lambda m: "<TIME>" if _is_now(m.group(0), run) else m.group(0), text)
    return COMPACT_TIME.sub(lambda m: "<TIME>" if _is_now(m.group(0), run) else m.group(0), text)


def _is_now(stamp: str, run: Run) -> bool:
    """Tell whether a timestamp lies within the produce run (a wall-clock time, not data)."""
    import datetime as dt

    digits = re.sub(r"\D", "", stamp)[:14]
    try:
        when = dt.datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    start = dt.datetime.fromisoformat(run.record["started"]) - dt.timedelta(hours=14)
    end = dt.datetime.fromisoformat(run.record["finished"]) + dt.timedelta(hours=14)
    return start <= when <= end


def mask_json(value: Any, run: Run) -> Any:
    """Mask volatile keys' values and the run's paths / wall-clock times in a JSON value."""
    if isinstance(value, dict):
        return {mask_text(str(k), run): "<MASKED>" if VOLATILE_KEY.match(str(k))
                else mask_json(v, run) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v, run) for v in value]
    if isinstance(value, str):
        return mask_text(value, run)
    if isinstance(value, int | float) and not isinstance(value, bool) and _is_epoch_now(value, run):
        return "<TIME>"
    return value


def _is_epoch_now(value: float, run: Run) -> bool:
    """Tell whether a number is a Unix time (s or ms) within the produce run."""
    import datetime as dt

    start = dt.datetime.fromisoformat(run.record["started"]).replace(tzinfo=dt.UTC).timestamp()
    end = dt.datetime.fromisoformat(run.record["finished"]).replace(tzinfo=dt.UTC).timestamp()
    return any(start - 50400 <= value / scale <= end + 50400 for scale in (1, 1000))


def _load_structured(path: Path) -> Any:
    if path.suffix in (".json", ".geojson"):
        return json.loads(path.read_text())
    return yaml.safe_load(path.read_text())


def compare_text(a: Path, b: Path, run_a: Run, run_b: Run) -> tuple[str, str]:
    """Compare two text files with volatile values masked."""
    if a.suffix in (".json", ".geojson", ".yaml", ".yml"):
        try:
            left, right = mask_json(_load_structured(a), run_a), mask_json(_load_structured(b),
                                                                           run_b)
        except (ValueError, yaml.YAMLError):
            left, right = mask_text(a.read_text(), run_a), mask_text(b.read_text(), run_b)
        if left == right:
            return MASKED, ""
        status = SCHEMA if a.name == "model.json" else DIFFERS
        return status, _json_difference(left, right)
    left_lines = mask_text(a.read_text(errors="replace"), run_a).splitlines()
    right_lines = mask_text(b.read_text(errors="replace"), run_b).splitlines()
    if left_lines == right_lines:
        return MASKED, ""
    if a.suffix in (".nt", ".nq") and sorted(left_lines) == sorted(right_lines):
        return DECODED, "same triples, other order"
    for number, (x, y) in enumerate(zip(left_lines, right_lines, strict=False), 1):
        if x != y:
            at = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q),
                      min(len(x), len(y)))
            return DIFFERS, f"line {number} col {at + 1}: {x[max(at - 30, 0):at + 40]!r} != " \
                            f"{y[max(at - 30, 0):at + 40]!r}"
    return DIFFERS, f"{len(left_lines)} vs {len(right_lines)} lines"


def _json_difference(left: Any, right: Any, where: str = "") -> str:
    """Describe the first difference between two JSON values (key path and values)."""
    if isinstance(left, dict) and isinstance(right, dict):
        missing = sorted(set(left) ^ set(right))
        if missing:
            return f"{where or '/'}: keys only on one side: {missing[:6]}"
        for key in left:
            if left[key] != right[key]:
                return _json_difference(left[key], right[key], f"{where}/{key}")
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for i, (x, y) in enumerate(zip(left, right, strict=True)):
            if x != y:
                return _json_difference(x, y, f"{where}[{i}]")
    return f"{where or '/'}: {str(left)[:70]} != {str(right)[:70]}"


def compare_decoded(a: Path, b: Path, run_a: Run, run_b: Run) -> tuple[str, str]:
    """Compare two binary files that differ in bytes by their decoded values."""
    import numpy as np

    suffix = a.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        left, right = pq.read_table(a), pq.read_table(b)
        if not left.equals(right):
            return DIFFERS, "parquet values differ"
        meta_a = mask_json({k.decode(): v.decode() for k, v in
                            (left.schema.metadata or {}).items()}, run_a)
        meta_b = mask_json({k.decode(): v.decode() for k, v in
                            (right.schema.metadata or {}).items()}, run_b)
        if meta_a != meta_b:
            return DIFFERS, "parquet values equal, schema metadata differs"
        return DECODED, "parquet values equal; bytes differ by file metadata"
    if suffix in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(a) as left, rasterio.open(b) as right:
            same = (left.profile == right.profile and left.tags() == right.tags()
                    and np.array_equal(left.read(), right.read(), equal_nan=True))
        return (DECODED, "GeoTIFF pixels, profile and tags equal") if same else (
            DIFFERS, "GeoTIFF pixels / profile / tags differ")
    if suffix == ".png":
        from PIL import Image

        with Image.open(a) as left, Image.open(b) as right:
            same = left.size == right.size and left.mode == right.mode and np.array_equal(
                np.asarray(left), np.asarray(right))
        return (DECODED, "PNG pixels equal; bytes differ by metadata") if same else (
            DIFFERS, "PNG pixels differ")
    if suffix in WEIGHT_SUFFIXES:
        return compare_weights(a, b, run_a, run_b)
    zarr_array = _zarr_array_of(a)
    if zarr_array is not None:
        return compare_zarr_array(zarr_array, b.parents[len(a.parents) - len(zarr_array.parents)
                                                      - 1])
    return DIFFERS, f"bytes differ ({a.stat().st_size} vs {b.stat().st_size} bytes)"


def compare_weights(a: Path, b: Path, run_a: Run, run_b: Run) -> tuple[str, str]:
    """Compare two checkpoints / weight files by their tensors (names and values).

    Tensor names are key paths in the loaded object (run paths in them masked), so Lightning's
    callback states, which name the checkpoint's path, pair up.
    """
    import torch

    def tensors(path: Path, run: Run) -> dict[str, Any]:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
        found: dict[str, Any] = {}

        def collect(value: Any, prefix: str) -> None:
            if isinstance(value, torch.Tensor):
                found[prefix] = value
            elif isinstance(value, dict):
                for key, item in value.items():
                    collect(item, f"{prefix}.{key}" if prefix else str(key))
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    collect(item, f"{prefix}[{i}]")

        collect(loaded, "")
        return {mask_text(name, run): tensor for name, tensor in found.items()}

    left, right = tensors(a, run_a), tensors(b, run_b)
    if set(left) != set(right):
        return DIFFERS, f"tensor names differ: {sorted(set(left) ^ set(right))[:4]}"
    unequal = [k for k in left if not torch.equal(left[k], right[k])]
    if unequal:
        return DIFFERS, f"{len(unequal)} tensors differ, e.g. {unequal[:3]}"
    return DECODED, f"{len(left)} tensors equal; bytes differ by pickled metadata"


def _zarr_array_of(path: Path) -> Path | None:
    """Return the zarr array folder a chunk file belongs to (None outside zarr stores)."""
    for parent in path.parents:
        if (parent / "zarr.json").is_file() or (parent / ".zarray").is_file():
            return parent
        if parent.suffix == ".zarr":
            return None
    return None


def compare_zarr_array(a: Path, b: Path) -> tuple[str, str]:
    """Compare two zarr arrays by their decoded values."""
    import numpy as np
    import zarr

    left, right = zarr.open_array(str(a), mode="r"), zarr.open_array(str(b), mode="r")
    if left.shape != right.shape or left.dtype != right.dtype:
        return DIFFERS, f"zarr shape/dtype {left.shape}/{left.dtype} != {right.shape}/{right.dtype}"
    if np.array_equal(left[...], right[...], equal_nan=left.dtype.kind == "f"):
        return DECODED, "zarr array values equal; chunk bytes differ (encoding)"
    return DIFFERS, "zarr array values differ"


def compare_store(a: Path, b: Path, run_a: Run, run_b: Run) -> tuple[str, str]:
    """Compare two pyoxigraph stores by their quads (N-Quads, sorted, run paths masked)."""
    import pyoxigraph

    def quads(path: Path, run: Run) -> list[str]:
        store = pyoxigraph.Store.read_only(str(path))
        return sorted(mask_text(str(q), run) for q in store)

    left, right = quads(a, run_a), quads(b, run_b)
    if left == right:
        return DECODED, f"{len(left)} quads equal (store files differ by design)"
    only = sorted(set(left) ^ set(right))
    return DIFFERS, f"{len(only)} quads on one side only, e.g. {only[0][:100]!r}"


def compare_pair(a: Path, b: Path, run_a: Run, run_b: Run) -> tuple[str, str]:
    """Compare one pair of files (or store folders)."""
    if a.is_dir():
        return compare_store(a, b, run_a, run_b)
    if SKIP_NAMES.search(a.as_posix()):
        return SKIPPED, "lock / log file of a store"
    if "tfevents" in a.name:
        return SKIPPED, "TensorBoard event log (wall-clock times)"
    if a.read_bytes() == b.read_bytes():
        return IDENTICAL, ""
    if a.suffix.lower() in TEXT_SUFFIXES:
        return compare_text(a, b, run_a, run_b)
    try:
        return compare_decoded(a, b, run_a, run_b)
    except Exception as err:  # an unreadable file is a difference, reported with its cause
        return DIFFERS, f"bytes differ; decoding failed: {type(err).__name__}: {err}"[:160]


def compare(folder_a: Path, folder_b: Path, show_all: bool) -> int:
    """Compare two produce outputs; print the table; return 1 if a data product differs."""
    run_a, run_b = Run.load(folder_a), Run.load(folder_b)
    files_a, files_b = walk(run_a), walk(run_b)
    rows: list[tuple[str, str, str]] = []
    for key in sorted(set(files_a) | set(files_b)):
        left, right = files_a.get(key, []), files_b.get(key, [])
        for i in range(max(len(left), len(right))):
            if i >= len(right):
                rows.append((ONLY_A, key, ""))
            elif i >= len(left):
                rows.append((ONLY_B, key, ""))
            else:
                status, detail = compare_pair(left[i], right[i], run_a, run_b)
                rows.append((status, key, detail))
    counts = {s: sum(1 for r in rows if r[0] == s) for s in STATUSES}
    print(f"A: {run_a.root} ({run_a.record.get('rev')} {run_a.record.get('commit', '')[:10]})")
    print(f"B: {run_b.root} ({run_b.record.get('rev')} {run_b.record.get('commit', '')[:10]})")
    print(f"{'status':<18} {'files':>6}")
    for status in STATUSES:
        print(f"{status:<18} {counts[status]:>6}")
    print(f"{'total':<18} {len(rows):>6}")
    shown = [r for r in rows if show_all or r[0] != IDENTICAL]
    if shown:
        print()
    for status, key, detail in shown:
        print(f"{status:<18} {key}" + (f"  ({detail})" if detail else ""))
    failing = sum(counts[s] for s in FAILING)
    failed_steps = [f"{side}: {step['step']} (rc {step['rc']})"
                    for side, run in (("A", run_a), ("B", run_b))
                    for step in run.record.get("steps", []) if step["rc"] != 0]
    for line in failed_steps:
        print(f"failed step        {line}")
    print(f"\n{'FAIL' if failing or failed_steps else 'OK'}: {failing} data file(s) differ or "
          f"are missing; {len(failed_steps)} produce step(s) failed")
    return 1 if failing or failed_steps else 0


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run ``produce`` or ``compare``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("produce", help="run the demo day and a crop year for a revision")
    make.add_argument("--rev", default="HEAD", help="git revision (default: HEAD)")
    make.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    make.add_argument("--checkout", type=Path, help="use this checkout instead of a worktree")
    make.add_argument("--only", action="append",
                      help="rerun only the steps whose name starts with this (repeatable)")
    check = commands.add_parser("compare", help="compare two produce outputs")
    check.add_argument("folder_a", type=Path)
    check.add_argument("folder_b", type=Path)
    check.add_argument("--all", action="store_true", help="list identical files too")
    args = parser.parse_args(argv)
    if args.command == "produce":
        return produce(args.rev, args.out, args.checkout, args.only)
    return compare(args.folder_a, args.folder_b, args.all)


if __name__ == "__main__":
    sys.exit(main())
