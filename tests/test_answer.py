"""Analytic properties of a patient's answer over the differential, per draw."""

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import answer as A
from palsy.model import contributions as CO
from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import schema as SC
from palsy.model.game import Game

SCHEMA = SC.default()
FULL = {"id": "t", "lineage": "T-ALL", "remission": "remission_on_treatment", "age_group": "child",
        "onset": "acute", "laterality": "bilateral", "other_cranial_nerves": "one_or_more", "peripheral_nerves": "none",
        "otalgia": "present",
        "csf": [{"cytology": "negative", "flow": "negative", "traumatic": "yes"}, "negative:flow", "negative:cytology"],
        "csf_profile": "protein_only", "mri": "facial_nerve_enhancement"}


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def _direct_log_joint(t: A.Tables, patient: F.Patient) -> np.ndarray:
    """log P(c) + log p(x | c) per draw and cause, written independently of Game (S, C): a loop over the
    findings with the formulas of docs/design.md §4, summing over whether blasts circulate."""
    sc, st, ix = t.schema, t.st, t.ix
    ctx = {n: patient.level(n) for n in sc.context}
    finding, level = sc.lp.contamination
    known = st.stratum_mask(ctx)
    present = st.stratum_mask({finding: level})
    theta = t.theta
    prof = patient.level(sc.profile)
    pos = neg = None
    if prof is not None:
        pos = t.level_lp[:, :, st.level_index[(st.profile_item("positive"), prof)]]
        neg = t.level_lp[:, :, st.level_index[(st.profile_item("negative"), prof)]]

    def pattern_probs(traumatic, blasts):
        trauma = theta[:, 0, ix.traumatic] if traumatic is None else float(traumatic == "yes")
        return LP.patterns(LK.NUMPY, theta, ix, (theta[:, 0, ix.contamination] * blasts * trauma)[:, None])

    by_blasts = []
    for blasts, strata in ((0.0, 1 - present), (1.0, present)):
        with np.errstate(divide="ignore"):
            c = np.log(t.p_sk @ (known * strata))  # log P(context, blasts, k | c)
        for lp in patient.csf:
            c = c + np.log(pattern_probs(lp.traumatic, blasts) @ LP.obs_mask(dict(lp.results), ix.methods))
        if prof is not None and not patient.csf:  # the first LP's class unknown: both methods, tap unknown
            p_pos = pattern_probs(None, blasts) @ LP.positive_mask(ix.methods, ix.methods)
            c = c + np.log(p_pos * np.exp(pos) + (1 - p_pos) * np.exp(neg))
        by_blasts.append(c)
    a = np.logaddexp(*by_blasts)
    for name in sc.tree_findings:
        if patient.level(name) is not None:
            a = a + t.level_lp[:, :, st.level_index[(name, patient.level(name))]]
    if prof is not None and patient.csf:
        a = a + (pos if patient.csf[0].positive else neg)
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


def _brute_shapley(game: Game) -> np.ndarray:
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
    return Game(t, A.players(patient), patient, active, t.log_prior, np.zeros_like(t.level_lp[:, :, 0]))


def test_exact_shapley_with_interchangeable_lps_equals_brute_force(draws):
    p = F.parse_patient({"lineage": "B-ALL", "laterality": "unilateral", "csf_profile": "normal",
                         "csf": ["negative:cytology", "negative:cytology", "negative:flow", "negative:cytology"]})
    game = _game(draws, p)
    phi, how = CO.shapley(game)
    assert how["method"] == "exact" and how["coalitions"] < 2 ** game.n_players
    assert np.allclose(phi, _brute_shapley(game), atol=1e-10)
    lps = [i for i, pl in enumerate(game.players) if pl.value == "cytology=negative" and pl.index != 1]
    assert np.allclose(phi[lps[0]], phi[lps[1]])  # identical LPs get the same value


