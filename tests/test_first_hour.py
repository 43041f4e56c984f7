"""The first hour of a new user (issue 12): messages, check-config, CLI, state, commission."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.commands.commission import Check, Report, _mqtt, commission
from gateway.config import default_state_dir, load_config
from gateway.core import runlock
from gateway.core.errors import ConfigError
from gateway.sim.logic_server import LogicRtuServer, serve_on_pty
from gateway.sim.pack import PackModel
from tests.support.broker import Broker, free_port
from tests.support.waiting import until

README_HARDWARE = """\
gateway:
  id: pack-a
logic:
  port: {port}
  baudrate: 115200
  boards: 4
  cells_per_board: 16
mqtt:
  host: broker.lan
  username: bms
  password_file: {pw}
metrics:
  host: 0.0.0.0
"""


def _config_error(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "cfg.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=False)
    return str(exc.value)


# --- config messages ------------------------------------------------------------------------


def test_unknown_key_says_did_you_mean_with_file_line_and_dotted_path(tmp_path: Path) -> None:
    msg = _config_error(tmp_path, "mqtt:\n  host: x\n  hots: y\nlogic:\n  cells_per_bord: 3\n")
    lines = msg.splitlines()
    assert f"{tmp_path / 'cfg.yaml'}:3: mqtt.hots: unknown key (did you mean 'host'?)" in lines
    assert any(
        line.endswith(":5: logic.cells_per_bord: unknown key (did you mean 'cells_per_board'?)")
        for line in lines
    )


def test_unknown_key_deep_inside_a_list_and_an_aliased_section(tmp_path: Path) -> None:
    msg = _config_error(
        tmp_path,
        "relays:\n  '1': discharge_contactor\n  '5': heater\nprotections:\n"
        "  cell_overvoltage:\n    maxx: 3.6\n",
    )
    assert "relays.5: unknown key" in msg
    assert ":6: protections.cell_overvoltage.maxx: unknown key (did you mean 'max'?)" in msg


def test_yaml_error_names_the_file_and_line_and_never_echoes_a_password(tmp_path: Path) -> None:
    msg = _config_error(tmp_path, 'mqtt:\n  host: x\n  password: "hunter2-secret\n  port: 1\n')
    assert str(tmp_path / "cfg.yaml") in msg and "<unicode string>" not in msg
    assert "hunter2" not in msg
    msg = _config_error(tmp_path, "mqtt:\n  password: [hunter2-secret\n  port: 1\n")
    assert "hunter2" not in msg and "invalid YAML" in msg


def test_wrong_type_on_the_password_line_does_not_echo_it(tmp_path: Path) -> None:
    msg = _config_error(tmp_path, "mqtt:\n  password: {hunter2: secret}\n")
    assert msg.splitlines()[0].endswith(":2: mqtt.password: Input should be a valid string")
    assert "hunter2" not in msg and "secret" not in msg


def test_password_file_error_has_the_dotted_path_and_the_os_reason(tmp_path: Path) -> None:
    msg = _config_error(tmp_path, f"mqtt:\n  password_file: {tmp_path / 'nope'}\n")
    assert msg.endswith(
        f":2: mqtt.password_file: cannot read {tmp_path / 'nope'}: No such file or directory"
    )
    assert "Errno" not in msg and "Value error" not in msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe\x00mqtt: 1\n", ":1: not UTF-8 text"),
        (b"a:\n  b: 1\n\x80\n", ":3: not UTF-8 text"),
        (b"- 1\n- 2\n", "the top level must be a mapping"),
        (b"[" * 100 + b"]" * 100, "nested"),
        (
            b"a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
            "more than",
        ),
    ],
)
def test_malformed_files_are_clear_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    assert expected in _config_error(tmp_path, content)


# --- check-config ---------------------------------------------------------------------------


def test_check_config_of_the_readme_hardware_example_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "pack-a.yaml"
    cfg.write_text(README_HARDWARE.format(port=tmp_path / "ttyUSB0", pw=tmp_path / "pw"))
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f":11: mqtt.password_file: cannot read {tmp_path / 'pw'}" in err

    (tmp_path / "pw").write_text("secret\n")
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"error: logic.port: {tmp_path / 'ttyUSB0'} does not exist" in err
    # the one thing no contactor can close without, and the key to set
    assert "warning: drivers.adc: no current source is configured" in err
    assert "stale_current" in err and "`drivers.adc`" in err


async def test_check_config_with_a_pty_simulator_warns_and_summarises(tmp_path: Path) -> None:
    server = LogicRtuServer(PackModel(boards=4, cells_per_board=16))
    async with serve_on_pty(server) as path:
        (tmp_path / "pw").write_text("secret\n")
        cfg = tmp_path / "pack-a.yaml"
        cfg.write_text(README_HARDWARE.format(port=path, pw=tmp_path / "pw"))
        exe = Path(sys.executable).parent / "bms-gateway"
        proc = await asyncio.create_subprocess_exec(
            str(exe), "check-config", str(cfg),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out_b, err_b = await proc.communicate()
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err
    assert "no current source" in err
    assert "(1 warning(s) above)" in out
    assert "battery: 4 boards x 16 cells = 64 cells, LFP" in out
    assert "limits: cell 2.8 V .. 3.65 V" in out
    assert "current from: nowhere" in out
    assert "outputs: MQTT broker.lan:1883" in out


def test_check_config_finds_a_missing_gpio_chip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gpio.yaml"
    chip = tmp_path / "gpiochip7"
    cfg.write_text(
        f"drivers:\n  relays:\n    backend: gpiod\n    chip: {chip}\n    lines: [5, 6, 13, 19]\n"
    )
    code = main(["check-config", str(cfg)])
    captured = capsys.readouterr()
    if "drivers.relays" in captured.err and "unknown key" in captured.err:
        pytest.skip(f"gpiod options differ: {captured.err}")
    assert code == 1
    assert f"error: drivers.relays.chip: {chip} does not exist" in captured.err


# --- CLI ------------------------------------------------------------------------------------


def test_global_flags_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["-v", "run", "x.yaml"]).verbose is True
    assert parser.parse_args(["run", "x.yaml", "-v"]).verbose is True
    assert parser.parse_args(["run", "x.yaml"]).verbose is False
    assert parser.parse_args(["can", "record", "f.log", "-v"]).verbose is True


def test_top_level_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "First steps:" in out and "commission" in out and "check-config" in out
    assert "sub-command lives in" not in out  # not the module docstring


# --- state_dir ------------------------------------------------------------------------------


def test_state_dir_default_is_absolute_per_user_or_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "bms-gateway"
    monkeypatch.setenv("INVOCATION_ID", "abc")
    assert default_state_dir() == Path("/var/lib/bms-gateway")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/custom:/other")
    assert default_state_dir() == Path("/var/lib/custom")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.delenv("INVOCATION_ID")
    monkeypatch.chdir(tmp_path)
    assert load_config(env=False).gateway.state_dir.is_absolute()


def test_relative_state_dir_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "gw.yaml"
    cfg.write_text("gateway:\n  state_dir: state\n")
    monkeypatch.chdir("/")
    assert load_config(cfg, env=False).gateway.state_dir == tmp_path / "etc" / "state"


# --- ack while the gateway runs ---------------------------------------------------------------


def test_ack_refuses_while_a_gateway_holds_the_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    (tmp_path / "gw.yaml").write_text(f"gateway:\n  id: pack-a\n  state_dir: {state}\n")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from gateway.core import runlock\n"
         "with runlock.hold(Path(sys.argv[1])) as ok:\n"
         "    print(ok, flush=True); time.sleep(60)", str(state)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        assert runlock.holder(state) == holder.pid
        code = main(["ack", "cell_overvoltage", "--config", str(tmp_path / "gw.yaml")])
        err = capsys.readouterr().err
        assert code == 1
        assert f"the gateway is running on {state} (pid {holder.pid})" in err
        assert "bms/pack-a/command/ack" in err
    finally:
        holder.kill()
        holder.wait()
    assert runlock.holder(state) is None
    assert main(["ack", "cell_overvoltage", "--state-dir", str(state)]) == 0
    assert "was not latched" in capsys.readouterr().out


# --- commission -----------------------------------------------------------------------------


async def test_commission_against_the_simulator_on_a_pty(broker: Broker, tmp_path: Path) -> None:
    pack = PackModel(boards=3, cells_per_board=16)
    pack.board(1).cells[5].forced_voltage_v = 0.2  # board 1 cell 6: a broken sense wire
    server = LogicRtuServer(pack)
    async with serve_on_pty(server) as path:
        cfg = load_config(
            overrides={
                "gateway": {"state_dir": str(tmp_path)},
                "logic": {"port": path, "boards": [1, 2, 3, 4], "cells_per_board": 16,
                          "timeout_s": 0.1},
                "mqtt": {"host": broker.host, "port": broker.port},
            },
            env=False,
        )  # fmt: skip
        report = Report()
        confirmed_relays = {1}
        await commission(cfg, report, relays=True, confirmed=confirmed_relays)
    by_step = {c.step: c for c in report.checks}
    assert by_step["serial port"].verdict == "pass"
    assert (
        by_step["board 1"].verdict == "pass" and "16 cells, 16 sensors" in by_step["board 1"].detail
    )
    assert by_step["board 1 readings"].verdict == "fail"
    assert "c6 0.200 V" in by_step["board 1 readings"].detail
    assert by_step["board 2 readings"].verdict == "pass"
    assert by_step["board 4"].verdict == "fail" and "does not answer" in by_step["board 4"].detail
    assert by_step["current sensor"].verdict == "fail"
    assert by_step["mqtt"].verdict == "pass"
    # a protection would block: no relay is clicked even though relay 1 was confirmed
    assert by_step["relays"].verdict == "skip"
    assert not any(step.startswith("relay ") for step in by_step)
    assert not report.ok


def test_commission_cli_json_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"logic:\n  port: {tmp_path / 'none'}\nmqtt:\n  enabled: false\n")
    assert main(["commission", str(cfg), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    steps = {c["step"]: c for c in out["checks"]}
    assert steps["serial port"]["verdict"] == "fail"
    assert "does not exist" in steps["serial port"]["detail"]
    assert steps["mqtt"]["verdict"] == "skip"


def test_commission_wrong_mqtt_password_says_what_to_check(tmp_path: Path) -> None:
    passwd = shutil.which("mosquitto_passwd")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if passwd is None or not Path(mosquitto).exists():
        pytest.skip("mosquitto_passwd is not installed")
    # mosquitto started as root reads its password file as its own user: pytest's tmp_path
    # sits below a 0700 directory, so the file goes to a world-readable one
    readable = Path(tempfile.mkdtemp(prefix="bmsgw-mqtt-auth-"))
    readable.chmod(0o755)
    pwfile = readable / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pwfile), "bms", "right"], check=True)
    pwfile.chmod(0o644)
    port = free_port()
    conf = tmp_path / "m.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
        "persistence false\n"
    )
    proc = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def check(password: str) -> Check:
        cfg = load_config(
            overrides={"mqtt": {"port": port, "host": "127.0.0.1", "username": "bms",
                                "password": password}},
            env=False,
        )  # fmt: skip
        report = Report()
        asyncio.run(_mqtt(cfg, report))
        (result,) = report.checks
        return result

    try:
        asyncio.run(wait_port(port))
        wrong = check("wrong")
        assert wrong.verdict == "fail"
        assert "refused the credentials" in wrong.detail
        assert "mqtt.password" in wrong.fix
        assert "wrong" not in wrong.detail + wrong.fix
        assert check("right").verdict == "pass"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(readable, ignore_errors=True)


async def wait_port(port: int) -> None:
    async def accepting() -> bool:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        w.close()
        return True

    await until(accepting, f"the broker to listen on port {port}", timeout_s=10)


# --- reasons in words -------------------------------------------------------------------------


def test_signals_list_reasons_only_while_they_hold_and_logs_have_no_list_reprs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.scenario.world import World
    from tests.support.world import STEP_S

    cfg = load_config(overrides={"gateway": {"state_dir": str(tmp_path)}}, env=False)
    world = World.build(cfg, PackModel(boards=2, cells_per_board=16), initial_soc=0.6)
    caplog.set_level("INFO", logger="gateway")
    t = 0.0
    while t <= 3.0:
        if round(t * 10) % 10 == 0:
            world.logic.poll(t)
        world.engine.cycle(t)
        t = round(t + STEP_S, 6)
    ctl = world.ctx.store.state.control
    assert ctl.signals["low_soc"] is False and ctl.reasons["low_soc"] == []
    assert ctl.signals["high_charging_current"] is False
    assert ctl.reasons["high_charging_current"] == []
    relay_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("relay ")]
    assert relay_lines, "no relay switched"
    assert all("[" not in line and "'" not in line for line in relay_lines), relay_lines


# --- bridge mode against the simulated Main 2.x ---------------------------------------------


async def test_bridge_mode_shows_what_the_bridged_board_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.app import build_components, build_context, summary_line
    from gateway.core.clock import RealClock
    from gateway.sim.main2x import Main2xSimulator, serve_main2x
    from tests.support.tasks import running

    pack = PackModel(boards=2, cells_per_board=4, current_a=12.5)
    sim = Main2xSimulator(pack)
    port = free_port()
    device = {"name": "bms", "port": port, "poll_interval_s": 0.1, "timeout_s": 0.5}
    cfg = load_config(
        overrides={
            "gateway": {"mode": "bridge", "state_dir": str(tmp_path)},
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
            "web": {"port": 0},
            "modbus": {"devices": [device]},
        },
        env=False,
    )
    caplog.set_level("INFO")
    ctx = build_context(cfg, RealClock())
    components = build_components(ctx)
    async with serve_main2x(sim, tcp=("127.0.0.1", port)), running(ctx, *components):
        ctl = ctx.store.state.control
        await until(lambda: "bridged" in " ".join(ctl.reasons.get("ccl", [])), "bridged CCL")
        report = Report()
        await commission(cfg, report)
    assert ctl.limits["ccl_a"] == sim.charge_current_limit_a
    assert ctl.limits["dcl_a"] == sim.discharge_current_limit_a
    assert ctl.reasons["ccl"] == ["bridged main2x.charge_current_limit_a"]
    line = summary_line(cfg, ctx.store.state, 0)
    assert line.startswith(f"bridge: BMS Main reports {pack.board_count} Logic boards")
    assert "current 12.5 A" in line and f"CCL {sim.charge_current_limit_a:.0f} A" in line
    assert "boards online 0" not in line
    all_reasons = [r for rs in ctl.reasons.values() for r in rs]
    assert "waiting_first_scan" not in all_reasons
    assert not any(r.startswith("hot_board") for r in all_reasons)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "sim inputs without a simulator" not in messages
    assert "no ADC driver configured" not in messages
    steps = {c.step: c for c in report.checks}
    assert steps["modbus bms"].verdict == "pass", steps["modbus bms"]
    assert steps["logic"].verdict == "skip" and steps["current sensor"].verdict == "skip"


# --- SOC in percent -------------------------------------------------------------------------


@pytest.mark.parametrize("written", [0.6, 60, "60 %", "60%"])
def test_config_accepts_soc_as_a_fraction_or_in_percent(written: object, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "soc.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "simulator": {"soc": written},
                "signal_levels": {"low_soc": {"min": written, "tolerant": 0.7}},
            }
        )
    )
    cfg = load_config(path, env=False)
    assert cfg.simulator.soc == pytest.approx(0.6)
    assert cfg.signal_levels.low_soc.min == pytest.approx(0.6)
    path.write_text("simulator:\n  soc: 160\n")
    with pytest.raises(ConfigError, match=r"simulator\.soc"):
        load_config(path, env=False)


def test_commission_clicks_only_confirmed_relays_and_opens_them_again(tmp_path: Path) -> None:
    """With every check passed, relays move only after a confirmation, and open again."""
    from gateway.commands.commission_relays import check_relays
    from gateway.hal.drivers import Drivers, sim_drivers

    cfg = load_config(overrides={"gateway": {"state_dir": str(tmp_path)}}, env=False)
    built: list[Drivers] = []
    moves: list[tuple[int, bool]] = []

    def drivers(_config: object) -> Drivers:
        d = sim_drivers()
        original = d.relays.set_relay

        def set_relay(n: int, closed: bool) -> None:
            moves.append((n, closed))
            original(n, closed)

        d.relays.set_relay = set_relay  # type: ignore[method-assign]
        built.append(d)
        return d

    asked: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return "relay 3" in question  # the user types yes for relay 3 only

    report = Report()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gateway.hal.drivers.build_drivers", drivers)
        check_relays(cfg, report, True, {1}, ask)
    steps = {c.step: c for c in report.checks}
    assert steps["relay 1 (discharge_contactor)"].verdict == "pass"  # confirmed by --yes-relay
    assert steps["relay 3 (charge_contactor)"].verdict == "pass"  # confirmed when asked
    assert steps["relay 2 (allow_charging)"].detail == "not confirmed"
    assert (2, True) not in moves and (4, True) not in moves
    assert moves.index((1, True)) < moves.index((1, False))
    assert not any(built[0].relays.relay_closed(n) for n in range(1, 5))
    assert len(asked) == 3  # relays 2, 3 and 4 were asked; 1 was confirmed up front

    blocked = Report()
    check_relays(cfg, blocked, False, {1, 2, 3, 4}, lambda _q: True)
    assert [c.verdict for c in blocked.checks] == ["skip"]  # a failed check blocks them all
