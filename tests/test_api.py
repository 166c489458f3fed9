"""The Python API (issue 20 item 4): ``palsy.answer`` in a notebook gives the command line's answer."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import PATIENTS, REPO

pytestmark = pytest.mark.xdist_group("api")


def test_import_palsy_is_light():
    code = "import sys, palsy; print(sorted(m for m in ('numpy', 'palsy.model', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_answer_equals_the_command_line(palsy):
    import palsy as api

    a = api.answer(PATIENTS / "source-001.yaml")
    cli = json.loads(palsy("posterior", "--patient", str(PATIENTS / "source-001.yaml"), "--json", check=True).stdout)
    assert a.probability == cli["probability"]
    # the whole answer: decision, actions, next tests, what it rests on and the other variant alike (the
    # report tests read the API's answer beside the command line's pages on this equality)
    assert json.loads(a.to_json()) == cli
    same = api.answer(dict(a.patient.to_dict()), draws=a_draws(a))
    assert same.probability == a.probability  # a mapping, with draws passed in, is the same patient


def a_draws(a):
    from palsy.model import api

    return api.posterior_draws(a.model["variant"])


def test_datatree_has_named_dims_for_arviz(palsy):
    import arviz as az

    import palsy as api

    a = api.answer({"lineage": "T-ALL", "laterality": "bilateral", "csf": [{"cytology": "negative"}]})
    tree = a.to_datatree()
    post = tree["posterior"]
    assert list(post["p_cause"].dims) == ["chain", "draw", "cause"]
    assert list(post["cause"].values) == a.model["causes"]
    # the per-draw probability of infiltration averages to the headline (no PSIS weights for this patient)
    inf = a.model["causes"].index("infiltration")
    assert float(post["p_cause"].values[0, :, inf].mean()) == pytest.approx(a.probability["mean"], rel=1e-9)
    s = az.summary(tree, var_names=["log_odds_infiltration"], kind="stats")  # one chain: no R-hat
    mean = float(np.asarray(s["mean"]).ravel()[0])
    assert mean == pytest.approx(a.to_dict()["log_odds"]["posterior"]["mean"], abs=0.02)  # summary rounds


def test_a_library_cases_datatree_carries_the_weights_its_answer_uses(palsy):
    """source-002 is a library case, answered with itself left out (PSIS weights): the tree carries the weights,
    and the draws weighed by them give the answer's numbers, which the plain mean of the draws does not."""
    import palsy as api

    a = api.answer(str(REPO / "patients" / "source-002.yaml"), shapley=False, compare_variants=False)
    assert a.weights is not None
    tree = a.to_datatree()
    post = tree["posterior"]
    w = post["psis_weight"].values[0]
    assert w.shape == post["log_odds_infiltration"].values[0].shape and w.sum() == pytest.approx(1.0)
    assert "psis_weight" in tree.attrs["weights"]
    lo = post["log_odds_infiltration"].values[0]
    assert float(np.sum(w * lo)) == pytest.approx(a.to_dict()["log_odds"]["posterior"]["mean"], rel=1e-9)
    inf = a.model["causes"].index("infiltration")
    p = post["p_cause"].values[0, :, inf]
    assert float(np.sum(w * p)) == pytest.approx(a.probability["mean"], rel=1e-9)
    assert abs(float(p.mean()) - a.probability["mean"]) > 1e-3  # without them, another number
    plain = api.answer({"lineage": "T-ALL"}, shapley=False, compare_variants=False).to_datatree()
    assert "psis_weight" not in plain["posterior"] and plain.attrs["weights"] == "none"


def test_bad_input_names_the_finding_and_what_is_allowed(palsy):
    import palsy as api
    from palsy.model.findings import InputError

    with pytest.raises(InputError, match="laterality.*sideways.*bilateral"):
        api.answer({"laterality": "sideways"})
    with pytest.raises(InputError, match="lineag.*did you mean 'lineage'"):
        api.answer({"lineag": "T-ALL"})
    with pytest.raises(InputError, match="pretest"):
        api.answer({"lineage": "T-ALL"}, pretest=1.5)
    with pytest.raises(InputError, match="a mapping of findings"):
        api.answer(42)


def test_readme_python_block_runs_as_written(palsy, monkeypatch):
    """The README's Python API block is executed (from the repository, as its relative path assumes)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- python-api -->\n```python\n(.*?)```\n<!-- /python-api -->", text, re.S)
    assert block, "README: the Python API block between <!-- python-api --> markers"
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(block.group(1), "README.md (Python API)", "exec"), scope)
    assert 0 < scope["a"].probability["mean"] < 1 and scope["b"].probability["ci"] == 0.95
    assert scope["b"].model["causes_weighed"] == ["infiltration", "bell"]


def test_answer_without_next_tests_or_shapley_is_the_same_answer(palsy):
    from palsy.model import answer as A
    from palsy.model import api

    draws = api.posterior_draws()
    patient = api.as_patient({"lineage": "B-ALL", "csf": [{"flow": "negative"}], "vesicles": "absent"}, draws.schema)
    full = A.answer(patient, draws)
    light = A.answer(patient, draws, shapley=False, next_tests=False)
    assert light.probability == full.probability and light.contributions == full.contributions
    assert light.next_tests == () or list(light.next_tests) == [] and full.next_tests
    assert all(s["log_lr"]["mean"] != s["log_lr"]["mean"] for s in light.shapley_values)  # NaN: not computed


@pytest.mark.parametrize("variant", ["bogus", "Subtype", "../outside", None])
def test_a_variant_that_is_not_one_is_bad_input_and_writes_nothing(variant, tmp_path, monkeypatch):
    """The Python API refuses a variant it does not know before the name makes a path in the cache: until
    5 December a misspelt one left a lock file in the cache, and one with a ``/`` wrote outside it."""
    import palsy
    from palsy.model import api
    from palsy.model.findings import InputError

    cache = tmp_path / "cache" / "palsy"
    cache.mkdir(parents=True)
    monkeypatch.setenv("PALSY_CACHE", str(cache))
    for call in (lambda: palsy.answer({"lineage": "T-ALL"}, variant=variant),
                 lambda: api.cached_draws(variant), lambda: api.posterior_draws(variant)):
        with pytest.raises(InputError, match="variant: .* is not allowed; allowed: independent, subtype"):
            call()
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*")] == [cache.parent.relative_to(tmp_path),
                                                                       cache.relative_to(tmp_path)]
