"""Field interop of the inverter frames, checked against bytes worked out by hand.

Each expected frame below was computed on paper from the receivers' reading of the bytes
(issue 12, field interop): third-party decoders read the raw bytes, not our DBC, so these
tests compare raw bytes.
"""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from gateway.adapters.can.config import CanInverterSection, CanSection
from gateway.adapters.can.dbc import Frame, shipped
from gateway.adapters.can.decoder import FrameDecoder
from gateway.adapters.can.inverter import InverterPublisher, firmware_version
from gateway.adapters.can.replay import replay_decode
from gateway.cli import main
from gateway.commands.can import open_error
from gateway.core.state import BoardState, GatewayState


def _state(errors: tuple[str, ...] = (), first_valid_scan: bool = True) -> GatewayState:
    s = GatewayState(
        boards={
            b: BoardState(
                board=b, online=True, cell_voltages_v=(3.3,) * 16, temperatures_c=(25.0,) * 4
            )
            for b in (1, 2)
        }
    )
    s.current_a = -10.0
    s.control.limits = {"cvl_v": 112.0, "ccl_a": 50.0, "dcl_a": 100.0}
    s.control.signals = {"charge_allowed": True, "discharge_allowed": True}
    s.control.soc = 0.6
    s.control.errors_active = list(errors)
    s.control.first_valid_scan = first_valid_scan
    return s


def _by_id(frames: list[Frame]) -> dict[int, bytes]:
    return {f.arbitration_id: f.data for f in frames}


def test_system_error_sets_byte1_bit7_and_bit3() -> None:
    """0x359 byte 1: bit 7 (Battery-Emulator, JK) and bit 3 (OpenDTU, public Pylon DBC)."""
    pub = InverterPublisher(CanInverterSection(profile="pylon", module_count=2))
    data = _by_id(pub.frames(_state(errors=("charger_fault",))))[0x359]
    # byte0 = 0, byte1 = 0x80 | 0x08 = 0x88, byte2 = 0, byte3 = 0, byte4 = 2, 'P' 'N'
    assert data == bytes([0x00, 0x88, 0x00, 0x00, 0x02, 0x50, 0x4E])


def test_logic_offline_is_a_system_error_and_a_comms_warning() -> None:
    pub = InverterPublisher(CanInverterSection(profile="pylon"))
    data = _by_id(pub.frames(_state(errors=("logic_offline",))))[0x359]
    # byte1 0x88 (both system error bits); byte3 bit 3 internal comms fault = 0x08
    assert data == bytes([0x00, 0x88, 0x00, 0x08, 0x01, 0x50, 0x4E])


def test_a_healthy_pack_sets_no_system_error_bit() -> None:
    data = _by_id(InverterPublisher(CanInverterSection()).frames(_state()))[0x359]
    assert data[1] == 0x00


def test_firmware_version_reads_major_dot_minor_in_bytes_2_and_3() -> None:
    """0x35F: receivers print byte 2 "." byte 3; 0.1.0 must read "0.1", not "1.0"."""
    pub = InverterPublisher(CanInverterSection(profile="sma", capacity_ah=280))
    data = _by_id(pub.frames(_state()))[0x35F]
    major, minor = firmware_version()
    # model 0 (bytes 0-1), major, minor, 280 Ah = 0x0118 (bytes 4-5), 0, 0
    assert data == bytes([0x00, 0x00, major, minor, 0x18, 0x01, 0x00, 0x00])
    assert f"{data[2]}.{data[3]}" == f"{major}.{minor}"


def test_firmware_version_parsing() -> None:
    assert firmware_version("0.1.0") == (0, 1)
    assert firmware_version("2.13.4") == (2, 13)
    assert firmware_version("1.2rc1") == (1, 2)
    assert firmware_version("3") == (3, 0)
    assert firmware_version("999.x") == (255, 0)


def test_nothing_is_sent_before_the_first_valid_scan() -> None:
    """Before the engine's first valid scan every profile is silent (no guessed limits)."""
    for profile in ("pylon", "victron", "sma"):
        pub = InverterPublisher(CanInverterSection(profile=profile))  # type: ignore[arg-type]
        assert pub.frames(_state(first_valid_scan=False)) == []
        assert pub.frames(_state(first_valid_scan=True)) != []


def test_no_zero_discharge_cutoff_after_the_first_valid_scan() -> None:
    data = _by_id(InverterPublisher(CanInverterSection()).frames(_state()))[0x351]
    # 32 cells x 2.8 V = 89.6 V = 896 = 0x0380 in bytes 6-7
    assert data[6:8] == bytes([0x80, 0x03])


def test_replay_decodes_our_own_inverter_frames() -> None:
    """`can replay` without a config decodes every frame the gateway itself sends."""
    messages = []
    for profile in ("pylon", "victron"):
        pub = InverterPublisher(CanInverterSection(profile=profile))  # type: ignore[arg-type]
        for f in pub.frames(_state(errors=("cell_overvoltage",))):
            messages.append(
                can.Message(arbitration_id=f.arbitration_id, data=f.data, is_extended_id=False)
            )
    section = CanSection(inverter=CanInverterSection(enabled=True))
    stats = replay_decode(messages, FrameDecoder(section, "bridge", battery_frames=True))
    assert stats.unknown == 0 and stats.decode_errors == 0
    assert stats.decoded == len(messages)
    assert stats.points["inverter.BMS_Limits.ChargeVoltageLimit"] == 112.0
    assert stats.points["inverter.BMS_ProtectionFlags.ProtOverVoltage"] == 1
    assert stats.points["inverter.BMS_Manufacturer.Manufacturer"] == "PYLON"
    assert stats.points["inverter.BMS_Name1.Text"] == "bms-gate"
    names = {m.name for m in shipped("inverter").messages if m.senders == ["BMS"]}
    seen = {k.split(".")[1] for k in stats.points}
    assert names <= seen


def test_record_with_defaults_explains_how_to_pick_an_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No SocketCAN here: the default socketcan/can0 fails with a reason and a hint."""
    code = main(["can", "record", str(tmp_path / "x.log"), "--duration", "0.1"])
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("this machine has a working SocketCAN can0")
    assert code == 1
    assert "cannot open the CAN bus (socketcan channel can0)" in err
    assert "--interface" in err and "--channel" in err
    assert "Errno" not in err and "OSError" not in err and "Traceback" not in err


def test_open_error_reasons_are_words() -> None:
    msg = open_error("socketcan", "can0", OSError(97, "Address family not supported"))
    assert "no SocketCAN support" in msg
    msg = open_error("slcan", "/dev/ttyACM0", OSError(2, "No such file or directory"))
    assert "no such device /dev/ttyACM0" in msg
    msg = open_error("slcan", "/dev/ttyACM0", PermissionError(13, "Permission denied"))
    assert "dialout" in msg
