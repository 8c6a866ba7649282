"""Table III on generated Sentinel-1 EW data: four networks, binary and five-class, N seeds.

Data: the project's SAFE generator (tasks.sentinel1.generator) through the real pipeline stages
(ingest -> harmonise -> labels -> patches) for --days training days A with --scenes scenes each;
the patch training set holds 32 and 20 px patches balanced over the five classes. For every seed
and class scheme (binary water / ice and five classes) the paper's networks are trained: ad-hoc
CNN, VGG-16, VGG-16 transfer and modified VGG-16 at 32 px, and the modified VGG-16 also at 20 px
(the paper's Table III). VGG-16 transfer starts from ``--imagenet-weights`` (a torchvision VGG-16
state dict) when given, else from the same seed's VGG-16 trained on the other class scheme (the
project's fallback, here without training that VGG-16 twice).

Each model is scored four ways: validation accuracy on its seeded block split of the patches,
and pixel by pixel (``tasks.polar.generalisation``) against the truth rasters of the scenes of a
later winter day B (temporal generalisation), of another generated region (other seed and area,
``--region-bbox``) and of a July day (melt season: wet snow on the ice), each generated at
``--test-size`` px (day B under the training config when that is the training size). Rows per
run, and mean +- sample SD (min..max) over seeds, go to the JSON and the console
(``bench/results/polar_models[_full|_cpu_table].json``); learning curves and confusion matrices
of the first seed are copied to ``bench/results/model_quality/[full/|cpu_table/]`` (not for
--quick).

Presets (explicit flags override them):
  (none)       the CPU-sized run reported in bench/RESULTS.md (1,200 px scenes, 2 days x 1 scene,
               80 patches per class, 2 epochs, batch 32, 2 seeds; 400 px test scenes)
  --cpu-table  the issue's CPU variant: 2,000 px scenes, 2 days x 2 scenes, 300 per class,
               5 epochs, 3 seeds (estimated <= 3 h on 2 idle cores)
  --full       the GPU grid for `make paper-tables`: 4,000 px scenes, 4 days x 2 scenes, 5,000 per
               class, 30 epochs (early stopping patience 5), 3 seeds, batch 256
  --quick      smoke run: one 400 px scene, 1 epoch, binary, ad-hoc CNN + modified VGG-16 32 px at
               1/4 width, one seed, day B only (its own output folder; not a quality figure)

Headline ratio: the best VGG variant's / the ad-hoc CNN's mean binary validation accuracy (no goal,
measured). ``--resume`` keeps the runs already in ``runs.jsonl`` of the output folder;
``--report-only`` summarises them without training (runs not done are listed as missing).

    .venv/bin/python bench/polar_models.py [--cpu-table | --full | --quick] [--seeds 2]
        [--epochs 2] [--size 1200] [--days 2] [--scenes 1] [--max-per-class 100]
        [--vgg-width 1] [--imagenet-weights vgg16.pth] [--resume]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "polar_models"
PNG_DIR = REPO / "bench" / "results" / "model_quality"
sys.path.insert(0, str(REPO / "bench"))

from common import add_quick_flag, report  # noqa: E402

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"size": 1200, "days": 2, "scenes": 1, "epochs": 2, "seeds": 2,
                "max_per_class": 80, "vgg_width": 1.0, "patience": 3, "batch_size": 32,
                "test_size": 400},
    "cpu_table": {"size": 2000, "days": 2, "scenes": 2, "epochs": 5, "seeds": 3,
                  "max_per_class": 300, "vgg_width": 1.0, "patience": 3, "batch_size": 64,
                  "test_size": 900},
    "full": {"size": 4000, "days": 4, "scenes": 2, "epochs": 30, "seeds": 3,
             "max_per_class": 5000, "vgg_width": 1.0, "patience": 5, "batch_size": 256,
             "test_size": 2000},
    "quick": {"size": 400, "days": 1, "scenes": 1, "epochs": 1, "seeds": 1,
              "max_per_class": 50, "vgg_width": 0.25, "patience": 1, "batch_size": 64,
              "test_size": 400},
}
#: (model, patch px): the paper's Table III rows.
RUNS = [("adhoc_cnn", 32), ("vgg16", 32), ("vgg16_transfer", 32), ("vgg16_modified", 32),
        ("vgg16_modified", 20)]
SCHEMES = ("binary", "five_class")
FIRST_DAY = dt.date(2026, 1, 10)
#: A July day: the generator draws melt-season scenes (wet snow on the ice) from June to August.
MELT_DAY = "2026-07-15"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="the GPU grid (make paper-tables)")
    group.add_argument("--cpu-table", action="store_true", help="the issue's 3-seed CPU variant")
    for name in ("size", "days", "scenes", "epochs", "seeds", "max_per_class", "patience",
                 "batch_size"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--vgg-width", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default 2; --full: all cores)")
    parser.add_argument("--imagenet-weights", default=None,
                        help="torchvision VGG-16 state dict for vgg16_transfer (else: the other "
                        "scheme's VGG-16 of the same seed)")
    parser.add_argument("--region-bbox", type=float, nargs=4, default=[-150.0, 72.0, -130.0, 77.0],
                        help="lon_min lat_min lon_max lat_max of the other region (default: "
                        "Beaufort Sea; training scenes are drawn in the Fram Strait / Barents Sea)")
    parser.add_argument("--test-size", type=int, default=None,
                        help="scene edge (px) of the day-B, other-region and melt test scenes")
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help=f"comma-separated subset of {list(SCHEMES)}")
    parser.add_argument("--models", default=None,
                        help="comma-separated subset of the rows as model:patch (default: all: "
                        + ",".join(f"{m}:{p}" for m, p in RUNS) + ")")
    parser.add_argument("--resume", action="store_true", help="keep finished runs of runs.jsonl")
    parser.add_argument("--report-only", action="store_true",
                        help="summarise the runs of runs.jsonl (a stopped run) without training")
    parser.add_argument("--out", type=Path, default=None)
    add_quick_flag(parser)
    args = parser.parse_args()
    preset = ("quick" if args.quick else "full" if args.full else
              "cpu_table" if args.cpu_table else "default")
    for key, value in PRESETS[preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.preset = preset
    args.schemes = tuple(s for s in args.schemes.split(",") if s)
    rows = {f"{m}:{p}": (m, p) for m, p in RUNS}
    chosen = args.models.split(",") if args.models else list(rows)
    unknown = [c for c in chosen if c not in rows] + [s for s in args.schemes if s not in SCHEMES]
    if unknown:
        parser.error(f"--models / --schemes: unknown {unknown}; rows: {list(rows)}, "
                     f"schemes: {list(SCHEMES)}")
    args.runs = [rows[c] for c in chosen]
    if args.threads is None:
        args.threads = (os.cpu_count() or 2) if args.full else 2
    if args.out is None:
        args.out = OUT.with_name(f"polar_models_{preset}") if preset != "default" else OUT
    args.out = args.out.resolve()  # EEFLOW_HOME: a relative data root would nest under it
    return args


def _base(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data_root": str(args.out / "data"), "seed": 42,
        "dask": {"cluster": "local", "n_workers": 2},
        "ingest": {"generator": {"lines": args.size, "samples": args.size,
                                 "scenes_per_day": args.scenes}},
        "patches": {"sizes": [32, 20], "stride": 16, "min_purity": 0.85,
                    "max_per_class": args.max_per_class,
                    "class_scheme": "five_class", "dataset_version": "bench"},
        "train": {"epochs": args.epochs, "early_stopping_patience": args.patience,
                  "accelerator": "auto", "batch_size": args.batch_size},
    }


def _plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run in order, seed by seed: first the rows of the paper's ordering (VGG-16, ad-hoc
    CNN, modified VGG-16 at 32 px) for both schemes, then VGG-16 transfer (it starts from the other
    scheme's VGG-16 of the same seed) and the modified VGG-16 at 20 px."""
    runs = args.runs if not args.quick else [RUNS[0], RUNS[3]]
    schemes = args.schemes if not args.quick else ("binary",)
    first = [("vgg16", 32), ("adhoc_cnn", 32), ("vgg16_modified", 32)]
    plan = []
    for seed in range(args.seeds):
        ordered = [(s, m, p) for s in schemes for m, p in first if (m, p) in runs]
        ordered += [(s, m, p) for s in schemes for m, p in runs if (m, p) not in first]
        for scheme, model, patch in ordered:
            plan.append({"seed": 42 + seed, "scheme": scheme, "model": model, "patch": patch})
    return plan


