"""What the dashboard shows beyond the `state` message: words, since-when, error details.

`View.observe(state)` is called on every live tick with the `state` message; it remembers
when each relay, output, input and indicator pattern last changed. `View.on_event` (a
journal sink) keeps the detail, severity and time of every active error. `View.extras`
returns the `view` object of `/api/view` and of every live update (see docs/web.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.control.settings import resolve
from gateway.core.errors import ConfigError
from gateway.publishers.payloads import isotime
from gateway.publishers.web.words import describe, explain, switch_state

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.core.clock import Clock


@dataclass
class ErrorInfo:
    """What the events said about one active error."""

    severity: str
    detail: str
    since: str


def cell_limits(config: GatewayConfig) -> dict[str, float | None]:
    """The active cell voltage limits (trip and release) for the bars' colours."""
    try:
        settings = resolve(config)
    except ConfigError:
        return {}
    ov = settings.protections["cell_overvoltage"]
    uv = settings.protections["cell_undervoltage"]
    return {
        "max": ov.threshold if ov.enable else None,
        "max_tolerant": ov.tolerant if ov.enable else None,
        "min": uv.threshold if uv.enable else None,
        "min_tolerant": uv.tolerant if uv.enable else None,
        "balancing_start": settings.balancing_start_voltage,
    }


def latching(config: GatewayConfig) -> dict[str, bool]:
    """Which errors latch (stay until acknowledged) with this config."""
    try:
        settings = resolve(config)
    except ConfigError:
        return {}
    return {name: p.latch for name, p in settings.protections.items()}


class View:
    """Tracks changes and error details for the dashboard."""

    def __init__(self, config: GatewayConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self.limits = cell_limits(config)
        self.latch = latching(config)
        self._last: dict[str, Any] = {}
        self._since: dict[str, str] = {}
        self.errors: dict[str, ErrorInfo] = {}

    def on_event(self, _seq: int, _ts: float, message: dict[str, Any]) -> None:
        """Journal sink: remember error details."""
        kind = message.get("type")
        name = message.get("error")
        if not isinstance(name, str):
            return
        if kind == "error_raised":
            self.errors[name] = ErrorInfo(
                str(message.get("severity", "")),
                str(message.get("detail", "")),
                str(message.get("timestamp", "")),
            )
        elif kind == "error_cleared":
            self.errors.pop(name, None)

    def _track(self, key: str, value: Any, now: str) -> str:
        if key not in self._last or self._last[key] != value:
            self._last[key] = value
            self._since[key] = now
        return self._since[key]

    def observe(self, state: dict[str, Any]) -> None:
        """Note what changed since the previous tick."""
        now = state.get("timestamp") or isotime(self._clock.wall())
        for r in state.get("relays", []):
            self._track(f"relay_{r['relay']}", r["closed"], now)
        for o in state.get("outputs", []):
            self._track(f"output_{o['output']}", o["on"], now)
        for i in state.get("inputs", []):
            self._track(f"input_{i['input']}", i["closed"], now)
        for name in state.get("indicators", {}):
            self._track(name, tuple(state.get("reasons", {}).get(name, [])), now)

    def extras(self, state: dict[str, Any]) -> dict[str, Any]:
        """The `view` object for one `state` message."""
        reasons: dict[str, list[str]] = state.get("reasons", {})
        switches = []
        for r in state.get("relays", []):
            why = r.get("reasons", reasons.get(r["function"], []))
            switches.append(
                {
                    "kind": "relay",
                    "number": r["relay"],
                    "key": f"relay_{r['relay']}",
                    "function": r["function"],
                    "on": r["closed"],
                    "state": switch_state(r["function"], r["closed"]),
                    "reason": explain(why),
                    "since": r.get("since") or self._since.get(f"relay_{r['relay']}"),
                }
            )
        for o in state.get("outputs", []):
            why = o.get("reasons", reasons.get(o["function"], []))
            switches.append(
                {
                    "kind": "output",
                    "number": o["output"],
                    "key": f"output_{o['output']}",
                    "function": o["function"],
                    "on": o["on"],
                    "state": switch_state(o["function"], o["on"]),
                    "reason": explain(why),
                    "since": self._since.get(f"output_{o['output']}"),
                }
            )
        signals = self._config.inputs.assignments()
        for i in state.get("inputs", []):
            n = i["input"]
            signal = signals[n].signal if n in signals else "none"
            switches.append(
                {
                    "kind": "input",
                    "number": n,
                    "key": f"input_{n}",
                    "function": signal,
                    "on": i["closed"],
                    "state": "unknown" if i["closed"] is None else
                    ("closed" if i["closed"] else "open"),
                    "reason": "-" if signal == "none" else f"carries {describe(signal)}",
                    "since": self._since.get(f"input_{n}"),
                }
            )  # fmt: skip
        indicators = []
        for name, lit in state.get("indicators", {}).items():
            pattern = (reasons.get(name) or ["on" if lit else "off"])[0]
            indicators.append(
                {
                    "name": name,
                    "lit": lit,
                    "pattern": pattern,
                    "reason": describe(pattern),
                    "since": self._since.get(name),
                }
            )
        errors = [
            {
                "error": name,
                "words": describe(name),
                "severity": info.severity if info else "",
                "detail": info.detail if info else "",
                "since": info.since if info else None,
                "latched": self.latch.get(name, False),
            }
            for name in state.get("errors", [])
            for info in [self.errors.get(name)]
        ]
        blocking = [
            s for s in switches if s["kind"] == "relay" and not s["on"] and s["reason"] != "-"
        ]
        limits = {
            key: explain(reasons.get(key, [])) for key in ("cvl", "ccl", "dcl") if key in reasons
        }
        return {
            "gateway_id": self._config.gateway.id,
            "cell_limits": self.limits,
            "switches": switches,
            "indicators": indicators,
            "errors": errors,
            "limit_reasons": limits,
            "first_blocking": blocking[0]["reason"] if blocking else None,
            "allow_ack": self._config.commands.allow_ack,
        }
