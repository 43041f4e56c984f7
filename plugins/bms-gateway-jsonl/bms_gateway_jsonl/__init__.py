"""Append every gateway notice as one JSON line to a file (a third-party style publisher)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gateway.core.bus import Overflow
from gateway.core.context import GatewayContext
from gateway.core.events import Notice


class JsonlPublisher:
    """Writes notices to `path`, one JSON object per line."""

    name = "publisher:jsonl"

    def __init__(self, ctx: GatewayContext, path: Path) -> None:
        self._ctx = ctx
        self._path = path
        self._sub = ctx.bus.subscribe(self.name, Notice, overflow=Overflow.NEVER_DROP)

    async def run(self) -> None:
        """Append notices as they arrive."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as f:
            async for notice in self._sub:
                body = notice.payload()
                body["timestamp"] = self._ctx.clock.wall(notice.at_s).isoformat()
                f.write(json.dumps(body) + "\n")
                f.flush()


def create(ctx: GatewayContext) -> JsonlPublisher | None:
    """Enabled by the environment variable BMSGW_JSONL_PATH."""
    path = os.environ.get("BMSGW_JSONL_PATH")
    return JsonlPublisher(ctx, Path(path)) if path else None
