"""``palsy serve``: palsy as a CDS Hooks 2.0 service (FastAPI under uvicorn).

- :mod:`.config` the YAML configuration (issuers, service URL, limits, state folder), checked at start;
- :mod:`.auth` the CDS Hooks JWT: signature against the configured issuers' keys, audience, expiry, replay;
- :mod:`.engine` the model loaded once per worker, answers memoised per canonical patient;
- :mod:`.store` the served reports (expiring) and the append-only feedback log;
- :mod:`.app` the HTTP routes, the error bodies and the body-size limit.
"""
