"""HTML printed to PDF by WeasyPrint: in this process, or in a helper process started early.

WeasyPrint (a maintained HTML/CSS-to-PDF engine on Pango and fontconfig) prints the report's HTML
through its ``@media print`` rules. Measured on 2 cores (issue 11, ``scripts/benchmark.py``): a
``palsy report`` process spends about 1.3 s importing WeasyPrint (cffi parses Pango's declarations
at every import) and about 2 s laying out and writing an 11-page report, while the answer, the
figures and the HTML before it take about 1.5 s. :class:`Printer` starts a helper process that
imports WeasyPrint while the caller computes; the caller hands it finished HTML. Both routes run
:func:`print_pdf`, so they give the same bytes (tested). This module imports nothing of palsy, so
the helper imports WeasyPrint and nothing else.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"


def print_pdf(html_text: str, identifier: bytes) -> bytes:
    """The PDF of ``html_text`` (A4, the template's print CSS), with ``identifier`` as its PDF id and no
    dates, so the same HTML gives the same bytes."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # CSS it ignores (screen-only rules) is not news
    doc = weasyprint.HTML(string=html_text, base_url=str(TEMPLATES))
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


class Printer:
    """A helper process that prints PDFs, started at once so that its import of WeasyPrint overlaps
    the caller's work. Use as a context manager; :meth:`submit` hands it finished HTML.

    Without ``helper``, or with one CPU (nothing to overlap), the printing runs in this process.
    """

    def __init__(self, helper: bool = True) -> None:
        self._pool: cf.ProcessPoolExecutor | None = None
        if helper and (os.cpu_count() or 1) > 1:
            # spawn: a fresh interpreter on every platform (no fork of a process with threads)
            self._pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._pool.submit(_warm)

    def submit(self, html_text: str, identifier: bytes) -> cf.Future:
        """The PDF of ``html_text`` (:func:`print_pdf`) to come: the helper prints it while the caller goes
        on (without a helper, it is printed now)."""
        if self._pool is not None:
            return self._pool.submit(print_pdf, html_text, identifier)
        done: cf.Future = cf.Future()
        done.set_result(print_pdf(html_text, identifier))
        return done

    def close(self) -> None:
        """Stop the helper (after the work it has been given)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
