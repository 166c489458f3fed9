"""The issuers' public keys: a JWK Set file, re-read when it changes, or a JWK Set URL, fetched again for a key id
it does not hold.

A token names its key by ``kid``. An issuer that rotates its keys publishes the new key before it signs with it;
the service must then find the new key without a restart and without a minute of refusals:

- a **file** (``jwks_file``) is re-read when its modification time, size or inode changes, looked at (one
  ``stat``) when a token names a key it does not hold (at most every :data:`FILE_RECHECK_SECONDS`) and
  otherwise every :data:`FILE_CHECK_SECONDS`, so that a key withdrawn from it stops being accepted then. A file
  that cannot be read as a key set (written half-way, say) leaves the keys read before, and says so in the log.
  Until s17 the file was read once per worker: a new key waited for a restart;
- a **URL** (``jwks_url``) is cached for :data:`URL_LIFESPAN_SECONDS`; a token whose key the cached set lacks
  has the set fetched again at once, unless another such fetch was made less than :data:`REFETCH_SECONDS` ago
  (made-up key ids cannot make the service fetch the set for each token): the token is then told to retry
  after the rest of that time (:class:`KeySetUnavailable`, a 503 with ``Retry-After``), not refused as if its
  key were bad. Until s17 PyJWT's cooldown of 60 s began at every fetch, the 5-minute refresh included, so a
  newly published key met up to a minute of 401s.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

import jwt

from palsy.model import safe_json as SJ

log = logging.getLogger("palsy.serve")

#: How often a file's keys are looked at again when a token names a key the file holds (seconds).
FILE_CHECK_SECONDS = 5.0
#: How often a file is looked at again for a key id it does not hold (seconds): a stat, a read only when it changed.
FILE_RECHECK_SECONDS = 0.2
#: How long a fetched JWK Set is used before it is fetched again (seconds).
URL_LIFESPAN_SECONDS = 300
#: The least time between two fetches made for a key id the cached set lacks (seconds).
REFETCH_SECONDS = 10.0


class UnknownKey(Exception):
    """The issuer's key set, as just read, holds no key of the token's ``kid``."""


class KeySetUnavailable(Exception):
    """The issuer's key set cannot be had now: its URL did not answer with a usable JWK Set (HTTP 503 on every
    call until it is mended; it was a 500, s16 review S4), or a key id the cached set lacks was asked for less
    than :data:`REFETCH_SECONDS` after the last such fetch. ``retry_after``: seconds the client should wait; the
    message names no token."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _match(keys: list[jwt.PyJWK], kid: str) -> jwt.PyJWK | None:
    return next((k for k in keys if k.key_id == kid), None)


class FileKeys:
    """An issuer's keys from a JWK Set file, re-read when the file changes."""

    def __init__(self, path: str | Path, iss: str) -> None:
        self.path, self.iss = Path(path), iss
        self._lock = threading.Lock()
        self._seen = self._signature()
        # read as the start-up check reads it (a byte-order mark passed the check and failed every worker)
        self._keys = self._read()
        self._looked = time.monotonic()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _read(self) -> list[jwt.PyJWK]:
        return list(jwt.PyJWKSet.from_dict(SJ.loads(self.path.read_bytes())).keys)

    def key(self, kid: str) -> jwt.PyJWK:
        """The key of ``kid``.

        Raises
        ------
        UnknownKey
            The file, looked at again if it may have changed, holds none.
        """
        found = _match(self._keys, kid)
        wait = FILE_CHECK_SECONDS if found is not None else FILE_RECHECK_SECONDS
        if time.monotonic() - self._looked >= wait:
            self.reload()
            found = _match(self._keys, kid)
        if found is None:
            raise UnknownKey(kid)
        return found

    def reload(self) -> bool:
        """Read the file again when it changed; whether the keys were replaced. A file that cannot be read as a
        key set keeps the keys read before (logged once per change of the file)."""
        with self._lock:
            self._looked = time.monotonic()
            seen = self._signature()
            if seen == self._seen:
                return False
            self._seen = seen
            try:
                keys = self._read()
            except (OSError, SJ.JSONInputError, jwt.PyJWTError, ValueError) as exc:
                log.warning("palsy serve: the key set file of issuer %s (%s) cannot be read (%s): the keys read "
                            "before are kept", self.iss, self.path, type(exc).__name__)
                return False
            self._keys = keys
            log.info("palsy serve: the key set file of issuer %s re-read: %d keys", self.iss, len(keys))
            return True


class UrlKeys:
    """An issuer's keys from a JWK Set URL: the set cached, fetched again at once for a key id it lacks (at most
    once per :data:`REFETCH_SECONDS`)."""

    def __init__(self, url: str) -> None:
        # PyJWT's own cooldown is off (0): it began at every fetch; this class keeps the rate of refetches
        self.client = jwt.PyJWKClient(url, cache_keys=False, lifespan=URL_LIFESPAN_SECONDS, timeout=5,
                                      cooldown_duration=0)
        self._lock = threading.Lock()
        self._refetched = -math.inf

    def _keys(self, refresh: bool = False) -> list[jwt.PyJWK]:
        try:
            return self.client.get_signing_keys(refresh=refresh)
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError):
            # unreachable, not JSON (PyJWT lets json's error through), not a set ([], null), no signing key
            raise KeySetUnavailable("the issuer's key set is unavailable (its JWK Set URL did not answer with a "
                                    "usable JWK Set); try again later") from None

    def key(self, kid: str) -> jwt.PyJWK:
        """The key of ``kid``.

        Raises
        ------
        UnknownKey
            The set, fetched again just now, holds none.
        KeySetUnavailable
            The URL does not answer with a usable set, or the set was fetched for another unknown key id less
            than :data:`REFETCH_SECONDS` ago (retry after the rest of that time).
        """
        found = _match(self._keys(), kid)
        if found is not None:
            return found
        with self._lock:
            wait = self._refetched + REFETCH_SECONDS - time.monotonic()
            if wait > 0:
                raise KeySetUnavailable(f"the token's kid is not in the issuer's key set as fetched {REFETCH_SECONDS - wait:.0f} s "
                                        f"ago, which is fetched again at most every {REFETCH_SECONDS:g} s; retry in "
                                        f"{math.ceil(wait)} s", retry_after=max(1, math.ceil(wait)))
            self._refetched = time.monotonic()
            found = _match(self._keys(refresh=True), kid)
        if found is None:
            raise UnknownKey(kid)
        return found
