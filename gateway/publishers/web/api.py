"""The JSON API handlers (described by `openapi.json` beside this module; docs/web.md)."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.control.commands import ACK, CommandApplied, CommandReceived, CommandRequested
from gateway.control.names import ERROR_NAMES
from gateway.core.bus import Overflow
from gateway.publishers.history.store import PACK_SERIES, SeriesError, check_series
from gateway.publishers.payloads import encode, isotime, state_message

if TYPE_CHECKING:
    from gateway.publishers.web.server import WebComponent

EVENTS_LIMIT = 200
DEFAULT_RANGE_S = 3600.0
ACK_TIMEOUT_S = 5.0
SECRET_KEYS = ("password", "token", "secret")


def json_response(body: Any, status: int = 200) -> web.Response:
    """Strict JSON (no NaN), UTF-8."""
    return web.Response(body=encode(body), status=status, content_type="application/json")


def problem(status: int, detail: str) -> web.Response:
    """An error answer: `{"error": <detail>}`."""
    return json_response({"error": detail}, status)


def _bad(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": detail}), content_type="application/json")


def parse_time(text: str, name: str) -> float:
    """UNIX seconds or ISO 8601 (a time without zone is UTC) to UNIX seconds."""
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(f"{name}: not a time (UNIX seconds or ISO 8601)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if not math.isfinite(value):
        raise _bad(f"{name}: must be finite")
    return value


def parse_seconds(text: str, name: str) -> float:
    """A positive finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"{name}: a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise _bad(f"{name}: must be a positive number of seconds")
    return value


