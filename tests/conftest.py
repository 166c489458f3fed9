"""Shared fixtures. The whole session shares one $PALSY_CACHE (set before anything imports it),
so each variant is fitted once and every CLI subprocess reads the warm cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PALSY_CACHE", str(REPO / ".cache" / "palsy-test"))
FIXTURE_EVIDENCE = REPO / "tests" / "fixtures" / "evidence"
PATIENTS = REPO / "patients"


@pytest.fixture(scope="session")
def evidence():
    from palsy.model import evidence as E

    return E.load(REPO / "priors")


@pytest.fixture(scope="session")
def fixture_evidence():
    from palsy.model import evidence as E

    return E.load(FIXTURE_EVIDENCE)


@pytest.fixture(scope="session")
def posterior_independent(evidence):
    from palsy.model import fit

    return fit.posterior("independent", evidence)


@pytest.fixture(scope="session")
def posterior_plain(evidence):
    """The independent variant without random effects, selection or orderings: the conjugate check's."""
    from palsy.model import cache as C
    from palsy.model import fit

    return fit.posterior("independent", evidence, C.Settings(synthesis=False))


@pytest.fixture(scope="session")
def posterior_subtype(evidence):
    from palsy.model import fit

    return fit.posterior("subtype", evidence)


@pytest.fixture(scope="session")
def draws_independent(posterior_independent):
    return posterior_independent.draws


@pytest.fixture(scope="session")
def draws_subtype(posterior_subtype):
    return posterior_subtype.draws


#: Under pytest-xdist (``make test`` runs two workers) each worker fits first what the other does not, so
#: that the fits compile side by side (compilation is single-threaded); the cache's per-entry lock makes
#: the other worker read a fit rather than repeat it. The second worker does not wait for the plain fit
#: (the first makes it while the second starts on its tests; a test that needs it waits for it then).
FIT_ORDER = {"gw0": ("posterior_independent", "posterior_plain", "posterior_subtype"),
             "gw1": ("posterior_subtype", "posterior_independent")}


@pytest.fixture(scope="session", autouse=True)
def _fits_side_by_side(request):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    for name in FIT_ORDER.get(worker, ()):
        request.getfixturevalue(name)


#: Modules that take minutes on one worker (a report batch, `palsy check`, a service), scheduled first: under
#: ``--dist loadgroup`` a module's group is one unit of work, handed out in collection order
#: (``--no-loadscope-reorder``; xdist's own order, by number of tests, gave one worker both report batches
#: and left the other idle at the end). First, the short tests fill in around them.
FIRST = ("test_report.py", "test_report_page.py", "test_check.py", "test_fhir.py", "test_teach.py",
         "test_service.py", "test_criticism.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: each module keeps its order


def run_palsy(*args: str, check: bool = False, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the ``palsy`` command in a subprocess (as a user would)."""
    proc = subprocess.run([sys.executable, "-m", "palsy.scripts.palsy", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"palsy {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def palsy(posterior_independent, posterior_subtype):
    """``run_palsy`` with both variants' posteriors already in the session cache."""
    return run_palsy


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` (mappings with the same keys) as a CSV file with a header, as a spreadsheet saves them."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


_PDF_PAGES: dict[tuple[str, int, int], list[str]] = {}


def pdf_pages(path: Path) -> list[str]:
    """Each page's text of a PDF, read by PDFium once per file version. A hyphen that ends a line comes back
    as PDFium's marker U+FFFE: it is the hyphen the text had."""
    import pypdfium2

    st = Path(path).stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _PDF_PAGES:
        doc = pypdfium2.PdfDocument(str(path))
        try:
            _PDF_PAGES[key] = [doc[i].get_textpage().get_text_range().replace("\ufffe", "-") for i in range(len(doc))]
        finally:
            doc.close()
    return _PDF_PAGES[key]


#: Debian's Chromium as this machine runs it headless (no background networking: the network is closed).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through playwright (a missing package fails the test: it must run in CI)."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def teach_out(posterior_independent, posterior_subtype, tmp_path_factory):
    """``palsy teach``'s output folder, made once per test worker (the teaching tests share the xdist group
    ``teach``, so once in all): the pages are only read."""
    out = tmp_path_factory.mktemp("teach")
    proc = run_palsy("teach", "--out", str(out), "--patients", str(REPO / "patients"), check=True)
    assert "lesson.html" in proc.stdout and "interactive.html" in proc.stdout
    return out


@pytest.fixture(scope="session")
def teaching(draws_subtype, evidence):
    """The teaching cases of ``priors/teaching_cases.yaml``, read with the fit's schema."""
    from palsy.model import teach as T

    return T.load(REPO / "priors", draws_subtype.schema, evidence.cases)
