"""The commissioning report: one `Check` per line, in order, and whether all passed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["pass", "fail", "warn", "skip"]


@dataclass
class Check:
    """One line of the report."""

    step: str
    verdict: Verdict
    detail: str
    fix: str = ""


@dataclass
class Report:
    """Every check, in order."""

    checks: list[Check] = field(default_factory=list)

    def add(self, step: str, verdict: Verdict, detail: str, fix: str = "") -> Check:
        """Record one check and return it."""
        c = Check(step, verdict, detail, fix)
        self.checks.append(c)
        return c

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return all(c.verdict != "fail" for c in self.checks)
