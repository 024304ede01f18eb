"""Pollers of one backfill share one answer for a fraction of a second.

A backfill's page, the CLI's ``--server`` progress bar and scripts poll ``GET /api/v1/backfills/{id}``;
twenty of them polling back to back made the server answer the same question hundreds of times a second,
each time through routing, a storage read and serialisation (≈ 2.5 ms of CPU, in the process that also
leads the backfill). ``StatusCache`` answers a repeat of that exact request (no query string) from the
last answer when it is younger than ``TTL_SECONDS``: a status is at most that old, which a progress
display cannot tell. Any state-changing request to this server (POST, PUT, PATCH, DELETE) empties the
cache before it runs and again after, so what a client changes through the API it sees at once; changes
made by other processes (the coordinator's progress, another server, the CLI) show within the TTL.

Plain ASGI, inside the ``Guard``: a refused request never reaches it, and a cached answer is only ever
given to a request the guard let through.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import UNSAFE

TTL_SECONDS = 0.25
MAX_ENTRIES = 512
CACHED_PATH = re.compile(r"^/api/v1/backfills/[^/]+$")


class StatusCache:
    def __init__(self, app: ASGIApp, ttl: float | None = None):
        self.app = app
        self.ttl = TTL_SECONDS if ttl is None else ttl
        self._answers: OrderedDict[str, tuple[float, list[Message]]] = OrderedDict()
        self._generation = 0  # bumped by every state change: answers begun before it are not kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method in UNSAFE:
            self._forget()
            try:
                await self.app(scope, receive, send)
            finally:
                self._forget()
            return
        if method != "GET" or scope.get("query_string") or not CACHED_PATH.match(path):
            await self.app(scope, receive, send)
            return
        asked = time.monotonic()
        kept = self._answers.get(path)
        if kept is not None and asked - kept[0] < self.ttl:
            for message in kept[1]:
                await send(message)
            return
        generation = self._generation
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)
            await send(message)

        await self.app(scope, receive, keep)
        if generation == self._generation and _complete_ok(messages):
            self._answers[path] = (asked, messages)
            self._answers.move_to_end(path)
            while len(self._answers) > MAX_ENTRIES:
                self._answers.popitem(last=False)

    def _forget(self) -> None:
        self._generation += 1
        self._answers.clear()


def _complete_ok(messages: list[Message]) -> bool:
    """A 200 answer whose body was sent whole (not streamed in parts)."""
    start: Any = messages[0] if messages else None
    return (start is not None and start.get("type") == "http.response.start" and start.get("status") == 200
            and len(messages) == 2 and not messages[1].get("more_body", False))
