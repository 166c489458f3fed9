"""The s17 integration review of ``palsy serve`` (/work/lit/notes/s17/cds.md), each finding tested as a record system
meets it: the real server in a subprocess on a free port, called over HTTP with signed CDS Hooks JWTs (the
helpers of tests/test_service.py). A few run the service's own app under its own HTTP protocol in this process,
where a bound is patched shorter (a stalled body) or a key set is rotated between two calls."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from stalled_body import stalled_body
from test_service import (
    ISS,
    SANDBOX,
    SERVICE,
    _bundle,
    _free_port,
    _jwk,
    _serving,
    hook_body,
    keys,
    now_stamp,
    token,
)

from palsy.reports import cards as CARDS
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service")]

__all__ = ["keys"]  # the key fixture of tests/test_service.py, used here

URL_ISS = "https://sandbox-ehr.test.example"  # an issuer whose keys are at a URL (the CDS Hooks sandbox's way)
CARD = f"/cds-services/{SERVICE}"
FEEDBACK = f"{CARD}/feedback"


class KeySetServer:
    """An issuer's JWK Set URL on localhost that counts the fetches it answers (``body`` changed as a test goes)."""

    def __init__(self, body: dict) -> None:
        self.body, self.fetches = json.dumps(body).encode(), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *_):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, body: dict) -> None:
        self.body = json.dumps(body).encode()

    def close(self) -> None:
        self.httpd.shutdown()


def signed(base: str, path: str, private, kid: str, alg: str, iss: str = ISS, headers: dict | None = None,
           **claims) -> dict:
    """The Authorization header of a token for ``path`` of ``base``, signed by ``private`` as ``kid``."""
    now = int(time.time())
    body = {"iss": iss, "aud": base + path, "exp": now + 60, "iat": now, "jti": uuid.uuid4().hex, **claims}
    tok = jwt.encode({k: v for k, v in body.items() if v is not None}, private, algorithm=alg,
                     headers={"kid": kid, "typ": "JWT", **(headers or {})})
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture(scope="module")
def url_keys():
    return {"b1": ec.generate_private_key(ec.SECP384R1()), "b2": ec.generate_private_key(ec.SECP384R1())}


@pytest.fixture(scope="module")
def s17(tmp_path_factory, keys, url_keys, posterior_subtype):
    """The real server as a hospital configures it for Epic and the sandbox (docs/service.md): one worker, a file
    issuer (ES384, RS384, ES256), a URL issuer, tokens of up to 900 s, the default body limit."""
    folder = tmp_path_factory.mktemp("serve-s17")
    port = _free_port()
    jwks = [_jwk(keys["ec"][0], "ehr-ec", "ES384"), _jwk(keys["rsa"][0], "ehr-rsa", "RS384"),
            _jwk(keys["ec256_bare"][0], "ehr-ec256", "ES256")]
    (folder / "ehr.jwks.json").write_text(json.dumps({"keys": jwks}))
    keyset = KeySetServer({"keys": [_jwk(url_keys["b1"], "b1", "ES384")]})
    settings = {"service_url": f"http://127.0.0.1:{port}", "port": port, "workers": 1, "state_dir": "state",
                "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}, {"iss": URL_ISS, "jwks_url": keyset.url}],
                "algorithms": ["ES256", "ES384", "RS384"], "max_token_lifetime_seconds": 900,
                "cors_origins": [SANDBOX]}
    try:
        with _serving(folder, settings) as (base, proc, log):
            yield {"base": base, "folder": folder, "proc": proc, "log": log, "keyset": keyset}
    finally:
        keyset.close()


def post(srv, keys, body, path: str = CARD, **kw) -> httpx.Response:
    return httpx.post(srv["base"] + path, json=body, headers={"Authorization": "Bearer " + token(srv, keys, path, **kw)},
                      timeout=120)


def detail(r: httpx.Response) -> str:
    """The card's detail with markdown's escapes taken out."""
    assert r.status_code == 200, r.text[:500]
    (card,) = r.json()["cards"]
    return card["detail"].replace("\\", "")


def without_vincristine_statement(name: str = "source-002") -> dict:
    """A source bundle whose exposure to vincristine is not stated (so the card says where a dose might be)."""
    b = _bundle(name)
    b["entry"] = [e for e in b["entry"] if "recent_vincristine" not in json.dumps(e["resource"].get("code"))]
    return b


