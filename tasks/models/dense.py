"""Tile inference kernel of the sea-ice classifiers: dense class maps in fp32, int8 or bf16.

One code path for CPU and CUDA: a batch of normalised tiles (N, bands, H, W) goes through a
network's ``features`` and ``head`` (the FC layers written as convolutions, :mod:`.ice_net`) and
comes back as per-cell class indices. Precision modes:

* ``fp32``: the network as trained; on the CPU exactly ``net.forward_dense`` (bit-identical
  logits to calling it directly).
* ``int8`` (CPU only): eager-mode static quantisation through the quantised engine torch is set
  to (``x86`` = fbgemm/oneDNN with AVX2 / AVX-512 VNNI kernels on x86-64): Conv (+BatchNorm) +
  ReLU pairs fused, per-channel symmetric int8 weights, activations quantised per tensor with
  ranges observed by :meth:`DenseKernel.calibrate` (no labels are involved, only the value ranges
  of each layer's input). The head stays a stack of convolutions, so every layer, the FC head
  included, runs as a quantised convolution.
* ``bf16`` (CUDA only): ``torch.autocast`` to bfloat16, argmax on the float32 logits.

On CUDA the network and the tiles are ``channels_last`` (NHWC, what cuDNN's tensor-core kernels
prefer). This module imports torch only (no numpy / zarr / xarray / pydantic), so the GPU
benchmark (``bench/p2_gpu.py``) runs it on a machine with nothing but torch.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from typing import Literal, cast, get_args

import torch
from torch import nn

#: Arithmetic precision of dense inference (``predict.precision``).
Precision = Literal["fp32", "int8", "bf16"]
#: The precisions, plus ``auto`` (int8 on the CPU, bf16 on CUDA).
PRECISIONS: tuple[str, ...] = (*get_args(Precision), "auto")


def quantised_engine_available() -> bool:
    """Return whether torch has a quantised CPU engine to run ``int8`` (x86 / fbgemm / qnnpack)."""
    engines = torch.backends.quantized.supported_engines
    return any(e in engines for e in ("x86", "fbgemm", "onednn", "qnnpack"))


def resolve_precision(precision: str, device: torch.device | str) -> Precision:
    """Check a precision name against a device; ``auto`` becomes ``int8`` (CPU) or ``bf16`` (CUDA).

    Raises:
        ValueError: an unknown name (the allowed ones are listed), ``int8`` on a non-CPU device,
            ``bf16`` without a CUDA device, or ``int8`` where torch has no quantised engine.

    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {list(PRECISIONS)}; use fp32 "
                         "(as trained), int8 (CPU), bf16 (CUDA) or auto")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16"
        return "int8" if device.type == "cpu" and quantised_engine_available() else "fp32"
    if precision == "bf16" and device.type != "cuda":
        hint = ("this machine has no CUDA device" if not torch.cuda.is_available()
                else f"the device is {device}")
        raise ValueError(f"precision 'bf16' needs a CUDA device ({hint}); use fp32, int8 (CPU) "
                         "or auto")
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError(f"precision 'int8' runs on the CPU only (quantised fbgemm / x86 "
                             f"kernels), the device is {device}; use bf16, fp32 or auto there")
        if not quantised_engine_available():
            raise ValueError("precision 'int8' needs a quantised engine, but this torch build "
                             f"has {torch.backends.quantized.supported_engines}; use fp32")
    return cast(Precision, precision)


class _QuantisedDense(nn.Module):
    """features -> head between a quantise and a dequantise stub (eager-mode static int8)."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.features = features
        self.head = head
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.head(self.features(self.quant(image))))


def fusable_groups(sequence: nn.Module) -> list[list[str]]:
    """Names of the Conv2d [+ BatchNorm2d] [+ ReLU] runs among a module's children (fusable)."""
    layers = list(sequence.named_children())
    groups = []
    for index, (name, layer) in enumerate(layers):
        if not isinstance(layer, nn.Conv2d):
            continue
        group = [name]
        follow = index + 1
        if follow < len(layers) and isinstance(layers[follow][1], nn.BatchNorm2d):
            group.append(layers[follow][0])
            follow += 1
        if follow < len(layers) and isinstance(layers[follow][1], nn.ReLU):
            group.append(layers[follow][0])
        if len(group) > 1:
            groups.append(group)
    return groups


