"""``palsy serve``: palsy as a CDS Hooks 2.0 service (FastAPI under uvicorn).

- :mod:`.config` the YAML configuration (issuers, service URL, limits, state folder), checked at start;
- :mod:`.auth` the CDS Hooks JWT: signature against the configured issuers' keys, audience, expiry, replay;
- :mod:`.keysets` the issuers' keys: a JWK Set file re-read when it changes, a URL fetched again for a new key;
- :mod:`.keyfetch` a JWK Set fetched from its URL within a deadline in all and a size cap;
- :mod:`.engine` the model loaded once per worker, answers memoised per canonical patient;
- :mod:`.store` the served reports (expiring), the cards' feedback windows and the append-only feedback log;
- :mod:`.state` whether the state folder can be written: its faults as 503s, the health check's probe;
- :mod:`.prefetch` the discovery's templates and the prefetch as read (keys left out, OperationOutcomes);
- :mod:`.record_text` what a card says of the record, in the schema's labels;
- :mod:`.bodies` the request bodies (a hook call, feedback), validated;
- :mod:`.feedback` which outcomes of a feedback request are recorded, and their log lines;
- :mod:`.pages` the pages a browser opens from a card (the report's title, a changed model's notice, an expired
  report);
- :mod:`.layers` the pure ASGI layers (CORS, internal errors, admission, the JWT gate, large bodies one at a time,
  the body limit);
- :mod:`.reload` SIGHUP: one worker's start read again, a SIGHUP during the start kept;
- :mod:`.supervisor` SIGHUP with several workers: their supervisor (a restart given time, what stopped it known);
- :mod:`.protocol` the HTTP protocol's bounds per connection;
- :mod:`.app` the HTTP routes.
"""