def outcome(severity: str, code: str, words: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": words}]}


# --- #1: an OperationOutcome under an optional key ------------------------------------------------------------------

def test_an_operation_outcome_under_an_optional_key_is_read_as_not_sent_and_said(s17, keys):
    """#1: the record could not run a chained search (an optional key) and said so with an OperationOutcome, as
    CDS Hooks 2.0 asks: the card is answered as if the key were not sent, and says the record could not answer it
    (it was a 412, and no card for any patient). A key the service never asked for is not read; a required key
    answered so is still a 412 naming it."""
    body = hook_body(without_vincristine_statement())
    left_out = json.loads(json.dumps(body))
    del left_out["prefetch"]["administrations_by_ingredient"]
    body["prefetch"]["administrations_by_ingredient"] = outcome("error", "not-supported", "chained search not supported")
    body["prefetch"]["user"] = outcome("error", "forbidden", "not asked for")
    r = post(s17, keys, body)
    text = detail(r)
    assert "the record could not answer the prefetch administrations_by_ingredient (not-supported: chained search " \
           "not supported)" in text, text
    assert "a dose of a Medication coded only through its ingredient is not read" in text
    assert r.json()["cards"][0]["extension"] == post(s17, keys, left_out).json()["cards"][0]["extension"]
    required = hook_body(_bundle("source-002"))
    required["prefetch"]["conditions"] = outcome("error", "timeout", "the search timed out")
    r = post(s17, keys, required)
    assert r.status_code == 412 and r.json()["error"] == "prefetch_failed" and r.json()["missing"] == ["conditions"]


# --- #8: an OperationOutcome inside a search's results ----------------------------------------------------------

def test_an_operation_outcome_among_a_searchs_entries_is_said_on_the_card(s17, keys):
    """#8: a search whose only entry is an error OperationOutcome (``search.mode: outcome``) read as "not in the
    record", silently; a warning that results were withheld was not said. Both are said now, with the issue's own
    words; an ``information`` issue (a server's "no match") is not."""
    body = hook_body(_bundle("source-002"))
    body["prefetch"]["procedures"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": outcome("error", "processing", "search failed"), "search": {"mode": "outcome"}}]}
    body["prefetch"]["observations"]["entry"].append(
        {"resource": outcome("warning", "suppressed", "some results withheld"), "search": {"mode": "outcome"}})
    body["prefetch"]["reports"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": outcome("information", "not-found", "no match"), "search": {"mode": "outcome"}}]}
    text = detail(post(s17, keys, body))
    assert "the record's search for the Procedures (prefetch procedures) failed (error, processing: search failed): " \
           "what it did not return is unknown, not absent; read the record" in text, text
    assert "the record's search for the Observations (CSF, blood blasts, findings in palsy's codes) (prefetch " \
           "observations) gave a warning (warning, suppressed: some results withheld): its results may be " \
           "incomplete" in text, text
    assert "prefetch reports" not in text and "no match" not in text


# --- #9: the patient or a proxy viewing the record --------------------------------------------------------------

def test_a_patient_or_a_proxy_viewing_their_record_gets_no_clinician_card(s17, keys):
    """#9: a portal's patient-view (``userId`` Patient/ or RelatedPerson/) was answered with the clinician's card
    ("Escalate today"). It gets ``{"cards": []}``, logged with the patient's hash only; a call without userId (which
    patient-view requires) is a 400 naming it; a PractitionerRole gets the card."""
    body = hook_body(_bundle("source-002"))
    for user in ("Patient/source-002", "RelatedPerson/mother-1"):
        body["context"]["userId"] = user
        r = post(s17, keys, body)
        assert r.status_code == 200 and r.json() == {"cards": []}, (user, r.text[:300])
    del body["context"]["userId"]
    r = post(s17, keys, body)
    assert r.status_code == 400 and "context.userId is required" in r.json()["message"]
    body["context"]["userId"] = "PractitionerRole/7"
    assert detail(post(s17, keys, body))
    time.sleep(0.3)
    log = s17["log"].read_text()
    assert "viewed by a Patient: no clinician card" in log and "viewed by a RelatedPerson: no clinician card" in log
    assert "source-002" not in log and "mother-1" not in log


# --- #2, #3: tokens with jku, Epic's and the sandbox's, and key rotation ---------------------------------------------

def test_a_jku_of_a_file_issuer_is_not_fetched_and_epics_and_the_sandboxs_tokens_are_answered(s17, keys, url_keys):
    """#2: a ``jku`` header with a file issuer was a 401, so every Epic-shaped and sandbox token was refused with the
    documented configuration. The file issuer's keys verify it and the jku is never fetched; a URL issuer's jku
    must be its configured URL. With the docs' settings for such clients (900 s tokens, ES256) an Epic-shaped token
    (RS384, jku, exp = iat + 900, nbf 5 minutes before, sub) and an ES256 one are answered."""
    base, path = s17["base"], "/cds-services"
    spy = KeySetServer({"keys": []})
    try:
        now = int(time.time())
        epic = signed(base, path, keys["rsa"][0], "ehr-rsa", "RS384", headers={"jku": spy.url}, exp=now + 900,
                      iat=now, nbf=now - 300, sub="epic-client")
        assert httpx.get(base + path, headers=epic).status_code == 200
        sandbox = signed(base, path, keys["ec256_bare"][0], "ehr-ec256", "ES256", headers={"jku": spy.url})
        assert httpx.get(base + path, headers=sandbox).status_code == 200
        assert spy.fetches == 0  # no key is fetched from a URL a token chose
        forged = signed(base, path, ec.generate_private_key(ec.SECP384R1()), "ehr-ec", "ES384", headers={"jku": spy.url})
        assert httpx.get(base + path, headers=forged).status_code == 401 and spy.fetches == 0
    finally:
        spy.close()
    foreign = signed(base, path, url_keys["b1"], "b1", "ES384", iss=URL_ISS, headers={"jku": "https://evil.example/jwks"})
    r = httpx.get(base + path, headers=foreign)
    assert r.status_code == 401 and "jku is not the configured JWK Set URL" in r.json()["message"]
    own = signed(base, path, url_keys["b1"], "b1", "ES384", iss=URL_ISS, headers={"jku": s17["keyset"].url})
    assert httpx.get(base + path, headers=own).status_code == 200


def test_a_new_key_is_accepted_at_once_from_a_file_or_a_url(s17, keys, url_keys):
    """#3: a key added to an issuer's JWK Set file needed a restart, and a key published at a JWK Set URL met up to a
    minute of 401s (PyJWT's cooldown began at every fetch). A file is re-read when it changes, a URL fetched again
    for a key it lacks, at once; a second unknown key id within the refetch bound is told to retry (503 with
    Retry-After), not refused as a bad token."""
    base, path = s17["base"], "/cds-services"
    jwks_file = s17["folder"] / "ehr.jwks.json"
    k2 = ec.generate_private_key(ec.SECP384R1())
    keys_now = json.loads(jwks_file.read_text())
    jwks_file.write_text(json.dumps({"keys": [*keys_now["keys"], _jwk(k2, "ehr-k2", "ES384")]}))
    time.sleep(0.3)  # the file is looked at again for an unknown key at most every 0.2 s
    r = httpx.get(base + path, headers=signed(base, path, k2, "ehr-k2", "ES384"))
    assert r.status_code == 200, r.text
    keyset = s17["keyset"]
    assert httpx.get(base + path, headers=signed(base, path, url_keys["b1"], "b1", "ES384", iss=URL_ISS)).status_code == 200
    keyset.serve({"keys": [_jwk(url_keys["b1"], "b1", "ES384"), _jwk(url_keys["b2"], "b2", "ES384")]})
    before = keyset.fetches
    r = httpx.get(base + path, headers=signed(base, path, url_keys["b2"], "b2", "ES384", iss=URL_ISS))
    assert r.status_code == 200 and keyset.fetches == before + 1, r.text
    made_up = signed(base, path, url_keys["b2"], "made-up", "ES384", iss=URL_ISS)
    r = httpx.get(base + path, headers=made_up)
    assert r.status_code == 503 and r.json()["error"] == "keys_unavailable", r.text
    assert 1 <= int(r.headers["retry-after"]) <= 10 and keyset.fetches == before + 1


def test_a_key_withdrawn_from_a_file_stops_being_accepted(tmp_path, keys, monkeypatch):
    """#3, the other way: a key taken out of the issuer's file stops verifying once the file is looked at again
    (every few seconds, here at once); a file written half-way keeps the keys read before."""
    from palsy.scripts.serve import auth as AU
    from palsy.scripts.serve import config as CF
    from palsy.scripts.serve import keysets as KS

    monkeypatch.setattr(KS, "FILE_CHECK_SECONDS", 0.0)
    jwks_file = tmp_path / "ehr.jwks.json"
    jwks_file.write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384"), _jwk(keys["rsa"][0], "ehr-rsa", "RS384")]}))
    v = AU.Verifier(CF.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path),
                              issuers=(CF.Issuer(iss=ISS, jwks_file=str(jwks_file)),)))
    srv = {"base": "http://127.0.0.1:1"}
    aud = [srv["base"] + "/cds-services"]
    assert v.verify(f"Bearer {token(srv, keys, '/cds-services')}", aud)["iss"] == ISS
    jwks_file.write_text('{"keys": [')  # half written: the keys read before stand
    assert v.verify(f"Bearer {token(srv, keys, '/cds-services')}", aud)["iss"] == ISS
    jwks_file.write_text(json.dumps({"keys": [_jwk(keys["rsa"][0], "ehr-rsa", "RS384")]}))
    with pytest.raises(AU.AuthError, match="kid is not a key of its issuer"):
        v.verify(f"Bearer {token(srv, keys, '/cds-services')}", aud)
    assert v.verify(f"Bearer {token(srv, keys, '/cds-services', key='rsa')}", aud)["iss"] == ISS


# --- #5, #12, #13, #16a, #16b: feedback ---------------------------------------------------------------------------

def issued(srv, keys) -> dict:
    r = post(srv, keys, hook_body(_bundle("source-002")))
    assert r.status_code == 200, r.text
    return r.json()["cards"][0]


def send_feedback(srv, keys, *entries: dict, **kw) -> httpx.Response:
    return post(srv, keys, {"feedback": list(entries)}, path=FEEDBACK, **kw)


def test_feedback_is_taken_after_the_cards_report_has_expired(s17, keys):
    """#5: feedback was refused once the card's report expired (an hour by default), so a clinician who dismissed a
    card the record system kept on screen lost the outcome the registry loop collects. The card's own file is kept
    for the feedback window (30 days by default), the report for its hour."""
    card = issued(s17, keys)
    reports = s17["folder"] / "state" / "reports"
    rid = card["links"][0]["url"].rsplit("/", 1)[1]
    record = reports / f"{rid}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "expires": time.time() - 1}))
    assert httpx.get(card["links"][0]["url"], timeout=30).status_code == 404  # the report has gone
    r = send_feedback(s17, keys, {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now_stamp(),
                                  "overrideReason": {"reason": card["overrideReasons"][3]}})
    assert r.status_code == 200 and r.json() == {"recorded": 1}, r.text
    kept = json.loads((reports / f"{card['uuid']}.card").read_text())["expires"]
    assert kept - time.time() == pytest.approx(30 * 86400, abs=600)


def test_the_card_file_outlives_its_report_by_the_feedback_window(tmp_path):
    """#5, the store: the purge deletes a report at its expiry and the card's file at the end of its window."""
    from palsy.scripts.serve.store import Reports

    reports = Reports(tmp_path, ttl_seconds=3600, card_ttl_seconds=30 * 86400)
    card = str(uuid.uuid4())
    rid = reports.put({"patient": {"id": "Patient/p"}}, card=card)
    now = time.time()
    assert reports.delete_expired(now + 3601) == 1 and reports.get(rid) is None
    assert reports.issued(card) and (reports.folder / f"{card}.card").exists()
    assert reports.delete_expired(now + 30 * 86400 + 1) == 1 and not list(reports.folder.iterdir())


def test_an_override_reason_is_a_coding_with_system_and_code_and_palsys_must_be_offered(s17, keys):
    """#12: a reason without its system read on the adjudication form as palsy's own. A reason is a Coding with
    both (CDS Hooks 2.0, Coding); one of palsy's system must be a code the card offered; a client's own reason
    (its system and code: the spec lets a client add reasons) is kept."""
    card = issued(s17, keys)
    entry = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now_stamp()}
    log = s17["folder"] / "state" / "feedback.jsonl"
    before = log.read_bytes()
    for reason, says in (({"code": "disagree"}, "both a system and a code"),
                         ({"system": CARDS.OVERRIDE_SYSTEM}, "both a system and a code"),
                         ({"system": CARDS.OVERRIDE_SYSTEM, "code": "bored"}, "is not a reason palsy's cards offer")):
        r = send_feedback(s17, keys, {**entry, "overrideReason": {"reason": reason}})
        assert r.status_code == 400 and says in json.dumps(r.json()), (reason, r.text)
    assert log.read_bytes() == before
    offered = {k: card["overrideReasons"][0][k] for k in ("system", "code")}
    theirs = {"system": "https://ehr.test.example/reasons", "code": "x1"}
    for reason in (offered, theirs):
        assert send_feedback(s17, keys, {**entry, "overrideReason": {"reason": reason}}).status_code == 200
        assert json.loads(log.read_text().splitlines()[-1])["overrideReason"] == reason


