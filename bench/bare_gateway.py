"""The bare anchor of the footprint benchmarks: the same job with no gateway around it.

Every `--interval` seconds: read each board with one pyserial request, decode the registers
with the project's sans-IO codec, and publish one retained JSON `state` with paho-mqtt.
No engine, no protection, no Home Assistant, no metrics: what any script would do.

    python -m bench.bare_gateway --serial /dev/pts/7 --mqtt-port 1883 --boards 23 --cells 18
"""

from __future__ import annotations

import argparse
import json
import signal
import struct
import sys
import time

import paho.mqtt.client as paho
import serial

from gateway.protocols import logic_map
from gateway.protocols.modbus_rtu import crc_ok, rtu_frame


def main() -> None:
    """Run until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serial", required=True)
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--mqtt-port", type=int, required=True)
    p.add_argument("--boards", type=int, default=23)
    p.add_argument("--cells", type=int, default=18)
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    count = logic_map.registers_to_read(args.cells, args.cells)
    requests = [rtu_frame(b, struct.pack(">BHH", 4, 0, count)) for b in range(1, args.boards + 1)]
    size = 5 + 2 * count
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bare-gateway")
    client.connect("127.0.0.1", args.mqtt_port)
    client.loop_start()
    print("ready", flush=True)
    with serial.Serial(args.serial, baudrate=args.baud, timeout=1.0) as port:
        next_s = time.monotonic()
        while True:
            boards = []
            for n, req in enumerate(requests, start=1):
                port.write(req)
                reply = port.read(size)
                if len(reply) != size or not crc_ok(reply):
                    boards.append({"board": n, "online": False})
                    continue
                regs = list(struct.unpack(f">{count}H", reply[3:-2]))
                r = logic_map.decode_input_registers(regs, args.cells, args.cells)
                boards.append(
                    {
                        "board": n,
                        "online": True,
                        "cell_voltages": [round(v, 3) for v in r.cell_voltages_v],
                        "temperatures": [
                            None if t is None else round(t, 1) for t in r.temperatures_c
                        ],
                    }
                )
            client.publish("bare/state", json.dumps({"boards": boards}), qos=0, retain=True)
            next_s += args.interval
            time.sleep(max(0.0, next_s - time.monotonic()))


if __name__ == "__main__":
    main()
