"""Lightning module shared by the crop-type models (LSTM, TempCNN, StarRNN).

The module owns the input normalisation (train-split band mean / std from the samples zarr, kept
as buffers so a checkpoint is self-contained), the optional class weights of phase 1 of the
weighted two-phase procedure, RMSprop, and the validation scores (loss, overall accuracy, median
and macro F1 over the classes present) computed from a confusion matrix accumulated per epoch.
The networks are in :mod:`tasks.models` (:func:`tasks.models.crop_zoo.build_crop_network`).

Checkpoints hold only tensors and plain hyper-parameters (no class path), so those written when
this module was ``tasks.models.crop_classifier`` load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from tasks.models.crop_zoo import build_crop_network
from tasks.trainers.scores import classification_scores


class DecoupledRMSprop(torch.optim.RMSprop):
    """RMSprop with decoupled weight decay (Loshchilov & Hutter 2019).

    Before each RMSprop step every weight is multiplied by ``1 - lr * decoupled_weight_decay``,
    independent of the gradient scaling, as AdamW does for Adam.
    """

    def __init__(
        self, params: Any, lr: float, decoupled_weight_decay: float, **kwargs: Any
    ) -> None:
        super().__init__(params, lr=lr, weight_decay=0.0, **kwargs)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = decoupled_weight_decay

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Decay the weights, then take the RMSprop step."""
        for group in self.param_groups:
            factor = 1.0 - group["lr"] * group["decoupled_weight_decay"]
            for param in group["params"]:
                if param.grad is not None:
                    param.mul_(factor)
        return super().step(closure)