def test_accepted_suggestions_the_card_never_offered_are_refused(s17, keys):
    """#13: palsy's cards carry no suggestions (palsy never writes to the record), so an acceptedSuggestions id is
    one the card never issued: that outcome is refused, said by its field, and the others of the request kept."""
    card, other = issued(s17, keys), issued(s17, keys)
    assert "suggestions" not in card
    fake = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": now_stamp(),
            "acceptedSuggestions": [{"id": str(uuid.uuid4())}]}
    r = send_feedback(s17, keys, fake)
    assert r.status_code == 400 and r.json()["problems"] == [
        "feedback.0.acceptedSuggestions: palsy's cards offer no suggestions, so these ids are none the card issued"]
    dismissed = {"card": other["uuid"], "outcome": "overridden", "outcomeTimestamp": now_stamp()}
    r = send_feedback(s17, keys, fake, dismissed)
    assert r.status_code == 200 and r.json()["recorded"] == 1 and len(r.json()["unknown"]) == 1


def test_an_impossible_timestamp_is_refused_and_the_tenant_is_logged_beside_the_issuer(s17, keys):
    """#16a: ``outcomeTimestamp`` had only to look like RFC 3339 (2026-99-99T99:99:99Z was stored); #16b: the
    token's ``tenant`` (one issuer, several hospitals) was not logged."""
    card = issued(s17, keys)
    for stamp in ("2026-99-99T99:99:99Z", "0000-00-00T00:00:00+99:99", "2026-02-30T10:00:00Z"):
        r = send_feedback(s17, keys, {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp})
        assert r.status_code == 400 and "is not a date and time (RFC 3339" in json.dumps(r.json()), (stamp, r.text)
    from palsy.scripts.serve.bodies import instant

    assert instant("2016-12-31T23:59:60Z").second == 59  # a leap second is a date and time (RFC 3339)
    r = send_feedback(s17, keys, {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now_stamp()},
                      tenant="2ddd6c3a-8e9a-44c6-a305-52111ad302a2")
    assert r.status_code == 200, r.text
    last = json.loads((s17["folder"] / "state" / "feedback.jsonl").read_text().splitlines()[-1])
    assert last["issuer"] == ISS and last["tenant"] == "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"


