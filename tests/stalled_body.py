"""A card request whose body stalls, built once for the tests of the protocol's body bounds
(tests/test_service_s17.py: a body that stops; tests/test_service_s17b.py: a body trickled without end).

The service's own app under its own HTTP protocol in this process (so that the protocol's bounds can be patched
shorter), one request at a time (``max_concurrent_requests: 1``, unsigned calls): a connection sends a card's head
and the first 100 bytes of its body, then what ``then`` sends (nothing: the body stops); what it gets back is
returned, and the worker's one place must then answer a whole card (the stalled request has left it).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from test_service import SERVICE, _bundle, _protocol_serving, _raw, _read_all, hook_body

CARD = f"/cds-services/{SERVICE}"


def stalled_body(tmp_path: Path, monkeypatch: Any, bounds: dict[str, float], then: Callable[[socket.socket, bytes], None]
                 | None = None, origin: str | None = None, read_seconds: float = 15.0) -> tuple[bytes, float]:
    """What a connection whose card body stalls gets (its bytes, and the seconds from its first 100 body bytes to
    the connection's end), with ``bounds`` (names of :mod:`palsy.scripts.serve.protocol`, e.g. ``BODY_SECONDS``)
    patched and the service allowing ``origin`` (CORS) when given; ``then(sock, body)`` sends more of the body after
    the first 100 bytes. Asserts that a whole card is answered afterwards."""
    from palsy.scripts.serve import app as A
    from palsy.scripts.serve import config as C
    from palsy.scripts.serve import protocol as PR

    for name, value in bounds.items():
        monkeypatch.setattr(PR, name, value)
    app = A.create_app(C.Config(service_url="http://127.0.0.1:1", state_dir=str(tmp_path), insecure_dev=True,
                                max_concurrent_requests=1, cors_origins=(origin,) if origin else ()))
    body = json.dumps(hook_body(_bundle("source-001"))).encode()
    allowed = f"Origin: {origin}\r\n" if origin else ""
    with _protocol_serving(app, lifespan="on") as base:
        with _raw(base) as sock:
            sock.sendall(f"POST {CARD} HTTP/1.1\r\nHost: x\r\n{allowed}Content-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
            t = time.monotonic()
            if then is not None:
                then(sock, body)
            got = _read_all(sock, seconds=read_seconds)
            took = time.monotonic() - t
        r = httpx.post(base + CARD, content=body, headers={"Content-Type": "application/json"}, timeout=120)
        assert r.status_code == 200 and r.json()["cards"], r.text[:300]
    return got, took
