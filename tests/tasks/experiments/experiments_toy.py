"""A tiny use case for the experiments tests: a 2-layer MLP on two noisy Gaussian blobs.

Trains in well under a second per trial on one CPU thread, logs ``val_acc`` and ``val_loss`` per
epoch, writes ``model.ckpt`` + ``model.json`` like the real training functions, and its learning
rate matters (too small: chance accuracy), so searches and pruning have something to find.
Also runnable as a script: ``python experiments_toy.py SEARCH_WORKER root [index]`` (kill tests).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tasks.config.common import StrictModel, UseCaseConfig
from tasks.config.experiments import AblationConfig, RegistryConfig, SearchConfig
from tasks.experiments.trainers import TrainingAdapter
from tasks.storage import atomic_dir, atomic_write_json


class ToyTrain(StrictModel):
    model: Literal["mlp", "linear"] = "mlp"
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    hidden: int = Field(default=8, ge=1, le=256)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    epochs: int = Field(default=4, ge=1, le=100)
    batch_size: int = Field(default=64, ge=1)
    noise: bool = True
    use_second_feature_block: bool = True
    sleep_per_epoch_s: float = 0.0
    monitor: str = "val_acc"


class ToyConfig(UseCaseConfig):
    use_case: Literal["toy"] = "toy"
    train: ToyTrain = ToyTrain()
    search: SearchConfig = SearchConfig()
    ablation: AblationConfig = AblationConfig()
    registry: RegistryConfig = RegistryConfig()


def _data(seed: int, noise: bool, second_block: bool):
    import torch

    g = torch.Generator().manual_seed(1234)
    n, d = 384, 8
    y = torch.randint(0, 2, (n,), generator=g)
    centre = torch.zeros(n, d)
    centre[:, 0] = y * 1.2
    centre[:, 4] = y * 1.2
    x = centre + torch.randn(n, d, generator=g) * (1.0 if noise else 0.3)
    if not second_block:
        x[:, 4:] = 0.0
    return (x[:256], y[:256]), (x[256:], y[256:])


def toy_train(cfg: ToyConfig, callbacks: Sequence[Any], output_dir: Path) -> dict[str, Any]:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    tc = cfg.train
    L.seed_everything(cfg.seed, verbose=False)
    (xt, yt), (xv, yv) = _data(cfg.seed, tc.noise, tc.use_second_feature_block)

    class ToyModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            if tc.model == "mlp":
                self.net = torch.nn.Sequential(
                    torch.nn.Linear(8, tc.hidden), torch.nn.ReLU(),
                    torch.nn.Dropout(tc.dropout), torch.nn.Linear(tc.hidden, 2))
            else:
                self.net = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            logits = self(x)
            self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def on_train_epoch_end(self) -> None:
            if tc.sleep_per_epoch_s:
                time.sleep(tc.sleep_per_epoch_s)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=tc.learning_rate)

    module = ToyModule()
    train_dl = DataLoader(TensorDataset(xt, yt), batch_size=tc.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(cfg.seed))
    val_dl = DataLoader(TensorDataset(xv, yv), batch_size=256)
    with atomic_dir(output_dir) as out:
        trainer = L.Trainer(max_epochs=tc.epochs, callbacks=list(callbacks), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0,
                            accelerator="cpu", deterministic=True)
        trainer.fit(module, train_dl, val_dl)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        trainer.save_checkpoint(out / "model.ckpt", weights_only=True)
        atomic_write_json(out / "model.json", {
            "model": tc.model, "checkpoint": "model.ckpt",
            "normalisation": {"band_mean": [0.0] * 8, "band_std": [1.0] * 8},
            "hyperparameters": tc.model_dump(), "dataset_version": "toy-v1",
            "metrics": {"validation": metrics}, "code_version": "test",
        })
    return {"model_dir": str(output_dir), "metrics": metrics, "monitor": tc.monitor,
            "monitor_value": metrics[tc.monitor]}


def toy_adapter(cfg: ToyConfig) -> TrainingAdapter:
    return TrainingAdapter(use_case="toy", train=toy_train, default_metric=cfg.train.monitor,
                           max_epochs=lambda c: c.train.epochs, dataset="toy-v1")


def fast_train(cfg: ToyConfig, callbacks: Sequence[Any], output_dir: Path) -> dict[str, Any]:
    """No Lightning: sleeps ``epochs x sleep_per_epoch_s`` and scores the learning rate."""
    import math

    time.sleep(cfg.train.epochs * cfg.train.sleep_per_epoch_s)
    output_dir.mkdir(parents=True, exist_ok=True)
    score = 1.0 - abs(math.log10(cfg.train.learning_rate) + 1.0) / 4.0
    return {"model_dir": str(output_dir), "metrics": {"val_acc": score}}


def fast_adapter(cfg: ToyConfig) -> TrainingAdapter:
    return TrainingAdapter(use_case="toy", train=fast_train, default_metric="val_acc",
                           max_epochs=lambda c: c.train.epochs, dataset="toy-v1",
                           lightning=False)


def toy_config(root: Path, **search: Any) -> ToyConfig:
    base = {"n_trials": 4, "sampler": "random", "pruner": "none",
            "space": {"train.learning_rate": {"type": "float", "low": 1e-3, "high": 1.0,
                                              "log": True}}}
    base.update(search)
    return ToyConfig.model_validate({"data_root": str(root), "search": base,
                                     "dask": {"cluster": "synchronous"}})


if __name__ == "__main__":  # worker process for the kill / parallel tests
    import logging

    from tasks.experiments.search import run_search_worker

    logging.basicConfig(level=logging.INFO)
    spec = json.loads(sys.argv[1])
    config = ToyConfig.model_validate(spec["config"])
    make = fast_adapter if spec.get("fast") else toy_adapter
    result = run_search_worker(config, make(config), worker_index=spec.get("index", 0),
                               prepare=spec.get("prepare", True),
                               requeue_running=spec.get("requeue", False))
    print("RESULT " + json.dumps(result, default=str), flush=True)
