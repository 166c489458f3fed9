"""What the rate model implies (docs/design.md §3, issue 8 item 2): per lineage the cumulative CNS/neural
relapse and leukaemic facial palsy over therapy + 5 years, and the share of each cause among new
palsies, printed and checked against the cited ranges of ``priors/rates.yaml``: the prior means inside
(the calibration target), and the prior mass inside each range with both tails reported (issue 19)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model.criticism import implied as I


@pytest.fixture(scope="module")
def implied_priors(evidence):
    return I.implied(evidence.rates)


def test_prior_means_are_within_the_cited_ranges(implied_priors, evidence):
    res = implied_priors
    print("\n" + I.format_table(res))
    targets = evidence.rates.targets
    lineages = evidence.structure.levels_of("lineage")
    # every target of rates.yaml is checked (and nothing without one)
    for quantity in I.CUMULATIVE:
        for lin in lineages:
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
    for lin in lineages:
        rel, pal = (next(r for r in res["cumulative"] if r["quantity"] == q and r["lineage"] == lin)
                    for q in I.CUMULATIVE)
        assert pal["mean"] < rel["mean"]


def test_prior_mass_inside_each_range_and_its_tails(implied_priors, evidence):
    """Not only the mean: the prior probability inside each cited range and in each tail, from the draws."""
    res = implied_priors
    spec = evidence.rates
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 20_000, np.random.default_rng(20261126))  # implied()'s own draws (its seed)
    checked = [x for x in res["cumulative"] + res["shares"] if x["target"] is not None]
    assert checked
    for row in checked:
        assert row["p_in_range"] + row["p_below"] + row["p_above"] == pytest.approx(1.0)
        assert row["mass_ok"] == (row["p_in_range"] >= I.MIN_MASS_IN_RANGE)
    # one row by hand: T-ALL cumulative CNS relapse
    row = next(x for x in res["cumulative"] if x["quantity"] == "cumulative_relapse" and x["lineage"] == "T-ALL")
    block = spec.targets["cumulative_relapse"]
    x = I.cumulative(p, spec, r, block.get("cause", "infiltration"), block.get("exclude_factors") or [])[:, 0]
    lo, hi = block["T-ALL"]["range"]
    assert row["p_below"] == pytest.approx(np.mean(x < lo)) and row["p_above"] == pytest.approx(np.mean(x > hi))
    assert res["low_mass"] == [f"{x.get('lineage', x['cause'])} {x.get('quantity', 'cause_share')}"
                               for x in checked if not x["mass_ok"]]
    assert res["all_mass_ok"] == (not res["low_mass"])
    print("\nprior mass inside each cited range:", {f"{x.get('lineage', x['cause'])} {x.get('quantity', 'share')}":
                                                    round(x["p_in_range"], 3) for x in checked})


def test_a_miscalibrated_rate_model_is_caught(evidence):
    """The infiltration relapse hazard x 3 moves every lineage's cumulative CNS relapse above its range."""
    spec = evidence.rates
    doc = copy.deepcopy(spec.doc)
    hazard = doc["rates"]["infiltration"]["factors"]["relapse_hazard"]["lognormal"]
    hazard["median"] = 3 * hazard["median"]
    problems: list[str] = []
    bad = R.parse(doc, spec.causes, evidence.references, lambda *a: problems.append(str(a)), spec.structure)
    assert not problems
    res = I.implied(bad, n=4000)
    assert not res["all_in_range"]
    assert {"T-ALL cumulative_relapse", "B-ALL cumulative_relapse"} <= set(res["out_of_range"])
    assert all(x.endswith(("cumulative_relapse", "cumulative_palsy", "cause_share")) for x in res["out_of_range"])
    assert res["low_mass"]  # and its prior mass moves out of the ranges


def test_cumulative_risk_by_hand(fixture_evidence):
    """One draw, every stratum summed by loops: 1 - exp(-window x sum_s P(s | lineage) lambda_s), with
    P(s) the product of each context finding's share given its parents and lambda the product of the
    cause's factors that apply in s (read from the spec's factors, not the incidence arrays)."""
    spec = fixture_evidence.rates
    st = spec.structure
    r = I.rate_arrays(spec)
    p = R.sample_prior(r, 1, np.random.default_rng(5))
    draw = dict(zip(r.lognormal_names, p["rate_lognormal"][0], strict=True))
    draw.update(zip(r.beta_names, p["rate_beta"][0], strict=True))
    lineages = st.levels_of("lineage")
    relapse, palsy = np.zeros(len(lineages)), np.zeros(len(lineages))
    excluded = {f"infiltration: {n}" for n in spec.targets["cumulative_relapse"].get("exclude_factors") or []}
    for s, levels in enumerate(st.strata):
        pi = 1.0
        for f in st.context:  # P(level of f | levels of its parents)
            given = spec.shares[f].given
            idx = tuple(st.context_levels[g].index(levels[st.context.index(g)]) for g in given)
            pi *= p[f"share_{f}"][0][idx][st.context_levels[f].index(levels[st.context.index(f)])]
        rate, rate_rel = 1.0, 1.0
        for fac in spec.factors:
            if fac.cause != "infiltration" or not fac.strata[s]:
                continue
            v = fac.params[0] if fac.kind == "value" else draw[fac.name]
            rate *= v
            if fac.name not in excluded:
                rate_rel *= v
        i = lineages.index(levels[st.context.index("lineage")])
        relapse[i] += pi * rate_rel
        palsy[i] += pi * rate
    lin_share = p["share_lineage"][0]
    w = spec.window_years
    exclude = list(spec.targets["cumulative_relapse"].get("exclude_factors") or [])
    np.testing.assert_allclose(I.cumulative(p, spec, r, "infiltration", exclude)[0], 1 - np.exp(-w * relapse / lin_share))
    np.testing.assert_allclose(I.cumulative(p, spec, r, "infiltration")[0], 1 - np.exp(-w * palsy / lin_share))
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
