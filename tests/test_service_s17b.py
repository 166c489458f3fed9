"""The second review of the s17 service fixes (/work/lit/notes/s17/review_svc.md), each finding tested as a record
system or an operator meets it: the real server in a subprocess on a free port, called over HTTP with signed CDS
Hooks JWTs (the helpers of tests/test_service.py and tests/test_service_s17.py), and where a bound is patched shorter
or a key URL made to fail, the service's own parts in this process."""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import shutil
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from stalled_body import stalled_body
from test_service import ISS, _bundle, _free_port, _jwk, _protocol_serving, _serving, hook_body, keys
from test_service_s17 import (
    CARD,
    detail,
    issued,
    outcome,
    post,
    s17,
    send_feedback,
    url_keys,
    without_vincristine_statement,
)

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service")]

__all__ = ["keys", "s17", "url_keys"]  # the fixtures of tests/test_service.py and tests/test_service_s17.py, used here


class FlakyKeySet:
    """An issuer's JWK Set URL on localhost whose ``mode`` is ``ok``, ``down`` (a 500), ``hang`` (never answers)
    or ``trickle`` (a byte every 0.3 s); it counts the fetches it is asked for."""

    def __init__(self, body: dict) -> None:
        self.body, self.mode, self.fetches = json.dumps(body).encode(), "ok", 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.fetches += 1
                if outer.mode == "hang":
                    time.sleep(30)
                    return
                if outer.mode == "down":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                if outer.mode == "trickle":
                    for b in outer.body:
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                        time.sleep(0.3)
                else:
                    self.wfile.write(outer.body)

            def log_message(self, *_):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def url_token(private, kid: str, iss: str = "https://url-ehr.test.example") -> str:
    now = int(time.time())
    return jwt.encode({"iss": iss, "aud": "http://127.0.0.1:1/cds-services", "exp": now + 60, "iat": now,
                       "jti": uuid.uuid4().hex}, private, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


@pytest.fixture
def url_verifier(tmp_path, url_keys):
    """A verifier of one URL issuer (``b1`` published) and its key URL."""
    from palsy.scripts.serve import auth as AU
    from palsy.scripts.serve import config as CF

    keyset = FlakyKeySet({"keys": [_jwk(url_keys["b1"], "b1", "ES384")]})
    cfg = CF.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path),
                    issuers=(CF.Issuer(iss="https://url-ehr.test.example", jwks_url=keyset.url),))
    try:
        yield AU.Verifier(cfg), keyset
    finally:
        keyset.close()


@pytest.fixture
def palsy_log(caplog):
    """The service's log lines (its logger does not propagate once a worker's app has set it up)."""
    import logging

    logger = logging.getLogger("palsy.serve")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="palsy.serve")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def verify(v, tok: str):
    return v.verify(f"Bearer {tok}", ["http://127.0.0.1:1/cds-services"])


# --- #1: a slow or failing key URL ------------------------------------------------------------------------------------

def test_a_failing_key_url_keeps_the_last_good_set_and_forged_tokens_fetch_nothing_more(url_verifier, url_keys,
                                                                                         palsy_log):
    """#1: once the cached set had expired, every call of the issuer fetched its URL in its own time (20 good
    tokens, 20 fetches, 20 x 503; 50 forged tokens, 50 fetches), and a failed refresh threw a set that worked away.
    Now one fetch at a time, at most once per REFETCH_SECONDS whatever the tokens; the last good set is used
    through a failed refresh (said in the log, and by the health check's counts)."""
    from palsy.scripts.serve import auth as AU

    v, keyset = url_verifier
    ks = v.key_sets["https://url-ehr.test.example"]
    assert verify(v, url_token(url_keys["b1"], "b1"))["iss"] and keyset.fetches == 1
    assert v.key_set_status() == {"ok": 1}
    keyset.mode, ks.lifespan = "down", 0.01  # the set expires and its URL fails
    ks._tried = -math.inf  # and the least time between two fetches has passed
    time.sleep(0.05)
    t = time.monotonic()
    for _ in range(20):
        assert verify(v, url_token(url_keys["b1"], "b1"))["iss"]  # the last good set
    forged = ec.generate_private_key(ec.SECP384R1())
    for _ in range(50):
        with pytest.raises(AU.AuthError, match="signature"):
            verify(v, url_token(forged, "b1"))
    assert keyset.fetches == 2 and time.monotonic() - t < 5, keyset.fetches
    assert v.key_set_status() == {"stale": 1}
    assert "could not be fetched (HTTP 500); the set fetched" in palsy_log.text


