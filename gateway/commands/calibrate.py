"""`bms-gateway calibrate-current [CONFIG]`: measure the current sensor's zero offset.

Run it with no current flowing (contactors open, charger and loads off). It reads Vcs and
Vref through the configured ADC driver, averages Vcs - Vref and prints the config line
`current_sensor.zero_offset_v` to paste into the config file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig, load_config
from gateway.core.errors import ConfigError, GatewayError
from gateway.hal.drivers import build_drivers
from gateway.protocols import analog


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "calibrate-current",
        help="measure the current sensor's zero offset (no current may flow)",
    )
    p.add_argument("config", nargs="?", type=Path, help="YAML config with a `drivers.adc`")
    p.add_argument("--samples", type=int, default=50, help="readings to average (default 50)")
    p.add_argument(
        "--interval-s", type=float, default=0.1, help="time between readings (default 0.1 s)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"invalid configuration:\n{err}", file=sys.stderr)
        return 2
    if args.samples < 1 or args.interval_s < 0:
        print("--samples must be >= 1 and --interval-s >= 0", file=sys.stderr)
        return 2
    try:
        offset_v, n = asyncio.run(measure(config, args.samples, args.interval_s))
    except GatewayError as err:
        print(f"calibration failed: {err}", file=sys.stderr)
        return 1
    residual_a = residual_current_a(config, offset_v)
    print(f"# {n} samples; with the present zero_offset_v the sensor reads {residual_a:+.3f} A")
    print("current_sensor:")
    print(f"  zero_offset_v: {offset_v:.5f}")
    return 0


def residual_current_a(config: GatewayConfig, offset_v: float) -> float:
    """What the sensor reads at zero current with the configured zero_offset_v."""
    cs = config.current_sensor
    return analog.current_from_volts(
        cs.vref_v + offset_v,
        cs.vref_v,
        nominal_current_a=cs.nominal_current_a,
        sensitivity_v=cs.sensitivity_v,
        zero_offset_v=cs.zero_offset_v,
        invert=cs.invert,
    )


async def measure(config: GatewayConfig, samples: int, interval_s: float) -> tuple[float, int]:
    """Average Vcs - Vref over plausible readings; return (offset V, samples used).

    Raises:
        GatewayError: no ADC is configured, or no reading was plausible.
    """
    drivers = build_drivers(config, pack=None)
    adc = drivers.adc
    if adc is None:
        drivers.close()
        raise GatewayError("no ADC driver configured (`drivers.adc`)")
    cs = config.current_sensor
    readings: list[tuple[float, float]] = []
    last_reason = ""
    try:
        for i in range(samples):
            refresh = getattr(adc, "refresh", None)
            if refresh is not None:
                try:
                    await refresh()
                except GatewayError as err:
                    last_reason = str(err)
            vcs = adc.read_volts("vcs")
            vref = adc.read_volts("vref") if cs.use_vref_input else cs.vref_v
            reason = analog.sensor_fault(
                vcs,
                vref,
                vref_min_v=cs.vref_min_v,
                vref_max_v=cs.vref_max_v,
                vcs_min_v=cs.vcs_min_v,
                vcs_max_v=cs.vcs_max_v,
            )
            if reason:
                last_reason = reason
            elif vcs is not None and vref is not None:
                readings.append((vcs, vref))
            if i + 1 < samples:
                await asyncio.sleep(interval_s)
    finally:
        drivers.close()
    if not readings:
        raise GatewayError(f"no plausible Vcs/Vref reading ({last_reason or 'unreadable'})")
    return analog.zero_offset(readings), len(readings)
