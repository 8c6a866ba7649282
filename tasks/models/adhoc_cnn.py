"""The paper's ad-hoc CNN for sea-ice patches.

Three 3x3 convolutions (32, 64, 64) each followed by a 2x2 max-pool, then fully connected
layers of 1024 and 512 units and the class layer, with dropout (weight decay comes from the
optimiser).
"""

from __future__ import annotations

from torch import nn

from tasks.models.ice_net import IceNet, conv_head


class AdhocCNN(IceNet):
    """Ad-hoc CNN for 20 or 32 pixel patches; output stride 8."""

    def __init__(self, n_classes: int, in_channels: int = 3, patch_size: int = 32,
                 dropout: float = 0.5, width_multiplier: float = 1.0) -> None:
        super().__init__(patch_size, n_classes, in_channels)
        widths = [max(4, int(w * width_multiplier)) for w in (32, 64, 64)]
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.output_stride = 8
        kernel = patch_size // 8
        if kernel < 1:
            raise ValueError(f"adhoc_cnn needs patches of at least 8 pixels, got {patch_size}")
        fc = [max(8, int(w * width_multiplier)) for w in (1024, 512)]
        self.head = conv_head(previous, kernel, fc, n_classes, dropout)
