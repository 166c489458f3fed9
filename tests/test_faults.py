"""Issue 21 (hardening, second round): faults injected, each class closed.

Signals at several phases of report, fit, teach and check (in-process through ``palsy.scripts.palsy.main``,
whose handlers turn SIGTERM into an unwinding; and from outside, SIGTERM and SIGKILL to real processes), a
full or failing disk (an injected write error, and a tiny tmpfs where one can be mounted), corrupt cache
entries (a truncated netCDF, another entry's draws, a corrupt JAX compilation-cache entry) and hostile
evidence (a ``javascript:`` reference URL). Cheap by design: no test here compiles a model; a "fit" is the
real ``fit._fit`` on the session's stored sampler output (:func:`fake_sampler`)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import pytest

from palsy.model import cache as C
from palsy.model import draws as draws_io
from palsy.model import fit
from palsy.reports import output
from palsy.scripts import palsy as P
from palsy.scripts import stopping as S
from tests.conftest import PATIENTS, REPO

PATIENT = str(PATIENTS / "source-001.yaml")


@pytest.fixture
def light_patient(tmp_path) -> str:
    """A patient file with two findings: its answer takes a fraction of a source patient's."""
    f = tmp_path / "light.yaml"
    f.write_text("id: light\nlineage: T-ALL\nlaterality: unilateral\n")
    return str(f)
SMALL = C.Settings(draws=100, tune=100, chains=4, seed=3)
FLAGS = ["--variant", "independent"]


# --- helpers ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_fit(posterior_independent):
    """The session fit's NUTS output, 25 draws a chain, and its diagnostics (read with xarray: ArviZ's
    import alone takes seconds)."""
    import xarray as xr

    with xr.open_datatree(posterior_independent.folder / "posterior.nc", engine="h5netcdf") as stored:
        dt = stored.isel(draw=slice(0, 25)).load()
    for group in ("log_likelihood", "log_prior"):
        if group in dt.children:
            del dt[group]
    return dt, posterior_independent.diagnostics


@pytest.fixture
def fake_sampler(stored_fit, monkeypatch):
    """``fit.sample`` replaced by the session fit's stored NUTS output (and ``fit.diagnostics`` by its
    diagnostics, which take seconds): the rest of the fit (rate block, predictive, orderings, netCDF,
    draws.npz, the cache and its lock) runs as it is, in about half a second. Returns the variants sampled."""
    stored, diagnostics = stored_fit
    calls: list[str] = []

    def sample(variant, ev, settings=C.Settings(), **kwargs):  # data, weights_one, progress and what comes
        calls.append(variant)
        return stored.copy(deep=True), fit.D.build(ev, ev.variant(variant), weights_one=kwargs.get("weights_one", False),
                                                   synthesis=settings.synthesis)

    monkeypatch.setattr(fit, "sample", sample)
    monkeypatch.setattr(fit, "diagnostics", lambda dt: diagnostics)
    return calls


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache of this test's own."""
    root = tmp_path / "cache"
    monkeypatch.setenv("PALSY_CACHE", str(root))
    return root


def _main(*argv: str, capsys) -> tuple[int, str, str]:
    code = P.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _raise_in_main(signum: int):
    """A function that delivers ``signum`` to this process, as ``kill`` would, while ``main`` runs (refused,
    rather than killing the test worker, when main's handler is not in place)."""
    def deliver(*args, **kwargs):
        if signal.getsignal(signum) not in (S._on_signal, S._on_interrupt):
            raise AssertionError("palsy's signal handler is not installed (not the main thread?)")
        signal.raise_signal(signum)
        time.sleep(0.1)  # the handler runs at the next bytecode
        raise AssertionError("the signal did not stop the command")
    return deliver


needs_main_thread = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                       reason="signal handlers are set in the main thread only")


@pytest.fixture
def ctrl_c_at_a_terminal():
    """Ctrl-C under Python's own handler, as in a terminal: the tests may run as a background job (CI's, or
    `make test &`), whose SIGINT the shell ignores, and palsy leaves an ignored Ctrl-C ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie that nobody reaps counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return "\nState:\tZ" in state or "\nState:\tX" in state


def _wait_gone(pid: int, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (Linux /proc)."""
    out = []
    for child in _children(pid):
        out += [child, *_descendants(child)]
    return out


