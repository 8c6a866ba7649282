"""train.devices / precision / strategy reach the crop Lightning Trainer."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback

from tasks.food_security.train import train_crop_model
from tests.tasks.food_security.conftest_ml import tiny_config, write_sample_year

RUN_DATE = "2017-09-01"


class TrainerSeen(Callback):
    def on_fit_start(self, trainer, pl_module) -> None:
        self.seen = {"strategy": type(trainer.strategy).__name__,
                     "precision": trainer.precision, "devices": trainer.num_devices,
                     "accelerator": type(trainer.accelerator).__name__}


def test_trainer_gets_devices_precision_and_strategy(tmp_path: Path) -> None:
    write_sample_year(tmp_path, RUN_DATE, n_train=120, n_val=40, n_test=20)
    cfg = tiny_config(tmp_path, epochs_phase1=1, epochs_phase2=0, devices=1,
                      precision="bf16-mixed", strategy="ddp")
    seen = TrainerSeen()
    result = train_crop_model(cfg, RUN_DATE, callbacks=[seen])
    assert seen.seen == {"strategy": "DDPStrategy", "precision": "bf16-mixed", "devices": 1,
                         "accelerator": "CPUAccelerator"}
    assert 0.0 <= result["monitor_value"] <= 1.0
