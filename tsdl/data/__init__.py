"""The data layer: read, check, split, scale and window time series, locally or as Ray Datasets."""

from tsdl.data.batch import Batch
from tsdl.data.check_report import CheckReport, CheckResult
from tsdl.data.prepare import PreparedData, prepare_data, prepare_inference, run_checklist
from tsdl.data.scalers import SeriesScalers
from tsdl.data.windows import WindowSet

__all__ = [
    "Batch",
    "CheckReport",
    "CheckResult",
    "PreparedData",
    "SeriesScalers",
    "WindowSet",
    "prepare_data",
    "prepare_inference",
    "run_checklist",
]