def test_sampled_shapley_is_close_to_exact_and_reports_its_error(draws, monkeypatch):
    p = F.parse_patient({k: v for k, v in FULL.items() if k != "csf"} | {"csf": ["negative:cytology"]})
    game = _game(draws, p)
    exact, _ = CO.shapley(game)
    monkeypatch.setattr(CO, "EXACT_LIMIT", 1)
    sampled, how = CO.shapley(game, np.random.default_rng(3))
    assert how["method"] == "sampled" and how["mc_error"] < CO.SHAPLEY_MC_TARGET
    assert np.allclose(sampled.sum(axis=0), exact.sum(axis=0), atol=1e-9)  # efficiency holds per draw
    assert np.abs(sampled.mean(axis=1) - exact.mean(axis=1)).max() < 5 * how["mc_error"] + 1e-6


def test_finding_with_lr_one_changes_nothing(draws_independent):
    st = draws_independent_structure(draws_independent)
    node = st.find_node("laterality", ("bilateral",), st.items["laterality"])
    theta = draws_independent.params["theta_new"].copy()  # the draws the answers use
    theta[:, :, node] = theta[:, :1, node]
    dr = dataclasses.replace(draws_independent, params={**draws_independent.params, "theta_new": theta})
    with_lat = A.answer(F.parse_patient(FULL), dr)
    without = A.answer(F.parse_patient({k: v for k, v in FULL.items() if k != "laterality"}), dr)
    assert np.allclose(with_lat.posterior_log_odds, without.posterior_log_odds)
    lat = [i for i, p in enumerate(with_lat.players) if p.finding == "laterality"][0]
    assert np.allclose(with_lat.sequential[lat], 0) and np.allclose(with_lat.shapley[lat], 0, atol=1e-9)


def draws_independent_structure(draws):
    from palsy.model import structure

    return structure.of(draws.schema)


@pytest.mark.parametrize("missing", ["mri", "laterality", "lineage", "remission", "csf_profile", "recent_hsct",
                                     "circulating_blasts", "otalgia"])
def test_missing_finding_equals_marginalising_it(draws, missing):
    """p(x_obs | c) with a finding left out equals the sum over its levels of p(x_obs, level | c), exactly,
    with LPs whose contamination depends on whether blasts circulate (a traumatic first LP)."""
    t = A.Tables(draws)
    base = {k: v for k, v in FULL.items() if k != missing}
    lj = _direct_log_joint(t, F.parse_patient(base))
    terms = [_direct_log_joint(t, F.parse_patient({**base, missing: level})) for level in SCHEMA.levels[missing]]
    assert np.allclose(np.logaddexp.reduce(terms, axis=0), lj, atol=1e-9)
    a = A.answer(F.parse_patient(base), draws)
    assert np.allclose(a.posterior_cause, np.exp(lj - np.logaddexp.reduce(lj, axis=1)[:, None]), atol=1e-10)


@pytest.mark.parametrize("drop", ["mri", "csf"])
def test_next_test_identity_for_every_cause(draws, drop):
    """Per draw, sum_r P(r | x) P(c | x, r) = P(c | x) for every cause, and sum_r P(r | x) = 1."""
    patient = F.parse_patient({k: v for k, v in FULL.items() if k != drop})
    a = A.answer(patient, draws, keep_draws=True)
    assert {t["test"] for t in a.next_tests} == {"lp"} | ({"mri"} if drop == "mri" else set())
    for t in a.next_tests:
        pr = sum(o["_draws"][0] for o in t["outcomes"])
        mix = sum(o["_draws"][0][:, None] * o["_draws"][1] for o in t["outcomes"])
        assert np.allclose(pr, 1, atol=1e-10)
        assert np.allclose(mix, a.posterior_cause, atol=1e-10)
        if drop == "csf" and t["test"] == "lp":  # the first LP of a known profile: its four result patterns
            assert len(t["outcomes"]) == 4


