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
    assert {d.replace(" ", "") for d in deps} == conda


def test_ci_and_readme_promise():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_demo_installs_only_what_the_demo_needs():
    """`make demo` installs the runtime dependencies; the test tools and the browser come with `make test`."""
    mk = (REPO / "Makefile").read_text()
    rules = dict(re.findall(r"^([\w$().\-/]+):([^\n=]*)$", mk, flags=re.M))
    assert rules["demo"].split() == ["setup"] and "browser" not in rules["setup"] and "test" not in rules["setup"]
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
