"""`bms-gateway calibrate-current` against an IIO ADC on a temporary sysfs tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.cli import main


def _iio(tmp_path: Path, vcs_raw: list[str], vref_raw: str = "20000") -> Path:
    dev = tmp_path / "iio" / "iio:device0"
    dev.mkdir(parents=True)
    (dev / "in_voltage_scale").write_text("0.125\n")  # mV per LSB
    (dev / "in_voltage0_raw").write_text(vcs_raw[0])
    (dev / "in_voltage1_raw").write_text(vref_raw)  # 2.5 V
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "drivers": {
                    "adc": {
                        "backend": "iio",
                        "root": str(tmp_path / "iio"),
                        "channels": {"vcs": {"index": 0}, "vref": {"index": 1}},
                    }
                }
            }
        )
    )
    return cfg


def test_prints_the_zero_offset_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _iio(tmp_path, ["20032\n"])  # 2.504 V: 4 mV above the reference
    assert main(["calibrate-current", str(cfg), "--samples", "3", "--interval-s", "0"]) == 0
    out = capsys.readouterr().out
    assert "current_sensor:\n  zero_offset_v: 0.00400\n" in out
    assert "+1.280 A" in out  # 4 mV on a 200 A / 0.625 V sensor, before calibration


def test_implausible_sensor_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _iio(tmp_path, ["20000\n"], vref_raw="0\n")  # reference line broken
    assert main(["calibrate-current", str(cfg), "--samples", "2", "--interval-s", "0"]) == 1
    assert "vref_out_of_window" in capsys.readouterr().err


def test_without_an_adc_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("drivers: {adc: null}\n")
    assert main(["calibrate-current", str(cfg), "--samples", "1"]) == 1
    assert "no ADC driver configured" in capsys.readouterr().err