class DenseKernel:
    """Batched dense inference of one network in one precision on one device.

    Args:
        net: a network with ``features`` and ``head`` modules and ``forward_dense``
            (:class:`tasks.models.ice_net.IceNet`); put in eval mode, moved to ``device``.
            For ``int8`` a quantised copy is made; ``net`` itself is not changed.
        precision: ``fp32``, ``int8``, ``bf16`` or ``auto`` (:func:`resolve_precision`).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda when available).

    ``int8`` must be calibrated (:meth:`calibrate`) before the first :meth:`logits` call.

    """

    def __init__(self, net: nn.Module, precision: str = "fp32",
                 device: torch.device | str | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device} requested, but torch finds no CUDA device "
                             "on this machine; use device 'cpu'")
        self.precision: Precision = resolve_precision(precision, self.device)
        self.net = net.eval().to(self.device)
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.quantised: nn.Module | None = None

    @property
    def needs_calibration(self) -> bool:
        """True while an ``int8`` kernel has not been calibrated."""
        return self.precision == "int8" and self.quantised is None

    def calibrate(self, tiles: Iterable[torch.Tensor]) -> int:
        """Quantise the network (``int8``), its activation ranges observed on ``tiles``.

        Args:
            tiles: normalised float32 batches (N, bands, H, W) like those to be classified, e.g.
                crops spread over the scene being charted.

        Returns:
            The number of calibration batches seen (0 for fp32 / bf16, which need none).

        Raises:
            ValueError: ``tiles`` is empty.

        """
        if self.precision != "int8":
            return 0
        quant = torch.ao.quantization
        engine = torch.backends.quantized.engine
        model = _QuantisedDense(copy.deepcopy(cast(nn.Module, self.net.features)),
                                copy.deepcopy(cast(nn.Module, self.net.head))).eval()
        for part in (model.features, model.head):
            groups = fusable_groups(part)
            if groups:
                quant.fuse_modules(part, groups, inplace=True)
        model.qconfig = quant.get_default_qconfig(engine)
        seen = 0
        with warnings.catch_warnings():
            # torch 2.10+ announces the move of eager quantisation to torchao; it still works
            # and torchao is not a dependency here.
            warnings.simplefilter("ignore")
            quant.prepare(model, inplace=True)
            with torch.inference_mode():
                for batch in tiles:
                    model(batch.to(self.device, torch.float32))
                    seen += 1
            if not seen:
                raise ValueError("int8 calibration got no tiles; pass at least one normalised "
                                 "(N, bands, H, W) batch of the data to be classified")
            quant.convert(model, inplace=True)
        self.quantised = model
        return seen

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Float32 logit maps (N, classes, H', W') on the kernel's device of normalised tiles.

        Raises:
            RuntimeError: an ``int8`` kernel that was not calibrated.

        """
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.precision == "int8":
                if self.quantised is None:
                    raise RuntimeError("int8 kernel used before calibrate(); call "
                                       "calibrate(tiles) with a few normalised tiles first")
                return cast(torch.Tensor, self.quantised(batch))
            if self.precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    out = self.net.forward_dense(batch)  # type: ignore[operator]
                return cast(torch.Tensor, out).float()
            return cast(torch.Tensor, self.net.forward_dense(batch))  # type: ignore[operator]

    def classes(self, batch: torch.Tensor, crop: int = 0) -> torch.Tensor:
        """Per-cell class indices, uint8 (N, H' - 2 crop, W' - 2 crop), on the kernel's device.

        ``crop`` output cells are dropped on each side (the tile's context margin).
        """
        scores = self.logits(batch)
        if crop:
            scores = scores[:, :, crop:scores.shape[2] - crop, crop:scores.shape[3] - crop]
        return scores.argmax(dim=1).to(torch.uint8)


def multiply_adds_per_cell(net: nn.Module) -> float:
    """Multiply-adds of a dense pass of ``net`` per output cell, away from image edges.

    Every convolution of ``features`` and ``head`` counts ``k_h * k_w * in / groups * out`` per
    output position, times the number of its output positions per output cell
    ``(output_stride / its cumulative stride)^2``. Pooling, ReLU and bias adds are not counted.
    The ad-hoc CNN at full width: 2,071,552 (75 % in the FC 1024 / 512 head).
    """
    output_stride = int(getattr(net, "output_stride", 1))
    total, step = 0.0, 1
    for part in (cast(nn.Module, net.features), cast(nn.Module, net.head)):
        for layer in part.modules():
            if isinstance(layer, nn.Conv2d):
                step *= int(layer.stride[0])
                per_position = (int(layer.kernel_size[0]) * int(layer.kernel_size[1])
                                * layer.in_channels // layer.groups * layer.out_channels)
                total += per_position * (output_stride / step) ** 2
            elif isinstance(layer, nn.MaxPool2d):
                stride = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
                step *= int(stride)
    return total
