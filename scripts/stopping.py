"""A command's stop signals: SIGTERM and SIGHUP unwind a ``palsy`` command as Ctrl-C does.

While a command runs in the main thread (:func:`catch` to :func:`release`), SIGTERM and SIGHUP raise
:class:`Stopped` and Ctrl-C, under Python's own handler, KeyboardInterrupt, so that what the command started
(the PDF helper) is stopped and nothing is left half-written; the exit status is then 128+N. Every signal
received is recorded, so that a stop some library swallowed (``except BaseException: pass``) still ends
the command as stopped and writes no output set of :mod:`palsy.reports.output` (reports, lessons, the check
report, registry files: :func:`raise_if_stopped` runs before each; a fit's cache entry, written through
``model.draws.atomic_write``, is written whole and the status still says stopped). A signal already pending
when the command starts, or arriving as its handlers are put back, is reported the same way. The signals
are unblocked while the command runs: a
blocked mask survives ``fork`` and ``exec``, and a caller's thread that blocks them would otherwise leave
them pending and the command deaf. A Ctrl-C that is ignored (a background job's) stays ignored.

This module, not the command's (``palsy.scripts.palsy``, which may run as ``__main__``), holds the state,
so that every module meets one :class:`Stopped` and one record.
"""

from __future__ import annotations

import dataclasses
import signal
import threading

from palsy.reports import output

#: The signals that stop a command (SIGHUP where the platform has it).
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(BaseException):
    """SIGTERM or SIGHUP: raised in the main thread so that the command unwinds (its ``finally`` blocks and
    context managers run) as for Ctrl-C. A BaseException, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@dataclasses.dataclass
class Caught:
    """What :func:`catch` changed, filled as it goes, so that :func:`release` undoes exactly that even when a
    signal interrupts :func:`catch`."""

    handlers: dict[int, object] = dataclasses.field(default_factory=dict)
    mask: set[int] | None = None
    #: The record of an enclosing command (``main`` called inside a command), put back by :func:`release`;
    #: None when :func:`catch` changed nothing (not the main thread).
    received_before: list[int] | None = None


#: The signals received while the running command runs (the first is the one it reports).
_received: list[int] = []


def name(signum: int) -> str:
    """How a message names ``signum``: ``Ctrl-C`` or the signal's name."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def stop_exception(signum: int) -> BaseException:
    """The exception a stop by ``signum`` unwinds with: KeyboardInterrupt for Ctrl-C, else :class:`Stopped`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def received() -> int | None:
    """The first signal the running command received, or None."""
    return _received[0] if _received else None


def raise_if_stopped() -> None:
    """Raise the running command's stop if it received a signal (registered with
    :func:`palsy.reports.output.before_writing`; outside a command the record is empty)."""
    if _received:
        raise stop_exception(_received[0])


def handled() -> int | None:
    """For a command whose normal end is a stop signal (``palsy serve``, stopped gracefully): the signal
    received (None if none), now taken as handled, so that the command's own status stands."""
    signum = received()
    _received.clear()
    return signum


def _on_signal(signum: int, frame) -> None:  # noqa: ARG001
    _received.append(signum)
    for other in TERMINATING:  # one unwinding: a second signal does not interrupt the cleanup
        if signal.getsignal(other) is _on_signal:  # another's handler (a server's) is left as it is
            signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def _on_interrupt(signum: int, frame) -> None:  # noqa: ARG001
    """Ctrl-C: Python's own KeyboardInterrupt, recorded (a second Ctrl-C still interrupts the cleanup)."""
    _received.append(signum)
    raise KeyboardInterrupt


def catch(caught: Caught) -> None:
    """Set the command's handlers and unblock its signals (in the main thread; elsewhere nothing), writing
    into ``caught`` before each change what it replaces. A signal already pending is handled as the signals
    are unblocked: its stop is raised from here, and :func:`release` still undoes everything."""
    if threading.current_thread() is not threading.main_thread():
        return
    caught.received_before = list(_received)
    _received.clear()
    output.before_writing(raise_if_stopped)
    for signum in TERMINATING:
        old = signal.getsignal(signum)
        if old is None:  # a handler set outside Python: it cannot be put back, so it is left in place
            continue
        caught.handlers[signum] = old
        signal.signal(signum, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not an ignored or a caller's own Ctrl-C
        caught.handlers[signal.SIGINT] = signal.default_int_handler
        signal.signal(signal.SIGINT, _on_interrupt)
    if hasattr(signal, "pthread_sigmask"):
        caught.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        signal.pthread_sigmask(signal.SIG_UNBLOCK, list(caught.handlers))


def release(caught: Caught) -> BaseException | None:
    """Undo :func:`catch`: the handlers, the mask and the enclosing command's record put back, all of them
    whatever signal arrives meanwhile. Returns the stop a signal raised while they were put back (None if
    none), for the caller to report."""
    late = output.put_back_handlers(caught.handlers)
    while caught.mask is not None:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, caught.mask)
            caught.mask = None
        except BaseException as exc:  # noqa: BLE001  # a signal's stop while the mask is put back: finish first
            late = late or exc
    if caught.received_before is not None:
        _received[:] = caught.received_before
    return late


__all__ = ["TERMINATING", "Caught", "Stopped", "catch", "handled", "name", "raise_if_stopped", "received",
           "release", "stop_exception"]
