"""HTML printed to PDF by headless Chromium: in this process, or in a helper process started early.

Chromium (driven through Playwright, the maintained client of its DevTools protocol) prints the report's HTML
through its ``@media print`` rules, with the ``@page`` margin boxes ("page N of M"), internal links, a tagged
structure and an outline. Until 6 December WeasyPrint printed it: 4.8 s of a 9 s ``palsy report`` for the
13-page PDF of source-001, against about 0.7 s for Chromium, already started, to lay out and print the same HTML
(10 pages; measured on 2 cores, ``scripts/benchmark.py``), which the 5 s bar of issue 20 could not spare.

:class:`Printer` starts a helper process that starts Chromium (about 1 s: Playwright's driver, the browser,
a page, a first small print that loads the fonts) while the caller computes; the caller hands it finished
HTML. Both routes run :func:`print_pdf`, so they give the same bytes (tested): Chromium writes the time into
the PDF's information dictionary, which :func:`_undated` blanks, so the same HTML gives the same bytes. This
module imports nothing of palsy, so the helper imports Playwright and nothing else.

Nothing outside the page is fetched: every request the page would make is refused (the report carries no
script, and JavaScript is off, and its Content-Security-Policy admits only ``data:`` images); the figures are
inline. Chromium runs with its sandbox, except as root, where it will not start with one (a container's
usual user); the page it prints is palsy's own escaped HTML.

The helper never outlives its caller, however the caller ends (issue 21): it is a plain child process
(``python -m palsy.reports.pdf``, no multiprocessing and so no resource tracker) that talks to the caller
through two pipes of its own and holds none of the caller's standard streams, so a script reading the
caller's output is never kept waiting by it. It ends when the caller closes its pipe, when the caller
dies (Linux: ``PR_SET_PDEATHSIG``; everywhere: a thread that watches the parent's process id), and it
ignores SIGINT (a Ctrl-C reaches the whole process group; the caller decides, and stops it). Its Chromium
ends with it: Playwright's driver ends when its pipe from the helper closes, and closes the browser.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import os
import pickle
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: How often the helper checks that its parent is alive (where the kernel cannot tell it).
WATCH_SECONDS = 0.5
_HEADER = struct.Struct(">Q")
#: How long one page may take to load and print before it fails (a 13-page report takes about 0.7 s).
PRINT_TIMEOUT_MS = 120_000
#: Chromium's names on the PATH, tried in order when $PALSY_CHROMIUM is not set (then Playwright's own).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NEED_CHROMIUM = ("printing the PDF needs Chromium, which was not found or did not start: install it (Debian: "
                 "apt-get install chromium; anywhere: python -m playwright install chromium) or set PALSY_CHROMIUM "
                 "to its path; or ask for --format html")
#: The dates Chromium (Skia) writes into the PDF's information dictionary.
_DATES = re.compile(rb"/(?:CreationDate|ModDate) ?\(D:[0-9+\-Z']*\)")
#: The ids Chromium gives the structure elements of a tagged PDF (a number of fixed width).
_NODE_IDS = re.compile(rb"\(node(\d{8})\)")


class ChromiumUnavailable(RuntimeError):
    """Chromium could not be found or started: the system lacks what the PDF needs (exit status 1, said
    plainly, not as an internal error)."""


def chromium_path() -> str | None:
    """The Chromium that prints: $PALSY_CHROMIUM, else the first of :data:`CHROMIUM_NAMES` on the PATH, else
    None (Playwright's own, where ``python -m playwright install chromium`` put one)."""
    return os.environ.get("PALSY_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def _undated(pdf: bytes) -> bytes:
    """``pdf`` with what changes from print to print made the same: its creation and modification dates
    blanked (spaces), and the structure elements' ids (Chromium numbers them from a counter of the renderer
    process, so the same page printed second reads ``node00002100`` where printed first it read
    ``node00000032``) renumbered from 1 in their own order. Both in place, at the same length, so every
    offset of the file's cross-reference table stays true, and the ids keep their order, as the sorted
    names of the structure tree's ID tree require."""
    pdf = _DATES.sub(lambda m: b" " * len(m.group(0)), pdf)
    ids = sorted(set(_NODE_IDS.findall(pdf)))
    new = {old: str(i).zfill(len(old)).encode("ascii") for i, old in enumerate(ids, start=1)}
    return _NODE_IDS.sub(lambda m: b"(node" + new[m.group(1)] + b")", pdf)


class _Chromium:
    """One headless Chromium with one page, JavaScript off and every request refused, in this thread."""

    def __init__(self) -> None:
        from playwright.sync_api import Error, sync_playwright

        try:
            self._driver = sync_playwright().start()
        except Exception as exc:  # noqa: BLE001  # Playwright's driver (a Node.js program in its wheel) did not run
            raise ChromiumUnavailable(f"{NEED_CHROMIUM} (Playwright's driver: {str(exc).splitlines()[0]})") from None
        try:
            # as root, Chromium refuses to start with its sandbox (containers, CI); a container's /dev/shm is often
            # 64 MB, too small for a long report's layers: Chromium then writes them to /tmp instead
            args = ["--disable-dev-shm-usage"] + (["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
            self._browser = self._driver.chromium.launch(executable_path=chromium_path(), args=args)
        except Error as exc:
            self._driver.stop()
            raise ChromiumUnavailable(f"{NEED_CHROMIUM} ({str(exc).splitlines()[0]})") from None
        context = self._browser.new_context(java_script_enabled=False)
        context.route("**/*", lambda route: route.abort())
        self._page = context.new_page()
        self._page.set_default_timeout(PRINT_TIMEOUT_MS)  # a hung print fails with a message, never waits forever

    def print(self, html_text: str) -> bytes:
        self._page.set_content(html_text, wait_until="load")
        return _undated(self._page.pdf(prefer_css_page_size=True, print_background=True, tagged=True, outline=True))

    def close(self) -> None:
        try:
            self._browser.close()
        except Exception:  # noqa: BLE001, S110  # already gone: nothing to close
            pass
        finally:
            try:
                self._driver.stop()
            except Exception:  # noqa: BLE001, S110  # its connection is gone with the browser
                pass


class _PrintingThread:
    """The thread that owns this process's Chromium and prints every PDF of the process, in turn.

    Playwright's synchronous API belongs to the thread that started it and refuses a thread whose asyncio
    loop is running (a notebook's, a server's, the tests' own browser fixture): printing on a thread of its
    own works from any caller. Chromium is started by the first job (a failure fails that job only; the next
    tries again) and closed when the process exits."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="palsy-chromium", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        browser: _Chromium | None = None
        while (job := self._jobs.get()) is not None:
            html_text, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                browser = browser or _Chromium()
                future.set_result(browser.print(html_text))
            except BaseException as exc:  # noqa: BLE001  # every failure goes back to the caller
                future.set_exception(exc)
                if browser is not None:  # Chromium may have died or hung: the next job starts another
                    browser.close()
                    browser = None
        if browser is not None:
            browser.close()

    def print(self, html_text: str) -> bytes:
        future: cf.Future = cf.Future()
        self._jobs.put((html_text, future))
        return future.result()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10.0)


_printer: _PrintingThread | None = None
_printer_lock = threading.Lock()


def print_pdf(html_text: str) -> bytes:
    """The PDF of ``html_text`` (A4 unless its print CSS says otherwise, with its backgrounds), with no dates,
    so the same HTML gives the same bytes. Nothing outside the page is fetched. Printed by this process's
    Chromium, on a thread of its own (started by the first call, kept for the process's later calls).

    Raises
    ------
    TypeError
        If ``html_text`` is not text.
    ChromiumUnavailable
        If Chromium cannot be found or started (:data:`NEED_CHROMIUM`).
    """
    global _printer
    if not isinstance(html_text, str):
        raise TypeError(f"print_pdf: the source must be HTML text, not {type(html_text).__name__}")
    with _printer_lock:
        if _printer is None:
            _printer = _PrintingThread()
    return _printer.print(html_text)


def _warm() -> None:
    """Start Chromium in the helper and print a small page in the report's style, which loads its fonts (a
    failure shows where it matters: in :func:`print_pdf`)."""
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    try:
        print_pdf(f"<html><head><style>{css}</style></head><body><main><h1>palsy</h1><h2>a</h2><p>text <b>b</b> "
                  f"<i>i</i></p><table><tr><th>h</th><td>d</td></tr></table></main></body></html>")
    except Exception:  # noqa: BLE001, S110
        pass


# --- the pipe protocol: a length, then a pickle (both ends are this module, in processes of one user) ---

def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any | None:
    """The next message, or None at the end of the stream (the other end closed it or died)."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    size = _HEADER.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


# --- the helper's side ----------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """End this process as soon as ``parent`` (the caller) is gone, however it ended."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watcher below still ends it
            pass
    if os.getppid() != parent:  # the caller died before the line above took effect
        os._exit(0)

    def watch() -> None:
        while True:
            threading.Event().wait(WATCH_SECONDS)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="palsy-parent-watch", daemon=True).start()


def serve(parent: int) -> None:
    """The helper's loop: read (job, html) requests, answer (job, ok, pdf or exception).

    Requests are read by a thread as they come, so the caller never waits to hand over a page; at the
    end of the requests (the caller closed its pipe or died) the helper ends at once."""
    import queue

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    # the protocol's pipes are private: anything a library prints goes nowhere instead of into them
    requests_in = os.fdopen(os.dup(0), "rb")
    results_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    jobs: queue.Queue = queue.Queue()

    def read() -> None:
        while (message := _receive(requests_in)) is not None:
            jobs.put(message)
        os._exit(0)

    threading.Thread(target=read, name="palsy-pdf-requests", daemon=True).start()
    _warm()
    while True:
        job, html_text = jobs.get()
        try:
            answer = (job, True, print_pdf(html_text))
        except BaseException as exc:  # noqa: BLE001  # every failure goes back to the caller
            answer = (job, False, _portable(exc))
        try:
            _send(results_out, answer)
        except OSError:  # the caller is gone
            os._exit(0)


# --- the caller's side ----------------------------------------------------------------------------

class Printer:
    """A helper process that prints PDFs, started at once so that its start of Chromium overlaps the
    caller's work. Use as a context manager; :meth:`submit` hands it finished HTML.

    Leaving the ``with`` block normally waits for the work given; leaving it by an exception (a
    signal, Ctrl-C, an error) stops the helper at once. Without ``helper``, or with one CPU (nothing to
    overlap), the printing runs in this process.
    """

    def __init__(self, helper: bool = True) -> None:
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, cf.Future] = {}
        self._lock = threading.Lock()
        self._jobs = 0
        if helper and (os.cpu_count() or 1) > 1:
            # -P: the caller's working folder is not on the helper's import path
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "palsy.reports.pdf", "--serve", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
            self._reader = threading.Thread(target=self._read, args=(self._proc,), name="palsy-pdf-results",
                                            daemon=True)
            self._reader.start()

    @property
    def pid(self) -> int | None:
        """The helper's process id (None when printing in this process)."""
        return self._proc.pid if self._proc is not None else None

    def _read(self, proc: subprocess.Popen) -> None:
        """Hand each result to its future; when the helper ends, fail what it left undone."""
        assert proc.stdout is not None
        while True:
            try:
                message = _receive(proc.stdout)
            except Exception as exc:  # noqa: BLE001  # a result this process cannot load: fail what is waiting
                with self._lock:
                    left, self._pending = list(self._pending.values()), {}
                for future in left:
                    future.set_exception(RuntimeError(f"the PDF helper's answer could not be read ({exc!r})"))
                continue
            if message is None:
                break
            job, ok, value = message
            with self._lock:
                future = self._pending.pop(job, None)
            if future is not None:
                future.set_result(value) if ok else future.set_exception(value)
        code = proc.wait()
        with self._lock:
            left, self._pending = list(self._pending.values()), {}
        for future in left:
            future.set_exception(RuntimeError(f"the PDF helper process ended (exit status {code}) before "
                                              f"printing the report"))

    def submit(self, html_text: str) -> cf.Future:
        """The PDF of ``html_text`` (:func:`print_pdf`) to come: the helper prints it while the caller goes
        on (without a helper, it is printed now)."""
        future: cf.Future = cf.Future()
        if self._proc is None:
            future.set_result(print_pdf(html_text))
            return future
        with self._lock:
            job, self._jobs = self._jobs, self._jobs + 1
            self._pending[job] = future
        try:
            assert self._proc.stdin is not None
            _send(self._proc.stdin, (job, html_text))
        except (OSError, ValueError) as exc:  # the helper is gone (its end of the pipe is closed)
            with self._lock:
                self._pending.pop(job, None)
            if not future.done():
                future.set_exception(RuntimeError(f"the PDF helper process is not running ({exc})"))
        return future

    def close(self) -> None:
        """Stop the helper after the work it has been given."""
        if self._proc is None:
            return
        with self._lock:
            pending = list(self._pending.values())
        cf.wait(pending)
        self._stop(wait=10.0)

    def kill(self) -> None:
        """Stop the helper now (what it was printing is dropped)."""
        if self._proc is not None:
            self._proc.kill()
            self._stop(wait=10.0)

    def _stop(self, wait: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the end of the requests: the helper ends
        except OSError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reader.join(timeout=wait)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()

    def __del__(self) -> None:  # a Printer dropped without close: no helper is left behind
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"] and len(sys.argv) == 3:
        # the module under its own name, not __main__: an exception of its own (ChromiumUnavailable) is then
        # pickled as palsy.reports.pdf.ChromiumUnavailable, which the caller can load
        from palsy.reports import pdf as _named

        _named.serve(int(sys.argv[2]))
