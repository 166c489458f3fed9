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
  key were bad, unless the last fetch found its kid absent (a 401). Until s17 PyJWT's cooldown of 60 s began at
  every fetch, the 5-minute refresh included, so a newly published key met up to a minute of 401s. Each fetch
  runs in a thread of its own, one at a time per issuer, within a deadline in all (:mod:`.keyfetch`), and a set
  past its lifespan whose refresh fails is used for up to :data:`STALE_GRACE_SECONDS` more (:class:`UrlKeys`;
  the second review of s17, #1: every call fetched an expired set's URL in its own time, and a URL that
  trickled its answer put every issuer's calls out for 22 minutes).
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from pathlib import Path

import jwt

from palsy.model import findings as F
from palsy.model import safe_json as SJ
from palsy.scripts.serve import keyfetch as KF

log = logging.getLogger("palsy.serve")

#: How often a file's keys are looked at again when a token names a key the file holds (seconds).
FILE_CHECK_SECONDS = 5.0
#: How often a file is looked at again for a key id it does not hold (seconds): a stat, a read only when it changed.
FILE_RECHECK_SECONDS = 0.2
#: How long a fetched JWK Set is used before it is fetched again (seconds).
URL_LIFESPAN_SECONDS = 300
#: The least time between two fetches of an issuer's set (seconds): for a key id it lacks, or a refresh.
REFETCH_SECONDS = 10.0
#: How long an issuer's last good set is still used after its lifespan while its URL fails (seconds).
STALE_GRACE_SECONDS = 24 * 3600
#: How long a request waits for a fetch another request started (seconds).
OTHERS_WAIT_SECONDS = 1.0
#: The most key ids kept as absent from the last set (a negative cache, emptied by each good fetch).
MAX_ABSENT_KIDS = 1000
#: The largest key set file read (bytes).
MAX_FILE_BYTES = 1024 * 1024


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


class KeyFileError(F.InputError):
    """A key set file that cannot be read as a JWK Set at its first reading (naming the issuer and the file)."""


def _why(exc: BaseException) -> str:
    """An error reading a key set file in a few words (its type, and its words when they are short)."""
    words = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {words[:120]}" if words else type(exc).__name__


def _match(keys: list[jwt.PyJWK], kid: str) -> jwt.PyJWK | None:
    return next((k for k in keys if k.key_id == kid), None)


class FileKeys:
    """An issuer's keys from a JWK Set file, re-read when the file changes."""

    def __init__(self, path: str | Path, iss: str) -> None:
        self.path, self.iss = Path(path), iss
        self._lock = threading.Lock()
        self._seen = self._signature()
        # read as the start-up check reads it (a byte-order mark passed the check and failed every worker)
        try:
            self._keys = self._read()
        except (OSError, SJ.JSONInputError, jwt.PyJWTError, ValueError) as exc:
            # named: a SIGHUP's re-reading failed with "JSONInputError: not JSON", naming no file (second review #14)
            raise KeyFileError([f"the key set file of issuer {iss} ({self.path}) cannot be read as a JWK Set: "
                                f"{_why(exc)}"], "the issuers' key sets") from None
        self._looked = time.monotonic()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _read(self) -> list[jwt.PyJWK]:
        """The file's keys, read only when it is a regular file of at most :data:`MAX_FILE_BYTES` (a FIFO put in
        its place hung the first call that re-read it, holding the issuer's lock; /dev/zero read without end)."""
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file")
            if st.st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES // 1024} kB")
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES // 1024} kB")
        return list(jwt.PyJWKSet.from_dict(SJ.loads(data)).keys)

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
                            "before are kept", self.iss, self.path, _why(exc))
                return False
            self._keys = keys
            log.info("palsy serve: the key set file of issuer %s re-read: %d keys", self.iss, len(keys))
            return True