# --- #11, #15: the report a card links to ---------------------------------------------------------------------------

def test_an_expired_report_is_a_page_for_a_browser_and_json_for_a_json_client(s17, keys):
    """#11: a card's link opened after its report expired showed the clinician raw JSON. A browser gets a page that
    says the report has expired and what to do; a JSON client (or one that asks for anything) gets the JSON 404."""
    card = issued(s17, keys)
    url = card["links"][0]["url"]
    rid = url.rsplit("/", 1)[1]
    record = s17["folder"] / "state" / "reports" / f"{rid}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "expires": time.time() - 1}))
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
    for target in (url, s17["base"] + "/reports/" + "x" * 22):
        page = httpx.get(target, headers={"Accept": browser}, timeout=30)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "This report is no longer available" in page.text and "kept for 1 hour" in page.text
        assert "Reopen the patient's chart for a current card" in page.text
        assert page.headers["cache-control"] == "no-store" and "default-src 'none'" in page.headers["content-security-policy"]
        for accept in ("application/json", "*/*", "application/json, text/html;q=0.5"):
            r = httpx.get(target, headers={"Accept": accept}, timeout=30)
            assert r.status_code == 404 and r.json()["error"] == "not_found", accept


def test_the_reports_title_carries_no_record_id(s17, keys):
    """#15: the page title, which a browser's history keeps on a shared ward workstation after the report is gone,
    carried ``Patient/source-002``; the page itself still names the patient."""
    card = issued(s17, keys)
    page = httpx.get(card["links"][0]["url"], timeout=120)
    assert page.status_code == 200
    title = re.search(r"<title>(.*?)</title>", page.text, re.S).group(1)
    assert title.strip() and "source-002" not in title and "Patient/" not in title, title
    assert "Patient/source-002" in page.text


