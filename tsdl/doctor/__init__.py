"""The training doctor: pre-flight checks, the LR range test and learning-curve post-mortems.

Nothing in tsdl imports the doctor except the CLI and the API shell.
"""

from tsdl.doctor.curves import CurveDiagnosis, CurveKind, CurveThresholds, classify_curves
from tsdl.doctor.findings import DoctorReport, Finding, Remedy, Status
from tsdl.doctor.gradients import GradientProbe, gradient_findings, probe_gradients
from tsdl.doctor.lr_find import (
    LRFindResult,
    find_lr,
    lr_find_png,
    lr_range_test,
    suggest_lr,
    write_config_with_lr,
)
from tsdl.doctor.preflight import check_first_batch, overfit_one_batch, run_preflight
from tsdl.doctor.remedies import remedies_for

__all__ = [
    "CurveDiagnosis",
    "CurveKind",
    "CurveThresholds",
    "DoctorReport",
    "Finding",
    "GradientProbe",
    "LRFindResult",
    "Remedy",
    "Status",
    "check_first_batch",
    "classify_curves",
    "find_lr",
    "gradient_findings",
    "lr_find_png",
    "lr_range_test",
    "overfit_one_batch",
    "probe_gradients",
    "remedies_for",
    "run_preflight",
    "suggest_lr",
    "write_config_with_lr",
]