class UrlKeys:
    """An issuer's keys from a JWK Set URL: the last good set cached, refreshed by one fetch at a time.

    Every fetch is made by a thread of its own (:mod:`.keyfetch`: a whole-fetch deadline and a size cap) and at
    most once per :data:`REFETCH_SECONDS`, whatever tokens come (a forged token counts: the set is looked at
    before any signature is); a request waits for it at most :data:`~.keyfetch.FETCH_SECONDS` when it started
    it, :data:`OTHERS_WAIT_SECONDS` otherwise. A set older than :data:`URL_LIFESPAN_SECONDS` is refreshed by the
    first call after that (which waits for the refresh, so a withdrawn key stops being accepted then); while
    the refresh fails, or is in flight, the last good set is used for up to :data:`STALE_GRACE_SECONDS` more,
    said in the log. A ``kid`` the last fetch found absent is refused (401) until a refetch is permitted again;
    one not looked for yet meanwhile is told to retry (503)."""

    def __init__(self, url: str, iss: str = "") -> None:
        self.url, self.iss = url, iss
        self.lifespan = URL_LIFESPAN_SECONDS
        self._lock = threading.Lock()
        self._keys: list[jwt.PyJWK] | None = None
        self._fetched = -math.inf  # when the last good set came (monotonic)
        self._tried = -math.inf  # when the last fetch began
        self._refetched = -math.inf  # when the last fetch for a kid a fresh set lacked began
        self._flight: threading.Event | None = None
        self._absent: set[str] = set()  # kids the last good set lacked, when a token named them
        self._error: str | None = None  # why the last fetch failed (None after a good one)

    def status(self) -> str:
        """``ok`` (a set fresher than its lifespan), ``stale`` (an older set served while its refresh fails),
        ``unavailable`` (no usable set) or ``not fetched`` (no call has needed it yet)."""
        with self._lock:
            age = time.monotonic() - self._fetched
            if self._keys is not None and age < self.lifespan:
                return "ok"
            if self._keys is not None and age < self.lifespan + STALE_GRACE_SECONDS:
                return "stale"
            return "unavailable" if self._error is not None else "not fetched"

    def _start(self, now: float) -> threading.Event:
        """Start a fetch (under the lock; at most one in flight)."""
        if self._flight is None:
            self._tried, self._flight = now, threading.Event()
            threading.Thread(target=self._run, args=(self._flight,), name="palsy-jwks", daemon=True).start()
        return self._flight

    def _run(self, done: threading.Event) -> None:
        try:
            keys = KF.fetch(self.url)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good set; said in one line
            why = str(exc) if isinstance(exc, KF.FetchFailed) else type(exc).__name__
            with self._lock:
                first, self._error = self._error is None, why
                had = self._keys is not None and time.monotonic() - self._fetched < self.lifespan + STALE_GRACE_SECONDS
            if first:  # once per run of failures
                kept = (f"the set fetched {(time.monotonic() - self._fetched) / 60:.0f} min ago is used for up to "
                        f"{STALE_GRACE_SECONDS / 3600:g} h after its lifespan" if had else "no set is held: its tokens "
                        "get 503")
                log.warning("palsy serve: the JWK Set URL of issuer %s could not be fetched (%s); %s; retried at "
                            "most every %g s", self.iss, why, kept, REFETCH_SECONDS)
        else:
            with self._lock:
                if self._error is not None:
                    log.info("palsy serve: the JWK Set URL of issuer %s answers again: %d keys", self.iss, len(keys))
                self._keys, self._fetched, self._absent, self._error = keys, time.monotonic(), set(), None
        finally:
            with self._lock:
                self._flight = None
            done.set()

    def key(self, kid: str) -> jwt.PyJWK:
        """The key of ``kid``.

        Raises
        ------
        UnknownKey
            The set, fetched since the token came or at the last permitted refetch, holds none.
        KeySetUnavailable
            No usable set (the URL failing past the grace), or a ``kid`` not looked for yet while a refetch is
            not permitted (retry after the rest of that time).
        """
        now = time.monotonic()
        with self._lock:
            found = _match(self._keys or [], kid)
            fresh = now - self._fetched < self.lifespan
            if found is not None and fresh:
                return found
            usable = now - self._fetched < self.lifespan + STALE_GRACE_SECONDS
            # a set past its lifespan is refreshed, a fresh one fetched again for a kid it lacks: each at most once
            # per REFETCH_SECONDS, one fetch at a time
            last = self._tried if not fresh else self._refetched
            permitted = self._flight is None and now - last >= REFETCH_SECONDS
            if found is not None and usable and not permitted:
                return found  # the last good set while its refresh is in flight or failed a moment ago
            if found is None and not permitted and self._flight is None:
                wait = max(1, math.ceil(last + REFETCH_SECONDS - now))
                if kid in self._absent:
                    raise UnknownKey(kid)
                if self._error is not None:
                    raise self._unavailable(wait)
                raise KeySetUnavailable(f"the token's kid is not in the issuer's key set as last fetched, which is "
                                        f"fetched again at most every {REFETCH_SECONDS:g} s; retry in {wait} s",
                                        retry_after=wait)
            started = permitted
            if permitted and fresh:
                self._refetched = now
            flight = self._start(now) if permitted else self._flight
        if flight is not None:
            flight.wait(KF.FETCH_SECONDS if started else OTHERS_WAIT_SECONDS)
        now = time.monotonic()
        with self._lock:
            found = _match(self._keys or [], kid)
            if found is not None and now - self._fetched < self.lifespan + STALE_GRACE_SECONDS:
                return found
            if self._keys is not None and self._error is None and self._flight is None and found is None:
                if len(self._absent) < MAX_ABSENT_KIDS:
                    self._absent.add(kid)
                raise UnknownKey(kid)
            raise self._unavailable(max(1, math.ceil(self._tried + REFETCH_SECONDS - now)))

    def _unavailable(self, wait: int) -> KeySetUnavailable:
        """The 503 of a set that cannot be had now (under the lock): why, and when to retry."""
        why = f"its JWK Set URL did not answer with a usable JWK Set: {self._error}" if self._error else \
            "its JWK Set URL is being fetched"
        return KeySetUnavailable(f"the issuer's key set is unavailable ({why}); try again in {wait} s", retry_after=wait)