# --- #6: a long record ----------------------------------------------------------------------------------------------

def blood_count(i: int, day: str, pid: str) -> dict:
    """A blood-blast Observation of a record system's usual shape (about 1.8 kB: identifiers, category, performer)."""
    q = {"unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
    return {"resourceType": "Observation", "id": f"bl-{i}", "meta": {"versionId": "1", "lastUpdated": f"{day}T08:00:00Z"},
            "identifier": [{"use": "official", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.6.798268.2000",
                            "value": str(1_000_000 + i)}],
            "basedOn": [{"reference": f"ServiceRequest/sr-{i}", "display": "CBC WITH DIFFERENTIAL"}], "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory", "display": "Laboratory"}], "text": "Laboratory"}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "26446-5", "display": "Blasts/100 leukocytes in Blood"}],
                     "text": "Blasts %"},
            "subject": {"reference": f"Patient/{pid}", "display": "Test, Patient"},
            "encounter": {"reference": f"Encounter/enc-{i}", "display": "Office Visit"},
            "effectiveDateTime": f"{day}T07:30:00Z", "issued": f"{day}T09:12:00Z",
            "performer": [{"reference": "Organization/lab", "display": "HOSPITAL CORE LABORATORY"}],
            "valueQuantity": {"value": 0, **q},
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                            "code": "N", "display": "Normal"}], "text": "Normal"}],
            "referenceRange": [{"low": {"value": 0, **q}, "high": {"value": 0, **q}, "text": "0 %"}],
            "specimen": {"reference": f"Specimen/sp-{i}", "display": "Blood"}}


