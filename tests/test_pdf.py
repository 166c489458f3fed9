"""The PDF printer (reports.pdf): the helper process prints the very bytes this process prints, and a
failure in it reaches the caller."""

from __future__ import annotations

import pytest

pytest.importorskip("weasyprint")

HTML = "<html><body><h1>palsy</h1><p>A short page with a table.</p><table><tr><td>1</td></tr></table></body></html>"


def test_helper_prints_what_this_process_prints():
    from palsy.reports import pdf

    here = pdf.print_pdf(HTML, b"palsy-test")
    assert here.startswith(b"%PDF") and b"/CreationDate" not in here
    with pdf.Printer() as printer:
        assert printer.pid is not None  # a helper process (2 cores here, as on CI)
        futures = [printer.submit(HTML, b"palsy-test"), printer.submit(HTML.replace("short", "long"), b"palsy-test")]
        got = [f.result(timeout=120) for f in futures]
    assert got[0] == here  # byte for byte
    assert got[1] != here and got[1].startswith(b"%PDF")
    with pdf.Printer(helper=False) as printer:
        assert printer.pid is None and printer.submit(HTML, b"palsy-test").result() == here


def test_a_failure_in_the_helper_reaches_the_caller():
    from palsy.reports import pdf

    with pdf.Printer() as printer:
        future = printer.submit(None, b"palsy-test")  # not HTML text: WeasyPrint refuses it in the helper
        with pytest.raises(TypeError, match="source"):  # as it does in this process
            future.result(timeout=120)
    with pytest.raises(TypeError, match="source"):
        pdf.print_pdf(None, b"palsy-test")
