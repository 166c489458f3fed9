"""``scripts/benchmark.py --routes serve``: the service under load, measured with locust.

The real server (``palsy serve``, 2 workers, signed JWTs from a generated issuer key) is started from
cold (its cold start: launch to a ready ``/healthz``), then 20 locust users call the patient-view service
with no think time and at one call a second each, for the source patients again and again (the memoised path)
and for distinct patients (every request a new combination of findings: the model's own cost; each of the
three distinct rows has patients of its own, so none was answered, and memoised, by the row before), and for
new records of the source patients without pause (each request a record the service has not mapped, whose
answer is memoised: every cost of a new patient's request but the model's). At one
call a second the clients call either in step (locust's pacing: started within the same second, they stay in
phase, so that every second brings a burst of twenty new patients, about 0.45 s of both cores' work) or at
random moments (a Poisson stream a client, one call a second on average after each answer, from a random
first moment: independent clinicians opening records). Median and 99th percentile of the
response times, the number of requests and of failures (any status but 200, or numbers other than
``palsy posterior``'s) are printed against docs/design.md's bars (100 ms median, 300 ms p99).

Beside locust, a probe (:class:`Probe`) sends a request of the same kind every half second from a plain client
in this process and times it itself, and checks every answer against ``palsy posterior``'s numbers: for the
source patients from the command, for the new patients from the function the command calls, in this process
before the server starts (:func:`expected_probabilities`, the first of each row checked against the
command). Locust's 20 users run in one Python process on the same 2 cores as the server, and their own CPU
enters the times they report: 20 users calling ``/healthz`` (which answers in well under a millisecond) at
one call a second read about 40 ms, and memoised cards read 130 ms in locust while the probe read 14 ms
during the same seconds (5 December). The bars are judged on the probe (the service's latency under the
load), and locust's figures are printed beside it.

Each row also prints the CPU a request took, the server's (its workers') and locust's, and what that allows on
2 cores (:func:`capacity`): at most 2,000 ms of CPU a second, so 20 clients without pause wait at least 20
divided by that throughput (Little's law). A median bar of 100 ms there asks for 10 ms of CPU per request, the
client's included.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = "palsy-facial-palsy"
PREFETCH_TYPES = {"patient": "Patient", "conditions": "Condition", "observations": "Observation",
                  "administrations": "MedicationAdministration", "orders": "MedicationRequest",
                  "procedures": "Procedure", "reports": "DiagnosticReport"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The keys of the doses given or ordered by ``medicationReference`` (``app.OPTIONAL_PREFETCH``), with the
#: Medications they name, as a record answers their chained search with ``_include``.
BY_REFERENCE_TYPES = {"administrations_by_reference": "MedicationAdministration",
                      "orders_by_reference": "MedicationRequest",
                      "administrations_by_ingredient": "MedicationAdministration",
                      "orders_by_ingredient": "MedicationRequest"}


def prefetch_of(bundle: dict) -> dict:
    """The prefetch a record system would send for the discovery's templates, from a collection bundle: each key's
    searchset (None when it matches nothing); a dose given by reference under its own key, with its Medication."""
    res = [e["resource"] for e in bundle["entry"]]

    def searchset(found: list[dict]) -> dict | None:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]} if found else None

    pre: dict = {}
    for key, rt in PREFETCH_TYPES.items():
        found = [r for r in res if r["resourceType"] == rt and "medicationReference" not in r]
        pre[key] = found[0] if key == "patient" else searchset(found)
    meds = {f"Medication/{r.get('id')}": r for r in res if r["resourceType"] == "Medication"}

    def medication(dose: dict) -> str:  # 'Medication/<id>' of a reference, relative or absolute
        ref = str(dose["medicationReference"].get("reference") or "")
        return "Medication/" + ref.rsplit("Medication/", 1)[-1] if "Medication/" in ref else ref

    for key, rt in BY_REFERENCE_TYPES.items():
        found = [r for r in res if r["resourceType"] == rt and "medicationReference" in r
                 and _by_ingredient(meds.get(medication(r))) == key.endswith("_ingredient")]
        named = {medication(r) for r in found}
        pre[key] = searchset(found + [m for ref, m in meds.items() if ref in named]) if found else None
    return pre


@functools.cache
def _medication_codes() -> frozenset[tuple[str, str]]:
    from palsy.model import fhir as X

    return frozenset((r.system, r.code) for r in X.load_table().rows if r.role == "medication")


def _by_ingredient(med: dict | None) -> bool:
    """Whether a record finds a dose by its Medication's ingredient only: its code is none of the table's, an
    ingredient's is (the key whose chained search, medication.code or medication.ingredient-code, matches it)."""
    if med is None:
        return False
    codes = _medication_codes()

    def matched(concept: dict | None) -> bool:
        return any((c.get("system"), c.get("code")) in codes for c in (concept or {}).get("coding") or [])
    return not matched(med.get("code")) and any(matched(i.get("itemCodeableConcept")) for i in med.get("ingredient") or [])


