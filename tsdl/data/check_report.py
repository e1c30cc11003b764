"""The checklist's result: one row per check, rendered as an aligned table plus a split report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CheckReport", "CheckResult", "CheckStatus"]

CheckStatus = Literal["pass", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One checklist line: ``name`` (e.g. ``duplicates``), ``status`` and a detail with numbers."""

    name: str
    status: CheckStatus
    detail: str


@dataclass(slots=True)
class CheckReport:
    """All checklist results, plus the split report once the split could be computed.

    Attributes:
        rows: the checks, in the order they ran.
        source: the file that was checked (or ``"synthetic"``).
        splits: per split name -> ``{start, end, n_windows, n_series}`` (empty when the
            checklist stopped before the split).
    """

    rows: list[CheckResult] = field(default_factory=list)
    source: str = ""
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings are fine)."""
        return not self.failed

    @property
    def failed(self) -> list[CheckResult]:
        return [row for row in self.rows if row.status == "fail"]

    def add(self, name: str, status: CheckStatus, detail: str) -> CheckResult:
        """Append a row; the detail is made one bounded line (ids and names come from the file)."""
        row = CheckResult(name, status, _one_line(detail))
        self.rows.append(row)
        return row

    def summary(self) -> str:
        """One line: all passed, or which checks failed."""
        warns = sum(row.status == "warn" for row in self.rows)
        if self.ok:
            return f"checklist passed: {len(self.rows)} checks, {warns} warning(s)"
        names = ", ".join(row.name for row in self.failed)
        return f"checklist failed: {len(self.failed)} of {len(self.rows)} checks failed ({names})"

    def render(self) -> str:
        """An aligned plain-text table of the checks, then the split report."""
        lines = [f"data checklist: {self.source}" if self.source else "data checklist"]
        width = max((len(row.name) for row in self.rows), default=5)
        lines.append(f"  {'check':<{width}}  status  detail")
        for row in self.rows:
            lines.append(f"  {row.name:<{width}}  {row.status:<6}  {row.detail}")
        if self.splits:
            lines.append("")
            lines.append("split report:")
            lines.append(f"  {'split':<5}  {'start':<19}  {'end':<19}  {'windows':>9}  {'series':>6}")
            for name, info in self.splits.items():
                lines.append(
                    f"  {name:<5}  {str(info['start']):<19}  {str(info['end']):<19}  "
                    f"{info['n_windows']:>9}  {info['n_series']:>6}"
                )
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)


def _one_line(text: str, limit: int = 1000) -> str:
    """Control characters (a newline in a quoted id) escaped, at most ``limit`` characters."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
