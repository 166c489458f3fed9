"""Architecture rules that can be checked: import direction, and the warm path's imports."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import PATIENTS, REPO

FORBIDDEN_WARM = ("pymc", "pytensor", "scipy", "xarray", "arviz")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_model_never_imports_presentation_or_entry_points():
    for f in (REPO / "model").glob("*.py"):
        bad = _imports(f) & {"matplotlib", "jinja2", "reports", "scripts"}
        assert not bad, (f.name, bad)


def test_reports_never_import_scripts():
    for f in (REPO / "reports").glob("*.py"):
        assert "scripts" not in _imports(f), f.name


def test_warm_posterior_imports_no_heavy_modules(palsy):
    code = (
        "import sys, io, contextlib\n"
        "from scripts.palsy import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['posterior', '--patient', {str(PATIENTS / 'source-001.yaml')!r}, '--json'])\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_WARM!r})\n"
        "print(rc, bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "0 []", r.stdout + r.stderr
