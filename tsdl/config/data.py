"""Where the series come from and how they are checked, split, scaled and windowed."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tsdl.config.base import StrictModel

__all__ = [
    "CalendarFeature",
    "ChecksConfig",
    "CovariatesConfig",
    "DataConfig",
    "DatasetName",
    "SplitConfig",
    "SyntheticDataConfig",
]

DatasetName = Literal["ETTh1", "ETTh2", "ETTm1", "ETTm2"]
"""Benchmark datasets tsdl can fetch by name (see `tsdl datasets list`, tsdl/data/datasets.py)."""

CalendarFeature = Literal["minute", "hour", "dayofweek", "day", "dayofyear", "weekofyear", "month"]


class CovariatesConfig(StrictModel):
    """Which extra columns feed the model, and what is known about them at forecast time."""

    past: list[str] = Field(default_factory=list)
    """Columns observed only up to the forecast start (e.g. measured load); used in the lookback."""
    future: list[str] = Field(default_factory=list)
    """Columns known over the horizon too (e.g. planned promotions); used in lookback and horizon."""
    static: list[str] = Field(default_factory=list)
    """Columns constant per series (e.g. store size); one value per series."""
    calendar: list[CalendarFeature] = Field(default_factory=list)
    """Known-future features generated from the timestamps."""
    holidays_country: str | None = None
    """ISO country code (e.g. 'US', 'DE') to add a known-future holiday flag; needs `holidays`."""


class SplitConfig(StrictModel):
    """Temporal split without shuffling; val/test windows take lookback from the preceding segment."""

    method: Literal["fraction", "timestamp", "rows"] = "fraction"
    """fraction: per-series shares; timestamp: val_start/test_start; rows: train/val/test_rows."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of each series' timesteps in validation (method=fraction)."""
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of each series' timesteps in test (method=fraction)."""
    val_start: datetime | None = None
    """First validation timestamp (method=timestamp)."""
    test_start: datetime | None = None
    """First test timestamp (method=timestamp)."""
    train_rows: int | None = Field(None, ge=1)
    """Timesteps per series in train (method=rows; ETTh1 standard: 8640)."""
    val_rows: int | None = Field(None, ge=0)
    """Timesteps per series in validation (method=rows; ETTh1 standard: 2880)."""
    test_rows: int | None = Field(None, ge=0)
    """Timesteps per series in test (method=rows; ETTh1 standard: 2880)."""
    skip_rows: int = Field(0, ge=0)
    """Timesteps dropped from the start of every series before splitting (any method): train on
    recent history only, e.g. ETTh1's last 20% of train = skip_rows 6912, train_rows 1728."""

    @model_validator(mode="after")
    def _method_fields(self) -> SplitConfig:
        if self.method == "fraction" and self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be below 1, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.method == "timestamp" and (self.val_start is None or self.test_start is None):
            raise ValueError("method 'timestamp' needs both val_start and test_start")
        if self.method == "timestamp" and self.val_start >= self.test_start:  # type: ignore[operator]
            raise ValueError(
                f"val_start ({self.val_start}) must come before test_start ({self.test_start})"
            )
        if self.method == "rows" and None in (self.train_rows, self.val_rows, self.test_rows):
            raise ValueError("method 'rows' needs train_rows, val_rows and test_rows")
        return self


class ChecksConfig(StrictModel):
    """Thresholds of the pre-training checklist."""

    leakage_correlation: float = Field(0.99, gt=0.0, le=1.0)
    """|corr| between a covariate and the target (or its shifts) at or above which it is leakage."""
    leakage_max_shift: int = Field(3, ge=0, le=1000)
    """Shifts of the target (in steps, both directions) compared against each covariate."""
    max_gap_share: float = Field(0.05, ge=0.0, le=1.0)
    """Share of missing grid points per series above which the gap check fails (else warns)."""
    skip_columns: list[str] = Field(default_factory=list)
    """Unused file columns left out of the leakage scan: known copies of the target kept for
    other tools (e.g. an unscaled 'y_raw'). Every other numeric column is scanned."""


class SyntheticDataConfig(StrictModel):
    """A generated dataset (seasonal series with noise) for demos and tests when no path is set."""

    n_series: int = Field(8, ge=1, le=100_000)
    n_timesteps: int = Field(1_000, ge=10)
    freq: str = "h"
    seed: int = 0


class DataConfig(StrictModel):
    """Input data: file, layout, columns, checks, split, scaling and windows."""

    path: str | None = None
    """CSV or Parquet file: a local path (in a config file, relative paths start at that file's
    directory) or an object-store URI (s3://bucket/key.csv, gs://, abfs://; credentials and endpoint
    from the environment, e.g. AWS_ENDPOINT_URL). Unset (and no `dataset`) uses `synthetic`."""
    dataset: DatasetName | None = None
    """A benchmark by name instead of a path (e.g. ETTh1): fetched once into $TSDL_DATA_HOME,
    SHA-256 verified; see `tsdl datasets list`."""
    name: str | None = None
    """Dataset name for tracking tags; defaults to the file stem."""
    format: Literal["auto", "csv", "parquet"] = "auto"
    """File format; auto picks by extension."""
    layout: Literal["auto", "long", "wide"] = "auto"
    """long: one row per (series, timestamp); wide: a timestamp column plus one column per series."""
    id_col: str = "unique_id"
    """Series id column (long layout)."""
    time_col: str = "ds"
    """Timestamp column (both layouts; ETTh1 uses 'date')."""
    target_col: str = "y"
    """Target column (long layout), or the single target column (wide layout, unless series_cols)."""
    series_cols: list[str] | Literal["all"] | None = None
    """Wide layout: columns that become series; 'all' = every column but time and covariates."""
    freq: str | None = None
    """Pandas frequency alias (e.g. 'h', '15min', 'D'); unset infers it per series."""
    resample: bool = False
    """Put series that are off the common grid onto it (mean aggregation) instead of failing."""
    missing: Literal["fail", "ffill", "interpolate", "zero"] = "fail"
    """NaN/inf policy for target and covariates: fail, or fill by the named method (counted)."""
    short_series: Literal["drop", "fail"] = "drop"
    """Series shorter than input_chunk_length + output_chunk_length: drop them (listed) or fail."""
    input_chunk_length: int = Field(168, ge=1, le=100_000)
    """Lookback window length in timesteps."""
    output_chunk_length: int = Field(24, ge=1, le=100_000)
    """Forecast horizon in timesteps."""
    stride: int = Field(1, ge=1)
    """Step between consecutive training windows."""
    scaler: Literal["standard", "robust", "minmax", "none"] = "standard"
    """Per-series scaler, fitted on the train segment only."""
    seasonality: int | None = Field(None, ge=1)
    """Season length for the seasonal-naive baseline and MASE; unset derives it from the frequency."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    covariates: CovariatesConfig = Field(default_factory=CovariatesConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    synthetic: SyntheticDataConfig = Field(default_factory=SyntheticDataConfig)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.path is not None and self.dataset is not None:
            raise ValueError(
                f"set either data.path ({self.path}) or data.dataset ({self.dataset}), not both"
            )
        return self

    @field_validator("path", mode="before")
    @classmethod
    def _path_text(cls, value: object) -> object:
        """Keep URIs intact: a `Path` would turn ``s3://b/k`` into ``s3:/b/k``."""
        return str(value) if isinstance(value, PurePath) else value
