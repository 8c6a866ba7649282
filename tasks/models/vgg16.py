"""VGG-16 for sea-ice patches, from scratch or modified.

VGG-16 (Simonyan & Zisserman 2015; 13 3x3 convolutions in 5 blocks of 64, 128, 256, 512, 512
channels) with batch normalisation, adapted to 20 / 32 pixel SAR patches.

* :class:`VGG16` keeps a max-pool after each block as long as the feature map stays >= 1 pixel
  (5 pools for 32 px, 4 for 20 px).
* :class:`VGG16Modified` is the paper's "fewer max-pool layers" variant: pools only after the first
  three blocks, so a 32 px patch keeps a 4 x 4 and a 20 px patch a 2 x 2 feature map.

The head is the classifier (512, 512, n) written as convolutions, so both run fully convolutionally.
"""

from __future__ import annotations

from torch import nn

from tasks.models.ice_net import IceNet, conv_head

#: Channels of the 13 convolutions, per block.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512),
)


class VGG16(IceNet):
    """VGG-16 with batch norm; ``max_pools`` pools after the first blocks (default: as fit)."""

    def __init__(self, n_classes: int, in_channels: int = 3, patch_size: int = 32,
                 dropout: float = 0.5, width_multiplier: float = 1.0,
                 max_pools: int | None = None) -> None:
        super().__init__(patch_size, n_classes, in_channels)
        fitting = 0
        while fitting < 5 and patch_size // 2 ** (fitting + 1) >= 1:
            fitting += 1
        pools = fitting if max_pools is None else min(max_pools, fitting)
        layers: list[nn.Module] = []
        previous = in_channels
        for index, block in enumerate(VGG16_BLOCKS):
            for channels in block:
                width = max(4, int(channels * width_multiplier))
                layers += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                previous = width
            if index < pools:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pools = pools
        self.output_stride = 2**pools
        kernel = patch_size // 2**pools
        fc = max(8, int(512 * width_multiplier))
        self.head = conv_head(previous, kernel, [fc, fc], n_classes, dropout)


class VGG16Modified(VGG16):
    """VGG-16 with max-pools after the first three blocks only (works on 20 and 32 px patches)."""

    def __init__(self, n_classes: int, in_channels: int = 3, patch_size: int = 32,
                 dropout: float = 0.5, width_multiplier: float = 1.0) -> None:
        super().__init__(n_classes, in_channels, patch_size, dropout, width_multiplier,
                         max_pools=3)
