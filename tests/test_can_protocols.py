"""Inverter, charger and CANopen rules (sans-IO), peer timeouts, decoder robustness."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.can import canopen
from gateway.adapters.can.charger import charger_command, status_points
from gateway.adapters.can.config import (
    CanChargerSection,
    CanInverterSection,
    CanMessageMap,
    CanSection,
)
from gateway.adapters.can.dbc import decode, raw_text, shipped
from gateway.adapters.can.decoder import FrameDecoder
from gateway.adapters.can.events import CanPeerFound, CanPeerLost
from gateway.adapters.can.inverter import (
    PAIR_ACTIVE,
    PAIR_OK,
    PROFILES,
    InverterPublisher,
    alarm_pairs,
    limits_for,
    pylon_flags,
)
from gateway.adapters.can.peers import PeerTracker
from gateway.config import load_config
from gateway.control.names import ERROR_NAMES
from gateway.core.errors import ConfigError, FrameError
from gateway.core.state import BoardState, GatewayState


def make_state(
    cell_v: float = 3.3,
    boards: int = 2,
    cells: int = 16,
    limits: dict[str, float] | None = None,
    charge: bool = True,
    discharge: bool = True,
    soc: float | None = 0.6,
    errors: tuple[str, ...] = (),
    first_valid_scan: bool = True,
) -> GatewayState:
    s = GatewayState(
        boards={
            b: BoardState(
                board=b,
                online=True,
                cell_voltages_v=(cell_v,) * cells,
                temperatures_c=(25.0,) * 4,
            )
            for b in range(1, boards + 1)
        }
    )
    s.current_a = -10.0
    s.control.limits = dict(
        limits if limits is not None else {"cvl_v": 112.0, "ccl_a": 50.0, "dcl_a": 100.0}
    )
    s.control.signals = {"charge_allowed": charge, "discharge_allowed": discharge}
    s.control.soc = soc
    s.control.errors_active = list(errors)
    s.control.first_valid_scan = first_valid_scan
    return s


def decoded_frames(pub: InverterPublisher, state: GatewayState) -> dict[int, dict[str, Any]]:
    db = shipped("inverter")
    return {
        f.arbitration_id: decode(db.get_message_by_frame_id(f.arbitration_id), f.data)
        for f in pub.frames(state)
    }


# --- limits and their traps ----------------------------------------------------------------


def test_limits_follow_the_engine_when_charging_is_allowed() -> None:
    lim = limits_for(make_state(), CanInverterSection())
    assert lim is not None
    assert (lim.cvl_v, lim.ccl_a, lim.dcl_a) == (112.0, 50.0, 100.0)


def test_charge_stop_is_cvl_at_pack_voltage_and_ccl_zero_never_cvl_zero() -> None:
    state = make_state(cell_v=3.31, charge=False)  # pack 32 x 3.31 = 105.92 V
    lim = limits_for(state, CanInverterSection())
    assert lim is not None
    assert lim.cvl_v == 105.9  # rounded down to 0.1 V, never above the pack
    assert lim.ccl_a == 0.0
    assert lim.dcl_a == 100.0


def test_charge_stop_never_raises_cvl_above_the_engine_limit() -> None:
    state = make_state(cell_v=3.7, charge=False, limits={"cvl_v": 110.0, "ccl_a": 0, "dcl_a": 5})
    lim = limits_for(state, CanInverterSection())
    assert lim is not None and lim.cvl_v == 110.0 and lim.ccl_a == 0.0


def test_engine_cvl_zero_is_never_sent() -> None:
    state = make_state(limits={"cvl_v": 0.0, "ccl_a": 10.0, "dcl_a": 10.0})
    lim = limits_for(state, CanInverterSection())
    assert lim is not None and lim.cvl_v == pytest.approx(105.6) and lim.ccl_a == 0.0


def test_without_engine_limits_both_currents_are_zero_at_pack_voltage() -> None:
    state = make_state(limits={})
    lim = limits_for(state, CanInverterSection())
    assert lim is not None and (lim.cvl_v, lim.ccl_a, lim.dcl_a) == (105.6, 0.0, 0.0)


def test_nothing_safe_to_send_without_limits_and_without_cells() -> None:
    state = make_state(limits={}, boards=0)
    assert limits_for(state, CanInverterSection()) is None
    pub = InverterPublisher(CanInverterSection())
    assert 0x351 not in decoded_frames(pub, state)


def test_discharge_blocked_and_zero_current_substitute() -> None:
    cfg = CanInverterSection(zero_current_a=0.1)
    lim = limits_for(make_state(charge=False, discharge=False), cfg)
    assert lim is not None and (lim.ccl_a, lim.dcl_a) == (0.1, 0.1)


@settings(max_examples=200, deadline=None)
@given(
    cvl=st.one_of(st.none(), st.floats(-10, 1000)),
    ccl=st.one_of(st.none(), st.floats(-10, 1000)),
    dcl=st.one_of(st.none(), st.floats(-10, 1000)),
    cell_v=st.floats(0, 5),
    charge=st.booleans(),
    boards=st.integers(0, 3),
)
def test_cvl_is_never_zero(
    cvl: float | None,
    ccl: float | None,
    dcl: float | None,
    cell_v: float,
    charge: bool,
    boards: int,
) -> None:
    limits = {k: v for k, v in (("cvl_v", cvl), ("ccl_a", ccl), ("dcl_a", dcl)) if v is not None}
    state = make_state(cell_v=cell_v, limits=limits, charge=charge, boards=boards)
    lim = limits_for(state, CanInverterSection())
    if lim is not None:
        assert lim.cvl_v >= 0.1
        assert lim.ccl_a >= 0 and lim.dcl_a >= 0
        if not charge:
            assert lim.ccl_a == 0


# --- SOC ----------------------------------------------------------------------------------


def test_soc_reported_with_hi_res() -> None:
    frames = decoded_frames(InverterPublisher(CanInverterSection()), make_state(soc=0.8734))
    assert frames[0x355]["Soc"] == 87
    assert frames[0x355]["SocHighRes"] == pytest.approx(87.34)
    assert frames[0x355]["Soh"] == 100


def test_withheld_full_soc_until_the_pack_is_really_full() -> None:
    pub = InverterPublisher(CanInverterSection(withhold_full_soc=True, full_cell_voltage_v=3.45))
    assert decoded_frames(pub, make_state(soc=1.0, cell_v=3.40))[0x355]["Soc"] == 99
    assert decoded_frames(pub, make_state(soc=1.0, cell_v=3.46))[0x355]["Soc"] == 100
    # the latch holds while the cells relax...
    assert decoded_frames(pub, make_state(soc=0.995, cell_v=3.35))[0x355]["Soc"] == 100
    # ...and resets once SOC falls below 98 %
    assert decoded_frames(pub, make_state(soc=0.97, cell_v=3.3))[0x355]["Soc"] == 97
    assert decoded_frames(pub, make_state(soc=1.0, cell_v=3.40))[0x355]["Soc"] == 99


def test_without_withholding_100_is_reported() -> None:
    pub = InverterPublisher(CanInverterSection())
    assert decoded_frames(pub, make_state(soc=1.0))[0x355]["Soc"] == 100


# --- alarm mapping ------------------------------------------------------------------------


def test_every_error_name_maps_to_some_pylon_and_pair_alarm() -> None:
    for err in ERROR_NAMES:
        assert pylon_flags([err], {}), err
        pairs = alarm_pairs([err], {})
        assert pairs["AlarmGeneral"] == PAIR_ACTIVE
        assert sum(1 for k, v in pairs.items() if v == PAIR_ACTIVE and k != "AlarmGeneral") == 1


def test_pylon_flags_for_a_cell_overvoltage_trip() -> None:
    pub = InverterPublisher(CanInverterSection(module_count=3))
    f = decoded_frames(pub, make_state(errors=("cell_overvoltage",), charge=False))
    assert f[0x359]["ProtOverVoltage"] == 1
    assert f[0x359]["ProtUnderVoltage"] == 0
    assert f[0x359]["ModuleCount"] == 3
    assert (f[0x359]["MarkerP"], f[0x359]["MarkerN"]) == (ord("P"), ord("N"))
    assert f[0x35C]["ChargeEnable"] == 0 and f[0x35C]["DischargeEnable"] == 1


def test_pair_alarms_ok_when_healthy() -> None:
    pub = InverterPublisher(CanInverterSection(profile="victron"))
    f = decoded_frames(pub, make_state())
    assert f[0x35A]["AlarmGeneral"] == PAIR_OK
    assert f[0x35A]["AlarmHighVoltage"] == PAIR_OK
    assert f[0x35A]["AlarmShortCircuit"] == 0  # not supported
    f = decoded_frames(pub, make_state(errors=("low_temperature_charge",)))
    assert f[0x35A]["AlarmLowTemperatureCharge"] == PAIR_ACTIVE
    assert f[0x35A]["AlarmLowTemperature"] == PAIR_OK


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_send_their_frame_sets(profile: str) -> None:
    pub = InverterPublisher(CanInverterSection(profile=profile))  # type: ignore[arg-type]
    ids = set(decoded_frames(pub, make_state()))
    expected = {
        "pylon": {0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E},
        "victron": {0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F} | set(range(0x370, 0x378)),
        "sma": {0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F},
    }[profile]
    assert ids == expected


def test_victron_extras() -> None:
    state = make_state()
    state.boards[2].cell_voltages_v = (3.3,) * 15 + (3.41,)
    state.boards[1].cell_voltages_v = (3.3,) * 2 + (3.2,) + (3.3,) * 13
    f = decoded_frames(
        InverterPublisher(CanInverterSection(profile="victron", bms_name="battery-room-1")),
        state,
    )
    assert f[0x373]["MinCellVoltage"] == pytest.approx(3.2)
    assert f[0x373]["MaxCellVoltage"] == pytest.approx(3.41)
    assert f[0x373]["MaxCellTemperature"] == 25
    assert raw_text(f[0x374]["Text"]) == "b1c3"
    assert raw_text(f[0x375]["Text"]) == "b2c16"
    assert raw_text(f[0x370]["Text"]) + raw_text(f[0x371]["Text"]) == "battery-room-1"
    assert f[0x372]["ModulesOk"] == 2


# --- charger ------------------------------------------------------------------------------


def test_charger_commands_charge_only_while_allowed() -> None:
    cfg = CanChargerSection()
    cmd = charger_command(make_state(limits={"cvl_v": 57.6, "ccl_a": 30.0, "dcl_a": 1}), cfg)
    assert (cmd.charge, cmd.voltage_v, cmd.current_a) == (True, 57.6, 30.0)
    assert cmd.frame().data.hex() == "0240012c00000000"  # 576, 300, control 0
    stop = charger_command(make_state(charge=False), cfg)
    assert stop.charge is False and stop.current_a == 0.0
    assert stop.frame().data[4] == 1


def test_charger_caps_and_missing_limits() -> None:
    cfg = CanChargerSection(max_voltage_v=56.0, max_current_a=20.0)
    cmd = charger_command(make_state(limits={"cvl_v": 57.6, "ccl_a": 30.0, "dcl_a": 1}), cfg)
    assert (cmd.voltage_v, cmd.current_a) == (56.0, 20.0)
    assert charger_command(make_state(limits={}), cfg).charge is False
    no_current = make_state(limits={"cvl_v": 57.6, "ccl_a": 0.0, "dcl_a": 1})
    assert charger_command(no_current, cfg).charge is False


def test_charger_status_points() -> None:
    msg = shipped("charger_j1939").get_message_by_name("CHARGER_Status")
    points = status_points(decode(msg, bytes.fromhex("021f007d02000000")))
    assert points["charger.output_voltage_v"] == 54.3
    assert points["charger.output_current_a"] == 12.5
    assert points["charger.over_temperature"] is True
    assert points["charger.hardware_failure"] is False
    assert points["charger.fault"] is True


# --- CANopen ------------------------------------------------------------------------------


def test_tpdo_frames_from_state() -> None:
    state = make_state(soc=0.75, errors=("logic_offline",))
    state.control.signals["charger_connected"] = True
    state.control.signals["low_soc"] = True
    t1, t2 = canopen.tpdo_frames(state, 0x20)
    assert (t1.arbitration_id, t2.arbitration_id) == (0x1A0, 0x2A0)
    # DI: charger connected b1; -10.0 A = -100 = 0xFF9C; 25/25 degC; 75 %; 105.6 V = 1056
    assert t1.data.hex() == "029cff19194b2004"
    assert t2.data.hex() == "0100000000020000"
    t1b, _ = canopen.tpdo_frames(state, 0x05)
    assert t1b.arbitration_id == 0x185


def test_tpdo_points_for_bridge_mode() -> None:
    db = shipped("bms_main_canopen")
    p1 = canopen.tpdo1_points(
        decode(db.get_message_by_name("TPDO1"), bytes.fromhex("0300fffb1f4b1002"))
    )
    assert p1["bms_main.input.cover"] is True
    assert p1["bms_main.input.insulation"] is False
    assert p1["bms_main.current_a"] == -25.6
    assert p1["bms_main.pack_voltage_v"] == 52.8
    p2 = canopen.tpdo2_points(
        decode(db.get_message_by_name("TPDO2"), bytes.fromhex("0180000000020000"))
    )
    assert p2["error.logic_offline"] is True
    assert p2["error.battery_cover"] is False
    assert p2["bms_main.signal.balancing"] is True
    assert p2["bms_main.errors1"] == 0x200
    assert set(canopen.ERROR_BITS.values()) <= set(ERROR_NAMES)


# --- peers --------------------------------------------------------------------------------


def test_peer_tracker_grace_timeout_and_return() -> None:
    t = PeerTracker(started_s=0.0)
    t.add("inverter", timeout_s=10.0, grace_s=60.0)
    assert t.check(30.0) == ({}, [])  # within grace, never heard: undecided
    points, notices = t.check(61.0)
    assert points == {"inverter.connected": False}
    assert isinstance(notices[0], CanPeerLost) and notices[0].silent_s is None
    assert t.check(62.0) == ({}, [])  # reported once
    points, notices = t.seen("inverter", 70.0)
    assert points == {"inverter.connected": True} and isinstance(notices[0], CanPeerFound)
    assert t.seen("inverter", 71.0) == ({}, [])
    assert t.check(81.0) == ({}, [])
    points, notices = t.check(81.5)
    assert points == {"inverter.connected": False}
    assert notices[0].payload() == {"type": "can_peer_lost", "peer": "inverter", "silent_s": 10.5}


# --- decoder ------------------------------------------------------------------------------


def full_decoder(mode: str = "controller") -> FrameDecoder:
    cfg = CanSection(
        enabled=True,
        interface="virtual",
        inverter=CanInverterSection(enabled=True),
        charger=CanChargerSection(enabled=True),
        canopen={"enabled": True},  # type: ignore[arg-type]
        messages=[
            CanMessageMap(
                message="BMS_Limits",
                signals={"ChargeVoltageLimit": "peer_bms.cvl_v"},
                timeout_s=3,
            )
        ],
    )
    return FrameDecoder(cfg, mode)


def test_decoder_routes() -> None:
    d = full_decoder()
    r = d.decode(0x18FF50E5, bytes.fromhex("021f007d02000000"), True)
    assert r is not None and r.peer == "charger" and r.points["charger.output_voltage_v"] == 54.3
    assert d.decode(0x18FF50E5, bytes(8), False) is None  # same number, 11-bit: unknown
    r = d.decode(0x305, b"", False)
    assert r is not None and r.peer == "inverter" and not r.points
    r = d.decode(0x80, b"", False)
    assert r is not None and r.sync
    r = d.decode(0x351, bytes.fromhex("2802e803dc05c001"), False)
    assert r is not None and r.points == {"peer_bms.cvl_v": pytest.approx(55.2)}
    assert r.peer == "bms_limits"
    assert d.decode(0x1A0, bytes(8), False) is None  # controller mode: TPDOs are ours
    with pytest.raises(FrameError):
        d.decode(0x18FF50E5, b"\x01\x02", True)
    assert set(d.timeouts) == {"charger", "inverter", "bms_limits"}


def test_bridge_decoder_reads_tpdos() -> None:
    d = full_decoder("bridge")
    r = d.decode(0x2A0, bytes.fromhex("0180000000020000"), False)
    assert r is not None and r.points["error.logic_offline"] is True and r.peer == "bms_main"
    assert d.decode(0x80, b"", False) is None


@settings(max_examples=300, deadline=None)
@given(
    arbitration_id=st.one_of(
        st.sampled_from([0x305, 0x80, 0x351, 0x1A0, 0x2A0, 0x18FF50E5, 0x1806E5F4]),
        st.integers(0, 0x1FFFFFFF),
    ),
    data=st.binary(max_size=8),
    extended=st.booleans(),
    mode=st.sampled_from(["controller", "bridge"]),
)
def test_garbage_frames_only_decode_or_raise_frame_error(
    arbitration_id: int, data: bytes, extended: bool, mode: str
) -> None:
    d = full_decoder(mode)
    try:
        out = d.decode(arbitration_id, data, extended)
    except FrameError:
        return
    if out is None:  # an unknown id: counted by the adapter, nothing decoded
        assert (arbitration_id, extended) not in d.routes
        return
    for name, value in out.points.items():
        assert isinstance(name, str) and name
        assert isinstance(value, bool | int | float | str), (name, value)
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)


# --- config -------------------------------------------------------------------------------


def test_config_rejects_unknown_interface_and_unknown_signals() -> None:
    with pytest.raises(ConfigError, match=r"can\.interface"):
        load_config(None, {"can": {"interface": "nonesuch"}}, env=False)
    with pytest.raises(ConfigError, match="no signal"):
        load_config(
            None,
            {"can": {"messages": [{"message": "CHARGER_Status", "signals": {"Nope": "x.y"}}]}},
            env=False,
        )
    with pytest.raises(ConfigError, match="no DBC message"):
        load_config(None, {"can": {"messages": [{"message": "Nope"}]}}, env=False)
    with pytest.raises(ConfigError, match="dbc_files"):
        load_config(None, {"can": {"dbc_files": ["/nonexistent.dbc"]}}, env=False)
    with pytest.raises(ConfigError, match="bitrate"):
        load_config(None, {"can": {"bitrate": 123}}, env=False)


def test_config_accepts_a_user_dbc(tmp_path: Any) -> None:
    dbc = tmp_path / "vehicle.dbc"
    dbc.write_text(
        'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: VCU\n\n'
        "BO_ 1280 VCU_State: 2 VCU\n"
        ' SG_ KeyOn : 0|1@1+ (1,0) [0|1] "" BMS\n'
        ' SG_ Speed : 8|8@1+ (1,0) [0|255] "km/h" BMS\n'
    )
    cfg = load_config(
        None,
        {
            "can": {
                "dbc_files": [str(dbc)],
                "messages": [
                    {"message": "VCU_State", "signals": {"KeyOn": "vehicle.key_on"}, "timeout_s": 2}
                ],
            }
        },
        env=False,
    )
    d = FrameDecoder(cfg.can)
    r = d.decode(0x500, b"\x01\x2a", False)
    assert r is not None and r.points == {"vehicle.key_on": 1} and r.peer == "vcu_state"
