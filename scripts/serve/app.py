"""The HTTP service: CDS Hooks 2.0 discovery, the ``patient-view`` service, feedback, the served reports.

Routes (every ``/cds-services`` call needs the CDS Hooks JWT, :mod:`.auth`):

- ``GET /cds-services``: discovery, with the prefetch templates the service reads;
- ``POST /cds-services/{id}``: a ``patient-view`` call answered from its prefetch only (the record is never
  called); 412 with the missing prefetch keys when the client did not send them; ``{"cards": []}`` when the
  record holds no current facial palsy in a patient with leukaemia; each answer given is appended to the
  feedback log (the card's id, the salted patient hash, the findings as mapped and P(cause), never the
  record's id), so that ``palsy registry from-feedback`` can pair it with the card's outcome and a later
  adjudication (docs/registry.md);
- ``POST /cds-services/{id}/feedback``: accepted/overridden outcomes appended to the feedback log, for cards
  this service issued and whose report has not expired only (:meth:`.store.Reports.issued`; a request naming
  any other card is a 400 ``unknown_card`` and writes nothing);
- ``GET /reports/{id}``: the clinician report (HTML) a card links to, until it expires (the id is the key);
- ``GET /openapi.json`` (the OpenAPI description) and ``GET /healthz``.

Every error is a JSON body ``{"error": code, "message": words}``, never a traceback; request bodies over the
configured size get 413 before they are read in full; a request beyond the configured number in progress in
its worker gets 503 with ``Retry-After`` at once (:class:`Admission`). Browser-based CDS clients are answered
from the configured origins only (:class:`Cors`). Logs carry no patient data: a salted hash of the
patient id, the route, the status and the time taken; an internal error is logged by its type and where it
was raised, never by its words (:class:`InternalErrors`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from palsy.model import fhir as X
from palsy.model import findings as F
from palsy.model import registry_feedback as RF
from palsy.model import safe_json as J
from palsy.reports import cards
from palsy.scripts.serve import config as C
from palsy.scripts.serve.auth import AuthError, KeySetUnavailable, Verifier
from palsy.scripts.serve.engine import Engine
from palsy.scripts.serve.protocol import CORS_STATE
from palsy.scripts.serve.store import FeedbackLog, Reports

log = logging.getLogger("palsy.serve")
HOOK = "patient-view"


class ServiceError(Exception):
    """An error answered as ``{"error": code, "message": ...}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


#: Threads answering cards in a worker, in each of its two lanes (the patient-view service's own, apart from the
#: pool of the other routes): the lane of cards already answered (their mapping and answer memoised) and the
#: lane of new ones, each woken first come, first served. A memoised card then never waits behind a new
#: patient's answer, nor a new one behind a queue of memoised ones. A card is Python and numpy holding the GIL,
#: so more threads add no throughput: they share the worker's CPU among the cards in progress, and a new
#: patient's card (about 15 ms of CPU) among ten memoised ones took ten times its own time. Two rather than
#: one: a card's files and the feedback log's fsync wait on the disk, when the other thread computes
#: (6 December, 20 clients without pause, locust's patients memoised: a new patient's median 169 ms with the
#: common pool, 107 ms with one thread, 105 ms with two, 81-85 ms with two lanes of two; memoised cards 45,
#: 67, 39 and 45 ms; docs/service.md).
CARD_THREADS = 2
#: The largest request body whose prefetch is keyed in the event loop to choose its lane (a typical record's
#: prefetch is 5-20 kB: about 0.1 ms); a larger one is answered in the lane of new cards.
PEEK_BYTES = 64 * 1024


# --- request bodies (for validation and the OpenAPI description) -----------------------------------------

