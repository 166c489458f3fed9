"""SIGHUP with one worker: the worker reads again what it read at its start (the model, the evidence and its FHIR
table, the issuers' key sets), as uvicorn's supervisor of several workers restarts them on SIGHUP; it serves on
meanwhile, and a reading that fails leaves it serving with what it had, said in the log and at the end (as a
failed restart of several workers is).

A SIGHUP while the worker starts (its model loaded, or fitted after an evidence change: up to minutes) is recorded
(:class:`EarlyHangups`) and the re-reading runs once the worker is ready (second review of s17, #5: it stopped the
service with status 0, which ``Restart=on-failure`` leaves down). One in the sub-second before the app is built
still reaches ``palsy serve``'s own handler. A re-reading that failed and a later one that succeeded: the failure
is withdrawn (``succeeded``), so the stop no longer says a worker had failed.

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


class EarlyHangups:
    """SIGHUP while the worker starts, recorded (``requested``) rather than acted on; nothing where there is no
    SIGHUP or outside the main thread."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None
        self._set = hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread()
        if self._set:
            self._previous = signal.signal(signal.SIGHUP, self._note)

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
    ``succeeded()`` after one that did); the function that puts the previous handler back. A SIGHUP ``early``
    recorded during the start is acted on now. Nothing where there is no SIGHUP or outside the main thread (the
    only thread a handler may be set in)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return lambda: None
    busy = threading.Lock()

    def run() -> None:
        if not busy.acquire(blocking=False):
            log.info("palsy serve: SIGHUP: a re-reading is already in progress")
            return
        try:
            t = time.perf_counter()
            reread()
            succeeded()
            log.info("palsy serve: SIGHUP: the worker re-read its model, evidence and key sets in %.1f s, serving "
                     "throughout", time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - one line; the worker serves on with what it had
            log.error("palsy serve: SIGHUP: the re-reading failed (%s); the worker serves on with what it had",
                      failed(exc))
        finally:
            busy.release()

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
