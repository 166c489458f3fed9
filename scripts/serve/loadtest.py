"""``scripts/benchmark.py --routes serve``: the service under load, measured with locust.

The real server (``palsy serve``, 2 workers, signed JWTs from a generated issuer key) is started from
cold (its cold start: launch to a ready ``/healthz``), then 20 locust users call the patient-view service
with no think time and at one call a second each, for the source patients again and again (the memoised path)
and for distinct patients (every request a new combination of findings: the model's own cost; each of the
two distinct rows has patients of its own, so none was answered, and memoised, by the row before). Median and 99th percentile of the
response times, the number of requests and of failures (any status but 200, or numbers other than
``palsy posterior``'s) are printed against docs/design.md's bars (100 ms median, 300 ms p99).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
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


def hook_body(bundle: dict) -> dict:
    """A patient-view call whose prefetch holds ``bundle``'s resources, as the discovery's templates ask."""
    res = [e["resource"] for e in bundle["entry"]]
    pre = {}
    for key, rt in PREFETCH_TYPES.items():
        found = [r for r in res if r["resourceType"] == rt]
        pre[key] = found[0] if key == "patient" else (
            {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]} if found else None)
    return {"hook": "patient-view", "hookInstance": "load", "context": {"patientId": pre["patient"]["id"]},
            "prefetch": pre}


#: The findings whose combinations make the distinct patients (1,728 of them).
DISTINCT_FINDINGS = {"lineage": ("T-ALL", "B-ALL", "AML"), "laterality": ("unilateral", "bilateral"),
                     "onset": ("acute", "progressive"), "eighth_nerve": ("none", "involved"),
                     "other_cranial_nerves": ("none", "one_or_more"), "vesicles": ("absent", "present"),
                     "mri": ("normal", "facial_nerve_enhancement", "mass"), "age_group": ("child", "adult"),
                     "remission": ("remission_on_treatment", "not_in_remission", "remission_off_treatment")}


def distinct_patients(n: int) -> list[dict]:
    """``n`` different patients (combinations of :data:`DISTINCT_FINDINGS`, each with a negative LP), as patient
    files; a ValueError beyond the number of combinations (a load test must never ask one patient twice)."""
    combos = list(itertools.islice(itertools.product(*DISTINCT_FINDINGS.values()), n))
    if len(combos) < n:
        raise ValueError(f"at most {len(combos)} distinct patients, not {n}")
    return [{"id": f"load-{i}", **dict(zip(DISTINCT_FINDINGS, combo, strict=True)),
             "csf": [{"result": "negative", "method": "cytology"}]} for i, combo in enumerate(combos)]


def run(seconds: int = 30, users: int = 20, workers: int = 2) -> dict:
    """Start the server from cold, load it twice (repeated and distinct patients); return the measurements."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from palsy.model import fhir as X

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "load", "alg": "ES384"}
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    out: dict = {}
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
            expected = [json.loads(subprocess.run([sys.executable, "-m", "palsy.scripts.palsy", "posterior", "--patient",
                                                   str(p), "--json"], cwd=REPO, capture_output=True, text=True,
                                                  check=True).stdout)["probability"] for p in sources]
            table = X.load_table()
            distinct = [hook_body(X.example_bundle(p, table)) for p in distinct_patients(1728)]
            for name, bodies, exp, pacing in (
                    ("repeated source patients, no think time", repeated, expected, ""),
                    ("repeated source patients, 1 call/s per client", repeated, expected, "1"),
                    ("distinct patients, no think time", distinct[0::2], [None] * len(distinct[0::2]), ""),
                    ("distinct patients, 1 call/s per client", distinct[1::2], [None] * len(distinct[1::2]), "1")):
                spec = {"service_url": base, "iss": "https://load.example", "kid": "load", "key_pem": pem,
                        "path": f"/cds-services/{SERVICE}", "bodies": [json.dumps(b) for b in bodies], "expected": exp}
                (tmp / "load.json").write_text(json.dumps(spec))
                prefix = tmp / f"run{len(out)}"
                subprocess.run([sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")),
                                "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", base,
                                "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"],
                               cwd=tmp, env={**os.environ, "PALSY_LOAD": str(tmp / "load.json"),
                                             "PALSY_LOAD_PACING": pacing},
                               capture_output=True, text=True, timeout=seconds + 120)
                with open(f"{prefix}_stats.csv", newline="") as f:
                    row = next(r for r in csv.DictReader(f) if r["Name"] == "patient-view")
                out[name] = {"median_ms": float(row["Median Response Time"]), "p99_ms": float(row["99%"]),
                             "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                             "rps": float(row["Requests/s"])}
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    return out


def report(seconds: int = 30) -> None:
    """Print the serve route's rows (docs/design.md §8 bars: warm median < 100 ms, p99 < 300 ms, no failure)."""
    m = run(seconds)
    print(f"\npalsy serve, cold start (launch to a ready /healthz, 2 workers): {m['cold_start_seconds']:.1f} s")
    for name, r in m.items():
        if not isinstance(r, dict):
            continue
        ok = r["median_ms"] < 100 and r["p99_ms"] < 300 and r["failures"] == 0
        print(f"palsy serve, 20 clients, {name}: median {r['median_ms']:.0f} ms (bar 100), p99 {r['p99_ms']:.0f} ms "
              f"(bar 300), {r['requests']} requests, {r['failures']} failed, {r['rps']:.1f}/s  "
              f"{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
