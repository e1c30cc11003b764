"""The training doctor: pre-flight checks, the LR range test and learning-curve post-mortems.

Nothing in tsdl imports the doctor except the CLI and the API shell.
"""

from tsdl.doctor.curves import CurveDiagnosis, CurveKind, CurveThresholds, classify_curves
from tsdl.doctor.remedies import remedies_for
from tsdl.doctor.report import DoctorReport, Finding, Remedy, Status

__all__ = [
    "CurveDiagnosis",
    "CurveKind",
    "CurveThresholds",
    "DoctorReport",
    "Finding",
    "Remedy",
    "Status",
    "classify_curves",
    "remedies_for",
]
