"""`bms-gateway simulate --pty` as a real process, read by a real pymodbus client."""

from __future__ import annotations

import asyncio
import signal
import sys

from pymodbus.client import AsyncModbusSerialClient

from gateway.cli import main
from gateway.protocols import logic_map


async def test_simulate_on_a_pty_serves_the_boards_until_interrupted() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "simulate",
        "--pty",
        "--boards",
        "3",
        "--cells",
        "8",
        "--chemistry",
        "nmc",
        "--soc",
        "90",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        path = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert path.startswith("/dev/")
        client = AsyncModbusSerialClient(path, baudrate=115200, timeout=1, retries=2)
        assert await client.connect()
        try:
            rr = await client.read_input_registers(
                0, count=logic_map.registers_to_read(8, 8), device_id=3
            )
            assert not rr.isError()
            reading = logic_map.decode_input_registers(rr.registers, 8, 8)
            assert all(3.9 < v < 4.2 for v in reading.cell_voltages_v)  # NMC at 90 %
        finally:
            client.close()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_simulate_rejects_bad_options() -> None:
    assert main(["simulate", "--pty", "--boards", "24"]) == 2
    assert main(["simulate"]) == 2
