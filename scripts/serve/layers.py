"""The service's pure ASGI layers, outermost first: CORS for the configured origins (:class:`Cors`); internal
errors as JSON 500s logged by type and frame, never by their words (:class:`InternalErrors`); admission, a bounded
number of requests in progress (:class:`Admission`); the JWT gate and the access log (:class:`Gate`); large bodies
one at a time (:class:`LargeBodies`); the body limit (:class:`BodyLimit`). And the routes' request bodies, read as
strict JSON (:class:`StrictJsonRoute`).

Every refusal is a JSON body ``{"error": code, "message": words}`` (:class:`ServiceError`), never a traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from palsy.model import safe_json as J

log = logging.getLogger("palsy.serve")

#: Bodies larger than this are read as JSON in a worker thread, not in the event loop (a 4 MB prefetch takes
#: 0.1-0.25 s to read strictly: every other request of the worker would wait for it).
LOOP_JSON_BYTES = 64 * 1024


class ServiceError(Exception):
    """An error answered as ``{"error": code, "message": ...}`` with ``status`` (and ``headers``: a 401's
    ``WWW-Authenticate`` is added by the handlers)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra

    @property
    def all_headers(self) -> dict[str, str] | None:
        """Its headers, with ``WWW-Authenticate: Bearer`` for a 401."""
        return {"WWW-Authenticate": "Bearer", **(self.headers or {})} if self.status == 401 else self.headers


# --- the body-size limit (pure ASGI: refused before the body is read in full) ------------------------------

class _TooLarge(StarletteHTTPException):
    """A body over the limit, found as it streams (no Content-Length). An HTTP exception: FastAPI's body
    reader turns any other exception raised while it reads into a 400 ("There was an error parsing the
    body"), which is what a chunked body over the limit got until 5 December; this one it raises on, and the
    app's handler answers it as the 413 ``too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes, the service's limit "
                              f"(max_body_bytes in its configuration; a record with years of results may need more: "
                              f"docs/service.md)")


class _WatchedSend:
    """An ASGI ``send`` that notes when the response starts (its ``status``) and calls ``on_start`` then, once:
    what each pure ASGI layer here needs to know of the response it passes on."""

    def __init__(self, send: Any, on_start: Any = None) -> None:
        self.send, self.on_start, self.status = send, on_start, None

    @property
    def started(self) -> bool:
        return self.status is not None

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start" and self.status is None:
            self.status = message["status"]
            if self.on_start is not None:
                self.on_start()
        await self.send(message)


class BodyLimit:
    """413 for a request whose body is larger than ``limit`` bytes (by Content-Length or as it streams)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = error_response(413, "too_large", _TooLarge(self.limit).detail)
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        watched = _WatchedSend(send)
        try:
            await self.app(scope, limited_receive, watched)
        except _TooLarge:
            if not watched.started:
                await too_big(scope, receive, send)


# --- the gate: the JWT before anything else, and the access log (pure ASGI) --------------------------------

class Gate:
    """Every ``/cds-services`` call is authorized (``authorize(path, header)``, in a worker thread: it may wait
    on the replay store) before its body is read or parsed; a refused call gets the 401 JSON body, and an
    authorized one carries its token's issuer and tenant to the route (``request.state.issuer``, ``.tenant``;
    None when unsigned or not given). A path with a trailing slash is answered 404 before its token is checked
    (until s17 the token was spent and the answer a redirect a client could not follow with it). Each
    request's log line: method, route, status and time, no patient data. Pure ASGI, as :class:`BodyLimit`:
    Starlette's ``BaseHTTPMiddleware`` (this gate's form until 5 December) runs each request through a task
    group and memory streams; with it and h11, a memoised card cost the server about a fifth more CPU than
    now (docs/service.md)."""

    def __init__(self, app: Any, authorize: Any) -> None:
        self.app, self.authorize = app, authorize

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t = time.perf_counter()
        path, method = scope["path"], scope["method"]
        if path.endswith("/") and path != "/":
            log.info("%s %s 404 (a trailing slash)", method, logged_path(path))
            await error_response(404, "not_found", f"no route {logged_path(path)}: the service's paths have no trailing slash; "
                        f"call {logged_path(path.rstrip('/'))}")(scope, receive, send)
            return
        if path == "/cds-services" or path.startswith("/cds-services/"):
            header = next((v.decode("latin-1") for k, v in scope.get("headers") or () if k == b"authorization"), None)
            try:
                who = await run_in_threadpool(self.authorize, path, header)
            except ServiceError as exc:
                log.info("%s %s %d (%s)", method, logged_path(path), exc.status, exc.message)
                await error_response(exc.status, exc.code, exc.message, exc.all_headers)(scope, receive, send)
                return
            # the route's request.state.issuer and .tenant (feedback logs them)
            scope.setdefault("state", {}).update(who or {"issuer": None, "tenant": None})
        watched = _WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:  # no response started: an exception passes this gate to the error layer, a 500
            log.info("%s %s %d %.1f ms", method, logged_path(path), watched.status or 500, 1000 * (time.perf_counter() - t))


