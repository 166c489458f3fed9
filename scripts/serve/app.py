"""The HTTP service: CDS Hooks 2.0 discovery, the ``patient-view`` service, feedback, the served reports.

Routes (every ``/cds-services`` call needs the CDS Hooks JWT, :mod:`.auth`):

- ``GET /cds-services``: discovery, with the prefetch templates the service reads (:mod:`.prefetch`);
- ``POST /cds-services/{id}``: a ``patient-view`` call answered from its prefetch only (the record is never
  called); 412 with the missing prefetch keys when the client did not send them (or answered a required one
  with an OperationOutcome); ``{"cards": []}`` when the record holds no current facial palsy in a patient with
  leukaemia, or when the user is the patient or a proxy (``context.userId`` Patient/ or RelatedPerson/: the card
  is a clinician's); each answer given is appended to the feedback log (the card's id, the salted patient hash,
  the findings as mapped and P(cause), never the record's id), so that ``palsy registry from-feedback`` can pair
  it with the card's outcome and a later adjudication (docs/registry.md);
- ``POST /cds-services/{id}/feedback``: accepted/overridden outcomes appended to the feedback log, for cards
  this service issued, within their feedback window, each outcome answered on its own (:mod:`.feedback`);
- ``GET /reports/{id}``: the clinician report (HTML) a card links to, until it expires (the id is the key); an
  expired one is a page saying so to a browser, JSON to a JSON client (:mod:`.pages`);
- ``GET /openapi.json`` (the OpenAPI description) and ``GET /healthz`` (503 while the state folder cannot be
  written, :mod:`.state`).

Every error is a JSON body ``{"error": code, "message": words}``, never a traceback (the layers: :mod:`.layers`);
a state folder that cannot be written is a 503 naming it. Logs carry no patient data: a salted hash of the
patient id, the route, the status and the time taken; an internal error is logged by its type and where it was
raised, never by its words. SIGHUP with one worker re-reads the worker's start (:mod:`.reload`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from palsy.model import fhir as X
from palsy.model import findings as F
from palsy.model import registry_feedback as RF
from palsy.reports import cards
from palsy.scripts.serve import config as C
from palsy.scripts.serve import feedback as FB
from palsy.scripts.serve import pages
from palsy.scripts.serve import prefetch as P
from palsy.scripts.serve import record_text as RT
from palsy.scripts.serve import state as ST
from palsy.scripts.serve.auth import AuthError, KeySetUnavailable, Verifier
from palsy.scripts.serve.bodies import FeedbackRequest, HookRequest
from palsy.scripts.serve.engine import Engine, give_back_memory
from palsy.scripts.serve.layers import (
    RETRY_AFTER_SECONDS,
    Admission,
    BodyLimit,
    Cors,
    Gate,
    InternalErrors,
    LargeBodies,
    ServiceError,
    StrictJsonRoute,
    error_response,
    internal_error,
    logged_path,
)
from palsy.scripts.serve.protocol import CORS_STATE
from palsy.scripts.serve.reload import RELOAD_FAILED, EarlyHangups, on_sighup
from palsy.scripts.serve.store import REPORTS_DIR, FeedbackLog, Reports

__all__ = ["RETRY_AFTER_SECONDS", "Admission", "BodyLimit", "Cors", "Gate", "InternalErrors", "LargeBodies",
           "ServiceError", "StartFailures", "create_app", "internal_error"]

log = logging.getLogger("palsy.serve")
HOOK = "patient-view"
#: Prefetch keys a client may leave out (:data:`.prefetch.OPTIONAL`).
OPTIONAL_PREFETCH = P.OPTIONAL
#: The prefetch templates of a FHIR table (:func:`.prefetch.templates`).
_prefetch = P.templates
#: The user of a patient-view call, a FHIR reference (CDS Hooks 2.0: Practitioner, PractitionerRole, Patient or
#: RelatedPerson); the card is a clinician's.
USER = re.compile(r"(?:^|/)(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$")
CLINICIANS = ("Practitioner", "PractitionerRole")
#: A reference's version (``/_history/<v>``), dropped before its type is read.
HISTORY = re.compile(r"/_history/[^/]*$")
#: The type a reference names, however malformed its id.
USER_TYPE = re.compile(r"(?:^|/)([A-Za-z][A-Za-z0-9]*)/[^/]*$")


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


# --- a worker's start: what failed, in one line ------------------------------------------------------------------

def import_report_modules() -> None:
    """Import what ``GET /reports/{id}`` renders with (its route imports them when first asked)."""
    from palsy.reports import context, render  # noqa: F401


def record_reload_failure(exc: BaseException) -> str:
    """:func:`record_start_failure` of a re-reading after SIGHUP, said as one (:data:`RELOAD_FAILED`)."""
    return record_start_failure(exc, RELOAD_FAILED)


def record_reload_success() -> None:
    """Withdraw this worker's failed re-readings from where ``palsy serve`` reads them: a later one succeeded, and
    the stop said "a worker had failed to restart" although the fault had been mended (second review #14)."""
    path = os.environ.get(C.START_FAILURES_ENV)
    if not path:
        return
    mine = f"worker {os.getpid()}: {RELOAD_FAILED}"
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        kept = [x for x in lines if mine not in x]
        if len(kept) != len(lines):
            with open(path, "w", encoding="utf-8") as f:  # one worker: no other writer
                f.write("".join(x + "\n" for x in kept))
    except OSError:
        pass


def record_start_failure(exc: BaseException, what: str = "") -> str:
    """The line saying why this worker could not start (its pid, the exception's type and words: a start-up
    reads files, never a record), logged and written where ``palsy serve`` reads it
    (:data:`palsy.scripts.serve.config.START_FAILURES_ENV`: the exit status it means, a tab, the line), so that the command exits
    with that status, not 0, when the workers' supervisor stops."""
    from palsy.scripts.palsy import input_errors

    words = " ".join(str(exc).split())
    words = words if len(words) <= 400 else words[:400] + "..."
    line = f"worker {os.getpid()}: {what}{type(exc).__name__}" + (f": {words}" if words else "")
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


def load_worker(config: C.Config, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a worker reads at its start, and again on SIGHUP with one worker (``before``: what it read until
    then; a key set file made bad keeps its keys): the model, the evidence and its FHIR table, the issuers' key
    sets, the prefetch templates."""
    engine = Engine.load(config)
    verifier = Verifier(config, (before or {}).get("verifier"))
    return {"engine": engine, "verifier": verifier, "prefetch": P.templates(engine.fhir_table)}


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
    health = ST.Probe(config.state_dir, os.path.join(config.state_dir, REPORTS_DIR))

    # one worker of palsy serve (not a test's app): a SIGHUP during the start (the model's load, or its fit) is
    # kept for when the worker is ready
    early = EarlyHangups() if config.workers == 1 and os.environ.get(C.START_FAILURES_ENV) else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        t = time.perf_counter()
        try:
            state.update(load_worker(config))
            state["reports"] = Reports(config.state_dir, config.report_ttl_seconds,
                                       config.feedback_window_days * 86400)
            state["feedback"] = FeedbackLog(config.state_dir)
            state["cards"] = anyio.CapacityLimiter(CARD_THREADS)
            state["memoised"] = anyio.CapacityLimiter(CARD_THREADS)
            # what a report needs, imported now: imported on the first report, files replaced under a running
            # service (an upgrade in place) made every report a 500 while cards went on (s16 review U15)
            import_report_modules()
        except Exception as exc:  # noqa: BLE001 - one line, and palsy serve's status (StartFailures)
            start_failure["line"] = record_start_failure(exc)
            raise
        record_started()
        # one worker: SIGHUP re-reads its start, as several workers' supervisor restarts them (it had stopped it)
        restore = on_sighup(lambda: state.update(load_worker(config, state)), record_reload_failure,
                            record_reload_success, early) if early is not None else (lambda: None)
        if config.insecure_dev:
            log.warning("palsy serve: --insecure-dev: unsigned requests are accepted (bound to %s only)", config.host)
        log.info("palsy serve: model loaded in %.1f s (worker ready in %.1f s)", state["engine"].load_seconds,
                 time.perf_counter() - t)
        try:
            # to the server (uvicorn's app_state): the HTTP protocol's 431, 408 and 400 carry the CORS headers too
            yield {CORS_STATE: Cors(None, **cors).headers_for} if config.cors_origins else None
        finally:
            restore()
            if early is not None:
                early.restore()

    app = FastAPI(title="palsy CDS Hooks service", version=_version(), lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Facial palsy in acute leukaemia: P(leukaemic infiltration) against its mimics, as a "
                              "CDS Hooks 2.0 patient-view card. Decision support, not an order; it never writes to "
                              "the record.")
    app.router.route_class = StrictJsonRoute  # request bodies read strictly (safe_json), each refusal a JSON 400
    app.router.redirect_slashes = False  # a trailing slash is a 404 (the gate's), not a redirect built from Host
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    # inside the gate (a token first); a body over the limit by its Content-Length takes no turn, the body limit's 413
    # at once (it waited for a turn behind a large record, up to 10 s, and was told to retry: a 503 it never passes)
    app.add_middleware(LargeBodies, after=give_back_memory, body_limit=config.max_body_bytes)

    def id_hash(pid: str) -> str:
        return hashlib.sha256((config.log_salt + "\x00" + pid).encode("utf-8")).hexdigest()[:16]

    def unavailable(exc: ST.StateUnavailable, method: str, path: str) -> ServiceError:
        """A state fault met by a request: logged (the folder and the error, never a file's name), the health
        check told, and the 503 to answer."""
        log.error("%s %s: state folder %s cannot be written (%s: %s); answered 503", method, logged_path(path), exc.folder,
                  exc.what, exc.why)
        health.failed(exc)
        return ServiceError(503, "state_unavailable", exc.message, {"Retry-After": str(ST.RETRY_AFTER_SECONDS)})

    def authorize(path: str, header: str | None) -> dict[str, str | None] | None:
        """Verify the CDS Hooks JWT of a call to ``path`` (its audience: the URL of that endpoint); its issuer and
        tenant (None for an unsigned call with ``--insecure-dev``)."""
        if config.insecure_dev and header is None:
            return None
        audiences = [config.service_url + path]
        if path.endswith("/feedback"):  # the service's own URL is accepted as the audience of its feedback
            audiences.append(config.service_url + path[: -len("/feedback")])
        try:
            claims = state["verifier"].verify(header, audiences)
        except KeySetUnavailable as exc:  # the issuer's fault, not the token's: a 503 the client may retry
            raise ServiceError(503, "keys_unavailable", str(exc), {"Retry-After": str(exc.retry_after)}) from None
        except AuthError as exc:
            raise ServiceError(401, "unauthorized", str(exc)) from None
        except ST.StateUnavailable as exc:
            raise unavailable(exc, "verify", path) from None
        return {"issuer": str(claims["iss"]), "tenant": FB.tenant_of(claims)}

    app.add_middleware(Gate, authorize=authorize)  # outside BodyLimit: a call is authorized first
    app.add_middleware(Admission, limit=config.max_concurrent_requests)  # before the token
    app.add_middleware(InternalErrors)  # inside Cors: a 500 carries the CORS headers as every other error does
    if config.cors_origins:  # outermost: a preflight carries no token, and a refusal gets the CORS headers
        app.add_middleware(Cors, **cors)
    app.add_middleware(StartFailures, failure=start_failure)  # lifespan only

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.all_headers, **exc.extra)

    @app.exception_handler(ST.StateUnavailable)
    async def _state(request: Request, exc: ST.StateUnavailable) -> JSONResponse:
        return await _service_error(request, unavailable(exc, request.method, request.url.path))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "bad_json", "the request body is not valid JSON")
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in errors[:20]]
        return error_response(400, "bad_request", "the request does not follow CDS Hooks 2.0", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or {404: "not_found", 405: "method_not_allowed",
                                                 413: "too_large"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)  # what the CORS layer itself might raise (InternalErrors answers the rest)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return internal_error(request.method, request.url.path, exc)

    @app.get("/healthz", summary="Liveness, the state folder and the model this worker serves")
    def healthz() -> Any:
        engine = state.get("engine")
        model = engine.model_info() if engine else None
        verifier = state.get("verifier")
        # one issuer's key URL failing is that issuer's fault, not the worker's: said, still 200
        key_sets = verifier.key_set_status() if verifier is not None else {}
        fault = health.fault()
        if fault is not None:  # a load balancer sends no calls to a worker that cannot record them
            return JSONResponse({"status": "state_unavailable", "error": "state_unavailable", "message": fault.public,
                                 "model": model, "key_sets": key_sets}, status_code=503,
                                headers={"Retry-After": str(ST.RETRY_AFTER_SECONDS)})
        return {"status": "ok", "model": model, "key_sets": key_sets}

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
            "usageRequirements": P.usage_requirements(),
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
            return Engine.bundle_key(P.collection(body.prefetch, state["prefetch"]))
        except (TypeError, ValueError, RecursionError):
            return None

    def user_kind(context: dict[str, Any]) -> str:
        """The type of the call's user (``context.userId``, REQUIRED for patient-view; a version, ``/_history/<v>``,
        is not part of whom it names)."""
        user = context.get("userId")
        if not isinstance(user, str) or not user:
            raise ServiceError(400, "bad_request", "context.userId is required: the user viewing the record, "
                               "Practitioner/<id> or PractitionerRole/<id> (Patient/<id> or RelatedPerson/<id> get no "
                               "card)")
        m = USER.search(HISTORY.sub("", user))
        if m is None:  # said as what it is: it was "context.userId is required" (second review #11)
            given = USER_TYPE.search(user)
            named = f"its type {given.group(1)[:40]!r} is not one of them" if given else "it is not Type/<id>"
            raise ServiceError(400, "bad_request", "context.userId is not a Practitioner, PractitionerRole, Patient or "
                               f"RelatedPerson reference (Type/<id>, the id of letters, digits, '-' and '.'): {named}")
        return m.group(1)

    def patient_view(service_id: str, body: HookRequest, key: str | None = None) -> dict[str, Any]:
        if service_id != C.SERVICE_ID:
            raise ServiceError(404, "not_found", f"no CDS service {service_id[:80]!r}; see GET /cds-services")
        if body.hook != HOOK:
            raise ServiceError(400, "bad_request", f"hook {body.hook[:40]!r} is not served; this service is {HOOK}")
        pid = body.context.get("patientId")
        if not isinstance(pid, str) or not pid:
            raise ServiceError(400, "bad_request", "context.patientId is required (a string)")
        user = user_kind(body.context)
        if user not in CLINICIANS:  # the patient or a proxy in a portal: the card is written for a haematologist
            log.info("patient %s: viewed by a %s: no clinician card", id_hash(pid), user)
            return {"cards": []}
        templates = state["prefetch"]
        given = body.prefetch or {}
        missing = [k for k in templates if k not in given and k not in OPTIONAL_PREFETCH]
        if missing:
            raise ServiceError(412, "prefetch_missing", "this service answers from the prefetch only and never calls "
                               "the record; send these prefetch keys", missing=missing,
                               prefetch={k: templates[k] for k in missing})
        failed = [k for k in templates if k not in OPTIONAL_PREFETCH and P.is_outcome(given.get(k))]
        if failed:
            raise ServiceError(412, "prefetch_failed", "the record answered these required prefetch keys with an "
                               "OperationOutcome instead of their data; this service needs them", missing=failed)
        try:
            bundle = P.collection(given, templates)
        except ValueError as exc:
            raise ServiceError(422, "invalid_fhir", str(exc)) from None
        engine = state["engine"]
        try:
            mapping = engine.mapped(bundle, key)
        except F.InputError as exc:
            raise ServiceError(422, "invalid_fhir", "the prefetch is not a valid FHIR R4 record of one patient",
                               problems=exc.problems[:20]) from None
        # the record's own id, or one a merge replaced (replaces/replaced-by on this server): a seealso or refer
        # link may join another person's record (second review #3: it let a wrong patient's prefetch through)
        if pid not in (mapping.merged_ids or (mapping.record_id,)):
            raise ServiceError(422, "invalid_fhir", "the prefetched Patient is not context.patientId (nor a record it "
                               "replaces or is replaced by: a seealso or refer link does not make it this patient)")
        who = id_hash(pid)
        if config.require_palsy and not (mapping.has_palsy and mapping.has_leukaemia):
            log.info("patient %s: no current facial palsy with a coded leukaemia: no card", who)
            return {"cards": []}
        schema = engine.draws.schema
        try:
            patient = F.parse_patient(mapping.patient, "prefetch", schema=schema)
        except F.InputError as exc:
            raise ServiceError(422, "invalid_fhir", "the record's findings are not valid", problems=exc.problems[:20]) from None
        d = engine.card(patient)
        card_id = str(uuid.uuid4())
        notes = record_notes(given, templates, mapping, engine)
        not_found = X.finding_lines(mapping.not_found, schema) if mapping.not_found else None
        # the card's record: its report, and what tells any worker that the card is this service's (feedback)
        # which model answered, and what the card said: its report, rendered later, says so if another answers it
        answered = {"model_id": engine.model_id, "summary": cards.summary(d, schema)}
        with ST.writing(config.state_dir, "the reports"):
            rid = state["reports"].put({"patient": mapping.patient, "not_found": not_found, "notes": notes,
                                        "answered": answered}, card=card_id)
        card = cards.card(d, uuid=card_id, source_label=config.source_label, source_url=config.source_url,
                          report_url=f"{config.service_url}/reports/{rid}", notes=notes, not_found_text=not_found,
                          schema=schema)
        # what the tool said, beside the card's later outcome: the feedback loop's record (docs/registry.md)
        with ST.writing(config.state_dir, "the feedback log"):
            state["feedback"].append([RF.answer_entry(card_id, who, patient, d, service_id)])
        log.info("patient %s: card %s %s", who, card_id, card["indicator"])
        return {"cards": [card]}

    def record_notes(given: dict[str, Any], templates: dict[str, str], mapping: Any, engine: Engine) -> list[str]:
        """What the card says of the record: the mapping's notes, what the record's searches said, and the
        optional keys not sent or not answered where an exposure they could hold is not found; in the schema's
        words."""
        schema = engine.draws.schema
        unsent = [k for k in OPTIONAL_PREFETCH if k not in given]
        unanswered = [k for k in OPTIONAL_PREFETCH if P.is_outcome(given.get(k))]
        said = P.unanswered_note(unanswered, given) if unanswered else ""
        return [*(RT.labelled(n, schema) for n in mapping.notes), *P.search_outcome_notes(given, templates),
                *RT.not_prefetched(unsent, unanswered, said, mapping.not_found, engine.fhir_table, schema)]

    @app.post("/cds-services/{service_id}/feedback", summary="Accepted or overridden cards, to an append-only log")
    def feedback(service_id: str, body: FeedbackRequest, request: Request) -> dict[str, Any]:
        if service_id != C.SERVICE_ID:
            raise ServiceError(404, "not_found", f"no CDS service {service_id[:80]!r}")
        kept, refused, malformed = FB.sort_out(body.feedback, state["reports"].issued_at, config.feedback_window_days,
                                               config.clock_skew_seconds)
        if not kept and malformed == len(refused):
            raise ServiceError(400, "bad_request", "the request does not follow CDS Hooks 2.0: no outcome of it can "
                               "be read; nothing was recorded", problems=refused[:20])
        if not kept:
            raise ServiceError(400, "unknown_card", "feedback[]: no outcome of this request can be recorded: each "
                               "outcome's card must be the uuid of a card this service answered, within "
                               f"{config.feedback_window_days} days of it, with no acceptedSuggestions (palsy's cards "
                               "offer none), at a time between the card and now; nothing was recorded",
                               problems=refused[:20])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        issuer, tenant = getattr(request.state, "issuer", None), getattr(request.state, "tenant", None)
        with ST.writing(config.state_dir, "the feedback log"):
            state["feedback"].append([FB.outcome_entry(f, now, service_id, issuer, tenant) for f in kept])
        return {"recorded": len(kept), **({"unknown": refused[:20]} if refused else {})}

    @app.get("/reports/{report_id}", response_class=HTMLResponse, summary="The clinician report a card links to")
    def report(report_id: str, request: Request) -> Response:
        reports = state["reports"]
        rec = reports.get(report_id)
        if rec is None:
            if pages.wants_html(request.headers.get("accept")):  # a clinician's browser, from a card kept on screen
                return HTMLResponse(pages.expired_page(config.report_ttl_seconds), status_code=404,
                                    headers=pages.PAGE_HEADERS)
            raise ServiceError(404, "not_found", "no such report, or it has expired")
        html = reports.html(report_id)
        if html is None:
            from palsy.reports import context, render

            engine = state["engine"]
            patient = F.parse_patient(rec["patient"], "report", schema=engine.draws.schema)
            ans = engine.answer(patient)
            # what the card said of the record (a positive CSF result not used, what to examine) is the report's too
            said = rec.get("not_found") or None  # a list in a record stored before s17
            record = {"notes": rec.get("notes") or [],
                      "not_found": X.finding_lines(said, engine.draws.schema) if isinstance(said, list) else said}
            with render_lock:  # matplotlib is not thread-safe
                html = render.html(context.build(ans, engine.evidence, record=record)).encode("utf-8")
            html = pages.without_record_id(html, str(rec["patient"].get("id") or ""))
            answered = rec.get("answered") if isinstance(rec.get("answered"), dict) else {}
            if answered.get("model_id") not in (None, engine.model_id):
                html = pages.with_notice(html, pages.model_changed(str(answered.get("summary") or "") or None))
            try:
                with ST.writing(config.state_dir, "the reports"):
                    reports.put_html(report_id, html)
            except ST.StateUnavailable as exc:  # the page is rendered: served, and rendered again next time
                unavailable(exc, "GET", "/reports/<id>")
        return HTMLResponse(html, headers=pages.PAGE_HEADERS)

    return app


def _version() -> str:
    import palsy

    return palsy.__version__


def settings_json(config: C.Config) -> str:
    """The configuration as the workers read it (``$PALSY_SERVE_SETTINGS``)."""
    return json.dumps(json.loads(config.to_env()))
