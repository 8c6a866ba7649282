"""Build a sea-ice classifier by name (the names of ``train.model`` in configs/polar.yaml)."""

from __future__ import annotations

from tasks.models.adhoc_cnn import AdhocCNN
from tasks.models.ice_net import IceNet
from tasks.models.vgg16 import HEAD_WIDTHS, VGG16, VGG16Modified

#: model name -> class; ``vgg16_transfer`` is VGG-16 started from a pretrained checkpoint.
ICE_MODELS: dict[str, type[IceNet]] = {
    "adhoc_cnn": AdhocCNN,
    "vgg16": VGG16,
    "vgg16_transfer": VGG16,
    "vgg16_modified": VGG16Modified,
}


def build_model(name: str, n_classes: int, in_channels: int, patch_size: int,
                dropout: float = 0.5, width_multiplier: float = 1.0, *,
                batch_norm: bool = False,
                head_widths: tuple[int, ...] = HEAD_WIDTHS) -> IceNet:
    """Return an untrained model.

    Args:
        name: one of :data:`ICE_MODELS`.
        n_classes: outputs (5 for ``five_class``, 2 for ``binary``).
        in_channels: input bands (e.g. 3 for HH, HV, incidence).
        patch_size: patch edge in pixels (20 or 32).
        dropout: dropout probability of the fully connected layers.
        width_multiplier: scales every layer's width (1.0 = the published architecture; small
            values give tiny models for tests).
        batch_norm: VGG only: a batch norm after every convolution (``train.vgg_batch_norm``).
        head_widths: VGG only: fully connected layers before the class layer (the paper's
            1024 / 512; ``vgg16.LEGACY_HEAD_WIDTHS`` rebuilds models trained before).

    """
    if name not in ICE_MODELS:
        raise ValueError(f"model {name!r} unknown; allowed: {sorted(ICE_MODELS)}")
    if n_classes < 2 or in_channels < 1:
        raise ValueError(
            f"need n_classes >= 2 and in_channels >= 1, got {n_classes}, {in_channels}"
        )
    network = ICE_MODELS[name]
    if issubclass(network, VGG16):
        return network(n_classes=n_classes, in_channels=in_channels, patch_size=patch_size,
                       dropout=dropout, width_multiplier=width_multiplier,
                       batch_norm=batch_norm, head_widths=tuple(head_widths))
    if not issubclass(network, AdhocCNN):
        raise TypeError(f"{network.__name__} is neither the ad-hoc CNN nor a VGG-16")
    return network(n_classes=n_classes, in_channels=in_channels, patch_size=patch_size,
                   dropout=dropout, width_multiplier=width_multiplier)