# --- admission: a bounded number of requests in progress per worker (pure ASGI) -----------------------------

#: What a refused request is told to wait before it tries again (its ``Retry-After``, seconds).
RETRY_AFTER_SECONDS = 1
#: Routes always admitted: a liveness probe says the worker is alive, however busy it is.
ALWAYS_ADMITTED = ("/healthz",)


class Admission:
    """At most ``limit`` requests in progress in this worker; one more gets a JSON 503 at once, with
    ``Retry-After``, instead of a place in a queue without end.

    Without it an overloaded worker queued every request (uvicorn's own ``limit_concurrency`` answers in
    plain text): each new patient's request costs about 20 ms of a core (docs/service.md), so a burst beyond
    what the cores answer made every later card slower, including those whose caller had given up, until
    the burst ended. With it, the requests admitted are answered within about ``limit`` answers' time and
    the rest are told at once to retry. Before the token check, so that a refused request costs none (and
    inside :class:`Cors`, so that a browser client may read the refusal). One event loop per worker runs
    this, so the count needs no lock.

    A request leaves the count when its response starts, not when its last byte is sent: sending waits while
    the client does not read, and until 5 December clients that never read (no token needed: 40 connections
    asking for ``/openapi.json``) held every place, so that every other request got 503. How long an unread
    answer may wait is the protocol's bound (:data:`palsy.scripts.serve.protocol.WRITE_STALL_SECONDS`)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.in_progress = app, limit, 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in ALWAYS_ADMITTED:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            log.info("%s %s 503 (%d requests in progress, the limit)", scope["method"], logged_path(scope["path"]),
                     self.in_progress)
            await error_response(503, "overloaded", f"this worker is answering {self.limit} requests, its limit "
                        f"(max_concurrent_requests); retry in {RETRY_AFTER_SECONDS} s",
                        {"Retry-After": str(RETRY_AFTER_SECONDS)})(scope, receive, send)
            return
        self.in_progress += 1
        admitted = True

        def leave() -> None:
            nonlocal admitted
            if admitted:
                admitted = False
                self.in_progress -= 1

        try:  # leaves when the response starts: the work is done, what is left is the client's to read
            await self.app(scope, receive, _WatchedSend(send, leave))
        finally:
            leave()


# --- large bodies: one at a time per worker (pure ASGI) ----------------------------------------------------------

#: A body larger than this is a large one (a typical prefetch is 5-20 kB; a record with years of results, MBs).
LARGE_BODY_BYTES = 512 * 1024
#: How long a large body waits for its turn before it is told to retry (seconds).
LARGE_WAIT_SECONDS = 10.0


class LargeBodies:
    """At most ``limit`` requests whose body is large (over ``threshold`` bytes by its Content-Length, or of no
    stated length) read and answered at a time in this worker; the others wait their turn, their bodies unread,
    up to ``wait_seconds``, then get a JSON 503 with ``Retry-After``. ``after()``, in a worker thread, once such a
    request has been answered (the memory its record took, given back).

    Large records at once added up: 31 of 4 MB took a worker from 459 MB to 1,048 MB, kept afterwards, and a small
    new patient behind them waited 32 s (second review of s17, #7). One at a time, a 4 MB record takes a worker
    about 100 MB over its usual size at the peak (150-180 MB when its findings are the first of their kind the worker
    answers), ten sent at once no more than one alone (measured in s18, docs/service.md).

    Inside the gate (a token first) and outside the body limit; a body that limit refuses by its Content-Length
    (over ``body_limit`` bytes, or no number) takes no turn and meets the 413 at once (until s18 it waited for a turn,
    up to 10 s, and was then told to retry: a 503 it could never pass). A turn ends when the response starts."""

    def __init__(self, app: Any, threshold: int = LARGE_BODY_BYTES, limit: int = 1,
                 wait_seconds: float = LARGE_WAIT_SECONDS, after: Any = None, body_limit: int | None = None) -> None:
        self.app, self.threshold, self.limit, self.wait_seconds, self.after = app, threshold, limit, wait_seconds, after
        self.body_limit = body_limit
        self.turns: anyio.Semaphore | None = None  # made in the event loop, on the first large body

    def large(self, scope: dict) -> bool:
        """Whether a request takes a turn: a POST whose body is over ``threshold`` bytes by its Content-Length, or
        of no stated length (streamed); not one the body limit refuses by its Content-Length."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is None:
            return True
        if not length.isdigit() or (self.body_limit is not None and int(length) > self.body_limit):
            return False
        return int(length) > self.threshold

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not self.large(scope):
            await self.app(scope, receive, send)
            return
        if self.turns is None:
            self.turns = anyio.Semaphore(self.limit)
        turns, got = self.turns, False
        with anyio.move_on_after(self.wait_seconds):
            await turns.acquire()
            got = True
        if not got:
            log.info("%s %s 503 (large bodies: %d in progress, the limit)", scope["method"], logged_path(scope["path"]),
                     self.limit)
            wait = max(1, round(self.wait_seconds))
            await error_response(503, "busy_large_records", f"this worker is answering {self.limit} large record(s) "
                                 f"(over {self.threshold // 1024} kB), its limit; retry in {wait} s",
                                 {"Retry-After": str(wait)})(scope, receive, send)
            return
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                turns.release()

        try:
            await self.app(scope, receive, _WatchedSend(send, release))
        finally:
            release()
            if self.after is not None:
                await run_in_threadpool(self.after)


# --- internal errors: a JSON 500 inside the CORS layer, logged without the exception's words (pure ASGI) ---------

class InternalErrors:
    """An exception no route handled becomes a JSON 500 ``internal`` naming an event id, and one log line: the
    event, the route, the exception's type and where it was raised (file, line, function of the last frames),
    never its message, its arguments or a traceback, which can quote the record (a value, a name).

    Inside :class:`Cors`, so that a browser-based client reads the 500 as it reads every other error (Starlette's
    own error handler sits outside every middleware, where no CORS header is added); the exception is not raised
    further, so the server logs no traceback either. A response already started cannot be replaced: the
    connection is then closed with the line logged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = _WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # noqa: BLE001 (every exception becomes the JSON 500)
            response = internal_error(scope["method"], scope["path"], exc)
            if not watched.started:
                await response(scope, receive, send)


#: How many of an exception's innermost frames its log line names.
LOGGED_FRAMES = 4


def internal_error(method: str, path: str, exc: BaseException) -> JSONResponse:
    """Log an internal error (its event id, route, type and innermost frames; no message) and the JSON 500."""
    event = uuid.uuid4().hex[:12]
    frames = []
    tb = exc.__traceback__
    while tb is not None:  # each frame by its module's name, which says where it is wherever palsy is installed
        code = tb.tb_frame.f_code
        frames.append(f"{tb.tb_frame.f_globals.get('__name__', '?')}:{tb.tb_lineno} {code.co_name}")
        tb = tb.tb_next
    where = " < ".join(reversed(frames[-LOGGED_FRAMES:])) or "no frame"
    log.error("internal error %s on %s %s: %s at %s", event, method, logged_path(path), type(exc).__name__, where)
    return error_response(500, "internal", f"internal error (event {event}); nothing was written to the record")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)


# --- CORS: browser-based CDS clients (pure ASGI, Starlette's) -------------------------------------------------

class Cors(CORSMiddleware):
    """Starlette's CORS middleware for the configured origins only (``cors_origins``), whose refused preflight
    is a JSON body like every other error (Starlette's is plain text).

    CDS Hooks 2.0 ("Cross-Origin Resource Sharing"): CDS services and browser-based CDS clients, such as the
    CDS Hooks sandbox an integration is often first tried from, need CORS. Outermost, so that a preflight
    (which carries no token) is answered here and a 401 or 503 reaches the page that asked with the headers
    that let it read why; no credentials (the token is a header, never a cookie) and no wildcard origin."""

    def preflight_response(self, request_headers: Any) -> Any:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = bytes(response.body).decode("utf-8", "replace").removeprefix("Disallowed CORS ")
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return error_response(400, "cors_refused", f"this cross-origin request is not allowed ({refused}); the service "
                     f"allows the origins of its configuration (cors_origins), methods GET and POST, headers "
                     f"Authorization and Content-Type", headers)

    def headers_for(self, request_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The headers this layer adds to any answer (not a preflight's) to a request with ``request_headers``
        (lower-case names): made by its own ``send``, so that they are exactly those of every other answer of
        the service (an allowed Origin mirrored with ``Vary`` and the exposed headers; no other origin
        allowed). For the answers the HTTP protocol writes itself, before any app runs (431, 408, 400:
        :data:`palsy.scripts.serve.protocol.CORS_STATE`)."""
        message: dict[str, Any] = {"type": "http.response.start", "status": 400, "headers": []}

        async def keep(_: dict) -> None:
            return None

        step = self.send(message, send=keep, request_headers=Headers(raw=list(request_headers)))
        try:
            step.send(None)  # Starlette's send awaits nothing but ``keep``: it runs to its end at once
        except StopIteration:
            return [(bytes(k), bytes(v)) for k, v in message["headers"]]
        step.close()
        raise RuntimeError("the CORS layer's send waited")


# --- request bodies read strictly ------------------------------------------------------------------------------

class BadBody(StarletteHTTPException):
    """A request body that is not JSON as the service reads it (:mod:`palsy.model.safe_json`): a JSON 400
    ``bad_json`` saying what is wrong (a key given twice and where, a number of over 4300 digits, nesting too
    deep, NaN, not UTF-8, a compressed body), never a value of the body. An HTTP exception, so FastAPI's body
    reader raises it on (any other exception it turns into "There was an error parsing the body", which named
    nothing: s16 review U2); a key given twice was read last-one-wins until 6 December (S6)."""

    code = "bad_json"

    def __init__(self, detail: str) -> None:
        super().__init__(400, f"the request body is not valid JSON: {detail}")


#: The content codings that compress (RFC 9110's registry and common use): the service reads none of them.
COMPRESSIONS = frozenset({"gzip", "x-gzip", "deflate", "br", "compress", "x-compress", "zstd", "aes128gcm"})


class NotJson(StarletteHTTPException):
    """A POST whose ``Content-Type`` is not JSON (or is missing): a JSON 415 naming the header to send (until s17
    the body was read as something else, and the 400 named the body, not the header)."""

    code = "unsupported_media_type"

    def __init__(self, given: str | None) -> None:
        shown = f"Content-Type {given[:60]}" if given and given.isprintable() else "no Content-Type"
        super().__init__(415, f"the request body is read as JSON only: send it with Content-Type: application/json "
                              f"(or application/fhir+json), not {shown}")


def is_json_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` is JSON: application/json or application/<anything>+json, any parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class StrictJsonRequest(Request):
    """A request whose JSON body is read by :func:`palsy.model.safe_json.loads` (a large one in a worker thread)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            coding = self.headers.get("content-encoding", "").strip()
            # a compression the service does not undo is refused, said; a value that compresses nothing ('utf-8',
            # 'none': a client's slip, accepted before the body was read strictly) reads the body as it is, and a
            # body it did compress is then not JSON (a second review, s16)
            if {c.strip().lower() for c in coding.split(",")} & COMPRESSIONS:
                shown = coding if len(coding) <= 20 and coding.isprintable() else "given"
                raise BadBody(f"Content-Encoding {shown} is not accepted; send the body uncompressed")
            body = await self.body()
            try:
                self._json = J.loads(body) if len(body) <= LOOP_JSON_BYTES else \
                    await anyio.to_thread.run_sync(J.loads, body)
            except J.JSONInputError as exc:
                raise BadBody(exc.detail) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """The app's routes: their requests are :class:`StrictJsonRequest` (FastAPI's documented way to change how
    a body is read), and a POST's body is JSON by its ``Content-Type`` (else :class:`NotJson`)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Any:
            if request.method == "POST" and not is_json_type(request.headers.get("content-type")):
                raise NotJson(request.headers.get("content-type"))
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict


#: The most characters of a path a log line quotes (before escaping).
LOGGED_PATH_CHARS = 200


def logged_path(path: str) -> str:
    """The route for the log: a report's id is its key, never logged; any other path as sent, its first
    :data:`LOGGED_PATH_CHARS` characters, with every character that is not printable, every space and every
    backslash escaped (``\\x0a``), so that a path can neither start a line of its own nor read as another
    part of its line (the decoded path was logged as sent until 5 December: ``%0A`` in a URL wrote a line
    that read as a card's)."""
    if path.startswith("/reports/"):
        return "/reports/<id>"
    return "".join(c if c.isprintable() and not c.isspace() and c != "\\" else _escaped(c)
                   for c in path[:LOGGED_PATH_CHARS])


def _escaped(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"

