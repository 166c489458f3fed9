"""The installed distribution (issue 20 item 4): a wheel built from the checkout carries everything palsy
needs (the criticism package, the evidence, the templates and static files, the source patients) and,
installed in a clean virtual environment, answers a patient from outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PATIENTS, REPO


def test_every_python_folder_is_a_listed_package():
    """A new subpackage (a folder with ``__init__.py``) must be listed in pyproject.toml, or the wheel
    leaves it out (fast: the slow tests below build the wheel)."""
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(cfg["packages"]), cfg["package-dir"]
    for name, folder in dirs.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "__pycache__" in rel.parts:
                continue
            package = ".".join([name, *rel.parts])
            assert package in listed, f"{package} ({init.parent.relative_to(REPO)}) is not in pyproject.toml's packages"
    assert listed <= set(dirs) | {"palsy"}, "every listed package has its folder in package-dir"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        cmd = [str(uv), "build", "--wheel", "-q", "-o", str(out), str(REPO)]
    else:  # pip builds it where uv is not installed
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    (found,) = out.glob("palsy-*.whl")
    return found


@pytest.mark.slow
@pytest.mark.xdist_group("wheel")
def test_wheel_carries_code_data_templates_and_static_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("palsy/__init__.py", "palsy/model/answer.py", "palsy/model/criticism/__init__.py",
                   "palsy/priors/schema.yaml", "palsy/priors/cohorts.yaml", "palsy/priors/references.yaml",
                   "palsy/priors/actions.yaml", "palsy/priors/fhir_map.yaml", "palsy/patients/source-001.yaml",
                   "palsy/reports/templates/report.html", "palsy/scripts/palsy.py"):
        assert needed in names, needed
    assert any(n.startswith("palsy/reports/static/") for n in names)
    # the repository's folders, not generic top-level packages a user's own model.py could shadow
    assert {n.split("/")[0] for n in names if not n.startswith("palsy-")} == {"palsy"}
    assert not any(n.startswith("palsy/tests/") or "/__pycache__/" in n for n in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A clean venv with the wheel installed (no editable link to the checkout); its dependencies are
    the test environment's, made visible through a path file (they are not under test here)."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # a directory named in a .pth file is put on sys.path but its own .pth files are not run, so the
    # checkout's editable install of palsy stays invisible
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        subprocess.run([str(uv), "pip", "install", "-q", "--no-deps", "--python", str(py), str(wheel)], check=True,
                       capture_output=True, text=True, timeout=300)
    else:
        with zipfile.ZipFile(wheel) as z:  # a pure-Python wheel installs by unpacking
            z.extractall(site)
    return py


def _run(py: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run([str(py), "-m", "palsy", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
@pytest.mark.xdist_group("wheel")
def test_installed_wheel_answers_outside_the_checkout(installed, tmp_path, palsy):
    from palsy import __version__

    where = subprocess.run([str(installed), "-c", "import palsy; print(palsy.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert not where.startswith(str(REPO)) and "site-packages" in where, where
    version = _run(installed, tmp_path, "--version")
    assert version.returncode == 0 and __version__ in version.stdout
    patient = tmp_path / "p.yaml"
    shutil.copy(PATIENTS / "source-001.yaml", patient)
    got = _run(installed, tmp_path, "posterior", "--patient", str(patient), "--json")
    assert got.returncode == 0, got.stderr
    assert "fitting" not in got.stderr, "the installed package's code is the checkout's: it reads the same cache"
    ours = json.loads(palsy("posterior", "--patient", str(PATIENTS / "source-001.yaml"), "--json", check=True).stdout)
    theirs = json.loads(got.stdout)
    assert theirs["probability"] == ours["probability"] and theirs["model"]["evidence_hash"] == ours["model"]["evidence_hash"]
    # a user's own module named like one of palsy's layers does not shadow it
    (tmp_path / "model.py").write_text("raise SystemExit('the user model.py was imported')\n")
    (tmp_path / "reports.py").write_text("raise SystemExit('the user reports.py was imported')\n")
    again = _run(installed, tmp_path, "posterior", "--lineage", "T-ALL", "--laterality", "bilateral")
    assert again.returncode == 0 and "user" not in again.stderr, again.stderr
