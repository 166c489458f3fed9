"""The decision layer: Pauker-Kassirer thresholds, value of information against a direct computation,
the action the mean implies, --thresholds, and the negative LPs needed to fall below the lower threshold."""

import dataclasses
import json

import numpy as np
import pytest

from palsy.model import answer as A
from palsy.model import decision as D
from palsy.model import findings as F
from tests.conftest import REPO

SETTINGS = D.Settings(benefit=1.0, harm=4.0, test_harm={"lp": 0.004, "mri": 0.002},
                      action_text={a: a for a in D.ACTIONS})


def pauker_kassirer(se: float, fpr: float, harm: float, benefit: float, test_harm: float) -> tuple[float, float]:
    """The testing and test-treatment thresholds of a dichotomous test as Pauker and Kassirer (1980) write them."""
    tt = (fpr * harm + test_harm) / (fpr * harm + se * benefit)
    trx = ((1 - fpr) * harm - test_harm) / ((1 - fpr) * harm + (1 - se) * benefit)
    return float(tt), float(trx)


def _two(se: float, fpr: float, harm: float, benefit: float, c: float) -> tuple[float, float]:
    return D.test_interval(np.array([1 - se, se]), np.array([1 - fpr, fpr]), harm, benefit, c)


def test_thresholds_by_hand():
    # a perfect free test: test whenever there is any doubt
    assert _two(1.0, 0.0, 4, 1, 0.0) == pytest.approx((0.0, 1.0), abs=1e-12)
    # Se 0.8, FPR 0.1, harm 4, benefit 1, test harm 0.01 (Pauker & Kassirer 1980)
    tt, trx = _two(0.8, 0.1, 4, 1, 0.01)
    assert tt == pytest.approx((0.1 * 4 + 0.01) / (0.1 * 4 + 0.8))
    assert trx == pytest.approx((0.9 * 4 - 0.01) / (0.9 * 4 + 0.2))
    assert tt < SETTINGS.treatment_threshold < trx


def _gain(p: float, a: np.ndarray, b: np.ndarray, harm: float, benefit: float, c: float) -> float:
    """Expected value of testing minus that of the better of not testing and treating, directly."""
    return float(sum(max(0.0, p * ai * benefit - (1 - p) * bi * harm) for ai, bi in zip(a, b, strict=True))
                 - max(0.0, p * benefit - (1 - p) * harm) - c)


@pytest.mark.parametrize("se,fpr,c", [(0.8, 0.1, 0.01), (0.5, 0.02, 0.004), (0.95, 0.3, 0.0), (0.3, 0.25, 0.05)])
def test_two_results_give_pauker_kassirer(se, fpr, c):
    got = _two(se, fpr, 4.0, 1.0, c)
    tt, trx = pauker_kassirer(se, fpr, 4.0, 1.0, c)
    if tt < trx:
        assert got == pytest.approx((tt, trx), abs=1e-12)
    else:
        assert got == (0.8, 0.8), "never worth testing: both ends at the treatment threshold"


