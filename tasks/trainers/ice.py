"""Lightning module of the sea-ice patch classifiers (ad-hoc CNN, VGG-16, modified VGG-16).

The networks are in :mod:`tasks.models` (:func:`tasks.models.ice_zoo.build_model`); this module
adds the loss (cross-entropy, optionally class-weighted), accuracy logging and AdamW. The network
is the attribute ``net``, so checkpoint keys are ``net.*`` (read by
:func:`tasks.models.transfer.load_pretrained`); checkpoints written when this class lived in
``tasks.polar.train`` load unchanged.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from tasks.models.ice_zoo import build_model


class IceClassifier(L.LightningModule):
    """Lightning wrapper: cross-entropy, accuracy, AdamW with weight decay."""

    def __init__(self, model_name: str, n_classes: int, in_channels: int, patch_size: int,
                 dropout: float = 0.5, learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                 width_multiplier: float = 1.0,
                 class_weights: list[float] | None = None, batch_norm: bool = False) -> None:
        super().__init__()
        # batch_norm is saved only when on: the hparams (hparams.yaml, checkpoints) of models
        # without it stay as they were before the option existed; the default rebuilds them.
        self.save_hyperparameters(ignore=None if batch_norm else ["batch_norm"])
        self.net = build_model(model_name, n_classes, in_channels, patch_size, dropout,
                               width_multiplier, batch_norm=batch_norm)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss = nn.CrossEntropyLoss(weight=weight)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of normalised patches (N, band, size, size)."""
        return self.net(patches)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        patches, targets = batch
        logits = self(patches)
        loss = self.loss(logits, targets)
        acc = (logits.argmax(dim=1) == targets).float().mean()
        # sync_dist: under DDP the epoch value is the mean over every process's shard (a no-op
        # on one device), so early stopping and checkpointing see the whole set's figure.
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(targets), sync_dist=True)
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(targets), sync_dist=True)
        return loss

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        """Compute the training loss of one batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Log validation loss and accuracy of one batch."""
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW; weight decay is the L2 regularisation of the paper's ad-hoc CNN."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams["learning_rate"],
                                 weight_decay=self.hparams["weight_decay"])
