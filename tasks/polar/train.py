"""Train a sea-ice patch classifier with Lightning and publish it as a model folder.

A model folder ``{root}/polar/models/{model}_{patch}_{scheme}_{timestamp}/`` holds:
``model.json`` (name, classes, bands, normalisation, patch size, hyperparameters, data-set
version, validation metrics, code version; the common :class:`~tasks.trainers.card.ModelCard`
under ``card``), ``model.pt`` (the best weights as a plain state dict),
``checkpoints/best.ckpt`` (Lightning), ``logs/csv/metrics.csv``, ``logs/tensorboard/``,
``learning_curve.png`` and, for ``vgg16_transfer`` without a given checkpoint, the pretraining run
in ``pretrain/``. The folder appears in one rename when training has finished.

``model.json`` ``input_contract`` records what scenes the model was trained on (acquisition
modes, pixel spacings, CRSs of the training scenes); :mod:`tasks.polar.predict` refuses a scene
outside it. Cards written before the field existed get it from their training set, or else from
the harmonise defaults (:func:`input_contract`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from tasks.config.polar import HarmoniseConfig, PolarConfig, TrainConfig
from tasks.datasets.ice_patches import IcePatchDataModule
from tasks.models.ice_net import IceNet
from tasks.models.ice_zoo import build_model
from tasks.models.transfer import load_imagenet_vgg16, load_pretrained
from tasks.models.vgg16 import HEAD_WIDTHS, LEGACY_HEAD_WIDTHS
from tasks.plots import CurvePanel, CurveStyle, plot_learning_curve
from tasks.storage import code_version
from tasks.trainers.card import SCHEMA_VERSION, ModelCard
from tasks.trainers.contract import TrainResult
from tasks.trainers.ice import IceClassifier
from tasks.trainers.ranks import global_rank, rank_zero_dir, rank_zero_result

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
WEIGHTS_FILE = "model.pt"
INPUT_CONTRACT = "input_contract"

#: ``learning_curve.png``: train / val loss and accuracy per epoch.
CURVE_STYLE = CurveStyle(
    panels=(CurvePanel((("train_loss", None), ("val_loss", None)), ylabel="loss"),
            CurvePanel((("train_acc", None), ("val_acc", None)), ylabel="acc")),
    figsize=(9, 3.5),
)

#: Sentinel-1 product / scene names: ``S1A_EW_GRDM_...`` (mission, then acquisition mode).
_S1_NAME_MODE = re.compile(r"^S1[A-D]_(EW|IW|SM|WV|S[1-6])_")


def scene_acquisition(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Acquisition mode, pixel spacing (m) and CRS of a harmonised scene from its attributes.

    ``mode`` comes from the ``mode`` attribute (written by harmonise), else from the Sentinel-1
    name in ``scene_id`` / ``source_product``; ``pixel_spacing_m`` from the attribute, else the
    geotransform's x step; ``crs`` normalised to ``EPSG:n`` where it has an EPSG code. Unknown
    values are ``None``.
    """
    mode = attrs.get("mode") or None
    if not mode:
        for key in ("scene_id", "source_product"):
            match = _S1_NAME_MODE.match(str(attrs.get(key, "")))
            if match:
                mode = match.group(1)
                break
    spacing = attrs.get("pixel_spacing_m")
    transform = attrs.get("transform")
    if spacing is None and transform is not None and len(transform) == 6:
        spacing = abs(float(transform[1]))
    return {"mode": str(mode).upper() if mode else None,
            "pixel_spacing_m": float(spacing) if spacing is not None else None,
            "crs": normalise_crs(attrs["crs"]) if attrs.get("crs") else None}


def normalise_crs(crs: Any) -> str:
    """``EPSG:n`` for a CRS with an EPSG code (any pyproj input), else its WKT."""
    from pyproj import CRS

    parsed = CRS.from_user_input(crs)
    epsg = parsed.to_epsg()
    return f"EPSG:{epsg}" if epsg else parsed.to_wkt()


