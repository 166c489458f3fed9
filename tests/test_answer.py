"""Analytic properties of a patient's answer over draws."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import answer as A
from model import findings as F
from model import structure as S

FULL = {"id": "t", "lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "bilateral",
        "other_cranial_nerves": "one_or_more", "peripheral_nerves": "none",
        "csf": ["negative:cytology", "negative:flow", "negative:cytology"], "mri": "facial_nerve_enhancement"}


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def test_contributions_sum_to_total_per_draw(draws):
    a = A.answer(F.parse_patient(FULL), draws)
    total = a.posterior_log_odds - a.prior_log_odds
    assert np.allclose(a.sequential.sum(axis=0), total, atol=1e-10)
    assert np.allclose(a.shapley.sum(axis=0), total, atol=1e-10)
    d = a.to_dict()
    assert sum(c["log_lr"]["mean"] for c in d["contributions"]) == pytest.approx(
        d["log_odds"]["posterior"]["mean"] - d["log_odds"]["prior"]["mean"], abs=1e-9)


def test_finding_with_lr_one_changes_nothing(draws_independent):
    node = S.find_node("laterality", ("bilateral",), S.ITEMS["laterality"])
    theta = draws_independent.params["theta"].copy()
    theta[:, 0, node] = theta[:, 1, node]
    dr = dataclasses.replace(draws_independent, params={**draws_independent.params, "theta": theta})
    with_lat = A.answer(F.parse_patient(FULL), dr)
    without = A.answer(F.parse_patient({k: v for k, v in FULL.items() if k != "laterality"}), dr)
    assert np.allclose(with_lat.posterior_log_odds, without.posterior_log_odds)
    lat = [i for i, p in enumerate(with_lat.players) if p.finding == "laterality"][0]
    assert np.allclose(with_lat.sequential[lat], 0) and np.allclose(with_lat.shapley[lat], 0)


@pytest.mark.parametrize("missing", ["mri", "laterality", "lineage", "remission"])
def test_missing_finding_equals_marginalising_it(draws, missing):
    """p(x_obs | H) with a finding left out equals the sum over its levels of p(x_obs, level | H)."""
    patient = F.parse_patient({k: v for k, v in FULL.items() if k != missing})
    t = A.Tables(draws)
    game = A.Game(t, A.players(patient))
    full = np.ones((1, len(game.players)), bool)
    lp_l, lp_b = (x[0] for x in game.log_p(full))
    terms_l, terms_b = [], []
    for level in F.LEVELS[missing]:
        g2 = A.Game(t, A.players(F.parse_patient({**{k: v for k, v in FULL.items() if k != missing}, missing: level})))
        ll, lb = (x[0] for x in g2.log_p(np.ones((1, len(g2.players)), bool)))
        terms_l.append(ll)
        terms_b.append(lb)
    assert np.allclose(np.logaddexp.reduce(terms_l, axis=0), lp_l, atol=1e-9)
    assert np.allclose(np.logaddexp.reduce(terms_b, axis=0), lp_b, atol=1e-9)


def test_next_test_identity(draws):
    """Per draw, sum_r P(r | x) P(L | x, r) = P(L | x) and sum_r P(r | x) = 1."""
    patient = F.parse_patient({k: v for k, v in FULL.items() if k != "mri"})
    a = A.answer(patient, draws, keep_draws=True)
    assert {t["test"] for t in a.next_tests} == {"lp_cytology", "lp_flow", "mri"}
    for t in a.next_tests:
        pr = sum(o["_draws"][0] for o in t["outcomes"])
        mix = sum(o["_draws"][0] * A.expit(o["_draws"][1]) for o in t["outcomes"])
        assert np.allclose(pr, 1, atol=1e-12)
        assert np.allclose(mix, a.probability_draws, atol=1e-12)


def test_pretest_replaces_base_rate(draws_independent):
    a = A.answer(F.parse_patient({"laterality": "bilateral"}), draws_independent, pretest=0.3)
    assert a.prior_probability["mean"] == pytest.approx(0.3)
    assert a.probability["mean"] > 0.3


def test_no_findings_gives_base_rate(draws_independent):
    a = A.answer(F.parse_patient({}), draws_independent)
    assert np.array_equal(a.posterior_log_odds, a.prior_log_odds)
    assert a.contributions == [] and a.shapley_values == []


def test_library_case_is_left_out(draws_independent, evidence):
    pat = F.parse_patient({"id": "source-001", "laterality": "bilateral"})
    a = A.answer(pat, draws_independent)
    assert a.left_out["case"] == evidence.case("source-001").id
    assert a.weights is not None and a.weights.sum() == pytest.approx(1)
    b = A.answer(dataclasses.replace(pat, id="someone-else"), draws_independent)
    assert b.left_out is None and b.weights is None


def test_summary_median_is_expit_of_log_odds_median(draws_independent):
    a = A.answer(F.parse_patient(FULL), draws_independent)
    assert a.probability["median"] == pytest.approx(A.expit(np.median(a.posterior_log_odds)))
    assert a.probability["lower"] < a.probability["median"] < a.probability["upper"]


lp = st.builds(lambda r, m: f"{r}:{m}", st.sampled_from(F.CSF_RESULTS), st.sampled_from(F.CSF_METHODS))
patients = st.fixed_dictionaries({}, optional={
    **{name: st.sampled_from((*F.allowed(name), "unknown")) for name in F.LEVELS},
    "csf": st.lists(lp, max_size=4),
})


@settings(max_examples=40, deadline=None)
@given(data=patients, idx=st.integers(0, 4))
def test_property_probability_in_unit_interval_and_positive_lp_never_lowers(draws_independent, data, idx):
    patient = F.parse_patient(data)
    a = A.answer(patient, draws_independent)
    p = a.probability_draws
    assert np.all((p >= 0) & (p <= 1)) and 0 <= a.probability["lower"] <= a.probability["upper"] <= 1
    csf = list(data.get("csf", []))
    method = F.CSF_METHODS[idx % 2]
    pos = A.answer(F.parse_patient({**data, "csf": [*csf, f"positive:{method}"]}), draws_independent)
    neg = A.answer(F.parse_patient({**data, "csf": [*csf, f"negative:{method}"]}), draws_independent)
    assert np.all(pos.posterior_log_odds >= neg.posterior_log_odds - 1e-12)


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from([*F.LEVELS, "csf", "age", "sex"]), value=st.text(min_size=1, max_size=12))
def test_property_invalid_values_are_rejected(key, value):
    if key in F.LEVELS and value in (*F.allowed(key), "unknown"):
        return
    with pytest.raises(F.InputError) as exc:
        F.parse_patient({key: value})
    assert key in str(exc.value)
