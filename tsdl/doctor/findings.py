"""The doctor's findings: one row per check with pass / warn / fail, the evidence, and what to change.

A :class:`DoctorReport` renders the same content twice: an aligned terminal report and Markdown
(logged to MLflow next to the plots), so what a user reads and what a run keeps never drift.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DoctorReport", "Finding", "Remedy", "Status"]

Status = Literal["pass", "warn", "fail"]

_TERMINAL_WIDTH = 100


@dataclass(frozen=True, slots=True)
class Remedy:
    """One playbook step: what to do and, when it is a config change, the key and its new value.

    Attributes:
        action: the step in words ("lower the learning rate").
        key: the dotted config key to change (``training.optimizer.lr``), or None for a command.
        current: the key's value now, as text (None when unknown).
        suggested: the value to try, as text (None when it depends on the data).
    """

    action: str
    key: str | None = None
    current: str | None = None
    suggested: str | None = None

    def render(self) -> str:
        """``action (key: current -> suggested)`` with the known parts only."""
        if self.key is None:
            return self.action
        if self.suggested is None:
            return f"{self.action} ({self.key})"
        if self.current is None:
            return f"{self.action} ({self.key}: {self.suggested})"
        return f"{self.action} ({self.key}: {self.current} -> {self.suggested})"

    def set_override(self) -> str | None:
        """The ``--set key=value`` that applies this remedy, when it is a concrete change."""
        if self.key is None or self.suggested is None:
            return None
        return f"{self.key}={self.suggested}"

    @property
    def changes_nothing(self) -> bool:
        """True when the value to try is the run's value already (``precision: 32 -> "32"``).

        Such a step sends a user to rerun with an override that changes nothing, so findings
        drop it. Values are compared as YAML scalars would be: ``"32"`` is ``32``, ``0.50`` is
        ``0.5``, ``[hour, dayofweek]`` is ``['hour', 'dayofweek']``.
        """
        if self.current is None or self.suggested is None:
            return False
        return _canonical(self.current) == _canonical(self.suggested)


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check.

    Attributes:
        check: short name (``first_batch``, ``overfit_one_batch``, ``learning_curve``...).
        status: pass, warn or fail.
        summary: one line: the verdict with its key number.
        evidence: further lines with the numbers the verdict rests on.
        remedies: the playbook's steps, most likely to help first.
    """

    check: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    remedies: tuple[Remedy, ...] = ()

    def __post_init__(self) -> None:
        # Whatever built the remedies, a step that keeps the current value is never shown.
        object.__setattr__(self, "remedies", tuple(r for r in self.remedies if not r.changes_nothing))


@dataclass(slots=True)
class DoctorReport:
    """All findings of one doctor invocation, in the order the checks ran.

    Attributes:
        title: what was examined (config file, run id).
        findings: the checks' results.
        artifacts: name -> local path of files written alongside (plots, Markdown).
        notes: lines printed under the title (e.g. checks skipped and why).
    """

    title: str
    findings: list[Finding] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings are fine)."""
        return all(f.status != "fail" for f in self.findings)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    def summary(self) -> str:
        """One line: counts per status and the failed checks."""
        counts = {s: sum(f.status == s for f in self.findings) for s in ("pass", "warn", "fail")}
        line = f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"
        failed = [f.check for f in self.findings if f.status == "fail"]
        return line + (f" (failed: {', '.join(failed)})" if failed else "")

    def render(self) -> str:
        """The terminal report: one block per check, evidence indented, remedies numbered."""
        lines = [self.title, "=" * min(len(self.title), _TERMINAL_WIDTH)]
        lines += self.notes
        width = max((len(f.check) for f in self.findings), default=5)
        for finding in self.findings:
            lines.append("")
            lines.append(f"[{finding.status.upper():<4}] {finding.check:<{width}}  {finding.summary}")
            for item in finding.evidence:
                lines += _wrap(item, indent=" " * 9)
            for i, remedy in enumerate(finding.remedies, start=1):
                lines += _wrap(f"{i}. {remedy.render()}", indent=" " * 9, hang=3)
        if self.artifacts:
            lines.append("")
            lines += [f"{name}: {path}" for name, path in self.artifacts.items()]
        lines += ["", self.summary()]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The same report as Markdown: a status table, then one section per check."""
        lines = [f"# {self.title}", ""]
        lines += [f"> {note}" for note in self.notes]
        if self.notes:
            lines.append("")
        lines += ["| check | status | summary |", "|---|---|---|"]
        for f in self.findings:
            lines.append(f"| {f.check} | **{f.status}** | {_md_cell(f.summary)} |")
        for f in self.findings:
            lines += ["", f"## {f.check}: {f.status}", "", f.summary]
            if f.evidence:
                lines.append("")
                lines += [f"- {item}" for item in f.evidence]
            if f.remedies:
                lines += ["", "What to change, in priority order:", ""]
                lines += [f"{i}. {_md_remedy(r)}" for i, r in enumerate(f.remedies, start=1)]
        lines += ["", f"_{self.summary()}_", ""]
        return "\n".join(lines)


def _canonical(text: str) -> float | str:
    """A config value's text without quotes and spaces, as a number when it is one."""
    flat = re.sub(r"[\s'\"]", "", text).lower()
    try:
        return float(flat)
    except ValueError:
        return flat


def _wrap(text: str, *, indent: str, hang: int = 0) -> list[str]:
    return textwrap.wrap(
        text,
        width=_TERMINAL_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + " " * hang,
        break_on_hyphens=False,
    ) or [indent]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_remedy(remedy: Remedy) -> str:
    if remedy.key is None:
        return remedy.action
    change = f"`{remedy.key}`"
    if remedy.suggested is not None:
        change += f": `{remedy.current}` -> `{remedy.suggested}`" if remedy.current else f": `{remedy.suggested}`"
    return f"{remedy.action} ({change})"
