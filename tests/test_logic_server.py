"""The simulated Logic boards: RTU framing (pure) and request handling."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from gateway.protocols import logic_map
from gateway.protocols.modbus_rtu import crc16, rtu_frame
from gateway.sim.logic_server import LogicRtuServer, request_length, split_request
from gateway.sim.pack import PackModel


@given(st.integers(0, 247), st.sampled_from([3, 4, 6]), st.binary(min_size=4, max_size=4))
def test_fixed_length_requests_split_back_out(address: int, fc: int, body: bytes) -> None:
    frame = rtu_frame(address, bytes([fc]) + body)
    assert split_request(frame + b"\x01\x02") == (8, frame)
    assert split_request(frame[:-1]) == (0, None)


@given(st.integers(1, 247), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4))
def test_write_multiple_requests_split_back_out(address: int, values: list[int]) -> None:
    pdu = struct.pack(">BHHB", 0x10, 0, len(values), 2 * len(values)) + struct.pack(
        f">{len(values)}H", *values
    )
    frame = rtu_frame(address, pdu)
    assert request_length(frame) == len(frame)
    assert split_request(frame) == (len(frame), frame)


@given(st.binary(max_size=300))
def test_any_bytes_split_without_raising(noise: bytes) -> None:
    consumed, frame = split_request(noise)
    assert 0 <= consumed <= len(noise)
    if frame is not None:
        assert crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


@given(st.binary(min_size=1, max_size=40))
def test_any_valid_crc_request_gets_a_well_formed_reply_or_none(pdu: bytes) -> None:
    server = LogicRtuServer(PackModel(boards=2, cells_per_board=4))
    address, reply = server.handle(rtu_frame(1, pdu))
    assert address == 1
    assert reply is not None
    assert reply[0] == 1
    assert crc16(reply[:-2]) == int.from_bytes(reply[-2:], "little")
    assert reply[1] & 0x7F == pdu[0] & 0x7F or reply[1] == (pdu[0] | 0x80)


def test_reads_come_from_the_model_at_request_time() -> None:
    pack = PackModel(boards=2, cells_per_board=4)
    server = LogicRtuServer(pack)
    req = rtu_frame(2, struct.pack(">BHH", 4, 0, logic_map.registers_to_read(4, 4)))
    pack.force_cell_voltage(2, 3, 3.123)
    _, reply = server.handle(req)
    assert reply is not None
    regs = list(struct.unpack(f">{reply[2] // 2}H", reply[3:-2]))
    assert logic_map.decode_input_registers(regs, 4, 4).cell_voltages_v[2] == 3.123


def test_offline_and_unknown_boards_stay_silent_and_broadcast_writes_apply_to_all() -> None:
    pack = PackModel(boards=2, cells_per_board=4)
    server = LogicRtuServer(pack)
    read = struct.pack(">BHH", 4, 0, 10)
    pack.set_board_online(2, False)
    assert server.handle(rtu_frame(2, read)) == (2, None)
    assert server.handle(rtu_frame(9, read)) == (9, None)
    assert server.stats.ignored == 2
    write = struct.pack(">BHHBHH", 0x10, 0, 2, 4, 0b1001, 0)
    assert server.handle(rtu_frame(0, write)) == (0, None)
    assert pack.board(1).balancing_mask == 0b1001
    assert pack.board(2).balancing_mask == 0  # offline boards hear nothing


def test_writes_outside_the_balancing_registers_or_mask_are_refused() -> None:
    pack = PackModel(boards=1, cells_per_board=4)
    server = LogicRtuServer(pack)
    _, reply = server.handle(rtu_frame(1, struct.pack(">BHH", 6, 2, 1)))
    assert reply is not None and reply[1:3] == b"\x86\x02"
    _, reply = server.handle(rtu_frame(1, struct.pack(">BHH", 6, 1, 0x0004)))  # bit 18 = cell 19
    assert reply is not None and reply[1:3] == b"\x86\x03"
    _, reply = server.handle(rtu_frame(1, struct.pack(">BHH", 6, 1, 0x0002)))  # cell 18
    assert reply is not None and reply[1] == 6
    assert pack.board(1).balancing_mask == 1 << 17
    _, reply = server.handle(rtu_frame(1, struct.pack(">BHH", 3, 0, 2)))
    assert reply is not None and reply[3:7] == b"\x00\x00\x00\x02"


def test_wire_time_is_bytes_times_bits_over_baud() -> None:
    server = LogicRtuServer(PackModel(boards=1), baudrate=9600)
    assert abs(server.wire_time_s(96) - 0.1) < 1e-12
