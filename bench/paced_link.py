"""A paced RS-485 link in its own process: the simulated Logic boards on a pty.

A pty has no baud rate, so this process holds every reply back until the moment it would
have finished arriving on a real line: the 3.5-character silence before the request, the
request itself, the silence before the reply and the reply, at the configured baud rate
and bits per character (start + data + parity + stop bits). It runs outside the process
being measured, so its own CPU and timing do not count against the gateway.

    python -m bench.paced_link --boards 23 --cells 18 --baud 115200 [--parity E] [--no-pace]

prints the device path a master opens on its first line, then serves until stdin closes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator

from gateway.links.pty import open_pty_pair
from gateway.sim.logic_server import LogicRtuServer, split_request
from gateway.sim.pack import PackModel

GAP_CHARS = 3.5


def bits_per_char(bytesize: int = 8, parity: str = "N", stopbits: int = 1) -> int:
    """Bits one character takes on the wire: start, data, parity (if any) and stop bits."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def exchange_s(request_bytes: int, reply_bytes: int, baud: int, bits: int) -> float:
    """Wire time of one request/reply exchange with both 3.5-character silences."""
    return (request_bytes + reply_bytes + 2 * GAP_CHARS) * bits / baud


def _wait_until(deadline: float) -> None:
    """Sleep coarsely, then spin the last few hundred microseconds (sub-ms accuracy)."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        if left > 0.0005:
            time.sleep(left - 0.0004)


def serve(server: LogicRtuServer, fd: int, bits: int, pace: bool) -> None:
    """Answer requests on `fd` until stdin closes (the parent ends)."""
    buf = b""
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([fd, stdin], [], [], 1.0)
        if stdin in ready and not os.read(stdin, 1024):
            return
        if fd not in ready:
            continue
        arrived = time.perf_counter()
        try:
            buf += os.read(fd, 4096)
        except BlockingIOError:
            continue
        while True:
            consumed, frame = split_request(buf)
            if not consumed:
                break
            buf = buf[consumed:]
            if frame is None:
                continue
            _address, reply = server.handle(frame)
            if reply is None:
                continue
            if pace:
                _wait_until(arrived + exchange_s(len(frame), len(reply), server.baudrate, bits))
            os.write(fd, reply)
            arrived = time.perf_counter()


@contextlib.contextmanager
def spawn(
    boards: int,
    cells: int,
    baud: int = 115200,
    *,
    parity: str = "N",
    stopbits: int = 1,
    pace: bool = True,
) -> Iterator[tuple[str, int]]:
    """Run a paced link in a child process; yield (device path, child pid)."""
    from bench.common import python_env, stop  # noqa: PLC0415

    cmd = [
        sys.executable,
        "-m",
        "bench.paced_link",
        "--boards",
        str(boards),
        "--cells",
        str(cells),
        "--baud",
        str(baud),
        "--parity",
        parity,
        "--stopbits",
        str(stopbits),
    ]
    if not pace:
        cmd.append("--no-pace")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=python_env(), text=True
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        if not path:
            raise RuntimeError("the paced link process did not start")
        yield path, proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        stop(proc)


def main() -> None:
    """Parse the arguments, print the device path, serve."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--boards", type=int, default=23)
    p.add_argument("--cells", type=int, default=18)
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--bytesize", type=int, default=8)
    p.add_argument("--parity", default="N", choices=["N", "E", "O"])
    p.add_argument("--stopbits", type=int, default=1, choices=[1, 2])
    p.add_argument("--no-pace", action="store_true", help="answer at once (CPU benchmarks)")
    args = p.parse_args()
    bits = bits_per_char(args.bytesize, args.parity, args.stopbits)
    pack = PackModel(boards=args.boards, cells_per_board=args.cells)
    server = LogicRtuServer(pack, baudrate=args.baud, bits_per_char=bits)
    with open_pty_pair() as pair:
        print(pair.device_path, flush=True)
        serve(server, pair.controller_fd, bits, pace=not args.no_pace)


if __name__ == "__main__":
    main()
