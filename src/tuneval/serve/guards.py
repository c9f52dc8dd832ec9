"""ASGI guards in front of the API: an API key and a body size limit.

Both are plain ASGI middleware rather than FastAPI dependencies because they must act
before anything reads the body: a client without the key, or one streaming an endless
chunked body, should cost the server a few bytes, not a parse and a tokenisation.

Order (outermost first): the key check, then the body limit, then the app. The refusals
close the connection, since the rest of the body is never read and cannot be skipped.
"""

from __future__ import annotations

import hmac

from fastapi.responses import JSONResponse

from tuneval.serve.schemas import ApiError

CLOSE = {"Connection": "close"}


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value
    return None


class BearerAuth:
    """`Authorization: Bearer <key>` on every path but the open ones (401 otherwise).

    The compare is constant-time (hmac.compare_digest) so the answer's timing does not
    leak how much of a guessed key was right. `/health` stays open for start-up scripts
    and load balancers; it tells nothing beyond "up" and the number of adapters.
    """

    def __init__(self, app, key: str, open_paths: tuple[str, ...] = ("/health",)):
        self.app, self.key, self.open_paths = app, key.encode(), frozenset(open_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") not in self.open_paths:
            given = _header(scope, b"authorization")
            scheme, _, token = (given or b"").partition(b" ")
            if not (scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)):
                message = ("missing API key: send the header 'Authorization: Bearer <key>'" if given is None
                           else "invalid API key")
                err = ApiError(401, message, "invalid_api_key")
                headers = {"WWW-Authenticate": 'Bearer realm="tuneval"', **CLOSE}
                await JSONResponse(err.body(), status_code=401, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `limit` bytes as they arrive, whatever Content-Length says.

    A declared Content-Length over the limit is refused before any byte is read. Otherwise
    (chunked bodies, or a length that lies) the bytes are counted as they arrive and 413
    goes out as soon as the count passes the limit; the rest is never read. Bodies within
    the limit are buffered (the app would read them whole anyway) and replayed to the app.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def _too_large(self) -> JSONResponse:
        err = ApiError(413, f"request body over {self.limit} bytes", "body_too_large")
        return JSONResponse(err.body(), status_code=413, headers=CLOSE)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._too_large()(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away mid-body: nobody to answer
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # later calls wait for the disconnect, as streaming responses expect

        await self.app(scope, replay, send)