def _train_one(args: argparse.Namespace, base: dict[str, Any], run: dict[str, Any],
               datasets: dict[int, str], done: list[dict[str, Any]]) -> dict[str, Any]:
    from tasks.config.polar import PolarConfig
    from tasks.polar.evaluate import evaluate_model
    from tasks.polar.train import train_model

    model, size, scheme = run["model"], run["patch"], run["scheme"]
    train: dict[str, Any] = {**base["train"], "model": model, "patch_size": size,
                             "class_scheme": scheme, "augment": model != "adhoc_cnn"}
    if model != "adhoc_cnn":
        train["width_multiplier"] = args.vgg_width
    if model == "vgg16_transfer":
        if args.imagenet_weights:
            train["imagenet_weights"] = args.imagenet_weights
        else:
            other = next((r for r in done if r["model"] == "vgg16" and r["seed"] == run["seed"]
                          and r["scheme"] != scheme), None)
            if other is not None:
                train["pretrained_checkpoint"] = other["model_dir"]
    cfg = PolarConfig.model_validate({**base, "seed": run["seed"], "train": train})
    t = time.perf_counter()
    result = train_model(cfg, Path(datasets[size]))
    seconds = time.perf_counter() - t
    model_dir = Path(result["model_dir"])
    val = evaluate_model(model_dir, Path(datasets[size]), cfg=cfg)["metrics"]
    return {**run, "val_acc": val["accuracy"], "val_macro_f1": val["macro_f1"],
            "n_val": val["n_samples"], "epochs": result["epochs"]["train"],
            "train_s": round(seconds, 1), "width": train.get("width_multiplier", 1.0),
            "start": train.get("imagenet_weights") or train.get("pretrained_checkpoint"),
            "model_dir": str(model_dir), "cfg": cfg}


