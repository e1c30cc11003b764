"""The long frame every reader produces: tsdl's own column names and what was read.

Shared by the file readers (:mod:`tsdl.data.io`) and the generator (:mod:`tsdl.data.synthetic`),
so neither imports the other's module for its types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["ID_COL", "TARGET_COL", "TIME_COL", "SeriesFrame"]

# Internal column names of the long frame; dunder names so they never clash with user columns.
ID_COL = "__id"
TIME_COL = "__ds"
TARGET_COL = "__y"


@dataclass(slots=True)
class SeriesFrame:
    """The long frame plus what the checklist needs to know about how it was read.

    Attributes:
        frame: columns ``ID_COL`` (str), ``TIME_COL`` (naive datetime64), ``TARGET_COL``
            (float64), one float64 column per covariate (past, future, static) and one per
            numeric column the config does not use (``audited``: the checklist scans them for
            copies of the target, then they are dropped).
        source: the file path, or ``"synthetic"``.
        target_name: the user-facing name of the target (for feature lists).
        content_hash: sha256 of the file bytes, or of the synthetic parameters.
        tz_aware_rows / tz_naive_rows / tz_offsets: what the timestamp strings carried.
    """

    frame: pd.DataFrame
    source: str
    target_name: str
    content_hash: str
    tz_aware_rows: int = 0
    tz_naive_rows: int = 0
    tz_offsets: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    """The file's columns the config does not use (training ignores them)."""
    audited: list[str] = field(default_factory=list)
    """The numeric ones among them that are in ``frame`` for the leakage audit."""
    layout: str = "long"
    """long, or wide: each series is then a column of the file, named by its id."""
