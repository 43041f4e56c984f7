"""One contract for every driver backend (style lesson 14).

Each backend is built the way the gateway builds it (config -> `bms_gateway.drivers` entry
point -> backend -> driver) and checked against the *physical* side it drives:
- sim: the in-memory state;
- gpiod: a fake GPIO chip injected at the `gpiod.request_lines` seam (there is no GPIO chip
  or gpio-sim on CI machines; the fake models the kernel's active-low and output-value rules
  on the real `gpiod.LineSettings` the driver builds), plain and active-low wiring;
- modbus: a pymodbus Modbus TCP server on loopback (coils, discrete inputs, input registers);
- iio / sysfs_led: temporary sysfs trees.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.hal.backend import DriverEnv, DriverError
from gateway.hal.base import (
    ADC_CHANNELS,
    INDICATORS,
    AdcDriver,
    IndicatorDriver,
    InputDriver,
    OutputDriver,
    RelayDriver,
)
from gateway.hal.drivers import Drivers, build_drivers
from tests.support.fake_gpio import FakeChip
from tests.support.modbus_io_server import IoModule, ModbusIoServer


@dataclass
class Rig:
    """Drivers plus a view of the hardware they drive."""

    drivers: Drivers
    relay_physical: Callable[[int], bool] = lambda r: False
    output_physical: Callable[[int], bool] = lambda o: False
    indicator_physical: Callable[[str], bool] = lambda n: False
    set_input: Callable[[int, bool], None] = lambda i, c: None
    set_volts: Callable[[str, float], None] = lambda ch, v: None
    break_hardware: Callable[[], None] = lambda: None
    mapped_indicators: tuple[str, ...] = INDICATORS
    tolerance_v: float = 1e-9
    syncs: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def sync(self) -> None:
        """Push commands to and pull readings from the hardware (Modbus: one poll)."""
        for d in self.drivers.all():
            refresh = getattr(d, "refresh", None)
            if refresh is not None:
                with contextlib.suppress(DriverError):
                    await refresh()


def _build(drivers_cfg: dict[str, Any], env: DriverEnv | None = None) -> Drivers:
    config = load_config(overrides={"drivers": drivers_cfg}, env=False)
    return build_drivers(config, pack=None, env=env)


def _sim_rig(_: Path) -> Iterator[Rig]:
    d = _build({})
    adc = load_sim_adc()
    d.adc = adc
    yield Rig(
        drivers=d,
        relay_physical=lambda r: d.relays.closed[r],  # type: ignore[attr-defined]
        output_physical=lambda o: d.outputs.on[o],  # type: ignore[attr-defined]
        indicator_physical=lambda n: d.indicators.on[n],  # type: ignore[attr-defined]
        set_input=lambda i, c: d.inputs.closed.__setitem__(i - 1, c),  # type: ignore[attr-defined]
        set_volts=adc.volts.__setitem__,
    )
    d.close()


def load_sim_adc() -> Any:
    from gateway.hal.sim import SimAdc

    return SimAdc()


def _gpiod_rig(active_low: bool) -> Callable[[Path], Iterator[Rig]]:
    def make(_: Path) -> Iterator[Rig]:
        chip = FakeChip("/dev/gpiochip0")
        common = {"backend": "gpiod", "chip": "/dev/gpiochip0", "active_low": active_low}
        d = _build(
            {
                "relays": {**common, "lines": [0, 1, 2, 3]},
                "outputs": {**common, "lines": [4, 5, 6, 7]},
                "inputs": {**common, "lines": [8, 9, 10, 11], "bias": "pull_up"},
                "indicators": {
                    **common,
                    "lines": {n: 12 + i for i, n in enumerate(INDICATORS)},
                },
                "adc": None,
            },
            DriverEnv(gpio_request_lines=chip.request_lines),
        )

        def active(offset: int) -> bool:
            return chip.levels.get(offset, False) != active_low

        def broken() -> None:
            for req in chip.requests:
                req.released = True

        yield Rig(
            drivers=d,
            relay_physical=lambda r: active(r - 1),
            output_physical=lambda o: active(3 + o),
            indicator_physical=lambda n: active(12 + INDICATORS.index(n)),
            set_input=lambda i, c: chip.levels.__setitem__(7 + i, c != active_low),
            break_hardware=broken,
        )
        for req in chip.requests:
            req.released = False
        d.close()

    return make


def _modbus_rig(_: Path) -> Iterator[Rig]:
    module = IoModule()
    server = ModbusIoServer(module)
    server.start()
    link = {"backend": "modbus", "host": "127.0.0.1", "port": server.port, "timeout_s": 2.0}
    d = _build(
        {
            "relays": {**link, "coils": [0, 1, 2, 3]},
            "outputs": {**link, "coils": [4, 5, 6, 7]},
            "inputs": {**link, "discrete_inputs": [0, 1, 2, 3]},
            "indicators": {**link, "coils": {n: 8 + i for i, n in enumerate(INDICATORS)}},
            "adc": {
                **link,
                "channels": {
                    c: {"address": 10 + i, "scale": 0.001} for i, c in enumerate(ADC_CHANNELS)
                },
            },
        }
    )

    def set_volts(ch: str, v: float) -> None:
        module.input_registers[10 + ADC_CHANNELS.index(ch)] = round(v * 1000)

    def broken() -> None:
        module.fail = True

    yield Rig(
        drivers=d,
        relay_physical=lambda r: module.coils[r - 1],
        output_physical=lambda o: module.coils[3 + o],
        indicator_physical=lambda n: module.coils[8 + INDICATORS.index(n)],
        set_input=lambda i, c: module.discrete_inputs.__setitem__(i - 1, c),
        set_volts=set_volts,
        break_hardware=broken,
        tolerance_v=0.0006,
    )
    module.fail = False
    d.close()
    server.stop()


def _iio_rig(tmp: Path) -> Iterator[Rig]:
    dev = tmp / "iio" / "iio:device1"
    dev.mkdir(parents=True)
    (dev / "name").write_text("ads1115\n")
    (dev / "in_voltage_scale").write_text("0.125000000\n")  # shared scale, mV per LSB
    (dev / "in_voltage3_scale").write_text("0.250000000\n")  # per-channel scale wins
    for i in range(4):
        (dev / f"in_voltage{i}_raw").write_text("0\n")
    d = _build(
        {
            "adc": {
                "backend": "iio",
                "root": str(tmp / "iio"),
                "name": "ads1115",
                "channels": {c: {"index": i} for i, c in enumerate(ADC_CHANNELS)},
            }
        }
    )

    def set_volts(ch: str, v: float) -> None:
        i = ADC_CHANNELS.index(ch)
        scale = 0.25 if i == 3 else 0.125
        (dev / f"in_voltage{i}_raw").write_text(f"{round(v * 1000 / scale)}\n")

    def broken() -> None:
        for i in range(4):
            (dev / f"in_voltage{i}_raw").unlink()

    yield Rig(drivers=d, set_volts=set_volts, break_hardware=broken, tolerance_v=0.00013)
    d.close()


def _sysfs_led_rig(tmp: Path) -> Iterator[Rig]:
    leds = tmp / "leds"
    mapping = {n: f"bms:{n.lower()}" for n in INDICATORS[:5]}
    for i, led in enumerate(mapping.values()):
        (leds / led).mkdir(parents=True)
        (leds / led / "brightness").write_text("0\n")
        if i % 2 == 0:
            (leds / led / "max_brightness").write_text("255\n")
    d = _build({"indicators": {"backend": "sysfs_led", "root": str(leds), "leds": mapping}})

    def lit(n: str) -> bool:
        return (leds / mapping[n] / "brightness").read_text().strip() not in ("0", "")

    yield Rig(drivers=d, indicator_physical=lit, mapped_indicators=tuple(mapping))
    d.close()


RIGS: dict[str, Callable[[Path], Iterator[Rig]]] = {
    "sim": _sim_rig,
    "gpiod": _gpiod_rig(active_low=False),
    "gpiod_active_low": _gpiod_rig(active_low=True),
    "modbus": _modbus_rig,
    "iio": _iio_rig,
    "sysfs_led": _sysfs_led_rig,
}
FOR = {
    "relays": ["sim", "gpiod", "gpiod_active_low", "modbus"],
    "outputs": ["sim", "gpiod", "gpiod_active_low", "modbus"],
    "inputs": ["sim", "gpiod", "gpiod_active_low", "modbus"],
    "adc": ["sim", "modbus", "iio"],
    "indicators": ["sim", "gpiod", "gpiod_active_low", "modbus", "sysfs_led"],
}


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """The rig named by the test's parameter."""
    yield from RIGS[request.param](tmp_path)


