"""The all-profiles computation (benchmark bar) agrees with the patient answer."""

import numpy as np
import pytest

from model import answer as A
from model import profiles as PR


def test_profile_counts():
    assert len(PR.base_profiles()) * len(PR.csf_sequences()) == 32_640


@pytest.mark.parametrize("variant", ["independent", "subtype"])
def test_profiles_match_answer(request, variant):
    draws = request.getfixturevalue(f"draws_{variant}")
    idx = np.arange(0, draws.n, 8)
    sub = draws.subset(idx)
    t = A.Tables(sub)
    lo = PR.log_odds(t)
    rng = np.random.default_rng(0)
    for b, s in zip(rng.integers(0, 384, 6), rng.integers(0, 85, 6), strict=False):
        a = A.answer(PR.patient(int(b), int(s)), sub, tables=t, leave_out=False)
        assert np.allclose(lo[b, s], a.posterior_log_odds, atol=2e-3)


def test_summaries_match_numpy(draws_independent):
    rng = np.random.default_rng(1)
    lo = rng.normal(size=(3, 5, 400)).astype(np.float32) * 4
    s = PR.summaries(lo, ci=0.9, chunk=4)
    flat = lo.reshape(-1, 400).astype(float)
    assert np.allclose(s["median"], A.expit(np.quantile(flat, 0.5, axis=-1)), atol=1e-6)
    assert np.allclose(s["lower"], A.expit(np.quantile(flat, 0.05, axis=-1)), atol=1e-6)
    assert np.allclose(s["upper"], A.expit(np.quantile(flat, 0.95, axis=-1)), atol=1e-6)
    assert np.allclose(s["mean"], A.expit(flat).mean(axis=-1), atol=1e-6)
