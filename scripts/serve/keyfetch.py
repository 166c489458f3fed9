"""A JWK Set fetched from its URL within a whole-fetch deadline and a size cap (:func:`fetch`).

PyJWT's fetch (``urllib`` with a socket timeout) bounds each read, not the fetch: a key URL that trickled a byte
every 3 s held each of its callers, and their admission places, for as long as it trickled (a second review of
s17, #1: 22 minutes of 503s for every issuer). Here a timer cuts the connection at the deadline, whatever it
was waiting for (the connection, the head or the body), and a set larger than the cap is not read further.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse

import jwt

from palsy.model import safe_json as SJ

#: The most time one fetch of a key set may take, from connecting to its last byte (seconds).
FETCH_SECONDS = 5.0
#: The most bytes a key set may take (a set of a few keys is a few kB).
MAX_SET_BYTES = 1024 * 1024


class FetchFailed(Exception):
    """The URL did not answer with a usable JWK Set in time; the message says why (never a key)."""


def _cut(sock: socket.socket) -> None:
    """Shut ``sock``, which ends the read another thread is blocked in."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def fetch_bytes(url: str, deadline: float = FETCH_SECONDS, limit: int = MAX_SET_BYTES) -> bytes:
    """The body of ``GET url`` (status 200, at most ``limit`` bytes, within ``deadline`` seconds in all).

    Raises
    ------
    FetchFailed
        Another status, a larger body, the deadline passed, or the connection failed.
    """
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=deadline)
    end = time.monotonic() + deadline
    timer: threading.Timer | None = None
    try:
        conn.connect()
        # the socket itself: http.client hands it to the response and forgets it when the server will close
        timer = threading.Timer(max(0.0, end - time.monotonic()), _cut, (conn.sock,))
        timer.daemon = True
        timer.start()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"Accept": "application/json", "User-Agent": "palsy-serve"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise FetchFailed(f"HTTP {resp.status}")
        chunks, size = [], 0
        while chunk := resp.read1(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise FetchFailed(f"larger than {limit // 1024} kB")
            chunks.append(chunk)
        if time.monotonic() > end:
            raise FetchFailed(f"took more than {deadline:g} s")
        return b"".join(chunks)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        late = time.monotonic() >= end
        raise FetchFailed(f"took more than {deadline:g} s" if late else type(exc).__name__) from None
    finally:
        if timer is not None:
            timer.cancel()
        conn.close()


def signing_keys(body: bytes) -> list[jwt.PyJWK]:
    """The signing keys of a JWK Set's bytes: those with a ``kid`` and no ``use`` other than ``sig`` (as PyJWT's
    client takes them).

    Raises
    ------
    FetchFailed
        Not JSON, not a JWK Set, or no signing key in it.
    """
    try:
        keys = jwt.PyJWKSet.from_dict(SJ.loads(body)).keys
    except (SJ.JSONInputError, jwt.PyJWTError, ValueError, TypeError, AttributeError):
        raise FetchFailed("not a JWK Set") from None
    signing = [k for k in keys if k.public_key_use in ("sig", None) and k.key_id]
    if not signing:
        raise FetchFailed("no signing key with a kid")
    return signing


def fetch(url: str) -> list[jwt.PyJWK]:
    """The signing keys at ``url`` (:func:`fetch_bytes`, :func:`signing_keys`)."""
    return signing_keys(fetch_bytes(url))
