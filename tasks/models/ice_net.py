"""Common interface of the sea-ice patch classifiers: patch logits and dense logit maps.

Every classifier is a feature extractor (convolutions + max-pools) followed by a head whose first
layer is a convolution with a kernel as large as the feature map of one patch (an FC layer written
as a convolution) and 1x1 convolutions after it. On a patch of ``patch_size`` pixels the head
output is 1 x 1 (the patch's logits); on a larger image it is a map whose cell (i, j) holds the
logits of the window whose top-left pixel is (i * output_stride, j * output_stride).
"""

from __future__ import annotations

import torch
from torch import nn


class IceNet(nn.Module):
    """Base class: ``features`` then ``head``; subclasses fill both and set ``output_stride``."""

    features: nn.Module
    head: nn.Module

    def __init__(self, patch_size: int, n_classes: int, in_channels: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.n_classes = n_classes
        self.in_channels = in_channels
        self.output_stride = 1

    def context_margin(self) -> int:
        """Return how far (pixels) zero padding lets context beyond a window reach its logits.

        Rounded up to a multiple of ``output_stride``: tiles read this much extra on each side
        give results identical to one pass over the whole image.
        """
        margin, step = 0, 1
        for layer in self.features.modules():
            if isinstance(layer, nn.Conv2d):
                margin += int(layer.padding[0]) * step * int(layer.dilation[0])
                step *= int(layer.stride[0])
            elif isinstance(layer, nn.MaxPool2d):
                stride = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
                step *= int(stride)
        return -(-margin // self.output_stride) * self.output_stride

    def forward_dense(self, image: torch.Tensor) -> torch.Tensor:
        """Logit map (N, n_classes, H', W') of image (N, in_channels, H, W), H, W >= patch_size."""
        return self.head(self.features(image))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of patches (N, in_channels, patch_size, patch_size)."""
        if patches.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(
                f"expected patches of {self.patch_size}x{self.patch_size} pixels, got "
                f"{tuple(patches.shape[-2:])}; use forward_dense for larger images"
            )
        return self.forward_dense(patches).flatten(1)


def conv_head(in_channels: int, kernel: int, widths: list[int], n_classes: int,
              dropout: float) -> nn.Sequential:
    """FC layers as convolutions: ``kernel`` x ``kernel`` conv to widths[0], 1x1 convs after."""
    layers: list[nn.Module] = []
    previous, size = in_channels, kernel
    for width in widths:
        layers += [nn.Conv2d(previous, width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        previous, size = width, 1
    layers.append(nn.Conv2d(previous, n_classes, size))
    return nn.Sequential(*layers)
