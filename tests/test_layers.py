"""Architecture rules that can be checked: import direction, and the warm path's imports."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import PATIENTS, REPO

FORBIDDEN_WARM = ("pymc", "pytensor", "scipy", "xarray", "arviz")


def _top(name: str) -> str:
    """The top-level module of an import, palsy's layers by their own name (``palsy.reports.x`` -> reports)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "palsy" and len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {_top(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(_top(node.module))
    return out


def test_model_never_imports_presentation_or_entry_points():
    for f in (REPO / "model").rglob("*.py"):
        bad = _imports(f) & {"matplotlib", "jinja2", "reports", "scripts"}
        assert not bad, (f.name, bad)


def test_reports_never_import_scripts():
    for f in (REPO / "reports").rglob("*.py"):
        assert "scripts" not in _imports(f), f.name


def test_warm_posterior_imports_no_heavy_modules(palsy):
    code = (
        "import sys, io, contextlib\n"
        "from palsy.scripts.palsy import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['posterior', '--patient', {str(PATIENTS / 'source-001.yaml')!r}, '--json'])\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_WARM!r})\n"
        "print(rc, bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "0 []", r.stdout + r.stderr


def _private_uses(path: Path) -> list[str]:
    """Private names (``_x``, not dunders) one of palsy's modules takes from another of palsy's modules:
    ``from palsy.m import _x``, ``from .m import _x`` and ``m._x`` on a palsy module imported as ``m``."""
    tree = ast.parse(path.read_text())
    private = lambda name: name.startswith("_") and not name.startswith("__")  # noqa: E731
    modules, out = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("palsy")):
            out += [f"{path.name}:{node.lineno} from {node.module} import {a.name}" for a in node.names if private(a.name)]
            modules |= {a.asname or a.name for a in node.names if not private(a.name)}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name.startswith("palsy") and a.asname}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and private(node.attr)):
            out.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return out


def test_no_private_name_crosses_a_module():
    """A module uses another's public names only (issue 20 item 5): a private one is free to change."""
    found = [u for layer in ("model", "reports", "scripts", "priors", "patients")
             for path in sorted((REPO / layer).rglob("*.py")) for u in _private_uses(path)]
    assert found == [], found
