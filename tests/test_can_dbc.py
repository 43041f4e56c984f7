"""Shipped DBC files against byte vectors computed by hand from the protocol documents.

Sources: shared/spec/inverter-can.md (0x351-0x35F, 0x370-0x377, 0x305), issue 4 (charger
0x1806E5F4 / 0x18FF50E5, big-endian, 0.1 V/A), bms-main-2x-facts.md section 6.1 (TPDO1/2).
Each vector was worked out on paper: e.g. CVL 55.2 V = 552 = 0x0228 -> bytes 28 02.
"""

from __future__ import annotations

from typing import Any

import pytest
from cantools.database.can import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.can.dbc import SHIPPED, decode, encode, raw_text, shipped, text_raw

# (database, message, physical values, expected bytes as hex)
VECTORS: list[tuple[str, str, dict[str, Any], str]] = [
    # CVL 55.2 V=0x0228, CCL 100.0 A=0x03E8, DCL 150.0 A=0x05DC, cut-off 44.8 V=0x01C0
    (
        "inverter",
        "BMS_Limits",
        {
            "ChargeVoltageLimit": 55.2,
            "ChargeCurrentLimit": 100.0,
            "DischargeCurrentLimit": 150.0,
            "DischargeVoltageLimit": 44.8,
        },
        "2802e803dc05c001",
    ),
    # SOC 87 % = 0x57, SOH 100 % = 0x64, hi-res 87.25 % = 8725 = 0x2215
    ("inverter", "BMS_SocSoh", {"Soc": 87, "Soh": 100, "SocHighRes": 87.25}, "570064001522"),
    # 53.12 V = 5312 = 0x14C0; -12.3 A = -123 = 0xFF85; 25.4 degC = 254 = 0x00FE
    (
        "inverter",
        "BMS_Measurements",
        {"PackVoltage": 53.12, "PackCurrent": -12.3, "PackTemperature": 25.4},
        "c01485fffe00",
    ),
    # byte0 b1 over-voltage, byte1 b0 charge over-current, 2 modules, 'P' 'N'
    (
        "inverter",
        "BMS_ProtectionFlags",
        {
            "ProtOverVoltage": 1,
            "ProtChargeOverCurrent": 1,
            "ModuleCount": 2,
            "MarkerP": 0x50,
            "MarkerN": 0x4E,
        },
        "0201000002504e",
    ),
    # byte2 warnings: b2 low voltage; byte3: b0 charge high current, b3 internal comms fault
    (
        "inverter",
        "BMS_ProtectionFlags",
        {
            "ProtUnderTemperature": 1,
            "ProtSystemError": 1,
            "ProtSystemErrorAlt": 1,
            "WarnLowVoltage": 1,
            "WarnChargeHighCurrent": 1,
            "WarnInternalCommFault": 1,
            "MarkerP": 0x50,
            "MarkerN": 0x4E,
        },
        "1088040900504e",
    ),
    # b7 charge enable + b6 discharge enable = 0xC0
    ("inverter", "BMS_Request", {"ChargeEnable": 1, "DischargeEnable": 1}, "c000"),
    # b5 force charge I + b3 full charge request = 0x28
    ("inverter", "BMS_Request", {"ForceChargeI": 1, "FullChargeRequest": 1}, "2800"),
    ("inverter", "BMS_Manufacturer", {"Manufacturer": text_raw("PYLON")}, "50594c4f4e202020"),
    # byte0: general active (01), high V active (01<<2), low V ok (10<<4), high T ok (10<<6)
    # = 0x01 | 0x04 | 0x20 | 0x80 = 0xA5; byte2 bits 6-7 BMS internal ok = 0x80;
    # byte6 bits 0-1 high charge current warning active = 0x01
    (
        "inverter",
        "BMS_Alarms",
        {
            "AlarmGeneral": 1,
            "AlarmHighVoltage": 1,
            "AlarmLowVoltage": 2,
            "AlarmHighTemperature": 2,
            "AlarmBmsInternal": 2,
            "WarnHighChargeCurrent": 1,
        },
        "a500800000000100",
    ),
    # model 0, firmware 0.1 (byte 2 major 00, byte 3 minor 01), 280 Ah = 0x0118
    (
        "inverter",
        "BMS_BatteryInfo",
        {"BatteryModel": 0, "FirmwareMajor": 0, "FirmwareMinor": 1, "CapacityAh": 280},
        "0000000118010000",
    ),
    ("inverter", "BMS_Name1", {"Text": text_raw("bms-gate")}, "626d732d67617465"),
    ("inverter", "BMS_Name2", {"Text": text_raw("way")}, "7761792020202020"),
    (
        "inverter",
        "BMS_ModuleCounts",
        {
            "ModulesOk": 2,
            "ModulesBlockingCharge": 0,
            "ModulesBlockingDischarge": 0,
            "ModulesOffline": 1,
        },
        "0200000000000100",
    ),
    # 3.201 V = 3201 mV = 0x0C81; 3.300 V = 0x0CE4; 25 degC = 298 K = 0x012A; 30 = 0x012F
    (
        "inverter",
        "BMS_CellExtremes",
        {
            "MinCellVoltage": 3.201,
            "MaxCellVoltage": 3.3,
            "MinCellTemperature": 25,
            "MaxCellTemperature": 30,
        },
        "810ce40c2a012f01",
    ),
    ("inverter", "BMS_MinCellVoltageId", {"Text": text_raw("b1c3")}, "6231633320202020"),
    ("inverter", "BMS_MaxCellVoltageId", {"Text": text_raw("b2c16")}, "6232633136202020"),
    ("inverter", "BMS_MinCellTemperatureId", {"Text": text_raw("b1t1")}, "6231743120202020"),
    ("inverter", "BMS_MaxCellTemperatureId", {"Text": text_raw("b2t4")}, "6232743420202020"),
    # charger command: 57.6 V = 576 = 0x0240 big-endian; 20.0 A = 200 = 0x00C8; 0 = charge
    (
        "charger_j1939",
        "BMS_ChargerCommand",
        {"MaxChargeVoltage": 57.6, "MaxChargeCurrent": 20.0, "Control": 0},
        "024000c800000000",
    ),
    (
        "charger_j1939",
        "BMS_ChargerCommand",
        {"MaxChargeVoltage": 57.6, "MaxChargeCurrent": 0.0, "Control": 1},
        "0240000001000000",
    ),
    # charger status: 54.3 V = 0x021F, 12.5 A = 0x007D, byte4 bit1 over-temperature
    (
        "charger_j1939",
        "CHARGER_Status",
        {"OutputVoltage": 54.3, "OutputCurrent": 12.5, "OverTemperature": 1},
        "021f007d02000000",
    ),
    # byte4: hardware failure b0 + battery not detected b3 + comms timeout b4 = 0x19
    (
        "charger_j1939",
        "CHARGER_Status",
        {
            "OutputVoltage": 0,
            "OutputCurrent": 0,
            "HardwareFailure": 1,
            "BatteryNotDetected": 1,
            "CommunicationTimeout": 1,
        },
        "0000000019000000",
    ),
    ("bms_main_canopen", "SYNC", {}, ""),
    # TPDO1: DI cover b0 + charger b1 = 0x03; -25.6 A = -256 = 0xFF00; -5 degC = 0xFB;
    # 31 degC = 0x1F; SOC 75 = 0x4B; 52.8 V = 528 = 0x0210
    (
        "bms_main_canopen",
        "TPDO1",
        {
            "InputCover": 1,
            "InputChargerConnected": 1,
            "PackCurrent": -25.6,
            "TemperatureMin": -5,
            "TemperatureMax": 31,
            "Soc": 75,
            "PackVoltage": 52.8,
        },
        "0300fffb1f4b1002",
    ),
    # TPDO2: internal signals bit0 low SOC + bit15 balancing 1 = 0x8001; errors bit9 = 0x200
    (
        "bms_main_canopen",
        "TPDO2",
        {"InternalSignals": 0x8001, "Errors1": 0x200},
        "0180000000020000",
    ),
]