def _entered(patient: F.Patient, test: str, result: str) -> F.Patient:
    """``patient`` with one result of a next test entered (an LP's code, with the CSF profile it reveals)."""
    if test != "lp":
        return patient.replace(**{test: result})
    code, _, profile = result.partition(";")
    lp = F.LP.of(**dict(part.split("=") for part in code.strip().split(",")))
    extra = {"csf_profile": profile.strip()} if profile.strip() else {}
    return patient.replace(csf=patient.csf + (lp,), **extra)


@pytest.mark.parametrize("data", [
    {"lineage": "T-ALL", "laterality": "bilateral", "other_cranial_nerves": "one_or_more"},  # first LP, profile too
    {"id": "source-001"},  # a library case: answered with the case left out (PSIS weights) before and after
    {"lineage": "B-ALL", "remission": "remission_on_treatment", "laterality": "unilateral", "csf": ["negative:cytology"]},
])
def test_what_a_result_is_shown_to_give_is_what_entering_it_gives(draws, data):
    """Each next test's "after" (P(infiltration) with its interval, every cause, the leading cause) is the answer
    with that result entered, and a result changes the decision's action only if the answer
    with it entered is in another zone (until 5 December the look-ahead reweighted the draws by P(r): a
    flow-positive LP was shown as 0.932 and gave 0.880 entered, and "can change the action" rested on 0.932)."""
    from palsy.model import decision as D
    from tests.conftest import REPO

    if "id" in data:
        import yaml

        data = yaml.safe_load((REPO / "patients" / f"{data['id']}.yaml").read_text(encoding="utf-8"))
    patient = F.parse_patient(data)
    settings = D.load(REPO / "priors")
    a = A.answer(patient, draws, shapley=False, rests_on=False, decision_settings=settings)
    assert a.next_tests
    zones = []
    for t in a.next_tests:
        for o in t["outcomes"]:
            b = A.answer(_entered(patient, t["test"], o["result"]), draws, shapley=False, rests_on=False,
                         next_tests=False)
            # the same numbers, up to the order of the floating-point sums (one step of the game or two)
            shown = {k: v for k, v in b.probability.items() if k != "ci"}
            assert o["probability_after"] == pytest.approx(shown, rel=1e-12, abs=1e-15), o["result"]
            entered = {c["cause"]: c["probability"]["mean"] for c in b.to_dict()["causes"]}
            assert o["causes_after"] == pytest.approx(entered, rel=1e-12, abs=1e-15)
            assert o["leading_cause_after"] == b.leading_cause
            assert o["tied_after"] == b.tied  # the answer's own tie rule (s16 stats review #3)
            th = a.decision["thresholds"]
            zones.append((t["test"], D.zone(b.probability["mean"], th["low"], th["high"])))
    for row in a.decision["tests"]:
        changes = [z != a.decision["action"] for test, z in zones if test == row["test"]]
        assert row["can_change_action"] == any(changes), row["test"]


def test_first_lp_outcomes_include_the_csf_profile(draws):
    a = A.answer(F.parse_patient({"lineage": "T-ALL"}), draws, keep_draws=True)
    lp = next(t for t in a.next_tests if t["test"] == "lp")
    assert len(lp["outcomes"]) == 12 and lp["outcomes"][0]["result"] == "cytology=negative,flow=negative; normal"
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
    with pytest.raises(F.InputError, match="infiltration"):
        A.answer(p, draws, causes=("bell", "zoster"))


def test_pretest_replaces_the_prior_given_context(draws):
    p = F.parse_patient(FULL)
    a = A.answer(p, draws, pretest=0.3)
    assert a.prior_probability["mean"] == pytest.approx(0.3)
    assert not any(pl.finding in SCHEMA.context for pl in a.players)
    # the other causes keep their relative shares given the context
    ctx = F.parse_patient({k: v for k, v in FULL.items() if k in SCHEMA.context or k == "id"})
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
_LP = st.fixed_dictionaries({}, optional={"cytology": _level(("negative", "positive")),
                                          "flow": _level(("negative", "positive")),
                                          "traumatic": _level(("no", "yes"))}).filter(lambda d: "cytology" in d or "flow" in d)