def test_a_record_with_years_of_blood_counts_gets_a_card_and_a_larger_one_a_413_naming_the_limit(s17, keys):
    """#6: four years of blood counts every other day (720 Observations, 1.1 MB) exceeded the documented 1 MB limit:
    413, no card. The default limit is 4 MB (measured: docs/service.md); a body over it is a 413 naming the limit and
    its configuration key."""
    import datetime as dt

    body = hook_body(_bundle("source-002"))
    pid = body["context"]["patientId"]
    start = dt.date(2023, 1, 1)
    body["prefetch"]["observations"]["entry"] += [
        {"resource": blood_count(i, str(start + dt.timedelta(days=2 * i)), pid), "search": {"mode": "match"}}
        for i in range(720)]
    assert len(json.dumps(body)) > 1_048_576
    assert detail(post(s17, keys, body))
    big = json.dumps({"hook": "patient-view", "pad": "x" * 4_200_000}).encode()
    r = httpx.post(s17["base"] + CARD, content=big, timeout=60, headers={
        "Authorization": "Bearer " + token(s17, keys, CARD), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert "4194304 bytes" in r.json()["message"] and "max_body_bytes" in r.json()["message"]


# --- #16: discovery, Content-Type, a trailing slash, the card's words ----------------------------------------------

def test_discovery_names_the_optional_keys_and_that_no_access_token_is_used(s17, keys):
    """#16f: ``usageRequirements`` named neither the optional prefetch keys nor that fhirAuthorization is never
    used (so a record system minted an access token for nothing)."""
    r = httpx.get(s17["base"] + "/cds-services", headers={"Authorization": "Bearer " + token(s17, keys, "/cds-services")})
    (svc,) = r.json()["services"]
    said = svc["usageRequirements"]
    assert all(k in said for k in ("administrations_by_reference", "orders_by_reference",
                                   "administrations_by_ingredient", "orders_by_ingredient"))
    assert "fhirAuthorization are not used" in said and "Practitioner/" in said and "fhir_map.yaml" in said


def test_a_body_without_a_json_content_type_is_a_415_naming_the_header(s17, keys):
    """#16d: a POST without Content-Type, or text/plain, got a 400 about the body ("Input should be a valid
    dictionary"). It is a 415 that names the header to send; application/fhir+json is JSON too."""
    data = json.dumps(hook_body(_bundle("source-002"))).encode()
    for ctype in (None, "text/plain"):
        headers = {"Authorization": "Bearer " + token(s17, keys, CARD), **({"Content-Type": ctype} if ctype else {})}
        r = httpx.post(s17["base"] + CARD, content=data, headers=headers, timeout=60)
        assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type", r.text
        assert "Content-Type: application/json" in r.json()["message"]
    r = httpx.post(s17["base"] + CARD, content=data, timeout=60, headers={
        "Authorization": "Bearer " + token(s17, keys, CARD), "Content-Type": "application/fhir+json; charset=utf-8"})
    assert r.status_code == 200


def test_a_trailing_slash_is_a_404_that_leaves_the_token_unspent(s17, keys):
    """#16e: ``GET /cds-services/`` spent the token's jti and answered a redirect built from the Host header (http
    behind the TLS proxy); following it with the same token was a replay."""
    h = {"Authorization": "Bearer " + token(s17, keys, "/cds-services")}
    r = httpx.get(s17["base"] + "/cds-services/", headers=h)
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "call /cds-services" in r.json()["message"]
    assert "location" not in r.headers
    assert httpx.get(s17["base"] + "/cds-services", headers=h).status_code == 200
    assert httpx.get(s17["base"] + "/healthz/").status_code == 404


def test_the_card_names_findings_by_their_labels_not_the_schemas_identifiers(s17, keys):
    """#16g: the card's "Not found in the record" line and its notes showed identifiers (``eighth_nerve``,
    ``csf_profile``, ``recent_hsct``); they show the schema's labels."""
    from palsy.model import schema as SC

    schema = SC.read()
    names = [n for n in schema.findings if "_" in n]
    for src in ("source-000-vignette", "source-001", "source-002"):
        body = hook_body(without_vincristine_statement(src))
        del body["prefetch"]["orders_by_reference"]
        text = detail(post(s17, keys, body))
        line = text.split("**Not found in the record:** ", 1)[1].splitlines()[0]
        assert "examine and enter" in line or "not in the record" in line
        shown = [n for n in names if re.search(rf"\b{n}\b", text)]
        assert shown == [], (src, shown, text)


# --- #14: a stalled request body ------------------------------------------------------------------------------------

def test_a_stalled_body_is_a_408_and_frees_its_place(tmp_path, posterior_subtype, monkeypatch):
    """#14: a client that sends part of its body and stops held its admission place without end (two such
    connections refused every card with 503). The service's own app under its protocol, the bound a second: the
    stalled request gets a JSON 408 and its connection is closed, and the worker's one place answers the next."""
    got, took = stalled_body(tmp_path, monkeypatch, {"BODY_SECONDS": 1.0}, origin=SANDBOX)
    assert got.startswith(b"HTTP/1.1 408 ") and took < 10, got[:300]
    answer = json.loads(got.split(b"\r\n\r\n", 1)[1])
    assert answer["error"] == "request_timeout" and "body made no progress for 1 s" in answer["message"]
    assert f"access-control-allow-origin: {SANDBOX}".encode() in got.lower()


# --- #4: a full or unwritable state folder --------------------------------------------------------------------------

#: Faults injected into the server's process (its sitecustomize): while the flag file holds ``all``, the replay
#: store is read-only (SQLite's own error) and files in the state folder cannot be created or written (ENOSPC);
#: while it holds ``files``, only the files.
FAULTS = '''
import errno, os
FLAG = os.environ.get("PALSY_TEST_STATE_FAULT")
if FLAG:
    STATE = os.environ["PALSY_TEST_STATE_DIR"]
    real_open, real_write = os.open, os.write

    def fault():
        try:
            with open(FLAG) as f:
                return f.read().strip()
        except OSError:
            return ""

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def open_(path, flags, *args, **kwargs):
        p = os.path.abspath(os.fspath(path))
        if fault() and flags & os.O_CREAT and p.startswith(STATE) and not os.path.exists(p):
            full(p)
        return real_open(path, flags, *args, **kwargs)

    def write_(fd, data):
        if fault():
            try:
                where = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                where = ""
            if where.startswith(STATE):
                full(where)
        return real_write(fd, data)

    os.open, os.write = open_, write_
    from palsy.scripts.serve import auth
    first_use = auth.ReplayStore.first_use

    def read_only_store(self, iss, jti, exp):
        self._db().execute("PRAGMA query_only = " + ("1" if fault() == "all" else "0"))
        return first_use(self, iss, jti, exp)

    auth.ReplayStore.first_use = read_only_store
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="the injected fault finds a file by /proc")
def test_a_full_or_unwritable_state_folder_is_a_503_naming_it_and_healthz_says_so(tmp_path, keys, posterior_subtype,
                                                                                 monkeypatch):
    """#4: with the state folder full, every card and feedback was a 500 ``internal`` logged as OperationalError,
    and ``/healthz`` said ok. Now each is a JSON 503 ``state_unavailable`` naming the folder and the error, with
    Retry-After; the log names the same, never a traceback; ``/healthz`` is 503 until the folder can be written,
    and then everything is answered again."""
    (tmp_path / "sitecustomize.py").write_text(FAULTS)
    flag = tmp_path / "fault"
    state = tmp_path / "state"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("PALSY_TEST_STATE_FAULT", str(flag))
    monkeypatch.setenv("PALSY_TEST_STATE_DIR", str(state))
    port = _free_port()
    (tmp_path / "ehr.jwks.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    settings = {"service_url": f"http://127.0.0.1:{port}", "port": port, "workers": 1, "state_dir": "state",
                "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}]}
    with _serving(tmp_path, settings) as (base, _, log_path):
        srv = {"base": base}
        card = issued(srv, keys)
        assert httpx.get(base + "/healthz").json()["status"] == "ok"

        def refused(r: httpx.Response, what: str) -> None:
            assert r.status_code == 503 and r.headers["content-type"] == "application/json", r.text[:300]
            assert r.json()["error"] == "state_unavailable" and int(r.headers["retry-after"]) > 0
            message = r.json()["message"]
            assert f"cannot write its state folder {state}" in message and what in message, message

        flag.write_text("all")
        refused(post(srv, keys, hook_body(_bundle("source-002"))), "the replay store: SQLITE_READONLY")
        health = httpx.get(base + "/healthz")
        assert health.status_code == 503 and health.json()["status"] == "state_unavailable"
        flag.write_text("files")
        refused(post(srv, keys, hook_body(_bundle("source-001"))), "the reports: ENOSPC")
        refused(send_feedback(srv, keys, {"card": card["uuid"], "outcome": "overridden",
                                          "outcomeTimestamp": now_stamp()}), "the feedback log: ENOSPC")
        flag.unlink()
        deadline = time.monotonic() + 30
        while httpx.get(base + "/healthz").status_code != 200:
            assert time.monotonic() < deadline, "healthz did not recover"
            time.sleep(0.5)
        assert issued(srv, keys)
        r = send_feedback(srv, keys, {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now_stamp()})
        assert r.status_code == 200, r.text
        time.sleep(0.3)
        log = log_path.read_text()
        assert "internal error" not in log and "Traceback" not in log and "OperationalError" not in log, log[-3000:]
        assert f"state folder {state} cannot be written (the feedback log: ENOSPC" in log
        assert f"state folder {state} cannot be written (the replay store: SQLITE_READONLY" in log
    lines = (state / "feedback.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])  # no torn line


# --- #10 and #7: SIGHUP with one worker re-reads; a hospital's own codes --------------------------------------------

LOCAL_CYTOLOGY = ('  - {system: "https://lab.hospital.example/codes", code: "CSFCYT", display: "CSF cytology (the '
                  'hospital\'s code)", role: lab, measure: csf_cytology, source: "the hospital\'s laboratory catalogue"}\n')


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
def test_sighup_with_one_worker_rereads_its_start_and_a_hospitals_own_codes_are_read(tmp_path, keys,
                                                                                    posterior_subtype):
    """#10: SIGHUP stopped a service of one worker (status 0, logged as SIGTERM) and restarted one of several. With
    one worker it now re-reads what the worker read at its start, serving throughout, as several workers' restart
    does; a re-reading that fails leaves it serving and is said at the end, as a failed restart of several is.

    #7, the documented route for a hospital's local codes: its own copy of ``priors/`` (the ``priors`` key) whose
    ``fhir_map.yaml`` adds a row for its laboratory's code of the CSF cytology. Added while the service runs, the
    row is read after SIGHUP: the discovery asks the record for the local code, and a record coded with it has
    its cytology read (without the row it was "not in the record")."""
    priors = tmp_path / "hospital-priors"
    shutil.copytree(REPO / "priors", priors)
    port = _free_port()
    jwks = tmp_path / "ehr.jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    settings = {"service_url": f"http://127.0.0.1:{port}", "port": port, "workers": 1, "state_dir": "state",
                "priors": "hospital-priors", "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}]}
    b = _bundle("source-002")
    for e in b["entry"]:
        for c in (e["resource"].get("code") or {}).get("coding") or []:
            if (c.get("system"), c.get("code")) == ("urn:palsy:code", "csf-cytology"):
                c.update(system="https://lab.hospital.example/codes", code="CSFCYT")
    with _serving(tmp_path, settings) as (base, proc, log_path):
        srv = {"base": base}

        def discovery() -> dict:
            r = httpx.get(base + "/cds-services", headers={"Authorization": "Bearer " + token(srv, keys, "/cds-services")})
            return r.json()["services"][0]["prefetch"]

        def csf_read() -> bool:
            body = hook_body(b)
            text = detail(post(srv, keys, body))
            return "Lumbar punctures (CSF)" not in text.split("**Not found in the record:** ", 1)[-1].splitlines()[0]

        def said(words: str) -> None:
            deadline = time.monotonic() + 60
            while words not in log_path.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)

        assert "CSFCYT" not in discovery()["observations"] and not csf_read()
        with open(priors / "fhir_map.yaml", "a", encoding="utf-8") as f:
            f.write(LOCAL_CYTOLOGY)
        proc.send_signal(signal.SIGHUP)
        said("SIGHUP: the worker re-read its model, evidence and key sets")
        assert proc.poll() is None and httpx.get(base + "/healthz").status_code == 200
        assert "https://lab.hospital.example/codes|CSFCYT" in discovery()["observations"] and csf_read()
        # a re-reading that fails (its FHIR table made bad): the worker serves on with what it had (a key file made
        # bad only keeps its keys: the service's second review of s17, #14)
        (priors / "fhir_map.yaml").write_text("rows: [")
        proc.send_signal(signal.SIGHUP)
        said("SIGHUP: the re-reading failed")
        assert csf_read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    text = log_path.read_text()
    # said as what it was, a reload (s18: it read "a worker had failed to restart and the running ones served on")
    assert "stopped (SIGTERM); a reload (SIGHUP) had failed and the worker served on with what it had" in text, \
        text[-2000:]
    assert "failed to restart" not in text
    assert "a reload (SIGHUP) failed: " in text and "fhir_map.yaml" in text
    assert "Traceback" not in text and "internal error" not in text


def test_the_defaults_keep_the_specifications_token_life_and_say_the_new_ones(tmp_path):
    """The spec's 5-minute token rule stays the default (a longer life, Epic's 900 s, is configured); the body
    limit's default is 4 MB and the feedback window 30 days (#5, #6)."""
    from palsy.scripts.serve import config as C

    (tmp_path / "palsy.yaml").write_text(json.dumps({"state_dir": "state"}))
    cfg = C.load(tmp_path / "palsy.yaml", insecure_dev=True)
    assert (cfg.max_token_lifetime_seconds, cfg.max_body_bytes, cfg.feedback_window_days) == (300, 4_194_304, 30)
    (tmp_path / "palsy.yaml").write_text(json.dumps({"state_dir": "state", "feedback_window_days": 0}))
    with pytest.raises(Exception, match="feedback_window_days"):
        C.load(tmp_path / "palsy.yaml", insecure_dev=True)


def test_the_store_keeps_no_record_id_in_a_card_file(tmp_path):
    """A card's file says only until when feedback is taken (it used to name its report, whose id is its key)."""
    from palsy.scripts.serve.store import Reports

    reports = Reports(tmp_path, ttl_seconds=600, card_ttl_seconds=86400)
    card = str(uuid.uuid4())
    rid = reports.put({"patient": {"id": "Patient/p"}}, card=card)
    text = (reports.folder / f"{card}.card").read_text()
    assert rid not in text and set(json.loads(text)) == {"expires"}
    (reports.folder / f"{card}.card").write_text(rid)  # a card file of a version before s17: judged by its time
    assert reports.issued(card)


# --- a merged record (the FHIR review s17 #5): the hook may name the replaced Patient ---------------------------------

def test_a_hook_naming_a_merged_records_replaced_patient_gets_the_card(s17, keys):
    """A record system that merged Patient OLD into the one it prefetches (``link: replaces``) may still open OLD's
    chart: the hook's ``context.patientId`` is OLD. Any id of the linked Patients is this patient (the mapping's
    ``record_ids``); an id no link names stays a 422 (the FHIR review s17 #5: it had been a 422 for the replaced id
    although the mapping read the merge)."""
    b = _bundle("source-002")
    (patient,) = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"]
    patient["link"] = [{"other": {"reference": "Patient/old-chart-17"}, "type": "replaces"}]
    same = post(s17, keys, hook_body(b))
    merged = post(s17, keys, hook_body(b, pid="old-chart-17"))
    assert same.status_code == merged.status_code == 200, merged.text[:300]
    assert merged.json()["cards"][0]["extension"]["palsy"]["probability"] == \
        same.json()["cards"][0]["extension"]["palsy"]["probability"]
    other = post(s17, keys, hook_body(b, pid="someone-else"))
    assert other.status_code == 422 and "context.patientId" in other.json()["message"]