@pytest.mark.parametrize(("db", "name", "values", "hexdata"), VECTORS)
def test_encode_matches_hand_vector(
    db: str, name: str, values: dict[str, Any], hexdata: str
) -> None:
    frame = encode(shipped(db), name, values)
    assert frame.data.hex() == hexdata


@pytest.mark.parametrize(("db", "name", "values", "hexdata"), VECTORS)
def test_decode_matches_hand_vector(
    db: str, name: str, values: dict[str, Any], hexdata: str
) -> None:
    msg = shipped(db).get_message_by_name(name)
    decoded = decode(msg, bytes.fromhex(hexdata))
    for sig, expected in values.items():
        assert decoded[sig] == pytest.approx(expected, abs=1e-6), sig
    for sig in set(decoded) - set(values):
        assert decoded[sig] == 0 or sig.endswith("Temperature"), sig


def test_every_shipped_message_has_a_vector() -> None:
    covered = {(db, name) for db, name, _, _ in VECTORS}
    shipped_msgs = {(db, m.name) for db in SHIPPED for m in shipped(db).messages}
    # 0x305 carries no signals (payload ignored): nothing to encode
    assert shipped_msgs - covered == {("inverter", "INV_KeepAlive")}


def test_frame_ids_and_id_types() -> None:
    inv = {m.name: m for m in shipped("inverter").messages}
    assert inv["BMS_Limits"].frame_id == 0x351
    assert inv["INV_KeepAlive"].frame_id == 0x305
    assert not any(m.is_extended_frame for m in inv.values())
    chg = {m.name: m for m in shipped("charger_j1939").messages}
    assert chg["BMS_ChargerCommand"].frame_id == 0x1806E5F4
    assert chg["CHARGER_Status"].frame_id == 0x18FF50E5
    assert all(m.is_extended_frame for m in chg.values())
    co = {m.name: m for m in shipped("bms_main_canopen").messages}
    assert (co["SYNC"].frame_id, co["TPDO1"].frame_id, co["TPDO2"].frame_id) == (
        0x80,
        0x1A0,
        0x2A0,
    )


def test_text_helpers() -> None:
    assert raw_text(text_raw("PYLON")) == "PYLON"
    assert text_raw("ABCDEFGHIJ") == int.from_bytes(b"ABCDEFGH", "little")


ALL_MESSAGES: list[Message] = [
    m for db in SHIPPED for m in shipped(db).messages if m.signals and m.length
]


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: m.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(msg: Message, data: st.DataObject) -> None:
    payload = data.draw(st.binary(min_size=msg.length, max_size=msg.length))
    values = decode(msg, payload)
    again = decode(msg, msg.encode(values, scaling=True, strict=False))
    for sig in values:
        assert again[sig] == pytest.approx(values[sig]), sig
