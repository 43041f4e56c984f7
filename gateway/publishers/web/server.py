"""The dashboard component: event journal, history writer and the aiohttp server.

One component (entry point `web` in `bms_gateway.publishers`) because the three share the
event numbering: the journal numbers every notice, the history writer stores it, the API and
the live stream serve it. `web.enabled` and `history.enabled` switch the parts.

Live updates: `GET /api/stream` is a Server-Sent Events stream. Every
`mqtt.publish_interval_s` (never more often) one `update` event carries
`{"state": <state message>, "view": <dashboard extras>}`; each new notice is a `notice` event
(its `id:` is the `seq`). Slow clients lose updates, never the gateway's time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.publishers.history.journal import EventJournal
from gateway.publishers.history.writer import HistoryWriter
from gateway.publishers.payloads import encode
from gateway.publishers.web.api import Api, json_response
from gateway.publishers.web.view import View

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext

log = logging.getLogger(__name__)

RETRY_BIND_S = 5.0
CLIENT_QUEUE = 16  # SSE messages waiting per client; a client further behind is dropped
TOKEN_COOKIE = "bmsgw_token"
STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".txt": "text/plain",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def static_bytes(name: str) -> bytes:
    """A file of the bundled `static/` folder."""
    return resources.files("gateway.publishers.web").joinpath("static", name).read_bytes()


class WebComponent:
    """Runs the journal, the history writer and the web server (whichever is enabled)."""

    name = "web"

    def __init__(self, ctx: GatewayContext, *, history_max_pages: int | None = None) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.web
        self.journal = EventJournal(ctx.bus, ctx.clock)
        self.view = View(ctx.config, ctx.clock)
        self.journal.add_sink(self.view.on_event)
        self.writer: HistoryWriter | None = None
        if ctx.config.history.enabled:
            self.writer = HistoryWriter(ctx, max_pages=history_max_pages)
            self.journal.add_sink(self.writer.add_event)
        self.journal.add_sink(self._notice_to_clients)
        self.api = Api(self)
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self.url: str | None = None
        self.ready = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Open the history, then serve until cancelled."""
        if self.writer is not None and (store := await self.writer.open()) is not None:
            self.journal.seq = await self.writer.read(store.last_seq)
            recent = await self.writer.read(store.latest_events, 100)
            self.journal.recent.extend(e.body for e in recent)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.journal.run(), name="web:journal")
            if self.writer is not None and self.writer.store is not None:
                tg.create_task(self.writer.run(), name="history")
            if self.cfg.enabled:
                tg.create_task(self.api.take_applied(), name="web:commands")
                tg.create_task(self._serve(), name="web:server")
                tg.create_task(self._broadcast(), name="web:broadcast")
            else:
                self.ready.set()

    def build_app(self) -> web.Application:
        """The aiohttp application (routes, auth middleware)."""
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/", self._index),
                web.get("/static/{name}", self._static),
                web.get("/api/stream", self._stream),
                *self.api.routes(),
            ]
        )
        return app

    async def _serve(self) -> None:
        runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await runner.setup()
        try:
            while True:
                site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
                try:
                    await site.start()
                except OSError as err:
                    log.error(
                        "dashboard cannot listen on %s:%d (%s); check web.host/web.port. "
                        "Retrying every %.0f s",
                        self.cfg.host,
                        self.cfg.port,
                        err.strerror or err,
                        RETRY_BIND_S,
                    )
                    await asyncio.sleep(RETRY_BIND_S)
                    continue
                break
            port = self._bound_port(runner) or self.cfg.port
            host = self.cfg.host if ":" not in self.cfg.host else f"[{self.cfg.host}]"
            self.url = f"http://{host}:{port}/"
            log.info("dashboard: %s", self.url)
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            for q in list(self._clients):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.shield(runner.cleanup())

    @staticmethod
    def _bound_port(runner: web.AppRunner) -> int | None:
        for addr in runner.addresses:
            if isinstance(addr, tuple) and len(addr) >= 2:
                return int(addr[1])
        return None

    # --- auth ---------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        cfg = self.cfg
        if not cfg.auth_required:
            return await handler(request)
        token = cfg.token.get_secret_value() if cfg.token is not None else None
        if token is not None:
            given = request.query.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                if request.path == "/":
                    resp = web.HTTPFound("/")
                    resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
                    raise resp
                return await handler(request)
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            header = request.headers.get("Authorization", "")
            bearer = header[7:] if header.lower().startswith("bearer ") else ""
            for candidate in (cookie, bearer):
                if candidate and hmac.compare_digest(candidate.encode(), token.encode()):
                    return await handler(request)
        if cfg.username is not None and cfg.password is not None and self._basic_ok(request):
            return await handler(request)
        headers = {}
        if cfg.username is not None:
            headers["WWW-Authenticate"] = 'Basic realm="bms-gateway", charset="UTF-8"'
        return web.Response(
            status=401,
            body=encode({"error": "authentication required (web.token or web.username)"}),
            content_type="application/json",
            headers=headers,
        )

    def _basic_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        assert self.cfg.username is not None and self.cfg.password is not None
        return hmac.compare_digest(user.encode(), self.cfg.username.encode()) & hmac.compare_digest(
            password.encode(), self.cfg.password.get_secret_value().encode()
        )

    # --- page ---------------------------------------------------------------------------

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=static_bytes("index.html"),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
            raise web.HTTPNotFound()
        try:
            body = static_bytes(name)
        except (FileNotFoundError, IsADirectoryError):
            raise web.HTTPNotFound() from None
        return web.Response(
            body=body, content_type=STATIC_TYPES[suffix], headers={"Cache-Control": "no-cache"}
        )

    # --- live stream --------------------------------------------------------------------

    def update_message(self) -> dict[str, Any]:
        """One live update: the state message and the dashboard extras."""
        state = self.api.state_doc()
        self.view.observe(state)
        return {"state": state, "view": self.view.extras(state)}

    def _offer(self, data: bytes) -> None:
        for q in list(self._clients):
            if q.qsize() >= CLIENT_QUEUE:  # too slow: its stream ends, the page reconnects
                self._clients.discard(q)
                q.put_nowait(None)  # the queue keeps one slot for this end mark
                continue
            q.put_nowait(data)

    def _notice_to_clients(self, seq: int, _ts: float, message: dict[str, Any]) -> None:
        if self._clients:
            self._offer(b"event: notice\nid: %d\ndata: %s\n\n" % (seq, encode(message)))

    async def _broadcast(self) -> None:
        interval_s = self.ctx.config.mqtt.publish_interval_s
        while True:
            await self.ctx.clock.sleep(interval_s)
            if not self._clients:
                continue
            try:
                body = encode(self.update_message())
            except (ValueError, TypeError):
                log.exception("dashboard update could not be encoded; skipped")
                continue
            self._offer(b"event: update\ndata: %s\n\n" % body)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        q: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE + 1)
        # The first update right away, so a (re)connected page is whole at once.
        await resp.write(
            b"retry: 2000\nevent: update\ndata: %s\n\n" % encode(self.update_message())
        )
        self._clients.add(q)
        try:
            while (data := await q.get()) is not None:
                await resp.write(data)
        except ConnectionResetError:
            pass
        finally:
            self._clients.discard(q)
        return resp


def create(ctx: GatewayContext) -> WebComponent | None:
    """Entry point (`bms_gateway.publishers`: web); None when web and history are both off."""
    if not ctx.config.web.enabled and not ctx.config.history.enabled:
        return None
    return WebComponent(ctx)


__all__ = ["WebComponent", "create", "json_response"]
