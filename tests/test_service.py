"""``palsy serve`` tested as a client would (issue #22 items 2, 3, 5): the real server in a subprocess on a
free port, called over HTTP with httpx and signed CDS Hooks JWTs; the OpenAPI description fuzzed with
schemathesis. One server for the module (one xdist group)."""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, settings

from palsy.scripts.serve import loadtest as L
from palsy.scripts.serve.loadtest import prefetch_of
from tests.conftest import PATIENTS, REPO, run_palsy, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service")]

ISS = "https://ehr.test.example"
SANDBOX = "https://sandbox.test.example"  # a browser-based CDS client's origin (CORS)
SERVICE = "palsy-facial-palsy"
SOURCES = sorted(PATIENTS.glob("*.yaml"))
KEYS_TO_TYPES = {**L.PREFETCH_TYPES, **L.BY_REFERENCE_TYPES}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jwk(private, kid: str, alg: str | None) -> dict:
    """The public JWK of ``private``, with ``alg`` when one is given (it is optional, RFC 7517)."""
    algo = jwt.algorithms.ECAlgorithm if isinstance(private, ec.EllipticCurvePrivateKey) else jwt.algorithms.RSAAlgorithm
    named = {"alg": alg} if alg else {}
    return {**json.loads(algo.to_jwk(private.public_key())), "kid": kid, **named, "use": "sig"}


@pytest.fixture(scope="module")
def keys():
    return {"ec": (ec.generate_private_key(ec.SECP384R1()), "ehr-ec", "ES384"),
            "rsa": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "ehr-rsa", "RS384"),
            "intruder": (ec.generate_private_key(ec.SECP384R1()), "ehr-ec", "ES384"),  # same kid, another key
            # keys whose JWK names no alg (the JWKS lists them so): RSA, and ECDSA on P-256
            "rsa_bare": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "ehr-rsa-bare", "RS384"),
            "ec256_bare": (ec.generate_private_key(ec.SECP256R1()), "ehr-ec256-bare", "ES256")}


#: The module server's JWK Set: each key as (the name in ``keys``, whether its JWK names its alg).
JWKS_KEYS = (("ec", True), ("rsa", True), ("rsa_bare", False), ("ec256_bare", False))


@contextlib.contextmanager
def _serving(folder, settings: dict, *flags: str):
    """``palsy serve`` with ``settings`` as its configuration file in ``folder``, in a subprocess, ready on /healthz;
    stopped at the end. Yields the base URL, the process and the log's path."""
    port = settings["port"]
    base = f"http://127.0.0.1:{port}"
    (folder / "palsy.yaml").write_text(json.dumps(settings))
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "palsy.scripts.palsy", "serve", "--config", str(folder / "palsy.yaml"),
                             *flags], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("palsy serve did not start:\n" + (folder / "server.log").read_text())
            time.sleep(0.2)
        yield base, proc, folder / "server.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _key_set_server(served: dict):
    """An issuer's JWK Set URL on a free port of localhost, answering ``served["body"]`` (changed by the test as it
    goes); its ``shutdown`` stops it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class KeySet(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(served["body"])))
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *_):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), KeySet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def server(tmp_path_factory, keys, posterior_subtype):
    """The real server: a configuration, a JWKS file, ``palsy serve`` in a subprocess, ready on /healthz."""
    folder = tmp_path_factory.mktemp("serve")
    port = _free_port()
    jwks = [_jwk(keys[k][0], keys[k][1], keys[k][2] if named else None) for k, named in JWKS_KEYS]
    (folder / "ehr.jwks.json").write_text(json.dumps({"keys": jwks}))
    settings = {"service_url": f"http://127.0.0.1:{port}", "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}],
                "state_dir": "state", "max_body_bytes": 262144, "port": port, "cors_origins": [SANDBOX],
                "workers": 2}  # as a hospital runs it: several workers
    with _serving(folder, settings) as (base, proc, _):
        yield {"base": base, "folder": folder, "proc": proc}


def token(server, keys, path: str, key: str = "ec", headers: dict | None = None, **claims) -> str:
    private, kid, alg = keys[key]
    now = int(time.time())
    body = {"iss": ISS, "aud": server["base"] + path, "exp": now + 60, "iat": now, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, private, algorithm=alg,
                      headers={"kid": kid, "typ": "JWT", **(headers or {})})


def auth(server, keys, path: str, **kw) -> dict:
    return {"Authorization": f"Bearer {token(server, keys, path, **kw)}"}


def hook_body(bundle: dict, pid: str | None = None) -> dict:
    pre = prefetch_of(bundle)
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"patientId": pid or pre["patient"]["id"], "userId": "Practitioner/1"}, "prefetch": pre}


def now_stamp(offset_hours: int = 0, fraction: str = "") -> str:
    """The time now as an ``outcomeTimestamp`` (RFC 3339, with ``offset_hours`` as its offset): the service takes
    outcomes between the card's issue and now (second review of s17, #15)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600 * offset_hours)) + fraction
    return when + (f"{'+' if offset_hours >= 0 else '-'}{abs(offset_hours):02d}:00" if offset_hours else "Z")


def call(server, keys, body, **kw) -> httpx.Response:
    path = f"/cds-services/{SERVICE}"
    return httpx.post(server["base"] + path, json=body, headers=auth(server, keys, path, **kw), timeout=60)


def _bundle(name: str) -> dict:
    return json.loads((PATIENTS / f"{name}.fhir.json").read_text())


# --- discovery and cards ------------------------------------------------------------------------------------