def training_input_contract(dataset_attrs: Mapping[str, Any],
                            fallback: HarmoniseConfig) -> dict[str, Any]:
    """Build the ``input_contract`` of a model trained on a patch set (its zarr attributes).

    Modes, pixel spacings and CRSs are read from the attributes of the training scenes
    (``scene_paths``); a field no scene states (or a scene that can no longer be opened) comes
    from the harmonise settings ``fallback``, and ``source`` says which.
    """
    import zarr

    found: dict[str, set[Any]] = {"mode": set(), "pixel_spacing_m": set(), "crs": set()}
    for path in dataset_attrs.get("scene_paths", []):
        try:
            attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        except (FileNotFoundError, OSError, ValueError) as err:
            log.warning("input contract: training scene %s unreadable (%s); using harmonise "
                        "settings for what it would say", path, err)
            continue
        for key, value in scene_acquisition(attrs).items():
            if value is not None:
                found[key].add(value)
    defaults = {"mode": fallback.required_mode, "pixel_spacing_m": fallback.pixel_spacing_m,
                "crs": normalise_crs(fallback.target_crs)}
    contract: dict[str, Any] = {"source": {}}
    for key, plural in (("mode", "modes"), ("pixel_spacing_m", "pixel_spacings_m"),
                        ("crs", "crs")):
        contract[plural] = sorted(found[key]) if found[key] else [defaults[key]]
        contract["source"][plural] = "training scenes" if found[key] else "harmonise settings"
    contract["bands"] = list(dataset_attrs.get("bands", []))
    contract["patch_size"] = dataset_attrs.get("patch_size")
    return contract


