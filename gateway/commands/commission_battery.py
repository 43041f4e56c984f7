"""Commissioning checks of the battery side: serial port, Logic boards and their readings,
Modbus devices, the current sensor's zero offset and the discrete inputs.

Each check adds its verdicts to the report and never raises for an expected failure.
"""

from __future__ import annotations

from typing import Any

from gateway.commands.commission_report import Report
from gateway.commands.preflight import current_sources
from gateway.config import GatewayConfig
from gateway.control.settings import resolve
from gateway.core.devices import device_problem, os_reason
from gateway.core.errors import GatewayError
from gateway.protocols import logic_map

PLAUSIBLE_TEMP_C = (-30.0, 80.0)
ZERO_CURRENT_TOLERANCE_A = 0.5


# --- Logic boards ------------------------------------------------------------------------


async def check_logic(config: GatewayConfig, report: Report) -> bool:
    """Serial port, boards and readings; True when the battery looked safe to switch."""
    if config.gateway.mode == "bridge":
        report.add("logic", "skip", "bridge mode: the BMS Main 2.x polls the Logic boards")
        return False
    port = config.logic.port
    if port is None:
        report.add("serial port", "skip", "logic.port is null: the embedded simulator runs")
        return False
    from pymodbus.client import AsyncModbusSerialClient  # noqa: PLC0415

    client = AsyncModbusSerialClient(
        port,
        baudrate=config.logic.baudrate,
        parity=config.logic.parity,
        stopbits=config.logic.stopbits,
        bytesize=config.logic.bytesize,
        timeout=config.logic.timeout_s,
        retries=1,
        reconnect_delay=0,
        name="commission",
    )
    try:
        opened = await client.connect()
    except OSError as err:
        report.add("serial port", "fail", os_reason(err, port), "check logic.port")
        return False
    if not opened:
        why = device_problem(port) or f"{port} does not open as a serial port"
        report.add("serial port", "fail", why, "check logic.port and the RS-485 adapter")
        return False
    report.add("serial port", "pass", f"{port} open at {config.logic.baudrate} Bd")
    try:
        return await _boards(config, report, client)
    finally:
        client.close()


async def _read(client: Any, board: int, count: int) -> list[int] | str:
    from pymodbus.exceptions import ModbusException  # noqa: PLC0415

    try:
        rr = await client.read_input_registers(0, count=count, device_id=board)
    except (ModbusException, OSError) as err:
        text = str(err)
        return "no reply" if "No response" in text else text
    if rr.isError():
        return f"exception reply {getattr(rr, 'exception_code', '?')}"
    return list(rr.registers)


async def _boards(config: GatewayConfig, report: Report, client: Any) -> bool:
    logic = config.logic
    settings = resolve(config)
    prot = settings.protections
    lo_v = prot["cell_undervoltage"].threshold or 0.0
    hi_v = prot["cell_overvoltage"].threshold or 5.0
    safe = True
    cells_seen: list[float] = []
    for board in logic.addresses:
        step = f"board {board}"
        header = await _read(client, board, logic_map.REG_CELL_VOLTAGES)
        if isinstance(header, str):
            report.add(
                step,
                "fail",
                f"does not answer ({header})",
                "check its address switches, the RS-485 wiring (A/B, termination) and "
                f"logic.baudrate ({logic.baudrate})",
            )
            safe = False
            continue
        cells = header[logic_map.REG_CELL_COUNT]
        sensors = header[logic_map.REG_SENSOR_COUNT]
        if header[logic_map.REG_DEVICE_ID] != logic_map.DEVICE_ID:
            report.add(step, "fail", "answers, but is not a BMS Logic board", "check the address")
            safe = False
            continue
        regs = await _read(
            client,
            board,
            logic_map.registers_to_read(
                min(cells, logic_map.MAX_CELLS), min(sensors, logic_map.MAX_SENSORS)
            ),
        )
        if isinstance(regs, str):
            report.add(step, "fail", f"unreadable reply: {regs}", "check the wiring")
            safe = False
            continue
        try:
            reading = logic_map.decode_input_registers(regs, cells, sensors)
        except GatewayError as err:
            report.add(step, "fail", f"unreadable reply: {err}", "check the wiring")
            safe = False
            continue
        counts = f"{cells} cells, {sensors} sensors, firmware {reading.firmware}"
        if cells != logic.cells_per_board or sensors != logic.sensors:
            report.add(
                step,
                "fail",
                f"{counts}; the config expects {logic.cells_per_board} cells, "
                f"{logic.sensors} sensors",
                f"set logic.cells_per_board: {cells} and logic.sensors_per_board: {sensors} "
                "(or fix the board's setting)",
            )
            safe = False
        else:
            report.add(step, "pass", counts)
        safe = _plausible(report, board, reading, lo_v, hi_v) and safe
        cells_seen.extend(reading.cell_voltages_v)
    if cells_seen:
        spread = max(cells_seen) - min(cells_seen)
        limit = prot["cell_imbalance"].threshold or 0.1
        report.add(
            "cell balance",
            "pass" if spread <= limit else "warn",
            f"spread {spread * 1000:.0f} mV over {len(cells_seen)} cells "
            f"(limit {limit * 1000:.0f} mV)",
            "balance the cells before the first full charge",
        )
    return safe