def test_a_hanging_or_trickling_key_url_holds_no_call_beyond_the_fetch_deadline(url_verifier, url_keys, monkeypatch):
    """#1: a URL that accepts and never answers, or trickles its set a byte at a time, held each call for as long as
    it did (PyJWT's timeout is per read): 22 minutes of 503s for every issuer. A fetch now has a deadline in all,
    and the calls that did not start it wait at most a second."""
    from palsy.scripts.serve import auth as AU
    from palsy.scripts.serve import keyfetch as KF

    monkeypatch.setattr(KF, "FETCH_SECONDS", 1.0)
    v, keyset = url_verifier
    keyset.mode = "trickle"
    t = time.monotonic()
    with pytest.raises(KF.FetchFailed, match="took more than 1 s"):
        KF.fetch_bytes(keyset.url, deadline=1.0)
    assert time.monotonic() - t < 2.5
    keyset.mode, before = "hang", keyset.fetches
    times: list[float] = []

    def one() -> None:
        s = time.monotonic()
        with pytest.raises(AU.KeySetUnavailable):
            verify(v, url_token(url_keys["b1"], "b1"))
        times.append(time.monotonic() - s)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=20)
    assert len(times) == 8 and max(times) < 3 and keyset.fetches == before + 1, (times, keyset.fetches)


# --- #9: a kid no issuer publishes ------------------------------------------------------------------------------------

def test_a_kid_the_last_fetch_found_absent_is_a_401_and_one_not_looked_for_a_503(url_verifier, url_keys):
    """#9: made-up kids got mostly "503, retry", so a misconfigured record system was told to retry for ever. A kid
    the last fetch found absent is a 401 until a refetch is permitted; one not looked for yet is still a 503."""
    from palsy.scripts.serve import auth as AU

    v, keyset = url_verifier
    assert verify(v, url_token(url_keys["b1"], "b1"))["iss"]
    wrong = url_token(url_keys["b2"], "b2-misconfigured")
    with pytest.raises(AU.AuthError, match="kid is not a key"):
        verify(v, wrong)  # fetched again for it: absent
    for _ in range(3):
        with pytest.raises(AU.AuthError, match="kid is not a key"):
            verify(v, url_token(url_keys["b2"], "b2-misconfigured"))
    with pytest.raises(AU.KeySetUnavailable, match="retry in"):
        verify(v, url_token(url_keys["b2"], "never-looked-for"))
    assert keyset.fetches == 2


# --- #2: a card's report after SIGHUP ---------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
def test_a_report_opened_after_the_model_changed_says_so_with_the_cards_own_words(tmp_path, keys, posterior_subtype):
    """#2: after SIGHUP a card's report was rendered by the new model, and the card and its report disagreed with
    nothing to say why. The card's record keeps the model that answered it (``model_id``: the draws' entry and
    evidence hash, and the decision and action files) and the card's summary: a report opened under another model
    says so at its top, quoting the card; one opened before, or of a card of the new model, does not."""
    priors = tmp_path / "hospital-priors"
    shutil.copytree(REPO / "priors", priors)
    port = _free_port()
    (tmp_path / "ehr.jwks.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    settings = {"service_url": f"http://127.0.0.1:{port}", "port": port, "workers": 1, "state_dir": "state",
                "priors": "hospital-priors", "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}]}
    with _serving(tmp_path, settings) as (base, proc, log_path):
        srv = {"base": base}
        before = httpx.get(base + "/healthz").json()["model"]["model_id"]

        def card(name: str) -> dict:
            r = post(srv, keys, hook_body(_bundle(name)))
            assert r.status_code == 200, r.text
            return r.json()["cards"][0]

        opened, unopened = card("source-001"), card("source-002")
        first = httpx.get(opened["links"][0]["url"], timeout=120).text
        assert "The model has changed" not in first
        text = (priors / "decision.yaml").read_text()
        (priors / "decision.yaml").write_text(text.replace("harm_treat_without_infiltration:\n  value: 4",
                                                           "harm_treat_without_infiltration:\n  value: 2"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 120
        while "SIGHUP: the worker re-read" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        assert httpx.get(base + "/healthz").json()["model"]["model_id"] != before
        page = httpx.get(unopened["links"][0]["url"], timeout=120).text
        head = page.split("<body", 1)[1][:2000]
        assert "The model has changed since this card was issued" in head, head
        from markupsafe import escape

        assert str(escape(unopened["summary"])).replace("&#39;", "'") in head.replace("&#x27;", "'"), head
        assert httpx.get(opened["links"][0]["url"], timeout=60).text == first  # rendered before: the card's model
        new = card("source-002")
        assert "The model has changed" not in httpx.get(new["links"][0]["url"], timeout=120).text


# --- #3: the wrong-patient guard ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,reference", [("seealso", "Patient/patient-A"), ("refer", "Patient/patient-A"),
                                            ("replaces", "https://other-org.example/fhir/Patient/patient-A")])
def test_a_seealso_or_refer_link_or_another_servers_id_does_not_make_the_hooks_patient(s17, keys, kind, reference):
    """#3: a hook naming patient-A with source-002's record was answered ("Escalate today") when the record's
    Patient linked patient-A by seealso or refer, or on another server. Only a merge on this server (replaces or
    replaced-by) makes another id this record's: these stay the wrong-patient 422."""
    b = _bundle("source-002")
    (patient,) = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"]
    patient["link"] = [{"other": {"reference": reference}, "type": kind}]
    r = post(s17, keys, hook_body(b, pid="patient-A"))
    assert r.status_code == 422 and "not context.patientId" in r.json()["message"], r.text[:300]


# --- #4, #12: OperationOutcomes ---------------------------------------------------------------------------------------

def test_an_operation_outcome_whose_issue_is_not_a_list_is_said_never_a_500(s17, keys):
    """#4: ``issue`` 5 or true (under an optional key, or in a search's entries) was a 500. It is an outcome that
    gave no issue; #12: an information-only one is said as such, and a required key's is a 412 that says what came."""
    body = hook_body(without_vincristine_statement())
    body["prefetch"]["administrations_by_ingredient"] = {"resourceType": "OperationOutcome", "issue": 5}
    body["prefetch"]["procedures"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "OperationOutcome", "issue": True}, "search": {"mode": "outcome"}}]}
    body["prefetch"]["orders_by_ingredient"] = outcome("information", "informational", "nothing to report")
    text = detail(post(s17, keys, body))
    assert "administrations_by_ingredient (no issue given)" in text, text
    assert "orders_by_ingredient (information only: informational: nothing to report)" in text, text
    required = hook_body(_bundle("source-002"))
    required["prefetch"]["conditions"] = outcome("information", "informational", "nothing to report")
    r = post(s17, keys, required)
    assert r.status_code == 412 and "OperationOutcome instead of their data" in r.json()["message"]


