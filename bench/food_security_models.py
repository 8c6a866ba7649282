"""Model quality on the generated crop benchmark: a Table-IV-style comparison (issue 4).

Generates one agronomic year with the config's generator (default ``configs/food_security.yaml``:
3 tiles, train/val/test split by tile), runs harmonise -> labels -> samples, then trains the
weighted two-phase LSTM, the unweighted LSTM (the baseline of the weighting, same seeds and
budget), TempCNN and StarRNN, and scores each on every labelled pixel of the held-out tile:
overall accuracy, median F1 and the F1 of the three rarest classes. Also prints the wall time per
model and the peak RSS. Headline ratio: weighted LSTM / unweighted LSTM median F1 on the held-out
tile (the unweighted LSTM is the baseline of the weighting; no goal, measured). ``--quick``: 64 px
tiles, one epoch per phase, the two LSTMs only (a smoke run, not a quality figure).

Run: ``.venv/bin/python bench/food_security_models.py [--epochs1 6 --epochs2 3] [--quick]``
Outputs land in ``bench/out/food_security_models/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import add_quick_flag, report  # noqa: E402

from tasks.config.common import load_config  # noqa: E402
from tasks.food_security.evaluate import (  # noqa: E402
    comparison_markdown,
    comparison_table,
    composites_path,
    labels_path,
    tile_confusion,
)
from tasks.food_security.predict import load_crop_model  # noqa: E402
from tasks.food_security.train import model_dir_for, train_crop_model  # noqa: E402
from tasks.trainers.scores import classification_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(REPO / "configs" / "food_security.yaml"))
    parser.add_argument("--run-date", default="2017-09-01")
    parser.add_argument("--epochs1", type=int, default=6)
    parser.add_argument("--epochs2", type=int, default=3)
    parser.add_argument("--max-per-class", type=int, default=3000)
    parser.add_argument("--reuse-data", action="store_true", help="skip the data stages")
    add_quick_flag(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = REPO / "bench" / "out" / ("food_security_models" + ("_quick" if args.quick else ""))
    overrides = {
        "data_root": str(out), "train.epochs_phase1": args.epochs1,
        "train.epochs_phase2": args.epochs2, "train.accelerator": "cpu",
        "samples.max_per_class": args.max_per_class, "dask.cluster": "synchronous",
    }
    if args.quick:
        overrides.update({"train.epochs_phase1": 1, "train.epochs_phase2": 1,
                          "samples.max_per_class": 200, "ingest.generator.size_px": 64})
    cfg = load_config(args.config, overrides)
    timings: dict[str, float] = {}
    if not args.reuse_data:
        from tasks.food_security.harmonise import run_harmonise
        from tasks.food_security.labels import run_labels
        from tasks.food_security.samples import run_samples
        from tasks.sentinel2.generator import run_generate

        for name, stage in (("generate", run_generate), ("harmonise", run_harmonise),
                            ("labels", run_labels), ("samples", run_samples)):
            started = time.perf_counter()
            summary = stage(cfg, args.run_date)
            timings[name] = time.perf_counter() - started
            if name == "samples":
                print(json.dumps({s: v.get("n_samples") for s, v in summary["splits"].items()}))
    runs = {"lstm": ("lstm", True), "lstm_unweighted": ("lstm", False),
            "tempcnn": ("tempcnn", True), "starrnn": ("starrnn", True)}
    if args.quick:
        runs = {k: runs[k] for k in ("lstm", "lstm_unweighted")}
    results = {}
    class_names: list[str] = []
    for label, (model, weighted) in runs.items():
        cfg.train.weighted = weighted
        folder = model_dir_for(cfg, args.run_date, label)
        started = time.perf_counter()
        trained = train_crop_model(cfg, args.run_date, model=model, output_dir=folder)
        timings[f"train_{label}"] = time.perf_counter() - started
        module, meta = load_crop_model(folder)
        class_names = meta["classes"]
        confusion = tile_confusion(
            module, meta, composites_path(cfg, args.run_date, cfg.evaluate.tile),
            labels_path(cfg, args.run_date, cfg.evaluate.tile),
        )
        results[label] = {**classification_scores(confusion), "epochs": trained["epochs"]}
    rows = comparison_table(results, class_names)
    for row in rows:
        if row["model"] == "lstm_unweighted":
            row["label"] = "LSTM (unweighted, baseline)"
    table = comparison_markdown(rows, cfg.evaluate.tile, "2017-09_2018-08", [])
    print(table)
    support = np.asarray(next(iter(results.values()))["support"])
    print(json.dumps({
        "epochs": {k: v["epochs"] for k, v in results.items()},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "test_support": {class_names[i]: int(s) for i, s in enumerate(support) if s},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=2))
    (out / "comparison.md").write_text(table)
    f1 = {k: float(v["median_f1"]) for k, v in results.items() if "median_f1" in v}
    report("food_security_models", f1["lstm"] / f1["lstm_unweighted"] if f1.get(
               "lstm_unweighted") else None, "none (measured: model quality)", None,
           {"scores": {k: {m: v[m] for m in ("overall_accuracy", "median_f1") if m in v}
                       for k, v in results.items()},
            "seconds": timings, "quick_sizes": args.quick},
           baseline="the same LSTM trained without class weights (median F1, held-out tile)",
           quick=args.quick)


if __name__ == "__main__":
    main()
