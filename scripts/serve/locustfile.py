"""The load of ``scripts/benchmark.py --routes serve`` (run by locust, headless): CDS Hooks clients calling
the patient-view service with signed JWTs. ``$PALSY_LOAD`` names a JSON file with the service URL, the
signing key (PEM), the requests' bodies and, for each, the numbers ``palsy posterior`` gives; an answer
with other numbers is counted as a failure, as is any status but 200. With ``renumber`` (a Patient id), that id is
made new in each request (``loadtest.renumbered``): every request a record the service has not mapped."""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid

import jwt
from locust import constant, constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser

from palsy.scripts.serve.loadtest import renumbered

_SPEC = json.loads(open(os.environ["PALSY_LOAD"], encoding="utf-8").read())
_COUNTER = itertools.count()
#: A Patient id made new in each request (:func:`renumbered`): every request a record the service has not seen.
_RENUMBER = _SPEC.get("renumber")


# FastHttpUser (geventhttpclient): the load generator shares the 2 cores with the server, and it costs a
# fraction of HttpUser's (python-requests) CPU per call.
def _wait_time():  # noqa: ANN202
    """No think time (closed loop); each client one call per $PALSY_LOAD_PACING seconds, every client in step
    (``1``); or ``~1``: each client's calls at random moments, one a second on average (a Poisson stream, as
    independent clinicians opening records)."""
    pacing = os.environ.get("PALSY_LOAD_PACING", "")
    if not pacing:
        return constant(0)
    if pacing.startswith("~"):
        mean = float(pacing[1:])
        return lambda user: random.expovariate(1.0 / mean)
    return constant_pacing(float(pacing))


class CdsClient(FastHttpUser):
    wait_time = _wait_time()

    def on_start(self) -> None:
        # random moments from the first call on: the clients of a Poisson stream do not all start at once (locust
        # starts its users within the first second, which made the first calls one burst of twenty)
        pacing = os.environ.get("PALSY_LOAD_PACING", "")
        if pacing.startswith("~"):
            time.sleep(random.expovariate(1.0 / float(pacing[1:])))  # gevent's sleep: locust patches time

    def _token(self, path: str) -> str:
        now = int(time.time())
        return jwt.encode({"iss": _SPEC["iss"], "aud": _SPEC["service_url"] + path, "exp": now + 60, "iat": now,
                           "jti": uuid.uuid4().hex}, _SPEC["key_pem"], algorithm="ES384",
                          headers={"kid": _SPEC["kid"], "typ": "JWT"})

    @task
    def patient_view(self) -> None:
        n = next(_COUNTER)
        i = n % len(_SPEC["bodies"])
        path = _SPEC["path"]
        body = renumbered(_SPEC["bodies"][i], n, _RENUMBER) if _RENUMBER else _SPEC["bodies"][i]
        with self.client.post(path, data=body, name="patient-view", catch_response=True,
                              headers={"Authorization": "Bearer " + self._token(path),
                                       "Content-Type": "application/json"}) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
                return
            expected = _SPEC["expected"][i]
            if expected is not None:
                got = r.json()["cards"][0]["extension"]["palsy"]["probability"]
                if got != expected:
                    r.failure("answered wrongly: not the numbers of palsy posterior")
