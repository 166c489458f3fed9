"""The set-up promise: environment.yml and pyproject.toml in step; CI calls the README's command."""

import re
import tomllib

from tests.conftest import REPO


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_matches_pyproject():
    import yaml

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = {s.replace(" ", "") for s in env if isinstance(s, str) and not s.startswith(("python", "pip"))}
    # a requirement with an environment marker (uvloop: no Windows, Cygwin or PyPy build) has no conda spelling:
    # it comes through the pip section's `-e .`, with its marker, and is not listed for conda on every platform
    marked = {d.split(";")[0].replace(" ", "") for d in deps if ";" in d}
    assert marked and not marked & conda
    assert {d.replace(" ", "") for d in deps if ";" not in d} == conda
    pip_lines = [line for item in env if isinstance(item, dict) for line in item.get("pip", [])]
    assert any(line.startswith("-e .") for line in pip_lines)


def test_ci_and_readme_promise():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_demo_installs_only_what_the_demo_needs():
    """`make demo` installs the runtime dependencies and Chromium (the PDF report's printer since 6 December); the
    test tools and the test fonts come with `make test`."""
    mk = (REPO / "Makefile").read_text()
    rules = dict(re.findall(r"^([\w$().\-/]+):([^\n=]*)$", mk, flags=re.M))
    assert rules["demo"].split() == ["setup"] and "browser" in rules["setup"].split()
    assert "test" not in rules["setup"] and "fonts" not in rules["setup"]
    assert "setup-test" in rules["test"].split()
    runtime = mk.split("$(VENV)/.installed: pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert "-e ." in runtime and "[test]" not in runtime


def test_benchmark_script_runs_its_main():
    """scripts/benchmark.py is run as a script (make benchmark): its entry point parses the flags."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--routes" in proc.stdout and "--quick" in proc.stdout


def test_xdist_groups_run_on_one_worker(tmp_path):
    """`make test` relies on --dist loadgroup to build a module's report or fit fixture on one worker only:
    a group of tests (marked per module, as the report modules are) must run on one worker."""
    import os
    import subprocess
    import sys

    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        "pytestmark = pytest.mark.xdist_group('one')\n"
        "@pytest.mark.parametrize('i', range(8))\n"
        "def test_where(i):\n"
        "    with open(os.path.join(os.path.dirname(__file__), f'ran-{i}'), 'w') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'])\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "xdist", "-n", "2", "--dist", "loadgroup",
                           "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers = {(tmp_path / f"ran-{i}").read_text() for i in range(8)}
    assert len(workers) == 1, f"one group ran on {sorted(workers)}"


def test_citation_file_names_this_version():
    """CITATION.cff is valid Citation File Format (the keys 1.2.0 requires) and carries palsy's own version."""
    import yaml

    import palsy

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and {"message", "title", "authors", "version"} <= set(cff)
    assert cff["version"] == palsy.__version__
    assert all("name" in a or "family-names" in a for a in cff["authors"])


def test_scripts_run_as_files():
    """``python scripts/X.py`` works as well as ``python -m palsy.scripts.X``: the folder's palsy.py (the
    command) must not hide the palsy package (docs/sbc.md and docs/registry.md give the file form)."""
    import subprocess
    import sys

    for script in ("sbc.py", "simulate_registry.py", "benchmark.py"):
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (script, proc.stderr[-500:])