PATIENTS = st.fixed_dictionaries({}, optional={
    **{name: _level(SCHEMA.allowed(name) + ("unknown",)) for name in SCHEMA.categorical},
    "csf": st.lists(_LP, max_size=3),
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
    assert lr.shape == (draws.n, len(draws.causes), r.n_strata)
    assert np.all(np.isfinite(lr))


@pytest.mark.parametrize("raw", [
    {"lineage": "T-ALL", "laterality": "bilateral", "mri": "mass"},  # no LP, no profile
    {"lineage": "AML", "csf_profile": "pleocytosis", "onset": "acute"},  # a profile without its LP
    {"lineage": "B-ALL", "circulating_blasts": "present", "csf_profile": "normal", "vesicles": "absent",
     "csf": ["cytology=negative,flow=positive,traumatic=yes", "cytology=negative"]},
])
def test_the_look_aheads_shortcut_is_the_joint_of_every_finding(draws_subtype, raw):
    """``Game.log_joint_full`` (the parts that do not depend on a further result summed once) is
    ``log_joint`` of the full subset, with and without a further LP's or a tree item's term."""
    patient = F.parse_patient(raw)
    game = _game(draws_subtype, patient)
    full = np.ones((1, game.n_players), bool)
    lp_extra = game.lp_extra({"cytology": "positive", "flow": "negative"})
    tree_extra = game.t.level("eighth_nerve", "involved") if patient.level("eighth_nerve") is None else None
    for extra in (None, lp_extra, tree_extra):
        np.testing.assert_allclose(game.log_joint_full(extra), game.log_joint(full, extra=extra)[0], rtol=0, atol=1e-10)


def test_lp_patterns_follow_the_tables_draws(draws_subtype):
    """The per-status cache of LP patterns is rebuilt when tables are copied with other draws (the
    hybrids of what an answer rests on), never served stale."""
    import copy

    t = A.Tables(draws_subtype)
    whole = t.lp_patterns("yes")
    assert whole.shape == (t.n, len(t.component_cause), LP.N_PATTERNS, 2)
    assert np.allclose(whole.sum(axis=2), 1.0)
    stub = copy.copy(t)
    stub.theta = t.theta[:7]
    stub.contamination, stub.traumatic_rate = t.contamination[:7], t.traumatic_rate[:7]
    assert stub.lp_patterns("yes").shape[0] == 7 and np.shares_memory(t.lp_patterns("yes"), whole)


def test_negative_lp_curves_with_every_lp_known_are_empty(draws_subtype):
    """A patient with as many LPs as the schema reads: no further negative LP to count, and the answer is
    given (the curves' batch is empty, never averaged)."""
    from palsy.model import lookahead as LA

    n = draws_subtype.schema.lp.max_lps
    patient = F.parse_patient({"lineage": "B-ALL", "csf": ["negative:cytology"] * n})
    assert all(curve == [] for curve in LA.negative_curves(_game(draws_subtype, patient), patient, None).values())
    room = F.parse_patient({"lineage": "B-ALL", "csf": ["negative:cytology"] * (n - 2)})
    curves = LA.negative_curves(_game(draws_subtype, room), room, None)
    assert curves and all(len(c) == 2 and 0 < c[1] <= c[0] < 1 for c in curves.values())


@pytest.mark.parametrize("data", [{"lineage": "T-ALL", "laterality": "unilateral", "csf": ["negative:cytology"]},
                                  {"lineage": "AML", "laterality": "bilateral", "mri": "normal"}])
def test_an_answer_without_what_a_card_does_not_show_gives_every_other_number(draws, data):
    """An answer without the Shapley values, "rests on" and the count of further negative LPs (the options a
    card's answer had before it became :func:`palsy.model.brief.brief`, tests/test_brief.py) gives every other
    number of the full answer, bit for bit; its negative_lps_to_low is None, not a count."""
    from palsy.model import decision as D
    from palsy.model import guidance as G
    from tests.conftest import REPO

    patient = F.parse_patient(data)
    settings, rules = D.load(REPO / "priors"), G.load(REPO / "priors", draws.causes)
    full = A.answer(patient, draws, decision_settings=settings, guidance=rules, leave_out=False).to_dict()
    card = A.answer(patient, draws, decision_settings=settings, guidance=rules, leave_out=False, shapley=False,
                    rests_on=False, negative_lps=False).to_dict()
    assert full["decision"]["negative_lps_to_low"] and card["decision"]["negative_lps_to_low"] is None
    for d in (full, card):
        d["decision"].pop("negative_lps_to_low")
        for key in ("rests_on", "shapley", "shapley_method"):
            d.pop(key, None)
    assert set(card) == set(full) and card == full


def test_kept_simulated_patients_give_the_atypicality_check_of_a_fresh_simulation(draws, monkeypatch):
    """Patients who share the context and which findings are known share the atypicality check's simulated
    patients (kept per tables): the check reads the same to the last bit as with nothing kept, for patients whose
    observed levels differ, and a patient of another context or other known findings gets its own."""
    from palsy.model import atypicality as AT

    base = {"lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "unilateral", "onset": "acute",
            "csf": [{"cytology": "negative"}]}
    datas = [base, {**base, "laterality": "bilateral", "onset": "progressive"},
             {**base, "csf": [{"cytology": "positive"}]}, {**base, "lineage": "AML"}, {**base, "mri": "normal"}]
    patients = [F.parse_patient(d) for d in datas]
    t = A.Tables(draws)
    kept = [A.answer(p, draws, tables=t, shapley=False, rests_on=False).atypical for p in patients]
    _, store = t.derived(("atypicality", "simulations"), lambda: None)
    assert len(store) == 3  # the first three share one; another lineage and a known MRI each their own
    monkeypatch.setattr(AT, "_simulation_key", lambda game, rng: None)
    fresh = [A.answer(p, draws, tables=A.Tables(draws), shapley=False, rests_on=False).atypical for p in patients]
    assert kept == fresh
    assert len({a["tail_probability"] for a in kept}) > 1  # the observed levels still move the tail
    # a copy of the tables with other rates (as rests_on makes) shares the store but simulates its own patients
    import copy

    monkeypatch.undo()
    stub = copy.copy(t)
    stub.log_prior = t.log_prior + 0.0  # other rate tables (here the same values, another array)
    A.answer(patients[0], draws, tables=stub, shapley=False, rests_on=False)
    assert len(store) == 3 and any(entry[0] is stub.log_prior for entry in store.values())


def test_answers_in_threads_share_the_kept_tables_safely(draws, monkeypatch):
    """A service's threads answer side by side on one set of tables (a card and a report at once): with the
    context store at two entries, so that threads evict what others look up, every answer is the one computed
    alone. (The race the tables' lock closes, a key evicted between another thread's lookup and its use, is
    rare under the GIL: this passed in three runs without the lock too; it guards the answers, not the lock.)"""
    import concurrent.futures as cf

    from palsy.model import game as GM

    monkeypatch.setattr(GM, "CONTEXT_CACHE", 2)
    datas = [{"lineage": lin, "remission": rem, "laterality": "unilateral", "csf": [{"cytology": "negative"}]}
             for lin in ("T-ALL", "B-ALL", "AML") for rem in ("remission_on_treatment", "not_in_remission")]
    patients = [F.parse_patient(d) for d in datas] * 4
    def said(p: F.Patient, t: A.Tables) -> str:  # as JSON: the Shapley values left out are NaN, never equal
        return json.dumps(A.answer(p, draws, tables=t, shapley=False, rests_on=False).to_dict(), sort_keys=True)

    alone = [said(p, A.Tables(draws)) for p in patients[:6]]
    t = A.Tables(draws)
    with cf.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: said(p, t), patients))
    assert together == alone * 4
