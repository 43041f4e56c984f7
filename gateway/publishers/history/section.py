"""The `history` config section (its own module so gateway.config can import it early).

It imports nothing from the gateway; like `gateway.config.Section`, unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HistorySection(BaseModel):
    """The local history store (SQLite) behind the dashboard's charts and `history export`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Record the history.")
    path: Path | None = Field(
        None, description="SQLite file (default: `<gateway.state_dir>/history.sqlite3`)."
    )
    retention_days: float = Field(30.0, gt=0, description="Everything older is deleted.")
    pack_interval_s: float = Field(
        10.0, ge=1, le=3600, description="Period of the pack series (voltage, current, SOC…)."
    )
    cell_interval_s: float = Field(
        60.0, ge=1, le=3600, description="Period of the per-cell min/max/mean rows."
    )
    full_resolution_days: float = Field(
        2.0, gt=0, description="Rows younger than this keep their full resolution."
    )
    coarse_interval_s: float = Field(
        600.0, ge=60, le=86400, description="Older rows are down-sampled to this period."
    )
    flush_interval_s: float = Field(
        10.0, gt=0, le=600, description="Rows are written in one transaction this often."
    )

    @model_validator(mode="after")
    def _check_periods(self) -> HistorySection:
        if self.coarse_interval_s < max(self.pack_interval_s, self.cell_interval_s):
            raise ValueError("history.coarse_interval_s: must be >= pack and cell intervals")
        if self.full_resolution_days > self.retention_days:
            raise ValueError("history.full_resolution_days: must be <= retention_days")
        return self

    def file(self, state_dir: Path) -> Path:
        """The SQLite file to use."""
        return self.path if self.path is not None else state_dir / "history.sqlite3"