class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service call (the fields palsy reads; others are allowed and ignored)."""

    model_config = ConfigDict(extra="allow")
    hook: str
    hookInstance: str
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    fhirServer: str | None = None


#: A card's or a suggestion's id: CDS Hooks 2.0 names them by the ``uuid`` the service gave, and palsy's are UUIDs.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: RFC 3339's date-time, CDS Hooks 2.0's ``outcomeTimestamp`` (``[0-9]``: pydantic's ``\d`` matches any script's digits).
DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
#: The most suggestions one outcome may name (palsy's cards offer none).
MAX_SUGGESTIONS = 20


class Coding(BaseModel):
    """An override reason's Coding: its system (a URI) and code are logged, never its display (a client's
    own reasons may carry any words)."""

    model_config = ConfigDict(extra="allow")
    system: str | None = Field(None, max_length=200, pattern=r"^\S+$")
    code: str | None = Field(None, max_length=64, pattern=r"^\S+( \S+)*$")  # FHIR's code
    display: str | None = Field(None, max_length=200)


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    reason: Coding | None = None
    userComment: str | None = Field(None, max_length=10_000)  # never logged: only whether there was one


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=UUID_PATTERN)


class Feedback(BaseModel):
    """One card's outcome. An override reason goes with ``overridden`` only; one in palsy's own code system
    must be a reason the cards offer (a client may add reasons of its own systems, logged by system and code).
    Every field logged is bounded and none is free text: the card and suggestions by their UUIDs, the time as
    RFC 3339, a reason by its system and code (until 5 December a reason's display and the ids were logged
    as sent, of any length)."""

    model_config = ConfigDict(extra="allow")
    card: str = Field(pattern=UUID_PATTERN)
    outcome: str = Field(pattern="^(accepted|overridden)$")
    outcomeTimestamp: str = Field(pattern=DATE_TIME_PATTERN)
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(None, max_length=MAX_SUGGESTIONS)
    overrideReason: OverrideReason | None = None

    @model_validator(mode="after")
    def _reason_fits(self) -> Feedback:
        if self.overrideReason is not None and self.outcome != "overridden":
            raise ValueError(f"an overrideReason goes with the outcome overridden, not {self.outcome}")
        reason = self.overrideReason.reason if self.overrideReason is not None else None
        if reason is not None and reason.system == cards.OVERRIDE_SYSTEM and reason.code not in cards.OVERRIDE_REASONS:
            raise ValueError(f"overrideReason.reason.code {str(reason.code)[:40]!r} is not a reason palsy's cards offer; "
                             f"the codes of {cards.OVERRIDE_SYSTEM} are {', '.join(cards.OVERRIDE_REASONS)}")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[Feedback] = Field(min_length=1, max_length=100)


# --- the body-size limit (pure ASGI: refused before the body is read in full) ------------------------------

class _TooLarge(StarletteHTTPException):
    """A body over the limit, found as it streams (no Content-Length). An HTTP exception: FastAPI's body
    reader turns any other exception raised while it reads into a 400 ("There was an error parsing the
    body"), which is what a chunked body over the limit got until 5 December; this one it raises on, and the
    app's handler answers it as the 413 ``too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


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
        too_big = _json(413, "too_large", _TooLarge(self.limit).detail)
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
    authorized one carries its token's issuer to the route (``request.state.issuer``; None when unsigned). Each
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
        if path == "/cds-services" or path.startswith("/cds-services/"):
            header = next((v.decode("latin-1") for k, v in scope.get("headers") or () if k == b"authorization"), None)
            try:
                issuer = await run_in_threadpool(self.authorize, path, header)
            except ServiceError as exc:
                log.info("%s %s %d (%s)", method, _path(path), exc.status, exc.message)
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {"Retry-After": "60"}
                await _json(exc.status, exc.code, exc.message, headers)(scope, receive, send)
                return
            scope.setdefault("state", {})["issuer"] = issuer  # the route's request.state.issuer (feedback logs it)
        watched = _WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:  # no response started: an exception passes this gate to the error layer, a 500
            log.info("%s %s %d %.1f ms", method, _path(path), watched.status or 500, 1000 * (time.perf_counter() - t))


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
            log.info("%s %s 503 (%d requests in progress, the limit)", scope["method"], _path(scope["path"]),
                     self.in_progress)
            await _json(503, "overloaded", f"this worker is answering {self.limit} requests, its limit "
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
    log.error("internal error %s on %s %s: %s at %s", event, method, _path(path), type(exc).__name__, where)
    return _json(500, "internal", f"internal error (event {event}); nothing was written to the record")


def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
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
        return _json(400, "cors_refused", f"this cross-origin request is not allowed ({refused}); the service "
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


class StrictJsonRequest(Request):
    """A request whose JSON body is read by :func:`palsy.model.safe_json.loads`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            coding = self.headers.get("content-encoding", "").strip()
            # a compression the service does not undo is refused, said; a value that compresses nothing ('utf-8',
            # 'none': a client's slip, accepted before the body was read strictly) reads the body as it is, and a
            # body it did compress is then not JSON (a second review, s16)
            if {c.strip().lower() for c in coding.split(",")} & COMPRESSIONS:
                shown = coding if len(coding) <= 20 and coding.isprintable() else "given"
                raise BadBody(f"Content-Encoding {shown} is not accepted; send the body uncompressed")
            try:
                self._json = J.loads(await self.body())
            except J.JSONInputError as exc:
                raise BadBody(exc.detail) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """The app's routes: their requests are :class:`StrictJsonRequest` (FastAPI's documented way to change how
    a body is read)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Any:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict


# --- a worker's start: what failed, in one line ------------------------------------------------------------------

def import_report_modules() -> None:
    """Import what ``GET /reports/{id}`` renders with (its route imports them when first asked)."""
    from palsy.reports import context, render  # noqa: F401


def record_start_failure(exc: BaseException) -> str:
    """The line saying why this worker could not start (its pid, the exception's type and words: a start-up
    reads files, never a record), logged and written where ``palsy serve`` reads it
    (:data:`palsy.scripts.serve.config.START_FAILURES_ENV`: the exit status it means, a tab, the line), so that the command exits
    with that status, not 0, when the workers' supervisor stops."""
    from palsy.scripts.palsy import input_errors

    words = " ".join(str(exc).split())
    words = words if len(words) <= 400 else words[:400] + "..."
    line = f"worker {os.getpid()}: {type(exc).__name__}: {words}" if words else f"worker {os.getpid()}: {type(exc).__name__}"
    status = 2 if isinstance(exc, input_errors()) else 1
    _tell_serve(f"{status}\t{line}")
    return line


def record_started() -> None:
    """Say where ``palsy serve`` reads the workers' starts that this worker started (``started``, a tab, its pid): a
    worker that fails later (a restart after SIGHUP) is then not a service that never served (a second review, s16:
    the operator's clean stop after a failed restart had exited 1, 'nothing was served')."""
    _tell_serve(f"started\t{os.getpid()}")


def _tell_serve(line: str) -> None:
    """A line where ``palsy serve`` reads its workers' starts (:data:`palsy.scripts.serve.config.START_FAILURES_ENV`;
    nothing without it: a worker started otherwise, by a test's app)."""
    path = os.environ.get(C.START_FAILURES_ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError:
            pass


class StartFailures:
    """A worker's failed start said in one line (``failure["line"]``, :func:`record_start_failure`), not the
    traceback Starlette hands uvicorn to log (it printed one per worker, s16 review S5). Lifespan only."""

    def __init__(self, app: Any, failure: dict[str, str]) -> None:
        self.app, self.failure = app, failure

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def one_line(message: dict) -> None:
            if message["type"] == "lifespan.startup.failed":
                message = {**message, "message": f"palsy serve: {self.failure.get('line') or 'the worker failed to start'}"}
            await send(message)

        await self.app(scope, receive, one_line)


# --- the app ------------------------------------------------------------------------------------------------

def _prefetch(table: X.Table) -> dict[str, str]:
    """The prefetch templates: the patient, and each resource type filtered to the table's codes."""
    def codes(role: str, *systems: str) -> str:
        rows = [f"{r.system}|{r.code}" for r in table.rows if r.role == role]
        return ",".join(rows + [f"{s}|" for s in systems])

    loc = table.local
    p = "{{context.patientId}}"
    return {
        "patient": f"Patient/{p}",
        "conditions": f"Condition?patient={p}",
        "observations": f"Observation?patient={p}&code={codes('lab', loc['finding_system'])}",
        "administrations": f"MedicationAdministration?patient={p}&code={codes('medication')}",
        # given or ordered by medicationReference (Epic, Cerner): the code search matches only a CodeableConcept,
        # so the Medication's code is searched through the reference and the Medication included
        "administrations_by_reference": f"MedicationAdministration?patient={p}&medication.code={codes('medication')}"
                                        f"&_include=MedicationAdministration:medication",
        "orders": f"MedicationRequest?patient={p}&code={codes('medication')}&status=completed",
        "orders_by_reference": f"MedicationRequest?patient={p}&medication.code={codes('medication')}&status=completed"
                               f"&_include=MedicationRequest:medication",
        # a Medication coded by a product code the table lacks (an RxNorm SCD) whose ingredient is a drug of the
        # table: found by the Medication's ingredient-code (FHIR R4's Medication search parameter)
        "administrations_by_ingredient": f"MedicationAdministration?patient={p}&medication.ingredient-code="
                                         f"{codes('medication')}&_include=MedicationAdministration:medication",
        "orders_by_ingredient": f"MedicationRequest?patient={p}&medication.ingredient-code={codes('medication')}"
                                f"&status=completed&_include=MedicationRequest:medication",
        "procedures": f"Procedure?patient={p}&code={codes('procedure')}",
        "reports": f"DiagnosticReport?patient={p}&conclusion={codes('imaging')}",
    }


def log_to_stderr() -> None:
    """The service's log lines (:data:`log`) on standard error with their time and worker, set up once per
    process: uvicorn starts each worker of ``--workers N`` in a new interpreter, which the command's own
    logging set-up never reaches (until 5 December a service of two workers logged nothing but errors, and
    those without a time)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def create_app(config: C.Config | None = None) -> FastAPI:
    """The FastAPI application (uvicorn's factory: the configuration from ``$PALSY_SERVE_SETTINGS``)."""
    config = config or C.Config.from_env(os.environ[C.ENV])
    log_to_stderr()
    state: dict[str, Any] = {}
    render_lock = threading.Lock()
    start_failure: dict[str, str] = {}
    # the CORS layer's settings: the app's layer, and the headers the HTTP protocol adds to its own refusals
    cors = dict(allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"], allow_credentials=False,
                expose_headers=["Retry-After", "WWW-Authenticate"], max_age=600)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        t = time.perf_counter()
        try:
            state["engine"] = Engine.load(config)
            state["verifier"] = Verifier(config)
            state["reports"] = Reports(config.state_dir, config.report_ttl_seconds)
            state["feedback"] = FeedbackLog(config.state_dir)
            state["prefetch"] = _prefetch(state["engine"].fhir_table)
            state["cards"] = anyio.CapacityLimiter(CARD_THREADS)
            state["memoised"] = anyio.CapacityLimiter(CARD_THREADS)
            # what a report needs, imported now: imported on the first report, files replaced under a running
            # service (an upgrade in place) made every report a 500 while cards went on (s16 review U15)
            import_report_modules()
        except Exception as exc:  # noqa: BLE001 - one line, and palsy serve's status (StartFailures)
            start_failure["line"] = record_start_failure(exc)
            raise
        record_started()
        if config.insecure_dev:
            log.warning("palsy serve: --insecure-dev: unsigned requests are accepted (bound to %s only)", config.host)
        log.info("palsy serve: model loaded in %.1f s (worker ready in %.1f s)", state["engine"].load_seconds,
                 time.perf_counter() - t)
        # to the server (uvicorn's app_state): the HTTP protocol's 431, 408 and 400 carry the CORS headers too
        yield {CORS_STATE: Cors(None, **cors).headers_for} if config.cors_origins else None

    app = FastAPI(title="palsy CDS Hooks service", version=_version(), lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Facial palsy in acute leukaemia: P(leukaemic infiltration) against its mimics, as a "
                              "CDS Hooks 2.0 patient-view card. Decision support, not an order; it never writes to "
                              "the record.")
    app.router.route_class = StrictJsonRoute  # request bodies read strictly (safe_json), each refusal a JSON 400
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    def id_hash(pid: str) -> str:
        return hashlib.sha256((config.log_salt + "\x00" + pid).encode("utf-8")).hexdigest()[:16]

    def authorize(path: str, header: str | None) -> str | None:
        """Verify the CDS Hooks JWT of a call to ``path`` (its audience: the URL of that endpoint); its issuer
        (None for an unsigned call with ``--insecure-dev``)."""
        if config.insecure_dev and header is None:
            return None
        audiences = [config.service_url + path]
        if path.endswith("/feedback"):  # the service's own URL is accepted as the audience of its feedback
            audiences.append(config.service_url + path[: -len("/feedback")])
        try:
            return str(state["verifier"].verify(header, audiences)["iss"])
        except KeySetUnavailable as exc:  # the issuer's fault, not the token's: a 503 the client may retry
            raise ServiceError(503, "keys_unavailable", str(exc)) from None
        except AuthError as exc:
            raise ServiceError(401, "unauthorized", str(exc)) from None

    app.add_middleware(Gate, authorize=authorize)  # outside BodyLimit: a call is authorized first
    app.add_middleware(Admission, limit=config.max_concurrent_requests)  # before the token
    app.add_middleware(InternalErrors)  # inside Cors: a 500 carries the CORS headers as every other error does
    if config.cors_origins:  # outermost: a preflight carries no token, and a refusal gets the CORS headers
        app.add_middleware(Cors, **cors)
    app.add_middleware(StartFailures, failure=start_failure)  # lifespan only

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _json(exc.status, exc.code, exc.message, headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _json(400, "bad_json", "the request body is not valid JSON")
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in errors[:20]]
        return _json(400, "bad_request", "the request does not follow CDS Hooks 2.0", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or {404: "not_found", 405: "method_not_allowed",
                                                 413: "too_large"}.get(exc.status_code, "http_error")
        return _json(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)  # what the CORS layer itself might raise (InternalErrors answers the rest)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return internal_error(request.method, request.url.path, exc)

    @app.get("/healthz", summary="Liveness and the model this worker serves")
    def healthz() -> dict[str, Any]:
        engine = state.get("engine")
        return {"status": "ok", "model": engine.model_info() if engine else None}

    # a probe's HEAD is answered as its GET (the server sends the head only); it was a 405 (s16 review U14)
    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)

    @app.get("/cds-services", summary="CDS Hooks 2.0 discovery")
    def discovery(request: Request) -> dict[str, Any]:
        return {"services": [{
            "hook": HOOK, "id": C.SERVICE_ID, "title": "Facial palsy in acute leukaemia: infiltration or a mimic?",
            "description": "For a patient with acute leukaemia and a current facial palsy: P(leukaemic infiltration) "
                           "against Bell's palsy, zoster, vincristine neuropathy, GBS and otomastoiditis, with what "
                           "to do now and what the record did not say. Decision support, not an order.",
            "prefetch": state["prefetch"],
            "usageRequirements": "Answers from the prefetch only (it never calls the record); a card only for a "
                                 "patient with a coded leukaemia and a current facial palsy Condition.",
        }]}

    @app.post("/cds-services/{service_id}", summary="The patient-view service: a card from the prefetch")
    async def call(service_id: str, body: HookRequest, request: Request) -> dict[str, Any]:
        # two lanes, each first come, first served (anyio wakes a limiter's waiters in order): a card already
        # answered is served from memory by threads of its own, never behind a new patient's answer, and a new
        # one waits only for the new ones before it (CARD_THREADS)
        key = _memo_key(body, request)
        memoised = key is not None and state["engine"].answered(key)
        return await anyio.to_thread.run_sync(functools.partial(patient_view, service_id, body, key),
                                              limiter=state["memoised" if memoised else "cards"])

    def _memo_key(body: HookRequest, request: Request) -> str | None:
        """The prefetch's key in the mapping memo, computed in the event loop for a body of at most
        :data:`PEEK_BYTES` (about 0.1 ms for a typical prefetch); None otherwise, and for a prefetch the route
        refuses (answered in the lane of new cards, where the route's checks say why)."""
        size = request.headers.get("content-length", "")
        if not size.isdigit() or int(size) > PEEK_BYTES or not isinstance(body.prefetch, dict):
            return None
        try:
            return Engine.bundle_key(_collection(body.prefetch, state["prefetch"]))
        except (ServiceError, TypeError, ValueError, RecursionError):
            return None

    def patient_view(service_id: str, body: HookRequest, key: str | None = None) -> dict[str, Any]:
        if service_id != C.SERVICE_ID:
            raise ServiceError(404, "not_found", f"no CDS service {service_id[:80]!r}; see GET /cds-services")
        if body.hook != HOOK:
            raise ServiceError(400, "bad_request", f"hook {body.hook[:40]!r} is not served; this service is {HOOK}")
        pid = body.context.get("patientId")
        if not isinstance(pid, str) or not pid:
            raise ServiceError(400, "bad_request", "context.patientId is required (a string)")
        templates = state["prefetch"]
        given = body.prefetch or {}
        missing = [k for k in templates if k not in given and k not in OPTIONAL_PREFETCH]
        if missing:
            raise ServiceError(412, "prefetch_missing", "this service answers from the prefetch only and never calls "
                               "the record; send these prefetch keys", missing=missing,
                               prefetch={k: templates[k] for k in missing})
        failed = [k for k, v in given.items() if isinstance(v, dict) and v.get("resourceType") == "OperationOutcome"]
        if failed:
            raise ServiceError(412, "prefetch_failed", "the record reported an error for these prefetch keys",
                               missing=failed)
        bundle = _collection(given, templates)
        try:
            mapping = state["engine"].mapped(bundle, key)
        except F.InputError as exc:
            raise ServiceError(422, "invalid_fhir", "the prefetch is not a valid FHIR R4 record of one patient",
                               problems=exc.problems[:20]) from None
        if mapping.record_id != pid:
            raise ServiceError(422, "invalid_fhir", "the prefetched Patient is not context.patientId")
        who = id_hash(pid)
        if config.require_palsy and not (mapping.has_palsy and mapping.has_leukaemia):
            log.info("patient %s: no current facial palsy with a coded leukaemia: no card", who)
            return {"cards": []}
        try:
            patient = F.parse_patient(mapping.patient, "prefetch", schema=state["engine"].draws.schema)
        except F.InputError as exc:
            raise ServiceError(422, "invalid_fhir", "the record's findings are not valid", problems=exc.problems[:20]) from None
        d = state["engine"].card(patient)
        card_id = str(uuid.uuid4())
        notes = [*mapping.notes, *_not_prefetched(given, mapping, state["engine"].fhir_table)]
        # the card's record: its report, and what tells any worker that the card is this service's (feedback)
        rid = state["reports"].put({"patient": mapping.patient, "not_found": mapping.not_found, "notes": notes},
                                   card=card_id)
        card = cards.card(d, uuid=card_id, source_label=config.source_label, source_url=config.source_url,
                          report_url=f"{config.service_url}/reports/{rid}", notes=notes,
                          not_found_text=X.finding_lines(mapping.not_found) if mapping.not_found else None,
                          schema=state["engine"].draws.schema)
        # what the tool said, beside the card's later outcome: the feedback loop's record (docs/registry.md)
        state["feedback"].append([RF.answer_entry(card_id, who, patient, d, service_id)])
        log.info("patient %s: card %s %s", who, card_id, card["indicator"])
        return {"cards": [card]}

    @app.post("/cds-services/{service_id}/feedback", summary="Accepted or overridden cards, to an append-only log")
    def feedback(service_id: str, body: FeedbackRequest, request: Request) -> dict[str, Any]:
        if service_id != C.SERVICE_ID:
            raise ServiceError(404, "not_found", f"no CDS service {service_id[:80]!r}")
        unknown = [f"feedback.{i}.card: {f.card!r} is not a card this service issued, or its report has expired"
                   for i, f in enumerate(body.feedback) if not state["reports"].issued(f.card)]
        if unknown:  # all or nothing: no line of the request is written
            raise ServiceError(400, "unknown_card", f"feedback[].card: each outcome's card must be the uuid of a card "
                               f"this service answered, until its report expires ({config.report_ttl_seconds} s after "
                               f"the card); nothing was recorded", problems=unknown[:20])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = []
        for f in body.feedback:
            entries.append(_outcome_entry(f, now, service_id, getattr(request.state, "issuer", None)))
        state["feedback"].append(entries)
        return {"recorded": len(entries)}

    @app.get("/reports/{report_id}", response_class=HTMLResponse, summary="The clinician report a card links to")
    def report(report_id: str) -> HTMLResponse:
        reports = state["reports"]
        rec = reports.get(report_id)
        if rec is None:
            raise ServiceError(404, "not_found", "no such report, or it has expired")
        html = reports.html(report_id)
        if html is None:
            from palsy.reports import context, render

            engine = state["engine"]
            patient = F.parse_patient(rec["patient"], "report", schema=engine.draws.schema)
            ans = engine.answer(patient)
            # what the card said of the record (a positive CSF result not used, what to examine) is the report's too
            record = {"notes": rec.get("notes") or [],
                      "not_found": X.finding_lines(rec["not_found"]) if rec.get("not_found") else None}
            with render_lock:  # matplotlib is not thread-safe
                html = render.html(context.build(ans, engine.evidence, record=record)).encode("utf-8")
            reports.put_html(report_id, html)
        return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                           "Content-Security-Policy": "default-src 'none'; img-src data:; "
                                                                      "style-src 'unsafe-inline'"})

    return app


def _outcome_entry(f: Feedback, received: str, service_id: str, issuer: str | None) -> dict[str, Any]:
    """The feedback log's line for one outcome: bounded fields only, no free text (a reason by its system and
    code, a comment by whether there was one), and the issuer of the token that sent it."""
    # the card as the service wrote it (a UUID's lower-case form), so that the log pairs it with its answer
    e: dict[str, Any] = {"received": received, "service": service_id, "card": str(uuid.UUID(f.card)), "outcome": f.outcome,
                         "outcomeTimestamp": f.outcomeTimestamp}
    if issuer is not None:
        e["issuer"] = issuer
    if f.acceptedSuggestions:
        e["acceptedSuggestions"] = [s.id for s in f.acceptedSuggestions]
    if f.overrideReason is not None:
        reason = f.overrideReason.reason
        coded = reason.model_dump(include={"system", "code"}, exclude_none=True) if reason is not None else {}
        if coded:
            e["overrideReason"] = coded
        e["hasComment"] = bool(f.overrideReason.userComment)
    return e


#: Prefetch keys a client may leave out (a chained search through medicationReference, which not every record
#: system serves): without them a dose given by reference is not read, and the card says so where it matters.
OPTIONAL_PREFETCH = ("administrations_by_reference", "orders_by_reference", "administrations_by_ingredient",
                     "orders_by_ingredient")


def _not_prefetched(given: dict[str, Any], mapping: Any, table: X.Table) -> list[str]:
    """The card's note when an optional prefetch was not sent and an exposure it could hold is not found."""
    left = [k for k in OPTIONAL_PREFETCH if k not in given]
    exposures = sorted({r.finding for r in table.rows if r.role == "medication"} & set(mapping.not_found))
    if not left or not exposures:
        return []
    # what each pair of keys finds: the note names what was left out, and only that (a second review, s16: a
    # client of the day before, sending the by-reference keys, was told that doses by reference were not read)
    what = []
    if any(k.endswith("_by_reference") for k in left):
        what.append("a dose given or ordered by medicationReference")
    if any(k.endswith("_by_ingredient") for k in left):
        what.append("a dose of a Medication coded only through its ingredient")
    return [f"{', '.join(exposures)}: the prefetch {' and '.join(left)} was not sent, so {' or '.join(what)} is not "
            f"read"]


def _collection(prefetch: dict[str, Any], templates: dict[str, str]) -> dict[str, Any]:
    """One collection Bundle from the prefetch values (resources, searchset Bundles; null is no data)."""
    entries = []
    for key in templates:
        value = prefetch.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ServiceError(422, "invalid_fhir", f"prefetch {key}: a FHIR resource or Bundle is expected")
        entries.append({"resource": value})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


#: The most characters of a path a log line quotes (before escaping).
LOGGED_PATH_CHARS = 200


def _path(path: str) -> str:
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


def _version() -> str:
    import palsy

    return palsy.__version__


def settings_json(config: C.Config) -> str:
    """The configuration as the workers read it (``$PALSY_SERVE_SETTINGS``)."""
    return json.dumps(json.loads(config.to_env()))
