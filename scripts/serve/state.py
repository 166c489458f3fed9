"""Whether the state folder can be written: the errors of a full or unwritable folder named as such, and the
health check's probe.

The state folder holds the replay store, the served reports and the feedback log (:mod:`.store`). A full disk,
a quota, a folder made read-only or an I/O error there is an operational fault, not a bug: every call that
must write is then answered with a JSON 503 ``state_unavailable`` naming the folder and the error (with
``Retry-After``), its log line names the same, and ``/healthz`` answers 503 until a write succeeds again. Until
s17 the first such fault (the replay store's insert) was a 500 ``internal`` logged as ``OperationalError``, and
``/healthz`` said ok, so a load balancer kept sending calls to a worker that could answer none.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: The errors of a folder that cannot be written: full, over quota, read-only, an I/O error, refused, too large.
STATE_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EIO", "EACCES", "EPERM",
                                                            "EFBIG") if hasattr(errno, name))
#: SQLite's primary result codes of the same faults (the replay store): FULL, READONLY, IOERR, CANTOPEN, BUSY
#: (the store's lock held past its timeout), PERM, CORRUPT, NOTADB.
SQLITE_STATE_CODES = {13: "SQLITE_FULL", 8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 14: "SQLITE_CANTOPEN",
                      5: "SQLITE_BUSY", 3: "SQLITE_PERM", 11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}
log = logging.getLogger("palsy.serve")

#: What a caller refused for a state fault is told to wait before it tries again (seconds).
RETRY_AFTER_SECONDS = 30
#: Free space below which the probe reports the folder full: a rendered report takes up to about 1 MB.
MIN_FREE_BYTES = 4 * 1024 * 1024
#: How long the probe's last result stands (seconds): a probe writes and fsyncs a file.
PROBE_SECONDS = 5.0


class StateUnavailable(OSError):
    """The state folder cannot be written (an OSError, its ``errno`` kept where there is one): ``folder``,
    ``what`` (the replay store, the reports, the feedback log) and ``why`` (the error's name and words, never a
    file's name: a report's file is named by its key)."""

    def __init__(self, folder: str | Path, what: str, why: str, code: int | None = None) -> None:
        super().__init__(code, why)
        self.folder, self.what, self.why = str(folder), what, why

    @property
    def message(self) -> str:
        """The words of the 503 and of its log line."""
        return (f"the service cannot write its state folder {self.folder} ({self.what}: {self.why}); nothing was "
                f"recorded; retry in {RETRY_AFTER_SECONDS} s")

    @property
    def public(self) -> str:
        """The words for a caller who showed no token (the health check): the error's class, not the folder or
        its words (the log has them; second review #10)."""
        return f"the service cannot write its state folder ({self.what}: {self.why.split(':', 1)[0][:40]}); see its log"


def _sqlite_fault(exc: sqlite3.Error) -> str | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    name = SQLITE_STATE_CODES.get(code & 0xFF)
    return f"{name}: {str(exc)[:80]}" if name else None


@contextlib.contextmanager
def writing(folder: str | Path, what: str) -> Iterator[None]:
    """Around a write to the state folder: a fault of the folder (:data:`STATE_ERRNOS`, :data:`SQLITE_STATE_CODES`)
    is raised as :class:`StateUnavailable`; any other error as it is.

    Raises
    ------
    StateUnavailable
        The folder is full, read-only or failing.
    """
    try:
        yield
    except StateUnavailable:
        raise
    except OSError as exc:
        if exc.errno not in STATE_ERRNOS:
            raise
        raise StateUnavailable(folder, what, f"{errno.errorcode.get(exc.errno, exc.errno)}: {os.strerror(exc.errno)}",
                               exc.errno) from None
    except sqlite3.Error as exc:
        why = _sqlite_fault(exc)
        if why is None:
            raise
        raise StateUnavailable(folder, what, why) from None


class Probe:
    """The health check's view of the state folder: None when it can be written, else why not. A write probe
    (a small file written, fsync'd and removed in the reports' folder) and the free space, at most once per
    :data:`PROBE_SECONDS`; a fault met by a request (:meth:`failed`) stands until the next probe passes."""

    def __init__(self, folder: str | Path, probe_in: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.probe_in = Path(probe_in) if probe_in is not None else self.folder
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._problem: StateUnavailable | None = None

    def failed(self, exc: StateUnavailable) -> None:
        """Note a fault a request met: the health check says so until a probe passes."""
        with self._lock:
            self._problem, self._checked = exc, time.monotonic()

    def fault(self) -> StateUnavailable | None:
        """Why the folder cannot be written now (None when it can); a fault the probe finds is logged (with the
        folder and the error) when it begins."""
        with self._lock:
            if time.monotonic() - self._checked < PROBE_SECONDS:
                return self._problem
            before, self._problem, self._checked = self._problem, self._probe(), time.monotonic()
            if self._problem is not None and (before is None or before.message != self._problem.message):
                log.error("healthz: %s", self._problem.message)
            return self._problem

    def problem(self) -> str | None:
        """The full words of :meth:`fault` (None when the folder can be written)."""
        fault = self.fault()
        return fault.message if fault is not None else None

    def _probe(self) -> StateUnavailable | None:
        try:
            with writing(self.folder, "health probe"):
                st = os.statvfs(self.probe_in)
                if st.f_bavail * st.f_frsize < MIN_FREE_BYTES or (st.f_files and st.f_favail == 0):
                    free = st.f_bavail * st.f_frsize // 1024
                    raise StateUnavailable(self.folder, "free space", f"{free} kB free, under the "
                                           f"{MIN_FREE_BYTES // (1024 * 1024)} MB a report may need")
                path = self.probe_in / f".healthz-{os.getpid()}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, b"ok")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        except StateUnavailable as exc:
            return exc
        except OSError as exc:  # any other fault of the folder is still a folder palsy cannot write
            return StateUnavailable(self.folder, "health probe", os.strerror(exc.errno) if exc.errno else
                                    type(exc).__name__, exc.errno)
        return None
