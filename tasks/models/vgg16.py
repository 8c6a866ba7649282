"""VGG-16 for sea-ice patches, from scratch, transferred or modified.

VGG-16 (Simonyan & Zisserman 2015, configuration "D": 13 3x3 convolutions in 5 blocks of 64, 128,
256, 512, 512 channels), adapted to 20 / 32 pixel SAR patches as in the paper:

* :class:`VGG16` keeps a max-pool after each block as long as the feature map stays >= 1 pixel
  (5 pools for 32 px, 4 for 20 px).
* :class:`VGG16Modified` is the paper's "fewer max-pool layers" variant: pools only after the first
  three blocks, so a 32 px patch keeps a 4 x 4 and a 20 px patch a 2 x 2 feature map.

The head follows the paper ("for the ad-hoc and existing VGG-16 architectures, the number of fully
connected layers is the same"): fully connected layers of 1024 and 512 units and the class layer,
like the ad-hoc CNN, written as convolutions so both variants run fully convolutionally.

Batch normalisation (torchvision's ``vgg16_bn`` layout: a ``BatchNorm2d`` after every convolution)
is not in the paper and is off by default (``train.vgg_batch_norm``). Models trained before the
paper's head was adopted (head 512 / 512, batch norm on) are rebuilt with
``head_widths=LEGACY_HEAD_WIDTHS, batch_norm=True`` (see ``tasks.polar.train.load_model``).
"""

from __future__ import annotations

from torch import nn

from tasks.models.ice_net import IceNet, conv_head

#: Channels of the 13 convolutions, per block.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512),
)
#: Fully connected layers before the class layer: the paper's (same as the ad-hoc CNN).
HEAD_WIDTHS: tuple[int, ...] = (1024, 512)
#: The head of VGG models trained by eeflow before the paper's head (with batch norm).
LEGACY_HEAD_WIDTHS: tuple[int, ...] = (512, 512)


class VGG16(IceNet):
    """VGG-16; ``max_pools`` pools after the first blocks (default: as many as fit).

    Args:
        n_classes: outputs of the class layer.
        in_channels: input bands (3: HH, HV, incidence angle).
        patch_size: patch edge in pixels.
        dropout: dropout after each fully connected layer.
        width_multiplier: scales every layer's width (1 = the published VGG-16).
        max_pools: pools after the first ``max_pools`` blocks (``None``: as many as fit).
        batch_norm: a ``BatchNorm2d`` after every convolution (torchvision's ``vgg16_bn``).
        head_widths: units of the fully connected layers before the class layer.

    """

    def __init__(self, n_classes: int, in_channels: int = 3, patch_size: int = 32,
                 dropout: float = 0.5, width_multiplier: float = 1.0,
                 max_pools: int | None = None, batch_norm: bool = False,
                 head_widths: tuple[int, ...] = HEAD_WIDTHS) -> None:
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
                layers.append(nn.Conv2d(previous, width, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                previous = width
            if index < pools:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pools = pools
        self.batch_norm = batch_norm
        self.width_multiplier = width_multiplier
        self.output_stride = 2**pools
        kernel = patch_size // 2**pools
        fc = [max(8, int(w * width_multiplier)) for w in head_widths]
        self.head = conv_head(previous, kernel, fc, n_classes, dropout)


class VGG16Modified(VGG16):
    """VGG-16 with max-pools after the first three blocks only (works on 20 and 32 px patches)."""

    def __init__(self, n_classes: int, in_channels: int = 3, patch_size: int = 32,
                 dropout: float = 0.5, width_multiplier: float = 1.0,
                 batch_norm: bool = False, head_widths: tuple[int, ...] = HEAD_WIDTHS) -> None:
        super().__init__(n_classes, in_channels, patch_size, dropout, width_multiplier,
                         max_pools=3, batch_norm=batch_norm, head_widths=head_widths)
