"""Crop model quality: Table IV of the paper at its split, with the LUCAS evaluation (issues 4, 18).

Setting (default ``--setting paper``): the paper's 15 Sentinel-2 tiles over Austria, split
13 / 1 / 1 with T33UVP for testing (:func:`tasks.sentinel2.tiles.paper_tiles`), generated at a
reduced tile size (``--tile-px``, parcels scaled with the area, the generator's Austrian class
imbalance); ``--setting config`` keeps the config's own tiles and split (the 3-tile figure of
issue 4). One agronomic year is generated, harmonised, labelled and sampled once; then the
weighted two-phase LSTM, the unweighted LSTM (the baseline of the weighting), TempCNN and StarRNN
are trained with each seed of ``--seeds`` (the data stay fixed; the seed sets initialisation,
sample draws and shuffles) and each model is scored

* on every reliably labelled pixel of the test tile: OA, median F1, per-class F1 (Table IV's map
  figures), and
* against LUCAS-like survey points on the test tile (the LUCAS half of Table IV): the model's field
  instances (the predict stage) matched with the 10 m same-label rule
  (:func:`tasks.lucas.evaluate.evaluate_against_lucas`). The points follow the LUCAS design of
  :mod:`tasks.lucas.generator`: a regular theoretical grid, the land cover under the point (LC1 of
  the declared crop), most field points observed from the nearest field edge (1 m inside to 3 m
  outside) plus 3 m GPS noise.

Writes ``bench/out/food_security_models[_quick|_full]/table_iv.md`` (+ ``.json``), row-normalised
confusion matrices of the first seed under ``bench/results/model_quality/`` (not for ``--quick``)
and ``bench/results/food_security_models.json``. Headline ratio: weighted / unweighted LSTM median
F1 on the test tile, mean over seeds (no goal: model quality is measured, not a speed goal).

Run (CPU-sized variant reported in bench/RESULTS.md):
``.venv/bin/python bench/food_security_models.py --tile-px 192 --seeds 42,43,44``
GPU machine, the full setting (``make paper-tables``): ``... --full`` (1024 px tiles, the config's
epochs 20 + 10, every reliable label as a sample (~9 M pixels, at the data's own imbalance, which
is what the phase-1 weighting is for; a per-class cap balances the classes and makes the weights
all 1), five seeds, ``train.accelerator: auto``).
``--quick``: the config's 3 tiles at 64 px (15 tiles cost ~1,300 acquisitions to generate, over
a minute even at 32 px), one epoch per phase, the two LSTMs, one seed (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import add_quick_flag, report  # noqa: E402

from tasks.config.common import load_config  # noqa: E402
from tasks.config.food_security import FoodSecurityConfig  # noqa: E402
from tasks.food_security.evaluate import (  # noqa: E402
    composites_path,
    labels_path,
    tile_confusion,
)
from tasks.food_security.predict import load_crop_model  # noqa: E402
from tasks.food_security.train import model_dir_for, train_crop_model  # noqa: E402
from tasks.sentinel2.tiles import paper_tiles  # noqa: E402
from tasks.trainers.scores import classification_scores  # noqa: E402

#: label -> (train.model, train.weighted, Table IV name)
RUNS: dict[str, tuple[str, bool, str]] = {
    "lstm": ("lstm", True, "LSTM (weighted two-phase)"),
    "lstm_unweighted": ("lstm", False, "LSTM (unweighted)"),
    "tempcnn": ("tempcnn", True, "TempCNN"),
    "starrnn": ("starrnn", True, "StarRNN"),
}
#: the paper's Table IV (tile T33UVP; LUCAS 2018), OA % / F1 %; no unweighted LSTM there.
PAPER = {
    "lstm": {"map": (85.39, 84.08), "lucas": (89.72, 84.20)},
    "tempcnn": {"map": (81.71, 78.33), "lucas": (89.94, 80.79)},
    "starrnn": {"map": (81.17, 83.73), "lucas": (89.53, 82.24)},
}
#: the classes of the paper's map evaluation on T33UVP ("only the crop types present in the
#: database were considered"); LUCAS scores all classes.
PAPER_MAP_CLASSES = ("grassland", "maize", "winter_wheat", "rapeseed", "potato", "rye", "beet",
                     "soy", "sunflower", "permanent_plantations")
RESULTS_PNG = REPO / "bench" / "results" / "model_quality"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "food_security.yaml"))
    parser.add_argument("--setting", choices=("paper", "config"), default="paper",
                        help="paper: 15 tiles 13/1/1, test T33UVP; config: the config's tiles")
    parser.add_argument("--tile-px", type=int, default=192, help="tile edge (paper setting)")
    parser.add_argument("--run-date", default="2017-09-01")
    parser.add_argument("--epochs1", type=int, default=6)
    parser.add_argument("--epochs2", type=int, default=3)
    parser.add_argument("--max-per-class", type=int, default=1500,
                        help="samples per class (0: all, at the data's own imbalance)")
    parser.add_argument("--sample-fraction", type=float, default=None,
                        help="samples.fraction: keep this share of every class first (a small "
                             "sample at the labels' own imbalance; the weighted phase matters)")
    parser.add_argument("--seeds", default="42,43,44", help="comma-separated training seeds")
    parser.add_argument("--models", default=",".join(RUNS), help=f"subset of {list(RUNS)}")
    parser.add_argument("--lucas-points", type=int, default=400,
                        help="theoretical survey points on the test tile")
    parser.add_argument("--reuse-data", action="store_true",
                        help="keep the generated, harmonised, labelled tiles; redo samples only")
    parser.add_argument("--out-name", default=None,
                        help="folder under bench/out (default food_security_models[_quick|_full])")
    parser.add_argument("--merge", nargs="*", default=[], metavar="FOLDER",
                        help="with --table-only: add the runs of these bench/out folders' "
                             "table_iv.json (seeds run in separate processes)")
    parser.add_argument("--table-only", action="store_true",
                        help="rewrite table_iv.md and the PNGs from the last run's table_iv.json")
    parser.add_argument("--full", action="store_true",
                        help="GPU-sized run: 1024 px tiles, config epochs, all samples, 5 seeds")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.full and args.quick:
        parser.error("--full and --quick exclude each other")
    if args.full:
        args.tile_px, args.epochs1, args.epochs2 = 1024, 20, 10
        args.max_per_class, args.seeds = 0, "42,43,44,45,46"  # every reliable label
    if args.quick:
        args.setting, args.epochs1, args.epochs2, args.max_per_class = "config", 1, 1, 200
        args.seeds, args.models, args.lucas_points = "42", "lstm,lstm_unweighted", 60
    unknown = set(args.models.split(",")) - set(RUNS)
    if unknown:
        parser.error(f"--models: unknown {sorted(unknown)}; choose from {list(RUNS)}")
    return args


def _config(args: argparse.Namespace, out: Path) -> FoodSecurityConfig:
    overrides: dict[str, Any] = {
        "data_root": str(out), "train.epochs_phase1": args.epochs1,
        "train.epochs_phase2": args.epochs2, "train.accelerator": "auto" if args.full else "cpu",
        "samples.max_per_class": args.max_per_class or None, "dask.cluster": "synchronous",
        "predict.model": "latest",
    }
    if args.sample_fraction is not None:
        overrides["samples.fraction"] = args.sample_fraction
    if args.setting == "paper":
        overrides.update(paper_tiles(args.tile_px))
    elif args.quick:
        overrides["ingest.generator.size_px"] = 64
    return load_config(args.config, overrides, expect=FoodSecurityConfig)


def _prepare_data(cfg: FoodSecurityConfig, run_date: str, reuse: bool) -> dict[str, Any]:
    """Run the data stages (``reuse``: only samples, whose size is a bench argument)."""
    from tasks.food_security.harmonise import run_harmonise
    from tasks.food_security.labels import run_labels
    from tasks.food_security.samples import run_samples
    from tasks.sentinel2.generator import run_generate

    facts: dict[str, Any] = {"seconds": {}}
    stages = (("generate", run_generate), ("harmonise", run_harmonise), ("labels", run_labels),
              ("samples", run_samples))
    for name, stage in stages[3:] if reuse else stages:
        started = time.perf_counter()
        summary = stage(cfg, run_date)
        facts["seconds"][name] = round(time.perf_counter() - started, 1)
        if name == "samples":
            facts["samples"] = {s: v.get("n_samples") for s, v in summary["splits"].items()}
    return facts


def _class_of_code() -> dict[int, str]:
    from tasks.sentinel2.generator import load_crop_shares

    return {code: crop for crop, (_, codes) in load_crop_shares().items() for code in codes}


def write_survey_points(cfg: FoodSecurityConfig, run_date: str, tile: str, n_points: int,
                        path: Path, seed: int = 7) -> dict[str, int]:
    """Write LUCAS-2018-style points over ``tile``'s declared parcels to ``path`` (CSV).

    A regular grid of theoretical points (random offset) over the tile; a point on a parcel gets
    an LC1 code of the parcel's declared class (:data:`tasks.lucas.generator.CLASS_LC1`), one off
    the parcels (roads, forest) LC1 C10 (not a crop: the evaluation excludes it). 80 % of the field
    points are observed from the nearest parcel edge (1 m inside to 3 m outside), the rest in the
    field; all get 3 m GPS noise per axis; 4 % are office points, 2 % lack GPS
    (:func:`tasks.lucas.generator.lucas_table`). Returns counts per kind.
    """
    import geopandas as gpd

    from tasks.lucas.generator import CLASS_LC1, lucas_table
    from tasks.sentinel2.tiles import synthetic_tile_grid
    from tasks.storage import agronomic_year_key, stage_dir

    parcels = gpd.read_parquet(stage_dir(cfg.resolved_root(), "food_security", "ingest",
                                         agronomic_year_key(run_date)) / "parcels.parquet")
    parcels = parcels[parcels["tile"] == tile]
    classes = _class_of_code()
    rng = np.random.default_rng(seed)
    grid = synthetic_tile_grid(tile, cfg.ingest.generator.size_px)
    left, bottom, right, top = grid.bounds
    spacing = float(np.sqrt((right - left) * (top - bottom) / n_points))
    xs = np.arange(left + rng.uniform(0, spacing), right, spacing)
    ys = np.arange(bottom + rng.uniform(0, spacing), top, spacing)
    th = np.array(np.meshgrid(xs, ys)).reshape(2, -1).T
    boxes = parcels.geometry.bounds.to_numpy()  # (minx, miny, maxx, maxy): rectangles
    codes = parcels[cfg.ingest.crop_code_column].to_numpy()
    gps = th.copy()
    lc1 = np.full(len(th), "C10", dtype=object)
    lu1 = np.full(len(th), "U120", dtype=object)
    area = np.full(len(th), 8.0)
    counts = {"field": 0, "off_parcel": 0, "unknown_code": 0, "from_edge": 0}
    for i, (x, y) in enumerate(th):
        hit = np.flatnonzero((boxes[:, 0] <= x) & (x <= boxes[:, 2])
                             & (boxes[:, 1] <= y) & (y <= boxes[:, 3]))
        if not hit.size:
            counts["off_parcel"] += 1
            continue
        crop = classes.get(int(codes[hit[0]]))
        if crop is None:  # a code outside the code lists: LUCAS would record some crop; skip
            counts["unknown_code"] += 1
            lc1[i] = "B15"
        else:
            options = CLASS_LC1[crop]
            lc1[i] = str(rng.choice(list(options), p=list(options.values())))
        lu1[i] = "U111"
        counts["field"] += 1
        x0, y0, x1, y1 = boxes[hit[0]]
        area[i] = round((x1 - x0) * (y1 - y0) / 1e4, 1)
        if rng.random() < 0.8:  # observed from the nearest edge of the field
            sides = [(x - x0, 0, x0, -1.0), (x1 - x, 0, x1, 1.0),
                     (y - y0, 1, y0, -1.0), (y1 - y, 1, y1, 1.0)]
            _, axis, edge, sign = min(sides)
            gps[i, axis] = edge + sign * rng.uniform(-1.0, 3.0)
            counts["from_edge"] += 1
    gps += rng.normal(0.0, 3.0, gps.shape)
    table = lucas_table(rng, grid.crs, th, gps, lc1, lu1, area)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return counts


def _score_lucas(cfg: FoodSecurityConfig, run_date: str, folder: Path, name: str,
                 points: Any) -> dict[str, Any]:
    """Map the test tile with the model in ``folder`` and match its instances to the points."""
    from tasks.food_security.predict import run_predict
    from tasks.lucas.evaluate import evaluate_against_lucas

    predicted = run_predict(cfg, run_date, tile=cfg.evaluate.tile, model=str(folder))
    lucas = evaluate_against_lucas(points, predicted["fields"], cfg.lucas, map_name=name)
    radius, nearest = lucas.within_radius, lucas.nearest
    return {"oa": radius.overall_accuracy, "median_f1": radius.median_f1,
            "weighted_f1": radius.weighted_f1, "points": radius.points,
            "oa_nearest": nearest.overall_accuracy, "median_f1_nearest": nearest.median_f1}


def _train_and_score(cfg: FoodSecurityConfig, args: argparse.Namespace, points: Any, out: Path,
                     facts: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Train every model with every seed (seed-major); save ``table_iv.json`` after each run."""
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in args.models.split(",")}
    class_names: list[str] = []
    tile = cfg.evaluate.tile
    for seed in (int(s) for s in args.seeds.split(",")):
        for label in results:
            model, weighted, _ = RUNS[label]
            cfg.seed, cfg.train.weighted = seed, weighted
            folder = model_dir_for(cfg, args.run_date, f"{label}_s{seed}")
            started = time.perf_counter()
            trained = train_crop_model(cfg, args.run_date, model=model, output_dir=folder)
            seconds = time.perf_counter() - started
            module, meta = load_crop_model(folder)
            class_names = list(meta["classes"])
            confusion = tile_confusion(module, meta, composites_path(cfg, args.run_date, tile),
                                       labels_path(cfg, args.run_date, tile))
            scores = classification_scores(confusion)
            row = {"seed": seed, "train_seconds": round(seconds, 1), "epochs": trained["epochs"],
                   "confusion": confusion.tolist(), **scores}
            row["lucas"] = _score_lucas(cfg, args.run_date, folder, f"{label}_s{seed}", points)
            print(f"{label} seed {seed}: OA {scores['overall_accuracy']:.4f} median F1 "
                  f"{scores['median_f1']:.4f}; LUCAS OA {row['lucas']['oa']} "
                  f"({seconds:.0f} s)", flush=True)
            results[label].append(row)
            (out / "table_iv.json").write_text(json.dumps(
                {"facts": facts, "tile": tile, "classes": class_names, "results": results},
                indent=1, default=str))
    return results, class_names