def _transfer(args: argparse.Namespace, row: dict[str, Any], train_days: list[str],
              test_day: str) -> None:
    from tasks.polar.generalisation import evaluate_transfer

    cfg = row.pop("cfg")
    model_dir = Path(row["model_dir"])
    small = {"ingest.generator.lines": min(args.size, args.test_size),
             "ingest.generator.samples": min(args.size, args.test_size)}
    same = {} if args.test_size >= args.size else small
    tests: list[tuple[str, str, dict[str, Any]]] = [("day_b", test_day, same)]
    if not args.quick:
        tests.append(("region", test_day, {**small, "seed": 4242,
                                           "ingest.aoi_bbox": list(args.region_bbox)}))
        tests.append(("melt", MELT_DAY, {**small, "seed": 4343}))
    for key, day, overrides in tests:
        t = time.perf_counter()
        result = evaluate_transfer(cfg, train_days, [day], test_overrides=overrides,
                                   model_dir=model_dir, name=key)
        row[f"{key}_acc"] = result["test"]["accuracy"]
        row[f"{key}_macro_f1"] = result["test"]["macro_f1"]
        row[f"{key}_f1"] = result["test"]["f1"]
        row[f"{key}_n"] = result["test"]["n_samples"]
        row[f"{key}_s"] = round(time.perf_counter() - t, 1)


def _spread(values: list[float]) -> dict[str, float | int]:
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for scheme in SCHEMES:
        for model, patch in RUNS:
            mine = [r for r in rows if (r["scheme"], r["model"], r["patch"]) ==
                    (scheme, model, patch)]
            if not mine:
                continue
            entry: dict[str, Any] = {"scheme": scheme, "model": model, "patch": patch,
                                     "seeds": [r["seed"] for r in mine]}
            for key in ("val_acc", "val_macro_f1", "day_b_acc", "region_acc", "melt_acc",
                        "train_s"):
                values = [r[key] for r in mine if r.get(key) is not None]
                if values:
                    entry[key] = _spread(values)
            out.append(entry)
    return out


