"""tasks/models/dense.py on the CPU: fp32 identity, int8 agreement, clear errors, MAC count."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tasks.models.adhoc_cnn import AdhocCNN
from tasks.models.dense import (
    PRECISIONS,
    DenseKernel,
    fusable_groups,
    multiply_adds_per_cell,
    resolve_precision,
)
from tasks.models.vgg16 import VGG16Modified

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


def smooth_field(generator: torch.Generator, n: int, size: int) -> torch.Tensor:
    """(n, 3, size, size) smooth random images: band 0 decides the class, band 1-2 noise."""
    coarse = torch.randn(n, 3, size // 16 + 2, size // 16 + 2, generator=generator)
    field = nn.functional.interpolate(coarse, size=(size + 32, size + 32), mode="bilinear",
                                      align_corners=False)[:, :, 16:-16, 16:-16]
    return 2.0 * field + 0.1 * torch.randn(n, 3, size, size, generator=generator)


@pytest.fixture(scope="module")
def trained_net() -> AdhocCNN:
    """A narrow ad-hoc CNN trained to tell a positive from a negative band-0 mean (decisive)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    net = AdhocCNN(2, patch_size=32, width_multiplier=0.25, dropout=0.0)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):
        images = smooth_field(generator, 32, 32)
        labels = (images[:, 0].mean(dim=(1, 2)) > 0).long()
        loss = nn.functional.cross_entropy(net(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.eval()


def test_fp32_is_forward_dense_bit_for_bit(trained_net: AdhocCNN) -> None:
    image = smooth_field(torch.Generator().manual_seed(2), 2, 96)
    kernel = DenseKernel(trained_net, "fp32", "cpu")
    with torch.inference_mode():
        reference = trained_net.forward_dense(image)
    logits = kernel.logits(image)
    assert logits.dtype == torch.float32 and torch.equal(logits, reference)
    classes = kernel.classes(image, crop=1)
    assert classes.dtype == torch.uint8 and classes.shape == (2, reference.shape[2] - 2,
                                                                reference.shape[3] - 2)
    assert torch.equal(classes, reference[:, :, 1:-1, 1:-1].argmax(dim=1).to(torch.uint8))
    assert kernel.calibrate([image]) == 0  # fp32 needs no calibration
    assert not kernel.needs_calibration


def test_int8_agrees_with_fp32(trained_net: AdhocCNN) -> None:
    generator = torch.Generator().manual_seed(3)
    kernel = DenseKernel(trained_net, "int8", "cpu")
    assert kernel.needs_calibration
    assert kernel.calibrate([smooth_field(generator, 4, 64)]) == 1
    assert not kernel.needs_calibration
    image = smooth_field(generator, 4, 160)
    fp32 = DenseKernel(trained_net, "fp32", "cpu").classes(image)
    int8 = kernel.classes(image)
    assert int8.shape == fp32.shape == (4, 17, 17)
    both = torch.bincount(fp32.flatten().long(), minlength=2)
    assert both.min() > 0.2 * fp32.numel()  # both classes present: agreement is not trivial
    agreement = (int8 == fp32).float().mean().item()
    assert agreement >= 0.99, agreement
    # the quantised copy is separate: the fp32 network keeps float weights
    assert trained_net.head[0].weight.dtype == torch.float32
    assert kernel.quantised is not None
    assert any("Quantized" in type(m).__module__ or "quantized" in type(m).__module__
               for m in kernel.quantised.modules())


def test_int8_vgg_with_batch_norm_fuses_and_runs() -> None:
    torch.manual_seed(0)
    net = VGG16Modified(2, patch_size=32, width_multiplier=1 / 16, batch_norm=True).eval()
    groups = fusable_groups(net.features)
    assert groups[0] == ["0", "1", "2"]  # conv, batch norm, ReLU
    assert len(groups) == 13
    assert fusable_groups(net.head) == [["0", "1"], ["3", "4"]]
    image = torch.randn(1, 3, 64, 64)
    kernel = DenseKernel(net, "int8", "cpu")
    kernel.calibrate([image])
    assert kernel.logits(image).shape == net.forward_dense(image).shape


def test_bad_precision_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"precision 'fp16' is not one of .*'int8'.*'auto'"):
        DenseKernel(AdhocCNN(2, width_multiplier=0.25), "fp16", "cpu")
    assert PRECISIONS == ("fp32", "int8", "bf16", "auto")


def test_cuda_only_modes_refused_on_cpu() -> None:
    net = AdhocCNN(2, width_multiplier=0.25)
    with pytest.raises(ValueError, match="'bf16' needs a CUDA device.*use fp32, int8"):
        DenseKernel(net, "bf16", "cpu")
    assert resolve_precision("auto", "cpu") == "int8"
    assert resolve_precision("auto", "cuda") == "bf16"
    with pytest.raises(ValueError, match="'int8' runs on the CPU only.*cuda"):
        resolve_precision("int8", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device on this machine; use device 'cpu'"):
            DenseKernel(net, "fp32", "cuda")
        with pytest.raises(ValueError, match="this machine has no CUDA device"):
            DenseKernel(net, "bf16")


def test_int8_errors_before_calibration() -> None:
    kernel = DenseKernel(AdhocCNN(2, width_multiplier=0.25), "int8", "cpu")
    with pytest.raises(RuntimeError, match=r"before calibrate\(\)"):
        kernel.logits(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="calibration got no tiles"):
        kernel.calibrate([])


def test_multiply_adds_per_cell_counts_every_convolution() -> None:
    net = AdhocCNN(2)  # full width: 32, 64, 64 convs; head 1024, 512, 2; output stride 8
    expected = (27 * 32 * 64 + 288 * 64 * 16 + 576 * 64 * 4
                + 64 * 16 * 1024 + 1024 * 512 + 512 * 2)
    assert expected == 2_071_552
    assert multiply_adds_per_cell(net) == expected
    # the 10,000^2 EW scene: 1,562,500 cells, about 3.2 T multiply-adds (issue 17)
    assert multiply_adds_per_cell(net) * 1250**2 == pytest.approx(3.237e12, rel=1e-3)
    vgg = VGG16Modified(2, patch_size=32)  # pools after blocks 1-3: stride 8
    first_block = 3 * 9 * 64 * 64 + 64 * 9 * 64 * 64
    assert multiply_adds_per_cell(vgg) > first_block


def test_p2_gpu_benchmark_runs_on_cpu(tmp_path: Path) -> None:
    """bench/p2_gpu.py (torch + numpy only) in its CPU smoke mode: fp32 and int8 rows."""
    spec = importlib.util.spec_from_file_location("p2_gpu", REPO / "bench" / "p2_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--device", "cpu", "--size", "200", "--tile", "128",
                          "--models", "adhoc_cnn", "--threads", "1", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "p2_gpu.json").read_text())
    assert written["figures"] == json.loads(json.dumps(result))
    assert written["label"] == "P2" and written["ratio"] > 0
    adhoc = written["figures"]["models"]["adhoc_cnn"]
    assert adhoc["output_cells"] == 25**2 and adhoc["tiles"] == 4
    assert adhoc["multiply_adds_per_cell"] == 2_071_552
    assert set(adhoc["rows"]) == {"fp32", "int8"}
    assert adhoc["rows"]["fp32"]["agreement_vs_fp32"] == 1.0
    assert 0.9 <= adhoc["rows"]["int8"]["agreement_vs_fp32"] <= 1.0
    assert 0.3 <= adhoc["class_1_share_on_crops"] <= 0.7  # balanced: agreement is not trivial
