"""The gateway's own Modbus server: its state in the BMS Main 2.x layout plus an extension block.

Input registers (function 04), low word first, REAL32 = IEEE-754 single (NaN = unknown):

- the documented `bms-main-2x` registers (versions, RTC, inputs, current, temperatures,
  humidity, Errors 1/2, outputs, SOC, Logic count, limits); the journal is not served;
- the extension block at 0x3000 (`extension_profile()`; table in docs/modbus.md): a REAL32
  per row of the measurement table (pack voltage, power, min/max/delta, limits... at the
  row's `modbus_address`), relays/outputs/inputs, all gateway error and signal
  bits, per-cell voltages (0x3100 + (board-1)*18 + (cell-1), U16 mV, 0xFFFF unknown),
  per-sensor temperatures (0x3300 + ..., S16 0.1 °C, 0x8000 unknown) and board temperatures.

The register image is rebuilt from `ctx.store.state` every `update_interval_s` by this
component's own task; requests are answered from that image, so a Modbus client never waits
on, or blocks, the control path.

Writes (functions 06/16): refused with ILLEGAL FUNCTION (01) while `writes_enabled` is false.
When enabled, only these holding registers are accepted (anything else: ILLEGAL DATA ADDRESS
(02); a bad value: ILLEGAL DATA VALUE (03)):

- 0x5100 + bit (IR 0x2000 bit) and 0x5110 + bit (IR 0x20F4 bit): input-signal override,
  0 = force off, 1 = force on, >= 2 = follow the physical input. Published as point
  `override.<signal>` (0, 1 or 2) plus a `SignalOverridden` notice;
- 0x3000: write 1 = request an error reset. Published as point `request.error_reset` (a
  counter that increments per request) plus an `ErrorResetRequested` notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence

from prometheus_client import Counter

from gateway import __version__
from gateway.adapters.modbus.events import ErrorResetRequested, SignalOverridden
from gateway.board import OUTPUTS, RELAYS
from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.core.context import GatewayContext
from gateway.core.events import PointsRead
from gateway.core.state import GatewayState
from gateway.links.modbus_slave import ExceptionCode, Ranges, serve_rtu, serve_tcp
from gateway.protocols import logic_map
from gateway.protocols.main2x import HR_OVERRIDE_1, OVERRIDE_FOLLOW, override_registers
from gateway.protocols.modbus_profile import Point, PointValue, Profile, encode_image
from gateway.protocols.profiles import load_profile
from gateway.publishers.measurements import MEASUREMENTS
from gateway.publishers.modbus_server_section import ModbusServerSection
from gateway.publishers.modbus_write_guard import override_is_less_safe

log = logging.getLogger(__name__)

MODBUS_MEASUREMENTS = tuple(m for m in MEASUREMENTS if "modbus" in m.outputs)

EXT_BASE = 0x3000
EXT_CELLS = 0x3100
EXT_TEMPERATURES = 0x3300
EXT_BOARD_TEMPERATURES = 0x3500
HR_ERROR_RESET = 0x3000
LAYOUT_VERSION = 1
NAN32 = 0x7FC00000
SOURCE = "modbus_server"


def extension_profile(
    boards: int = logic_map.MAX_BOARDS, cells: int = logic_map.MAX_CELLS
) -> Profile:
    """The gateway extension block as a profile (the adapter can read a gateway with it)."""
    pts: list[Point] = []

    def real(name: str, addr: int, unit: str) -> None:
        pts.append(Point(name=name, address=addr, type="REAL32", unit=unit, missing=NAN32))

    pts += [
        Point(name="ext.layout_version", address=EXT_BASE, type="U16"),
        Point(name="ext.mode", address=EXT_BASE + 1, type="U16", description="0 ctrl, 1 bridge"),
        Point(name="ext.boards_configured", address=EXT_BASE + 2, type="U16"),
        Point(name="ext.boards_online", address=EXT_BASE + 3, type="U16"),
    ]
    for m in MODBUS_MEASUREMENTS:
        real(m.modbus_point, m.modbus_address, m.unit)
    pts += [
        Point(name="ext.relays", address=0x3020, type="bitfield16",
              bits={i: f"ext.relay.{i + 1}" for i in range(4)}),
        Point(name="ext.outputs", address=0x3021, type="bitfield16",
              bits={i: f"ext.output.{i + 1}" for i in range(4)}),
        Point(name="ext.inputs", address=0x3022, type="bitfield16",
              bits={i: f"ext.input.{i + 1}" for i in range(4)}),
        Point(name="ext.running", address=0x3023, type="U16"),
        Point(name="ext.errors", address=0x3024, type="bitfield32",
              bits={i: f"ext.error.{n}" for i, n in enumerate(ERROR_NAMES)}),
        Point(name="ext.signals", address=0x3026, type="bitfield32",
              bits={i: f"ext.signal.{n}" for i, n in enumerate(SIGNAL_NAMES)}),
        Point(name="ext.boards_online_mask", address=0x3028, type="bitfield32"),
    ]  # fmt: skip

    def temperature(name: str, addr: int) -> None:
        pts.append(Point(name=name, address=addr, type="S16", scale=0.1, unit="°C", missing=0x8000))

    for b in range(1, boards + 1):
        for c in range(1, cells + 1):
            pts.append(
                Point(
                    name=f"ext.board.{b}.cell.{c}_v",
                    address=EXT_CELLS + (b - 1) * cells + (c - 1),
                    type="U16",
                    scale=0.001,
                    unit="V",
                    missing=0xFFFF,
                )
            )
            temperature(
                f"ext.board.{b}.temperature.{c}_c", EXT_TEMPERATURES + (b - 1) * cells + (c - 1)
            )
        temperature(f"ext.board.{b}.board_temperature_c", EXT_BOARD_TEMPERATURES + (b - 1))
    return Profile(
        name="bms-gateway-ext",
        description="bms-gateway extension block (input registers 0x3000-0x3516)",
        points=tuple(pts),
        blocks=(),
        defaults={"unit_id": 32, "word_order": "low_first"},
    )


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def main2x_values(state: GatewayState, wall: str) -> dict[str, PointValue]:
    """Values for the documented bms-main-2x registers, from the gateway state."""
    ctl = state.control
    v: dict[str, PointValue] = {
        k: val for k, val in state.points.items() if k.startswith(("main2x.", "output."))
    }  # a bridged Main 2.x passes through; our own values below win
    v.update(
        {
            "main2x.hardware_version": "0.0",
            "main2x.firmware_version": __version__,
            "main2x.bootloader_version": "0.0.0",
            "main2x.rtc": wall,
            "main2x.current_a": _nan(state.current_a),
            "main2x.external_temperature_c": _nan(state.external_temperature_c),
            "main2x.humidity_pct": _nan(state.humidity_pct),
            "main2x.soc_pct": math.nan if ctl.soc is None else ctl.soc * 100.0,
            "main2x.logic_boards": len(state.boards),
            "main2x.charge_current_limit_a": _nan(ctl.limits.get("ccl_a")),
            "main2x.discharge_current_limit_a": _nan(ctl.limits.get("dcl_a")),
        }
    )
    if "charger_connected" in ctl.signals:
        v["main2x.input.charger_connected"] = ctl.signals["charger_connected"]
    for key in ("main2x.vcs_v", "main2x.vref_v", "main2x.aux_vcs_v", "main2x.aux_vref_v",
                "main2x.current_sensor_reference_line_v", "main2x.max_charge_current_a",
                "main2x.max_discharge_current_a"):  # fmt: skip
        v.setdefault(key, math.nan)
    for name in ERROR_NAMES:  # the engine's errors, plus errors raised by a bridged board
        v[f"error.{name}"] = name in ctl.errors_active or state.points.get(f"error.{name}") is True
    for n in OUTPUTS:
        sw = ctl.outputs.get(n)
        v[f"output.{n}"] = bool(sw.on) if sw is not None else bool(v.get(f"output.{n}", False))
    return v


def extension_values(state: GatewayState, bridge: bool) -> dict[str, PointValue]:
    """Values for the extension block, from the gateway state (absent key = unknown)."""
    ctl = state.control
    v: dict[str, PointValue] = {
        "ext.layout_version": LAYOUT_VERSION,
        "ext.mode": 1 if bridge else 0,
        "ext.boards_configured": len(state.boards),
        "ext.boards_online": state.boards_online,
        "ext.running": int(ctl.running),
    }
    for m in MODBUS_MEASUREMENTS:  # REAL32 rows of the measurement table (absent = NaN)
        if (value := m.value(state)) is not None:
            v[m.modbus_point] = value
    for n in RELAYS:  # the board has as many relays as outputs and inputs
        relay, out = ctl.relays.get(n), ctl.outputs.get(n)
        v[f"ext.relay.{n}"] = relay is not None and relay.on
        v[f"ext.output.{n}"] = out is not None and out.on
        v[f"ext.input.{n}"] = len(state.inputs) >= n and bool(state.inputs[n - 1])
    for name in ERROR_NAMES:
        raised = state.points.get(f"error.{name}") is True
        v[f"ext.error.{name}"] = name in ctl.errors_active or raised
    for name in SIGNAL_NAMES:
        v[f"ext.signal.{name}"] = bool(ctl.signals.get(name))
    mask = 0
    for b, board in state.boards.items():
        if not 1 <= b <= logic_map.MAX_BOARDS:
            continue
        if board.online:
            mask |= 1 << (b - 1)
        else:
            continue  # offline: its values are unknown
        for c, volts in enumerate(board.cell_voltages_v[: logic_map.MAX_CELLS], start=1):
            if 0 <= volts <= 65.0:
                v[f"ext.board.{b}.cell.{c}_v"] = volts
        for s, temp in enumerate(board.temperatures_c[: logic_map.MAX_SENSORS], start=1):
            if temp is not None and -3276.0 <= temp <= 3276.0:
                v[f"ext.board.{b}.temperature.{s}_c"] = temp
        bt = board.board_temperature_c
        if bt is not None and -3276.0 <= bt <= 3276.0:
            v[f"ext.board.{b}.board_temperature_c"] = bt
    v["ext.boards_online_mask"] = mask
    return v


class GatewayRegisterMap:
    """The served register space (a `RegisterMap`), rebuilt from the state by `refresh`."""

    def __init__(self, ctx: GatewayContext, section: ModbusServerSection) -> None:
        self._ctx = ctx
        self._section = section
        main = load_profile("bms-main-2x")
        self.main = Profile(
            name=main.name,
            description=main.description,
            points=tuple(p for p in main.points if not p.name.startswith("main2x.journal.")),
            blocks=(),
            defaults=main.defaults,
        )
        self.ext = extension_profile()
        self._ranges = [(p.address, p.count) for p in (*self.main.points, *self.ext.points)]
        self.image: dict[int, int] = {}
        self.overrides: dict[int, int] = dict.fromkeys(override_registers(), OVERRIDE_FOLLOW)
        self.reset_requests = 0
        self.requests = Counter(
            "bms_modbus_server_requests",
            "Requests to the gateway's Modbus server, by kind (read, write) and result "
            "(ok, illegal_function, illegal_data_address, illegal_data_value, device_failure).",
            ["kind", "result"],
            registry=ctx.registry,
        )
        for kind in ("read", "write"):  # every series exists at 0 from the start
            for result in ("ok", *(code.name.lower() for code in ExceptionCode)):
                self.requests.labels(kind=kind, result=result)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the input-register image from the current state."""
        state = self._ctx.store.state
        clock = self._ctx.clock
        wall = clock.wall(clock.now()).strftime("%Y-%m-%dT%H:%M:%S")
        values = main2x_values(state, wall)
        image = encode_image(self.main, values, 4)
        image.update(
            encode_image(
                self.ext, extension_values(state, self._ctx.config.gateway.mode == "bridge"), 4
            )
        )
        self.image = image

    def input_ranges(self) -> Ranges:
        """Documented Main 2.x registers (without the journal) plus the extension block."""
        return self._ranges

    def holding_ranges(self) -> Ranges:
        """Error reset and the override registers."""
        return [(HR_ERROR_RESET, 1), (HR_OVERRIDE_1, 22)]

    def _count(self, kind: str, result: ExceptionCode | None) -> None:
        label = "ok" if result is None else result.name.lower()
        self.requests.labels(kind=kind, result=label).inc()

    def read(self, function: int, address: int, count: int) -> list[int] | ExceptionCode:
        """Answer from the image (input registers) or the write registers (holding)."""
        if function == 4:
            image = self.image
        else:
            image = {HR_ERROR_RESET: 0}
            image.update({HR_OVERRIDE_1 + i: OVERRIDE_FOLLOW for i in range(22)})
            image.update(self.overrides)
        try:
            regs = [image[a] for a in range(address, address + count)]
        except KeyError:
            self._count("read", ExceptionCode.ILLEGAL_DATA_ADDRESS)
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        self._count("read", None)
        return regs

    def write(self, address: int, values: Sequence[int]) -> ExceptionCode | None:
        """Accept only the documented writes, and only when writes are enabled."""
        result = self._write(address, values)
        self._count("write", result)
        return result

    def _write(self, address: int, values: Sequence[int]) -> ExceptionCode | None:
        if not self._section.writes_enabled:
            return ExceptionCode.ILLEGAL_FUNCTION
        signals = override_registers()
        addrs = list(range(address, address + len(values)))
        if not all(a in signals or a == HR_ERROR_RESET for a in addrs):
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        if any(a == HR_ERROR_RESET and v != 1 for a, v in zip(addrs, values, strict=True)):
            return ExceptionCode.ILLEGAL_DATA_VALUE
        if not self._section.allow_less_safe_writes:
            for a, v in zip(addrs, values, strict=True):
                if a == HR_ERROR_RESET or override_is_less_safe(
                    signals[a], self.overrides.get(a, OVERRIDE_FOLLOW), min(v, OVERRIDE_FOLLOW)
                ):
                    what = "error reset" if a == HR_ERROR_RESET else f"override {signals[a]}={v}"
                    log.warning(
                        "modbus server write refused: %s may make the battery less safe "
                        "(modbus_server.allow_less_safe_writes is false)",
                        what,
                    )
                    return ExceptionCode.ILLEGAL_DATA_VALUE
        now = self._ctx.clock.now()
        points: dict[str, PointValue] = {}
        for a, value in zip(addrs, values, strict=True):
            if a == HR_ERROR_RESET:
                self.reset_requests += 1
                points["request.error_reset"] = self.reset_requests
                self._ctx.bus.publish(ErrorResetRequested(at_s=now, source=SOURCE))
                continue
            mode = min(value, OVERRIDE_FOLLOW)
            self.overrides[a] = value
            points[f"override.{signals[a]}"] = mode
            self._ctx.bus.publish(
                SignalOverridden(
                    at_s=now,
                    signal=signals[a],
                    mode=("off", "on", "physical")[mode],
                    source=SOURCE,
                )
            )
        self._ctx.bus.publish(PointsRead(at_s=now, source=SOURCE, values=points))
        log.info("modbus server write accepted: %s", points)
        return None