def _mean_sd(values: list[float | None]) -> str:
    kept = [100 * v for v in values if v is not None and np.isfinite(v)]
    if not kept:
        return "-"
    if len(kept) == 1:
        return f"{kept[0]:.1f}"
    return f"{np.mean(kept):.1f} ± {np.std(kept, ddof=1):.1f}"


def table_markdown(results: dict[str, list[dict[str, Any]]], class_names: list[str],
                   tile: str) -> str:
    """Table IV: per-class F1 (rows: classes with test pixels), OA, median F1, LUCAS OA / F1."""
    results = {k: v for k, v in results.items() if v}  # a partial run: models not yet trained
    labels = list(results)
    support = np.asarray(results[labels[0]][0]["support"])
    head = "| | " + " | ".join(RUNS[k][2] for k in labels) + " |"
    lines = [head, "|---|" + "---:|" * len(labels)]

    def row(name: str, pick: Any) -> str:
        return f"| {name} | " + " | ".join(_mean_sd([pick(r) for r in results[k]])
                                           for k in labels) + " |"

    for i, crop in enumerate(class_names):
        if support[i]:
            lines.append(row(f"F1 {crop} ({int(support[i]):,} px)", lambda r, i=i: r["f1"][i]))
    lines.append(row(f"**OA, tile {tile}**", lambda r: r["overall_accuracy"]))
    lines.append(row(f"**median F1, tile {tile}**", lambda r: r["median_f1"]))
    lines.append(row("macro F1", lambda r: r["macro_f1"]))
    paper_idx = [i for i, c in enumerate(class_names) if c in PAPER_MAP_CLASSES and support[i]]
    lines.append(row(f"median F1, the paper's map classes ({len(paper_idx)} on the tile)",
                     lambda r: float(np.median([r["f1"][i] for i in paper_idx]))
                     if paper_idx else None))
    lines.append(row("**LUCAS OA (10 m rule)**", lambda r: r["lucas"]["oa"]))
    lines.append(row("**LUCAS median F1 (10 m rule)**", lambda r: r["lucas"]["median_f1"]))
    lines.append(row("LUCAS weighted F1 (10 m rule)", lambda r: r["lucas"]["weighted_f1"]))
    lines.append(row("LUCAS OA, nearest instance", lambda r: r["lucas"]["oa_nearest"]))
    paper = [PAPER.get(k) for k in labels]
    for key, name in (("map", f"paper: OA / F1 on {tile}"), ("lucas", "paper: LUCAS OA / F1")):
        lines.append(f"| {name} | " + " | ".join(
            f"{p[key][0]:.2f} / {p[key][1]:.2f}" if p else "-" for p in paper) + " |")
    return "\n".join(lines) + "\n"