def _comm(pid: int) -> str:
    """The command name of ``pid`` ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _cmdline(pid: int) -> bytes:
    """The command line of process ``pid`` (Linux /proc; empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _signal_status(pid: int) -> str:
    """Process ``pid``'s signal masks (blocked, ignored, caught), as /proc shows them: what a failure prints."""
    try:
        return " ".join(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError:
        return "gone"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- 1. signals at several phases -------------------------------------------------------------------

@needs_main_thread
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.usefixtures("ctrl_c_at_a_terminal")
def test_report_stopped_while_answering_stops_its_pdf_helper(palsy, light_patient, tmp_path, monkeypatch, capsys, signum,
                                                             status):
    """SIGTERM or Ctrl-C while the answers are made: the PDF helper (already started) is stopped at once,
    nothing is written, the exit status says which signal."""
    from palsy.reports import context, pdf

    helpers: list[int] = []
    real_init = pdf.Printer.__init__

    def init(self, helper=True):
        real_init(self, helper)
        helpers.append(self.pid)

    monkeypatch.setattr(pdf.Printer, "__init__", init)
    monkeypatch.setattr(context, "build", _raise_in_main(signum))
    out = tmp_path / "out"
    code, stdout, err = _main("report", light_patient, "--out", str(out), *FLAGS, capsys=capsys)
    assert code == status and "stopped" in err and "Traceback" not in err, err
    assert helpers and helpers[0] is not None and _wait_gone(helpers[0], 5), "the PDF helper outlived the command"
    assert not out.exists() and stdout == ""
    assert signal.getsignal(signal.SIGTERM) is not S._on_signal  # the caller's handlers are back


@needs_main_thread
@pytest.mark.parametrize("signum, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
@pytest.mark.usefixtures("ctrl_c_at_a_terminal")
def test_a_stop_that_a_library_swallowed_still_ends_the_command_as_stopped(palsy, light_patient, tmp_path, monkeypatch,
                                                                          capsys, signum, status, name):
    """SIGTERM or Ctrl-C whose exception some code caught (``except BaseException: pass``) and went on from:
    the command still exits 128+N, says it was stopped (never 0) and writes nothing."""
    from palsy.reports import context

    real_build = context.build

    def build(*args, **kwargs):
        try:
            _raise_in_main(signum)()
        except BaseException:  # noqa: BLE001, S110  # the library that swallows the stop
            pass
        return real_build(*args, **kwargs)

    monkeypatch.setattr(context, "build", build)
    code, _, err = _main("report", light_patient, "--out", str(tmp_path / "out"), "--format", "html", *FLAGS, capsys=capsys)
    assert code == status and f"stopped ({name})" in err, (code, err)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(context, "build", real_build)
    code, _, err = _main("report", light_patient, "--out", str(tmp_path / "again"), "--format", "html", *FLAGS,
                         capsys=capsys)
    assert code == 0, err  # the next command in the same process is not taken for stopped


@needs_main_thread
def test_output_set_stopped_while_staging_or_committing_is_never_partial(tmp_path, monkeypatch):
    """SIGTERM (under palsy's handler) while a set is staged: no file of it is in --out and the staging
    folder is gone; SIGTERM during the renames: held back until every file is in place. The signal is sent
    to the process, which has another thread (as `palsy report` has its PDF helper's result reader): the
    kernel may hand it to that thread, and Python still runs the handler in the main thread."""
    out = tmp_path / "out"
    files = {"a.html": b"a", "a.pdf": b"%PDF", "figures/b.png": b"png"}
    other_thread_ends = threading.Event()
    other = threading.Thread(target=other_thread_ends.wait, daemon=True)
    other.start()
    caught = S.Caught()
    S.catch(caught)
    try:
        real_write = output._write
        monkeypatch.setattr(output, "_write", lambda path, data, *args, **kwargs: (
            _raise_in_main(signal.SIGTERM)() if path.suffix == ".pdf" else real_write(path, data, *args, **kwargs)))
        with pytest.raises(S.Stopped):
            output.write_all(out, files)
        assert _leftovers(out) == []  # no file of the set, no .staging-* folder
        monkeypatch.setattr(output, "_write", real_write)
        again = S.Caught()  # the handler ignores a second signal while unwinding: a new command's handlers
        S.catch(again)
        try:
            real_replace = os.replace
            moved: list[str] = []

            def replace(src, dst):
                if not moved:  # arrives in the middle of the renames: held back
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.05)  # a handler run now would interrupt the renames
                moved.append(Path(dst).name)
                return real_replace(src, dst)

            monkeypatch.setattr(output.os, "replace", replace)
            with pytest.raises(S.Stopped):
                output.write_all(out, files)
            monkeypatch.setattr(output.os, "replace", real_replace)
        finally:
            S.release(again)
        assert sorted(moved) == ["a.html", "a.pdf", "b.png"]
        assert _leftovers(out) == ["a.html", "a.pdf", "figures"] and _leftovers(out / "figures") == ["b.png"]
    finally:
        S.release(caught)
        other_thread_ends.set()
    output.write_all(tmp_path / "after", {"x.html": b"x"})  # no command runs: no stop of theirs refuses a set


@needs_main_thread
@pytest.mark.parametrize("command, target", [
    ("teach", "palsy.scripts.commands.common.load_draws"),
    ("check", "palsy.model.fit.posterior"),
])
def test_teach_and_check_stopped_leave_nothing(palsy, tmp_path, monkeypatch, capsys, command, target):
    import importlib

    module, _, name = target.rpartition(".")
    monkeypatch.setattr(importlib.import_module(module), name, _raise_in_main(signal.SIGTERM))
    out = tmp_path / "out"
    code, _, err = _main(command, "--out", str(out), "--variant", "independent", capsys=capsys) if command == "teach" \
        else _main(command, "--out", str(out), "--no-refit", capsys=capsys)
    assert code == 143, err
    assert not out.exists()


@needs_main_thread
def test_fit_stopped_while_sampling_or_writing_leaves_no_entry(fake_sampler, cache, evidence, monkeypatch, capsys):
    """A fit stopped while it samples, or while it writes the cache entry: no file of the entry, no temporary
    file, and the entry's lock is free (the next request fits at once)."""
    real_sample = fit.sample
    monkeypatch.setattr(fit, "sample", _raise_in_main(signal.SIGTERM))
    code, _, err = _main("fit", "--variant", "independent", capsys=capsys)
    assert code == 143, err
    monkeypatch.setattr(fit, "sample", real_sample)

    real_write = draws_io.write_bytes
    monkeypatch.setattr(draws_io, "write_bytes", lambda path, data: (
        _raise_in_main(signal.SIGTERM)() if path.name == "draws.npz" else real_write(path, data)))
    code, _, err = _main("fit", "--variant", "independent", capsys=capsys)
    assert code == 143, err
    monkeypatch.setattr(draws_io, "write_bytes", real_write)
    entries = [p for p in cache.iterdir() if p.is_dir() and p.name.startswith("independent-")]
    assert entries and all(_leftovers(e) == [] for e in entries), [_leftovers(e) for e in entries]
    import filelock

    for lock in cache.glob(".independent-*.lock"):  # released: another process's request would not wait
        held = filelock.FileLock(str(lock))
        held.acquire(timeout=1)
        held.release()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc (Linux)")
def test_report_killed_from_outside_leaves_no_process_and_no_partial_output(palsy, tmp_path):
    """SIGTERM to a running `palsy report` once its PDF helper is up: exit 143, the helper gone, nothing
    written, even when palsy was started with SIGTERM and SIGHUP blocked (a mask survives exec: a caller's
    thread that blocks them, as a job runner's may, must not leave the command deaf to them). SIGKILL to a
    process that holds a PDF helper and is staging a set of files: the helper dies with it
    (PR_SET_PDEATHSIG on Linux, its parent watch elsewhere), the caller's pipe is closed at once (no helper
    or resource tracker holds it), only the hidden staging folder is left, and the next write into that
    folder removes it."""
    out = tmp_path / "out"
    env = {**os.environ}
    # three patients' reports: the signal lands while they are made
    every = [str(p) for p in sorted(PATIENTS.glob("*.yaml"))]
    blocked = ("import os, signal, sys\n"
               "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})\n"
               "os.execv(sys.executable, [sys.executable, '-m', 'palsy.scripts.palsy', *sys.argv[1:]])\n")
    proc = subprocess.Popen([sys.executable, "-c", blocked, "report", *every, "--out", str(out), *FLAGS],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    helper = None
    end = time.monotonic() + 60
    while helper is None and time.monotonic() < end and proc.poll() is None:
        helper = next((p for p in _children(proc.pid) if b"palsy.reports.pdf" in _cmdline(p)), None)
        time.sleep(0.02)
    assert helper is not None, proc.communicate()
    status, sent = _signal_status(proc.pid), time.monotonic()
    proc.send_signal(signal.SIGTERM)
    written, err = proc.communicate(timeout=60)
    # what a failure shows: the process's signal masks when the signal was sent, and how long it then ran
    assert proc.returncode == 143, (err, written, status, f"ended {time.monotonic() - sent:.1f} s after SIGTERM")
    if b"had gone on" in err:  # a library swallowed the stop: handled (nothing written), but worth knowing which
        warnings.warn(f"palsy report went on after SIGTERM until its end: {err.decode(errors='replace')}", stacklevel=1)
    assert _wait_gone(helper, 5) and not out.exists()

    driver = (
        "import sys, time\n"
        "from palsy.reports import output, pdf\n"
        "real = output._write\n"
        "def stall(path, data, *args, **kwargs):\n"
        "    if path.suffix == '.pdf':\n"
        "        print('staging', printer.pid, flush=True); time.sleep(120)\n"
        "    return real(path, data, *args, **kwargs)\n"
        "output._write = stall\n"
        "with pdf.Printer() as printer:\n"
        f"    output.write_all({str(out)!r}, {{'a.html': b'html', 'a.pdf': b'pdf'}})\n")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    word, helper = proc.stdout.readline().split()
    assert word == b"staging"
    # the helper's Chromium (under Playwright's driver) up, and every process under the helper recorded
    family: list[int] = []
    end = time.monotonic() + 60
    while time.monotonic() < end and not any("chrom" in _comm(p) for p in family):
        family = _descendants(int(helper))
        time.sleep(0.1)
    assert any("chrom" in _comm(p) for p in family), [_comm(p) for p in family]
    proc.kill()
    t = time.monotonic()
    assert proc.stdout.read() == b"" and time.monotonic() - t < 5  # end of file: nobody else holds the pipe
    proc.wait()
    assert _wait_gone(int(helper), 5), "the PDF helper outlived its killed parent"
    assert all(_wait_gone(p, 10) for p in family), [(p, _comm(p)) for p in family if not _gone(p)]  # its Chromium too
    left = _leftovers(out)
    assert len(left) == 1 and left[0].startswith(output.STAGING_PREFIX), left  # only the hidden staging folder
    output.write_all(out, {"x.html": b"x"})
    assert _leftovers(out) == ["x.html"]  # the killed run's staging folder is gone


@needs_main_thread
@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_command_unblocks_the_signals_it_handles_and_puts_the_mask_back(monkeypatch):
    """A caller's blocked SIGTERM and SIGHUP (a mask survives exec) are unblocked while a command runs, so
    that they stop it; the caller's mask, and its handlers, are back after it."""
    seen = {}
    monkeypatch.setattr(P, "_main", lambda argv: seen.update(mask=signal.pthread_sigmask(signal.SIG_BLOCK, []),
                                                             term=signal.getsignal(signal.SIGTERM)) or 0)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})
    try:
        assert P.main([]) == 0
        after = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert seen["term"] is S._on_signal
    assert not {signal.SIGTERM, signal.SIGHUP} & seen["mask"], seen["mask"]
    assert {signal.SIGTERM, signal.SIGHUP} <= after
    assert signal.getsignal(signal.SIGTERM) is not S._on_signal


@needs_main_thread
def test_an_ignored_ctrl_c_stays_ignored_while_a_command_runs(monkeypatch):
    """A command started in the background (SIGINT ignored by the shell) is not stopped by Ctrl-C: palsy
    leaves the ignored signal as it is, and neither takes it over nor unblocks it."""
    seen = {}
    monkeypatch.setattr(P, "_main", lambda argv: seen.update(handler=signal.getsignal(signal.SIGINT)) or 0)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert P.main([]) == 0
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, old)
    assert seen["handler"] is signal.SIG_IGN and after is signal.SIG_IGN


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_sigterm_pending_when_palsy_starts_stops_it_with_143():
    """A SIGTERM sent while the caller had it blocked is pending when palsy starts: it is handled as the
    command unblocks it, and the command ends with 143 and its message (it had escaped main: exit 1 and a
    traceback, a review found)."""
    code = ("import os, signal, sys\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'palsy.scripts.palsy', '--version'])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 143 and proc.stderr.strip() == "palsy: stopped (SIGTERM)", proc.stderr


@needs_main_thread
def test_a_stop_as_the_handlers_are_put_back_is_reported_and_every_handler_is_back(monkeypatch, capsys):
    """A signal that arrives while a command's handlers are put back: every handler and the mask are still
    put back, and the command reports the stop (128+N) rather than letting it escape."""
    real = output.put_back_handlers

    def put_back_with_a_signal(handlers):
        try:
            signal.raise_signal(signal.SIGTERM)  # palsy's handler is still in place
        except S.Stopped as exc:
            return real(handlers) or exc
        raise AssertionError("palsy's handler did not raise")

    monkeypatch.setattr(P, "_main", lambda argv: 0)
    monkeypatch.setattr(S.output, "put_back_handlers", put_back_with_a_signal)
    before = signal.getsignal(signal.SIGTERM)
    assert P.main([]) == 143
    assert "palsy: stopped (SIGTERM)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


@needs_main_thread
def test_handlers_are_all_put_back_when_a_signal_arrives_between_two(monkeypatch):
    """``put_back_handlers``: a handler put back raises at the next step (a Ctrl-C arrives just after it);
    the other handlers are still put back, and the exception is returned."""
    stand_in = signal.signal(signal.SIGINT, lambda *_: None)
    term = signal.signal(signal.SIGTERM, lambda *_: None)
    real_signal = signal.signal

    interrupted: list[int] = []

    def set_then_interrupted(signum, handler):
        old = real_signal(signum, handler)
        if signum == signal.SIGINT and not interrupted:  # once: its restored handler raises before SIGTERM's
            interrupted.append(signum)
            signal.raise_signal(signal.SIGINT)
        return old

    monkeypatch.setattr(output.signal, "signal", set_then_interrupted)
    try:
        late = output.put_back_handlers({signal.SIGINT: signal.default_int_handler, signal.SIGTERM: term})
    finally:
        monkeypatch.undo()
    try:
        assert isinstance(late, KeyboardInterrupt)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and signal.getsignal(signal.SIGTERM) is term
    finally:
        signal.signal(signal.SIGINT, stand_in)
        signal.signal(signal.SIGTERM, term)


@needs_main_thread
def test_a_command_inside_a_command_or_another_thread_keeps_the_outer_ones_stop(monkeypatch):
    """``main`` called inside a command (in the same thread, or in another) does not erase the stop the outer
    command received and some code swallowed: the outer command still exits 143 and writes nothing."""
    def outer_or_inner(argv):
        if argv != ["outer"]:
            return 0
        try:
            signal.raise_signal(signal.SIGTERM)
        except S.Stopped:
            pass  # swallowed
        assert P.main(["inner"]) == 0
        worker = threading.Thread(target=P.main, args=(["inner"],))
        worker.start()
        worker.join()
        return 0

    monkeypatch.setattr(P, "_main", outer_or_inner)
    assert P.main(["outer"]) == 143


def test_a_sigterm_with_its_default_during_the_renames_ends_the_process_after_them(tmp_path):
    """A library user's process, SIGTERM under its default action, gets it during the renames: the process
    ends by it only once every file is in place and the staging folder is removed."""
    out = tmp_path / "out"
    driver = ("import os, signal\n"
              "from palsy.reports import output\n"
              "real = os.replace\n"
              "def replace(src, dst):\n"
              "    if not hasattr(replace, 'sent'):\n"
              "        replace.sent = os.kill(os.getpid(), signal.SIGTERM)\n"
              "    return real(src, dst)\n"
              "os.replace = replace\n"
              f"output.write_all({str(out)!r}, {{'a.html': b'a', 'b/c.png': b'c'}})\n"
              "print('not ended by the signal')\n")
    proc = subprocess.run([sys.executable, "-c", driver], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, proc.stdout, proc.stderr)
    assert _leftovers(out) == ["a.html", "b"] and _leftovers(out / "b") == ["c.png"]


def test_stale_staging_folders_are_removed_or_completed(tmp_path):
    """Staging folders of dead processes (or of a reused process id) are removed; one whose renames had begun
    is completed first; a live process's own is kept."""
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    parent = os.getppid()
    started = output._start_time(parent)

    def stage(name: str, owner: str | None, files: dict[str, bytes], commit: bool = False) -> Path:
        d = out / f"{output.STAGING_PREFIX}{name}"
        d.mkdir()
        if owner is not None:
            (d / output.OWNER).write_text(owner)
        for rel, data in files.items():
            (d / rel).write_bytes(data)
        if commit:
            (d / output.COMMIT).write_text("\n".join(files) + "\n../escape.html")
        return d

    gone = stage("dead", f"{dead_pid} 1", {"a.html": b"half"})
    half_moved = stage("commit", f"{dead_pid} 1", {"b.html": b"b", "c.pdf": b"c"}, commit=True)
    live = stage("live", f"{parent} {started or ''}", {"d.html": b"d"})
    reused = stage("reused", f"{parent} 1", {"e.html": b"e"}) if started else None
    (out / "escape.html").write_bytes(b"not to be moved out of --out")  # what '../escape.html' would reach
    removed = output.clean_stale(out)
    assert gone in removed and half_moved in removed and live not in removed
    assert not gone.exists() and not half_moved.exists() and live.exists()
    assert (out / "b.html").read_bytes() == b"b" and (out / "c.pdf").read_bytes() == b"c"
    assert not (out / "a.html").exists() and (out / "escape.html").exists() and not (tmp_path / "escape.html").exists()
    if reused is not None:  # Linux: a live pid with another start time is another process
        assert reused in removed and not reused.exists()


# --- 2. a full or failing disk ------------------------------------------------------------------------

def _fail(code: int):
    def fsync(fd):
        raise OSError(code, os.strerror(code))
    return fsync


def test_full_cache_disk_still_prints_the_answer(fake_sampler, cache, monkeypatch, capsys, code=errno.ENOSPC):
    """A cold query whose cache write fails (the fit done, posterior.nc cannot be written): a warning naming
    the path, the answer printed, exit 0; nothing of the entry is left, and the next query fits again."""
    monkeypatch.setattr(draws_io.os, "fsync", _fail(code))
    status, out, err = _main("posterior", "--patient", PATIENT, *FLAGS, capsys=capsys)
    assert status == 0, err
    assert "P(leukemic infiltration | findings)" in out and "Model: independent variant" in out
    assert "warning: cannot write the cache entry" in err and "posterior.nc" in err and os.strerror(code) in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert err.count("cannot write") == 1
    entries = [p for p in cache.iterdir() if p.is_dir() and p.name.startswith("independent-")]
    assert entries and all(_leftovers(e) == [] for e in entries), [_leftovers(e) for e in entries]


def test_cache_write_failing_at_the_draws_warns_once_and_fit_says_so(fake_sampler, cache, monkeypatch, capsys):
    """The netCDF written, draws.npz not (an I/O error): `palsy fit` prints the diagnostics, says the cache
    was not written and exits 1; the entry is removed, so no half entry is ever read."""
    real = draws_io.write_bytes

    def write_bytes(path, data):
        if path.name == "draws.npz":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real(path, data)

    monkeypatch.setattr(draws_io, "write_bytes", write_bytes)
    status, out, err = _main("fit", "--variant", "independent", capsys=capsys)
    assert status == 1 and "cache: not written" in out and "draws.npz" in err and err.count("cannot write") == 1, (out, err)
    entries = [p for p in cache.iterdir() if p.is_dir() and p.name.startswith("independent-")]
    assert all(_leftovers(e) == [] for e in entries)


def test_full_output_disk_names_the_path_and_writes_nothing(palsy, light_patient, tmp_path, monkeypatch, capsys):
    """--out on a full disk: exit 1 (the system failed, not the input), the message names the file, and
    neither a report file nor a staging folder is left."""
    import collections

    from palsy.reports import render

    monkeypatch.setattr(render, "svg_images", lambda ctx: collections.defaultdict(str))  # figures: not the point
    monkeypatch.setattr(output.os, "fsync", _fail(errno.ENOSPC))
    out = tmp_path / "out"
    status, _, err = _main("report", light_patient, "--out", str(out), "--format", "html", *FLAGS, capsys=capsys)
    assert status == 1, err
    assert str(out / "light.html") in err and "No space left on device" in err and "internal error" not in err
    assert _leftovers(out) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [("posterior", "--lineage", "AML"), ("posterior", "--lineage", "AML", "--json"),
                                  ("evidence",)])
