"""Config model of the food-security crop-type use case (``configs/food_security.yaml``).

Sections follow the stages: ``ingest`` (where the Sentinel-2 L2A tiles come from, with the
generator's tiles), ``harmonise`` (monthly composites), ``labels`` (reliable-label selection),
``samples`` (split by tile), ``train`` / ``predict`` / ``evaluate``. Cross-section rules are checked
once here: a tile named twice is an error naming it, and every split tile must be a configured tile.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from tasks.config.common import LightningTrainerSettings, StrictModel
from tasks.config.experiments import AblationConfig, RegistryConfig, SearchConfig
from tasks.config.ingestion import CatalogueConfig
from tasks.config.linked_data import LinksLinkedData
from tasks.config.lucas import LucasConfig

#: The crop-type models (``train.model``, ``evaluate.models``, the crop DAG's ``model`` param).
CropModelName = Literal["lstm", "tempcnn", "starrnn"]
#: Every crop model name, in the order of the comparison table.
CROP_MODEL_NAMES: tuple[CropModelName, ...] = get_args(CropModelName)

#: Sentinel-2 MGRS tile id, e.g. ``33UWP`` (two digits, latitude band letter, two letters).
TILE_PATTERN = r"^[0-9]{2}[C-X][A-Z]{2}$"


class TileConfig(StrictModel):
    """One Sentinel-2 tile of the generator (its own acquisition pattern)."""

    id: str = Field(pattern=TILE_PATTERN, description="MGRS tile id, e.g. 33UWP")
    revisit_days: int = Field(
        default=5, ge=1, le=30, description="days between acquisitions (2.5-5 for S2A+B overlap)"
    )
    parcels: int = Field(default=120, ge=1, le=100000, description="parcels generated on the tile")
    seed: int | None = Field(
        default=None, ge=0, description="tile seed; default derived from the global seed and id"
    )
    cloudiness: float = Field(
        default=1.0, ge=0.0, le=3.0,
        description="scales the cloud probability (1 = Austrian climate)",
    )
    clouded_months: list[int] = Field(
        default_factory=list,
        description="calendar months (1-12) in which every acquisition of the tile is clouded",
    )

    @field_validator("clouded_months")
    @classmethod
    def _months(cls, value: list[int]) -> list[int]:
        bad = [m for m in value if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1..12, got {bad}")
        return value


class GeneratorConfig(StrictModel):
    """Synthetic Sentinel-2 L2A time series and INVEKOS parcel map (demo, tests, benchmarks)."""

    tiles: list[TileConfig] = Field(
        default_factory=lambda: [
            TileConfig(id="33UWP", revisit_days=5, parcels=120),
            TileConfig(id="33UXP", revisit_days=3, parcels=120, clouded_months=[12]),
            TileConfig(id="33UVP", revisit_days=5, parcels=120, clouded_months=[1]),
        ],
        min_length=1,
    )
    size_px: int = Field(
        default=256, ge=32, le=4096, multiple_of=2, description="tile edge in 10 m pixels (even)"
    )
    processing_baseline: str = Field(
        default="04.00", pattern=r"^[0-9]{2}\.[0-9]{2}$",
        description="'04.00' or later adds the +1000 BOA offset to the DNs",
    )
    difficulty: float = Field(
        default=1.0, ge=0.0, le=3.0, description="within-class variation (0 easy, 1 realistic)"
    )
    road_width_px: int = Field(default=1, ge=0, le=5)
    forest_fraction: float = Field(
        default=0.08, ge=0.0, le=0.9, description="share of field blocks that are forest"
    )
    unknown_code_fraction: float = Field(
        default=0.003, ge=0.0, le=1.0,
        description="share of parcels declared with a crop code missing from the code lists",
    )
    outside_parcel_map: list[str] = Field(
        default_factory=list,
        description="tile ids written with imagery but without parcels (bad-input demos)",
    )


class IngestConfig(StrictModel):
    """Where the Sentinel-2 L2A tiles and the parcel map come from."""

    source: Literal["generator", "directory", "stac"] = "generator"
    directory: str | None = Field(
        default=None,
        description="L2A archive with {tile}/{item_id}/{item_id}.json + one GeoTIFF per band "
        "(Earth Search layout, see tasks/sentinel2/l2a.py)",
    )
    parcel_map: str | None = Field(
        default=None,
        description="GeoParquet/GeoPackage parcel map; '{agronomic_year}' in the path is replaced "
        "by the run's key (e.g. 2017-09_2018-08)",
    )
    crop_code_column: str = Field(
        default="SNAR_CODE", description="column with the INVEKOS crop code"
    )
    generator: GeneratorConfig = GeneratorConfig()
    catalogue: CatalogueConfig = Field(
        default_factory=lambda: CatalogueConfig(
            provider="earth_search", collections=["sentinel-2-l2a"], cloud_cover_max=80.0,
            max_products=500,
        ),
        description="STAC API, filters and download settings (source: stac); the tiles are the "
        "ids of ingest.generator.tiles",
    )

    @model_validator(mode="after")
    def _directory_needed(self) -> IngestConfig:
        if self.source == "directory" and not (self.directory and self.parcel_map):
            raise ValueError(
                "ingest.directory and ingest.parcel_map are required when ingest.source is "
                "'directory'"
            )
        if self.source == "stac":
            if self.catalogue.protocol != "stac":
                raise ValueError(
                    f"ingest.catalogue.provider {self.catalogue.provider!r} is not a STAC API; "
                    "allowed with ingest.source 'stac': earth_search, cdse_stac"
                )
            if not self.parcel_map:
                raise ValueError(
                    "ingest.parcel_map is required when ingest.source is 'stac' (the catalogue "
                    "has imagery, not parcels)"
                )
        return self


class HarmoniseConfig(StrictModel):
    """Cloud masking and monthly median compositing."""

    masked_scl_classes: list[int] = Field(
        default=[0, 1, 3, 8, 9, 10, 11],
        description="SCL classes treated as invalid (0 nodata, 1 saturated, 3 shadow, 8/9 cloud, "
        "10 cirrus, 11 snow)",
    )
    gap_fill: Literal["linear", "nearest", "none"] = Field(
        default="linear",
        description="months with no valid observation: linear in time between the nearest valid "
        "months (edge months: nearest); 'none' leaves NaN",
    )
    chunk: int = Field(default=256, ge=16, le=4096, description="spatial chunk edge in pixels")
    max_empty_months: int = Field(
        default=12, ge=1, le=12,
        description="fail a tile when this many of its 12 months have no valid observation "
        "anywhere on the tile (12: only a tile clouded all year fails)",
    )


class OutlierFilterConfig(StrictModel):
    """Per-class outlier filter on the NDVI temporal signature (robust z-score)."""

    enabled: bool = True
    max_robust_z: float = Field(
        default=3.5, gt=0, description="drop pixels whose mean |robust z| vs the class median "
        "NDVI series exceeds this"
    )
    min_class_pixels: int = Field(
        default=20, ge=3, description="classes with fewer pixels are not filtered"
    )


class LabelsConfig(StrictModel):
    """Parcel rasterisation and reliable-label selection."""

    buffer_m: float = Field(default=10.0, ge=0.0, le=200.0, description="inward parcel buffer")
    min_parcel_pixels: int = Field(
        default=10, ge=1, description="parcels with fewer pixels (after buffering) are dropped"
    )
    outlier_filter: OutlierFilterConfig = OutlierFilterConfig()
    outside_parcel_map: Literal["error", "empty"] = Field(
        default="empty",
        description="a tile that no parcel touches: raise, or write an all-unlabelled tile "
        "with a warning",
    )
    max_unknown_code_share: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="fail when more than this share of parcels has a crop code missing from the "
        "code lists (the error lists the most frequent unknown codes)",
    )


class SplitConfig(StrictModel):
    """Which tiles feed which split (e.g. 13/1/1)."""

    train_tiles: list[str] = Field(default_factory=lambda: ["33UWP"], min_length=1)
    val_tiles: list[str] = Field(default_factory=lambda: ["33UXP"])
    test_tiles: list[str] = Field(default_factory=lambda: ["33UVP"])


class SamplesConfig(StrictModel):
    """Pixel time-series samples."""

    split: SplitConfig = SplitConfig()
    max_per_class: int | None = Field(
        default=20000, ge=1, description="cap per class and split (random, seeded); None = all"
    )
    fraction: float | None = Field(
        default=None, gt=0, le=1.0,
        description="keep this share of every class's labelled pixels per split (random, seeded; "
        "at least one pixel per class), so the samples keep the labels' own class imbalance; "
        "applied before max_per_class. None = every pixel",
    )
    dataset_version: str = Field(default="v1", pattern=r"^[A-Za-z0-9_.-]+$")


class GridConfig(StrictModel):
    """Hyper-parameter grid of the paper (layers x cells)."""

    layers: list[int] = Field(default=[2, 3, 4], min_length=1)
    cells: list[int] = Field(default=[100, 125, 200, 225, 300], min_length=1)

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if not 1 <= v <= 6]
        if bad:
            raise ValueError(f"layers must be 1..6, got {bad}")
        return value

    @field_validator("cells")
    @classmethod
    def _cells(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if not 1 <= v <= 2048]
        if bad:
            raise ValueError(f"cells must be 1..2048, got {bad}")
        return value


class TrainConfig(LightningTrainerSettings):
    """Lightning training of the weighted two-phase LSTM and baselines."""

    model: CropModelName = "lstm"
    layers: int = Field(default=2, ge=1, le=6)
    cells: int = Field(default=100, ge=1, le=2048, description="hidden units per layer")
    grid: GridConfig | None = Field(default=None, description="layers x cells grid search")
    weighted: bool = Field(
        default=True, description="phase 1 with inverse-class-frequency weighted cross-entropy"
    )
    epochs_phase1: int = Field(default=20, ge=0, le=1000)
    epochs_phase2: int = Field(default=10, ge=0, le=1000)
    batch_size: int = Field(default=512, ge=1, le=65536)
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0)
    weight_decay: float = Field(default=0.4, ge=0, le=10.0, description="paper: 0.4")
    weight_decay_mode: Literal["decoupled", "l2"] = Field(
        default="decoupled",
        description="decoupled: weights shrink by lr*weight_decay per step (AdamW-style); l2: "
        "torch RMSprop's gradient penalty, which at the paper's 0.4 stops learning",
    )
    optimizer: Literal["rmsprop"] = "rmsprop"
    dropout: float = Field(default=0.2, ge=0, lt=1.0)
    num_workers: int = Field(default=0, ge=0, le=32)
    monitor: Literal["val_median_f1", "val_macro_f1", "val_accuracy", "val_loss"] = Field(
        default="val_median_f1", description="validation metric for early stopping / checkpoints"
    )
    early_stopping_patience: int = Field(default=5, ge=1, le=1000)
    samples_dir: str | None = Field(
        default=None,
        description="train on this folder's train.zarr / val.zarr instead of the year's samples "
        "stage (relative: under data_root); set by the crop ablation for a dataset variant such "
        "as training without the reliable-label selection",
    )

    @model_validator(mode="after")
    def _some_epochs(self) -> TrainConfig:
        if self.epochs_phase1 + self.epochs_phase2 == 0:
            raise ValueError("epochs_phase1 + epochs_phase2 must be at least 1")
        return self


class PredictConfig(StrictModel):
    """Crop map of a whole tile."""

    model: str = Field(
        default="latest",
        description="a model name (lstm, tempcnn, starrnn: that model of the run's agronomic "
        "year), 'latest' (train.model of the year), 'registry:<alias>' (e.g. "
        "registry:production), 'best:<metric>' (e.g. best:val_f1), or a path to a model folder / "
        "checkpoint",
    )
    tile: str = Field(default="33UVP", pattern=TILE_PATTERN, description="tile to map")
    batch_size: int = Field(default=4096, ge=1)
    block_rows: int = Field(
        default=256, ge=1, le=10980, description="image rows read and classified at once"
    )
    min_instance_pixels: int = Field(
        default=1, ge=1,
        description="instances (connected regions or parcels) with fewer mapped pixels are not "
        "written",
    )
    instances: Literal["connected_regions", "parcels"] = Field(
        default="connected_regions",
        description="what a row of {tile}_instances.parquet is: a 4-connected region of one "
        "predicted class, or a declared parcel of the parcel map classified by the majority of "
        "its pixels",
    )
    parcel_map: str | None = Field(
        default=None,
        description="parcel map (GeoParquet/GeoPackage) of instances: parcels; '{agronomic_year}' "
        "is replaced by the run's key; None = the year's parcel map of the labels stage "
        "(ingest.parcel_map, or the ingest stage's parcels.parquet)",
    )


class EvaluateConfig(StrictModel):
    """Accuracy on the held-out tile."""

    tile: str = Field(default="33UVP", pattern=TILE_PATTERN, description="held-out test tile")
    models: list[CropModelName] = Field(
        default=list(CROP_MODEL_NAMES), min_length=1,
        description="models of the comparison table; the crop DAG's model param 'all' trains "
        "and maps these",
    )

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: list[str]) -> list[str]:
        repeated = sorted({m for m in value if value.count(m) > 1}, key=value.index)
        if repeated:
            raise ValueError(f"models {repeated} are listed twice; list each model once")
        return value


class FoodSecurityConfig(LinksLinkedData):
    """The food-security crop-type mapping use case (one run per agronomic year)."""

    use_case: Literal["food_security"] = "food_security"
    ingest: IngestConfig = IngestConfig()
    harmonise: HarmoniseConfig = HarmoniseConfig()
    labels: LabelsConfig = LabelsConfig()
    samples: SamplesConfig = SamplesConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    search: SearchConfig = SearchConfig()
    ablation: AblationConfig = AblationConfig()
    registry: RegistryConfig = RegistryConfig()
    lucas: LucasConfig = LucasConfig()

    @model_validator(mode="after")
    def _tiles_consistent(self) -> FoodSecurityConfig:
        ids = [t.id for t in self.ingest.generator.tiles]
        seen: set[str] = set()
        for tile in ids:
            if tile in seen:
                raise ValueError(
                    f"tile {tile!r} is named twice in ingest.generator.tiles; list each tile once"
                )
            seen.add(tile)
        split = self.samples.split
        placed: dict[str, str] = {}
        for name in ("train_tiles", "val_tiles", "test_tiles"):
            for tile in getattr(split, name):
                if tile in placed:
                    raise ValueError(
                        f"tile {tile!r} is named twice in samples.split ({placed[tile]} and "
                        f"{name}); a tile belongs to one split"
                    )
                placed[tile] = name
                if tile not in seen:
                    raise ValueError(
                        f"samples.split.{name} names tile {tile!r} which is not configured; "
                        f"configured tiles: {ids}"
                    )
        targets = (("predict.tile", self.predict.tile), ("evaluate.tile", self.evaluate.tile))
        for key, tile in targets:
            if tile not in seen:
                raise ValueError(
                    f"{key} names tile {tile!r} which is not configured; configured tiles: {ids}"
                )
        for tile in self.ingest.generator.outside_parcel_map:
            if tile not in seen:
                raise ValueError(
                    f"ingest.generator.outside_parcel_map names tile {tile!r} which is not "
                    f"configured; configured tiles: {ids}"
                )
        return self

    @model_validator(mode="after")
    def _predicted_model_trained(self) -> FoodSecurityConfig:
        """Refuse a predict.model whose crop model the DAG does not train (evaluate.models)."""
        choice = self.predict.model
        name = self.train.model if choice == "latest" else choice
        if name in CROP_MODEL_NAMES and name not in self.evaluate.models:
            via = f"'latest' maps with train.model {name!r}" if choice == "latest" else (
                f"{name!r} maps with that model")
            raise ValueError(
                f"predict.model {via}, which evaluate.models {self.evaluate.models} does not "
                f"train (the crop DAG's model 'all' trains and maps evaluate.models); add "
                f"{name!r} to evaluate.models or choose a predict.model among them"
            )
        return self

    def tile_ids(self) -> list[str]:
        """Return the configured tile ids in config order."""
        return [t.id for t in self.ingest.generator.tiles]