# --- #5: SIGHUP during a one-worker start ----------------------------------------------------------------------------

SLOW_START = '''
import os, time
FLAG = os.environ.get("PALSY_TEST_SLOW_START")
if FLAG:
    from palsy.scripts.serve import engine
    load = engine.Engine.load.__func__

    def slow(cls, config):
        open(FLAG, "w").close()
        time.sleep(3)
        return load(cls, config)

    engine.Engine.load = classmethod(slow)
'''


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
def test_sighup_while_one_worker_starts_is_a_reload_once_it_is_ready(tmp_path, keys, posterior_subtype, monkeypatch):
    """#5: SIGHUP while the model loaded (or was fitted) stopped a one-worker service with status 0, which
    ``Restart=on-failure`` leaves down. It is now kept and the worker re-reads its start once it is ready."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_START)
    flag = tmp_path / "loading"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("PALSY_TEST_SLOW_START", str(flag))
    port = _free_port()
    (tmp_path / "ehr.jwks.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    settings = {"service_url": f"http://127.0.0.1:{port}", "port": port, "workers": 1, "state_dir": "state",
                "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}]}
    (tmp_path / "palsy.yaml").write_text(json.dumps(settings))
    import subprocess
    import sys

    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "palsy.scripts.palsy", "serve", "--config",
                                 str(tmp_path / "palsy.yaml")], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not flag.exists():
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGHUP)
            while "SIGHUP: the worker re-read" not in (tmp_path / "server.log").read_text():
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.2)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=60)
    text = (tmp_path / "server.log").read_text()
    assert status == 0 and "SIGHUP during the start" in text and "failed" not in text, text[-2000:]


# --- #6: a trickled body ----------------------------------------------------------------------------------------------

def test_a_body_trickled_without_stopping_is_a_408_at_its_total_deadline(tmp_path, posterior_subtype, monkeypatch):
    """#6: a body sent a byte every 29 s held its admission place without end (the 408 caught only a body that
    stopped). The whole body now has a deadline too (here 2 s, a byte every 0.4 s)."""
    def trickle(sock, body: bytes) -> None:
        t = time.monotonic()
        for i in range(100, 130):
            try:
                sock.sendall(body[i:i + 1])
            except OSError:
                return
            time.sleep(0.4)
            if time.monotonic() - t > 4:
                return

    got, _ = stalled_body(tmp_path, monkeypatch, {"BODY_SECONDS": 1.0, "BODY_TOTAL_SECONDS": 2.0}, then=trickle,
                          read_seconds=10)
    assert got.startswith(b"HTTP/1.1 408 ") and b"took more than 2 s" in got, got[:300]


# --- #7: large bodies -------------------------------------------------------------------------------------------------

def test_large_bodies_are_answered_one_at_a_time_and_the_rest_wait_or_get_a_503():
    """#7: 31 records of 4 MB at once took a worker from 459 MB to 1,048 MB (777 MB kept). A worker now reads and
    answers one large body at a time: the next waits its turn (its body unread), and one that waits longer than
    its bound gets a JSON 503 with Retry-After; the memory is given back after each (``after``); small bodies never
    wait."""
    from palsy.scripts.serve.layers import LargeBodies

    inside, most, trims = 0, 0, []

    async def app(scope, receive, send):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await anyio.sleep(0.3)
        inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    layer = LargeBodies(app, threshold=1000, limit=1, wait_seconds=0.5, after=lambda: trims.append(1))
    statuses: list[int] = []

    async def call(size: int) -> None:
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
                if message["status"] == 503:
                    assert dict(message["headers"])[b"retry-after"] == b"1"

        scope = {"type": "http", "method": "POST", "path": CARD, "headers": [(b"content-length", str(size).encode())]}
        await layer(scope, receive, send)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(call, 4_000_000)
            for _ in range(2):
                tg.start_soon(call, 500)

    # in a thread of its own: a test before it in this worker may leave an event loop running in this thread
    # (Playwright's sync API does), where anyio.run refuses to start (it failed so once on a clean clone)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, main).result(timeout=60)
    assert sorted(statuses) == [200, 200, 200, 200, 503] and trims == [1, 1], (statuses, trims)
    assert most == 3  # the two small ones beside one large one, never two large ones


# --- #8, #15: feedback ------------------------------------------------------------------------------------------------

def test_one_malformed_outcome_in_a_batch_leaves_the_valid_ones_recorded(s17, keys):
    """#8: one outcome that failed validation (a reason without its system, a time without seconds, outcome
    dismissed) made the whole request a 400 and the valid outcome was lost. Each is read on its own: the valid one
    recorded, the other listed by its place; a request none of whose outcomes can be read is still a 400."""
    card = issued(s17, keys)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    good = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now}
    log = s17["folder"] / "state" / "feedback.jsonl"
    for bad in ({**good, "overrideReason": {"reason": {"code": "x1"}}}, {**good, "outcomeTimestamp": now[:16] + "Z"},
                {**good, "outcome": "dismissed"}):
        lines = len(log.read_text().splitlines())
        r = send_feedback(s17, keys, good, bad)
        assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
        assert r.json()["unknown"][0].startswith("feedback.1"), r.json()
        assert len(log.read_text().splitlines()) == lines + 1
    r = send_feedback(s17, keys, {**good, "outcome": "dismissed"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request" and "feedback.0" in r.json()["problems"][0]


def test_an_outcome_before_its_card_or_in_the_future_is_refused_saying_so(s17, keys):
    """#15: an outcomeTimestamp of 1970 or 2099 was recorded. An outcome before its card was issued, or later than
    now (beyond the clock skew), is refused with a clear 400."""
    card = issued(s17, keys)
    for stamp, words in (("1970-01-01T00:00:00Z", "is before the card was issued"),
                         ("2099-12-31T23:59:59Z", "is in the future")):
        r = send_feedback(s17, keys, {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp})
        assert r.status_code == 400 and words in r.json()["problems"][0], r.text


# --- #10: healthz -----------------------------------------------------------------------------------------------------

def test_healthz_names_no_state_folder_to_a_caller_and_the_log_does(tmp_path, monkeypatch, palsy_log):
    """#10: with the state folder full, ``/healthz`` (no token, any Origin) told the folder's path and the error. It
    says the error's class; the log has the path."""
    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import config as C
    from palsy.scripts.serve import state as ST

    secret = tmp_path / "hospital-internal-path"
    monkeypatch.setattr(ST.Probe, "_probe", lambda self: ST.StateUnavailable(secret, "health probe",
                                                                            "ENOSPC: No space left on device", 28))
    app = A.create_app(C.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path), insecure_dev=True))
    with _protocol_serving(app, lifespan="on") as base:
        r = httpx.get(base + "/healthz")
    assert r.status_code == 503 and r.json()["status"] == "state_unavailable", r.text
    assert str(secret) not in r.text and "ENOSPC" in r.json()["message"]
    assert str(secret) in palsy_log.text


