"""model/criticism.py: predictive checks, LOO, power-scaling sensitivity, answer sensitivity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.test_criticism_helpers import simulated_evidence, simulated_fit


@pytest.fixture(scope="module")
def fixture_design(fixture_evidence):
    from model import design as D
    from model import variants

    return {v: D.build(fixture_evidence, variants.get(v, fixture_evidence.forms)) for v in ("independent", "subtype")}


def test_prior_draws_match_the_design_priors(fixture_design):
    from model import criticism as K

    d = fixture_design["subtype"]
    p = K.prior_draws(d, 20000, np.random.default_rng(0))
    # Beta means a / (a + b) per component and node (expert judgments included)
    np.testing.assert_allclose(p["theta"].mean(0), d.prior_a / (d.prior_a + d.prior_b), atol=0.02)
    np.testing.assert_allclose(np.median(p["relapse_hazard"], 0), np.exp(d.hazard_mu), rtol=0.05)
    np.testing.assert_allclose(p["omega"].sum(-1), 1.0)
    lp = K.log_prior(p, d)
    assert all(np.all(np.isfinite(v)) for v in lp.values())
    # the numpy log density is the Beta's: compare one node with scipy
    from scipy import stats

    x = p["theta"][:5, 0, 0]
    np.testing.assert_allclose(lp["theta"][:5, 0, 0], stats.beta(d.prior_a[0, 0], d.prior_b[0, 0]).logpdf(x))


def test_predictive_check_numbers_are_consistent(fixture_evidence, fixture_design):
    from model import criticism as K

    d = fixture_design["independent"]
    p = K.prior_draws(d, 2000, np.random.default_rng(1))
    # force P(bilateral | L) ~ 1: the fixture's cases are 1 bilateral of 3, so the count is far too low
    from model import structure as S

    node = S.NODE_NAMES.index("laterality: bilateral")
    p["theta"][:, 0, node] = 0.999
    rows = {r["statistic"]: r for r in K.predictive_checks(p, d, fixture_evidence)}
    bil = rows["laterality = bilateral"]
    assert bil["cases"] == 3 and bil["observed"] == 1
    assert bil["mean"] == pytest.approx(3 * 0.999, abs=1e-6)
    assert bil["p_value"] < 0.01
    for r in rows.values():
        if r["p_value"] is not None:
            assert 0 <= r["p_value"] <= 1 and r["lower"] <= r["upper"] and 0 <= r["mean"] <= r["cases"]
    # a case proven by its CSF does not count towards CSF statistics (case_b is proven_by csf)
    assert rows["csf: every LP negative"]["cases"] == 2


def test_prior_only_parameters_are_found_structurally(fixture_evidence, fixture_design):
    from model import criticism as K

    d = fixture_design["independent"]
    p = K.prior_draws(d, 50, np.random.default_rng(2))
    informed = K.data_informed(p, d)
    assert informed["p_facial"] is False and informed["bell_incidence"] is False
    assert informed["theta[L, laterality: bilateral]"] is True
    # peripheral nerves under B: only an expert-judgment Beta, no counts
    assert informed["theta[B, peripheral_nerves: one_or_more]"] is False


def test_loo_uses_weighted_ratios_and_unweighted_target(fixture_evidence, fixture_design):
    """elpd_i = log sum_s w~_s exp(l_is) with w~ from PSIS of -w_case l_is (checked against our own PSIS)."""
    from model import criticism as K
    from model.draws import Draws
    from model.psis import psis_weights

    d = fixture_design["independent"]
    p = K.prior_draws(d, 4000, np.random.default_rng(3))
    ll = K.loglik_terms(p, d)["cases"].T
    dr = Draws(p, {"settings": {"chains": 4}}, d.w_case * ll)
    res = K.loo(dr, d)
    for i in range(len(d.case_ids)):
        w, _ = psis_weights(-d.w_case * ll[i])
        direct = np.log(np.sum(w * np.exp(ll[i])))
        assert float(res.elpd_i.values[i]) == pytest.approx(direct, abs=0.05)
        # and it is not the weighted-likelihood target
        assert abs(direct - np.log(np.sum(w * np.exp(d.w_case * ll[i])))) > 0.05


@pytest.mark.slow
def test_psense_on_a_fit_labels_prior_only_quantities():
    from model import criticism as K

    dr, d = simulated_fit("independent")
    rows = {r["parameter"]: r for r in K.psense(dr, d)}
    assert rows["base rate P(L)"]["label"] == K.PRIOR_ONLY
    assert rows["bell_incidence"]["label"] == K.PRIOR_ONLY
    assert rows["theta[L, laterality: bilateral]"]["label"] != K.PRIOR_ONLY
    assert rows["theta[L, laterality: bilateral]"]["likelihood"] > 0.05


@pytest.mark.slow
def test_predictive_check_detects_an_implausible_case_library():
    """28 simulated cases, all bilateral, against a cohort of 1 bilateral in 10: flagged."""
    from model import criticism as K

    ev = simulated_evidence()
    dr, d = simulated_fit("independent")
    rows = {r["statistic"]: r for r in K.predictive_checks(dr.params, d, ev)}
    bil = rows["laterality = bilateral"]
    assert bil["observed"] >= 28 and bil["p_upper"] < 0.01
    # the pair that conditional independence cannot reproduce is flagged too
    pair = rows["csf = all_negative & mri = facial_nerve_enhancement"]
    assert pair["observed"] > pair["upper"]
    # a statistic the simulation did not distort is not
    assert rows["peripheral_nerves = one_or_more"]["p_value"] > 0.05


@pytest.mark.slow
def test_loo_prefers_the_variant_that_generated_the_data():
    """The simulated library has two clusters of dependent findings: the mixture wins LOO."""
    from model import criticism as K

    out = K.compare_variants({v: simulated_fit(v) for v in ("independent", "subtype")})
    a, b = out["loo"]["subtype"], out["loo"]["independent"]
    assert a["elpd"] > b["elpd"]
    top = out["compare"][0]
    assert top["model"] == "subtype" and top["weight"] > 0.5
    assert len(out["cases"]) >= 28


@pytest.mark.slow
def test_answer_sensitivity_refits_and_psis(tmp_path):
    from model import cache as C
    from model import criticism as K
    from model import findings as F

    ev = simulated_evidence()
    dr, d = simulated_fit("independent")
    pats = [F.parse_patient({"id": "p1", "laterality": "bilateral", "csf": [{"result": "negative", "method": "cytology"}]}),
            F.parse_patient({"id": "patient-a", "lineage": "T-ALL", "laterality": "bilateral"})]  # a library case (alias)
    res = K.answer_sensitivity(ev, "independent", dr, pats, w_values=(0.25, 1.0), pretests=(0.01, 0.5),
                               refit=True, refit_settings=C.Settings(draws=300, tune=300, chains=2, seed=3))
    for pid in ("p1", "patient-a"):
        rec = res["patients"][pid]
        assert 0 < rec["baseline"] < 1
        assert [r["method"] for r in rec["w_case"]] == ["refit", "refit"]
        # more weight on 28 bilateral cases makes bilateral palsy more typical of L
        if pid == "p1":
            assert rec["w_case"][1]["mean"] > rec["w_case"][0]["mean"]
        # the base rate moves the answer monotonically
        assert rec["pretest"][0]["mean"] < rec["pretest"][1]["mean"]
        names = {r["source"] for r in rec["sources"]}
        assert {"fixture2020", "case2021"} <= names and any(n.startswith("expert judgment") for n in names)
        assert rec["tornado"] == sorted(rec["tornado"], key=lambda r: -abs(r["delta"]))
    # leaving out case2021 (every case) must move a bilateral patient's answer down
    src = {r["source"]: r for r in res["patients"]["p1"]["sources"]}
    assert src["case2021"]["delta"] < 0


def test_source_log_ratio_removes_exactly_the_source(fixture_evidence, fixture_design):
    from model import criticism as K

    d = fixture_design["independent"]
    p = K.prior_draws(d, 10, np.random.default_rng(4))
    srcs = {s.name: s for s in K.sources(fixture_evidence, d)}
    t = K.loglik_terms(p, d)
    lr = K.source_log_ratio(srcs["case2021"], p, d, t)
    np.testing.assert_allclose(lr, -t["cases_weighted"].sum(-1))
    # removing an expert judgment replaces its Beta by the base prior
    ej = srcs["expert judgment b_ocn"]
    dd = dataclasses.replace(d)
    k, node, a, b = ej.expert[0]
    assert (dd.prior_a[k, node], dd.prior_b[k, node]) == (1, 49) and (a, b) == (1, 1)
