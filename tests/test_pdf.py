"""The PDF printer (reports.pdf, headless Chromium): the helper process prints the very bytes this process
prints, the same HTML gives the same bytes, nothing outside the page is fetched, a failure in the helper
reaches the caller, and a missing Chromium is said plainly."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

HTML = "<html><body><h1>palsy</h1><p>A short page with a table.</p><table><tr><td>1</td></tr></table></body></html>"


def test_helper_prints_what_this_process_prints():
    from palsy.reports import pdf

    here = pdf.print_pdf(HTML)
    assert here.startswith(b"%PDF") and b"/CreationDate" not in here and b"/ModDate" not in here
    with pdf.Printer() as printer:
        assert printer.pid is not None  # a helper process (2 cores here, as on CI)
        futures = [printer.submit(HTML), printer.submit(HTML.replace("short", "long"))]
        got = [f.result(timeout=120) for f in futures]
    assert got[0] == here  # byte for byte: another process, another Chromium, another time
    assert got[1] != here and got[1].startswith(b"%PDF")
    with pdf.Printer(helper=False) as printer:
        assert printer.pid is None and printer.submit(HTML).result() == here


def test_undated_keeps_every_offset():
    """The dates are blanked and the structure ids renumbered in place: same length, so the cross-reference
    table's offsets stay true; the ids keep their order (an ID tree's names are sorted)."""
    from palsy.reports import pdf

    raw = b"1 0 obj\n<</Producer (Skia/PDF m156) /CreationDate (D:20261206011118+00'00') /ModDate (D:20261206011118+00'00')>>"
    out = pdf._undated(raw)
    assert len(out) == len(raw) and b"D:2026" not in out and out.startswith(b"1 0 obj\n<</Producer (Skia/PDF m156)")
    tagged = b"<</S /TH /ID (node00002100)>> <</S /TD /ID (node00000032)>> /IDTree <</Names [(node00000032) 9 0 R (node00002100) 8 0 R]>>"
    assert pdf._undated(tagged) == (b"<</S /TH /ID (node00000002)>> <</S /TD /ID (node00000001)>> "
                                    b"/IDTree <</Names [(node00000001) 9 0 R (node00000002) 8 0 R]>>"), "ids renumbered in order"


def test_nothing_outside_the_page_is_fetched(tmp_path):
    """A page that asks for an image, a stylesheet and a frame elsewhere, and runs a script: the PDF carries
    none of them (every request is refused, JavaScript is off), and the printer goes on."""
    import http.server
    import threading

    from palsy.reports import pdf

    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        blob = pdf.print_pdf(f"<html><head><link rel=stylesheet href='{url}/a.css'></head><body><p id=p>text</p>"
                             f"<img src='{url}/b.png'><iframe src='{url}/c.html'></iframe>"
                             "<script>document.getElementById('p').textContent='SCRIPT RAN'</script></body></html>")
    finally:
        server.shutdown()
    assert asked == [] and blob.startswith(b"%PDF")
    import pypdfium2

    doc = pypdfium2.PdfDocument(blob)
    assert "SCRIPT RAN" not in doc[0].get_textpage().get_text_range()
    assert "text" in doc[0].get_textpage().get_text_range()


def test_a_failure_in_the_helper_reaches_the_caller():
    from palsy.reports import pdf

    with pdf.Printer() as printer:
        future = printer.submit(None)  # not HTML text: refused in the helper
        with pytest.raises(TypeError, match="HTML text"):  # as it is in this process
            future.result(timeout=120)
    with pytest.raises(TypeError, match="HTML text"):
        pdf.print_pdf(None)


def test_a_missing_chromium_is_said_plainly(palsy, tmp_path):
    """PALSY_CHROMIUM naming no browser: ``palsy report`` says what to install (exit status 1, not an
    'internal error', no traceback) and writes nothing; the HTML alone is still written. The refusal comes
    from the helper process (its exception travels back by name)."""
    from conftest import PATIENTS

    env = {"PALSY_CHROMIUM": str(tmp_path / "no-chromium")}
    out = tmp_path / "out"
    proc = palsy("report", str(PATIENTS / "source-002.yaml"), "--out", str(out), "--variant", "independent",
                 env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("palsy report: printing the PDF needs Chromium"), proc.stderr
    assert "apt-get install chromium" in proc.stderr and "--format html" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    proc = palsy("report", str(PATIENTS / "source-002.yaml"), "--out", str(out), "--variant", "independent",
                 "--format", "html", env=env, timeout=300)
    assert proc.returncode == 0 and [f.suffix for f in out.iterdir()] == [".html"], proc.stderr


def test_a_chromium_that_died_is_started_again():
    """The process's Chromium killed between two reports (an OOM killer, a crash): the print that finds it dead
    may fail with an error, and the next one starts another Chromium and prints. In a process of its own, whose
    Chromium processes alone are killed (the tests' own browser lives under this one)."""
    import subprocess
    import sys

    code = """
import os, signal, sys, time
from palsy.reports import pdf

def ours(pid):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        parent = pid
        while parent > 1:
            parent = int(open(f"/proc/{parent}/stat").read().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid():
                return b"chrom" in cmd[0].lower()  # Chromium rewrites its argv into one string
    except OSError:
        pass
    return False

html = sys.argv[1]
assert pdf.print_pdf(html).startswith(b"%PDF")
pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and ours(int(p))]
assert pids, "no Chromium of this process"
for pid in pids:
    os.kill(pid, signal.SIGKILL)
time.sleep(0.5)
for attempt in range(2):
    try:
        blob = pdf.print_pdf(html)
        break
    except Exception as exc:
        print("failed once:", type(exc).__name__)
else:
    sys.exit("no PDF after Chromium was killed")
assert blob.startswith(b"%PDF")
print("printed again")
"""
    proc = subprocess.run([sys.executable, "-c", code, HTML], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("printed again"), proc.stdout + proc.stderr