class CropClassifier(L.LightningModule):
    """Pixel time-series crop classifier.

    Args:
        model_name: ``lstm``, ``tempcnn`` or ``starrnn``.
        n_bands: spectral bands per time step.
        n_classes: output classes.
        band_mean: per-band mean of the train split (reflectance units), length ``n_bands``.
        band_std: per-band standard deviation of the train split.
        n_timesteps: months per series (12).
        layers: recurrent layers.
        cells: hidden units per recurrent layer.
        dropout: dropout rate.
        learning_rate: RMSprop learning rate (paper: 1e-3).
        weight_decay: RMSprop weight decay (paper: 0.4).
        weight_decay_mode: ``decoupled`` shrinks weights by ``lr * weight_decay`` per step
            (AdamW-style, :class:`DecoupledRMSprop`); ``l2`` adds ``weight_decay * w`` to the
            gradient (torch's RMSprop), which at 0.4 dominates the adaptive step and stops learning.

    Input batches are ``(x, y)`` with ``x`` float32 (batch, time, band) un-normalised reflectance
    and ``y`` int64 (batch,) class indices.

    """

    # buffers (register_buffer): torch types module attributes as Tensor | Module
    band_mean: torch.Tensor
    band_std: torch.Tensor
    class_weights: torch.Tensor

    def __init__(
        self,
        model_name: str,
        n_bands: int,
        n_classes: int,
        band_mean: Sequence[float],
        band_std: Sequence[float],
        n_timesteps: int = 12,
        layers: int = 2,
        cells: int = 100,
        dropout: float = 0.2,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.4,
        weight_decay_mode: str = "decoupled",
    ) -> None:
        super().__init__()
        if weight_decay_mode not in ("decoupled", "l2"):
            raise ValueError(
                f"weight_decay_mode must be 'decoupled' or 'l2', got {weight_decay_mode!r}"
            )
        if len(band_mean) != n_bands or len(band_std) != n_bands:
            raise ValueError(
                f"band_mean/band_std need {n_bands} values, got {len(band_mean)}/{len(band_std)}"
            )
        if any(s <= 0 or not np.isfinite(s) for s in band_std):
            raise ValueError(f"band_std must be positive and finite, got {list(band_std)}")
        self.save_hyperparameters()
        self.network = build_crop_network(
            model_name, n_bands, n_classes, n_timesteps, layers, cells, dropout
        )
        self.register_buffer("band_mean", torch.tensor(list(band_mean), dtype=torch.float32))
        self.register_buffer("band_std", torch.tensor(list(band_std), dtype=torch.float32))
        self.register_buffer("class_weights", torch.ones(n_classes, dtype=torch.float32))
        self.use_class_weights = False
        self._val_confusion = torch.zeros(n_classes, n_classes, dtype=torch.long)
        self._val_loss_sum = 0.0
        self._val_count = 0

    def set_class_weights(self, weights: Sequence[float] | None) -> None:
        """Weight the training loss per class (phase 1); ``None``: the plain loss (phase 2)."""
        if weights is None:
            self.use_class_weights = False
            self.class_weights.fill_(1.0)
            return
        values = torch.as_tensor(list(weights), dtype=torch.float32)
        if values.shape != self.class_weights.shape or bool((values < 0).any()):
            raise ValueError(f"class weights need {self.hparams['n_classes']} values >= 0")
        self.class_weights.copy_(values)
        self.use_class_weights = True

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise (batch, time, band) reflectance with the train-split band statistics."""
        return (x - self.band_mean) / self.band_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (batch, class) logits of un-normalised (batch, time, band) reflectance."""
        return self.network(self.normalise(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Return (batch, class) softmax probabilities (eval mode is the caller's job)."""
        return torch.softmax(self(x), dim=-1)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        """Cross-entropy, weighted by the class weights in phase 1."""
        x, y = batch
        logits = self(x)
        weight = self.class_weights if self.use_class_weights else None
        loss = nn.functional.cross_entropy(logits, y, weight=weight)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_validation_epoch_start(self) -> None:
        """Reset the epoch's confusion matrix."""
        n = self.hparams["n_classes"]
        self._val_confusion = torch.zeros(n, n, dtype=torch.long)
        self._val_loss_sum = 0.0
        self._val_count = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Accumulate the plain (unweighted) loss and the confusion matrix."""
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        self._val_loss_sum += float(loss)
        self._val_count += len(y)
        n = self.hparams["n_classes"]
        pairs = y.cpu() * n + logits.argmax(dim=-1).cpu()
        self._val_confusion += torch.bincount(pairs, minlength=n * n).reshape(n, n)

    def on_validation_epoch_end(self) -> None:
        """Log val_loss, val_accuracy, val_median_f1 and val_macro_f1.

        Callbacks read them from ``on_validation_end`` on (as Optuna's pruning callback does);
        callbacks' own ``on_validation_epoch_end`` runs before this hook.
        """
        confusion, loss_sum, count = self._gathered_validation()
        if count == 0:
            return
        scores = classification_scores(confusion.numpy())
        self.log("val_loss", loss_sum / count, prog_bar=True)
        self.log("val_accuracy", scores["overall_accuracy"], prog_bar=True)
        self.log("val_median_f1", scores["median_f1"], prog_bar=True)
        self.log("val_macro_f1", scores["macro_f1"])

    def _gathered_validation(self) -> tuple[torch.Tensor, float, int]:
        """Return the epoch's confusion matrix, loss sum and count, summed over DDP processes.

        Under a multi-process strategy each process validates its own shard of the validation set
        (``DistributedSampler``); the scores are computed from the summed matrix, so every process
        logs the scores of the whole set (a mean of per-shard F1 scores would not be the F1).
        """
        confusion = self._val_confusion
        loss_sum, count = self._val_loss_sum, self._val_count
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            packed = torch.cat([confusion.flatten().to(torch.float64),
                                torch.tensor([loss_sum, count], dtype=torch.float64)])
            packed = packed.to(self.device)
            torch.distributed.all_reduce(packed)
            packed = packed.cpu()
            n = confusion.shape[0]
            confusion = packed[: n * n].round().to(torch.long).reshape(n, n)
            loss_sum, count = float(packed[-2]), int(round(float(packed[-1])))
        return confusion, loss_sum, count

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """RMSprop with the configured learning rate and (decoupled or L2) weight decay."""
        if self.hparams["weight_decay_mode"] == "l2":
            return torch.optim.RMSprop(
                self.parameters(), lr=self.hparams["learning_rate"],
                weight_decay=self.hparams["weight_decay"],
            )
        return DecoupledRMSprop(
            self.parameters(), lr=self.hparams["learning_rate"],
            decoupled_weight_decay=self.hparams["weight_decay"],
        )