def over(concern: str) -> pytest.MarkDecorator:
    """Parametrize a test over every backend that drives `concern`."""
    return pytest.mark.parametrize("rig", FOR[concern], indirect=True)


# --- relays -------------------------------------------------------------------------


@over("relays")
async def test_relays_satisfy_protocol_and_start_open(rig: Rig) -> None:
    relays = rig.drivers.relays
    assert isinstance(relays, RelayDriver)
    await rig.sync()
    for r in range(1, 5):
        assert relays.relay_closed(r) is False
        assert rig.relay_physical(r) is False


@over("relays")
async def test_relays_follow_commands(rig: Rig) -> None:
    relays = rig.drivers.relays
    relays.set_relay(1, True)
    relays.set_relay(3, True)
    await rig.sync()
    assert [rig.relay_physical(r) for r in range(1, 5)] == [True, False, True, False]
    assert [relays.relay_closed(r) for r in range(1, 5)] == [True, False, True, False]
    relays.set_relay(1, False)
    await rig.sync()
    assert [rig.relay_physical(r) for r in range(1, 5)] == [False, False, True, False]


@over("relays")
async def test_relay_number_out_of_range_is_refused(rig: Rig) -> None:
    for bad in (0, 5, -1):
        with pytest.raises(ValueError, match="relay"):
            rig.drivers.relays.set_relay(bad, True)