def test_many_results_interval_is_where_testing_pays():
    """Random tests with 2-8 results: inside the interval testing gains, outside it does not (checked directly)."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        k = int(rng.integers(2, 9))
        a, b = rng.dirichlet(np.full(k, 0.5)), rng.dirichlet(np.full(k, 0.5))
        harm, benefit, c = float(rng.uniform(0.2, 9)), 1.0, float(rng.choice([0.0, 0.002, 0.02, 0.2]))
        low, high = D.test_interval(a, b, harm, benefit, c)
        grid = np.linspace(0.0005, 0.9995, 400)
        gains = np.array([_gain(p, a, b, harm, benefit, c) for p in grid])
        inside = (grid > low + 1e-9) & (grid < high - 1e-9)
        assert np.all(gains[inside] > -1e-12)
        assert np.all(gains[(grid < low - 1e-9) | (grid > high + 1e-9)] <= 1e-12)
        if high > low:
            assert _gain(low, a, b, harm, benefit, c) == pytest.approx(0, abs=1e-9)


def test_a_result_that_barely_moves_p_is_not_a_positive():
    """Three results: a weak one (LR 1.02) beside a strong positive and a negative. Dichotomising by 'raises P'
    counts the weak result as positive and inflates the false-positive rate; the exact interval does not."""
    a = np.array([0.30, 0.50, 0.20])  # P(result | infiltration): negative, weak, strongly positive
    b = np.array([0.505, 0.49, 0.005])  # P(result | other causes)
    low, high = D.test_interval(a, b, 4.0, 1.0, 0.004)
    tt, _ = pauker_kassirer(0.70, 0.495, 4.0, 1.0, 0.004)  # the dichotomised reading
    assert low < tt / 2
    assert _gain(0.2, a, b, 4.0, 1.0, 0.004) > 0 and low < 0.2 < high


def test_action_is_test_wherever_a_test_pays(draws_subtype, settings):
    """The action the mean implies is 'test' whenever some test's value of information is positive, and never
    'no_test' with a positive value of information (the helper's B-ALL child with a bilateral palsy among them)."""
    patients = [
        {"lineage": "B-ALL", "remission": "remission_on_treatment", "age_group": "child", "recent_vincristine": "yes",
         "laterality": "bilateral"},
        {"lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "unilateral",
         "csf": ["negative:cytology"]},
        {"lineage": "AML", "laterality": "unilateral", "mri": "facial_nerve_enhancement"},
        {"laterality": "unilateral", "other_cranial_nerves": "none", "csf": ["negative:flow", "negative:flow"]},
        {"lineage": "T-ALL", "laterality": "bilateral", "mri": "mass"},
    ]
    for data in patients:
        dec = A.answer(F.parse_patient(data), draws_subtype, decision_settings=settings).decision
        best = max(t["value_for_infiltration"] for t in dec["tests"])  # the action is about infiltration
        print(data, dec["action"], f"P {dec['probability']:.3f}", f"best VOI {best:+.4f}", dec["thresholds"])
        if best > 0:
            assert dec["action"] == "test", data
        assert not (dec["action"] == "no_test" and best > 0), data


@pytest.mark.parametrize("p_inf, se, fp", [
    ((0.3, 0.5), (0.9, 0.7), (0.05, 0.1)),
    # a positive result: 0.905 of the patients who get it have infiltration, but the answer shown once it is
    # entered is 0.603, under the treatment threshold 0.8: it is not acted on, and its value counts as such
    ((0.95, 0.05), (0.95, 0.5), (0.05, 0.1)),
])
def test_value_of_information_against_a_direct_computation(p_inf, se, fp):
    """A small case with two draws and one binary test, computed by hand."""
    p_inf, se, fp = np.array(p_inf), np.array(se), np.array(fp)  # P(infiltration | x) per draw, the test's rates
    pr_pos = p_inf * se + (1 - p_inf) * fp
    post_pos = p_inf * se / pr_pos
    post_neg = p_inf * (1 - se) / (1 - pr_pos)
    tests = [{"test": "lp", "outcomes": [
        {"_draws": (1 - pr_pos, None), "p_inf": post_neg},
        {"_draws": (pr_pos, None), "p_inf": post_pos}]}]
    out = D.decide(p_inf, tests, {"cytology": [], "flow": []}, SETTINGS)
    # by hand: P(r), the share with infiltration among the patients with result r, and what the answer shows once
    # r is entered (the mean over the draws); treated after r when the answer shown says so, which pays B per
    # patient with infiltration and costs H per patient without: E_r[that] - max(0, B p - H (1 - p)) - R
    p = p_inf.mean()
    probs = {"pos": pr_pos.mean(), "neg": (1 - pr_pos).mean()}
    after = {"pos": (pr_pos * post_pos).mean() / probs["pos"], "neg": ((1 - pr_pos) * post_neg).mean() / probs["neg"]}
    shown = {"pos": post_pos.mean(), "neg": post_neg.mean()}
    u = lambda q: max(0.0, q * 1.0 - (1 - q) * 4.0)  # noqa: E731
    acted = lambda q, seen: q * 1.0 - (1 - q) * 4.0 if seen * 1.0 - (1 - seen) * 4.0 > 0 else 0.0  # noqa: E731
    voi = sum(probs[r] * acted(after[r], shown[r]) for r in probs) - u(p) - 0.004
    t = out["tests"][0]
    assert t["value_of_information"] == pytest.approx(voi, abs=1e-12)
    if shown["pos"] < 0.8 < after["pos"]:  # the case this checks: acting on the share would count a gain not had
        assert t["value_of_information"] < sum(probs[r] * u(after[r]) for r in probs) - u(p) - 0.004 - 0.1
    assert t["sensitivity"] == pytest.approx((pr_pos * post_pos).mean() / p)
    assert out["action"] == ("no_test" if p < out["thresholds"]["low"] else "treat" if p > out["thresholds"]["high"] else "test")


@pytest.fixture(scope="module")
def settings():
    return D.load(REPO / "priors")


def test_decision_in_the_answer(draws_subtype, settings):
    p = F.parse_patient({"lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "unilateral",
                         "csf": ["negative:cytology"]})
    a = A.answer(p, draws_subtype, decision_settings=settings)
    dec = a.decision
    assert dec["probability"] == pytest.approx(a.probability["mean"])
    low, high = dec["thresholds"]["low"], dec["thresholds"]["high"]
    assert 0 < low < high < 1
    assert dec["action"] == ("no_test" if a.probability["mean"] < low else "treat" if a.probability["mean"] > high else "test")
    assert {t["test"] for t in dec["tests"]} == {"lp", "mri"}
    # the number of further negative LPs, checked directly (0 when already below)
    assert set(dec["negative_lps_to_low"]) == {"cytology", "flow", "cytology_and_flow"}
    for methods, k in dec["negative_lps_to_low"].items():
        negative = F.LP.of(**{m: "negative" for m in methods.split("_and_")})
        if k == 0:
            assert a.probability["mean"] < low
            continue
        for j in range(1, 6):
            q = A.answer(p.replace(csf=p.csf + (negative,) * j), draws_subtype, shapley=False, next_tests=False,
                         rests_on=False).probability["mean"]
            if k is not None and j == k:
                assert q < low
                break
            assert q >= low or k is None
    over = A.answer(p, draws_subtype, decision_settings=settings, thresholds=(0.01, 0.02))
    assert over.decision["action"] == "treat" and over.decision["thresholds"]["source"] == "--thresholds"
    assert A.answer(p, draws_subtype, decision_settings=settings, thresholds=(0.98, 0.99)).decision["action"] == "no_test"


def test_cli_decision_and_thresholds(palsy):
    d = json.loads(palsy("posterior", "--lineage", "T-ALL", "--json", check=True).stdout)
    dec = d["decision"]
    assert set(dec) >= {"thresholds", "action", "tests", "negative_lps_to_low"}
    assert set(dec["thresholds"]) >= {"low", "high"}
    assert set(dec["negative_lps_to_low"]) == {"cytology", "flow", "cytology_and_flow"}
    for t in dec["tests"]:
        assert set(t) >= {"test", "can_change_action", "probability_of_change", "value_of_information"}
    d = json.loads(palsy("posterior", "--lineage", "T-ALL", "--thresholds", "0.01,0.02", "--json", check=True).stdout)
    assert d["decision"]["action"] == "treat"
    r = palsy("posterior", "--thresholds", "0.5,0.2")
    assert r.returncode == 2 and "--thresholds" in r.stderr


def _useless_lp(p_inf: float) -> list[dict]:
    """One LP whose results move nobody (a likelihood ratio of 1): never worth doing in one step."""
    p = np.full(4, p_inf)
    return [{"test": "lp", "outcomes": [{"_draws": (np.full(4, 0.9), None), "p_inf": p},
                                        {"_draws": (np.full(4, 0.1), None), "p_inf": p}]}]


@pytest.mark.parametrize("p_inf, action", [(0.26, "test"), (0.55, "test"), (0.10, "test"), (0.06, "no_test")])
def test_the_testing_floor_caps_the_lower_threshold(p_inf, action):
    """A clinician's review (December 2026): the one-step model said "no further test" at P(infiltration) 19-55%
    because no single result reached the treatment threshold. Below the upper threshold the decision now says
    'test' at or above decision.yaml's testing floor, and not below it; --thresholds is never floored."""
    floored = dataclasses.replace(SETTINGS, testing_floor=0.10)
    tests = _useless_lp(p_inf)
    plain = D.decide(np.full(4, p_inf), tests, None, SETTINGS)
    assert plain["action"] == "no_test" and plain["thresholds"]["low"] == pytest.approx(0.8)
    assert not plain["thresholds"]["floored"]
    out = D.decide(np.full(4, p_inf), tests, None, floored)
    assert out["action"] == action
    assert out["thresholds"]["low"] == pytest.approx(0.10) and out["thresholds"]["floored"]
    assert out["thresholds"]["high"] == pytest.approx(0.8)
    given = D.decide(np.full(4, p_inf), tests, None, floored, thresholds=(0.5, 0.9))
    assert given["thresholds"]["low"] == 0.5 and not given["thresholds"]["floored"]


def test_the_floor_never_raises_a_lower_threshold_the_tests_give():
    """A test that pays from 2%: the floor (10%) leaves that lower threshold alone."""
    floored = dataclasses.replace(SETTINGS, testing_floor=0.10)
    a, b = np.array([0.05, 0.95]), np.array([0.999, 0.001])  # a near-perfect cheap test
    low, _ = D.test_interval(a, b, 4.0, 1.0, 0.004)
    assert low < 0.10
    p_inf = np.full(4, 0.05)
    pr_pos = p_inf * a[1] + (1 - p_inf) * b[1]
    tests = [{"test": "lp", "outcomes": [{"_draws": (1 - pr_pos, None), "p_inf": p_inf * a[0] / (1 - pr_pos)},
                                         {"_draws": (pr_pos, None), "p_inf": p_inf * a[1] / pr_pos}]}]
    out = D.decide(p_inf, tests, None, floored)
    assert out["thresholds"]["low"] == pytest.approx(low) and not out["thresholds"]["floored"]
    assert out["action"] == "test"


def test_the_floor_is_read_from_decision_yaml_and_checked(settings, tmp_path):
    assert 0 < settings.testing_floor < settings.treatment_threshold
    import shutil

    shutil.copytree(REPO / "priors", tmp_path / "p")
    path = tmp_path / "p" / "decision.yaml"
    path.write_text(path.read_text().replace("  value: 0.10\n", "  value: 0.85\n", 1))
    with pytest.raises(F.InputError) as err:
        D.load(tmp_path / "p")
    assert "testing_floor" in str(err.value) and "0.85" in str(err.value) and "treatment threshold" in str(err.value)


def test_between_the_thresholds_with_no_test_left_says_so(draws_subtype, settings):
    """Every LP the schema reads given and the MRI known (a clinician's review: six cytology LPs, P 55%): the
    decision does not point to 'the next tests below', of which there are none."""
    lps = [{"cytology": "negative"}] * 6
    p = F.parse_patient({"lineage": "T-ALL", "remission": "not_in_remission", "onset": "progressive",
                         "laterality": "unilateral", "mri": "vii_viii_enhancement", "csf_profile": "protein_only",
                         "csf": lps})
    dec = A.answer(p, draws_subtype, decision_settings=settings, shapley=False, rests_on=False).decision
    print(dec["probability"], dec["action"], dec["thresholds"], dec["action_text"])
    assert dec["tests"] == [] and dec["action"] == "test"
    assert dec["action_text"] == settings.action_text["test_none_left"] and "next tests below" not in dec["action_text"]
    one = A.answer(p.replace(csf=p.csf[:5]), draws_subtype, decision_settings=settings, shapley=False,
                   rests_on=False).decision
    assert one["tests"] and one["action_text"] == settings.action_text[one["action"]]