def _ordering(summary: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Whether mean ``key`` orders modified VGG-16 (32 px) > VGG-16 > ad-hoc CNN, per scheme."""
    verdict = {}
    for scheme in SCHEMES:
        means = {(e["model"], e["patch"]): e[key]["mean"] for e in summary
                 if e["scheme"] == scheme and key in e}
        need = [("vgg16_modified", 32), ("vgg16", 32), ("adhoc_cnn", 32)]
        if all(n in means for n in need):
            a, b, c = (means[n] for n in need)
            verdict[scheme] = {"holds": a > b > c, "modified": a, "vgg16": b, "adhoc": c}
    return verdict


def _pct(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.1%}"
    return f"{s['mean']:.1%} +- {s['sd']:.1%} ({s['min']:.1%}..{s['max']:.1%})"


def _print_table(summary: list[dict[str, Any]]) -> None:
    print("| scheme | model | patch | validation acc | day B acc | other region acc | "
          "melt-season day acc | val macro F1 | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in summary:
        f1 = e["val_macro_f1"]["mean"] if "val_macro_f1" in e else float("nan")
        print(f"| {e['scheme']} | {e['model']} | {e['patch']} | {_pct(e.get('val_acc'))} | "
              f"{_pct(e.get('day_b_acc'))} | {_pct(e.get('region_acc'))} | "
              f"{_pct(e.get('melt_acc'))} | {f1:.3f} | {e['train_s']['mean']:.0f} |")


def _run_name(args: argparse.Namespace) -> str:
    """The JSON / PNG name: the preset's (polar_models, polar_models_cpu_table, ...), or the
    ``--out`` folder's name when it is not the preset's folder (another run beside it)."""
    name = "polar_models" if args.preset in ("default", "quick") else f"polar_models_{args.preset}"
    preset_out = OUT.with_name(f"polar_models_{args.preset}") if args.preset != "default" else OUT
    return name if args.out.resolve() == preset_out.resolve() else args.out.name


def _copy_pngs(rows: list[dict[str, Any]], name: str) -> list[str]:
    """Learning curve and confusion matrices (validation, day B, region) of each first-seed run."""
    folder = PNG_DIR if name == "polar_models" else PNG_DIR / name.removeprefix("polar_models_")
    folder.mkdir(parents=True, exist_ok=True)
    first = min(r["seed"] for r in rows)
    copied = []
    for r in rows:
        if r["seed"] != first:
            continue
        stem = f"polar_{r['scheme']}_{r['model']}_{r['patch']}"
        model_dir = Path(r["model_dir"])
        for src, suffix in ((model_dir / "learning_curve.png", "learning_curve"),
                            (model_dir / "evaluation" / "confusion_matrix.png", "confusion_val"),
                            (model_dir / "transfer" / "day_b" / "confusion_matrix.png",
                             "confusion_day_b"),
                            (model_dir / "transfer" / "region" / "confusion_matrix.png",
                             "confusion_region"),
                            (model_dir / "transfer" / "melt" / "confusion_matrix.png",
                             "confusion_melt")):
            if src.exists():
                dst = folder / f"{stem}_{suffix}.png"
                shutil.copyfile(src, dst)
                copied.append(str(dst.relative_to(REPO)))
    return copied


def _prepare(args: argparse.Namespace, base: dict[str, Any]) -> tuple[dict[int, str],
                                                                        list[str], str, float]:
    from tasks.config.polar import PolarConfig
    from tasks.polar.generalisation import prepare_days
    from tasks.polar.patches import run_patches

    cfg = PolarConfig.model_validate(base)
    train_days = [(FIRST_DAY + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    test_day = (FIRST_DAY + dt.timedelta(days=args.days + 2)).isoformat()
    t0 = time.perf_counter()
    scenes, labels = prepare_days(cfg, train_days)
    manifest = args.out / "data" / "polar" / "patches" / "bench" / "manifest.json"
    if args.resume and manifest.exists():
        data = json.loads(manifest.read_text())
        datasets = {int(s): str(manifest.parent / f"patches_{s}.zarr") for s in (32, 20)}
        n_patches = data.get("n_patches")
    else:
        data = run_patches(cfg, scenes, labels)
        datasets = {int(k): str(v) for k, v in data["datasets"].items()}
        n_patches = data["n_patches"]
    print(f"data: {len(scenes)} training scenes, patches {n_patches} in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return datasets, train_days, test_day, time.perf_counter() - t0


def _reset_stale_data(args: argparse.Namespace) -> None:
    """Remove generated data made with other data settings (the stages reuse a day's outputs)."""
    stamp = args.out / "data_settings.json"
    keys = ("size", "days", "scenes", "max_per_class", "test_size", "region_bbox")
    settings = {k: getattr(args, k) for k in keys}
    if stamp.exists() and json.loads(stamp.read_text()) != settings:
        print(f"data settings changed ({stamp}): generating the data again", flush=True)
        shutil.rmtree(args.out / "data", ignore_errors=True)
        (args.out / "runs.jsonl").unlink(missing_ok=True)
    stamp.write_text(json.dumps(settings))


def main() -> None:
    args = _args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("EEFLOW_HOME", str(args.out))
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    if not args.resume and not args.report_only:
        shutil.rmtree(args.out / "data" / "polar" / "models", ignore_errors=True)
        log.unlink(missing_ok=True)
    if not args.report_only:
        _reset_stale_data(args)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    base = _base(args)
    started = time.perf_counter()
    if args.report_only:
        train_days = [(FIRST_DAY + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
        test_day = (FIRST_DAY + dt.timedelta(days=args.days + 2)).isoformat()
        datasets: dict[int, str] = {}
        data_s: float | None = None
    else:
        datasets, train_days, test_day, data_s = _prepare(args, base)
    missing = [run for run in _plan(args)
               if not any(all(r[k] == run[k] for k in run) for r in rows)]
    for run in [] if args.report_only else list(missing):
        missing.remove(run)
        row = _train_one(args, base, run, datasets, rows)
        _transfer(args, row, train_days, test_day)
        rows.append(row)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_f1")}), flush=True)
    summary = _summary(rows)
    _print_table(summary)
    ordering = {key: _ordering(summary, key)
                for key in ("val_acc", "day_b_acc", "region_acc", "melt_acc")}
    print("ordering modified VGG-16 > VGG-16 > ad-hoc CNN:", json.dumps(ordering), flush=True)
    pngs = [] if args.quick else _copy_pngs(rows, _run_name(args))
    binary = {(e["model"], e["patch"]): e["val_acc"]["mean"] for e in summary
              if e["scheme"] == "binary"}
    adhoc = binary.get(("adhoc_cnn", 32))
    best_vgg = max((v for k, v in binary.items() if k[0] != "adhoc_cnn"), default=None)
    settings = {k: getattr(args, k) for k in ("preset", "size", "days", "scenes", "epochs",
                                               "seeds", "max_per_class", "vgg_width", "patience",
                                               "batch_size", "test_size", "threads", "region_bbox",
                                               "imagenet_weights")}
    report(_run_name(args), best_vgg / adhoc if adhoc and best_vgg else None,
           "none (measured: model quality)", None,
           {"settings": settings, "train_days": train_days, "test_day": test_day,
            "data_s": None if data_s is None else round(data_s, 1),
            "runs_s": round(time.perf_counter() - started, 1), "missing_runs": missing,
            "summary": summary, "ordering": ordering, "rows": rows, "pngs": pngs,
            "accelerator": "cuda" if torch.cuda.is_available() else "cpu"},
           baseline="the ad-hoc CNN (mean binary validation accuracy, same data and seeds)",
           quick=args.quick)


if __name__ == "__main__":
    main()
