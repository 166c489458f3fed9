"""All-or-nothing output sets: every file of a report or a lesson is written, or none is.

The contents are made in memory first; they are written into a hidden staging folder beside the target
(``.staging-<pid>-...``, with its owner recorded inside) and only then moved into place, one rename per
file on the same file system, with SIGINT, SIGTERM and SIGHUP held back during the renames. A failure or
a signal while making or staging leaves the target as it was; a process killed outright (SIGKILL, a
power cut) leaves its staging folder, which the next write into that folder removes, or completes when
the renames had begun (:func:`clean_stale`). Every error names the path it is about.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

STAGING_PREFIX = ".staging-"
#: Inside a staging folder: who made it (process id and start time) and, once the renames have begun,
#: the list of files that belong in the target.
OWNER, COMMIT = ".owner", ".commit"
#: A staging folder older than this is stale even if its owner's process id is in use again and the
#: process start time cannot be read (not Linux).
STALE_SECONDS = 24 * 3600
_HELD = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


#: Checks run before a set is written and again before its renames; each raises to stop the set. The
#: ``palsy`` command registers one that raises its stop once a signal has been received, so that a stop
#: some library swallowed (``except BaseException: pass``) still writes nothing.
_before_writing: list[Callable[[], None]] = []


def before_writing(check: Callable[[], None]) -> None:
    """Register ``check``, run before any set is written and again before its renames (once per check)."""
    if check not in _before_writing:
        _before_writing.append(check)


def _check_before_writing() -> None:
    for check in _before_writing:
        check()


class OutputPathError(ValueError):
    """An output folder given by the user that cannot be written (exit status 2): names the flag and the path."""


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def _stale(stage: Path) -> bool:
    """Whether the process that made ``stage`` is gone: its id is free, or in use by a process that started
    later (Linux), or the folder is older than :data:`STALE_SECONDS` (elsewhere)."""
    try:
        pid_text, _, started = (stage / OWNER).read_text().partition(" ")
        pid, started = int(pid_text), started.strip()
        age = time.time() - (stage / OWNER).stat().st_mtime
    except (OSError, ValueError):  # no owner file: killed before writing it (it is written first)
        try:
            return time.time() - stage.stat().st_mtime > 60
        except OSError:
            return False
    if pid == os.getpid():
        return False  # this process's own set, being written
    if not _alive(pid):
        return True
    if started and (now := _start_time(pid)) is not None:
        return now != started
    return age > STALE_SECONDS


def clean_stale(out: Path) -> list[Path]:
    """Remove the staging folders in ``out`` left by processes that were killed; where a killed process had
    begun moving its files into place (its ``.commit`` list exists), move the rest first, so the set it
    was writing is whole. Returns the staging folders dealt with."""
    done = []
    try:
        candidates = [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()]
    except OSError:
        return done
    for stage in candidates:
        if not _stale(stage):
            continue
        with contextlib.suppress(OSError):
            if (stage / COMMIT).is_file():
                for rel in (stage / COMMIT).read_text(encoding="utf-8").splitlines():
                    if rel and _inside(rel) and (stage / rel).is_file():
                        (out / rel).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(stage / rel, out / rel)
        shutil.rmtree(stage, ignore_errors=True)
        done.append(stage)
    return done


def _inside(rel: str) -> bool:
    """Whether ``rel`` names a place inside the folder (a list in a staging folder is not trusted further)."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts


def put_back_handlers(handlers: dict[int, object]) -> BaseException | None:
    """Set each signal's handler back to the one ``handlers`` gives, all of them, whatever signal arrives
    meanwhile (a handler put back may raise at the next step: the rest are still put back). Returns the
    first exception a signal raised meanwhile (None if none), for the caller to raise."""
    first: BaseException | None = None
    pending = dict(handlers)
    while pending:
        try:
            while pending:
                signum, handler = next(iter(pending.items()))
                signal.signal(signum, handler)
                del pending[signum]
        except BaseException as exc:  # noqa: BLE001  # a signal's exception: finish putting back first
            first = first or exc
    return first


