"""Table-III-style model quality on generated Sentinel-1 EW data (validation accuracy, water/ice).

Data: the project's SAFE generator (tasks.sentinel1.generator) through the real pipeline stages
(ingest -> harmonise -> labels -> patches) for --days days with --scenes scenes each; the patch
training set holds 32 and 20 px patches balanced over the five classes. Each model is trained on
the binary (water / ice) scheme with the same seed; validation accuracy is on the model's seeded,
stratified validation split (and written with its confusion matrix to ``evaluation/``).
VGG variants run at --vgg-width of the published channel widths to fit the 2-core CPU budget.

Headline ratio: the best VGG variant's / the ad-hoc CNN's validation accuracy (the small CNN is
the baseline; no goal, measured). ``--quick``: one 400 px scene, one epoch, the ad-hoc CNN and
VGG-16 modified (32 px) only, in its own output folder (a smoke run, not a quality figure).

    .venv/bin/python bench/polar_models.py [--size 2000] [--days 2] [--scenes 2] [--epochs 5]
        [--max-per-class 500] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "polar_models"
sys.path.insert(0, str(REPO / "bench"))

from common import add_quick_flag, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-per-class", type=int, default=500)
    parser.add_argument("--vgg-width", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2)
    add_quick_flag(parser)
    args = parser.parse_args()
    global OUT
    if args.quick:
        OUT = OUT.with_name("polar_models_quick")
        args.size, args.days, args.scenes, args.epochs, args.max_per_class = 400, 1, 1, 1, 50
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("EEFLOW_HOME", str(OUT))
    from tasks.config.polar import PolarConfig
    from tasks.polar import stages
    from tasks.polar.evaluate import evaluate_model
    from tasks.polar.patches import run_patches
    from tasks.polar.train import train_model

    shutil.rmtree(OUT / "data" / "polar" / "models", ignore_errors=True)
    base = {
        "data_root": str(OUT / "data"), "dask": {"cluster": "local", "n_workers": 2},
        "ingest": {"generator": {"lines": args.size, "samples": args.size,
                                 "scenes_per_day": args.scenes}},
        "patches": {"sizes": [32, 20], "stride": 16, "min_purity": 0.85,
                    "max_per_class": args.max_per_class,
                    "class_scheme": "five_class", "dataset_version": "bench"},
        "train": {"class_scheme": "binary", "epochs": args.epochs, "early_stopping_patience": 3,
                  "accelerator": "auto", "batch_size": 64},
    }
    cfg = PolarConfig.model_validate(base)
    scenes, labels = [], []
    t0 = time.perf_counter()
    for day_index in range(args.days):
        day = (dt.date(2026, 1, 10) + dt.timedelta(days=day_index)).isoformat()
        if not list((OUT / "data" / "polar" / "labels" / day).glob("*.zarr")):
            for stage in ("ingest_stage", "harmonise_stage", "labels_stage"):
                getattr(stages, stage)(cfg, day)
        scenes += sorted((OUT / "data" / "polar" / "harmonise" / day).glob("*.zarr"))
        labels += sorted((OUT / "data" / "polar" / "labels" / day).glob("*.zarr"))
    data = run_patches(cfg, scenes, labels)
    print(f"data: {len(scenes)} scenes, patches {data['n_patches']} in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    runs = [
        ("adhoc_cnn", 32, {"augment": False}),
        ("vgg16", 32, {"augment": True, "width_multiplier": args.vgg_width}),
        ("vgg16_transfer", 32, {"augment": True, "width_multiplier": args.vgg_width}),
        ("vgg16_modified", 32, {"augment": True, "width_multiplier": args.vgg_width}),
        ("vgg16_modified", 20, {"augment": True, "width_multiplier": args.vgg_width}),
    ]
    if args.quick:
        runs = [runs[0], runs[3]]
    rows = []
    for model, size, extra in runs:
        run_cfg = PolarConfig.model_validate(
            {**base, "train": {**base["train"], "model": model, "patch_size": size, **extra}})
        t = time.perf_counter()
        result = train_model(run_cfg, Path(data["datasets"][size]))
        seconds = time.perf_counter() - t
        evaluation = evaluate_model(Path(result["model_dir"]), Path(data["datasets"][size]))
        rows.append({"model": model, "patch": size, "val_acc": result["metrics"]["val_acc"],
                     "macro_f1": evaluation["metrics"]["macro_f1"],
                     "epochs": result["epochs"]["train"], "seconds": round(seconds, 0),
                     "width": extra.get("width_multiplier", 1.0),
                     "n_val": evaluation["metrics"]["n_samples"],
                     "model_dir": result["model_dir"]})
        print(json.dumps(rows[-1]), flush=True)
    print("| model | patch (px) | validation accuracy | macro F1 | epochs | train s | width |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['patch']} | {r['val_acc']:.2%} | {r['macro_f1']:.3f} | "
              f"{r['epochs']} | {r['seconds']:.0f} | {r['width']} |")
    (OUT / "result.json").write_text(json.dumps({"patches": data["n_patches"], "rows": rows},
                                                indent=1))
    adhoc = next(r["val_acc"] for r in rows if r["model"] == "adhoc_cnn")
    best_vgg = max(r["val_acc"] for r in rows if r["model"] != "adhoc_cnn")
    report("polar_models", best_vgg / adhoc if adhoc else None,
           "none (measured: model quality)", None,
           {"patches": data["n_patches"], "rows": rows, "size": args.size, "days": args.days},
           baseline="the ad-hoc CNN (validation accuracy, same data and seed)", quick=args.quick)


if __name__ == "__main__":
    main()
