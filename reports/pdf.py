"""HTML printed to PDF by WeasyPrint: in this process, or in a helper process started early.

WeasyPrint (a maintained HTML/CSS-to-PDF engine on Pango and fontconfig) prints the report's HTML
through its ``@media print`` rules. Measured on 2 cores (issue 11, ``scripts/benchmark.py``): a
``palsy report`` process spends about 1.3 s importing WeasyPrint (cffi parses Pango's declarations
at every import) and about 2 s laying out and writing an 11-page report, while the answer, the
figures and the HTML before it take about 1.5 s. :class:`Printer` starts a helper process that
imports WeasyPrint while the caller computes; the caller hands it finished HTML. Both routes run
:func:`print_pdf`, so they give the same bytes (tested). This module imports nothing of palsy, so
the helper imports WeasyPrint and nothing else.

The helper never outlives its caller, however the caller ends (issue 21): it is a plain child process
(``python -m palsy.reports.pdf``, no multiprocessing and so no resource tracker) that talks to the caller
through two pipes of its own and holds none of the caller's standard streams, so a script reading the
caller's output is never kept waiting by it. It ends when the caller closes its pipe, when the caller
dies (Linux: ``PR_SET_PDEATHSIG``; everywhere: a thread that watches the parent's process id), and it
ignores SIGINT (a Ctrl-C reaches the whole process group; the caller decides, and stops it).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import pickle
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


def _fetcher():
    """A URL fetcher that loads nothing from outside the page: only ``data:`` URLs (the report's inline
    figures). The PDF's counterpart of the HTML's Content-Security-Policy."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=("data",))


def print_pdf(html_text: str, identifier: bytes) -> bytes:
    """The PDF of ``html_text`` (A4, the template's print CSS), with ``identifier`` as its PDF id and no
    dates, so the same HTML gives the same bytes. Nothing outside the page is fetched."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # CSS it ignores (screen-only rules) is not news
    doc = weasyprint.HTML(string=html_text, base_url=str(TEMPLATES), url_fetcher=_fetcher())
    return doc.write_pdf(pdf_identifier=identifier, custom_metadata=False)


def _warm() -> None:
    """Import WeasyPrint in the helper and print a small page in the report's style, which loads its
    fonts (a failure shows where it matters: in :func:`print_pdf`)."""
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    try:
        print_pdf(f"<html><head><style>{css}</style></head><body><main><h1>palsy</h1><h2>a</h2><p>text <b>b</b> "
                  f"<i>i</i></p><table><tr><th>h</th><td>d</td></tr></table></main></body></html>", b"palsy-warm")
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
    """The helper's loop: read (job, html, identifier) requests, answer (job, ok, pdf or exception).

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
        job, html_text, identifier = jobs.get()
        try:
            answer = (job, True, print_pdf(html_text, identifier))
        except BaseException as exc:  # noqa: BLE001  # every failure goes back to the caller
            answer = (job, False, _portable(exc))
        try:
            _send(results_out, answer)
        except OSError:  # the caller is gone
            os._exit(0)


# --- the caller's side ----------------------------------------------------------------------------

class Printer:
    """A helper process that prints PDFs, started at once so that its import of WeasyPrint overlaps
    the caller's work. Use as a context manager; :meth:`submit` hands it finished HTML.

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
        while (message := _receive(proc.stdout)) is not None:
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

    def submit(self, html_text: str, identifier: bytes) -> cf.Future:
        """The PDF of ``html_text`` (:func:`print_pdf`) to come: the helper prints it while the caller goes
        on (without a helper, it is printed now)."""
        future: cf.Future = cf.Future()
        if self._proc is None:
            future.set_result(print_pdf(html_text, identifier))
            return future
        with self._lock:
            job, self._jobs = self._jobs, self._jobs + 1
            self._pending[job] = future
        try:
            assert self._proc.stdin is not None
            _send(self._proc.stdin, (job, html_text, identifier))
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
        serve(int(sys.argv[2]))
