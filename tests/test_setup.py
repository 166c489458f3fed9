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
