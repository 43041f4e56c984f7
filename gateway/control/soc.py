"""State of charge: coulomb counting, end-of-charge and OCV recalibration, persistence.

- Counting: SOC += I·dt / capacity, charge current multiplied by the charge efficiency.
  Only fresh current is counted; a gap in the current data is not integrated.
- End of charge (rising edge of the end-of-charge level while charging): SOC = 100 %.
- Rest: |I| below `soc.rest_current_a` for `soc.rest_time_s` -> SOC from the OCV table
  (`gateway.chemistry.soc_from_ocv`) of the mean cell voltage, once per rest period.
  On an LFP plateau the OCV is flat, so this correction is coarse there.
- Start: the persisted value (`<state_dir>/soc.json`), else the OCV of the first full scan.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from gateway.chemistry import soc_from_ocv

log = logging.getLogger(__name__)

SOC_FILE = "soc.json"


class SocEstimator:
    """Coulomb counter with recalibration points."""

    def __init__(
        self,
        *,
        chemistry: str,
        capacity_ah: float,
        charge_efficiency: float,
        rest_current_a: float,
        rest_time_s: float,
        ocv_recalibration: bool,
        initial: float | None = None,
    ) -> None:
        self.chemistry = chemistry
        self.capacity_ah = capacity_ah
        self.charge_efficiency = charge_efficiency
        self.rest_current_a = rest_current_a
        self.rest_time_s = rest_time_s
        self.ocv_recalibration = ocv_recalibration
        self.soc: float | None = initial
        self.source = "initial" if initial is not None else "unknown"
        self._last_s: float | None = None
        self._rest_since_s: float | None = None
        self._rest_calibrated = False

    def update(
        self,
        *,
        now_s: float,
        current_a: float | None,
        mean_cell_v: float | None,
        end_of_charge_reached: bool,
    ) -> float | None:
        """Advance the estimate to `now_s` and return it (0..1, None while unknown)."""
        last, self._last_s = self._last_s, now_s
        if self.soc is None and mean_cell_v is not None:
            self.soc, self.source = soc_from_ocv(self.chemistry, mean_cell_v), "ocv_start"
        if self.soc is None:
            return None
        if current_a is None:
            self._rest_since_s = None
            return self.soc
        if last is not None and now_s > last:
            i = current_a * self.charge_efficiency if current_a > 0 else current_a
            self.soc += i * (now_s - last) / 3600.0 / self.capacity_ah
            self.soc = min(1.0, max(0.0, self.soc))
        if end_of_charge_reached and current_a >= 0:
            self.soc, self.source = 1.0, "end_of_charge"
        if abs(current_a) < self.rest_current_a:
            if self._rest_since_s is None:
                self._rest_since_s, self._rest_calibrated = now_s, False
            rested = now_s - self._rest_since_s >= self.rest_time_s
            if (
                rested
                and not self._rest_calibrated
                and self.ocv_recalibration
                and mean_cell_v is not None
            ):
                self.soc, self.source = soc_from_ocv(self.chemistry, mean_cell_v), "ocv_rest"
                self._rest_calibrated = True
        else:
            self._rest_since_s = None
        return self.soc


def load_soc(state_dir: Path) -> float | None:
    """Return the persisted SOC, or None when absent or unreadable."""
    path = state_dir / SOC_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        value = float(data["soc"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        log.warning("ignoring unreadable %s: %s", path, str(err) or type(err).__name__)
        return None
    return value if 0.0 <= value <= 1.0 else None


def save_soc(state_dir: Path, soc: float, wall: str) -> None:
    """Persist the SOC atomically (write a temp file, then rename)."""
    with contextlib.suppress(OSError):
        state_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state_dir / SOC_FILE, {"soc": round(soc, 6), "saved": wall})


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON to `path` through a temporary file and a rename; log failures."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        log.error("cannot write %s: %s", path, err)