# --- #11: userId ------------------------------------------------------------------------------------------------------

def test_a_user_id_is_read_without_its_version_and_one_that_is_no_user_is_said_as_such(s17, keys):
    """#11: ``Practitioner/x/_history/1`` and ``Device/1`` were told "context.userId is required". A version is
    dropped (a Patient's then gets no card), and a reference of another type is named."""
    body = hook_body(_bundle("source-002"))
    body["context"]["userId"] = "Practitioner/x/_history/1"
    assert detail(post(s17, keys, body))
    body["context"]["userId"] = "Patient/source-002/_history/2"
    r = post(s17, keys, body)
    assert r.status_code == 200 and r.json() == {"cards": []}
    for user, words in (("Device/1", "its type 'Device' is not one of them"),
                        ("practitioner/1", "its type 'practitioner' is not one of them"),
                        ("Practitioner/a_b", "Type/<id>, the id of letters")):
        body["context"]["userId"] = user
        r = post(s17, keys, body)
        assert r.status_code == 400 and "is not a Practitioner, PractitionerRole" in r.json()["message"], r.text
        assert words in r.json()["message"] and "is required" not in r.json()["message"]


# --- #13: jku ---------------------------------------------------------------------------------------------------------

def test_a_jku_is_compared_as_a_url():
    """#13: the configured URL with a trailing slash, in upper case or with its default port was refused (401); an
    other URL still is, and a jku is never fetched."""
    from palsy.scripts.serve.auth import same_url

    url = "https://ehr.example/fhir/jwks"
    for same in (url, url + "/", "HTTPS://EHR.example/fhir/jwks", "https://ehr.example:443/fhir/jwks",
                 "https://ehr.example/fhir/./jwks", url + "#k"):
        assert same_url(same, url), same
    for other in ("https://ehr.example/fhir/JWKS", url + "?x=1", "https://evil.example/fhir/jwks",
                  "http://ehr.example/fhir/jwks", "https://ehr.example:8443/fhir/jwks", 7, "not a url"):
        assert not same_url(other, url), other