def test_discovery_lists_the_patient_view_service_with_its_prefetch(server, keys):
    r = httpx.get(server["base"] + "/cds-services", headers=auth(server, keys, "/cds-services"))
    assert r.status_code == 200 and _spec_problems(r.json()) == []
    (svc,) = r.json()["services"]
    assert svc["hook"] == "patient-view" and svc["id"] == SERVICE and svc["description"] and svc["title"]
    assert set(svc["prefetch"]) == set(KEYS_TO_TYPES)
    assert svc["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|805-2" in svc["prefetch"]["observations"]
    # every filtered query names the mapping table's codes (an empty list would ask the record for nothing)
    for key in ("observations", "administrations", "orders", "procedures", "reports"):
        query = svc["prefetch"][key]
        codes = query.split("code=" if "code=" in query else "conclusion=")[1].split("&")[0]
        assert codes and all("|" in c for c in codes.split(",")), (key, query)
    assert "http://www.whocc.no/atc|L01CA02" in svc["prefetch"]["administrations"]
    assert "http://www.whocc.no/atc|L01CA02" in svc["prefetch"]["orders"]


def _spec_problems(value, where: str = "response") -> list[str]:
    """Where a CDS Hooks 2.0 response breaks "JSON elements SHALL NOT be null" or "SHALL NOT be empty" (an
    empty ``cards`` array is the one the specification allows)."""
    if value is None:
        return [f"{where} is null"]
    if isinstance(value, (str, list, dict)) and not value and where != "response.cards":
        return [f"{where} is empty"]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [p for k, v in items for p in _spec_problems(v, f"{where}.{k}" if isinstance(value, dict) else f"{where}[{k}]")]


def _card_problems(card: dict) -> list[str]:
    """The CDS Hooks 2.0 Card's rules palsy's cards are bound by (required fields, their types and values)."""
    out = []
    if not (isinstance(card.get("summary"), str) and 0 < len(card["summary"]) < 140):
        out.append("summary: required text under 140 characters")
    if card.get("indicator") not in ("info", "warning", "critical"):
        out.append("indicator: one of info, warning, critical")
    source = card.get("source")
    if not (isinstance(source, dict) and isinstance(source.get("label"), str)):
        out.append("source.label: required text")
    elif "url" in source and not str(source["url"]).startswith(("https://", "http://")):
        out.append("source.url: an absolute URL")
    for i, link in enumerate(card.get("links") or []):
        if not (isinstance(link.get("label"), str) and str(link.get("url", "")).startswith(("https://", "http://"))
                and link.get("type") in ("absolute", "smart")):
            out.append(f"links[{i}]: label, an absolute url and type absolute or smart")
    if card.get("suggestions") and not card.get("selectionBehavior"):
        out.append("selectionBehavior: required with suggestions")
    for i, reason in enumerate(card.get("overrideReasons") or []):  # a Coding; a service's reasons need a display
        if not all(isinstance(reason.get(k), str) and reason[k] for k in ("code", "system", "display")):
            out.append(f"overrideReasons[{i}]: a Coding with a code, a system and a display")
    unknown = set(card) - {"uuid", "summary", "detail", "indicator", "source", "suggestions", "selectionBehavior",
                           "overrideReasons", "links", "extension"}
    return out + [f"{k}: not a Card field" for k in sorted(unknown)]


def test_the_specification_checks_find_what_they_look_for():
    """The two checks the service's answers are read against, on answers that break each rule."""
    assert _spec_problems({"cards": []}) == []
    assert _spec_problems({"cards": [{"a": None, "b": [], "c": {"d": ""}}]}) == [
        "response.cards[0].a is null", "response.cards[0].b is empty", "response.cards[0].c.d is empty"]
    good = {"uuid": "u", "summary": "s", "indicator": "info", "source": {"label": "palsy"}}
    assert _card_problems(good) == []
    bad = {"summary": "x" * 140, "indicator": "hard-stop", "source": {"label": "l", "url": "palsy.example"},
           "links": [{"label": "l", "url": "ftp://x", "type": "absolute"}], "suggestions": [{"label": "x"}], "foo": 1,
           "overrideReasons": [{"system": "urn:x", "code": "c"}]}
    assert len(_card_problems(bad)) == 7


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_a_card_for_each_source_patient_with_the_numbers_of_palsy_posterior(server, keys, palsy, src):
    # the record's numbers (palsy posterior --fhir): a record is never a library case, so never answered with
    # one left out as the library's own file (--patient patients/source-001.yaml) is
    cli = json.loads(palsy("posterior", "--fhir", str(src.with_name(src.stem + ".fhir.json")), "--json",
                           check=True).stdout)
    assert cli["left_out_case"] is None
    r = call(server, keys, hook_body(_bundle(src.stem)))
    assert r.status_code == 200, r.text
    assert _spec_problems(r.json()) == []  # CDS Hooks 2.0: no null and no empty element
    (card,) = r.json()["cards"]
    assert _card_problems(card) == []
    ext = card["extension"]["palsy"]
    assert ext["probability"] == cli["probability"] and ext["log_odds"] == cli["log_odds"]["posterior"]
    assert ext["causes"] == {c["cause"]: c["probability"]["mean"] for c in cli["causes"]}
    assert ext["leading_cause"] == cli["leading_cause"] and ext["decision"] == cli["decision"]["action"]
    # the card's answer leaves the Shapley values out; the atypicality check must read the same
    assert ("**Atypical:**" in card["detail"]) == cli["atypical"]["flag"]
    assert len(card["summary"]) < 140 and "P(leukaemic infiltration)" in card["summary"]
    assert card["indicator"] in ("info", "warning", "critical") and card["source"]["label"]
    for words in ("The differential", "What to do now", "Decision", "Limits", "Not found in the record"):
        assert words in card["detail"]
    (link,) = card["links"]
    assert link["type"] == "absolute" and link["url"].startswith(server["base"] + "/reports/")
    if src.stem == "source-000-vignette":  # the HTML report, served by the same process
        page = httpx.get(link["url"], timeout=120)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "leukemic infiltration" in page.text.lower()


def test_a_record_whose_patient_id_is_a_library_cases_gets_the_card_of_any_other_id(server, keys):
    """A record whose Patient.id is a library case's (source-001) but whose findings differ was answered with
    that case left out of the posterior (the leave-one-out meant for the library case itself): its card now
    carries the numbers the same findings get under another id."""
    from tests.test_fhir import _renamed, library_id_record

    exts = []
    for bundle in (library_id_record(), _renamed(library_id_record(), "source-001", "hospital-7")):
        r = call(server, keys, hook_body(bundle))
        assert r.status_code == 200, r.text
        exts.append(r.json()["cards"][0]["extension"]["palsy"])
    a, b = exts
    assert (a["probability"], a["log_odds"], a["causes"]) == (b["probability"], b["log_odds"], b["causes"])


def test_an_unknown_report_is_a_json_404(server):
    r = httpx.get(server["base"] + "/reports/" + "x" * 22)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_a_bundle_with_unknown_codes_is_answered_from_what_is_known(server, keys):
    b = _bundle("source-001")
    b["entry"].append({"resource": {"resourceType": "Observation", "id": "odd", "status": "final",
                                    "subject": {"reference": "Patient/source-001"},
                                    "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
                                    "valueString": "something"}})
    b["entry"].append({"resource": {"resourceType": "Condition", "id": "odd2", "subject": {"reference": "Patient/source-001"},
                                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1234"}]}}})
    r = call(server, keys, hook_body(b))
    assert r.status_code == 200 and len(r.json()["cards"]) == 1
    assert "examine and enter" in r.json()["cards"][0]["detail"]


def test_no_card_without_a_facial_palsy(server, keys):
    b = _bundle("source-001")
    b["entry"] = [e for e in b["entry"] if not e["resource"]["id"].startswith("palsy")]
    r = call(server, keys, hook_body(b))
    assert r.status_code == 200 and r.json() == {"cards": []} and _spec_problems(r.json()) == []


def test_a_dose_given_by_medication_reference_reaches_the_card_and_its_prefetch_may_be_left_out(server, keys):
    """s15 review #12: vincristine given by medicationReference (Epic, Cerner) was 'not in the record'. Sent under
    the by-reference keys with its Medication, it is read; a client that leaves those keys out is answered, and the
    card says a dose given by reference was not read."""
    b = _bundle("source-002")
    # the record's own statement of the exposure out: the dose by reference is what says it
    b["entry"] = [e for e in b["entry"] if "recent_vincristine" not in json.dumps(e["resource"].get("code"))]
    med = {"resourceType": "Medication", "id": "vcr",
           "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "11202"}]}}
    dose = {"resourceType": "MedicationAdministration", "id": "vcr-dose", "status": "completed",
            "subject": {"reference": "Patient/source-002"}, "effectiveDateTime": "2025-01-08",
            "medicationReference": {"reference": "Medication/vcr"}}
    b["entry"] += [{"resource": dose}, {"resource": med}]
    body = hook_body(b)
    assert body["prefetch"]["administrations_by_reference"]["entry"][0]["resource"]["id"] == "vcr-dose"
    r = call(server, keys, body)
    assert r.status_code == 200
    read = r.json()["cards"][0]
    assert "vincristine" not in read["detail"].split("Not found in the record")[-1].split("\n")[0]
    for key in L.BY_REFERENCE_TYPES:
        del body["prefetch"][key]
    r = call(server, keys, body)
    assert r.status_code == 200
    unread = r.json()["cards"][0]
    # the finding by its label (s17: the card had shown the schema's identifier, recent_vincristine)
    assert "Vinca alkaloid in the 4 weeks before onset" in unread["detail"].split("Not found in the record")[-1].split("\n")[0]
    assert "was not sent, so a dose given or ordered by medicationReference or a dose of a Medication coded only " \
           "through its ingredient is not read" in unread["detail"]
    # a client of the discovery before the ingredient keys, with no vincristine in the record: told only of what it
    # left out (a second review, s16: it had been told that doses by reference were not read)
    none = {**b, "entry": [e for e in b["entry"] if e["resource"]["resourceType"] not in ("MedicationAdministration",
                                                                                         "Medication")]}
    body = hook_body(none)
    for key in ("administrations_by_ingredient", "orders_by_ingredient"):
        del body["prefetch"][key]
    older = call(server, keys, body).json()["cards"][0]["detail"]
    note = next(x for x in older.splitlines() if "was not sent" in x)
    assert "coded only through its ingredient is not read" in note and "medicationReference" not in note, note
    assert read["extension"]["palsy"]["probability"] != unread["extension"]["palsy"]["probability"]


def test_a_dose_of_a_medication_coded_by_its_product_reaches_the_card_by_its_ingredient(server, keys):
    """A Medication coded by a product code the table lacks (an RxNorm SCD, as Epic sends it) whose ingredient is
    vincristine: the discovery asks for it by medication.ingredient-code, and the card reads the dose."""
    disc = httpx.get(server["base"] + "/cds-services", headers=auth(server, keys, "/cds-services"),
                     timeout=30).json()["services"][0]["prefetch"]
    assert "medication.ingredient-code=" in disc["administrations_by_ingredient"] and "11202" in disc["orders_by_ingredient"]
    b = _bundle("source-002")
    b["entry"] = [e for e in b["entry"] if "recent_vincristine" not in json.dumps(e["resource"].get("code"))]
    rx = "http://www.nlm.nih.gov/research/umls/rxnorm"
    med = {"resourceType": "Medication", "id": "vcr-scd", "code": {"coding": [{"system": rx, "code": "999999"}]},
           "ingredient": [{"itemCodeableConcept": {"coding": [{"system": rx, "code": "11202"}]}}]}
    dose = {"resourceType": "MedicationAdministration", "id": "vcr-scd-dose", "status": "completed",
            "subject": {"reference": "Patient/source-002"}, "effectiveDateTime": "2025-01-08",
            "medicationReference": {"reference": "Medication/vcr-scd"}}
    b["entry"] += [{"resource": dose}, {"resource": med}]
    body = hook_body(b)
    assert body["prefetch"]["administrations_by_reference"] is None  # its code is not the table's
    assert body["prefetch"]["administrations_by_ingredient"]["entry"][0]["resource"]["id"] == "vcr-scd-dose"
    r = call(server, keys, body)
    assert r.status_code == 200
    detail = r.json()["cards"][0]["detail"]
    assert "vincristine" not in detail.split("Not found in the record")[-1].split("\n")[0]


def test_missing_prefetch_says_which_keys_it_needs_and_never_calls_the_record(server, keys):
    body = hook_body(_bundle("source-002"))
    del body["prefetch"]["observations"], body["prefetch"]["reports"]
    body["fhirServer"] = "https://ehr.test.example/fhir"  # not called: the service answers from the prefetch only
    r = call(server, keys, body)
    assert r.status_code == 412
    assert r.json()["error"] == "prefetch_missing" and set(r.json()["missing"]) == {"observations", "reports"}


def test_a_patient_mismatch_and_an_invalid_bundle_are_422(server, keys):
    body = hook_body(_bundle("source-002"), pid="someone-else")
    assert call(server, keys, body).status_code == 422
    body = hook_body(_bundle("source-002"))
    body["prefetch"]["patient"]["birthDate"] = "19x5"
    r = call(server, keys, body)
    assert r.status_code == 422 and r.json()["error"] == "invalid_fhir" and "birthDate" in " ".join(r.json()["problems"])


# --- bad requests: JSON bodies, never a traceback --------------------------------------------------------------

def test_bad_json_and_bad_fields_are_json_400(server, keys):
    path = f"/cds-services/{SERVICE}"
    r = httpx.post(server["base"] + path, content=b'{"hook": "patient-view",', headers={
        **auth(server, keys, path), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_json"
    r = call(server, keys, {"hook": "patient-view"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request" and "Traceback" not in r.text
    r = call(server, keys, {**hook_body(_bundle("source-002")), "hook": "order-sign"})
    assert r.status_code == 400


def test_an_oversized_body_is_413(server, keys):
    path = f"/cds-services/{SERVICE}"
    big = b'{"hook": "patient-view", "pad": "' + b"x" * 300_000 + b'"}'
    r = httpx.post(server["base"] + path, content=big, headers={**auth(server, keys, path),
                                                                  "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "too_large"


# --- only the record's system gets in ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "not_bearer", "garbage", "wrong_key", "expired", "wrong_aud", "future",
                                  "long_lived", "no_jti", "unknown_iss", "hs256", "alg_none"])
def test_requests_without_a_valid_token_get_401_and_nothing_else(server, keys, case):
    path = "/cds-services"
    now = int(time.time())
    headers = {
        "missing": {},
        "not_bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "wrong_key": auth(server, keys, path, key="intruder"),
        "expired": auth(server, keys, path, exp=now - 120, iat=now - 180),
        "wrong_aud": auth(server, keys, path, aud=server["base"] + "/cds-services/other"),
        "future": auth(server, keys, path, iat=now + 600, exp=now + 660),
        "long_lived": auth(server, keys, path, exp=now + 86400),
        "no_jti": auth(server, keys, path, jti=None),
        "unknown_iss": auth(server, keys, path, iss="https://evil.example"),
        "hs256": {"Authorization": "Bearer " + jwt.encode({"iss": ISS, "aud": server["base"] + path, "exp": now + 60,
                                                           "iat": now, "jti": "h"}, "secret-key-of-thirty-two-bytes!!",
                                                          algorithm="HS256", headers={"kid": "ehr-ec"})},
        "alg_none": {"Authorization": "Bearer " + jwt.encode({"iss": ISS, "aud": server["base"] + path, "exp": now + 60,
                                                             "iat": now, "jti": "n"}, None, algorithm="none",
                                                            headers={"kid": "ehr-ec"})},
    }[case]
    r = httpx.get(server["base"] + path, headers=headers)
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error", "message"} and r.json()["error"] == "unauthorized"
    assert r.headers.get("www-authenticate") == "Bearer"


def test_a_replayed_token_is_refused_and_rs384_is_accepted(server, keys):
    path = "/cds-services"
    h = auth(server, keys, path, key="rsa")
    assert httpx.get(server["base"] + path, headers=h).status_code == 200
    again = httpx.get(server["base"] + path, headers=h)
    assert again.status_code == 401 and "replay" in again.json()["message"]


def test_a_post_without_a_token_is_refused_before_its_body_is_read(server):
    r = httpx.post(server["base"] + f"/cds-services/{SERVICE}", content=b"{not json")
    assert r.status_code == 401


# --- feedback: append-only ------------------------------------------------------------------------------------

def issued_card(server, keys, name: str = "source-002") -> str:
    """The uuid of a card the service has just answered (for ``name``'s bundle)."""
    r = call(server, keys, hook_body(_bundle(name)))
    assert r.status_code == 200, r.text
    return r.json()["cards"][0]["uuid"]


def test_feedback_is_appended_and_never_rewritten(server, keys):
    path = f"/cds-services/{SERVICE}/feedback"
    log = server["folder"] / "state" / "feedback.jsonl"
    one = {"feedback": [{"card": issued_card(server, keys), "outcome": "accepted",
                         "outcomeTimestamp": now_stamp()}]}
    two = {"feedback": [{"card": issued_card(server, keys).upper(), "outcome": "overridden",
                         "outcomeTimestamp": now_stamp(),
                         "overrideReason": {"reason": {"system": "https://x", "code": "r1", "display": "no"},
                                            "userComment": "patient source-002 refused"}}]}
    r1 = httpx.post(server["base"] + path, json=one, headers=auth(server, keys, path))
    assert r1.status_code == 200 and r1.json() == {"recorded": 1}
    first = log.read_bytes()
    r2 = httpx.post(server["base"] + path, json=two, headers=auth(server, keys, path))
    assert r2.status_code == 200
    after = log.read_bytes()
    assert after.startswith(first) and len(after.splitlines()) == len(first.splitlines()) + 1
    last = json.loads(after.splitlines()[-1])
    assert last["outcome"] == "overridden" and last["hasComment"] is True and "source-002" not in after.decode()
    assert last["issuer"] == ISS and last["overrideReason"] == {"system": "https://x", "code": "r1"}
    assert last["card"] == two["feedback"][0]["card"].lower()  # as the card gave it: paired with its answer
    bad = httpx.post(server["base"] + path, json={"feedback": [{"card": "c", "outcome": "maybe"}]},
                     headers=auth(server, keys, path))
    assert bad.status_code == 400 and log.read_bytes() == after


def test_feedback_for_a_card_the_service_never_issued_is_refused_and_writes_nothing(server, keys):
    """A card id was checked only as a UUID: an outcome for any UUID (a card of another service, a mistyped id,
    one made up) went into the log, which ``palsy registry from-feedback`` pairs with answers. Now only the cards
    this service answered (each has its card file, shared by the workers), within their feedback window: a request
    naming none is a JSON 400 naming the field and writes nothing; one naming some is answered for each (s17
    review #5: one unknown card had refused the whole request, the valid outcome lost with it)."""
    path = f"/cds-services/{SERVICE}/feedback"
    log = server["folder"] / "state" / "feedback.jsonl"
    real = issued_card(server, keys)

    def send(*cards: str) -> httpx.Response:
        body = {"feedback": [{"card": c, "outcome": "accepted", "outcomeTimestamp": now_stamp()}
                             for c in cards]}
        return httpx.post(server["base"] + path, json=body, headers=auth(server, keys, path), timeout=30)

    before = log.read_bytes()
    made_up = str(uuid.uuid4())
    r = send(made_up)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
    got = r.json()
    assert got["error"] == "unknown_card" and "card" in got["message"] and "uuid of a card" in got["message"]
    assert got["problems"] == [f"feedback.0.card: '{made_up}' is not a card this service issued, or its feedback "
                               f"window (30 days after the card) has passed"]
    assert log.read_bytes() == before
    mixed = send(real, made_up)  # the real card's outcome is recorded, the other named
    assert mixed.status_code == 200 and mixed.json()["recorded"] == 1, mixed.text
    assert mixed.json()["unknown"] == [got["problems"][0].replace("feedback.0.", "feedback.1.")]
    lines = log.read_bytes()[len(before):].splitlines()
    assert [json.loads(x)["card"] for x in lines] == [real]
    # a report's id is no card, and a card's file opens no report
    reports = server["folder"] / "state" / "reports"
    rid = next(p.stem for p in reports.glob("*.json"))
    assert send(rid).status_code == 400 and httpx.get(f"{server['base']}/reports/{real}").status_code == 404
    # a card whose feedback window has passed is unknown
    card_file = reports / f"{real}.card"
    card_file.write_text(json.dumps({"expires": time.time() - 1}))
    after = log.read_bytes()
    assert send(real).status_code == 400 and log.read_bytes() == after


def test_a_card_is_known_to_every_worker_until_its_record_expires(tmp_path):
    """The store's side: a card's file names its record; another worker's store (the same folder) knows the card;
    an expired record, or its deletion by the purge (by the files' times), makes the card unknown; text that is
    not a UUID names no file."""
    from palsy.scripts.serve.store import Reports

    one, other = Reports(tmp_path, ttl_seconds=600), Reports(tmp_path, ttl_seconds=600)
    card = str(uuid.uuid4())
    rid = one.put({"patient": {"id": "Patient/p1"}}, card=card)
    assert other.issued(card) and other.issued(card.upper()) and one.get(rid)["card"] == card
    assert not other.issued(str(uuid.uuid4())) and not other.issued(rid) and not other.issued("../" + rid)
    assert other.get(card) is None  # a card's uuid opens no report
    an_hour_ago = time.time() - 3600
    for name in (f"{rid}.json", f"{card}.card"):
        os.utime(one.folder / name, (an_hour_ago, an_hour_ago))
    assert one.delete_expired(time.time()) == 2 and not other.issued(card) and not list(one.folder.iterdir())


def test_a_card_offers_its_override_reasons_and_feedback_must_use_them_as_offered(server, keys):
    """Every card offers palsy's override reasons (CDS Hooks 2.0: each a Coding with a system, a code and a
    display); a dismissal with one of them is logged with its code; one with a code palsy does not offer, or a
    reason given with ``accepted``, is a 400 and writes nothing (a client's own reasons are logged by system and
    code)."""
    from palsy.reports import cards

    (card,) = call(server, keys, hook_body(_bundle("source-002"))).json()["cards"]
    reasons = card["overrideReasons"]
    assert [(c["system"], c["code"]) for c in reasons] == [(cards.OVERRIDE_SYSTEM, k) for k in cards.OVERRIDE_REASONS]
    assert all(isinstance(c["display"], str) and 10 < len(c["display"]) < 100 for c in reasons)
    path = f"/cds-services/{SERVICE}/feedback"
    log = server["folder"] / "state" / "feedback.jsonl"

    def send(entry: dict) -> httpx.Response:
        body = {"feedback": [{"card": card["uuid"], "outcomeTimestamp": now_stamp(), **entry}]}
        return httpx.post(server["base"] + path, json=body, headers=auth(server, keys, path), timeout=30)

    ok = send({"outcome": "overridden", "overrideReason": {"reason": reasons[2], "userComment": "MRI done"}})
    assert ok.status_code == 200, ok.text
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["overrideReason"] == {k: reasons[2][k] for k in ("system", "code")} and last["hasComment"] is True
    assert "MRI" not in log.read_text()
    theirs = {"system": "https://ehr.test.example/reasons", "code": "x1", "display": "Local reason"}
    assert send({"outcome": "overridden", "overrideReason": {"reason": theirs}}).status_code == 200
    before = log.read_bytes()
    unknown = send({"outcome": "overridden", "overrideReason": {"reason": {**reasons[0], "code": "bored"}}})
    assert unknown.status_code == 400 and "'bored' is not a reason palsy's cards offer" in json.dumps(unknown.json())
    assert "record-incomplete" in json.dumps(unknown.json())  # the codes allowed, named
    accepted = send({"outcome": "accepted", "overrideReason": {"reason": reasons[0]}})
    assert accepted.status_code == 400 and "goes with the outcome overridden" in json.dumps(accepted.json())
    assert log.read_bytes() == before


def test_the_feedback_loop_closes_on_the_services_own_log(server, keys, palsy, tmp_path):
    """Issue 23 item 5 on the real service: each card's answer is in the feedback log (the card's id, the
    findings, P(cause); no record id), the card's outcome is paired with it, and a clinician's later
    adjudication turns the log into registry rows that carry what the tool said, whose calibration
    ``palsy check`` reports."""
    from palsy.model import registry as RG
    from palsy.model.criticism import registry as CRG

    log = server["folder"] / "state" / "feedback.jsonl"
    issued = {}
    for src in SOURCES:
        (card,) = call(server, keys, hook_body(_bundle(src.stem))).json()["cards"]
        issued[card["uuid"]] = (src.stem, card["extension"]["palsy"])
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    answers = {e["card"]: e for e in entries if e.get("kind") == "answer"}
    assert set(issued) <= set(answers)
    for card_id, (stem, ext) in issued.items():
        e = answers[card_id]
        assert e["probabilities"] == ext["causes"] and e["model"]["variant"] == ext["model"]["variant"]
        assert stem not in json.dumps(e) and "id" not in e["findings"]  # no record id, only a salted hash
    first, second = list(issued)[:2]
    path = f"/cds-services/{SERVICE}/feedback"
    offered = card["overrideReasons"][0]  # the clinician dismisses the second card with a reason the card offered
    r = httpx.post(server["base"] + path, headers=auth(server, keys, path),
                   json={"feedback": [{"card": first, "outcome": "accepted", "outcomeTimestamp": now_stamp()},
                                      {"card": second, "outcome": "overridden", "outcomeTimestamp": now_stamp(),
                                       "overrideReason": {"reason": offered}}]})
    assert r.status_code == 200
    form = tmp_path / "adjudication.csv"
    palsy("registry", "from-feedback", str(log), "--template", str(form), check=True)
    with open(form, newline="") as f:
        table = {row["card"]: row for row in csv.DictReader(f)}
    assert set(issued) <= set(table) and table[first]["outcome"] == "accepted"
    assert table[second]["outcome"] == f"overridden: {offered['code']}"
    assert float(table[first]["p_infiltration"]) == pytest.approx(issued[first][1]["causes"]["infiltration"], abs=5e-4)
    adjudicated = [{**table[c], "final_cause": "infiltration" if i == 0 else "bell", "established_by": "follow_up",
                    "follow_up_months": "6"} for i, c in enumerate(issued)]
    write_csv(form, adjudicated)
    out = tmp_path / "registry.yaml"
    palsy("registry", "from-feedback", str(log), str(form), "--site", "here", "--out", str(out), check=True)
    from palsy.model import evidence as E

    ev = E.load(REPO / "priors")
    reg = RG.read(out, ev.schema, ev.causes)
    assert len(reg.rows) == len(issued) and all(r.tool_probabilities is not None for r in reg.rows)
    cal = CRG.calibration(reg)
    assert cal["rows"] == len(issued) and 0 <= cal["brier"] <= 2


# --- under concurrency, and the logs -----------------------------------------------------------------------------

def test_concurrent_requests_are_all_answered_and_answered_alike(server, keys):
    bodies = [hook_body(_bundle(p.stem)) for p in SOURCES]

    def one(i: int):
        return i % len(bodies), call(server, keys, bodies[i % len(bodies)])

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(36)))
    assert all(r.status_code == 200 for _, r in results)
    by_patient: dict[int, set] = {}
    for i, r in results:
        by_patient.setdefault(i, set()).add(json.dumps(r.json()["cards"][0]["extension"], sort_keys=True))
    assert all(len(v) == 1 for v in by_patient.values())


def test_openapi_is_served_and_logs_hold_no_patient_data(server, keys):
    spec = httpx.get(server["base"] + "/openapi.json").json()
    assert {"/cds-services", "/cds-services/{service_id}", "/reports/{report_id}"} <= set(spec["paths"])
    path = f"/cds-services/{SERVICE}"
    refused = httpx.post(server["base"] + path, json={}, headers={"Authorization": "Bearer not.a.jwt"}, timeout=30)
    assert refused.status_code == 401
    answered = call(server, keys, hook_body(_bundle("source-001")))
    report_url = answered.json()["cards"][0]["links"][0]["url"]
    assert httpx.get(report_url, timeout=120).status_code == 200
    time.sleep(0.3)  # the log line is written once the response has gone
    text = (server["folder"] / "server.log").read_text()
    assert "POST /cds-services/" in text and "patient " in text
    assert report_url.rsplit("/", 1)[1] not in text  # a report's id is its key
    # the gate's line for each request: the route, the status, and why a call was refused or how long it took
    assert re.search(rf"POST {path} 401 \(the token is not a JWT\)", text), text[-2000:]
    assert re.search(rf"POST {path} 200 \d+\.\d ms", text) and re.search(r"GET /reports/<id> 200 \d+\.\d ms", text)
    # every worker logs (each is a new interpreter: until 5 December only the errors of a second worker showed)
    loaded = re.findall(r"^\S+ \S+ (\d+) INFO palsy serve: model loaded", text, flags=re.M)
    assert len(set(loaded)) == 2, text[:3000]
    for secret in ("source-002", "source-001", "1995-01-15"):
        assert secret not in text
    # no WebSocket: an upgrade request is answered as plain HTTP (uvicorn's ws="none"), never switched
    host, port = server["base"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /cds-services HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        status = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 ") and b" 101 " not in status + b" ", status


# --- the OpenAPI description, fuzzed --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server["base"] + "/openapi.json")


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@fuzzed.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_500(case, server, keys):
    path = case.formatted_path
    response = case.call(base_url=server["base"], headers=auth(server, keys, path), timeout=60)
    assert response.status_code < 500, (case.method, path, response.text[:300])
    ctype = response.headers.get("content-type") or ""
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    assert ctype.startswith(("application/json", "text/html")), ctype


@pytest.mark.parametrize(("workers", "preset", "expected"), [(2, None, "1"), (2, "3", "3"), (1, None, None)])
def test_several_workers_get_one_blas_thread_each_unless_set(monkeypatch, tmp_path, workers, preset, expected):
    """Workers sharing the cores each get one BLAS thread (a second one only contends with the other
    workers); an operator's own setting is kept, and one worker keeps the library's default."""
    import uvicorn

    from palsy.scripts import palsy as P

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.update(blas=os.environ.get("OPENBLAS_NUM_THREADS"),
                                                                     workers=k["workers"], http=k["http"],
                                                                     loop=k["loop"], ws=k["ws"]))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    monkeypatch.setattr(os, "environ", {**env, "HOME": str(tmp_path)})  # what the command sets stays in the test
    args = P.parser(P.available("serve")).parse_args(["serve", "--insecure-dev", "--host", "127.0.0.1",
                                                      "--workers", str(workers)])
    from palsy.scripts.commands import serve
    from palsy.scripts.serve.protocol import BoundedHttpToolsProtocol

    serve.run(args)
    # httptools with TCP_NODELAY on any loop, uvloop where it has a build, and no WebSocket upgrades
    assert seen == {"blas": expected, "workers": workers, "http": BoundedHttpToolsProtocol, "loop": "auto", "ws": "none"}


def test_a_workers_memo_holds_its_size_in_answers_however_many_records_it_mapped(palsy, tmp_path):
    """The prefetch's mappings are memoised apart from the answers: with room for two answers, two patients
    asked twice are computed once each (a shared memo let their mappings push the answers out)."""
    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE
    from palsy.model import findings as F
    from palsy.scripts.serve import config as C
    from palsy.scripts.serve.engine import Engine
    from palsy.scripts.serve.loadtest import distinct_patients

    eng = Engine.load(C.Config(service_url="http://x", state_dir=str(tmp_path), answer_cache_size=2))
    table = X.load_table()
    bundles = [XE.example_bundle(p, table) for p in distinct_patients(3)]
    for _ in range(2):
        for b in bundles[:2]:
            m = eng.mapped(b)
            assert m.onset is not None and eng.mapped(b) is m  # dated by the record: mapped once
            eng.card(F.parse_patient(m.patient, "prefetch", schema=eng.draws.schema))
    assert (eng.misses, eng.hits) == (2, 2)
    # a third patient pushes out the least recently used of each memo, and nothing else
    eng.card(F.parse_patient(eng.mapped(bundles[2]).patient, "prefetch", schema=eng.draws.schema))
    assert len(eng._cache) == len(eng._mappings) == 2
    first = F.parse_patient(eng.mapped(bundles[0]).patient, "prefetch", schema=eng.draws.schema)
    eng.card(first)
    assert eng.misses == 4


def test_the_load_tests_distinct_patients_are_all_different_and_valid():
    """The benchmark's distinct patients are each a combination no other has (so none is answered from the memo),
    every one a valid patient file, and asking for more than there are is an error, not a silent repeat."""
    from palsy.model import findings as F
    from palsy.scripts.serve.loadtest import DISTINCT_FINDINGS, distinct_patients

    n = math.prod(len(v) for v in DISTINCT_FINDINGS.values())
    pats = distinct_patients(n)
    assert len({json.dumps({k: v for k, v in p.items() if k != "id"}, sort_keys=True) for p in pats}) == n
    for p in pats[::97]:
        F.parse_patient(p, "load test")
    with pytest.raises(ValueError, match=f"at most {n}"):
        distinct_patients(n + 1)


def test_the_load_tests_rows_never_share_or_repeat_a_patient():
    """Each row's clients and each row's probe ask patients no other row or probe asks, and enough of them for a
    30 s row never to ask one twice: 20 clients without pause answered about 70 new patients a second on 2 cores
    (until 6 December that row had 576, which came round again after about ten seconds, answered from memory)."""
    from palsy.scripts.serve.loadtest import DISTINCT_FINDINGS, allotment

    n = math.prod(len(v) for v in DISTINCT_FINDINGS.values())
    rows, probes = allotment(n)
    every = [i for idx in rows + probes for i in idx]
    assert len(every) == len(set(every)) == n
    assert len(rows[0]) >= 30 * 100 and all(len(r) >= 30 * 20 for r in rows[1:])
    assert all(len(p) >= 30 * 2 + 10 for p in probes)  # the probe's two a second, and its ten more


def test_the_load_tests_probe_times_real_requests_and_counts_wrong_answers(server, keys, palsy, monkeypatch):
    """The benchmark's probe (the client whose times judge the service's bars): it times each request it sends
    to the running service, and counts a probability other than ``palsy posterior``'s as a failure."""
    monkeypatch.setattr(L, "PROBE_DELAY", 0.0)
    monkeypatch.setattr(L, "PROBE_SECONDS", 0.05)
    path = f"/cds-services/{SERVICE}"
    body = json.dumps(hook_body(_bundle("source-001")))
    right = json.loads(palsy("posterior", "--fhir", str(PATIENTS / "source-001.fhir.json"), "--json",
                             check=True).stdout)["probability"]
    wrong = {**right, "mean": right["mean"] / 2}
    probe = L.Probe(server["base"] + path, lambda: token(server, keys, path), [body, body], [right, wrong])
    probe.start()
    time.sleep(2.0)
    probe.stop.set()
    probe.join()
    n = len(probe.times_ms)
    assert n >= 4 and all(t > 0 for t in probe.times_ms)
    assert probe.failures == n // 2  # every second request expected the wrong numbers
    # refused requests (401) and an unreachable service are failures, and never end the probe early
    for url, sign in ((server["base"] + path, lambda: "not-a-token"), (f"http://127.0.0.1:{_free_port()}{path}", str)):
        probe = L.Probe(url, sign, [body], [right])
        probe.start()
        time.sleep(1.0)
        probe.stop.set()
        probe.join()
        assert len(probe.times_ms) >= 3 and probe.failures == len(probe.times_ms)



def test_the_load_tests_new_records_are_new_to_the_service_and_answered_as_their_source_patient(server, keys, palsy,
                                                                                                monkeypatch):
    """The load row without the model's cost: each request a record of its own (its Patient id renumbered
    wherever it is written, so its mapping is new), whose findings, and so its numbers, are a source patient's;
    the probe checks every answer against ``palsy posterior``'s over HTTP. And the bound its CPU figures give."""
    from palsy.model import fhir as X

    ident = "probe" + L.RECORD_ID
    records = L.known_records(ident)
    assert len(records) == len(SOURCES)
    text = json.dumps(records[1])
    seen = set()
    for n in (0, 7, 70):
        b = json.loads(L.renumbered(text, n, ident))
        m = X.map_bundle(b, source="renumbered")
        assert m.record_id == f"{ident}-{n}" and m.patient["id"] == f"Patient/{ident}-{n}"
        assert {k: v for k, v in m.patient.items() if k != "id"} == {
            k: v for k, v in X.map_bundle(_bundle(SOURCES[1].stem), source="source").patient.items() if k != "id"}
        body = json.loads(L.renumbered(json.dumps(L.hook_body(records[1])), n, ident))
        assert body["context"]["patientId"] == f"{ident}-{n}"
        seen.add(json.dumps(body["prefetch"], sort_keys=True))
    assert len(seen) == 3  # three records, not one sent three times
    expected = [json.loads(palsy("posterior", "--fhir", str(p.with_name(p.stem + ".fhir.json")), "--json",
                                 check=True).stdout)["probability"] for p in SOURCES]
    monkeypatch.setattr(L, "PROBE_DELAY", 0.0)
    monkeypatch.setattr(L, "PROBE_SECONDS", 0.05)
    path = f"/cds-services/{SERVICE}"
    probe = L.Probe(server["base"] + path, lambda: token(server, keys, path),
                    [json.dumps(L.hook_body(b)) for b in records], expected, renumber=ident)
    probe.start()
    time.sleep(2.0)
    probe.stop.set()
    probe.join()
    assert len(probe.times_ms) >= 2 * len(SOURCES) and probe.failures == 0
    # Little's law: 10 ms of CPU a request on 2 cores is 200 a second, and 20 clients then wait 100 ms each
    assert L.capacity(10.0) == pytest.approx((200.0, 100.0))
    assert L.capacity(20.0, cores=4, clients=40) == pytest.approx((200.0, 200.0))
    with pytest.raises(ValueError, match="positive"):
        L.capacity(0.0)


def test_the_load_tests_new_patients_are_judged_against_palsy_posterior(server, keys, monkeypatch):
    """The numbers the probe expects for the load test's new patients are ``palsy posterior --fhir``'s (each
    checked against the command here), the service answers them with those numbers, and numbers that differ
    from the command's stop the load test rather than judge it."""
    from palsy.model import answer as A
    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE
    table = X.load_table()
    bundles = [XE.example_bundle(p, table) for p in L.distinct_patients(1728)[700:702]]
    commands = []
    real_run = L.subprocess.run
    monkeypatch.setattr(L.subprocess, "run", lambda cmd, **kw: commands.append(cmd) or real_run(cmd, **kw))
    expected = L.expected_probabilities(bundles, check=2)  # both checked against the command itself
    assert len(commands) == 2 and all(c[3:5] == ["posterior", "--fhir"] for c in commands)
    assert expected[0] != expected[1]
    monkeypatch.setattr(L, "PROBE_DELAY", 0.0)
    monkeypatch.setattr(L, "PROBE_SECONDS", 0.05)
    path = f"/cds-services/{SERVICE}"
    probe = L.Probe(server["base"] + path, lambda: token(server, keys, path),
                    [json.dumps(L.hook_body(b)) for b in bundles], expected)
    probe.start()
    time.sleep(2.0)
    probe.stop.set()
    probe.join()
    assert len(probe.times_ms) >= 2 and probe.failures == 0
    real = A.Answer.to_dict

    def off_by_a_little(self, *args, **kw):
        d = real(self, *args, **kw)
        d["probability"]["mean"] += 1e-12
        return d

    monkeypatch.setattr(A.Answer, "to_dict", off_by_a_little)
    # the command's own output for the first bundle, as it gave it above (no second run of it)
    monkeypatch.setattr(L.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 0, stdout=json.dumps({"probability": expected[0]}), stderr=""))
    with pytest.raises(RuntimeError, match="palsy posterior gives"):
        L.expected_probabilities(bundles[:1])


def test_the_servers_connections_send_at_once(monkeypatch):
    """``no_delay`` turns Nagle's algorithm off on a real TCP connection (without it a kept-alive response's
    body waited about 40 ms for the client's delayed acknowledgement), and leaves other sockets alone."""
    from palsy.scripts.serve.protocol import BoundedHttpToolsProtocol, no_delay

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, name):
            return self.sock if name == "socket" else None

    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with client, conn:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            no_delay(Transport(conn))
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    a, b = socket.socketpair()  # not TCP: nothing to set, and no error
    with a, b:
        no_delay(Transport(a))
    no_delay(Transport(None))
    # the protocol sets it on the connection it is given, before uvicorn's own set-up
    calls = []
    monkeypatch.setattr(BoundedHttpToolsProtocol.__mro__[1], "connection_made", lambda self, t: calls.append(t))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with client, conn:
            transport = Transport(conn)
            protocol = object.__new__(BoundedHttpToolsProtocol)
            protocol.loop = type("Loop", (), {"call_later": lambda self, *a: None})()
            BoundedHttpToolsProtocol.connection_made(protocol, transport)
            assert calls == [transport] and conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_the_feedback_log_appends_one_writer_at_a_time(tmp_path):
    """An append waits while another process holds the log's lock (the lock is filelock's: no POSIX-only
    module), then writes whole lines; nothing is ever rewritten."""
    from palsy.scripts.serve.store import FeedbackLog

    log = FeedbackLog(tmp_path)
    log.append([{"card": "first"}])
    holder = subprocess.Popen([sys.executable, "-c", "import filelock, sys, time\n"
                               f"with filelock.FileLock({str(log.lock.lock_file)!r}):\n"
                               "    print('held', flush=True); time.sleep(1.5)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.perf_counter()
    log.append([{"card": "second", "note": "x" * 70_000}, {"card": "third"}])
    waited = time.perf_counter() - started
    holder.wait(timeout=30)
    assert waited > 0.5, "the append did not wait for the lock"
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["card"] for line in lines] == ["first", "second", "third"]


def test_no_module_of_palsy_imports_a_posix_only_module():
    """The package installs on Windows too (its locks are filelock's): no module imports fcntl, termios, pwd,
    grp, resource, tty or pty (the feedback log imported fcntl until 5 December)."""
    import ast

    posix_only = {"fcntl", "termios", "pwd", "grp", "resource", "tty", "pty", "posix"}
    found = []
    for folder in ("model", "reports", "scripts", "palsy"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in posix_only]
    assert not found, found


def test_the_stores_housekeeping_keeps_out_of_the_requests_way(tmp_path):
    """Expired reports are deleted in a thread of their own, by their files' times (no record is read), and
    none before it expires; the replay store finds expired tokens by an index, not by reading the table."""
    import sqlite3

    from palsy.scripts.serve.auth import ReplayStore
    from palsy.scripts.serve.store import Reports

    reports = Reports(tmp_path, ttl_seconds=600)
    old, kept = reports.put({"patient": {"id": "a"}}), reports.put({"patient": {"id": "b"}})
    reports.put_html(old, b"<html></html>")
    (reports.folder / f".{old}.1234.tmp").write_bytes(b"a write that never finished")
    cut = reports.put({"patient": {"id": "c"}})
    (reports.folder / f"{cut}.json").write_bytes(b'{"expires": 1')  # not JSON: judged by its time, not read
    an_hour_ago = time.time() - 3600
    # the old record's HTML was rendered just now (opened shortly before it expired): it goes with its record
    for name in (f"{old}.json", f".{old}.1234.tmp", f"{cut}.json"):
        os.utime(reports.folder / name, (an_hour_ago, an_hour_ago))
    reports._last_purge = 0.0
    thread = reports.purge()
    assert thread is not None and thread.name == "palsy-reports-purge"
    thread.join(timeout=30)
    assert sorted(p.name for p in reports.folder.iterdir()) == [f"{kept}.json"]
    assert reports.get(kept) is not None and reports.get(old) is None
    assert reports.purge() is None  # at most once a minute
    assert reports.delete_expired(time.time() + 599) == 0  # not before it expires
    reports.put_html(kept, b"<html></html>")
    assert reports.delete_expired(time.time() + 601) == 2 and not list(reports.folder.iterdir())

    store = ReplayStore(tmp_path / "jti.sqlite")
    assert store.first_use("iss", "one", time.time() + 60) and not store.first_use("iss", "one", time.time() + 60)
    # one token sent by many threads at once is accepted exactly once
    with ThreadPoolExecutor(16) as pool:
        firsts = list(pool.map(lambda _: store.first_use("iss", "same", time.time() + 60), range(64)))
    assert firsts.count(True) == 1
    with sqlite3.connect(tmp_path / "jti.sqlite") as db:
        plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN DELETE FROM jti WHERE exp < ?", (0.0,)))
    assert "USING INDEX jti_exp" in plan or "USING COVERING INDEX jti_exp" in plan, plan


def test_admission_refuses_what_is_beyond_its_limit_at_once_and_frees_each_place():
    """``Admission`` (pure ASGI): with ``limit`` requests in progress, one more gets a JSON 503 with
    ``Retry-After`` at once, without reaching the app (nor its token check); ``/healthz`` is always admitted;
    a request frees its place however it ends (an answer or an exception)."""
    import asyncio

    from palsy.scripts.serve.app import RETRY_AFTER_SECONDS, Admission

    reached: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def app(scope, receive, send):
            reached.append(scope["path"])
            if scope["path"] == "/boom":
                raise RuntimeError("boom")
            if scope["path"] != "/healthz":
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        gate = Admission(app, limit=2)

        async def request(path: str) -> list[dict]:
            sent: list[dict] = []

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                sent.append(message)

            await gate({"type": "http", "method": "POST", "path": path, "headers": []}, receive, send)
            return sent

        admitted = [asyncio.create_task(request(f"/cds-services/{SERVICE}")) for _ in range(2)]
        while len(reached) < 2:
            await asyncio.sleep(0)
        assert gate.in_progress == 2
        refused = await request(f"/cds-services/{SERVICE}")
        assert refused[0]["status"] == 503 and len(reached) == 2  # the app never saw it
        headers = dict(refused[0]["headers"])
        assert headers[b"retry-after"] == str(RETRY_AFTER_SECONDS).encode()
        assert headers[b"content-type"] == b"application/json"
        body = json.loads(refused[1]["body"])
        assert body["error"] == "overloaded" and "max_concurrent_requests" in body["message"]
        assert (await request("/healthz"))[0]["status"] == 200  # alive, however busy
        release.set()
        assert [r[0]["status"] for r in await asyncio.gather(*admitted)] == [200, 200]
        assert gate.in_progress == 0
        with pytest.raises(RuntimeError, match="boom"):
            await request("/boom")
        assert gate.in_progress == 0
        assert (await request(f"/cds-services/{SERVICE}"))[0]["status"] == 200

    # in a thread of its own: a module of the same worker may leave its event loop running in this one
    # (Playwright's sync API does), where asyncio.run refuses to start
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result(timeout=60)


@pytest.mark.parametrize("workers, signum", [(1, signal.SIGTERM), (2, signal.SIGTERM)])
def test_a_stop_signal_stops_the_service_after_the_request_in_progress_with_status_0(tmp_path, posterior_subtype,
                                                                                     workers, signum):
    """A service manager's stop (SIGTERM) while a card's body is half sent: the card is still answered, the
    service then ends with status 0 (systemd's clean stop; with one worker uvicorn raised the signal again into
    palsy's handler, which had made it 143) and says so, with one worker or several. SIGHUP re-reads the workers'
    start with any number of workers (s17: tests/test_service_s17.py)."""
    import socket

    port = _free_port()
    with _serving(tmp_path, {"port": port, "workers": workers, "state_dir": "state"}, "--insecure-dev") as (_, proc, log):
        body = json.dumps(hook_body(_bundle("source-001"))).encode()
        head = (f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(head + body[: len(body) // 2])
            time.sleep(0.5)  # the request is in the worker's hands
            proc.send_signal(signum)
            time.sleep(0.5)
            conn.sendall(body[len(body) // 2:])
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", answer[:300]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["cards"]
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        text = log.read_text()
        # one worker: palsy sees the signal; several: their supervisor
        assert ("palsy serve: stopped (SIGTERM)" if workers == 1 else "palsy serve: ended") in text, text[-2000:]
        assert "Traceback" not in text and "palsy: stopped" not in text and "Exception" not in text


def test_a_worker_at_its_limit_answers_503_at_once_and_then_answers_again(tmp_path, posterior_subtype):
    """The real server, one worker, ``max_concurrent_requests: 1``: of eight new patients sent at once some are
    answered and the rest refused with the JSON 503 and ``Retry-After`` sooner than the slowest answer; each
    refused one, sent again, is answered; the log says why it refused, and nothing else failed."""
    import threading

    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE
    table = X.load_table()
    bodies = [L.hook_body(XE.example_bundle(p, table)) for p in L.distinct_patients(1728)[900:908]]
    port = _free_port()
    settings = {"port": port, "workers": 1, "max_concurrent_requests": 1, "state_dir": "state",
                "cors_origins": [SANDBOX]}
    with _serving(tmp_path, settings, "--insecure-dev") as (base, _, log_path):
        url = f"{base}/cds-services/{SERVICE}"
        start = threading.Barrier(len(bodies))

        def send(body):
            start.wait()
            return httpx.post(url, json=body, headers={"Origin": SANDBOX}, timeout=60)

        with ThreadPoolExecutor(len(bodies)) as pool:
            got = list(pool.map(send, bodies))
        statuses = [r.status_code for r in got]
        assert set(statuses) == {200, 503}, statuses
        refused = [r for r in got if r.status_code == 503]
        assert all(r.json()["error"] == "overloaded" and r.headers["retry-after"] == "1" for r in refused)
        # a browser-based client may read the refusal and when to retry (CORS is outside the admission)
        assert all(r.headers["access-control-allow-origin"] == SANDBOX for r in got)
        assert all("Retry-After" in r.headers["access-control-expose-headers"] for r in refused)
        slowest = max(r.elapsed.total_seconds() for r in got if r.status_code == 200)
        assert max(r.elapsed.total_seconds() for r in refused) < slowest
        for body, r in zip(bodies, got, strict=True):
            if r.status_code == 503:
                again = httpx.post(url, json=body, timeout=60)
                assert again.status_code == 200 and again.json()["cards"]
        log = log_path.read_text()
        assert log.count("503 (1 requests in progress, the limit)") == len(refused)
        assert "internal error" not in log and "Traceback" not in log


def test_a_worker_answers_its_cards_first_come_first_served(tmp_path, posterior_subtype, monkeypatch):
    """The service's app in process: seven new patients sent 50 ms apart are answered by at most
    ``CARD_THREADS`` threads at once, each card begun in the order its request came (anyio wakes a limiter's
    waiters in order). With the routes' common pool (40 threads) every card had run at once, sharing the
    worker's CPU: a new patient's card among ten memoised ones took ten times its own time
    (docs/service.md)."""
    import threading

    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE
    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import config as C
    from palsy.scripts.serve.engine import Engine

    table = X.load_table()
    bodies = [L.hook_body(XE.example_bundle(p, table)) for p in L.distinct_patients(1728)[1200:1208]]
    order, running, most = [], [0], [0]
    lock = threading.Lock()
    card = Engine.card

    def watched(self, patient):
        with lock:
            order.append(patient.id)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)  # long beside the requests' spacing: the later ones wait while these run
        try:
            return card(self, patient)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(Engine, "card", watched)
    service = A.create_app(C.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path), insecure_dev=True))
    arrived = []

    async def app(scope, receive, send):  # the order in which requests reach the service, not the client's
        if scope["type"] == "http":
            which = dict(scope["headers"]).get(b"x-patient")
            if which:
                arrived.append("Patient/" + which.decode())
        await service(scope, receive, send)

    with _protocol_serving(app, lifespan="on") as base:
        url = f"{base}/cds-services/{SERVICE}"
        assert httpx.post(url, json=bodies[0], timeout=120).status_code == 200  # the first: the worker warmed
        order.clear()

        def send(i):
            time.sleep(0.05 * i)
            return httpx.post(url, json=bodies[i], headers={"X-Patient": bodies[i]["context"]["patientId"]},
                              timeout=120)

        with ThreadPoolExecutor(len(bodies)) as pool:
            got = list(pool.map(send, range(1, len(bodies))))
    assert [r.status_code for r in got] == [200] * (len(bodies) - 1)
    assert most[0] == A.CARD_THREADS < len(bodies) - 1
    assert len(arrived) == len(bodies) - 1 and order == arrived


def test_a_memoised_card_never_waits_behind_a_new_patients_answer(tmp_path, posterior_subtype, monkeypatch):
    """Two lanes: while both threads of new cards compute (each answer made to take 1.5 s here), a card already
    answered is served from memory by the lane of memoised cards at once, three times over; the new ones are
    answered after. With one lane it had waited for them. The lane is chosen by the prefetch's key in the
    mapping memo (``Engine.answered``), which knows a record answered before and not a new one."""
    from palsy.model import brief as B
    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE
    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import config as C
    from palsy.scripts.serve.engine import Engine

    table = X.load_table()
    known, *new = [L.hook_body(XE.example_bundle(p, table)) for p in L.distinct_patients(1728)[1300:1303]]
    quick = B.brief

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return quick(*args, **kwargs)

    app = A.create_app(C.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path), insecure_dev=True))
    with _protocol_serving(app, lifespan="on") as base:
        url = f"{base}/cds-services/{SERVICE}"
        first = httpx.post(url, json=known, timeout=120)
        assert first.status_code == 200
        monkeypatch.setattr(B, "brief", slow)
        with ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            pending = [pool.submit(httpx.post, url, json=body, timeout=120) for body in new]
            time.sleep(0.3)  # both new cards computing
            again = []
            for _ in range(3):
                t = time.monotonic()
                r = httpx.post(url, json=known, timeout=120)
                again.append((r, time.monotonic() - t))
            new_done = [f.result() for f in pending]
        assert all(f.status_code == 200 for f in new_done) and time.monotonic() - started >= 1.5
        for r, seconds in again:
            assert r.status_code == 200 and seconds < 0.5, seconds
            assert r.json()["cards"][0]["extension"] == first.json()["cards"][0]["extension"]
    engine = Engine.__new__(Engine)  # the key alone: the same record, the same key, whatever its keys' order
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "x"}}]}
    same = {"entry": [{"resource": {"id": "x", "resourceType": "Patient"}}], "resourceType": "Bundle"}
    assert engine.bundle_key(bundle) == engine.bundle_key(same) != engine.bundle_key({**bundle, "type": "collection"})


def test_a_bad_configuration_names_every_problem_and_starts_nothing(tmp_path):
    """``palsy serve`` with a configuration of wrong types, a misspelt key, out-of-range numbers and broken rules
    exits 2 naming each (the file, the key, the value, what is allowed), with no traceback, before a port opens
    (a port given as text was an internal error until 5 December)."""
    port = _free_port()
    bad = {"service_url": "ftp://x", "port": "abc", "host": ["a"],
           "issuers": [{"iss": ISS}, {"iss": "b", "jwks_url": "http://localhost.evil.example/jwks"},
                       {"iss": "c", "jwks_file": "keys\u0000.json"}],
           "max_concurent_requests": 4, "max_concurrent_requests": 0, "workers": "two", "algorithms": ["HS256"],
           "state_dir": 7, "require_palsy": "no", "variant": "subtyp",
           "clock_skew_seconds": 3_000_000, "max_token_lifetime_seconds": 86_400, "log_salt_file": "salt\u0000",
           "priors": "no-such-folder",
           "cors_origins": ["https://ok.example", "*", "http://plain.example", "https://x.example/path",
                            "https://Sandbox.example", "https://x.example:443", "https://x.example:99999"]}
    (tmp_path / "palsy.yaml").write_text(json.dumps(bad))
    proc = run_palsy("serve", "--config", str(tmp_path / "palsy.yaml"), "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and str(tmp_path / "palsy.yaml") in proc.stderr
    text = " ".join(proc.stderr.split())
    for expected in ("'port': 'abc': must be a whole number", "field 'host': must be text",
                     "'workers': 'two': must be a whole number", "'max_concurrent_requests': 0: must be >= 1",
                     "unknown key 'max_concurent_requests' (did you mean 'max_concurrent_requests'?)",
                     "'state_dir': 7: must be text", "'require_palsy': 'no': must be true or false",
                     f"issuers[1] ({ISS}): give exactly one of jwks_file, jwks_url",
                     "algorithms: ['HS256'] not allowed", "service_url: 'ftp://x' is not an http(s) URL",
                     "variant: 'subtyp' is not allowed (did you mean 'subtype'?)",
                     "field 'cors_origins[2]': '*': is not a web origin",
                     "field 'cors_origins[3]': 'http://plain.example': is not a web origin",
                     "field 'cors_origins[4]': 'https://x.example/path': is not a web origin",
                     "field 'cors_origins[5]': 'https://Sandbox.example': is not a web origin",
                     "field 'cors_origins[6]': 'https://x.example:443': is not a web origin",
                     "field 'cors_origins[7]': 'https://x.example:99999': is not a web origin",
                     # a skew beyond the hour a used jti is kept would let an expired token be used again
                     "'clock_skew_seconds': 3000000: must be <= 300",
                     "'max_token_lifetime_seconds': 86400: must be <= 3600",
                     # keys in clear from another host (a prefix test let this through)
                     "issuers[2] (b): jwks_url 'http://localhost.evil.example/jwks': give an https URL",
                     # a NUL in a path was an internal error
                     "field 'issuers[3].jwks_file': 'keys\\x00.json': contains a NUL character",
                     "'log_salt_file': 'salt\\x00': contains a NUL character",
                     # read from the configuration's folder, as every path in it (it was the working folder)
                     f"priors: {tmp_path / 'no-such-folder'} is not a folder"):
        assert expected in text, (expected, proc.stderr)
    assert "none configured" not in text  # the one issuer given is named, not called missing
    assert not (tmp_path / "7").exists()
    with socket.socket() as s:  # nothing listens
        assert s.connect_ex(("127.0.0.1", port)) != 0
    proc = run_palsy("serve", "--insecure-dev", "--host", "0.0.0.0", "--port", "70000", "--workers", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--port: 70000; give a port from 1 to 65535" in proc.stderr
    assert "--insecure-dev: allowed only when bound to localhost, not '0.0.0.0'" in proc.stderr
    assert "--workers: 0; give a whole number from 1 to 64" in proc.stderr  # it was taken for no flag
    (tmp_path / "keys.yaml").write_text("yes: 2\nport: 8080\n")  # YAML reads `yes` as true: a key that is not text
    proc = run_palsy("serve", "--config", str(tmp_path / "keys.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "key True: every key is text; allowed: service_url," in proc.stderr


def test_a_port_in_use_is_bad_input_before_the_model_loads(tmp_path, keys):
    """A port another process holds (or a host that is not this machine's) is named at once, exit 2, before
    the workers load the model (it was an internal error after it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        t = time.monotonic()
        proc = run_palsy("serve", "--insecure-dev", "--port", str(port))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"port {port} on 127.0.0.1: cannot be bound" in proc.stderr and "give a free port" in proc.stderr
        assert "model loaded" not in proc.stderr and time.monotonic() - t < 30
    # a good configuration but for its host (its key set and state folder are checked too, since s16)
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    (tmp_path / "host.yaml").write_text(json.dumps({"host": "no-such-host.invalid", "state_dir": "state",
                                                    "issuers": [{"iss": ISS, "jwks_file": "keys.json"}]}))
    proc = run_palsy("serve", "--config", str(tmp_path / "host.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "host: 'no-such-host.invalid' is not an address of this machine" in proc.stderr


def test_no_clock_skew_allowed_outlives_the_replay_stores_memory():
    """A used jti is kept for an hour after its expiry; the largest clock skew (and token life) a configuration
    may give stays inside it, so no token is accepted again once its jti is forgotten."""
    from palsy.scripts.serve import auth
    from palsy.scripts.serve import config as C

    def most(field: str) -> int:
        return next(m.le for m in C.ConfigFile.model_fields[field].metadata if getattr(m, "le", None) is not None)

    assert most("clock_skew_seconds") < auth.KEEP_USED_SECONDS
    assert most("max_token_lifetime_seconds") <= auth.KEEP_USED_SECONDS


def test_a_browser_client_of_a_configured_origin_is_answered_and_no_other(server, keys):
    """CORS (CDS Hooks 2.0: browser-based CDS clients, such as the CDS Hooks sandbox, need it): a preflight
    from a configured origin is allowed without a token (it carries none), for GET and POST with the
    Authorization and Content-Type headers, without credentials; one from another origin, or for another
    method or header, is a JSON 400. The card, a 401 and discovery carry the origin for that page (and expose
    ``WWW-Authenticate``), never for another origin."""
    path = f"/cds-services/{SERVICE}"
    url = server["base"] + path
    pre = {"Origin": SANDBOX, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = httpx.options(url, headers=pre, timeout=30)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SANDBOX
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers
    for bad in ({**pre, "Origin": "https://elsewhere.example"}, {**pre, "Access-Control-Request-Method": "DELETE"},
                {**pre, "Access-Control-Request-Headers": "authorization, x-secret"}):
        r = httpx.options(url, headers=bad, timeout=30)
        assert r.status_code == 400 and r.json()["error"] == "cors_refused", (bad, r.text)
        assert (r.headers.get("access-control-allow-origin") == SANDBOX) == (bad["Origin"] == SANDBOX)
    body = hook_body(_bundle("source-001"))
    r = httpx.post(url, json=body, headers={**auth(server, keys, path), "Origin": SANDBOX}, timeout=60)
    assert r.status_code == 200 and r.json()["cards"] and r.headers["access-control-allow-origin"] == SANDBOX
    r = httpx.post(url, json=body, headers={"Origin": SANDBOX}, timeout=60)  # no token: the page may read why
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert r.headers["access-control-allow-origin"] == SANDBOX
    assert "WWW-Authenticate" in r.headers["access-control-expose-headers"]
    r = httpx.post(url, json=body, headers={**auth(server, keys, path), "Origin": "https://elsewhere.example"},
                   timeout=60)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers  # a browser there reads nothing
    r = httpx.get(server["base"] + "/cds-services", headers={**auth(server, keys, "/cds-services"), "Origin": SANDBOX},
                  timeout=30)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SANDBOX


def test_without_cors_origins_no_cross_origin_call_is_allowed(tmp_path):
    """The default: no configured origin, no CORS layer (an EHR's server calls the service, not a browser): a
    preflight passes to the routes, which have no OPTIONS (a JSON 405, no CORS header), where with
    ``cors_origins`` it is answered. Requests through the app's whole stack in process (unsigned calls allowed
    as with --insecure-dev; the model is not loaded: no answer is asked for)."""
    import asyncio

    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import config as C

    apps = {origins: A.create_app(C.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path), insecure_dev=True,
                                           cors_origins=origins)) for origins in ((), (SANDBOX,))}
    # StartFailures (outermost) sees the lifespan only: a worker's failed start in one line (s16)
    assert [m.cls for m in apps[()].user_middleware] == [A.StartFailures, A.InternalErrors, A.Admission, A.Gate,
                                                         A.LargeBodies, A.BodyLimit]
    assert [m.cls for m in apps[(SANDBOX,)].user_middleware] == [A.StartFailures, A.Cors, A.InternalErrors, A.Admission,
                                                                 A.Gate, A.LargeBodies, A.BodyLimit]
    preflight = {"Origin": SANDBOX, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}

    async def ask(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://palsy") as client:
            return await client.options(f"/cds-services/{SERVICE}", headers=preflight)

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (see the admission test)
        plain, browsers = (pool.submit(asyncio.run, ask(apps[k])).result(timeout=60) for k in ((), (SANDBOX,)))
    assert plain.status_code == 405 and plain.json()["error"] == "method_not_allowed"
    assert "access-control-allow-origin" not in plain.headers
    assert browsers.status_code == 200 and browsers.headers["access-control-allow-origin"] == SANDBOX


def test_an_internal_error_is_a_json_500_a_browser_can_read_and_its_log_line_quotes_nothing(server, keys):
    """A fault the routes do not expect (here the feedback log cannot be written: a folder stands where the file
    should be, as a full or broken disk would) is a JSON 500 with an event id, carries the CORS headers as
    every other error does (the CORS layer is outside the error layer), and is logged as its event, route,
    type and where it was raised: no words of the exception (a path, a value of the record) and no traceback."""
    state = server["folder"] / "state"
    card = issued_card(server, keys, "source-000-vignette")  # before the log is made unwritable
    log_file, aside = state / "feedback.jsonl", state / "feedback.jsonl.aside"
    log_path = server["folder"] / "server.log"
    before = log_path.read_text()
    kept = log_file.exists()
    if kept:
        log_file.rename(aside)
    log_file.mkdir()
    try:
        body = hook_body(_bundle("source-001"))
        pid = body["context"]["patientId"]
        path = f"/cds-services/{SERVICE}"
        r = httpx.post(server["base"] + path, json=body, headers={**auth(server, keys, path), "Origin": SANDBOX},
                       timeout=60)
        feedback = httpx.post(server["base"] + path + "/feedback", headers={**auth(server, keys, path + "/feedback"),
                                                                            "Origin": SANDBOX},
                              json={"feedback": [{"card": card, "outcome": "accepted",
                                                  "outcomeTimestamp": now_stamp()}]}, timeout=60)
    finally:
        log_file.rmdir()
        if kept:
            aside.rename(log_file)
    for got in (r, feedback):
        assert got.status_code == 500 and got.headers["content-type"] == "application/json", got.text
        assert got.json()["error"] == "internal" and "nothing was written to the record" in got.json()["message"]
        assert got.headers["access-control-allow-origin"] == SANDBOX
    events = [re.search(r"event (\w+)", got.json()["message"]).group(1) for got in (r, feedback)]
    deadline = time.monotonic() + 10
    while not all(e in log_path.read_text() for e in events) and time.monotonic() < deadline:
        time.sleep(0.1)
    new = log_path.read_text()[len(before):]
    lines = [line for line in new.splitlines() if "internal error" in line]
    assert len(lines) == 2, new
    for event, line in zip(events, lines, strict=True):
        assert f"internal error {event} on POST /cds-services/{SERVICE}" in line
        assert "IsADirectoryError at palsy.scripts.serve.store:" in line and " append < " in line
    assert "Traceback" not in new and "feedback.jsonl" not in new and pid not in new
    # the service answers again once the log can be written
    again = call(server, keys, body)
    assert again.status_code == 200 and again.json()["cards"]


def test_the_error_layer_answers_once_and_never_raises_further():
    """``InternalErrors`` (pure ASGI): an exception before a response starts becomes the JSON 500; after it
    started, nothing more is sent (a second start would break the connection's protocol) and the exception
    goes no further in either case (the server would log its traceback)."""
    import asyncio

    from palsy.scripts.serve.app import InternalErrors

    async def fails_before(scope, receive, send):
        raise KeyError("Jane Doe")

    async def fails_after(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise KeyError("Jane Doe")

    async def run(app) -> list[dict]:
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await InternalErrors(app)({"type": "http", "method": "GET", "path": "/x", "headers": []}, receive, send)
        return sent

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (see the admission test)
        before = pool.submit(asyncio.run, run(fails_before)).result(timeout=30)
        after = pool.submit(asyncio.run, run(fails_after)).result(timeout=30)
    assert [m["type"] for m in before] == ["http.response.start", "http.response.body"]
    assert before[0]["status"] == 500 and json.loads(before[1]["body"])["error"] == "internal"
    assert b"Jane" not in before[1]["body"]
    assert after == [{"type": "http.response.start", "status": 200, "headers": []}]


# --- what one client may cost, and what the logs may be made to say -------------------------------------------

def test_a_request_leaves_the_admission_count_when_its_response_starts():
    """``Admission`` (pure ASGI): a request whose response has started no longer counts, however long its
    client takes to read it (sending waits on the client); with a limit of one, a client that never reads
    held the place and every other request got 503 until its socket closed."""
    import asyncio

    from palsy.scripts.serve.app import Admission

    async def scenario() -> None:
        read = asyncio.Event()

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        gate = Admission(app, limit=1)

        async def request(send) -> None:
            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            await gate({"type": "http", "method": "GET", "path": "/openapi.json", "headers": []}, receive, send)

        async def never_reads(message):  # the body waits until the client reads: it does not
            if message["type"] == "http.response.body":
                await read.wait()

        sent: list[dict] = []

        async def reads(message):
            sent.append(message)

        slow = asyncio.create_task(request(never_reads))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not slow.done() and gate.in_progress == 0
        await request(reads)
        assert sent[0]["status"] == 200
        read.set()
        await slow
        assert gate.in_progress == 0

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (see the admission test)
        pool.submit(asyncio.run, scenario()).result(timeout=30)


def _raw(base: str, receive_buffer: int | None = None) -> socket.socket:
    """A plain TCP connection to ``base``; with ``receive_buffer``, its kernel's receive buffer fixed to about
    that many bytes (set before connecting: after, the window can still grow to the system's maximum)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    return sock


def _read_all(sock: socket.socket, seconds: float = 30) -> bytes:
    """What ``sock`` receives until its server closes or resets it, or for ``seconds`` at most (then
    :class:`TimeoutError`: the server kept it open)."""
    chunks = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the connection was still open after {seconds} s")
            sock.settimeout(left)
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def test_clients_that_never_read_hold_no_place_of_the_workers(tmp_path, posterior_subtype):
    """The real server, one worker allowed one request at a time: a client that asks for a report many times
    over (pipelined, no token needed) and never reads leaves the worker answering others; until 5 December the
    request whose answer waited on the client held its place until the socket closed, and every other request
    got 503 (``/healthz`` still said ok). Sixteen reports: more than the kernel holds for the connection."""
    port = _free_port()
    settings = {"port": port, "workers": 1, "max_concurrent_requests": 1, "state_dir": "state"}
    with _serving(tmp_path, settings, "--insecure-dev") as (base, _, log_path):
        r = httpx.post(f"{base}/cds-services/{SERVICE}", json=hook_body(_bundle("source-001")), timeout=60)
        report = r.json()["cards"][0]["links"][0]["url"].removeprefix(base)
        size = len(httpx.get(base + report, timeout=120).content)  # rendered once; then served as stored
        assert size * 16 > 4 << 20, size  # more than the socket buffers (up to 4 MB) and the transport's hold
        with _raw(base, receive_buffer=4096) as sock:
            sock.sendall(f"GET {report} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 16)
            time.sleep(1.5)
            for path in ("/cds-services", "/openapi.json"):
                got = httpx.get(base + path, timeout=10)
                assert got.status_code == 200, (path, got.text[:200])
        time.sleep(0.5)
        log = log_path.read_text()
        # and the answer cut off when the client goes is no internal error (uvicorn's pipelining wrote on)
        assert "overloaded" not in log and "internal error" not in log and "Traceback" not in log, log[-2000:]


@contextlib.contextmanager
def _protocol_serving(app, lifespan: str = "off"):
    """The service's HTTP protocol alone, under uvicorn in a thread of this process (its module's bounds may be
    patched), around a plain ASGI ``app`` (or the service's own, with ``lifespan="on"``); yields the base URL."""
    import threading

    import uvicorn

    from palsy.scripts.serve.protocol import BoundedHttpToolsProtocol

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=BoundedHttpToolsProtocol,
                                           loop="auto", lifespan=lifespan, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 180
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_connection_that_leaves_its_answer_unread_or_sends_no_head_is_closed(monkeypatch):
    """The protocol's time bounds (here a second or less): an answer left unread is dropped and its connection
    closed, and the request's task ends (it waited for the client without end); a connection that sends part
    of a head and stops gets a JSON 408 and is closed; one that sends nothing is closed."""
    import threading

    from palsy.scripts.serve import protocol as P

    monkeypatch.setattr(P, "WRITE_STALL_SECONDS", 1.0)
    monkeypatch.setattr(P, "HEAD_SECONDS", 1.0)
    piece, pieces = b"x" * (1 << 20), 16
    finished = threading.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(piece) * pieces).encode())]})
        for _ in range(pieces):  # each waits while the client has not read the one before
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    with _protocol_serving(app) as base:
        with _raw(base, receive_buffer=4096) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(3)  # reads nothing
            got = _read_all(sock, seconds=10)
        assert got.startswith(b"HTTP/1.1 200") and len(got) < len(piece) * pieces, len(got)
        assert finished.wait(10)
        with _raw(base) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ab")
            t = time.monotonic()
            got = _read_all(sock)
        assert got.startswith(b"HTTP/1.1 408") and time.monotonic() - t < 10, got[:200]
        assert json.loads(got.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
        with _raw(base) as sock:
            t = time.monotonic()
            assert _read_all(sock) == b"" and time.monotonic() - t < 10


def test_a_request_head_over_its_bound_is_a_json_431_and_the_server_answers_on(server):
    """The real server: a header of 1 MB (no token needed) is refused once the head passes 64 kB, a JSON 431,
    and the connection closed; until 5 December httptools kept any header whole (300 MB cost a worker 440 MB)
    and the request was answered. A URL over the bound likewise; a head under the bound is answered."""
    from palsy.scripts.serve.protocol import MAX_HEAD_BYTES

    for head in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", b"GET /healthz?" + b"a" * 100_000):
        with _raw(server["base"]) as sock:
            sock.sendall(head)
            try:
                for _ in range(16):
                    sock.sendall(b"a" * 65536)
                sock.sendall(b"\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):  # refused before the end: as it should be
                pass
            got = _read_all(sock)
        assert got.startswith(b"HTTP/1.1 431 "), got[:200]
        answer = json.loads(got.split(b"\r\n\r\n", 1)[1])
        assert answer["error"] == "headers_too_large" and str(MAX_HEAD_BYTES) in answer["message"]
    fits = httpx.get(server["base"] + "/healthz", headers={"X-Fits": "a" * (MAX_HEAD_BYTES // 2)})
    assert fits.status_code == 200


CORS_HEADERS = ("access-control-allow-origin", "access-control-expose-headers", "access-control-allow-credentials",
                "vary")


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers (lower-case names) of a raw HTTP/1.1 response."""
    lines = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}


def _cors(headers) -> dict[str, str]:
    return {k: v for k, v in dict(headers).items() if k.lower() in CORS_HEADERS}


def _refused(base: str, head: bytes, then: bytes = b"") -> bytes:
    """What the server answers on a connection that sends ``head`` and then ``then`` (a megabyte when None)."""
    with _raw(base) as sock:
        sock.sendall(head)
        try:
            sock.sendall(then)
        except (BrokenPipeError, ConnectionResetError):  # refused before the end: as it should be
            pass
        return _read_all(sock)


def test_the_protocols_own_refusals_carry_the_cors_headers_of_every_other_answer(server):
    """The real server, with ``cors_origins``: the answers its HTTP protocol writes before the app runs (431 head
    too large, 400 unparsable) carried no CORS header, where every other error does, so a browser-based CDS
    client could not read why it failed. They now carry the app's CORS layer's headers for the request's Origin
    (the same as the app's own 404 for that Origin), only for an allowed origin; none for another origin, or for
    an Origin the head had not reached."""
    base = server["base"]
    big = b"a" * (1 << 20)
    for origin, allowed in ((SANDBOX, True), ("https://elsewhere.example", False)):
        apps = httpx.get(base + "/no-such-route", headers={"Origin": origin})
        assert apps.status_code == 404 and ("access-control-allow-origin" in apps.headers) is allowed
        want = _cors(apps.headers)
        o = origin.encode()
        for status, head, then in (
                (431, b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: " + o + b"\r\nX-Big: ", big),
                (400, b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: " + o + b"\r\nNot a header\r\n\r\n", b"")):
            got = _refused(base, head, then)
            code, headers = _head(got)
            assert code == status and headers["content-type"] == "application/json", got[:300]
            assert _cors(headers) == want, (status, origin, headers)
            if allowed:
                assert headers["access-control-allow-origin"] == SANDBOX and "Origin" in headers["vary"]
                assert "WWW-Authenticate" in headers["access-control-expose-headers"]
            else:
                assert "access-control-allow-origin" not in headers
    # the Origin after the header that passes the bound was never read: the headers of an answer to no Origin
    # (the app's CORS layer adds Vary: Origin to every answer), none that allows an origin
    no_origin = _cors(httpx.get(base + "/no-such-route").headers)
    assert "access-control-allow-origin" not in no_origin
    code, headers = _head(_refused(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + big,
                                   b"\r\nOrigin: " + SANDBOX.encode() + b"\r\n\r\n"))
    assert code == 431 and _cors(headers) == no_origin
    # bytes that begin no request carry none that allows an origin either (no request's Origin to answer)
    code, headers = _head(_refused(base, b"\x00\x01 not HTTP\r\nOrigin: " + SANDBOX.encode() + b"\r\n\r\n"))
    assert code == 400 and "access-control-allow-origin" not in headers


def test_a_refusals_origin_is_read_from_the_head_as_the_app_reads_it():
    """The head's lines as the app's parser gives them: names in lower case, values without leading blanks but
    with trailing ones (an Origin with a trailing blank is no allowed origin, for the app as for a refusal);
    nothing without a request line, nothing from the first line that is not a header on (a parser reads
    nothing after its error), and no unfinished line."""
    from palsy.scripts.serve.protocol import head_lines

    head = (b"GET / HTTP/1.1\r\nHost: x\r\nORIGIN:\t https://a.example \r\nOrigin : https://b.example\r\n"
            b"X-After: the error\r\nX-Cut: unfini")
    assert head_lines(head) == [(b"host", b"x"), (b"origin", b"https://a.example ")]
    assert head_lines(b"GET / HTTP/1.1\r\nOrigin: https://a.example\r\n\r\nbody: x\r\n") == \
        [(b"origin", b"https://a.example")]
    for nothing in (b"GET / HTTP/1.1\r\nOrigin: https://a.ex", b"", b"\x00\x01 not HTTP\r\nOrigin: https://a\r\n",
                    b"GET / HTTP/1.1\r\n folded\r\nOrigin: https://a\r\n", b"GET / HTTP/1.1\r\nX: a\x01\r\nOrigin: b\r\n"):
        assert head_lines(nothing) == [], nothing


def test_a_slow_head_from_an_allowed_origin_is_a_408_it_can_read(tmp_path, posterior_subtype, monkeypatch):
    """The service's own app (its lifespan hands the protocol its CORS layer) under the service's protocol, its
    head bound a second: a head that stops after its Origin gets the JSON 408 with the CORS headers the app's
    answers carry for that origin, and one from another origin none."""
    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import config as C
    from palsy.scripts.serve import protocol as P

    monkeypatch.setattr(P, "HEAD_SECONDS", 1.0)
    app = A.create_app(C.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path), insecure_dev=True,
                                cors_origins=(SANDBOX,)))
    with _protocol_serving(app, lifespan="on") as base:
        want = _cors(httpx.get(base + "/no-such-route", headers={"Origin": SANDBOX}).headers)
        assert want["access-control-allow-origin"] == SANDBOX
        for origin, expected in ((SANDBOX, want), ("https://elsewhere.example", None)):
            with _raw(base) as sock:
                # the head stops right after its Origin (httptools had not handed that header over yet)
                sock.sendall(b"POST /cds-services HTTP/1.1\r\nHost: x\r\nOrigin: " + origin.encode() + b"\r\n")
                got = _read_all(sock, seconds=15)
            code, headers = _head(got)
            assert code == 408 and json.loads(got.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
            if expected is None:
                assert "access-control-allow-origin" not in headers
            else:
                assert _cors(headers) == expected


def test_requests_sent_far_ahead_of_their_answers_close_the_connection(server):
    """HTTP/1.1 pipelining, bounded: a client that sends 40 requests at once gets at most the bound's answers and
    the connection closed (each request sent ahead was queued, a socket read at a time, without a bound)."""
    from palsy.scripts.serve.protocol import MAX_PIPELINED

    with _raw(server["base"]) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 40)
        got = _read_all(sock)
    assert got.count(b"HTTP/1.1 200") <= min(MAX_PIPELINED + 1, 17), got.count(b"HTTP/1.1 200")
    with _raw(server["base"]) as sock:  # a few ahead are answered
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        assert _read_all(sock).count(b"HTTP/1.1 200") == 4


def test_a_path_cannot_write_a_line_of_its_own_in_the_log(server):
    """Every path logged has its control characters, spaces and backslashes escaped: a URL with ``%0A`` (no
    token needed) wrote a second log line that read as a card's, and one with ``%0D%0A`` a line of its own."""
    log = server["folder"] / "server.log"
    before = len(log.read_text())
    forged = "1999-01-01 21:10:05,108 26573 INFO patient 00000000deadbeef: card forged critical"
    r = httpx.get(server["base"] + "/cds-services/x%0A" + forged.replace(" ", "%20"))
    assert r.status_code == 401
    assert httpx.get(server["base"] + "/nope%0d%0aFORGED-LINE%E2%80%A8x%5C").status_code == 404
    time.sleep(0.5)
    new = log.read_text()[before:]
    assert "card\\x20forged\\x20critical 401" in new and "FORGED-LINE" in new, new
    assert not any(line.startswith((forged[:10], "FORGED")) for line in new.splitlines()), new
    assert "/cds-services/x\\x0a1999-01-01\\x2021:10:05" in new and "/nope\\x0d\\x0aFORGED-LINE\\u2028x\\x5c 404" in new


def test_the_feedback_log_keeps_bounded_codes_and_never_a_clients_words(server, keys):
    """An outcome's logged fields are bounded and none is free text: the card and suggestion ids are UUIDs (at
    most 20 suggestions), the time is RFC 3339, a reason is kept by its system and code (never its display),
    each bounded; anything else is a 400 that writes nothing. The issuer of the token is kept. Until 5 December
    a display of 200,000 characters naming a patient, and a card id of any text, were logged as sent."""
    path = f"/cds-services/{SERVICE}/feedback"
    log = server["folder"] / "state" / "feedback.jsonl"
    card = issued_card(server, keys)
    stamp = now_stamp(1, ".52")

    def send(**entry) -> httpx.Response:
        one = {"card": card, "outcome": "overridden", "outcomeTimestamp": stamp, **entry}
        return httpx.post(server["base"] + path, json={"feedback": [one]}, headers=auth(server, keys, path), timeout=30)

    theirs = {"system": "https://ehr.test.example/reasons", "code": "x1", "display": "Pt John Smith MRN 1234567"}
    ok = send(overrideReason={"reason": theirs, "userComment": "Jane Doe refused"})
    assert ok.status_code == 200, ok.text
    last = json.loads(log.read_text().splitlines()[-1])
    assert last == {"received": last["received"], "service": SERVICE, "card": card, "outcome": "overridden",
                    "outcomeTimestamp": stamp, "issuer": ISS,
                    "overrideReason": {"system": theirs["system"], "code": "x1"}, "hasComment": True}
    before = log.read_bytes()
    words = "Pt John Smith MRN 1234567 DOB 1970-01-01: "
    for bad in ({"card": "not-a-card-we-issued"}, {"card": words},
                {"overrideReason": {"reason": {**theirs, "display": words + "x" * 200_000}}},
                {"overrideReason": {"reason": {**theirs, "code": words * 3}}},
                {"overrideReason": {"reason": {**theirs, "system": words}}},
                {"outcome": "accepted", "acceptedSuggestions": [{"id": "Pt Jane Doe MRN 7654321 " * 4000}]},
                {"outcome": "accepted", "acceptedSuggestions": [{"id": str(uuid.uuid4())} for _ in range(21)]},
                {"outcomeTimestamp": words}, {"outcomeTimestamp": "2026-01-03"}):
        r = send(**bad)
        assert r.status_code == 400 and r.json()["error"] == "bad_request", (bad, r.text[:300])
    assert log.read_bytes() == before


def test_a_chunked_body_over_the_limit_is_413(server, keys):
    """A body sent chunked (no Content-Length) over the limit is the documented 413 ``too_large``: FastAPI's
    body reader made the limit's exception a 400 "There was an error parsing the body"."""
    path = f"/cds-services/{SERVICE}"

    def chunks():
        yield b'{"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "a"}, "pad": "'
        for _ in range(40):
            yield b"a" * 10_000
        yield b'"}'

    r = httpx.post(server["base"] + path, content=chunks(), headers={**auth(server, keys, path),
                                                                    "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text[:300]
    assert "262144" in r.json()["message"]


def _signed(private, alg: str, kid: str, claims: dict) -> str:
    """A JWS signed by ``private`` with ``alg``'s hash, whatever the key's curve (PyJWT signs only what fits)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(private.sign(head, ec.ECDSA({"256": hashes.SHA256(), "384": hashes.SHA384()}[alg[2:]])))
    size = (private.curve.key_size + 7) // 8
    return (head + b"." + b64(r.to_bytes(size, "big") + s.to_bytes(size, "big"))).decode()


def test_a_key_without_alg_serves_the_algorithms_of_its_kind_and_no_other(server, keys):
    """A JWK's ``alg`` is optional (RFC 7517): an RSA key without it verifies RS384 tokens (PyJWT bound it to
    RS256, and every RS384 token of it was a 401), an EC P-256 key without it verifies none of the service's
    algorithms (ES384 needs P-384), and a key that names its alg serves that alg only."""
    path = "/cds-services"
    url = server["base"] + path

    def status(authorization: str) -> tuple[int, str]:
        r = httpx.get(url, headers={"Authorization": authorization}, timeout=30)
        return r.status_code, r.json().get("message", "")

    assert status(f"Bearer {token(server, keys, path, key='rsa_bare')}")[0] == 200
    now = int(time.time())
    claims = {"iss": ISS, "aud": url, "exp": now + 60, "iat": now}
    rsa_bare, rsa_kid, _ = keys["rsa_bare"]
    ec_key, ec_kid, _ = keys["ec"]
    # an ES384 token naming the bare RSA key, and an RS384 token naming the EC key: not their kind
    code, why = status("Bearer " + jwt.encode({**claims, "jti": uuid.uuid4().hex}, ec_key, algorithm="ES384",
                                              headers={"kid": rsa_kid}))
    assert code == 401 and "does not fit its key" in why
    code, why = status("Bearer " + jwt.encode({**claims, "jti": uuid.uuid4().hex}, rsa_bare, algorithm="RS384",
                                              headers={"kid": ec_kid}))
    assert code == 401 and "is not its key's" in why
    # ES384 on the bare P-256 key's curve
    p256, p256_kid, _ = keys["ec256_bare"]
    code, why = status("Bearer " + _signed(p256, "ES384", p256_kid, {**claims, "jti": uuid.uuid4().hex}))
    assert code == 401 and "does not fit its key" in why
    # the named RSA key (RS384) refuses a token of another alg it could verify: configured algorithms only
    code, _ = status("Bearer " + jwt.encode({**claims, "jti": uuid.uuid4().hex}, keys["rsa"][0], algorithm="RS256",
                                            headers={"kid": keys["rsa"][1]}))
    assert code == 401


def test_a_keys_kind_decides_which_algorithms_it_serves():
    """``auth.key_for`` on every pairing of the kinds of key (with and without their alg) and the asymmetric
    algorithms a configuration may allow: a key serves an algorithm only when it names it, or names none and
    its kty and curve are what the algorithm needs."""
    from palsy.scripts.serve import auth as AU
    from palsy.scripts.serve.config import ASYMMETRIC

    privates = {"RSA": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                "P-256": ec.generate_private_key(ec.SECP256R1()), "P-384": ec.generate_private_key(ec.SECP384R1()),
                "P-521": ec.generate_private_key(ec.SECP521R1())}
    fits = {"RSA": {a for a in ASYMMETRIC if a[:2] in ("RS", "PS")}, "P-256": {"ES256"}, "P-384": {"ES384"},
            "P-521": {"ES512"}}
    for kind, private in privates.items():
        for named in (None, *sorted(fits[kind])):
            key = jwt.PyJWK(_jwk(private, "k", named))
            for alg in ASYMMETRIC:
                serves = alg in fits[kind] and named in (None, alg)
                if serves:
                    assert AU.key_for(key, alg).algorithm_name == alg
                else:
                    with pytest.raises(AU.AuthError):
                        AU.key_for(key, alg)
    secret = jwt.PyJWK({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"})
    for alg in ASYMMETRIC:  # a symmetric key never verifies anything
        with pytest.raises(AU.AuthError):
            AU.key_for(secret, alg)


def test_the_mapping_memo_keeps_what_the_service_reads_and_not_the_records_resources(tmp_path):
    """A memoised mapping is the few fields the route reads (the findings, what is not found, the notes, the
    onset, whether a card is due), not the whole mapping: a prefetch with 1,250 resources the table does not
    read kept about 0.46 MB per entry, 4,096 entries per worker."""
    import pickle

    from palsy.model import fhir as X
    from palsy.scripts.serve.engine import Engine, Mapped

    table = X.load_table()
    eng = Engine(draws=None, tables=None, decision_settings=None, guidance=(), evidence=None, fhir_table=table,
                 cache_size=4, load_seconds=0.0)
    bundle = _bundle("source-001")
    plain = X.map_bundle(bundle, table, source="prefetch")
    bundle["entry"] += [{"resource": {"resourceType": "Basic", "id": f"b{i:05d}" + "x" * 55, "code": {"text": "a"}}}
                        for i in range(1250)]
    m = eng.mapped(bundle)
    assert eng.mapped(bundle) is m and list(eng._mappings.values()) == [m]
    assert isinstance(m, Mapped) and len(pickle.dumps(m)) < 8_000, len(pickle.dumps(m))
    assert (m.patient, list(m.not_found), list(m.notes), m.onset, m.has_palsy, m.has_leukaemia) == (
        plain.patient, plain.not_found, plain.notes, plain.onset, plain.has_palsy, plain.has_leukaemia)


def test_the_load_tests_clients_call_in_step_or_at_random_moments(tmp_path):
    """The load test's random pacing ('~1'): each client waits a random (exponential) time, one second on
    average, never the same twice; run in a subprocess (locust patches the standard library with gevent on
    import)."""
    import subprocess
    import sys

    (tmp_path / "load.json").write_text(json.dumps({"bodies": [], "expected": []}))
    code = ("import os, statistics\n"
            "from palsy.scripts.serve import locustfile as L\n"
            "w = L._wait_time()\n"
            "xs = [w(None) for _ in range(4000)]\n"
            "print(round(statistics.mean(xs), 2), min(xs) > 0, len(set(xs)) == len(xs))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PALSY_LOAD": str(tmp_path / "load.json"), "PALSY_LOAD_PACING": "~1"})
    assert proc.returncode == 0, proc.stderr
    mean, positive, varied = proc.stdout.split()
    assert 0.9 < float(mean) < 1.1 and positive == "True" and varied == "True", proc.stdout


def test_a_worker_keeps_the_memory_of_its_answers_on_glibc():
    """The allocator setting that spares a card's answer about 5,300 page faults (engine.keep_freed_memory): taken
    on Linux with glibc, as here and on CI; elsewhere it is a no-op that says so."""
    import platform

    from palsy.scripts.serve.engine import keep_freed_memory

    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory() is True
    else:
        assert keep_freed_memory() is False


# --- s16 review: start-up, tokens, key sets and bodies ------------------------------------------------------------

def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_configuration_without_state_dir_is_refused_unless_insecure_dev(tmp_path, keys, monkeypatch):
    """s16 S2: without ``state_dir`` the replay store, the reports and the feedback log lived in a new temporary
    folder each start, so a used token was accepted again after a restart. A configuration must name it (exit 2,
    saying why, before a port opens); ``--insecure-dev`` may go without it, with a warning."""
    port = _free_port()
    (tmp_path / "ehr.jwks.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    (tmp_path / "palsy.yaml").write_text(json.dumps({"issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}],
                                                     "port": port}))
    proc = run_palsy("serve", "--config", str(tmp_path / "palsy.yaml"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    text = " ".join(proc.stderr.split())
    assert f"{tmp_path / 'palsy.yaml'}: invalid input" in text and "state_dir: not given" in text
    for why in ("replay protection", "report links", "feedback log", "must survive a restart"):
        assert why in text, (why, proc.stderr)
    assert not _listening(port)
    # --insecure-dev keeps a temporary folder, and says what that costs (uvicorn not started here)
    import uvicorn

    from palsy.scripts import palsy as P
    from palsy.scripts.commands import serve

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(os, "environ", {**os.environ, "TMPDIR": str(tmp_path)})
    monkeypatch.setattr(serve.tempfile, "tempdir", str(tmp_path))
    args = P.parser(P.available("serve")).parse_args(["serve", "--insecure-dev", "--host", "127.0.0.1",
                                                      "--port", str(port)])
    import io
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert serve.run(args) == 0
    said = " ".join(err.getvalue().split())
    assert "WARNING: no state_dir: the replay store, the reports and the feedback log are in a temporary folder" in said
    assert "a used token is accepted again after a restart" in said
    # and the folder is removed when the service stops (291 had piled up in /tmp: a second review, s16)
    folder = re.search(r"temporary folder \((.+?)\), removed when it stops", said)[1]
    assert folder.startswith(str(tmp_path)) and not os.path.exists(folder)


@pytest.mark.parametrize("case", ["not_json", "no_keys", "keys_not_a_list", "hmac_only", "reports_a_file",
                                  "replay_store_a_folder", "priors_env_missing", "priors_env_a_file"])
def test_a_start_up_problem_is_named_before_a_port_opens(tmp_path, keys, case):
    """s16 S5: a JWK Set file that is not JSON, has no key, is not a set, or holds HMAC keys only; a state folder
    whose members are of the wrong kind; a bad ``$PALSY_PRIORS``: each failed every worker's start with a
    traceback (exit 3, or 0 with several workers) or started a service that refused every token. Now: exit 2,
    the file and what is wrong, no traceback, nothing listening."""
    port = _free_port()
    jwks = tmp_path / "ehr.jwks.json"
    good = {"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}
    hmac = {"keys": [{"kty": "oct", "k": "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE", "alg": "HS384", "kid": "h"}]}
    content = {"not_json": "not json", "no_keys": '{"keys": []}', "keys_not_a_list": '{"keys": {"a": 1}}',
               "hmac_only": json.dumps(hmac)}.get(case, json.dumps(good))
    jwks.write_text(content)
    state = tmp_path / "state"
    state.mkdir()
    if case == "reports_a_file":
        (state / "reports").write_text("")
    if case == "replay_store_a_folder":
        (state / "jti.sqlite").mkdir()
    env = {"PALSY_PRIORS": str(tmp_path / "no-such-folder")} if case == "priors_env_missing" else \
        {"PALSY_PRIORS": str(jwks)} if case == "priors_env_a_file" else None
    (tmp_path / "palsy.yaml").write_text(json.dumps({"issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}],
                                                     "state_dir": "state", "port": port, "workers": 2}))
    proc = run_palsy("serve", "--config", str(tmp_path / "palsy.yaml"), env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "model loaded" not in proc.stderr
    problem = {"not_json": f"jwks_file {jwks}: not JSON: Expecting value (line 1, column 1)",
               "no_keys": f"jwks_file {jwks}: has no key that can be read (The JWK Set did not contain any keys)",
               "keys_not_a_list": f"jwks_file {jwks}: is not a JWK Set",
               "hmac_only": f"jwks_file {jwks}: has no key for ES384/RS384 (its keys: oct)",
               "reports_a_file": f"{state / 'reports'} is not a folder",
               "replay_store_a_folder": f"{state / 'jti.sqlite'} is not a file",
               "priors_env_missing": f"$PALSY_PRIORS: '{tmp_path / 'no-such-folder'}' is not a folder",
               "priors_env_a_file": f"$PALSY_PRIORS: '{jwks}' is not a folder"}[case]
    assert problem in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2, proc.stderr  # the source, and the one problem
    assert not _listening(port)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_never_exits_0_when_its_workers_failed_to_start(tmp_path, workers):
    """s16 S5: with several workers, a worker that failed to start made uvicorn's supervisor stop and ``palsy
    serve`` say "ended" with status 0 (a clean stop to systemd), after a traceback per worker. A failure the checks
    before the port cannot see (here injected into the model's load) now ends it with status 1 and one line per
    worker, no traceback."""
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('PALSY_TEST_BREAK_WORKER'):\n"
        "    from palsy.scripts.serve import engine\n"
        "    def broken(cls, config):\n"
        "        raise RuntimeError('injected: the model cannot be loaded')\n"
        "    engine.Engine.load = classmethod(broken)\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    port = _free_port()
    (tmp_path / "palsy.yaml").write_text(json.dumps({"state_dir": "state", "port": port, "workers": workers}))
    proc = run_palsy("serve", "--config", str(tmp_path / "palsy.yaml"), "--insecure-dev",
                     env={"PYTHONPATH": path, "PALSY_TEST_BREAK_WORKER": "1"}, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "palsy serve: ended" not in proc.stderr
    assert "palsy serve: not started: a worker failed to start (worker " in proc.stderr
    assert "RuntimeError: injected: the model cannot be loaded); nothing was served" in proc.stderr
    assert not _listening(port)


def test_a_token_whose_dates_are_not_numeric_dates_or_whose_jti_is_empty_is_401(server, keys):
    """s16 S4 and U14: a correctly signed token whose exp, iat or nbf is an integer of 401 digits passed PyJWT and
    overflowed float(): a 500. Now a 401 naming the claim; text dates too. An empty jti was taken once and then
    shared by every such token: refused. typ is compared without case (RFC 7515)."""
    path = "/cds-services"
    now = int(time.time())
    huge = 10**400
    for claims, claim in (({"exp": huge}, "exp"), ({"iat": huge}, "iat"), ({"nbf": huge}, "nbf"),
                          ({"iat": str(now)}, "iat"), ({"exp": -huge}, "exp")):
        r = httpx.get(server["base"] + path, headers=auth(server, keys, path, **claims))
        assert r.status_code == 401, (claims, r.text)
        assert r.json()["message"].startswith(f"{claim} must be a NumericDate"), r.text
    r = httpx.get(server["base"] + path, headers=auth(server, keys, path, jti=""))
    assert r.status_code == 401 and "jti is empty" in r.json()["message"]
    for typ in ("jwt", "application/jwt", "application/JWT"):  # the media type's full form too (RFC 7515 4.1.9)
        r = httpx.get(server["base"] + path, headers=auth(server, keys, path, headers={"typ": typ}))
        assert r.status_code == 200, (typ, r.text)
    r = httpx.get(server["base"] + path, headers=auth(server, keys, path, headers={"typ": "application/json"}))
    assert r.status_code == 401 and "typ must be JWT" in r.text


def test_healthz_answers_head_as_get(server):
    """s16 U14: a probe's ``HEAD /healthz`` got 405."""
    r = httpx.head(server["base"] + "/healthz")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.content == b""


def test_a_body_with_a_key_given_twice_or_json_python_cannot_read_is_a_json_400_saying_what(server, keys):
    """s16 S6, S7, U2: a member name given twice in a prefetch was read last-one-wins (a positive CSF cytology
    followed by a negative one under the same key vanished); a number of 5001 digits, JSON nested 100000 deep and
    a gzip body got "There was an error parsing the body". Each is now a JSON 400 that says what is wrong, and
    where for a key given twice, never a value of the body."""
    path = f"/cds-services/{SERVICE}"
    body = hook_body(_bundle("source-002"))
    pid = body["context"]["patientId"]
    text = json.dumps(body)
    obs = body["prefetch"]["observations"]["entry"]
    i = next(n for n, e in enumerate(obs) if "valueCodeableConcept" in e["resource"])
    value = json.dumps(obs[i]["resource"]["valueCodeableConcept"])
    twice = text.replace(f'"valueCodeableConcept": {value}',
                         f'"valueCodeableConcept": {value}, "valueCodeableConcept": {value}', 1)
    assert twice != text

    def post(content: bytes, **headers: str) -> httpx.Response:
        return httpx.post(server["base"] + path, content=content, timeout=60,
                          headers={**auth(server, keys, path), "Content-Type": "application/json", **headers})

    r = post(twice.encode())
    assert r.status_code == 400 and r.json()["error"] == "bad_json", r.text
    assert r.json()["message"] == (f"the request body is not valid JSON: prefetch.observations.entry[{i}].resource "
                                   f"(resourceType Observation): the key 'valueCodeableConcept' is given twice in one "
                                   f"object; JSON readers differ on which one counts, so give each key once")
    for content, headers, says in (
            (text.replace('"hookInstance"', '"pad": ' + "7" * 5001 + ', "hookInstance"', 1).encode(), {},
             "a number of more than 4300 digits"),
            (b"[" * 100_000 + b"]" * 100_000, {}, "nested too deep"),
            (text.replace('"hookInstance"', '"pad": NaN, "hookInstance"', 1).encode(), {}, "NaN is not a JSON number"),
            (__import__("gzip").compress(text.encode()), {"Content-Encoding": "gzip"},
             "Content-Encoding gzip is not accepted; send the body uncompressed"),
            (b'{"hook": "patient-view",', {}, "not JSON: Expecting property name enclosed in double quotes")):
        r = post(content, **headers)
        assert r.status_code == 400 and r.json()["error"] == "bad_json", (says, r.text)
        assert r.json()["message"].startswith("the request body is not valid JSON: ") and says in r.json()["message"]
        assert pid not in r.text
    assert call(server, keys, body).status_code == 200  # the same body, each key once, is answered
    # a coding that compresses nothing, a client's slip that was answered before the body was read strictly, still is
    # (a second review, s16); one that compresses is refused even in a list
    body_once = json.dumps(body).encode()
    for coding in ("utf-8", "none", "identity", "8bit"):
        assert post(body_once, **{"Content-Encoding": coding}).status_code == 200, coding
    r = post(__import__("gzip").compress(body_once), **{"Content-Encoding": "identity, gzip"})
    assert r.status_code == 400 and "is not accepted; send the body uncompressed" in r.json()["message"]


def test_a_key_set_url_that_serves_no_key_set_is_a_503_and_a_used_token_stays_used_after_a_restart(
        tmp_path, keys, posterior_subtype):
    """s16 S4: an issuer's ``jwks_url`` answering with something that is not a JWK Set (an HTML error page, no
    key, keys that are not a list) turned every call of that issuer into a 500; now a JSON 503 that says the
    issuer's key set is unavailable, logged in one line. And (S2) the replay store is the state folder's: a token
    used before a restart is refused after it."""
    served = {"body": b""}
    httpd = _key_set_server(served)
    other = "https://other-ehr.test.example"
    port = _free_port()
    (tmp_path / "ehr.jwks.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    settings = {"service_url": f"http://127.0.0.1:{port}", "state_dir": "state", "port": port,
                "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"},
                            {"iss": other, "jwks_url": f"http://127.0.0.1:{httpd.server_port}/jwks"}]}
    srv = {"base": f"http://127.0.0.1:{port}"}
    used = auth(srv, keys, "/cds-services", exp=int(time.time()) + 280)
    try:
        with _serving(tmp_path, settings) as (base, _, log_path):
            # and a key set that is not an object ([], null, a string: these had been 401 a token; second review)
            bodies = (b"<html>502 Bad Gateway</html>", b'{"keys": []}', b'{"keys": "x"}', b"[]", b"null", b'"down"')
            for body in bodies:
                served["body"] = body
                h = auth(srv, keys, "/cds-services", iss=other, headers={"kid": "k-" + uuid.uuid4().hex[:8]})
                r = httpx.get(base + "/cds-services", headers=h)
                assert r.status_code == 503 and r.json()["error"] == "keys_unavailable", (body, r.text)
                assert "the issuer's key set is unavailable" in r.json()["message"]
            assert httpx.get(base + "/cds-services", headers=used).status_code == 200
            log = log_path.read_text()
            assert "Traceback" not in log and "internal error" not in log
            assert log.count("GET /cds-services 503 (the issuer's key set is unavailable") == len(bodies), log
        with _serving(tmp_path, settings) as (base, _, _):
            again = httpx.get(base + "/cds-services", headers=used)
            assert again.status_code == 401 and "replay" in again.json()["message"]
    finally:
        httpd.shutdown()


def test_a_service_url_is_a_url_of_scheme_host_port_and_path_only(tmp_path):
    """s16 U12, U13: a ``service_url`` with a query, a fragment, a user and password, or a space made every
    audience and report link malformed (and sent the password in every card's link); refused at the check.
    ``--host ::1`` announced ``http://::1:8080``, now ``http://[::1]:8080``."""
    from palsy.model import findings as F
    from palsy.scripts.serve import config as C

    for url, says in (("http://127.0.0.1:1?x=1", "has a query or a fragment"),
                      ("http://127.0.0.1:1/#f", "has a query or a fragment"),
                      ("http://user:pw@127.0.0.1:1", "holds a user name or password"),
                      ("http://127.0.0.1:1/a b", "contains a space"),
                      ("http://:1/a", "has no host"),
                      ("http://127.0.0.1:x", "is not a URL")):
        (tmp_path / "palsy.yaml").write_text(json.dumps({"service_url": url, "state_dir": "state"}))
        with pytest.raises(F.InputError) as got:
            C.load(tmp_path / "palsy.yaml", insecure_dev=True)
        assert any(p.startswith(f"service_url: {url!r} {says}") for p in got.value.problems), got.value.problems
    cfg = C.load(None, host="::1", port=8081, insecure_dev=True)
    assert cfg.service_url == "http://[::1]:8081"
    (tmp_path / "palsy.yaml").write_text(json.dumps({"service_url": "https://palsy.hospital.example/cds/",
                                                     "state_dir": "state"}))
    assert C.load(tmp_path / "palsy.yaml", insecure_dev=True).service_url == "https://palsy.hospital.example/cds"


def test_a_worker_imports_what_its_reports_need_when_it_starts(tmp_path, posterior_subtype):
    """s16 U15: ``GET /reports/{id}`` imported the report's modules on the first report, so files replaced under
    a running service (an upgrade in place) made every report a 500 while cards went on. A worker's start now
    imports them."""
    code = ("import asyncio, sys\n"
            "from palsy.scripts.serve import app as A, config as C\n"
            f"app = A.create_app(C.Config(service_url='http://127.0.0.1:1', state_dir={str(tmp_path)!r}, "
            "insecure_dev=True))\n"
            "before = [m in sys.modules for m in ('palsy.reports.context', 'palsy.reports.render')]\n"
            "async def start():\n"
            "    async with app.router.lifespan_context(app):\n"
            "        print(before, [m in sys.modules for m in ('palsy.reports.context', 'palsy.reports.render')])\n"
            "asyncio.run(start())\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[False, False] [True, True]"


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
def test_a_failed_restart_after_sighup_is_said_and_the_operators_stop_is_still_status_0(tmp_path, keys,
                                                                                      posterior_subtype):
    """A second review, s16: with two workers, SIGHUP restarts them; a restart that fails (its key set file made bad)
    keeps the old workers serving, and the operator's SIGTERM had then ended with status 1, 'not started ... nothing
    was served'. It is the service's normal end, status 0, with the failed restart said. A key set file with a
    byte-order mark is read by the workers as the start-up check reads it (it had passed the check and failed
    every worker)."""
    port = _free_port()
    jwks = tmp_path / "ehr.jwks.json"
    jwks.write_bytes(b"\xef\xbb\xbf" + json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}).encode())
    settings = {"service_url": f"http://127.0.0.1:{port}", "state_dir": "state", "port": port, "workers": 2,
                "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}]}
    with _serving(tmp_path, settings) as (base, proc, log_path):
        srv = {"base": base}
        assert httpx.get(base + "/cds-services", headers=auth(srv, keys, "/cds-services")).status_code == 200
        deadline = time.monotonic() + 60
        while log_path.read_text().count("worker ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        jwks.write_text("not json")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "failed" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200  # the old workers serve on
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
    said = log_path.read_text()
    assert "a worker had failed to restart and the running ones served on" in said and "nothing was served" not in said


def test_a_key_the_issuer_withdraws_stops_being_accepted_when_its_cached_set_expires(tmp_path, keys):
    """A second review, s16: keys fetched from a jwks_url were cached for the worker's life (cache_keys), so a key
    the issuer had withdrawn was accepted until a restart. Keys are read from the cached set, which expires."""
    from palsy.scripts.serve import auth as AU
    from palsy.scripts.serve import config as CF

    served = {"body": json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}).encode()}
    httpd = _key_set_server(served)
    try:
        cfg = CF.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path),
                        issuers=(CF.Issuer(iss=ISS, jwks_url=f"http://127.0.0.1:{httpd.server_port}/jwks"),))
        v = AU.Verifier(cfg)
        srv = {"base": "http://127.0.0.1:1"}
        assert v.verify(f"Bearer {token(srv, keys, '/cds-services')}", [srv["base"] + "/cds-services"])["iss"] == ISS
        served["body"] = json.dumps({"keys": [_jwk(keys["rsa"][0], "ehr-rsa", "RS384")]}).encode()  # ec withdrawn
        v.key_sets[ISS].lifespan = 0.01  # its 5 minutes, passed
        time.sleep(0.05)
        v.key_sets[ISS]._tried = -math.inf  # and the 10 s between two fetches
        with pytest.raises(AU.AuthError, match="kid is not a key of its issuer"):
            v.verify(f"Bearer {token(srv, keys, '/cds-services')}", [srv["base"] + "/cds-services"])
    finally:
        httpd.shutdown()
