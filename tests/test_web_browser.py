"""The dashboard in a real browser: Debian's chromium, headless, driven by Selenium.

The gateway runs on the embedded simulator in a thread of this process (so the test can force
a cell over its limit in the pack model); chromium and chromium-driver come from apt
(`scripts/ensure-test-tools`); nothing downloads a browser. A screenshot is kept as
`dashboard.png` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.app import build_components, build_context
from gateway.config import GatewayConfig, load_config
from gateway.core.clock import RealClock
from gateway.publishers.web.server import WebComponent
from gateway.sim.embedded import embedded_simulator
from gateway.sim.pack import PackModel
from tests.support.broker import free_port
from tests.support.tasks import cancel_for_sure

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (scripts/ensure-test-tools)",
)

BOARDS, CELLS = 2, 16


class GatewayThread:
    """A whole gateway (simulator, engine, web) on its own event loop in a thread."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.pack: PackModel | None = None
        self.web: WebComponent | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._main: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._main = self.loop.create_task(self._gateway())
        try:
            self.loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        except BaseException as err:
            if not self._ready.done():
                self._ready.set_exception(err)
        finally:
            self.loop.close()

    async def _gateway(self) -> None:
        config = self.config
        async with embedded_simulator(config) as (port, pack):
            logic = config.logic.model_copy(update={"port": port})
            ctx = build_context(config.model_copy(update={"logic": logic}), RealClock(), pack)
            components = build_components(ctx)
            self.pack = pack
            self.web = next(c for c in components if isinstance(c, WebComponent))
            tasks = [asyncio.create_task(ctx.store.run())]
            tasks += [asyncio.create_task(c.run(), name=c.name) for c in components]
            try:
                await asyncio.wait_for(self.web.ready.wait(), 20)
                self._ready.set_result(None)
                await asyncio.Event().wait()
            finally:
                for t in reversed(tasks):
                    await cancel_for_sure(t)

    def start(self) -> GatewayThread:
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    def call(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` on the gateway's loop (the pack model is not thread-safe)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self._main is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the gateway thread did not stop"


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1280,2200",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any, timeout_s: float, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(condition)
    except TimeoutException:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def test_dashboard_in_chromium(browser: Any, tmp_path: Path) -> None:
    config = load_config(
        overrides={
            "gateway": {"id": "gw-browser", "state_dir": str(tmp_path / "state")},
            "mqtt": {"enabled": False, "publish_interval_s": 0.5},
            "metrics": {"enabled": False},
            "logic": {"boards": BOARDS, "cells_per_board": CELLS, "poll_interval_s": 0.2},
            # a fixed port: the page must find the restarted gateway at the same address
            "web": {"port": free_port()},
        },
        env=False,
    )
    gateway = GatewayThread(config).start()
    try:
        assert gateway.web is not None and gateway.web.url is not None
        url = gateway.web.url
        browser.get(url)
        # One bar per simulated cell, grouped by board.
        wait_for(browser, lambda d: js(d, "return document.querySelectorAll('.cell').length"),
                 10, "the cell bars")  # fmt: skip
        assert js(browser, "return document.querySelectorAll('.cell').length") == BOARDS * CELLS
        assert js(browser, "return document.querySelectorAll('.board').length") == BOARDS
        wait_for(browser, lambda d: js(d, "return document.querySelectorAll('.cell.ok').length")
                 == BOARDS * CELLS, 10, "every cell within its limits")  # fmt: skip
        assert js(browser, "return document.getElementById('link').textContent") == "live"

        # SOC in % as on MQTT ("61.2 %"): the number the gateway's own state holds, × 100.
        soc_text = "return document.getElementById('soc').textContent"
        wait_for(browser, lambda d: js(d, soc_text).endswith(" %"), 10, "the SOC")
        soc = gateway.web.ctx.store.state.control.soc if gateway.web is not None else None
        assert soc is not None
        assert float(js(browser, soc_text).removesuffix(" %")) == pytest.approx(soc * 100, abs=0.3)

        # A relay's reason in words (no codes with underscores).
        relay1 = "document.querySelector('tr[data-key=relay_1] td.why').textContent"
        wait_for(browser, lambda d: js(d, f"return {relay1}") not in ("", "-"), 10, "a reason")
        assert "_" not in js(browser, f"return {relay1}")

        # A cell forced over its limit turns red within 3 s; its contactor says why.
        gateway.call(gateway.pack.force_cell_voltage, 1, 3, 3.72)  # type: ignore[union-attr]
        wait_for(
            browser,
            lambda d: js(d, "return document.querySelector('.cell[data-board=\"1\"]"
                            "[data-cell=\"3\"]').classList.contains('alarm')"),
            3.0,
            "cell 1.3 in the alarm colour",
        )  # fmt: skip
        assert "board 1 cell 3" in js(browser, "return document.getElementById('cellsummary')"
                                               ".textContent")  # fmt: skip
        charge = "document.querySelector('tr[data-key=relay_3] td.why').textContent"
        wait_for(browser, lambda d: "over its maximum voltage" in js(d, f"return {charge}"),
                 15, "the charge contactor's reason in words")  # fmt: skip
        wait_for(browser, lambda d: js(d, "return document.querySelector("
                                          "'#errors li[data-error=cell_overvoltage]') !== null"),
                 5, "the error listed")  # fmt: skip
        browser.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000

        # The page recovers by itself after the gateway restarts.
        gateway.stop()
        wait_for(browser, lambda d: js(d, "return document.getElementById('link').textContent")
                 != "live", 15, "the page noticing the gateway is gone")  # fmt: skip
        gateway = GatewayThread(config).start()
        wait_for(browser, lambda d: js(d, "return document.getElementById('link').textContent")
                 == "live", 20, "the page live again")  # fmt: skip
        wait_for(browser, lambda d: js(d, "return document.querySelectorAll('.cell.ok').length")
                 == BOARDS * CELLS, 10, "the new gateway's cells")  # fmt: skip
        browser.save_screenshot(str(tmp_path / "dashboard-after-restart.png"))
    finally:
        gateway.stop()