class ModbusServer:
    """Serves `GatewayRegisterMap` over TCP and/or RTU and keeps its image fresh."""

    name = "modbus_server"

    def __init__(self, ctx: GatewayContext, section: ModbusServerSection) -> None:
        self._ctx = ctx
        self._section = section
        self.regmap = GatewayRegisterMap(ctx, section)

    async def run(self) -> None:
        """Serve until cancelled."""
        s = self._section
        async with contextlib.AsyncExitStack() as stack:
            if s.port is not None:
                await stack.enter_async_context(serve_tcp(self.regmap, s.host, s.port, s.unit_id))
                log.info("modbus server on tcp %s:%d unit %d", s.host, s.port, s.unit_id)
            if s.rtu is not None:
                await stack.enter_async_context(
                    serve_rtu(
                        self.regmap,
                        s.rtu.port,
                        s.unit_id,
                        baudrate=s.rtu.baudrate,
                        parity=s.rtu.parity,
                        stopbits=s.rtu.stopbits,
                    )
                )
                log.info("modbus server on rtu %s unit %d", s.rtu.port, s.unit_id)
            while True:
                await self._ctx.clock.sleep(s.update_interval_s)
                try:
                    self.regmap.refresh()
                except Exception:  # a state the encoder cannot represent must not stop serving
                    log.exception("modbus server image refresh failed; serving the last one")
                await asyncio.sleep(0)


def create(ctx: GatewayContext) -> ModbusServer | None:
    """Build the server, or None when `modbus_server.enabled` is false."""
    section: ModbusServerSection | None = getattr(ctx.config, "modbus_server", None)
    if section is None or not section.enabled:
        return None
    return ModbusServer(ctx, section)