@over("relays")
async def test_lease_expiry_opens_every_relay(rig: Rig) -> None:
    relays = rig.drivers.relays
    assert relays.check_lease(1e9) is False  # no lease taken yet: nothing to lapse
    relays.renew_lease(10.0)
    for r in (1, 2, 4):
        relays.set_relay(r, True)
    await rig.sync()
    assert relays.check_lease(9.99) is False
    assert relays.check_lease(10.0) is False
    await rig.sync()
    assert [rig.relay_physical(r) for r in range(1, 5)] == [True, True, False, True]
    assert relays.check_lease(10.01) is True
    await rig.sync()
    assert not any(rig.relay_physical(r) for r in range(1, 5))
    assert not any(relays.relay_closed(r) for r in range(1, 5))
    assert relays.check_lease(20.0) is False  # lapsed once, reported once
    relays.renew_lease(30.0)
    relays.set_relay(2, True)
    await rig.sync()
    assert rig.relay_physical(2) is True


@over("relays")
async def test_open_all_and_close_open_everything_idempotently(rig: Rig) -> None:
    relays = rig.drivers.relays
    for r in range(1, 5):
        relays.set_relay(r, True)
    await rig.sync()
    assert all(rig.relay_physical(r) for r in range(1, 5))
    relays.open_all()
    relays.open_all()
    await rig.sync()
    assert not any(rig.relay_physical(r) for r in range(1, 5))
    relays.set_relay(4, True)
    await rig.sync()
    rig.drivers.close()
    assert not any(rig.relay_physical(r) for r in range(1, 5))
    rig.drivers.close()  # second close is harmless
    relays.open_all()
    with pytest.raises(DriverError):
        relays.set_relay(1, True)  # a closed driver never closes a relay again
    assert not any(rig.relay_physical(r) for r in range(1, 5))


# --- outputs ------------------------------------------------------------------------


@over("outputs")
async def test_outputs_switch_and_go_off_on_close(rig: Rig) -> None:
    outputs = rig.drivers.outputs
    assert isinstance(outputs, OutputDriver)
    await rig.sync()
    assert not any(rig.output_physical(o) for o in range(1, 5))
    outputs.set_output(2, True)
    outputs.set_output(4, True)
    await rig.sync()
    assert [rig.output_physical(o) for o in range(1, 5)] == [False, True, False, True]
    outputs.set_output(2, False)
    await rig.sync()
    assert [rig.output_physical(o) for o in range(1, 5)] == [False, False, False, True]
    with pytest.raises(ValueError, match=r"output|5"):
        outputs.set_output(5, True)
    rig.drivers.close()
    assert not any(rig.output_physical(o) for o in range(1, 5))


# --- inputs -------------------------------------------------------------------------


@over("inputs")
async def test_inputs_read_the_contacts(rig: Rig) -> None:
    inputs = rig.drivers.inputs
    assert isinstance(inputs, InputDriver)
    for pattern in ([False] * 4, [True, False, True, False], [False, True, True, True]):
        for i, closed in enumerate(pattern, start=1):
            rig.set_input(i, closed)
        await rig.sync()
        assert inputs.read_inputs() == tuple(pattern)


