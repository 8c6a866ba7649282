"""Lightning DataModule over a polar patch training set (``patches_{size}.zarr``).

The patches are normalised per band with the ``band_mean`` / ``band_std`` attributes of the zarr
store, targets are mapped to the model's class scheme (five-class or water/ice), and a seeded,
stratified split gives the validation set. Training patches are augmented with random horizontal
/ vertical flips, 90-degree rotations and Gaussian noise. The selected bands of the training set
are read into memory once (a 20,000-patch 32 px set with 3 bands is ~250 MB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset

from tasks.domain import ice
from tasks.storage import zarr_array

#: Edge (pixels) of the spatial blocks that go wholly to training or validation.
SPLIT_BLOCK_PX = 256


def spatial_blocks(group: Any) -> np.ndarray | None:
    """Block id of every patch: (scene, origin row // block, origin col // block), or None.

    Patches cut with a stride smaller than their size overlap, and neighbouring patches are
    strongly correlated; splitting whole blocks keeps validation patches off training pixels.
    """
    if "origin" not in group or "scene" not in group:
        return None
    origin = np.asarray(group["origin"][:], dtype=np.int64)
    scene = np.asarray(group["scene"][:], dtype=np.int64)
    block = origin // SPLIT_BLOCK_PX
    return (scene * 1_000_003 + block[:, 0]) * 1_000_003 + block[:, 1]


def split_indices(
    codes: np.ndarray, val_fraction: float, seed: int, blocks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of patch indices into (train, validation).

    Without ``blocks``: stratified by class code. With ``blocks`` (see :func:`spatial_blocks`):
    whole spatial blocks go to one side, about ``val_fraction`` of the blocks of each majority
    class to validation, so overlapping patches never straddle the split.
    """
    rng = np.random.default_rng(seed)
    if blocks is not None and len(np.unique(blocks)) > 1:
        unique, inverse = np.unique(blocks, return_inverse=True)
        majority = np.array([np.bincount(codes[inverse == b]).argmax() for b in range(len(unique))])
        val_blocks: list[np.ndarray] = []
        for code in np.unique(majority):
            members = rng.permutation(np.flatnonzero(majority == code))
            n_val = int(round(len(members) * val_fraction))
            if len(members) > 1:
                n_val = min(max(n_val, 1), len(members) - 1)
            val_blocks.append(members[:n_val])
        is_val = np.isin(inverse, np.concatenate(val_blocks))
        if is_val.any() and (~is_val).any():
            return np.flatnonzero(~is_val), np.flatnonzero(is_val)
    train, val = [], []
    for code in np.unique(codes):
        index = rng.permutation(np.flatnonzero(codes == code))
        n_val = int(round(len(index) * val_fraction))
        if len(index) > 1:
            n_val = min(max(n_val, 1), len(index) - 1)
        val.append(index[:n_val])
        train.append(index[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def scheme_targets(codes: np.ndarray, class_scheme: str) -> np.ndarray:
    """Map five-class codes (1..5) to 0-based targets of ``class_scheme``."""
    lookup = np.full(len(ice.ice_classes()) + 1, -1, dtype=np.int64)
    for c in ice.ice_classes():
        lookup[c.code] = ice.to_model_target(c.code, class_scheme)
    targets = lookup[codes]
    if (targets < 0).any():
        raise ValueError(f"patch codes {sorted(set(codes[targets < 0].tolist()))} are not 1..5")
    return targets


def open_patch_set(path: Path) -> tuple[zarr.Group, dict[str, Any]]:
    """Open a patch training set and check its contract; return (group, attributes)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"patch training set {path} does not exist; run the patches stage")
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    for key in ("band_mean", "band_std", "bands", "patch_size"):
        if key not in attrs:
            raise ValueError(f"{path}: attribute {key!r} missing; not a patches stage output")
    for name in ("x", "y"):
        if name not in group:
            raise ValueError(f"{path}: array {name!r} missing; not a patches stage output")
    return group, attrs


class IcePatchDataset(Dataset):
    """Normalised patches (float32 tensors) and targets, optionally augmented."""

    def __init__(self, patches: np.ndarray, targets: np.ndarray, augment: bool = False,
                 noise_std: float = 0.0) -> None:
        self.patches = torch.from_numpy(patches)
        self.targets = torch.from_numpy(targets)
        self.augment = augment
        self.noise_std = noise_std

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        patch = self.patches[index]
        if self.augment:
            coin = torch.rand(3)
            if coin[0] < 0.5:
                patch = torch.flip(patch, dims=(-1,))
            if coin[1] < 0.5:
                patch = torch.flip(patch, dims=(-2,))
            patch = torch.rot90(patch, int(coin[2] * 4) % 4, dims=(-2, -1))
            if self.noise_std > 0:
                patch = patch + self.noise_std * torch.randn_like(patch)
        return patch.contiguous(), self.targets[index]


class IcePatchDataModule(L.LightningDataModule):
    """DataModule of a patch training set for one class scheme and band selection."""

    def __init__(self, dataset_path: Path, class_scheme: str = "binary",
                 bands: list[str] | None = None, batch_size: int = 64, val_fraction: float = 0.2,
                 augment: bool = True, noise_std: float = 0.05, seed: int = 42,
                 num_workers: int = 0) -> None:
        super().__init__()
        self.dataset_path = Path(dataset_path)
        self.class_scheme = class_scheme
        self.class_names = ice.class_names(class_scheme)
        _, attrs = open_patch_set(self.dataset_path)
        self.attrs = attrs
        self.bands = list(bands or attrs["bands"])
        missing = [b for b in self.bands if b not in attrs["bands"]]
        if missing:
            raise ValueError(f"{dataset_path}: bands {missing} not in the training set "
                             f"(has {attrs['bands']})")
        self.band_index = [attrs["bands"].index(b) for b in self.bands]
        self.band_mean = [float(attrs["band_mean"][i]) for i in self.band_index]
        self.band_std = [float(attrs["band_std"][i]) for i in self.band_index]
        self.patch_size = int(attrs["patch_size"])
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.augment = augment
        self.noise_std = noise_std
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: IcePatchDataset | None = None
        self.val_set: IcePatchDataset | None = None
        self.blocks: np.ndarray | None = None  # spatial block of each patch (set by load_arrays)

    @property
    def n_classes(self) -> int:
        """Number of model outputs."""
        return len(self.class_names)

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (normalised patches (n, band, s, s), targets (n,), five-class codes (n,))."""
        group, _ = open_patch_set(self.dataset_path)
        x = np.asarray(zarr_array(group, "x")[:, np.asarray(self.band_index)], dtype=np.float32)
        mean = np.asarray(self.band_mean, np.float32)[None, :, None, None]
        std = np.asarray(self.band_std, np.float32)[None, :, None, None]
        x -= mean
        x /= std
        codes = np.asarray(zarr_array(group, "y")[:], dtype=np.int64)
        self.blocks = spatial_blocks(group)
        return x, scheme_targets(codes, self.class_scheme), codes

    def setup(self, stage: str | None = None) -> None:
        """Load the patches, split them (seeded, stratified) and build the data sets."""
        if self.train_set is not None:
            return
        x, targets, codes = self.load_arrays()
        train, val = split_indices(codes, self.val_fraction, self.seed, self.blocks)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"{self.dataset_path}: {len(codes)} patches are too few to split "
                             f"into training and validation sets")
        self.train_set = IcePatchDataset(x[train], targets[train], self.augment, self.noise_std)
        self.val_set = IcePatchDataset(x[val], targets[val])

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches."""
        assert self.train_set is not None, "setup() first"
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          num_workers=self.num_workers, drop_last=False,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        """Return validation batches in a fixed order."""
        assert self.val_set is not None, "setup() first"
        return DataLoader(self.val_set, batch_size=self.batch_size * 4,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
