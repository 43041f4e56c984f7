"""deploy/: compose file, Dockerfile, Mosquitto users/ACL, Prometheus, Grafana, systemd."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import VirtualClock
from gateway.publishers.prometheus import PrometheusPublisher
from tests.support.broker import MOSQUITTO, free_port
from tests.support.tasks import cancel_for_sure
from tests.test_metrics_conventions import live_scrape

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "bms-gateway.json"
METRIC = re.compile(r"\bbms_[a-z0-9_]+")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


# --- compose ----------------------------------------------------------------------------


def test_compose_has_the_four_services_and_every_mounted_file_exists() -> None:
    c = compose()
    assert set(c["services"]) == {"gateway", "mosquitto", "prometheus", "grafana"}
    named_volumes = set(c.get("volumes", {}))
    for name, svc in c["services"].items():
        assert "image" in svc, name
        assert svc.get("restart") == "unless-stopped", name
        for dep in svc.get("depends_on", []):
            assert dep in c["services"], (name, dep)
        for volume in svc.get("volumes", []):
            source, target, *_ = volume.split(":")
            assert target.startswith("/"), volume
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"
            else:
                assert source in named_volumes, f"{name}: undeclared volume {source}"
        for port in svc.get("ports", []):
            host, container = str(port).split(":")
            assert host.isdigit() and container.isdigit(), port
    gw = c["services"]["gateway"]
    assert (DEPLOY / gw["build"]["context"] / gw["build"]["dockerfile"]).is_file()
    assert any(v.split(":")[1] == "/config/config.yaml" for v in gw["volumes"])
    for secret in gw["secrets"]:
        assert (DEPLOY / c["secrets"][secret]["file"]).is_file()
    assert gw["environment"]["BMSGW_MQTT__HOST"] == "mosquitto"
    assert gw["environment"]["BMSGW_MQTT__PASSWORD_FILE"] == "/run/secrets/mqtt_password"


def test_the_compose_gateway_config_is_valid_and_matches_the_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = compose()
    env = dict(c["services"]["gateway"]["environment"])
    # The secret as the container sees it, pointed at the file compose mounts there.
    env["BMSGW_MQTT__PASSWORD_FILE"] = str(DEPLOY / c["secrets"]["mqtt_password"]["file"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = load_config(DEPLOY / "gateway" / "config.yaml")
    assert cfg.embedded_simulator  # `docker compose up` shows a live dashboard
    assert cfg.mqtt.host == "mosquitto"
    assert cfg.mqtt.username == "gateway"
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "gateway-change-me"
    assert cfg.metrics.host == "0.0.0.0"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = scrape["scrape_configs"]
    targets = [t for job in jobs for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"gateway:{cfg.metrics.port}"]
    assert f"{cfg.metrics.port}:{cfg.metrics.port}" in c["services"]["gateway"]["ports"]
    # The image's built-in default config runs too.
    assert load_config(DEPLOY / "docker" / "config.yaml", env=False).embedded_simulator


def _compose_client() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _compose_client(),
    reason="the docker client here has no compose plugin (`docker compose` is unknown)",
)
def test_docker_compose_config_accepts_the_file() -> None:
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()


# --- Dockerfile -------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        assert re.match(r"FROM python:\$\{PYTHON_VERSION\}-slim AS \w+", stage[0]), stage[0]
    build, final = stages[0], stages[-1]
    assert any("pip wheel" in line for line in build)
    final_text = "\n".join(final)
    assert "from=build" in final_text and "--no-index" in final_text  # wheels only
    for compiler in ("build-essential", "gcc", "g++", "python3-dev", "apt-get install"):
        assert compiler not in final_text, f"{compiler} in the final image"
    user = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user and user[-1] not in {"root", "0"}
    assert any(line.startswith("HEALTHCHECK") and "healthcheck" in line for line in final)
    assert 'CMD ["run", "/config/config.yaml"]' in final
    assert "BMSGW_METRICS__HOST=0.0.0.0" in final_text
    for line in final:
        if line.startswith("COPY ") and "--from" not in line:
            assert (ROOT / line.split()[1]).exists(), line
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


async def test_healthcheck_script_against_a_live_metrics_endpoint() -> None:
    ctx = build_context(
        load_config(overrides={"metrics": {"host": "127.0.0.1", "port": 0}}, env=False),
        VirtualClock(),
    )
    pub = PrometheusPublisher(ctx)
    task = asyncio.create_task(pub.run())
    script = str(DEPLOY / "docker" / "healthcheck.py")
    try:
        await asyncio.wait_for(pub.ready.wait(), 10)

        async def probe(port: int) -> int:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                script,
                env={"BMSGW_METRICS__PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return await proc.wait()

        assert await probe(pub.port or 0) == 0
        assert await probe(free_port()) == 1  # nothing listens: unhealthy
    finally:
        await cancel_for_sure(task)


# --- Mosquitto: password file and ACL really work --------------------------------------


@pytest.fixture
def deploy_broker(tmp_path: Path) -> Any:
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: run scripts/ensure-test-tools")
    port = free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/config/", f"{DEPLOY / 'mosquitto'}/")
    conf = re.sub(r"(?m)^persistence.*$", "", conf) + "persistence false\n"
    conf = conf.replace("log_dest stdout", f"log_dest file {tmp_path / 'mosquitto.log'}")
    path = tmp_path / "mosquitto.conf"
    path.write_text(conf)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(path)], stderr=subprocess.DEVNULL)
    import socket
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.02)
    yield port
    proc.kill()
    proc.wait(5)


async def test_mosquitto_users_and_acl(deploy_broker: int) -> None:
    port = deploy_broker
    with pytest.raises(aiomqtt.MqttError):  # anonymous is refused
        async with aiomqtt.Client("127.0.0.1", port, identifier="anon"):
            pass
    with pytest.raises(aiomqtt.MqttError):  # a wrong password too
        async with aiomqtt.Client("127.0.0.1", port, username="gateway", password="nope"):
            pass
    got: dict[str, list[str]] = defaultdict(list)
    arrived = asyncio.Event()

    def client(user: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1", port, username=user, password=f"{user}-change-me", identifier=user
        )

    async with client("homeassistant") as ha, client("gateway") as gw, client("viewer") as viewer:
        await ha.subscribe("bms/#", qos=1)
        await ha.subscribe("homeassistant/#", qos=1)
        await gw.subscribe("homeassistant/status", qos=1)

        async def collect(c: aiomqtt.Client, who: str) -> None:
            async for m in c.messages:
                got[who].append(m.topic.value)
                arrived.set()

        tasks = [asyncio.create_task(collect(ha, "ha")), asyncio.create_task(collect(gw, "gw"))]
        try:
            await viewer.publish("bms/bms-gateway/state", b"forged", qos=1)  # denied
            await ha.publish("bms/bms-gateway/state", b"forged", qos=1)  # denied
            await gw.publish("bms/bms-gateway/state", b"{}", qos=1)
            await gw.publish("homeassistant/sensor/bms-gateway/voltage/config", b"{}", qos=1)
            await ha.publish("homeassistant/status", b"online", qos=1)
            # Commands: HA only on its own identity topics; nobody else.
            await gw.subscribe("bms/+/command/#", qos=1)
            await viewer.publish("bms/bms-gateway/command/go_safe", b"on", qos=1)  # denied
            await ha.publish("bms/bms-gateway/command/go_safe", b"off", qos=1)  # denied
            await ha.publish("bms/bms-gateway/command/go_safe/operator", b"off", qos=1)  # denied
            await ha.publish("bms/bms-gateway/command/go_safe/homeassistant", b"on", qos=1)
            await ha.publish("bms/bms-gateway/command/ack/homeassistant", b"all", qos=1)
            async with asyncio.timeout(10):
                while len(got["ha"]) < 3 or len(got["gw"]) < 3:
                    arrived.clear()
                    await arrived.wait()
        finally:
            for t in tasks:
                await cancel_for_sure(t)
    assert got["ha"].count("bms/bms-gateway/state") == 1  # only the gateway's own
    assert "homeassistant/sensor/bms-gateway/voltage/config" in got["ha"]
    assert got["gw"] == [
        "homeassistant/status",
        "bms/bms-gateway/command/go_safe/homeassistant",
        "bms/bms-gateway/command/ack/homeassistant",
    ]


# --- Grafana ----------------------------------------------------------------------------


def provisioned_datasource_uid() -> str:
    data = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    (ds,) = data["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    return str(ds["uid"])


def test_dashboard_is_provisioned_from_the_mounted_folder() -> None:
    data = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "bms-gateway.yaml").read_text()
    )
    (provider,) = data["providers"]
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def dashboard_panels() -> list[dict[str, Any]]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["uid"] == "bms-gateway" and dash["title"]
    panels: list[dict[str, Any]] = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    return [p for p in panels if p["type"] != "row"]


def test_every_panel_has_the_datasource_and_a_metric_query() -> None:
    uid = provisioned_datasource_uid()
    for p in dashboard_panels():
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid
            assert METRIC.search(t["expr"]), (p["title"], t["expr"])
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24


def test_dashboard_covers_the_issue_list() -> None:
    exprs = [(t["expr"], p["type"]) for p in dashboard_panels() for t in p["targets"]]
    # Every cell: one series per (board, cell), in a bar gauge and a heatmap.
    cell_panels = {kind for e, kind in exprs if e == "bms_cell_voltage_volts"}
    assert {"bargauge", "heatmap"} <= cell_panels
    text = " ".join(e for e, _ in exprs)
    for metric in (
        "bms_pack_voltage_volts",
        "bms_pack_current_amperes",
        "bms_state_of_charge_ratio",
        "bms_cell_voltage_min_volts",
        "bms_cell_voltage_max_volts",
        "bms_cell_temperature_celsius",
        "bms_relay_closed",
        "bms_error_active",
        "bms_logic_poll_errors_total",
        "bms_bus_dropped_events_total",
        "bms_mqtt_reconnects_total",
    ):
        assert metric in text, metric
    timelines = {e for e, kind in exprs if kind == "state-timeline"}
    assert {"bms_relay_closed", "bms_error_active"} <= timelines


async def test_every_dashboard_metric_is_exported_by_the_gateway(
    broker: Any, tmp_path: Path
) -> None:
    body = await live_scrape(broker, tmp_path)
    exported: set[str] = set()
    for f in text_string_to_metric_families(body):
        exported.add(f.name)
        exported.update(
            {
                "counter": {f"{f.name}_total"},
                "histogram": {f"{f.name}_bucket", f"{f.name}_sum", f"{f.name}_count"},
            }.get(f.type, set())
        )
    used = {m for p in dashboard_panels() for t in p["targets"] for m in METRIC.findall(t["expr"])}
    assert used - exported == set()


# --- systemd ----------------------------------------------------------------------------


def test_systemd_unit_uses_notify_and_the_watchdog() -> None:
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = ""
    for raw in (DEPLOY / "systemd" / "bms-gateway.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[current][key].append(value)
    service = sections["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    watchdog = service["WatchdogSec"][0]
    assert re.fullmatch(r"\d+s", watchdog) and int(watchdog[:-1]) >= 10
    assert re.search(r"bms-gateway run /etc/bms-gateway/config\.yaml$", service["ExecStart"][0])
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["bms"]
    assert "dialout" in service["SupplementaryGroups"][0]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