def hook_body(bundle: dict) -> dict:
    """A patient-view call whose prefetch holds ``bundle``'s resources, as the discovery's templates ask."""
    pre = prefetch_of(bundle)
    return {"hook": "patient-view", "hookInstance": "load",
            "context": {"patientId": pre["patient"]["id"], "userId": "Practitioner/load"}, "prefetch": pre}


#: The findings whose combinations make the distinct patients (6,912 of them: enough that the row without think
#: time never asks one twice in a run, :func:`allotment`).
DISTINCT_FINDINGS = {"lineage": ("T-ALL", "B-ALL", "AML"), "laterality": ("unilateral", "bilateral"),
                     "peripheral_nerves": ("none", "one_or_more"),
                     "onset": ("acute", "progressive"), "eighth_nerve": ("none", "involved"),
                     "other_cranial_nerves": ("none", "one_or_more"), "vesicles": ("absent", "present"),
                     "mri": ("normal", "facial_nerve_enhancement", "mass"), "age_group": ("child", "adult"),
                     "otalgia": ("absent", "present"),
                     "remission": ("remission_on_treatment", "not_in_remission", "remission_off_treatment")}


def distinct_patients(n: int) -> list[dict]:
    """``n`` different patients (combinations of :data:`DISTINCT_FINDINGS`, each with a negative LP), as patient
    files; a ValueError beyond the number of combinations (a load test must never ask one patient twice)."""
    combos = list(itertools.islice(itertools.product(*DISTINCT_FINDINGS.values()), n))
    if len(combos) < n:
        raise ValueError(f"at most {len(combos)} distinct patients, not {n}")
    return [{"id": f"load-{i}", **dict(zip(DISTINCT_FINDINGS, combo, strict=True)),
             "csf": [{"result": "negative", "method": "cytology"}]} for i, combo in enumerate(combos)]


def allotment(n: int) -> tuple[list[list[int]], list[list[int]]]:
    """Which of ``n`` distinct patients each load row's clients ask (no think time, in step, at random moments)
    and which the probe asks in each row, never shared: an eighth each for the paced rows (a call a second from
    each of 20 clients for 30 s is 600 patients), a twelfth each for the three probes, and the remaining half for
    the row without think time, whose 20 clients ask about 70 new patients a second (until 6 December it had a
    sixth, 576 patients, which came round again after about ten seconds and were then answered from memory: the
    row measured new patients for its first seconds only)."""
    parts = [list(range(k, n, 24)) for k in range(24)]

    def joined(ks: range | tuple[int, ...]) -> list[int]:
        return sorted(i for k in ks for i in parts[k])

    return ([joined((0, *range(13, 24))), joined(range(1, 4)), joined(range(4, 7))],
            [joined(range(7, 9)), joined(range(9, 11)), joined(range(11, 13))])


#: The Patient id of :func:`known_records`' bundles, replaced in each request by one of its own (``-<n>`` added).
RECORD_ID = "loadrecord"


def known_records(ident: str = RECORD_ID) -> list[dict]:
    """The source patients' records (``patients/*.yaml``, sorted) as FHIR bundles under the Patient id ``ident``.

    Sent with ``ident`` renumbered in each request (:func:`renumbered`), every request is a record the service
    has not mapped, whose findings are a source patient's: after the first of each, its card is memoised. A row
    of them measures a request without the model's cost (the FHIR mapping and its validation, the JWT, the HTTP
    stack, the card's record and log still paid)."""
    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE
    from palsy.model import safe_yaml as Y

    table = X.load_table()
    return [XE.example_bundle({**Y.load(p), "id": ident}, table) for p in sorted((REPO / "patients").glob("*.yaml"))]


