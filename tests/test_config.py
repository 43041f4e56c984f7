"""Configuration: defaults run, env overrides, secrets, and check-config's messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import GatewayConfig, load_config
from gateway.core.errors import ConfigError


def test_every_key_has_a_default_that_runs() -> None:
    config = load_config(None, env=False)
    assert config.gateway.id == "bms-gateway"
    assert config.mqtt.host == "localhost" and config.mqtt.port == 1883
    assert config.mqtt.topic_prefix == "bms"
    assert config.metrics.host == "127.0.0.1" and config.metrics.port == 9108
    assert config.logic.baudrate == 115200
    assert config.logic.addresses == [1, 2]
    assert config.embedded_simulator


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  port: 1999\n  host: broker.local\n", encoding="utf-8")
    monkeypatch.setenv("BMSGW_MQTT__PORT", "1884")
    config = load_config(f)
    assert config.mqtt.port == 1884
    assert config.mqtt.host == "broker.local"


def test_password_from_environment_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    f = tmp_path / "c.yaml"
    f.write_text(f"mqtt:\n  username: bms\n  password_file: {secret}\n", encoding="utf-8")
    config = load_config(f)
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    monkeypatch.setenv("BMSGW_MQTT__PASSWORD", "fromenv")
    assert load_config(None).mqtt.password.get_secret_value() == "fromenv"  # type: ignore[union-attr]


def test_explicit_board_list() -> None:
    config = load_config(None, overrides={"logic": {"boards": [3, 5, 23]}}, env=False)
    assert config.logic.addresses == [3, 5, 23]
    with pytest.raises(ConfigError, match="logic"):
        load_config(None, overrides={"logic": {"boards": [0, 24]}}, env=False)


def test_check_config_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text("gateway:\n  id: pack-a\nlogic:\n  boards: 4\n  cells_per_board: 12\n")
    assert main(["check-config", str(f)]) == 0
    assert "valid" in capsys.readouterr().out


def test_check_config_names_each_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "mqtt:\n  port: 70000\nlogic:\n  baudrate: 12345\n  cells_per_board: 19\nbogus: 1\n"
    )
    assert main(["check-config", str(f)]) != 0
    err = capsys.readouterr().err
    assert "mqtt.port: Input should be less than 65536" in err
    assert "logic.baudrate:" in err
    assert "logic.cells_per_board: Input should be less than or equal to 18" in err
    assert "bad.yaml:6: bogus: unknown key" in err


def test_check_config_broken_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("mqtt: [unclosed\n")
    assert main(["check-config", str(f)]) != 0
    assert "invalid YAML" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.yaml")]) != 0


def test_config_model_is_a_settings_model() -> None:
    assert issubclass(GatewayConfig, object)
    assert GatewayConfig.model_config.get("env_prefix") == "BMSGW_"