def redact(value: Any) -> Any:
    """Replace every secret-looking value (password, token, secret keys) by `***`."""
    if isinstance(value, dict):
        return {
            k: ("***" if v is not None and any(s in k.lower() for s in SECRET_KEYS) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Api:
    """Handlers bound to one web component."""

    def __init__(self, comp: WebComponent) -> None:
        self.comp = comp
        self._request = 0
        self._applied = comp.ctx.bus.subscribe(
            "web-commands", CommandApplied, overflow=Overflow.KEEP_LATEST, maxsize=64
        )
        self._waiters: dict[int, asyncio.Future[CommandApplied]] = {}

    def routes(self) -> list[web.RouteDef]:
        """The API's routes."""
        return [
            web.get("/api/state", self.state),
            web.get("/api/view", self.view),
            web.get("/api/history", self.history),
            web.get("/api/events", self.events),
            web.get("/api/config", self.config),
            web.get("/api/openapi.json", self.openapi),
            web.post("/api/ack", self.ack),
        ]

    def state_doc(self) -> dict[str, Any]:
        """The `state` message, exactly as MQTT publishes it."""
        ctx = self.comp.ctx
        return state_message(ctx.store.state, ctx.clock, ctx.config)

    async def state(self, _request: web.Request) -> web.Response:
        """GET /api/state."""
        return json_response(self.state_doc())

    async def view(self, _request: web.Request) -> web.Response:
        """GET /api/view: the dashboard's extras for the current state."""
        doc = self.state_doc()
        self.comp.view.observe(doc)
        return json_response(self.comp.view.extras(doc))

    async def history(self, request: web.Request) -> web.Response:
        """GET /api/history?series=a,b&from=&to=&step=."""
        q = request.query
        names = [n for n in q.get("series", "").split(",") if n] or list(PACK_SERIES)
        try:
            names = check_series(names)
        except SeriesError as err:
            return problem(400, str(err))
        now = self.comp.ctx.clock.wall().timestamp()
        to_ts = parse_time(q["to"], "to") if "to" in q else now
        from_ts = parse_time(q["from"], "from") if "from" in q else to_ts - DEFAULT_RANGE_S
        if from_ts >= to_ts:
            return problem(400, "from: must be before to")
        default_step = self.comp.ctx.config.history.pack_interval_s
        step = parse_seconds(q["step"], "step") if "step" in q else None
        if step is None:
            step = max(default_step, (to_ts - from_ts) / 720)
        writer = self.comp.writer
        if writer is None or writer.store is None:
            return problem(503, "the history store is not available (history.enabled, the log)")
        series = await writer.read(writer.store.query, names, from_ts, to_ts, step)
        return json_response(
            {
                "from": isotime(datetime.fromtimestamp(from_ts, UTC)),
                "to": isotime(datetime.fromtimestamp(to_ts, UTC)),
                "step": series.step_s,
                "t": series.times,
                "series": series.values,
            }
        )

    async def events(self, request: web.Request) -> web.Response:
        """GET /api/events?after_seq=N&limit=M: events with seq > N, oldest first."""
        q = request.query
        try:
            after = int(q.get("after_seq", "-1"))
            limit = int(q.get("limit", str(EVENTS_LIMIT)))
        except ValueError:
            return problem(400, "after_seq and limit: integers")
        if limit < 1 or limit > 1000:
            return problem(400, "limit: 1..1000")
        journal = self.comp.journal
        if after < 0:
            # No position: the latest events.
            items = list(journal.recent)[-limit:]
        else:
            oldest = journal.oldest_seq
            writer = self.comp.writer
            if (oldest is None or after + 1 < oldest) and writer and writer.store:
                await writer.flush()
                stored = await writer.read(writer.store.events_after, after, limit)
                items = [e.body for e in stored]
            else:
                items = journal.after(after, limit)
        return json_response({"last_seq": journal.seq, "events": items})

    async def config(self, _request: web.Request) -> web.Response:
        """GET /api/config: the configuration in force, secrets redacted."""
        dumped = self.comp.ctx.config.model_dump(mode="json")
        return json_response(redact(dumped))

    async def openapi(self, _request: web.Request) -> web.Response:
        """GET /api/openapi.json."""
        return web.Response(body=openapi_bytes(), content_type="application/json")

    async def ack(self, request: web.Request) -> web.Response:
        """POST /api/ack `{"error": "<name>" | "all"}`: acknowledge latched errors."""
        commands = self.comp.ctx.config.commands
        if not commands.allow_ack:
            return problem(403, "acknowledging is off (commands.allow_ack: false)")
        secret = commands.secret()
        if secret is None:
            return problem(403, "acknowledging on the dashboard needs commands.token")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return problem(400, 'body: JSON {"error": "<name>" | "all", "token": "<token>"}')
        given = body.get("token") if isinstance(body, dict) else None
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), secret.encode()):
            return problem(403, "token: the command token (commands.token) is required")
        name = body.get("error")
        if not isinstance(name, str) or (name != "all" and name not in ERROR_NAMES):
            return problem(400, f"error: one of all, {', '.join(ERROR_NAMES)}")
        self._request += 1
        n = self._request
        fut: asyncio.Future[CommandApplied] = asyncio.get_running_loop().create_future()
        self._waiters[n] = fut
        bus, now_s = self.comp.ctx.bus, self.comp.ctx.clock.now()
        bus.publish(
            CommandReceived(at_s=now_s, command=ACK, source="web", request=n, argument=name)
        )
        bus.publish(
            CommandRequested(
                at_s=now_s,
                command=ACK,
                source="web",
                request=n,
                errors=None if name == "all" else (name,),
            )
        )
        try:
            applied = await asyncio.wait_for(fut, ACK_TIMEOUT_S)
        except TimeoutError:
            return problem(504, "the engine did not answer (is it running?)")
        finally:
            self._waiters.pop(n, None)
        return json_response(
            {
                "ok": applied.ok,
                "detail": applied.detail,
                "cleared": list(applied.cleared),
                "kept": list(applied.kept),
            }
        )

    async def take_applied(self) -> None:
        """Match the engine's answers to the dashboard's requests."""
        async for applied in self._applied:
            if applied.source != "web":
                continue
            fut = self._waiters.get(applied.request)
            if fut is not None and not fut.done():
                fut.set_result(applied)


def openapi_bytes() -> bytes:
    """The OpenAPI document shipped in the package."""
    return resources.files("gateway.publishers.web").joinpath("openapi.json").read_bytes()