@contextlib.contextmanager
def _signals_held():
    """SIGINT, SIGTERM and SIGHUP wait until the block is done, then are raised again under the handlers
    they would have met (each once; the first whose handler raises ends the re-raising).

    In the main thread, which runs every Python signal handler, each signal that arrives is recorded by a
    stand-in handler. A signal mask would not hold it: it holds a signal back from one thread only, the
    kernel hands the signal to another (the PDF helper's result reader), and Python runs the handler in the
    main thread all the same. The stand-ins are set and put back so that a signal at any step leaves no
    stand-in behind. In any other thread no Python handler can interrupt the block; a signal whose default
    ends the process (or a SIGKILL) leaves the staging folder's list of files, and the next write completes
    the set. Under an asyncio loop's own signal handling (``loop.add_signal_handler``, which also wakes the
    loop through its wakeup file), a signal held here reaches the loop's callback twice."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def stand_in(signum: int, frame) -> None:  # noqa: ARG001
        arrived.append(signum)

    replaced: dict[int, object] = {}
    try:
        for signum in _HELD:
            handler = signal.getsignal(signum)
            if handler is None or handler is signal.SIG_IGN:  # ignored, or set outside Python: left as it is
                continue
            replaced[signum] = handler  # before the stand-in is set: put back whatever happens next
            signal.signal(signum, stand_in)
        yield
    finally:
        failure = put_back_handlers(replaced)
        if failure is not None:
            raise failure
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file name when it has none (a failed write names no file)."""
    if exc.filename is not None:
        return exc
    named = type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    named.__cause__ = exc
    return named


def check_writable(out: str | Path, flag: str = "--out") -> Path:
    """Prove, before any work, that ``out`` can be created (if missing) and written: a probe file is made
    and removed in ``out`` or, if it does not exist yet, in the folder that would hold it (nothing is
    created there).

    Raises
    ------
    OutputPathError
        Naming ``flag`` and the path: a file in the way, no permission, a read-only file system.
    """
    out = Path(out)
    where = next((p for p in (out, *out.parents) if p.exists() or p.is_symlink()), Path("."))
    if not where.is_dir():
        raise OutputPathError(f"{flag}: {str(out)!r}: {where} is not a folder; give a folder palsy can write")
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".palsy-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(f"{flag}: {str(out)!r}: {where} cannot be written ({exc.strerror or exc}); give a "
                              f"folder palsy can write") from None
    return out


def write_all(out: str | Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write ``files`` (path relative to ``out`` -> bytes) into ``out``; return their paths.

    Raises
    ------
    OSError
        If ``out`` cannot be created or written, with the path it is about as its file name (nothing of the
        set is left behind).
    """
    _check_before_writing()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _named(exc, out) from None
    clean_stale(out)
    umask = os.umask(0)
    os.umask(umask)
    try:
        stage = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    except OSError as exc:
        raise _named(exc, out) from None
    try:
        _write(stage / OWNER, f"{os.getpid()} {_start_time(os.getpid()) or ''}".encode(), out, sync=False)
        for rel, data in files.items():
            p = stage / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            _write(p, data, out / rel)
            os.chmod(p, 0o666 & ~umask)  # readable like any file the user creates
        for rel in files:  # every target must be placeable before any is moved
            target = out / rel
            for parent in target.relative_to(out).parents:
                if (out / parent).exists() and not (out / parent).is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"{out / parent} is not a folder (cannot write {target})",
                                             str(out / parent))
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "is a folder", str(target))
            _same_spelling(target)
        _check_before_writing()
        _write(stage / COMMIT, "\n".join(files).encode("utf-8"), out)
        paths = {}
        with _signals_held():  # the renames: all of them, or (killed outright) completed by the next run
            for rel in files:
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / rel, target)
                paths[rel] = target
            shutil.rmtree(stage, ignore_errors=True)  # before a held signal that ends the process takes effect
        return paths
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write(path: Path, data: bytes, shown: Path | None = None, sync: bool = True) -> None:
    """Write ``data`` to ``path``, flushed to the disk (``sync``) so that a rename never publishes a file
    whose bytes a power cut could lose; an OSError names ``shown`` (the target the user knows) rather than
    the staging path."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
    except OSError as exc:
        raise _named(exc, shown or path) from None


def _same_spelling(target: Path) -> None:
    """Refuse to replace a file that exists under another spelling of the name (a file system that ignores
    case: another patient's report), which one rename would silently replace."""
    if not target.exists():
        return
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    if target.name not in names:
        other = next((n for n in names if n.casefold() == target.name.casefold()), "another name")
        raise FileExistsError(errno.EEXIST, f"{target.parent / other} exists and is the same file on this file "
                                            f"system (names that differ only in case); not replaced", str(target))