def test_a_full_standard_output_is_the_systems_failure_not_an_internal_error(args):
    """s16 attack review U1: an answer printed to a full disk read 'internal error: OSError: [Errno 28]'."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "palsy", *args], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "the system failed writing the output (standard output): No space left on device" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_full_cache_disk_is_a_warning_before_the_fit_not_bad_input(cache, monkeypatch):
    """Before a fit: little free space, or a probe write that fails for lack of space, is warned about (the
    fit goes on, uncached); a cache path that cannot be written for another reason stays bad input."""
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(C.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.warns(UserWarning, match="only 1 MB free"):
        assert C.check_root() == cache
    monkeypatch.undo()
    monkeypatch.setenv("PALSY_CACHE", str(cache))
    if os.path.exists("/dev/full"):  # the kernel's own ENOSPC: every write to it fails so
        dummy = cache / "probe"
        monkeypatch.setattr(C.tempfile, "mkstemp", lambda **kw: (dummy.touch(), os.open("/dev/full", os.O_WRONLY))[1:]
                            + (str(dummy),))
        with pytest.warns(UserWarning, match="No space left on device.*not be cached"):
            C.check_root()

    def read_only(**kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(C.tempfile, "mkstemp", read_only)
    with pytest.raises(C.CacheError, match="Read-only file system"):
        C.check_root()


def test_unwritable_out_is_found_before_any_work(tmp_path, monkeypatch, capsys):
    """teach, report and check prove --out writable before loading a posterior (teach fitted for 40 s first)."""
    from palsy.scripts.commands import common

    def no_work(*args, **kwargs):
        raise AssertionError("worked before checking --out")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(common, "load_draws", no_work)
    monkeypatch.setattr(fit, "posterior", no_work)
    monkeypatch.setattr(output.tempfile, "mkstemp", denied)
    for argv in (["teach"], ["report", PATIENT], ["check"]):
        status, _, err = _main(*argv, "--out", str(tmp_path / "o"), capsys=capsys)
        assert status == 2 and "--out" in err and "cannot be written" in err and "Permission denied" in err, err
        assert not (tmp_path / "o").exists()


def _tmpfs_run(tmp_path: Path, script: str) -> dict:
    """Run ``script`` (Python) with a 64 kB tmpfs mounted at ``tmp_path/small`` in a mount namespace of its own
    (``unshare``, no root needed where user namespaces are allowed); skip where that cannot be had."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        pytest.skip("needs util-linux unshare (Linux) to mount a small file system without root")
    small = tmp_path / "small"
    small.mkdir()
    probe = subprocess.run([unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {small}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()[:200]}")
    code = subprocess.run([unshare, "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$1" && exec "$2" -c "$3"',
                           "sh", str(small), sys.executable, script], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert code.returncode == 0, code.stderr[-3000:]
    return json.loads(code.stdout.splitlines()[-1])


def test_a_really_full_disk_for_out_and_cache(posterior_independent, tmp_path):
    """The same faults on a real 64 kB file system: an output set (the report's write: OSError naming the
    file, exit status 1, nothing left) and the cache's writer (draws.npz: a warning naming it, False,
    nothing left, no crash)."""
    small = tmp_path / "small"
    script = f"""
import json, os, warnings
from pathlib import Path
from palsy.model import draws as draws_io
from palsy.reports import output
from palsy.scripts import palsy as P
result = {{}}
try:
    output.write_all({str(small / "out")!r}, {{"a.html": b"h" * 20_000, "a.pdf": os.urandom(200_000)}})
    result["out"] = None
except OSError as exc:
    result["out"] = [P.exit_status(exc), P._message("report", exc), sorted(os.listdir({str(small / "out")!r}))]
draws = draws_io.load(Path({str(posterior_independent.folder / "draws.npz")!r}))
entry = Path({str(small / "cache" / "independent-0")!r})
entry.mkdir(parents=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    saved = draws_io.save(entry / "draws.npz", draws)
result["cache"] = [saved, [str(w.message) for w in caught], sorted(os.listdir(entry))]
print(json.dumps(result))
"""
    got = _tmpfs_run(tmp_path, script)
    assert got["out"] is not None, "the set fitted in 64 kB"
    status, message, listing = got["out"]
    assert status == 1 and message == f"palsy report: {small / 'out' / 'a.pdf'}: No space left on device", message
    assert listing == []
    saved, caught, listing = got["cache"]
    assert saved is False and listing == [], got["cache"]
    assert len(caught) == 1 and "draws.npz" in caught[0] and "No space left on device" in caught[0], caught


# --- 3. corrupt cache entries -------------------------------------------------------------------------

def test_truncated_netcdf_is_not_trusted(fake_sampler, cache, evidence, capsys):
    """A truncated posterior.nc: not "ok (cache)"; the entry is removed and refitted, with one warning."""
    first = fit.posterior("independent", evidence)
    nc = first.folder / "posterior.nc"
    nc.write_bytes(nc.read_bytes()[: nc.stat().st_size // 2])
    status, out, err = _main("fit", "--variant", "independent", capsys=capsys)
    assert "(cache)" not in out and "fitted in" in out, out
    assert err.count("cached posterior is corrupt") == 1 and "posterior.nc" in err, err
    assert len(fake_sampler) == 2
    again = fit.posterior("independent", evidence)
    assert again.from_cache
    draws_io.verify_entry(again.folder)


def test_draws_of_another_entry_are_refused(fake_sampler, cache, evidence, capsys):
    """draws.npz (with its checksum) copied from another entry, or another variant's folder: refused on the
    answer path and by the fit, the entry removed and refitted."""
    a = fit.posterior("independent", evidence)
    b = C.folder(evidence.hash, "independent", C.Settings(seed=5))
    shutil.copytree(a.folder, b)  # another entry's files, checksums and all
    with pytest.raises(draws_io.CorruptDraws, match="draws of entry"):
        draws_io.load(b / "draws.npz")
    other_variant = cache / ("subtype-" + a.folder.name.split("-", 1)[1])
    shutil.copytree(a.folder, other_variant)
    with pytest.raises(draws_io.CorruptDraws, match="variant 'independent'"):
        draws_io.load(other_variant / "draws.npz")
    with pytest.warns(UserWarning, match="corrupt"):
        refit = fit.posterior("independent", evidence, C.Settings(seed=5))
    assert not refit.from_cache and refit.draws.meta["settings"]["seed"] == 5
    assert draws_io.load(b / "draws.npz").meta[draws_io.ENTRY_KEY]["name"] == b.name


def test_corrupt_jax_cache_entry_is_removed(fake_sampler, cache, evidence):
    """A JAX compilation-cache entry that cannot be read back (truncated) is removed before the next fit; a
    good one, and one being written now, are kept."""
    if C._decompressor() is not C._zlib_whole:
        pytest.skip("JAX compresses its entries with zstd here")
    jax = cache / "jax"
    jax.mkdir(parents=True)
    entry = zlib.compress(b"\0\0\0\1" + os.urandom(4000) + b"executable" * 100)  # as JAX writes them
    good = jax / "jit__fun-good-cache"
    good.write_bytes(entry)
    bad = jax / "jit__fun-bad-cache"
    bad.write_bytes(entry[:-3])  # truncated by a killed process
    (jax / "jit__fun-bad-atime").write_bytes(b"12345678")
    busy = jax / "jit__fun-busy-cache"
    busy.write_bytes(b"half")
    old = time.time() - 3600
    for f in (good, bad, jax / "jit__fun-bad-atime"):
        os.utime(f, (old, old))
    fit.posterior("independent", evidence)
    assert good.exists() and busy.exists() and not bad.exists() and not (jax / "jit__fun-bad-atime").exists()


# --- 4. hostile evidence --------------------------------------------------------------------------------

HOSTILE_URLS = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
                "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "file:///etc/passwd",
                "https://bank.example@evil.example/", "//evil.example/x"]


def test_a_javascript_url_in_the_evidence_is_never_a_link(draws_independent, evidence, monkeypatch):
    """A reference whose only link is a script (or any address that is not http(s)): shown as text, never a
    link in the HTML (which also carries a strict Content-Security-Policy) nor a URI action in the PDF."""
    import dataclasses

    import pypdf

    from palsy.model import answer as A
    from palsy.model import findings as F
    from palsy.reports import context, links, pdf, render

    patient = F.parse_patient({"id": "links", "lineage": "T-ALL", "mri": "mass"}, "test")  # a quick answer
    ans = A.answer(patient, draws_independent)
    cited = [r["key"] for r in context.build(ans, evidence)["references"]]
    safe = "https://example.org/a-source-page"  # and one address that may be a link
    urls = dict(zip(cited, [*HOSTILE_URLS * len(cited)][: len(cited) - 1] + [safe], strict=True))
    refs = {key: {k: v for k, v in ref.items() if k not in ("doi", "pmid")} | {"url": urls[key]} if key in urls else ref
            for key, ref in evidence.references.items()}
    ctx = context.build(ans, dataclasses.replace(evidence, references=refs))
    offered = {link["url"] for r in ctx["references"] for link in r["links"]}
    assert len(cited) > len(HOSTILE_URLS) and offered == {safe}  # the context drops every hostile address
    # and the template is the second line of defence: every kind offered to it anyway is still not a link
    for r in ctx["references"]:
        if r["key"] in urls and urls[r["key"]] != safe:
            r["links"] = [{"label": "source page", "url": urls[r["key"]]}]
    assert {link["url"] for r in ctx["references"] for link in r["links"]} >= {*HOSTILE_URLS, safe}
    import collections

    monkeypatch.setattr(render, "svg_images", lambda ctx: collections.defaultdict(str))  # no figures: not links
    page = render.html(ctx)
    head = page.split("</head>", 1)[0]
    assert """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:;""" in head
    assert "javascript" not in page.lower() and "<script" not in page.lower() and "evil.example" not in page
    assert f'href="{safe}"' in page
    assert links.unsafe_links(page) == []
    # the PDF is this HTML printed: its reference list (where the links are) printed, its link annotations read
    references = page[page.index('<section id="references"'):]
    blob = pdf.print_pdf(f"{head}</head><body><main>{references}")
    uris = []
    for p in pypdf.PdfReader(io.BytesIO(blob)).pages:
        for annot in p.get("/Annots") or []:
            action = annot.get_object().get("/A")
            if action is not None and action.get("/S") == "/URI":
                uris.append(str(action["/URI"]))
    assert set(uris) == {safe}, uris
    assert not any(k in blob.lower() for k in (b"javascript", b"/launch", b"evil.example"))


# --- 5. the answer path under faults: one file per patient, capped errors, a closed pipe ----------------------

def test_error_output_is_capped(tmp_path, capsys):
    """Many bad values (100,000 bad LPs or unknown keys printed 14 and 26 MB) print a few kB: at most 50
    problems and 8 kB, then how many more. (2,000 unknown keys through the command: the cap does not
    depend on the count.)"""
    f = tmp_path / "many.yaml"
    f.write_text("id: many\n" + "".join(f"unknown_key_{i}: 1\n" for i in range(2_000)))
    status, _, err = _main("posterior", "--patient", str(f), capsys=capsys)
    assert status == 2 and len(err) < 10_000 and "unknown_key_0" in err, (status, len(err), err[-300:])
    from palsy.model.findings import InputError

    allowed = ", ".join(f"finding_{i}" for i in range(40))  # an unknown key's message lists what is allowed
    msg = P._message("x", InputError([f"k{i}: unknown key; allowed: {allowed}" for i in range(100_000)], "f.yaml"))
    assert len(msg) < 9_000 and msg.endswith("more") and "99,9" in msg.splitlines()[-1], msg[-200:]
    msg = P._message("x", InputError([f"problem {i} " + "y" * 5000 for i in range(100_000)], "f.yaml"))
    assert len(msg) < 9_000 and "y" * 400 in msg and "y" * 600 not in msg
    msg = P._message("x", ValueError("\n".join(["line"] * 100_000)))
    assert len(msg.splitlines()) <= 51 and msg.endswith("more lines")


def test_a_closed_output_pipe_is_quiet(palsy):
    """`palsy posterior ... | head -1` where head is gone before palsy writes: no message, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "palsy.scripts.palsy", "posterior", "--patient", PATIENT],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader has gone
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == "", err


def test_internal_errors_exit_1_and_input_errors_exit_2(monkeypatch, capsys):
    """Only the project's input errors are exit 2; a ValueError from palsy's own code is an internal error
    (exit 1, one line, no traceback unless --debug); a failing disk names its path (exit 1)."""
    from palsy.model.findings import InputError
    from palsy.scripts.commands import evidence as cmd

    for exc, status, words in [
        (ValueError("an internal slip"), 1, ["internal error: ValueError: an internal slip", "--debug"]),
        (KeyError("x"), 1, ["internal error: KeyError"]),
        (InputError(["lineage: 'x' is not allowed"], "p.yaml"), 2, ["p.yaml", "lineage"]),
        (C.CacheError("PALSY_CACHE=/x: is a file"), 2, ["PALSY_CACHE"]),
        (output.OutputPathError("--out: '/x': cannot be written"), 2, ["--out"]),
        (OSError(errno.ENOSPC, "No space left on device", "/out/a.pdf"), 1, ["/out/a.pdf: No space left on device"]),
        (OSError(errno.EROFS, "Read-only file system", "/out/a.pdf"), 2, ["/out/a.pdf"]),
    ]:
        monkeypatch.setattr(cmd, "run", lambda args, exc=exc: (_ for _ in ()).throw(exc))
        code, _, err = _main("evidence", capsys=capsys)
        assert code == status and all(w in err for w in words) and "Traceback" not in err, (exc, code, err)
        assert len(err.strip().splitlines()) <= 2, err
    with pytest.raises(ValueError, match="slip"):
        monkeypatch.setattr(cmd, "run", lambda args: (_ for _ in ()).throw(ValueError("slip")))
        P.main(["evidence", "--debug"])


def test_every_flag_of_every_command_refuses_an_empty_value():
    """`--causes ''`, `--thresholds ''` and every other flag or positional of every subcommand: exit 2, naming it."""
    import argparse

    p = P.parser(P.available())
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    checked = []
    for name, sp in sub.choices.items():
        for action in sp._actions:
            if action.nargs == 0:
                continue
            flag = action.option_strings[0] if action.option_strings else None
            argv = [name, *([flag, ""] if flag else [""])]
            if name == "report" and flag:
                argv.insert(1, PATIENT)
            with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()) as err:
                p.parse_args(argv)
            assert exc.value.code == 2, argv
            message = err.getvalue()
            assert ("empty value" in message or "invalid" in message or "not" in message) and \
                (flag or action.metavar or action.dest) in message, (argv, message)
            checked.append(argv)
    assert any("--causes" in a for a in checked) and any("--thresholds" in a for a in checked)
    assert len(checked) > 40


def test_version_and_exit_codes_in_help(capsys):
    from palsy import __version__

    with pytest.raises(SystemExit) as exc:
        P.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"palsy {__version__}"
    with pytest.raises(SystemExit):
        P.main(["--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "2      bad input" in text and "1      an internal error" in text


def test_known_colliding_ids_get_their_own_files():
    """Issue 21: these two ids shared an 8-digit suffix; with the whole digest they cannot collide."""
    from palsy.reports import render

    a, b = render.file_stems(["患者七六九四", "患者八三一七七"])
    assert a.lower() != b.lower() and len(a) == len(b) == len("patient-") + render.DIGEST_DIGITS
