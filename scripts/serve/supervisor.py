"""SIGHUP with several workers: uvicorn's supervisor restarts them one at a time, each old worker stopped once its new
one is ready (:class:`Supervisor`, made uvicorn.run's by :func:`supervising`).

uvicorn gave a new worker 5 s to be ready (its health check's bound), then killed it and abandoned the restart, said
only in its own log line: a worker that fits the model after an evidence change (a minute) or loads it on a busy
machine (26 s measured in s18) never replaced an old one, and the stop said nothing of it. A new worker now has
:data:`RESTART_READY_SECONDS`, a stop signal ends a restart within :data:`STOPPING_RESTART_SECONDS` (uvicorn took
signals between restarts only), and a restart abandoned is said at the stop. Which signal stopped the supervisor is
known, so that a supervisor that stopped by itself (a worker that failed to start: uvicorn then stops every worker)
is not taken for an operator's stop (it was status 0, "the running ones served on", with no worker running).

Apart from :mod:`.reload`, which ``palsy serve`` imports before its checks: this one imports uvicorn, which a bad
configuration is refused without.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator

from uvicorn.config import Config as UvicornConfig
from uvicorn.supervisors.multiprocess import Multiprocess, Process

#: How long a worker started by a restart (SIGHUP, several workers) may take to be ready before the restart is
#: abandoned and the old worker kept (seconds): a fit after an evidence change takes about a minute on a free machine.
RESTART_READY_SECONDS = 300.0
#: How much longer a restart in progress may go on once a stop signal has come (seconds): then it is abandoned.
STOPPING_RESTART_SECONDS = 10.0


class Supervisor(Multiprocess):
    """uvicorn's supervisor of several workers, which knows what stopped it and gives a restarted worker time.

    ``stopped_by``: the stop signal it took (SIGINT, SIGTERM), None when it stopped by itself (a worker that failed
    to start: uvicorn then stops the service). ``abandoned``: each restart after SIGHUP given up, as (the new
    worker's pid, why: not ready within ``ready_seconds``, :data:`RESTART_READY_SECONDS` unless given, or stopped
    before it was), the old workers serving on (not one a stop signal cut short). Signals are taken in the order they
    came, as uvicorn takes them (a SIGHUP then a SIGTERM: the restart, then the stop); a stop signal that comes during
    a restart, or waits behind it, gives the new worker at most :data:`STOPPING_RESTART_SECONDS` more, then the
    restart is abandoned and the service stops (uvicorn took a signal only once a restart had ended)."""

    def __init__(self, config: UvicornConfig, sockets: list[socket.socket], ready_seconds: float | None = None,
                 restarted: Callable[[], None] | None = None) -> None:
        super().__init__(config, sockets)
        self.ready_seconds = RESTART_READY_SECONDS if ready_seconds is None else ready_seconds
        self.restarted = restarted
        self.stopped_by: int | None = None
        self.abandoned: list[tuple[int | None, str]] = []
        self._stop_asked: float | None = None  # when a stop signal came (monotonic)
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self._stop)

    def _stop(self, signum: int, _frame: object) -> None:
        if self.stopped_by is None:
            self.stopped_by, self._stop_asked = signum, time.monotonic()
        self.signal_queue.append(signum)  # uvicorn's own handler: taken in the loop, after the signals before it

    def _ready(self, new: Process) -> bool:
        """Whether ``new`` became ready: False when it stopped first, or was not ready within ``ready_seconds``, or
        within :data:`STOPPING_RESTART_SECONDS` of a stop signal."""
        deadline = time.monotonic() + self.ready_seconds
        while new.process.is_alive():
            if new.is_ready(timeout=1):
                return True
            now = time.monotonic()
            if now > deadline or (self._stop_asked is not None and now > self._stop_asked + STOPPING_RESTART_SECONDS):
                return False
            time.sleep(0.1)
        return False

    def restart_all(self) -> None:
        """Replace each worker by a new one, the old stopped once the new is ready (uvicorn's, with
        ``ready_seconds`` for uvicorn's 5 s); a new worker that is not ready in time, or stops first, is stopped,
        the old ones kept, and the restart abandoned (said in the log and in ``abandoned``). A restart that replaced
        every worker withdraws the earlier ones' failures (``abandoned`` emptied, ``restarted()`` called), as a
        successful re-reading of one worker does."""
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set() or (self._stop_asked is not None and idx):
                return
            new = Process(self.config, self.sockets)
            new.start()
            if self._ready(new):
                old.terminate()
                old.join()
                self.processes[idx] = new
                continue
            exited = not new.process.is_alive()
            new.kill()
            new.join()
            if self._stop_asked is not None and not exited:  # the operator's stop cut it short: no failure
                logging.getLogger("uvicorn.error").warning(
                    "palsy serve: SIGHUP: the restart was abandoned for the stop (worker %s was not ready)", new.pid)
                return
            why = (f"worker {new.pid} stopped before it was ready" if exited else
                   f"worker {new.pid} was not ready within {self.ready_seconds:g} s")
            self.abandoned.append((new.pid, why))
            logging.getLogger("uvicorn.error").error(
                "palsy serve: SIGHUP: the restart was abandoned (%s); worker %s and the others serve on as they were",
                why, old.pid)
            return
        # every worker replaced: what an earlier restart left undone is done, and no longer said at the stop
        self.abandoned.clear()
        if self.restarted is not None:
            self.restarted()


@contextlib.contextmanager
def supervising(restarted: Callable[[], None] | None = None) -> Iterator[list[Supervisor]]:
    """For the time of the block, ``uvicorn.run`` supervises several workers by a :class:`Supervisor` (``restarted``
    its call after a restart that replaced every worker), which the list yielded receives (to be read once
    ``uvicorn.run`` returns). uvicorn.run makes its supervisor from the name ``Multiprocess`` of its own module
    (uvicorn 0.54, which palsy pins), and takes no class for it."""
    um = importlib.import_module("uvicorn.main")  # the module: the package's name ``main`` is its click command

    made: list[Supervisor] = []

    class Made(Supervisor):
        def __init__(self, config: UvicornConfig, sockets: list[socket.socket]) -> None:
            super().__init__(config, sockets, restarted=restarted)
            made.append(self)

    before = um.Multiprocess
    um.Multiprocess = Made
    try:
        yield made
    finally:
        um.Multiprocess = before
