"""Config section of the LUCAS evaluation of crop maps (the 10 m same-label rule).

:class:`LucasConfig` is a plain section (not a use case): the crop config may embed it as its
``lucas`` key, and ``eeflow lucas evaluate`` validates it standalone from a YAML file holding just
these keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tasks.config.common import StrictModel

BarleyRule = Literal["merge", "winter_barley", "spring_barley"]
PointLocation = Literal["gps_then_theoretical", "gps", "theoretical"]


class LucasConfig(StrictModel):
    """How LUCAS survey points are compared with a crop map.

    A point is correct under the radius rule when at least one map instance with the point's class
    lies within ``radius_m`` metres of it; the nearest-instance rule is computed alongside.
    """

    radius_m: float = Field(
        default=10.0, gt=0.0, le=1000.0, description="search radius of the same-label rule, metres"
    )
    nearest_max_distance_m: float = Field(
        default=1000.0,
        gt=0.0,
        le=100_000.0,
        description="nearest-instance matching looks this far; beyond it the point has no instance",
    )
    mapping_file: str | None = Field(
        default=None,
        description="CSV lc1_code,lc1_label,reference_class,note; default: the packaged "
        "tasks/lucas/codelists/lc1_to_crop_class.csv",
    )
    barley_rule: BarleyRule = Field(
        default="merge",
        description="LUCAS B13 barley has no sowing season: 'merge' compares it with winter_barley "
        "and spring_barley merged into one class 'barley'; otherwise B13 is that one class",
    )
    location: PointLocation = Field(
        default="gps_then_theoretical",
        description="which point location to use; gps_then_theoretical falls back to "
        "TH_LAT/TH_LONG when GPS is missing (88.888888, empty, out of range)",
    )
    points_crs: str = Field(
        default="EPSG:4326", description="CRS of LUCAS CSV coordinates (WGS84 lat/lon)"
    )
    map_crs: str | None = Field(
        default=None, description="CRS to assume for a map file that carries none (else: error)"
    )
    evaluation_crs: str | None = Field(
        default=None,
        description="projected CRS for distances; default: the map's CRS, which must be projected",
    )
    class_column: str = Field(default="crop_class", description="class-name column of instances")
    on_unknown_lc1: Literal["exclude", "error"] = Field(
        default="exclude",
        description="LC1 codes missing from the mapping: exclude and report, or raise",
    )
    obs_types: list[int] | None = Field(
        default=None,
        description="keep only these OBS_TYPE values (1 in situ <100 m, 2 in situ >100 m, "
        "3 photo-interpreted, ...); None keeps all",
    )
    min_usable_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="least share of crop-coded points that must have a usable location (numeric, "
        "in range, inside the map's area); fewer fail the evaluation with counts by reason",
    )
    points_path: str | None = Field(
        default=None, description="LUCAS points (CSV or GeoParquet) used by the pipeline stage"
    )

    @field_validator("points_crs", "map_crs", "evaluation_crs")
    @classmethod
    def _known_crs(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(value)
        except CRSError:
            raise ValueError(
                f"not a CRS pyproj understands (e.g. 'EPSG:32633'): {value!r}"
            ) from None
        return value

    @field_validator("evaluation_crs")
    @classmethod
    def _projected(cls, value: str | None) -> str | None:
        if value is not None:
            from pyproj import CRS

            if not CRS.from_user_input(value).is_projected:
                raise ValueError("must be a projected CRS in metres, e.g. the map's UTM zone")
        return value
