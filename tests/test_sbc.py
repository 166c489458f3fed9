"""scripts/sbc.py: simulation-based calibration (weights 1, cohort counts simulated, cases off)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_criticism_helpers import simulated_evidence


def test_simulated_data_follow_the_sbc_rules(fixture_evidence):
    from model import criticism as K
    from model import design as D
    from model import variants
    from scripts import sbc

    d = D.build(fixture_evidence, variants.get("subtype", fixture_evidence.forms), weights_one=True)
    rng = np.random.default_rng(0)
    data = sbc.simulate_data(d, K.prior_draws(d, 1, rng), rng)
    assert np.all(data["entry_w"] == 1) and np.all(data["sentry_w"] == 1)
    assert np.all(data["case_w"] == 0) and len(data["case_w"]) == len(d.case_ids)
    assert np.all((0 <= data["entry_x"]) & (data["entry_x"] <= data["entry_n"]))
    assert np.all(data["entry_x"] == np.round(data["entry_x"]))


def test_rank_statistics_detect_miscalibration():
    from scripts import sbc

    rng = np.random.default_rng(1)
    ok = sbc.summarise(rng.integers(0, 100, size=(200, 3)), ["a", "b", "c"], thin_to=99)
    assert ok["pooled"]["p_value"] > 0.001 and not ok["bonferroni_failures"]
    # an overconfident posterior puts the truth in the tails: U-shaped ranks
    bad_ranks = np.where(rng.random((200, 1)) < 0.5, rng.integers(0, 10, (200, 1)), rng.integers(90, 100, (200, 1)))
    bad = sbc.summarise(np.hstack([rng.integers(0, 100, size=(200, 1)), bad_ranks]), ["ok", "bad"], thin_to=99)
    assert bad["bonferroni_failures"] == ["bad"]
    assert [r["outside_ecdf_band"] for r in bad["per_parameter"]] == [False, True]


@pytest.mark.slow
def test_reduced_sbc_ranks_are_roughly_uniform(tmp_path):
    """30 simulations (the reduced run): a loose chi-square bound on the pooled ranks."""
    from scripts import sbc

    res = sbc.run(simulated_evidence(), "independent", 30, draws=200, tune=200, chains=2, thin_to=19, bins=5, seed=11)
    assert len(res["ranks"]) == 30 and len(res["parameters"]) == len(res["ranks"][0])
    r = np.array(res["ranks"])
    assert r.min() >= 0 and r.max() <= 19
    assert res["pooled"]["p_value"] > 1e-3
    assert len(res["bonferroni_failures"]) <= 1
    # no parameter piles up at one end (a sign-flipped or mis-indexed parameter would)
    means = r.mean(axis=0) / 19
    assert np.all((means > 0.2) & (means < 0.8))
    paths = sbc.write(res, tmp_path)
    back = json.loads(paths[0].read_text())
    assert back["simulations"] == 30 and back["variant"] == "independent"
    assert paths[1].read_text().lstrip().startswith("<?xml") or "<svg" in paths[1].read_text()[:500]
