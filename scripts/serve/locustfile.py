"""The load of ``scripts/benchmark.py --routes serve`` (run by locust, headless): CDS Hooks clients calling
the patient-view service with signed JWTs. ``$PALSY_LOAD`` names a JSON file with the service URL, the
signing key (PEM), the requests' bodies and, for each, the numbers ``palsy posterior`` gives; an answer
with other numbers is counted as a failure, as is any status but 200."""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid

import jwt
from locust import constant, constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser

_SPEC = json.loads(open(os.environ["PALSY_LOAD"], encoding="utf-8").read())
_COUNTER = itertools.count()


# FastHttpUser (geventhttpclient): the load generator shares the 2 cores with the server, and it costs a
# fraction of HttpUser's (python-requests) CPU per call.
class CdsClient(FastHttpUser):
    # no think time (closed loop), or each client one call per $PALSY_LOAD_PACING seconds
    wait_time = constant_pacing(float(os.environ["PALSY_LOAD_PACING"])) if os.environ.get("PALSY_LOAD_PACING") \
        else constant(0)

    def _token(self, path: str) -> str:
        now = int(time.time())
        return jwt.encode({"iss": _SPEC["iss"], "aud": _SPEC["service_url"] + path, "exp": now + 60, "iat": now,
                           "jti": uuid.uuid4().hex}, _SPEC["key_pem"], algorithm="ES384",
                          headers={"kid": _SPEC["kid"], "typ": "JWT"})

    @task
    def patient_view(self) -> None:
        i = next(_COUNTER) % len(_SPEC["bodies"])
        path = _SPEC["path"]
        with self.client.post(path, data=_SPEC["bodies"][i], name="patient-view", catch_response=True,
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