def input_contract(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return the scenes a model accepts (``modes``, ``pixel_spacings_m``, ``crs``, bands).

    Cards written before ``input_contract`` existed: derived from the training set the card
    names (``dataset_path``) when it is still there, else the harmonise defaults (EW, 40 m,
    EPSG:3413: the only contract of those versions' pipeline), with a warning.
    """
    if INPUT_CONTRACT in meta:
        return dict(meta[INPUT_CONTRACT])
    from tasks.datasets.ice_patches import open_patch_set

    defaults = HarmoniseConfig()
    name = meta.get("name", "model")
    try:
        _, attrs = open_patch_set(Path(str(meta.get("dataset_path"))))
    except (FileNotFoundError, OSError, ValueError):
        log.warning("model card of %s has no %r and its training set %s is gone: assuming the "
                    "harmonise defaults (%s, %s m, %s)", name, INPUT_CONTRACT,
                    meta.get("dataset_path"), defaults.required_mode, defaults.pixel_spacing_m,
                    defaults.target_crs)
        attrs = {}
    contract = training_input_contract(attrs, defaults)
    contract["bands"], contract["patch_size"] = list(meta["bands"]), meta.get("patch_size")
    return contract


@dataclass
class LoadedIceModel:
    """A trained model ready for inference: the network (eval mode) and its ``model.json``."""

    net: IceNet
    meta: dict[str, Any]
    model_dir: Path

    @property
    def band_mean(self) -> np.ndarray:
        """Per-band mean used to normalise inputs, shape (band,)."""
        return np.asarray(self.meta["band_mean"], np.float32)

    @property
    def band_std(self) -> np.ndarray:
        """Per-band standard deviation used to normalise inputs, shape (band,)."""
        return np.asarray(self.meta["band_std"], np.float32)


def models_root(cfg: PolarConfig) -> Path:
    """``{root}/polar/models``."""
    return cfg.resolved_root() / "polar" / "models"


def latest_model(root: Path | str) -> Path:
    """Return the newest model folder under ``{root}/polar/models`` with a valid ``model.json``.

    Raises:
        FileNotFoundError: there is no trained model yet.

    """
    folder = Path(root) / "polar" / "models"
    found = []
    for meta_path in folder.glob(f"*/{MODEL_JSON}"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("skipping %s: unreadable model.json", meta_path)
            continue
        if (meta_path.parent / meta.get("weights", WEIGHTS_FILE)).is_file() and "created" in meta:
            found.append((meta["created"], meta_path.parent.name, meta_path.parent))
    if not found:
        raise FileNotFoundError(
            f"no trained model under {folder}; run the polar training pipeline first "
            "(eeflow polar training, or eeflow polar patches then eeflow polar train) or set "
            "predict.model to a model folder"
        )
    return max(found)[2]


def load_model(model_dir: Path | str) -> LoadedIceModel:
    """Load a model folder (or a file inside one) for inference, on CPU, in eval mode.

    Raises:
        FileNotFoundError: no ``model.json`` / weights.
        ValueError: the weights do not fit the architecture described in ``model.json``.

    """
    model_dir = Path(model_dir)
    if model_dir.is_file():
        model_dir = model_dir.parent.parent if model_dir.parent.name == "checkpoints" \
            else model_dir.parent
    meta_path = model_dir / MODEL_JSON
    if not meta_path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder: {MODEL_JSON} missing")
    meta = json.loads(meta_path.read_text())
    hyper = meta["hyperparameters"]
    # VGG models trained before the paper's head (1024 / 512, issue 18) recorded no "vgg_head":
    # they have the 512 / 512 head and batch norm.
    legacy = "vgg_head" not in hyper
    net = build_model(meta["architecture"], len(meta["classes"]), len(meta["bands"]),
                      meta["patch_size"], hyper["dropout"], hyper.get("width_multiplier", 1.0),
                      batch_norm=hyper.get("vgg_batch_norm", legacy),
                      head_widths=tuple(hyper.get("vgg_head", LEGACY_HEAD_WIDTHS)))
    load_pretrained(net, model_dir / meta.get("weights", WEIGHTS_FILE), strict=True)
    return LoadedIceModel(net=net.eval(), meta=meta, model_dir=model_dir)


def _model_folder(parent: Path, tc: TrainConfig) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{tc.model}_{tc.patch_size}_{tc.class_scheme}_{stamp}"
    folder, n = parent / base, 1
    while folder.exists():
        n += 1
        folder = parent / f"{base}-{n}"
    return folder


def _evaluate_val(net: IceNet, datamodule: IcePatchDataModule,
                  loss: nn.Module) -> dict[str, float]:
    """Compute validation accuracy and loss (the training loss, class weights included)."""
    net.eval()
    all_logits, all_targets = [], []
    with torch.no_grad():
        for patches, targets in datamodule.val_dataloader():
            all_logits.append(net(patches))
            all_targets.append(targets)
        logits, targets = torch.cat(all_logits), torch.cat(all_targets)
        value = float(loss.cpu()(logits, targets))
    return {"val_acc": float((logits.argmax(1) == targets).float().mean()), "val_loss": value,
            "n_val": len(targets)}


def _datamodule(cfg: PolarConfig, dataset_path: Path) -> IcePatchDataModule:
    """Open the patch set (set up, with train / val split) and check its patch size."""
    tc = cfg.train
    datamodule = IcePatchDataModule(
        dataset_path, class_scheme=tc.class_scheme, bands=list(tc.input_bands),
        batch_size=tc.batch_size, val_fraction=tc.val_fraction, augment=tc.augment,
        noise_std=tc.noise_std, seed=cfg.seed, num_workers=tc.num_workers,
    )
    if datamodule.patch_size != tc.patch_size:
        raise ValueError(f"{dataset_path} holds {datamodule.patch_size} px patches but "
                         f"train.patch_size is {tc.patch_size}")
    datamodule.setup()
    return datamodule


def _class_weights(tc: TrainConfig, datamodule: IcePatchDataModule) -> list[float] | None:
    """Inverse class frequencies of the train split (``train.class_weighting``), else None."""
    if not tc.class_weighting:
        return None
    assert datamodule.train_set is not None, "datamodule.setup() first"
    counts = np.bincount(datamodule.train_set.targets.numpy(), minlength=datamodule.n_classes)
    return (counts.sum() / (len(counts) * np.maximum(counts, 1))).tolist()


def _trainer(tc: TrainConfig, folder: Path, callbacks: Sequence[Callback],
             trainer_kwargs: dict[str, Any]) -> tuple[L.Trainer, ModelCheckpoint]:
    """Lightning trainer with best-checkpointing and early stopping on ``train.monitor``."""
    mode = "min" if tc.monitor == "val_loss" else "max"
    checkpoint = ModelCheckpoint(dirpath=folder / "checkpoints", filename="best",
                                 monitor=tc.monitor, mode=mode, save_top_k=1)
    loggers = [CSVLogger(folder / "logs", name="csv", version=""),
               TensorBoardLogger(folder / "logs", name="tensorboard", version="",
                                 default_hp_metric=False)]
    trainer = L.Trainer(
        max_epochs=tc.epochs, logger=loggers,
        callbacks=[checkpoint, EarlyStopping(tc.monitor, patience=tc.early_stopping_patience,
                                             mode=mode), *callbacks],
        enable_progress_bar=True, log_every_n_steps=1, default_root_dir=folder,
        **{**tc.trainer_kwargs(), **trainer_kwargs},  # train.devices/precision/strategy
    )
    return trainer, checkpoint


def _fit(
    cfg: PolarConfig, dataset_path: Path, folder: Path, final_folder: Path,
    callbacks: Sequence[Callback], trainer_kwargs: dict[str, Any],
) -> TrainResult | None:
    """Train ``cfg.train`` into ``folder`` (the temporary twin of ``final_folder``).

    Returns None on a DDP rank other than 0: it trains (the collectives must match) but writes
    nothing; rank 0 evaluates the best checkpoint and writes the folder.
    """
    tc = cfg.train
    L.seed_everything(cfg.seed, workers=True)
    datamodule = _datamodule(cfg, dataset_path)
    architecture = "vgg16" if tc.model == "vgg16_transfer" else tc.model
    class_weights = _class_weights(tc, datamodule)
    module = IceClassifier(architecture, datamodule.n_classes, len(datamodule.bands),
                           tc.patch_size, tc.dropout, tc.learning_rate, tc.weight_decay,
                           tc.width_multiplier, class_weights, tc.vgg_batch_norm)
    transfer = None
    if tc.model == "vgg16_transfer" or tc.imagenet_weights is not None:
        transfer = _initialise_transfer(cfg, dataset_path, folder, module.net, trainer_kwargs)
    trainer, checkpoint = _trainer(tc, folder, callbacks, trainer_kwargs)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - started
    if global_rank() != 0:
        return None
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    net = module.net.cpu()
    if best is not None and best.is_file():
        load_pretrained(net, best, strict=True)
    torch.save(net.state_dict(), folder / WEIGHTS_FILE)
    metrics = _evaluate_val(net, datamodule, module.loss)
    curve = plot_learning_curve([("train", folder / "logs" / "csv" / "metrics.csv")],
                                folder / "learning_curve.png",
                                f"{tc.model} {tc.patch_size}px {tc.class_scheme}", CURVE_STYLE)
    meta = _model_json(cfg, dataset_path, datamodule, module.net, class_weights, metrics)
    meta.update({
        "epochs_trained": int(trainer.current_epoch),
        "train_seconds": round(train_seconds, 2),
        "accelerator": type(trainer.accelerator).__name__,
        "weights": WEIGHTS_FILE,
        "checkpoint": "checkpoints/best.ckpt" if best is not None else None,
        "learning_curve": curve.name if curve else None,
        "transfer": transfer,
        "code_version": code_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(),
    })
    card = model_card(meta)
    card.write(folder, meta)
    log.info("trained %s: %s=%.4f val_acc=%.4f in %.1f s -> %s", tc.model, tc.monitor,
             meta["monitor_value"], metrics["val_acc"], train_seconds, final_folder)
    return _result(card, meta, final_folder)


def _model_json(cfg: PolarConfig, dataset_path: Path, datamodule: IcePatchDataModule,
                net: IceNet, class_weights: list[float] | None,
                metrics: dict[str, float]) -> dict[str, Any]:
    """Return the polar keys of ``model.json`` known before the run facts (epochs, files)."""
    tc = cfg.train
    return {
        "name": tc.model,
        "architecture": "vgg16" if tc.model == "vgg16_transfer" else tc.model,
        "class_scheme": tc.class_scheme,
        "classes": datamodule.class_names,
        "bands": datamodule.bands,
        "band_mean": datamodule.band_mean,
        "band_std": datamodule.band_std,
        "patch_size": tc.patch_size,
        "output_stride": net.output_stride,
        INPUT_CONTRACT: {**training_input_contract(datamodule.attrs, cfg.harmonise),
                         "bands": datamodule.bands, "patch_size": tc.patch_size},
        "hyperparameters": {
            "learning_rate": tc.learning_rate, "weight_decay": tc.weight_decay,
            "dropout": tc.dropout, "batch_size": tc.batch_size, "max_epochs": tc.epochs,
            "augment": tc.augment, "noise_std": tc.noise_std,
            "width_multiplier": tc.width_multiplier, "seed": cfg.seed,
            "val_fraction": tc.val_fraction, "monitor": tc.monitor,
            "early_stopping_patience": tc.early_stopping_patience,
            "class_weights": class_weights,
            **({"vgg_batch_norm": tc.vgg_batch_norm, "vgg_head": list(HEAD_WIDTHS)}
               if tc.model.startswith("vgg16") else {}),
        },
        "dataset_version": datamodule.attrs.get("dataset_version"),
        "dataset_path": str(dataset_path),
        "n_train": len(datamodule.train_set or []),
        "n_val": metrics["n_val"],
        "val_metrics": {"val_acc": metrics["val_acc"], "val_loss": metrics["val_loss"]},
        "monitor": tc.monitor,
        "monitor_value": metrics[tc.monitor],
    }


def model_card(meta: Mapping[str, Any]) -> ModelCard:
    """Return the :class:`ModelCard` of a polar ``model.json``'s keys (``meta``)."""
    card = ModelCard.from_document(meta, source="polar model.json")
    return card.model_copy(update={"schema_version": SCHEMA_VERSION})


def _result(card: ModelCard, meta: Mapping[str, Any], final_folder: Path) -> TrainResult:
    return TrainResult(
        use_case="polar", model=card.model, model_dir=str(final_folder),
        model_json=str(final_folder / MODEL_JSON),
        checkpoint=str(final_folder / meta["checkpoint"]) if meta["checkpoint"] else None,
        monitor=str(card.monitor), monitor_value=float(meta["monitor_value"]),
        metrics=dict(card.metrics), epochs=dict(card.epochs),
        n_samples={"train": int(meta["n_train"]), "val": int(meta["n_val"])},
        dataset=str(meta["dataset_path"]), seconds=float(meta["train_seconds"]),
        extra={"transfer": meta["transfer"]},
    )


def _initialise_transfer(cfg: PolarConfig, dataset_path: Path, folder: Path, net: IceNet,
                         trainer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Start ``net`` from ImageNet weights, ``train.pretrained_checkpoint``, or a pretraining run.

    ``train.imagenet_weights`` (a torchvision VGG-16 state dict) initialises the convolutions
    (:func:`tasks.models.transfer.load_imagenet_vgg16`). Otherwise, without a checkpoint, VGG-16
    is first trained on the other class scheme of the same training
    set (five-class when fine-tuning binary, and vice versa) into ``folder/pretrain``; its
    weights are then loaded layer by layer exactly like published weights would be.
    """
    tc = cfg.train
    if tc.imagenet_weights is not None:
        imagenet = load_imagenet_vgg16(net, tc.imagenet_weights)
        return {"source": f"{tc.imagenet_weights} (ImageNet, {imagenet['layout']})",
                "loaded": len(imagenet["loaded"]), "skipped": imagenet["skipped"],
                "reinitialised": imagenet["missing"], "first_conv": imagenet["first_conv"]}
    source = tc.pretrained_checkpoint
    if source is None:
        other = "five_class" if tc.class_scheme == "binary" else "binary"
        pre_cfg = cfg.model_copy(update={"train": tc.model_copy(
            update={"model": "vgg16", "class_scheme": other, "pretrained_checkpoint": None})})
        log.info("vgg16_transfer: pretraining VGG-16 on %s first", other)
        if _fit(pre_cfg, dataset_path, folder / "pretrain", folder / "pretrain", [],
                trainer_kwargs) is None:
            # another DDP rank: rank 0 wrote the pretrained weights, and DDP gives every rank
            # rank 0's weights when the fine-tuning starts
            return {}
        source_path = folder / "pretrain" / WEIGHTS_FILE
        source_label = f"pretrain/{WEIGHTS_FILE} ({other})"
    else:
        source_path = Path(source)
        if source_path.is_dir():
            source_path = source_path / WEIGHTS_FILE
        source_label = str(source_path)
    report = load_pretrained(net, source_path, strict=False)
    return {"source": source_label, "loaded": len(report["loaded"]),
            "skipped": report["skipped"], "reinitialised": report["missing"]}


def train_model(
    cfg: PolarConfig,
    dataset_path: Path,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callback] = (),
    trainer_kwargs: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``cfg.train.model`` on a patch training set and publish the model folder atomically.

    Follows the training contract of :mod:`tasks.trainers.contract`. Under ``strategy: ddp``
    every process trains, global rank 0 alone writes the model folder (:mod:`tasks.trainers.ranks`)
    and the other ranks return rank 0's result once it is published.

    Args:
        cfg: the polar config (``train`` section and ``seed`` are used).
        dataset_path: ``patches_{size}.zarr`` of a training-set version.
        output_dir: the model folder to write (replaced atomically); default a new
            ``{root}/polar/models/{model}_{patch}_{scheme}_{timestamp}``.
        callbacks: extra Lightning callbacks (e.g. an Optuna pruning callback reading
            ``cfg.train.monitor``).
        trainer_kwargs: extra ``lightning.Trainer`` arguments (``fast_dev_run``,
            ``limit_train_batches`` ...).

    Returns:
        The :class:`~tasks.trainers.contract.TrainResult`; ``monitor_value`` is the
        best-checkpoint value of ``cfg.train.monitor`` recomputed on the validation set,
        ``metrics`` holds ``val_acc`` and ``val_loss``, ``extra`` the ``transfer`` report.

    """
    final = (Path(output_dir) if output_dir is not None
             else _model_folder(models_root(cfg), cfg.train))
    with rank_zero_dir(final) as tmp:
        result = _fit(cfg, Path(dataset_path), tmp, final, list(callbacks),
                      dict(trainer_kwargs or {}))
    # under DDP: waits until rank 0 has published; every rank returns rank 0's result (its
    # time-stamped folder, not the one another rank would have named)
    return rank_zero_result(result)
