"""What the rate model implies (DESIGN §3, issue 8 item 2): per lineage the cumulative CNS/neural
relapse and leukaemic facial palsy over therapy + 5 years, and the share of each cause among new
palsies, printed and checked (prior means) against the cited ranges of ``priors/rates.yaml``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model import structure as S
from palsy.model.criticism import implied as I


@pytest.fixture(scope="module")
def implied_priors(evidence):
    return I.implied(evidence.rates)


def test_prior_means_are_within_the_cited_ranges(implied_priors, evidence):
    res = implied_priors
    print("\n" + I.format_table(res))
    targets = evidence.rates.targets
    # every target of rates.yaml is checked (and nothing without one)
    for quantity in I.CUMULATIVE:
        for lin in S.LINEAGES:
            row = next(r for r in res["cumulative"] if r["quantity"] == quantity and r["lineage"] == lin)
            assert (row["target"] is not None) == (lin in targets[quantity])
    assert {r["cause"] for r in res["shares"]} == set(evidence.causes)
    assert all(r["target"] is not None for r in res["shares"])
    bad = [f"{r.get('lineage', '')} {r.get('quantity', 'share of')} {r['cause']}: mean {r['mean']:.4g} "
           f"outside {r['target']}" for r in res["cumulative"] + res["shares"] if r["in_range"] is False]
    assert not bad, bad
    assert res["all_in_range"]
    # the shares are a distribution; facial palsy is a fraction of relapse
    assert sum(r["mean"] for r in res["shares"]) == pytest.approx(1.0)
    for lin in S.LINEAGES:
        rel, pal = (next(r for r in res["cumulative"] if r["quantity"] == q and r["lineage"] == lin)
                    for q in I.CUMULATIVE)
        assert pal["mean"] < rel["mean"]


def test_a_miscalibrated_rate_model_is_caught(fixture_evidence):
    """The fixture's T-ALL relapse hazard x 2.5 implies about 16% cumulative CNS relapse against 2-12%."""
    res = I.implied(fixture_evidence.rates, n=4000)
    assert not res["all_in_range"]
    assert res["out_of_range"] == ["T-ALL cumulative_relapse"]
    other = next(r for r in res["cumulative"] if r["lineage"] == "other")
    assert other["target"] is None and other["in_range"] is None  # no target given for 'other'


def test_cumulative_risk_by_hand(fixture_evidence):
    """One draw, every stratum summed by loops: 1 - exp(-window x sum_s P(s | lineage) lambda_s)."""
    spec = fixture_evidence.rates
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 1, np.random.default_rng(5))
    lin_share = p["share_lineage"][0]
    rem = p["share_remission"][0]
    adult, vin, hsct = p["share_adult"][0], p["share_vincristine"][0], p["share_hsct"][0]
    names = list(r.lognormal_names)
    ln = dict(zip(names, p["rate_lognormal"][0], strict=True))
    be = dict(zip(r.beta_names, p["rate_beta"][0], strict=True))
    mult = {("lineage", "T-ALL"): "infiltration: lineage=T-ALL", ("lineage", "AML"): "infiltration: lineage=AML",
            ("remission", "not_in_remission"): "infiltration: remission=not_in_remission",
            ("remission", "remission_off_treatment"): "infiltration: remission=remission_off_treatment"}
    relapse, palsy = np.zeros(4), np.zeros(4)
    for (i, lv), (j, rm), a, v, h in itertools.product(enumerate(S.LINEAGES), enumerate(S.REMISSIONS),
                                                       range(2), range(2), range(2)):
        pi = rem[i, j] * (adult[i] if a else 1 - adult[i]) * (vin[i, j] if v else 1 - vin[i, j]) \
            * (hsct[i, j] if h else 1 - hsct[i, j])  # P(s | lineage)
        rate = ln["infiltration: relapse_hazard"]
        for key in (("lineage", lv), ("remission", rm)):
            if key in mult:
                rate *= ln[mult[key]]
        relapse[i] += pi * rate
        palsy[i] += pi * rate * be["infiltration: p_facial"]
    w = spec.window_years
    np.testing.assert_allclose(I.cumulative(p, spec, r, "infiltration", ["p_facial"])[0], 1 - np.exp(-w * relapse))
    np.testing.assert_allclose(I.cumulative(p, spec, r, "infiltration")[0], 1 - np.exp(-w * palsy))
    assert lin_share.sum() == pytest.approx(1)
    # the shares are P(c) of the likelihood's cause_strata
    lp, _ = LK.cause_strata(LK.NUMPY, p, r)
    np.testing.assert_allclose(I.cause_shares(p, r), np.exp(lp))


def test_an_unknown_excluded_factor_is_named(fixture_evidence):
    spec = fixture_evidence.rates
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no_such_factor"):
        I.cumulative(p, spec, r, "infiltration", ["no_such_factor"])
