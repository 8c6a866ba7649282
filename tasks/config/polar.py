"""Config model of the polar sea-ice use case (``configs/polar.yaml``)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from tasks.config.common import LightningTrainerSettings, StrictModel
from tasks.config.experiments import AblationConfig, RegistryConfig, SearchConfig
from tasks.config.ingestion import CatalogueConfig
from tasks.config.linked_data import LinksLinkedData

#: The sea-ice models (``train.model``; the polar training DAG's ``model`` param).
IceModelName = Literal["adhoc_cnn", "vgg16", "vgg16_transfer", "vgg16_modified"]
#: Every sea-ice model name.
ICE_MODEL_NAMES: tuple[IceModelName, ...] = get_args(IceModelName)
ClassScheme = Literal["five_class", "binary"]
#: Patch edges (pixels) of the published training sets.
PatchSize = Literal[20, 32]


class GeneratorConfig(StrictModel):
    """Synthetic Sentinel-1 EW GRDM scenes (demo and tests)."""

    lines: int = Field(default=1200, ge=64, le=20000, description="azimuth lines of the scene")
    samples: int = Field(default=1200, ge=64, le=20000, description="range samples of the scene")
    scenes_per_day: int = Field(default=1, ge=0, le=10)
    land_fraction: float = Field(default=0.12, ge=0.0, le=0.9)
    equivalent_number_of_looks: float = Field(default=4.0, gt=0.5, le=50.0)
    difficulty: float = Field(
        default=1.0, ge=0.0, le=3.0, description="scales class overlap (0 easy, 1 realistic)"
    )


class IngestConfig(StrictModel):
    """Where a day's scenes come from.

    ``cdse_odata`` searches an OData catalogue (``catalogue.provider`` cop_dataspace or creodias),
    ``stac`` a STAC API (earth_search, cdse_stac); both download through
    :mod:`tasks.ingestion` (resume, retries, checksums, safe extraction, fetch manifest).
    """

    source: Literal["generator", "directory", "cdse_odata", "stac"] = "generator"
    directory: str | None = Field(
        default=None, description="folder with *.SAFE / *.zip products (source: directory)"
    )
    product_type: Literal["GRD"] = "GRD"
    mode: Literal["EW"] = "EW"
    polarisations: list[Literal["HH", "HV", "VV", "VH"]] = Field(
        default=["HH", "HV"], min_length=1,
        description="polarisations a catalogue product must carry (dual-pol HH/HV for sea ice)",
    )
    aoi_bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="lon_min, lat_min, lon_max, lat_max (WGS84) of the area"
    )
    generator: GeneratorConfig = GeneratorConfig()
    cdse_product_type: str = Field(
        default="EW_GRDM_1S", description="CDSE 'productType' attribute of the searched products"
    )
    max_products: int = Field(default=20, ge=1, le=1000, description="search page size / day cap")
    catalogue: CatalogueConfig = Field(
        default_factory=lambda: CatalogueConfig(collections=["sentinel-1-grd"]),
        description="provider, endpoints, filters and download settings (cdse_odata / stac)",
    )
    wait_timeout_h: float = Field(
        default=12.0, gt=0, le=168,
        description="how long the DAG's sensor waits for the day's scenes before skipping the run",
    )
    wait_poll_s: float = Field(
        default=900.0, ge=1, le=86400, description="seconds between the sensor's searches"
    )

    @model_validator(mode="after")
    def _directory_needed(self) -> IngestConfig:
        if self.source == "directory" and not self.directory:
            raise ValueError("ingest.directory is required when ingest.source is 'directory'")
        if self.aoi_bbox is not None:
            x0, y0, x1, y1 = self.aoi_bbox
            if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
                raise ValueError(
                    f"aoi_bbox {self.aoi_bbox} must be lon_min<lon_max in [-180,180], "
                    "lat_min<lat_max in [-90,90]"
                )
        wanted = {"cdse_odata": "odata", "stac": "stac"}.get(self.source)
        if wanted and self.catalogue.protocol != wanted:
            allowed = {"odata": "cop_dataspace, creodias", "stac": "earth_search, cdse_stac"}
            raise ValueError(
                f"ingest.catalogue.provider {self.catalogue.provider!r} is a "
                f"{self.catalogue.protocol} catalogue but ingest.source is {self.source!r}; "
                f"allowed providers for {self.source!r}: {allowed[wanted]}"
            )
        return self


class HarmoniseConfig(StrictModel):
    """Sentinel-1 preprocessing."""

    multilook: int = Field(default=3, ge=1, le=15, description="boxcar window (odd)")
    pixel_spacing_m: float = Field(default=40.0, gt=0, le=1000)
    noise_removal: bool = True
    chunk: int = Field(default=512, ge=64, le=8192, description="zarr chunk edge in pixels")
    db_floor: float = Field(default=-40.0, le=-10.0, description="sigma0 clipped to this dB")
    target_crs: str = Field(
        default="EPSG:3413",
        description="projected CRS (metres) of the north-up output grid scenes are geocoded onto",
    )
    geocoding: Literal["tps", "affine"] = Field(
        default="tps",
        description="map from the geolocation grid: thin-plate spline (exact at the tie points) "
        "or one affine (off by hundreds of metres on real scenes; for comparison only)",
    )
    geocode_to_sea_level: bool = Field(
        default=True,
        description="move tie points over terrain to the ellipsoid before fitting (sea ice is at "
        "sea level)",
    )
    max_geocoding_residual_m: float = Field(
        default=100.0,
        gt=0,
        description="refuse a scene whose geocoding leave-one-out error (p95 over the interior "
        "tie points) exceeds this many metres",
    )
    required_mode: Literal["EW", "IW"] = Field(
        default="EW", description="acquisition mode a product must have"
    )
    land_polygons: str | None = Field(
        default=None,
        description="vector file of land polygons (any CRS) used when a scene has no own land mask",
    )

    @model_validator(mode="after")
    def _odd(self) -> HarmoniseConfig:
        if self.multilook % 2 == 0:
            raise ValueError(f"multilook must be odd, got {self.multilook}")
        return self


class PatchConfig(StrictModel):
    """Training-patch extraction."""

    sizes: list[PatchSize] = Field(
        default=[32, 20], min_length=1,
        description="patch edges (pixels) of the training sets built; train.patch_size is one",
    )
    stride: int | None = Field(default=None, ge=1, le=512, description="default: patch size")
    min_purity: float = Field(default=0.9, gt=0.0, le=1.0)
    balance: Literal["none", "undersample"] = "undersample"
    max_per_class: int = Field(default=4000, ge=1)
    class_scheme: ClassScheme = "five_class"
    dataset_version: str = Field(default="v1", pattern=r"^[A-Za-z0-9_.-]+$")
    tile_px: int = Field(
        default=1024, ge=64, le=8192, description="edge of the scene tiles one Dask task reads"
    )

    @field_validator("sizes")
    @classmethod
    def _distinct_sizes(cls, value: list[int]) -> list[int]:
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"sizes {repeated} are listed twice; list each patch size once")
        return value


class TrainConfig(LightningTrainerSettings):
    """Lightning training."""

    model: IceModelName = "adhoc_cnn"
    patch_size: PatchSize = Field(default=32, description="one of patches.sizes")
    class_scheme: ClassScheme = "binary"
    epochs: int = Field(default=8, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=8192)
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0)
    weight_decay: float = Field(default=1e-4, ge=0, le=1.0)
    dropout: float = Field(default=0.5, ge=0, lt=1.0)
    augment: bool = True
    early_stopping_patience: int = Field(default=3, ge=1)
    val_fraction: float = Field(default=0.2, gt=0, lt=0.9)
    num_workers: int = Field(default=0, ge=0, le=32)
    pretrained_checkpoint: str | None = Field(
        default=None,
        description="vgg16_transfer: checkpoint or model folder to start from (e.g. a five-class "
        "VGG-16); without it or train.imagenet_weights, a VGG-16 is first trained on the other "
        "class scheme",
    )
    input_bands: list[Literal["HH", "HV", "incidence"]] = Field(
        default=["HH", "HV", "incidence"], min_length=1
    )
    monitor: Literal["val_loss", "val_acc"] = Field(
        default="val_loss", description="metric for early stopping and the best checkpoint"
    )
    noise_std: float = Field(
        default=0.05, ge=0, le=2.0, description="Gaussian noise (normalised units) of augmentation"
    )
    class_weighting: bool = Field(
        default=True, description="weight the loss by inverse class frequency of the training split"
    )
    width_multiplier: float = Field(
        default=1.0, gt=0, le=4.0, description="scales layer widths (1 = published architecture)"
    )
    vgg_batch_norm: bool = Field(
        default=False,
        description="VGG-16 models: a batch norm after every convolution (torchvision's "
        "vgg16_bn layout; not in the paper)",
    )
    imagenet_weights: str | None = Field(
        default=None,
        description="vgg16_transfer / vgg16_modified: a torchvision vgg16 or vgg16_bn state "
        "dict (.pth) whose ImageNet convolutions initialise the network (head: random); "
        "without it vgg16_transfer starts from train.pretrained_checkpoint or pretrains on "
        "the other class scheme",
    )

    @model_validator(mode="after")
    def _imagenet_weights_usable(self) -> TrainConfig:
        if self.imagenet_weights is None:
            return self
        if self.model not in ("vgg16_transfer", "vgg16_modified"):
            raise ValueError(
                f"train.imagenet_weights is set but train.model is {self.model!r}; ImageNet "
                "weights initialise vgg16_transfer or vgg16_modified only"
            )
        if self.pretrained_checkpoint is not None:
            raise ValueError(
                "train.imagenet_weights and train.pretrained_checkpoint are both set; "
                "choose one starting point"
            )
        if self.width_multiplier != 1.0:
            raise ValueError(
                f"train.imagenet_weights needs train.width_multiplier 1 (the published "
                f"VGG-16 widths), got {self.width_multiplier}"
            )
        return self


class PredictConfig(StrictModel):
    """Dense scene inference."""

    model: str = Field(
        default="latest",
        description="'latest', 'registry:<alias>' (e.g. registry:production), "
        "'best:<metric>', or a model folder",
    )
    tile: int = Field(default=1024, ge=64, le=8192)
    batch_size: int = Field(default=8, ge=1)
    precision: Literal["fp32", "int8", "bf16", "auto"] = Field(
        default="fp32",
        description="arithmetic of dense inference: fp32 (as trained), int8 (CPU only: static "
        "quantisation calibrated on crops of the scene being charted, >= 99.5 % of cells as "
        "fp32 in bench/p2_inference.py), bf16 (CUDA autocast only), auto (int8 on CPU, bf16 "
        "on CUDA)",
    )
    polygon_max_pixels: int = Field(
        default=2048, ge=64, le=20000,
        description="long side (pixels) of the chart raster read for GeoJSON polygons",
    )


class PolarConfig(LinksLinkedData):
    """The polar sea-ice chart use case."""

    use_case: Literal["polar"] = "polar"
    ingest: IngestConfig = IngestConfig()
    harmonise: HarmoniseConfig = HarmoniseConfig()
    patches: PatchConfig = PatchConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    search: SearchConfig = SearchConfig()
    ablation: AblationConfig = AblationConfig()
    registry: RegistryConfig = RegistryConfig()

    @model_validator(mode="after")
    def _patch_size_built(self) -> PolarConfig:
        if self.train.patch_size not in self.patches.sizes:
            raise ValueError(
                f"train.patch_size {self.train.patch_size} is not one of patches.sizes "
                f"{self.patches.sizes}: the patches stage builds no {self.train.patch_size} px "
                f"training set; add {self.train.patch_size} to patches.sizes or set "
                f"train.patch_size to one of {self.patches.sizes}"
            )
        return self