@over("inputs")
async def test_inputs_failure_raises_driver_error(rig: Rig) -> None:
    if rig.drivers.inputs.__class__.__name__ == "SimInputs":
        pytest.skip("in-memory inputs cannot fail")
    await rig.sync()
    rig.break_hardware()
    await rig.sync()
    with pytest.raises(DriverError):
        rig.drivers.inputs.read_inputs()


# --- ADC ----------------------------------------------------------------------------


@over("adc")
async def test_adc_reads_volts_per_channel(rig: Rig) -> None:
    adc = rig.drivers.adc
    assert isinstance(adc, AdcDriver)
    volts = {"vcs": 2.8125, "vref": 2.5, "vhs": 1.62, "vts": 0.75}
    for ch, v in volts.items():
        rig.set_volts(ch, v)
    await rig.sync()
    for ch, v in volts.items():
        got = adc.read_volts(ch)
        assert got is not None
        assert abs(got - v) <= rig.tolerance_v, (ch, got, v)
    with pytest.raises(ValueError, match="channel"):
        adc.read_volts("vbat")


@over("adc")
async def test_adc_failure_reads_none(rig: Rig) -> None:
    adc = rig.drivers.adc
    assert adc is not None
    if adc.__class__.__name__ == "SimAdc":
        adc.force("vcs", None)  # type: ignore[attr-defined]
        assert adc.read_volts("vcs") is None
        return
    rig.set_volts("vcs", 2.5)
    await rig.sync()
    assert adc.read_volts("vcs") is not None
    rig.break_hardware()
    await rig.sync()
    assert adc.read_volts("vcs") is None


# --- indicators ---------------------------------------------------------------------


@over("indicators")
async def test_indicators_light_and_go_dark_on_close(rig: Rig) -> None:
    ind = rig.drivers.indicators
    assert isinstance(ind, IndicatorDriver)
    await rig.sync()
    names = rig.mapped_indicators
    assert not any(rig.indicator_physical(n) for n in names)
    for n in names[::2]:
        ind.set_indicator(n, True)
    await rig.sync()
    assert [rig.indicator_physical(n) for n in names] == [i % 2 == 0 for i in range(len(names))]
    with pytest.raises(ValueError):
        ind.set_indicator("DS1", True)  # the power LED is not driven
    rig.drivers.close()
    assert not any(rig.indicator_physical(n) for n in names)


# --- selection ----------------------------------------------------------------------


def test_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"relays: .*no bms_gateway.drivers plugin named 'x'.*sim"
    ):
        load_config(overrides={"drivers": {"relays": {"backend": "x"}}}, env=False)


def test_backend_that_cannot_drive_a_concern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="drives only adc"):
        load_config(overrides={"drivers": {"relays": {"backend": "iio"}}}, env=False)


def test_backend_options_are_validated_with_the_backend_model() -> None:
    with pytest.raises(ConfigError, match="lines"):
        load_config(
            overrides={"drivers": {"relays": {"backend": "gpiod", "lines": [1, 2]}}}, env=False
        )
    with pytest.raises(ConfigError, match="bogus"):
        load_config(overrides={"drivers": {"inputs": {"backend": "modbus", "bogus": 1}}}, env=False)


def test_gpiod_busy_or_missing_chip_is_a_driver_error() -> None:
    chip = FakeChip("/dev/gpiochip0")
    env = DriverEnv(gpio_request_lines=chip.request_lines)
    relays = {"backend": "gpiod", "lines": [0, 1, 2, 3]}
    with pytest.raises(DriverError, match="gpiochip7"):
        _build({"relays": {**relays, "chip": "/dev/gpiochip7"}, "adc": None}, env)
    with pytest.raises(DriverError, match="busy"):
        _build({"relays": relays, "outputs": {**relays, "backend": "gpiod"}, "adc": None}, env)
    # the failed build released what it had requested
    assert all(r.released for r in chip.requests)


def test_sim_adc_without_a_pack_is_no_adc() -> None:
    assert _build({}).adc is None


async def test_modbus_drivers_on_one_bus_share_a_client(tmp_path: Path) -> None:
    gen = _modbus_rig(tmp_path)
    r = next(gen)
    try:
        links = {id(getattr(d, "link", None)) for d in r.drivers.all()}
        assert len(links) == 1
        await asyncio.sleep(0)
    finally:
        for _ in gen:
            pass
