"""SIGHUP: the workers read again what they read at their start (the model, the evidence and its FHIR table, the
issuers' key sets).

- **One worker** (:func:`on_sighup`): the worker re-reads in a thread of its own and swaps in what it read, serving
  meanwhile; a reading that fails leaves it serving with what it had, said in the log and at the stop (as a failed
  restart of several workers is). A re-reading that failed and a later one that succeeded: the failure is
  withdrawn (``succeeded``), so the stop no longer says one failed. A SIGHUP during a re-reading is kept, and the
  worker reads once more when it ends (until s18 it was dropped, "already in progress", and a file changed after
  the re-reading had read it waited for the next SIGHUP).
- **Several workers**: uvicorn's supervisor restarts them one at a time (:mod:`.supervisor`).
- **During the start** (:class:`EarlyHangups`): ``palsy serve`` records a SIGHUP from its first checks on, and a
  worker from its app's making to its readiness (its model loaded, or fitted after an evidence change: up to
  minutes); a worker of one re-reads once it is ready (second review of s17, #5: a SIGHUP then stopped the service
  with status 0, which ``Restart=on-failure`` leaves down; in s18, one in the sub-second before the app was built
  still did). Several workers read everything when they start, after ``palsy serve``'s checks: a SIGHUP during
  those checks asks nothing more of them.

Until s17 SIGHUP stopped a service of one worker (status 0, logged as SIGTERM) and restarted a service of
several: the same signal meant "stop" in a staging unit of one worker and "reload" in production, and logrotate's
``postrotate`` or ``systemctl reload`` left a one-worker service down under ``Restart=on-failure``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger("palsy.serve")

#: How a failed re-reading (SIGHUP, one worker) begins its line, after the worker's pid (``palsy serve`` reads it).
RELOAD_FAILED = "a reload (SIGHUP) failed: "


class EarlyHangups:
    """SIGHUP while the service or a worker starts, recorded (``requested``) rather than acted on; nothing where
    there is no SIGHUP or outside the main thread. One made while another records (``palsy serve``'s, then the
    worker's) takes over what that one recorded."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None
        self._set = hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread()
        if self._set:
            self._previous = signal.signal(signal.SIGHUP, self._note)
            before = getattr(self._previous, "__self__", None)
            if isinstance(before, EarlyHangups) and before.requested:
                self.requested = True

    def _note(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def restore(self) -> None:
        """Put back the handler found (a handler set outside Python cannot be put back)."""
        if self._set and self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._previous)  # type: ignore[arg-type]
            self._set = False


def on_sighup(reread: Callable[[], None], failed: Callable[[BaseException], str],
              succeeded: Callable[[], None] = lambda: None, early: EarlyHangups | None = None) -> Callable[[], None]:
    """Re-read on SIGHUP (``reread`` in a thread of its own; ``failed(exc)`` the line saying why it failed,
    ``succeeded()`` after one that did; a SIGHUP during a re-reading makes one more after it); the function that
    puts the previous handler back. A SIGHUP ``early`` recorded during the start is acted on now. Nothing where
    there is no SIGHUP or outside the main thread (the only thread a handler may be set in)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return lambda: None
    guard = threading.Lock()
    turn = {"running": False, "again": False}

    def once() -> None:
        try:
            t = time.perf_counter()
            reread()
            succeeded()
            log.info("palsy serve: SIGHUP: the worker re-read its model, evidence and key sets in %.1f s, serving "
                     "throughout", time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - one line; the worker serves on with what it had
            log.error("palsy serve: SIGHUP: the re-reading failed (%s); the worker serves on with what it had",
                      failed(exc))

    def run() -> None:
        with guard:
            if turn["running"]:  # what changed after the running one read it is read by one more
                turn["again"] = True
                log.info("palsy serve: SIGHUP during a re-reading: the worker re-reads once more when it ends")
                return
            turn["running"] = True
        while True:
            once()
            with guard:
                if not turn["again"]:
                    turn["running"] = False
                    return
                turn["again"] = False

    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=run, name="palsy-sighup", daemon=True).start()

    previous = signal.signal(signal.SIGHUP, handler)
    if early is not None and early.requested:
        log.info("palsy serve: SIGHUP during the start: the worker re-reads its start now that it is ready")
        handler(signal.SIGHUP, None)

    def restore() -> None:
        if previous is not None:  # a handler set outside Python cannot be put back
            signal.signal(signal.SIGHUP, previous)

    return restore
