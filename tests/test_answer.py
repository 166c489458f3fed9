"""Analytic properties of a patient's answer over the differential, per draw."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import answer as A
from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import structure as S

FULL = {"id": "t", "lineage": "T-ALL", "remission": "remission_on_treatment", "age_group": "child",
        "onset": "acute", "laterality": "bilateral", "other_cranial_nerves": "one_or_more", "peripheral_nerves": "none",
        "csf": ["negative:cytology", "negative:flow", "negative:cytology"], "csf_profile": "protein_only",
        "mri": "facial_nerve_enhancement"}


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def _direct_log_joint(t: A.Tables, patient: F.Patient) -> np.ndarray:
    """log P(c) + log p(x | c) per draw and cause, written independently of Game (S, C)."""
    a = t.context_term({n: patient.level(n) for n in F.CONTEXT})
    for name in S.TREE_FINDINGS:
        if patient.level(name) is not None:
            a = a + t.level_lp[:, :, S.LEVEL_INDEX[(name, patient.level(name))]]
    for lp in patient.csf:
        a = a + t.level_lp[:, :, S.LEVEL_INDEX[(S.csf_item(lp.method), lp.result)]]
    prof = patient.level("csf_profile")
    if prof is not None:
        if patient.csf:
            a = a + t.level_lp[:, :, S.LEVEL_INDEX[(S.profile_item(patient.csf[0].result), prof)]]
        else:
            m = t.default_method
            a = a + np.logaddexp(*(t.level_lp[:, :, S.LEVEL_INDEX[(S.csf_item(m), r)]]
                                   + t.level_lp[:, :, S.LEVEL_INDEX[(S.profile_item(r), prof)]] for r in F.CSF_RESULTS))
    per_cause = np.stack([np.logaddexp.reduce(a[:, t.component_cause == j], axis=1) for j in range(len(t.causes))], 1)
    return t.log_prior + per_cause


def test_answer_matches_a_direct_computation(draws):
    p = F.parse_patient(FULL)
    a = A.answer(p, draws)
    lj = _direct_log_joint(A.Tables(draws), p)
    post = np.exp(lj - np.logaddexp.reduce(lj, axis=1)[:, None])
    assert np.allclose(a.posterior_cause, post, atol=1e-10)
    assert np.allclose(a.posterior_cause.sum(axis=1), 1)
    assert sum(c["probability"]["mean"] for c in a.cause_summaries()) == pytest.approx(1)


def test_contributions_sum_to_total_per_draw(draws):
    a = A.answer(F.parse_patient(FULL), draws)
    total = a.posterior_log_odds - a.prior_log_odds
    assert np.allclose(a.sequential.sum(axis=0), total, atol=1e-10)
    assert np.allclose(a.shapley.sum(axis=0), total, atol=1e-9)
    d = a.to_dict()
    assert sum(c["log_lr"]["mean"] for c in d["contributions"]) == pytest.approx(
        d["log_odds"]["posterior"]["mean"] - d["log_odds"]["prior"]["mean"], abs=1e-9)
    assert d["steps"][0]["finding"] == "prior" and len(d["steps"]) == len(a.players) + 1
    last = d["steps"][-1]["causes"]
    for c in d["causes"]:
        assert last[c["cause"]] == pytest.approx(c["probability"]["mean"])


def _brute_shapley(game: A.Game) -> np.ndarray:
    n = game.n_players
    codes = np.arange(2 ** n)
    subsets = ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
    v = game.value(subsets)
    size = subsets.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) if s < n else 0.0
                       for s in range(n + 1)])
    phi = np.empty((n, v.shape[1]))
    for i in range(n):
        without = codes[(codes >> i) & 1 == 0]
        phi[i] = weight[size[without]] @ (v[without | (1 << i)] - v[without])
    return phi


def _game(draws, patient):
    t = A.Tables(draws)
    active = np.ones(len(t.causes), bool)
    return A.Game(t, A.players(patient), patient, active, t.log_prior, np.zeros_like(t.level_lp[:, :, 0]))


def test_exact_shapley_with_interchangeable_lps_equals_brute_force(draws):
    p = F.parse_patient({"lineage": "B-ALL", "laterality": "unilateral", "csf_profile": "normal",
                         "csf": ["negative:cytology", "negative:cytology", "negative:flow", "negative:cytology"]})
    game = _game(draws, p)
    phi, how = A.shapley(game)
    assert how["method"] == "exact" and how["coalitions"] < 2 ** game.n_players
    assert np.allclose(phi, _brute_shapley(game), atol=1e-10)
    lps = [i for i, pl in enumerate(game.players) if pl.value == "negative:cytology" and pl.index != 1]
    assert np.allclose(phi[lps[0]], phi[lps[1]])  # identical LPs get the same value


def test_sampled_shapley_is_close_to_exact_and_reports_its_error(draws, monkeypatch):
    p = F.parse_patient({k: v for k, v in FULL.items() if k != "csf"} | {"csf": ["negative:cytology"]})
    game = _game(draws, p)
    exact, _ = A.shapley(game)
    monkeypatch.setattr(A, "EXACT_LIMIT", 1)
    sampled, how = A.shapley(game, np.random.default_rng(3))
    assert how["method"] == "sampled" and how["mc_error"] < A.SHAPLEY_MC_TARGET
    assert np.allclose(sampled.sum(axis=0), exact.sum(axis=0), atol=1e-9)  # efficiency holds per draw
    assert np.abs(sampled.mean(axis=1) - exact.mean(axis=1)).max() < 5 * how["mc_error"] + 1e-6


def test_finding_with_lr_one_changes_nothing(draws_independent):
    node = S.find_node("laterality", ("bilateral",), S.ITEMS["laterality"])
    theta = draws_independent.params["theta_new"].copy()  # the draws the answers use
    theta[:, :, node] = theta[:, :1, node]
    dr = dataclasses.replace(draws_independent, params={**draws_independent.params, "theta_new": theta})
    with_lat = A.answer(F.parse_patient(FULL), dr)
    without = A.answer(F.parse_patient({k: v for k, v in FULL.items() if k != "laterality"}), dr)
    assert np.allclose(with_lat.posterior_log_odds, without.posterior_log_odds)
    lat = [i for i, p in enumerate(with_lat.players) if p.finding == "laterality"][0]
    assert np.allclose(with_lat.sequential[lat], 0) and np.allclose(with_lat.shapley[lat], 0, atol=1e-9)


@pytest.mark.parametrize("missing", ["mri", "laterality", "lineage", "remission", "csf_profile", "recent_hsct"])
def test_missing_finding_equals_marginalising_it(draws, missing):
    """p(x_obs | c) with a finding left out equals the sum over its levels of p(x_obs, level | c)."""
    t = A.Tables(draws)
    base = {k: v for k, v in FULL.items() if k != missing}
    lj = _direct_log_joint(t, F.parse_patient(base))
    terms = [_direct_log_joint(t, F.parse_patient({**base, missing: level})) for level in F.LEVELS[missing]]
    assert np.allclose(np.logaddexp.reduce(terms, axis=0), lj, atol=1e-9)
    a = A.answer(F.parse_patient(base), draws)
    assert np.allclose(a.posterior_cause, np.exp(lj - np.logaddexp.reduce(lj, axis=1)[:, None]), atol=1e-10)


@pytest.mark.parametrize("drop", ["mri", "csf"])
def test_next_test_identity_for_every_cause(draws, drop):
    """Per draw, sum_r P(r | x) P(c | x, r) = P(c | x) for every cause, and sum_r P(r | x) = 1."""
    patient = F.parse_patient({k: v for k, v in FULL.items() if k != drop})
    a = A.answer(patient, draws, keep_draws=True)
    assert {t["test"] for t in a.next_tests} == {"lp_cytology", "lp_flow", "mri"} - ({"mri"} if drop == "csf" else set())
    for t in a.next_tests:
        pr = sum(o["_draws"][0] for o in t["outcomes"])
        mix = sum(o["_draws"][0][:, None] * o["_draws"][1] for o in t["outcomes"])
        assert np.allclose(pr, 1, atol=1e-10)
        assert np.allclose(mix, a.posterior_cause, atol=1e-10)
        if drop == "csf" and t["test"].startswith("lp_"):  # the first LP: a result and a CSF profile
            assert len(t["outcomes"]) == 2


def test_first_lp_outcomes_include_the_csf_profile(draws):
    a = A.answer(F.parse_patient({"lineage": "T-ALL"}), draws, keep_draws=True)
    lp = next(t for t in a.next_tests if t["test"] == "lp_flow")
    assert len(lp["outcomes"]) == 6 and lp["outcomes"][0]["result"] == "negative, normal"
    assert np.allclose(sum(o["_draws"][0] for o in lp["outcomes"]), 1)


def test_two_causes_match_an_independent_two_cause_formula(draws):
    p = F.parse_patient(FULL)
    a = A.answer(p, draws, causes=("infiltration", "bell"))
    t = A.Tables(draws)
    lj = _direct_log_joint(t, p)
    i, b = t.causes.index("infiltration"), t.causes.index("bell")
    p2 = 1 / (1 + np.exp(lj[:, b] - lj[:, i]))
    assert np.allclose(A.expit(a.posterior_log_odds), p2, atol=1e-10)
    assert [c["cause"] for c in a.cause_summaries()] == ["infiltration", "bell"]
    assert a.posterior_cause[:, [j for j in range(len(t.causes)) if j not in (i, b)]].max() == 0


def test_excluded_hallmark_warns(draws):
    p = F.parse_patient({**FULL, "vesicles": "present"})
    assert A.answer(p, draws, causes=("infiltration", "bell")).warnings
    assert not A.answer(p, draws).warnings
    with pytest.raises(ValueError, match="infiltration"):
        A.answer(p, draws, causes=("bell", "zoster"))


def test_pretest_replaces_the_prior_given_context(draws):
    p = F.parse_patient(FULL)
    a = A.answer(p, draws, pretest=0.3)
    assert a.prior_probability["mean"] == pytest.approx(0.3)
    assert not any(pl.finding in F.CONTEXT for pl in a.players)
    # the other causes keep their relative shares given the context
    ctx = F.parse_patient({k: v for k, v in FULL.items() if k in F.CONTEXT or k == "id"})
    c = A.answer(ctx, draws)
    i = a.causes.index("infiltration")
    others = [j for j in range(len(a.causes)) if j != i]
    share_a = a.step_cause[0][:, others] / a.step_cause[0][:, others].sum(1, keepdims=True)
    share_c = c.posterior_cause[:, others] / c.posterior_cause[:, others].sum(1, keepdims=True)
    assert np.allclose(share_a, share_c, atol=1e-10)


def test_profile_without_an_lp_is_marginalised_over_the_first_result(draws):
    t = A.Tables(draws)
    p = F.parse_patient({"csf_profile": "pleocytosis"})
    a = A.answer(p, draws)
    lj = _direct_log_joint(t, p)
    assert np.allclose(a.posterior_cause, np.exp(lj - np.logaddexp.reduce(lj, axis=1)[:, None]), atol=1e-10)


def test_central_palsy_is_answered_out_of_scope(draws):
    a = A.answer(F.parse_patient({**FULL, "forehead": "spared"}), draws)
    d = a.to_dict()
    assert d["in_scope"] is False and d["scope_notes"] and "central" in d["scope_notes"][0]
    assert not any(p.finding == "forehead" for p in a.players)
    ref = A.answer(F.parse_patient(FULL), draws)
    assert np.allclose(a.posterior_cause, ref.posterior_cause)  # forehead enters no likelihood


def test_answers_are_reproducible(draws):
    p = F.parse_patient(FULL)
    assert A.answer(p, draws).to_json() == A.answer(p, draws).to_json()


_level = st.sampled_from
PATIENTS = st.fixed_dictionaries({}, optional={
    **{name: _level(F.LEVELS[name] + ("unknown",)) for name in F.LEVELS},
    "csf": st.lists(st.builds(lambda r, m: f"{r}:{m}", _level(F.CSF_RESULTS), _level(F.CSF_METHODS)), max_size=3),
})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PATIENTS)
def test_any_patient_gets_a_coherent_answer(draws_independent, data):
    a = A.answer(F.parse_patient(data), draws_independent)
    d = a.to_dict()
    assert np.all(np.isfinite(a.posterior_log_odds))
    assert np.allclose(a.posterior_cause.sum(axis=1), 1)
    assert 0 < d["probability"]["mean"] < 1 and d["probability"]["lower"] <= d["probability"]["upper"]
    assert np.allclose(a.sequential.sum(axis=0), a.posterior_log_odds - a.prior_log_odds, atol=1e-9)
    assert 0 <= d["atypical"]["tail_probability"] <= 1


def test_log_rates_are_those_of_the_rate_file(draws):
    """A cause's rate in a stratum is the product of its factors and of its multipliers there."""
    r = draws.rate_arrays
    lr = LK.log_rates(LK.NUMPY, draws.params, r)
    assert lr.shape == (draws.n, len(draws.causes), S.N_STRATA)
    assert np.all(np.isfinite(lr))