def renumbered(body: str, n: int, ident: str = RECORD_ID) -> str:
    """``body`` (a request's JSON text) with the Patient id ``ident`` made ``<ident>-<n>`` wherever it is
    written (the Patient, the references to it, the hook's patientId): another record of the same findings."""
    return body.replace(ident, f"{ident}-{n}")


def capacity(cpu_ms_per_request: float, cores: int = 2, clients: int = 20) -> tuple[float, float]:
    """The most requests a second ``cores`` can answer at ``cpu_ms_per_request`` of CPU each (the server's and
    the load generator's together, on the same cores), and the least median time ``clients`` calling without
    pause can then see (Little's law: clients = throughput x time in the system), in ms."""
    if cpu_ms_per_request <= 0:
        raise ValueError(f"CPU per request must be positive, not {cpu_ms_per_request}")
    most = cores * 1000.0 / cpu_ms_per_request
    return most, clients / most * 1000.0


def posterior_probability(*args: str) -> dict:
    """P(infiltration) (mean and interval) as ``palsy posterior ARGS --json`` prints it, run as a command."""
    proc = subprocess.run([sys.executable, "-m", "palsy.scripts.palsy", "posterior", *args, "--json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["probability"]


def expected_probabilities(bundles: list[dict], check: int = 1) -> list[dict]:
    """P(infiltration) (mean and interval) as ``palsy posterior --fhir`` gives it for each FHIR ``bundle``:
    computed in this process by the function the command calls, on the cached posterior of the default
    variant (the service's), and for the first ``check`` bundles by the command itself, which must agree to
    the last digit (a RuntimeError otherwise: the load test would judge answers against wrong numbers)."""
    from palsy.model import answer as A
    from palsy.model import api
    from palsy.model import fhir as X
    from palsy.model import findings as F

    draws = api.posterior_draws()
    tables, table = A.Tables(draws), X.load_table()
    out = []
    for i, bundle in enumerate(bundles):
        mapping = X.map_bundle(bundle, table, source=f"load bundle {i}", schema=draws.schema)
        patient = F.parse_patient(mapping.patient, f"load bundle {i}", schema=draws.schema)
        out.append(A.answer(patient, draws, tables=tables, shapley=False, next_tests=False,
                            rests_on=False).to_dict()["probability"])
    with tempfile.TemporaryDirectory() as tmp:
        for i, bundle in enumerate(bundles[:check]):
            path = Path(tmp) / f"bundle-{i}.json"
            path.write_text(json.dumps(bundle), encoding="utf-8")
            cli = posterior_probability("--fhir", str(path))
            if cli != out[i]:
                raise RuntimeError(f"load bundle {i}: palsy posterior gives {cli}, this process {out[i]}")
    return out


#: The probe's pace (seconds between its requests) and its delay into each row (the load under way first).
PROBE_SECONDS, PROBE_DELAY = 0.5, 3.0


class Probe(threading.Thread):
    """One more client during a locust row: a request every :data:`PROBE_SECONDS` (after
    :data:`PROBE_DELAY`), each with a fresh token from ``sign``, cycling through ``bodies``; its own wall-clock
    time per request, and a failure for any status but 200 or a probability other than ``expected``'s."""

    def __init__(self, url: str, sign, bodies: list[str], expected: list,  # noqa: ANN001
                 renumber: str | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.sign, self.bodies, self.expected = url, sign, bodies, expected
        self.renumber = renumber  # a Patient id made new in each request (:func:`renumbered`): a new record each
        self.times_ms: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import httpx

        if self.stop.wait(PROBE_DELAY):
            return
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                n = len(self.times_ms)
                i = n % len(self.bodies)
                body = renumbered(self.bodies[i], n, self.renumber) if self.renumber else self.bodies[i]
                headers = {"Authorization": "Bearer " + self.sign(), "Content-Type": "application/json"}
                t = time.perf_counter()
                try:  # a request that fails in any way is a failure, never the end of the probe
                    r = client.post(self.url, content=body, headers=headers)
                    ok = r.status_code == 200 and (self.expected[i] is None or
                                                   r.json()["cards"][0]["extension"]["palsy"]["probability"]
                                                   == self.expected[i])
                except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
                    ok = False
                self.times_ms.append((time.perf_counter() - t) * 1000)
                self.failures += not ok
                self.stop.wait(PROBE_SECONDS)


def run(seconds: int = 30, users: int = 20, workers: int = 2) -> dict:
    """Start the server from cold, load it twice (repeated and distinct patients); return the measurements."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from palsy.model import fhir as X
    from palsy.model import fhir_example as XE

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "load", "alg": "ES384"}
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    out: dict = {}
    table = X.load_table()
    n_all = math.prod(len(v) for v in DISTINCT_FINDINGS.values())
    distinct_bundles = [XE.example_bundle(p, table) for p in distinct_patients(n_all)]
    distinct = [hook_body(b) for b in distinct_bundles]
    # the probe's answers are compared with palsy posterior's: as many as the probe can send in a row and ten more
    # (it must never come back to a patient the server has memoised), computed before the server starts (its cold
    # start and the rows are measured on a quiet machine)
    n_probed = min(576, max(0, int((seconds - PROBE_DELAY) / PROBE_SECONDS)) + 10)
    rows, probes = allotment(n_all)
    probed = [[distinct[i] for i in idx[:n_probed]] for idx in probes]
    probed_expected = [expected_probabilities([distinct_bundles[i] for i in idx[:n_probed]]) for idx in probes]
    locust_rows = [[distinct[i] for i in idx] for idx in rows]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        (tmp / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        (tmp / "palsy.yaml").write_text(json.dumps({"service_url": base, "state_dir": "state", "port": port,
                                                    "workers": workers, "max_token_lifetime_seconds": 120,
                                                    "issuers": [{"iss": "https://load.example",
                                                                 "jwks_file": "jwks.json"}]}))
        t0 = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "palsy.scripts.palsy", "serve", "--config", str(tmp / "palsy.yaml")],
                                  cwd=REPO, stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT)
        try:
            import httpx

            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise RuntimeError((tmp / "server.log").read_text())
                time.sleep(0.1)
            out["cold_start_seconds"] = time.perf_counter() - t0
            sources = sorted((REPO / "patients").glob("*.yaml"))
            repeated = [hook_body(json.loads(p.with_name(p.stem + ".fhir.json").read_text())) for p in sources]
            # the record's answer: a FHIR record is never a library case (no case left out), as --fhir answers it
            expected = [posterior_probability("--fhir", str(p.with_name(p.stem + ".fhir.json"))) for p in sources]
            path = f"/cds-services/{SERVICE}"

            def sign() -> str:
                now = int(time.time())
                return jwt.encode({"iss": "https://load.example", "aud": base + path, "exp": now + 60, "iat": now,
                                   "jti": uuid.uuid4().hex}, key, algorithm="ES384", headers={"kid": "load", "typ": "JWT"})

            # the source patients again, each request a record of its own: the model's cost left out (its answer is
            # memoised after the first of each), and what is left of a request measured under the same load
            records, probe_records = known_records(), known_records("probe" + RECORD_ID)
            import psutil

            tree = psutil.Process(server.pid)

            def server_cpu() -> float:  # seconds of CPU of the server and its workers so far
                total = 0.0
                for proc in (tree, *tree.children(recursive=True)):
                    try:
                        total += sum(proc.cpu_times()[:2])
                    except psutil.Error:  # a worker gone between the listing and the reading
                        pass
                return total

            for name, bodies, exp, pacing, probe_bodies, probe_exp, renumber in (
                    ("repeated source patients, no think time", repeated, expected, "", repeated, expected, None),
                    ("new records of the source patients (answers memoised), no think time",
                     [hook_body(b) for b in records], expected, "", [hook_body(b) for b in probe_records], expected,
                     RECORD_ID),
                    ("repeated source patients, 1 call/s per client", repeated, expected, "1", repeated, expected,
                     None),
                    ("distinct patients, no think time", locust_rows[0], [None] * len(locust_rows[0]), "",
                     probed[0], probed_expected[0], None),
                    ("distinct patients, 1 call/s per client, every client in step", locust_rows[1],
                     [None] * len(locust_rows[1]), "1", probed[1], probed_expected[1], None),
                    ("distinct patients, 1 call/s per client at random moments", locust_rows[2],
                     [None] * len(locust_rows[2]), "~1", probed[2], probed_expected[2], None)):
                spec = {"service_url": base, "iss": "https://load.example", "kid": "load", "key_pem": pem,
                        "path": path, "bodies": [json.dumps(b) for b in bodies], "expected": exp,
                        "renumber": renumber}
                (tmp / "load.json").write_text(json.dumps(spec))
                prefix = tmp / f"run{len(out)}"
                probe = Probe(base + path, sign, [json.dumps(b) for b in probe_bodies], probe_exp,
                              renumber=renumber and "probe" + renumber)
                cpu0, client0 = server_cpu(), os.times()  # children's CPU: locust's, once waited for
                probe.start()
                subprocess.run([sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")),
                                "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", base,
                                "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"],
                               cwd=tmp, env={**os.environ, "PALSY_LOAD": str(tmp / "load.json"),
                                             "PALSY_LOAD_PACING": pacing},
                               capture_output=True, text=True, timeout=seconds + 120)
                probe.stop.set()
                probe.join()
                cpu1, client1 = server_cpu(), os.times()
                with open(f"{prefix}_stats.csv", newline="") as f:
                    row = next(r for r in csv.DictReader(f) if r["Name"] == "patient-view")
                out[name] = {"median_ms": float(row["Median Response Time"]), "p99_ms": float(row["99%"]),
                             "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                             "rps": float(row["Requests/s"]),
                             # no probe request (a row shorter than its delay) is a failed row: NaN passes no bar
                             "probe_median_ms": statistics.median(probe.times_ms) if probe.times_ms else float("nan"),
                             "probe_max_ms": max(probe.times_ms, default=float("nan")),
                             "probe_requests": len(probe.times_ms), "probe_failures": probe.failures}
                # CPU per request of the server (its workers) and of locust (the load generator, the only child
                # waited for in the row), over every request of the row, the probe's included
                out[name]["pacing"] = pacing
                n = max(1, out[name]["requests"] + len(probe.times_ms))
                out[name]["server_cpu_ms"] = (cpu1 - cpu0) / n * 1000
                out[name]["client_cpu_ms"] = ((client1.children_user + client1.children_system)
                                              - (client0.children_user + client0.children_system)) / n * 1000
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    return out


def report(seconds: int = 30) -> None:
    """Print the serve route's rows (docs/design.md §8 bars: warm median < 100 ms, p99 < 300 ms, no failure),
    judged on the probe's times (its slowest request against the p99 bar), locust's beside them."""
    m = run(seconds)
    print(f"\npalsy serve, cold start (launch to a ready /healthz, 2 workers): {m['cold_start_seconds']:.1f} s")
    for name, r in m.items():
        if not isinstance(r, dict):
            continue
        ok = (r["probe_median_ms"] < 100 and r["probe_max_ms"] < 300 and r["failures"] == 0
              and r["probe_failures"] == 0)
        print(f"palsy serve, 20 clients, {name}: probe median {r['probe_median_ms']:.0f} ms (bar 100), slowest "
              f"{r['probe_max_ms']:.0f} ms (bar 300 at p99), {r['probe_requests']} requests, {r['probe_failures']} "
              f"failed; locust median {r['median_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, {r['requests']} requests, "
              f"{r['failures']} failed, {r['rps']:.1f}/s  {'PASS' if ok else 'FAIL'}")
        cpu = r["server_cpu_ms"] + r["client_cpu_ms"]
        line = f"    CPU per request: the server {r['server_cpu_ms']:.1f} ms, locust {r['client_cpu_ms']:.1f} ms"
        if cpu > 0 and not r["pacing"]:  # clients without pause: the bound the cores set (paced rows never reach it)
            most, least = capacity(cpu)
            line += (f": 2 cores answer at most {most:.0f} such requests a second, and 20 clients without pause then "
                     f"wait at least {least:.0f} ms each (Little's law)")
        print(line)


if __name__ == "__main__":
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
