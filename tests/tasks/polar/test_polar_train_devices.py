"""train.devices / precision / strategy reach the polar Lightning Trainer."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from tasks.polar.train import train_model
from tests.tasks.polar.polar_synthetic_scene import tiny_polar_config

torch.set_num_threads(1)


class TrainerSeen(Callback):
    def on_fit_start(self, trainer, pl_module) -> None:
        self.seen = {"strategy": type(trainer.strategy).__name__,
                     "precision": trainer.precision, "devices": trainer.num_devices,
                     "accelerator": type(trainer.accelerator).__name__}


def test_trainer_gets_devices_precision_and_strategy(polar_patch_dataset: dict,
                                                     tmp_path: Path) -> None:
    cfg = tiny_polar_config(tmp_path, train={
        "patch_size": 20, "width_multiplier": 0.125, "accelerator": "cpu", "devices": 1,
        "precision": "bf16-mixed", "strategy": "ddp"})
    seen = TrainerSeen()
    train_model(cfg, Path(polar_patch_dataset["datasets"][20]), callbacks=[seen],
                trainer_kwargs={"fast_dev_run": True})
    assert seen.seen == {"strategy": "DDPStrategy", "precision": "bf16-mixed", "devices": 1,
                         "accelerator": "CPUAccelerator"}