def _plausible(
    report: Report, board: int, reading: logic_map.LogicBoardReading, lo_v: float, hi_v: float
) -> bool:
    bad_v = [
        f"c{i} {v:.3f} V" for i, v in enumerate(reading.cell_voltages_v, 1) if not lo_v <= v <= hi_v
    ]
    bad_t = [
        f"t{i} {'missing' if t is None else f'{t:.1f} °C'}"
        for i, t in enumerate(reading.temperatures_c, 1)
        if t is None or not PLAUSIBLE_TEMP_C[0] <= t <= PLAUSIBLE_TEMP_C[1]
    ]
    step = f"board {board} readings"
    if not bad_v and not bad_t:
        vs = reading.cell_voltages_v
        detail = f"cells {min(vs):.3f}..{max(vs):.3f} V" if vs else "no cells"
        report.add(step, "pass", detail)
        return True
    report.add(
        step,
        "fail",
        "implausible: " + ", ".join(bad_v + bad_t),
        f"cells must read {lo_v:g}..{hi_v:g} V and sensors "
        f"{PLAUSIBLE_TEMP_C[0]:g}..{PLAUSIBLE_TEMP_C[1]:g} °C: check the sense wires and "
        "sensor plugs of those channels",
    )
    return False


# --- Modbus devices (the bridged BMS Main 2.x, meters) ---------------------------------------


async def check_modbus_devices(config: GatewayConfig, report: Report) -> None:
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient  # noqa: PLC0415

    from gateway.protocols.profiles import load_profile  # noqa: PLC0415

    for dev in config.modbus.devices:
        step = f"modbus {dev.name}"
        profile = load_profile(dev.profile)
        d = profile.defaults
        unit = dev.unit_id if dev.unit_id is not None else int(d.get("unit_id", 1))
        client: Any
        if dev.transport == "tcp":
            where = f"{dev.host}:{dev.port or int(d.get('port', 502))}"
            client = AsyncModbusTcpClient(
                dev.host, port=dev.port or int(d.get("port", 502)), timeout=dev.timeout_s,
                retries=1,
            )  # fmt: skip
        else:
            where = str(dev.serial_port)
            client = AsyncModbusSerialClient(
                str(dev.serial_port), baudrate=dev.baudrate or int(d.get("baudrate", 9600)),
                parity=dev.parity or str(d.get("parity", "N")), timeout=dev.timeout_s, retries=1,
            )  # fmt: skip
        try:
            if not await client.connect():
                why = device_problem(where) if dev.transport == "rtu" else None
                report.add(
                    step, "fail", why or f"cannot connect to {where}",
                    f"check modbus.devices ({dev.name}): address, port, cable",
                )  # fmt: skip
                continue
            block = profile.blocks[0] if profile.blocks else None
            if block is None:
                report.add(step, "pass", f"{where} connected ({profile.name})")
                continue
            read = (
                client.read_input_registers
                if block.function == 4
                else client.read_holding_registers
            )
            count = min(block.count, dev.max_registers)
            rr = await read(block.start, count=count, device_id=unit)
            if rr.isError():
                report.add(
                    step, "fail", f"{where} unit {unit} answered with an exception reply",
                    "check the unit id (modbus.devices.*.unit_id) and the profile",
                )  # fmt: skip
            else:
                report.add(step, "pass", f"{where} unit {unit} answers ({profile.name})")
        except Exception as err:  # pymodbus raises its own errors for no reply
            text = "no reply" if "No response" in str(err) else os_reason(err)
            report.add(step, "fail", f"{where} unit {unit}: {text}", "check the unit id and link")
        finally:
            client.close()


# --- current sensor, inputs ---------------------------------------------------------------


async def check_current(config: GatewayConfig, report: Report) -> None:
    sources = current_sources(config)
    if config.gateway.mode == "bridge":
        report.add("current sensor", "skip", "bridge mode: the BMS Main 2.x measures it")
        return
    adc = config.drivers.adc
    if adc is None or (adc.backend == "sim" and not config.embedded_simulator):
        if sources:
            report.add("current sensor", "pass", f"current from {', '.join(sources)}")
        else:
            report.add(
                "current sensor",
                "fail",
                "no current source: the engine closes no contactor without a current reading",
                "set drivers.adc to the board's ADC (docs/hardware.md) or add a Modbus meter "
                "that feeds current_a (modbus.devices)",
            )
        return
    from gateway.commands.calibrate import measure, residual_current_a  # noqa: PLC0415

    try:
        offset_v, n = await measure(config, samples=10, interval_s=0.02)
    except GatewayError as err:
        report.add("current sensor", "fail", str(err), "check the sensor's supply and plug")
        return
    residual_a = residual_current_a(config, offset_v)
    detail = f"zero offset {offset_v * 1000:+.2f} mV over {n} readings, reads {residual_a:+.2f} A"
    if abs(residual_a) <= ZERO_CURRENT_TOLERANCE_A:
        report.add("current sensor", "pass", detail + " (with no current flowing)")
    else:
        report.add(
            "current sensor",
            "warn",
            detail + "; if no current flows now, calibrate",
            f"set current_sensor.zero_offset_v: {offset_v:.5f} (or run "
            "`bms-gateway calibrate-current CONFIG`)",
        )


def check_inputs(config: GatewayConfig, report: Report) -> None:
    if config.drivers.inputs.backend == "sim" and not config.embedded_simulator:
        report.add("inputs", "skip", "drivers.inputs is sim: no discrete inputs to read")
        return
    from gateway.hal.drivers import build_drivers  # noqa: PLC0415

    try:
        drivers = build_drivers(config)
    except GatewayError as err:
        report.add("inputs", "fail", str(err), "check drivers.inputs")
        return
    try:
        states = drivers.inputs.read_inputs()
    except Exception as err:  # a driver's own read failure
        report.add("inputs", "fail", f"unreadable: {err}", "check drivers.inputs")
        return
    finally:
        drivers.close()
    parts = []
    for n, a in config.inputs.assignments().items():
        if n - 1 < len(states):
            active = states[n - 1] != a.invert
            parts.append(f"{n}={'active' if active else 'inactive'} ({a.signal})")
    report.add("inputs", "pass", ", ".join(parts))