# --- #14, #16: the key file --------------------------------------------------------------------------------------------

def test_a_key_file_made_bad_keeps_its_keys_on_reload_and_a_failure_is_withdrawn_when_mended(tmp_path, keys,
                                                                                            monkeypatch):
    """#14: a bad key file failed the whole re-reading after SIGHUP (evidence included), its error named no file,
    and the stop said "a worker had failed to restart" even after a later SIGHUP succeeded. The re-reading keeps
    the file's keys; a first reading names the file; a later success withdraws the failure."""
    from palsy.model import findings as F
    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import auth as AU
    from palsy.scripts.serve import config as CF
    from palsy.scripts.serve import keysets as KS

    jwks = tmp_path / "ehr.jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    cfg = CF.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path),
                    issuers=(CF.Issuer(iss=ISS, jwks_file=str(jwks)),))
    v = AU.Verifier(cfg)
    jwks.write_text("not json")
    again = AU.Verifier(cfg, v)  # the re-reading: the keys read before stand
    assert again.key_sets[ISS].key("ehr-ec").key_id == "ehr-ec"
    with pytest.raises(F.InputError, match="ehr.jwks.json"):
        KS.FileKeys(jwks, ISS)
    failures = tmp_path / "failures.txt"
    failures.write_text(f"started\t{os.getpid()}\n")
    monkeypatch.setenv(CF.START_FAILURES_ENV, str(failures))
    A.record_reload_failure(ValueError("the evidence"))
    assert "a reload (SIGHUP) failed: ValueError" in failures.read_text()
    A.record_reload_success()
    assert failures.read_text() == f"started\t{os.getpid()}\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="a FIFO: POSIX")
def test_a_key_file_that_is_no_regular_file_or_too_large_is_not_read(tmp_path, keys, monkeypatch):
    """#16: the key file was read whatever it was: a FIFO in its place hung the call that re-read it (holding the
    issuer's lock), /dev/zero would read without end. Only a regular file of at most 1 MB is read; anything else
    keeps the keys read before, at once."""
    from palsy.scripts.serve import keysets as KS

    monkeypatch.setattr(KS, "FILE_CHECK_SECONDS", 0.0)
    jwks = tmp_path / "ehr.jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    fk = KS.FileKeys(jwks, ISS)
    jwks.unlink()
    os.mkfifo(jwks)
    t = time.monotonic()
    assert fk.key("ehr-ec").key_id == "ehr-ec" and time.monotonic() - t < 1
    jwks.unlink()
    jwks.write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")], "pad": "x" * (1024 * 1024)}))
    assert fk.reload() is False and fk.key("ehr-ec").key_id == "ehr-ec"

