"""``BodyLimit``: request bodies larger than the server's cap are refused with 413, unread.

A body announced larger than the cap (``Content-Length``) is refused before a byte of it is read; a body
without a length (chunked) is read up to the cap and refused as soon as it goes past it. Nothing behind
this middleware ever sees an oversized body, so nothing is stored from one. Plain ASGI (see ``auth.Guard``
for why), placed inside the host and token checks.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..limits import MAX_BODY_BYTES
from .errors import error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                await self._refuse(400, "Content-Length: not a number", scope, receive, send)
                return
            if announced > self.max_bytes:
                await self._refuse(413, self._too_large(), scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server stops the body at its announced length
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(413, self._too_large(), scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"body: larger than {self.max_bytes:,} bytes (the server's --max-body-bytes)"

    @staticmethod
    async def _refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(status, message, headers={"Connection": "close"})(scope, receive, send)