def _plot(results: dict[str, list[dict[str, Any]]], class_names: list[str], tile: str,
          tag: str) -> list[str]:
    from tasks.plots import plot_confusion_matrix

    written = []
    for label, rows in results.items():
        if not rows:
            continue
        first = rows[0]
        if label == "lstm_unweighted" and any(
                r["seed"] == first["seed"] and r["confusion"] == first["confusion"]
                for r in results.get("lstm", [])):
            continue  # the same matrix as the weighted LSTM (balanced samples: weights all 1)
        path = RESULTS_PNG / f"crops_{tag}_{label}_s{first['seed']}.png"
        plot_confusion_matrix(
            np.asarray(first["confusion"]), class_names, path,
            f"{RUNS[label][2]}, tile {tile} (seed {first['seed']})\nOA "
            f"{100 * first['overall_accuracy']:.1f} %, median F1 {100 * first['median_f1']:.1f} %",
            drop_empty_classes=True, axis_labels=("predicted class", "reference class"),
            colour_label="fraction of reference pixels")
        written.append(str(path.relative_to(REPO)))
    return written


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.WARNING)
    suffix = "_quick" if args.quick else "_full" if args.full else ""
    if args.sample_fraction is not None:
        suffix += "_imbalanced"
    out = REPO / "bench" / "out" / (args.out_name or f"food_security_models{suffix}")
    if args.table_only:
        saved = json.loads((out / "table_iv.json").read_text())
        for other in args.merge:
            more = json.loads((REPO / "bench" / "out" / other / "table_iv.json").read_text())
            for label, rows in more["results"].items():
                saved["results"].setdefault(label, []).extend(rows)
        setting = saved["facts"]["setting"]
        tile = str(saved.get("tile", "33UVP"))
        table = table_markdown(saved["results"], saved["classes"], tile)
        print(table)
        (out / "table_iv.md").write_text(table)
        if not args.quick:
            tag = (f"paper{setting['tile_px']}" if setting["setting"] == "paper" else "config")
            imbalanced = "_imbalanced" if setting.get("sample_fraction") is not None else ""
            print(_plot(saved["results"], saved["classes"], tile,
                        tag + suffix.removesuffix("_imbalanced") + imbalanced))
        _report(saved["results"], {**saved["facts"], "merged": [out.name, *args.merge]},
                args.quick)
        return
    cfg = _config(args, out)
    facts = _prepare_data(cfg, args.run_date, args.reuse_data)
    print(json.dumps(facts), flush=True)
    facts["setting"] = {k: getattr(args, k) for k in (
        "setting", "tile_px", "epochs1", "epochs2", "max_per_class", "sample_fraction", "seeds",
        "lucas_points")}
    points_csv = out / "lucas_points.csv"
    facts["lucas_points"] = write_survey_points(cfg, args.run_date, cfg.evaluate.tile,
                                                args.lucas_points, points_csv)
    from tasks.lucas.points import read_lucas_points

    points = read_lucas_points(points_csv, cfg.lucas.location, cfg.lucas.points_crs)
    started = time.perf_counter()
    results, class_names = _train_and_score(cfg, args, points, out, facts)
    facts["seconds"]["train_and_score"] = round(time.perf_counter() - started, 1)
    tile = cfg.evaluate.tile
    table = table_markdown(results, class_names, tile)
    print(table)
    tag = f"{args.setting}{args.tile_px}" if args.setting == "paper" else "config"
    facts["pngs"] = [] if args.quick else _plot(results, class_names, tile, tag + suffix)
    facts["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(facts, indent=1))
    (out / "table_iv.md").write_text(table)
    (out / "table_iv.json").write_text(json.dumps(
        {"facts": facts, "tile": tile, "classes": class_names, "results": results}, indent=1,
        default=str))
    _report(results, facts, args.quick)


def _report(results: dict[str, list[dict[str, Any]]], facts: dict[str, Any], quick: bool) -> None:
    """The summary line and bench/results/food_security_models[_imbalanced].json (seed means;
    ``_imbalanced``: a ``--sample-fraction`` run)."""
    results = {k: v for k, v in results.items() if v}
    common = ({r["seed"] for r in results["lstm"]} & {r["seed"] for r in results[
        "lstm_unweighted"]}) if "lstm" in results and "lstm_unweighted" in results else set()
    median = {k: float(np.mean([r["median_f1"] for r in results[k] if r["seed"] in common]))
              for k in ("lstm", "lstm_unweighted")} if common else {}
    imbalanced = (facts.get("setting") or {}).get("sample_fraction") is not None
    report("food_security_models_imbalanced" if imbalanced else "food_security_models",
           median["lstm"] / median["lstm_unweighted"] if median.get("lstm_unweighted") else None,
           "none (measured: model quality)", None,
           {"scores": {k: {m: [r[m] for r in v] for m in ("overall_accuracy", "median_f1")}
                       for k, v in results.items()},
            "lucas": {k: [r["lucas"] for r in v] for k, v in results.items()}, **facts},
           baseline="the same LSTM trained without class weights (mean median F1 over the seeds "
                    "both ran, test tile)",
           quick=quick)


if __name__ == "__main__":
    main()
