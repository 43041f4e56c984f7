"""`bms-gateway can record FILE` / `bms-gateway can replay FILE`: bus captures.

The format follows the file suffix, as python-can does: `.log` (candump -L), `.asc`
(Vector ASCII), `.blf` (Vector binary), `.csv`, `.trc`, and `.gz` variants where python-can
supports them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import can
import can.util

from gateway.adapters.can.config import CanSection
from gateway.adapters.can.decoder import FrameDecoder
from gateway.adapters.can.link import bus_from_config
from gateway.adapters.can.replay import replay_decode, replay_send
from gateway.config import GatewayConfig, load_config
from gateway.core.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register `can record` and `can replay`."""
    p: argparse.ArgumentParser = sub.add_parser("can", help="record or replay CAN captures")
    can_sub = p.add_subparsers(dest="can_command", required=True)

    rec = can_sub.add_parser("record", help="record the CAN bus to a file")
    rec.add_argument("file", type=Path, help="capture file (.log, .asc, .blf, ...)")
    _bus_args(rec)
    rec.add_argument("--duration", type=float, help="stop after this many seconds")
    rec.add_argument("--count", type=int, help="stop after this many frames")
    rec.set_defaults(func=_record)

    rep = can_sub.add_parser(
        "replay", help="decode a capture with the gateway's decoder, or play it onto a bus"
    )
    rep.add_argument("file", type=Path, help="capture file (.log, .asc, .blf, ...)")
    _bus_args(rep)
    rep.add_argument("--send", action="store_true", help="play the frames onto the configured bus")
    rep.add_argument(
        "--speed", type=float, default=1.0, help="with --send: time scale (0 = unpaced)"
    )
    rep.set_defaults(func=_replay)


_PICK_INTERFACE = (
    "choose the interface with --interface/--channel (or `can.interface` and `can.channel` in "
    "the config given with -c), e.g. `--interface slcan --channel /dev/ttyACM0` for a USB "
    "adapter, `--interface socketcan --channel can0` on Linux with SocketCAN, or "
    "`--interface virtual --channel test` to try it without hardware"
)


def open_error(interface: str, channel: str, err: Exception) -> str:
    """Say why a CAN bus did not open and how to choose another one (no exception reprs)."""
    errno_ = getattr(err, "errno", None)
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    where = f"{interface} channel {channel}"
    if interface == "socketcan" and errno_ == 97:  # EAFNOSUPPORT
        reason = "this system has no SocketCAN support (no `can` kernel module)"
    elif interface == "socketcan" and errno_ == 19:  # ENODEV
        reason = f"no network interface {channel} (see `ip link show`)"
    elif errno_ == 2:
        reason = f"no such device {channel}"
    elif errno_ in (1, 13):
        reason = f"permission denied on {channel} (is your user in the `dialout` group?)"
    return f"cannot open the CAN bus ({where}): {reason}\n{_PICK_INTERFACE}"


def _bus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="gateway config (its `can` section)")
    p.add_argument("--interface", help="python-can interface (overrides the config)")
    p.add_argument("--channel", help="python-can channel (overrides the config)")
    p.add_argument("--bitrate", type=int, help="bit rate (overrides the config)")


def _config(args: argparse.Namespace) -> GatewayConfig:
    overrides: dict[str, Any] = {}
    for key in ("interface", "channel", "bitrate"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return load_config(args.config, {"can": overrides} if overrides else None)


def _decoder_section(config: GatewayConfig, explicit: bool) -> tuple[CanSection, str]:
    """Without a config file, decode every built-in protocol (bridge view of a capture)."""
    if explicit:
        return config.can, config.gateway.mode
    section = config.can.model_copy(
        update={
            "inverter": config.can.inverter.model_copy(update={"enabled": True}),
            "charger": config.can.charger.model_copy(update={"enabled": True}),
            "canopen": config.can.canopen.model_copy(update={"enabled": True}),
        }
    )
    return section, "bridge"


def _record(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        bus = bus_from_config(config.can)()
    except ConfigError as err:
        print(f"invalid configuration:\n{err}", file=sys.stderr)
        return 2
    except Exception as err:  # any driver's open failure
        print(open_error(config.can.interface, config.can.channel, err), file=sys.stderr)
        return 1
    deadline = None if args.duration is None else time.monotonic() + args.duration
    n = 0
    try:
        with can.Logger(str(args.file)) as writer:
            while deadline is None or time.monotonic() < deadline:
                if args.count is not None and n >= args.count:
                    break
                try:
                    msg = bus.recv(timeout=0.1)
                except KeyboardInterrupt:
                    break
                if msg is not None:
                    number = can.util.channel2int(msg.channel)
                    if number is not None and not 0 <= number <= 0xFFFF:
                        msg.channel = None  # BLF stores a 16-bit channel number
                    writer.on_message_received(msg)
                    n += 1
    except (can.CanError, OSError) as err:
        print(f"recording stopped: {getattr(err, 'strerror', None) or err}", file=sys.stderr)
        return 1
    finally:
        bus.shutdown()
    print(f"recorded {n} frames to {args.file}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        reader = can.LogReader(str(args.file))
    except ConfigError as err:
        print(f"invalid configuration:\n{err}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"cannot read {args.file}: {err}", file=sys.stderr)
        return 1
    with reader:
        if args.send:
            try:
                bus = bus_from_config(config.can)()
            except Exception as err:  # any driver's open failure
                print(open_error(config.can.interface, config.can.channel, err), file=sys.stderr)
                return 1
            try:
                sent = replay_send(reader, bus, speed=args.speed)
            finally:
                bus.shutdown()
            print(f"sent {sent} frames")
            return 0
        section, mode = _decoder_section(config, args.config is not None)
        # the gateway's own inverter frames decode too (a capture of what it sent)
        stats = replay_decode(reader, FrameDecoder(section, mode, battery_frames=True))
    print(json.dumps(stats.summary(), indent=2))
    return 0
