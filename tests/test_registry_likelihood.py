"""Issue 23: the registry's likelihood is the answer's own; rows and unsuppressed counts give the same log
density; censored counts are the multinomial sum; PyTensor and numpy agree; a small recovery check; the
site-level check finds a site that codes a finding differently (fast: no NUTS)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import registry_counts as RC
from palsy.model import registry_fit as RF
from palsy.model import registry_likelihood as RL
from palsy.model import registry_simulate as SIM

N = 12


@pytest.fixture(scope="module")
def ev():
    from palsy.model import evidence as E

    return E.load(REPO / "priors")


@pytest.fixture(scope="module")
def designs(ev):
    from palsy.model import design as D

    return {v: D.build(ev, ev.variant(v)) for v in ("independent", "subtype")}


def prior_params(d, n, seed, n_sites=1, sd=0.0):
    from palsy.model import prior as P

    rng = np.random.default_rng(seed)
    p = P.draws(d, n, rng)
    p["registry_site_sd"] = np.full(n, sd)
    p["registry_site_z"] = rng.normal(size=(n, n_sites, len(d.variant.causes)))
    return p


def as_draws(p, d, ev):
    from palsy.model import draws as DW
    from palsy.model import fit

    meta = {"variant": d.variant.name, "components": list(d.variant.components),
            "component_causes": list(d.variant.component_causes), "causes": list(d.variant.causes),
            "schema": ev.schema.to_json(), "answer_settings": fit.answer_settings(ev)}
    return DW.Draws({**p, "theta_new": p["theta"]}, meta, np.zeros((0, len(p["theta"]))), DW.rate_arrays_to_dict(d.rates))


def lp_strategy(ev):
    methods = ev.schema.lp.methods
    res = st.sampled_from(("negative", "positive", None))
    return st.tuples(res, res, st.sampled_from(("no", "yes", None))).filter(lambda t: t[0] or t[1]).map(
        lambda t: {**({methods[0]: t[0]} if t[0] else {}), **({methods[1]: t[1]} if t[1] else {}),
                   **({"traumatic": t[2]} if t[2] else {})})


def patient_strategy(ev):
    sc = ev.schema
    names = [n for n in sc.categorical if n not in sc.scope]
    values = st.fixed_dictionaries({}, optional={n: st.sampled_from(sc.levels[n]) for n in names})
    return st.tuples(values, st.lists(lp_strategy(ev), max_size=3)).map(
        lambda t: F.parse_patient({**t[0], **({"csf": t[1]} if t[1] else {})}, schema=sc))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_a_rows_likelihood_is_the_answers_own(ev, designs, data):
    """log P(final cause, findings | context, site) of a row equals the answer's value function
    (:class:`palsy.model.game.Game`: log P(c) + log p(x | c) with every finding, against the context alone),
    for any findings (LPs with either method, a traumatic tap, circulating blasts known or not, the CSF profile
    with and without an LP), a known cause or undetermined, and a site effect added to the causes' log rates."""
    from palsy.model.game import Game, Tables, players

    variant = data.draw(st.sampled_from(("independent", "subtype")))
    d = designs[variant]
    patient = data.draw(patient_strategy(ev))
    cause = data.draw(st.sampled_from((*ev.causes, "undetermined")))
    num = ev.causes if cause == "undetermined" else (cause,)
    rd = RL.build([RL.Cell("A", patient, num, ev.causes, 1)], [], ev.structure, ev.causes, 0.5, "t")
    p = prior_params(d, N, data.draw(st.integers(0, 10_000)), n_sites=1, sd=0.7)
    ll = RL.cell_loglik(LK.NUMPY, p, rd.arrays, d.rates, ev.structure, LP.Index.of(ev.structure))[:, 0]
    t = Tables(as_draws(p, d, ev))
    u = p["registry_site_sd"][:, None] * p["registry_site_z"][:, 0, :]  # (draw, cause)
    pl = players(patient)
    game = Game(t, pl, patient, np.ones(len(ev.causes), bool), t.log_prior + u, np.zeros((t.n, len(t.component_cause))))
    full = game.log_joint(np.ones((1, len(pl)), bool))[0]
    ctx = game.log_joint(np.array([[q.finding in ev.schema.context for q in pl]]))[0]
    keep = np.isin(np.array(ev.causes), num)
    ref = LK.NUMPY.logsumexp(np.where(keep, full, -np.inf), 1) - LK.NUMPY.logsumexp(ctx, 1)
    np.testing.assert_allclose(ll, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", ["independent", "subtype"])
def test_rows_and_unsuppressed_counts_give_the_same_log_density(ev, designs, variant):
    """The same registry as rows and as exported counts with nothing suppressed: the same log-likelihood at
    the same parameter points (the sharp test that the counts are the rows' sufficient statistics)."""
    d = designs[variant]
    truth = SIM.one_draw(prior_params(d, 1, 4), 0)
    reg = SIM.simulate(truth, d.rates, ev.schema, ev.causes, d.variant.components, d.variant.component_causes, 120,
                       ["A", "B", "C"], 0.3, np.random.default_rng(5))
    rows = RF.from_registry(reg, 0.5)
    counts = json.loads(RC.to_bytes(RC.export(reg, ev.schema, 1)))
    problems: list[str] = []
    cells, censored, _ = RC.parse(counts, ev.schema, ev.causes, problems)
    assert not problems and not censored
    a_rows = rows.design(ev.structure, ev.causes)
    a_counts = RL.build(cells, censored, ev.structure, ev.causes, 0.5, "c", rows.sites)
    assert a_counts.n_patients == a_rows.n_patients == sum(r.in_scope and r.cause != "other" for r in reg.rows)
    p = prior_params(d, 8, 6, n_sites=a_rows.arrays["site"].shape[1], sd=0.5)
    ix = LP.Index.of(ev.structure)
    l_rows = RL.total(LK.NUMPY, p, a_rows.arrays, d.rates, ev.structure, ix)
    l_counts = RL.total(LK.NUMPY, p, a_counts.arrays, d.rates, ev.structure, ix)
    np.testing.assert_allclose(l_rows, l_counts, rtol=1e-10)
    # and suppression changes it (a control: the comparison can fail)
    cells5, cens5, _ = RC.parse(json.loads(RC.to_bytes(RC.export(reg, ev.schema, 5))), ev.schema, ev.causes, problems)
    l5 = RL.total(LK.NUMPY, p, RL.build(cells5, cens5, ev.structure, ev.causes, 0.5, "c", rows.sites).arrays,
                  d.rates, ev.structure, ix)
    assert not np.allclose(l5, l_rows)


def test_a_censored_stratum_is_the_multinomial_summed_over_completions(ev, designs):
    """A stratum of 10 patients (bell 7, zoster 2, infiltration 1) with the two small counts suppressed: its
    log-likelihood is log sum over the completions of the multinomial probability at P(cause | context, site)."""
    d = designs["independent"]
    ctx = F.parse_patient({"lineage": "B-ALL", "age_group": "child"})
    ranges = {c: (0, 0) for c in ev.causes} | {"bell": (7, 7), "zoster": (1, 4), "infiltration": (1, 4)}
    comp = RC.completions([ranges[c] for c in ev.causes], 10)
    log_coef = np.array([math.lgamma(11) - sum(math.lgamma(k + 1) for k in m) for m in comp])
    rd = RL.build([], [RL.Censored("A", ctx, np.asarray(comp, float), log_coef)], ev.structure, ev.causes, 0.5, "t")
    p = prior_params(d, 5, 9, n_sites=1, sd=0.4)
    got = RL.censored_loglik(LK.NUMPY, p, rd.arrays, d.rates, ev.structure)[:, 0]
    log_prior, log_sc = LK.cause_strata(LK.NUMPY, p, d.rates)
    mask = ev.structure.stratum_mask({"lineage": "B-ALL", "age_group": "child"})
    u = p["registry_site_sd"][:, None] * p["registry_site_z"][:, 0]
    lp = log_prior + u + np.log(np.exp(log_sc) @ mask)
    prob = np.exp(lp - LK.NUMPY.logsumexp(lp, 1)[:, None])
    bell, zoster, inf = (ev.causes.index(c) for c in ("bell", "zoster", "infiltration"))
    for s in range(5):
        want = sum(math.factorial(10) / (math.factorial(7) * math.factorial(z) * math.factorial(3 - z))
                   * prob[s, bell] ** 7 * prob[s, zoster] ** z * prob[s, inf] ** (3 - z) for z in (1, 2))
        assert got[s] == pytest.approx(math.log(want), rel=1e-10)
    assert sorted(comp) == sorted(tuple(7 if c == "bell" else z if c == "zoster" else 3 - z if c == "infiltration"
                                        else 0 for c in ev.causes) for z in (1, 2))


def test_pytensor_and_numpy_agree_at_a_point(ev, designs):
    """The registry's potential in the PyMC model equals the numpy formula at the model's initial point (with
    the constrained values PyMC computes there), rows and censored counts together."""
    import dataclasses

    import pytensor

    from palsy.model import build as B

    d = designs["subtype"]
    truth = SIM.one_draw(prior_params(d, 1, 12), 0)
    reg = SIM.simulate(truth, d.rates, ev.schema, ev.causes, d.variant.components, d.variant.component_causes, 30,
                       ["A", "B"], 0.3, np.random.default_rng(13))
    cells5, cens5, _ = RC.parse(json.loads(RC.to_bytes(RC.export(reg, ev.schema, 3))), ev.schema, ev.causes, [])
    inp = RF.from_registry(reg, 0.5)
    rd = RL.build(list(inp.cells) + cells5, cens5, ev.structure, ev.causes, 0.5, "t", inp.sites)
    assert rd.n_censored > 0
    dr = dataclasses.replace(d, registry=rd)
    from pymc.model.transform.optimization import freeze_dims_and_data

    with pytensor.config.change_flags(cxx=""):
        # the data as constants; the outputs as functions of the (unconstrained) value variables, not draws of
        # the random variables
        model = freeze_dims_and_data(B.from_design(dr))
        names = ["theta", "omega", "rate_lognormal", "rate_beta", "registry_site_sd", "registry_site_z",
                 *(f"share_{f}" for f in ev.schema.context)]
        outs = model.replace_rvs_by_values([model["registry_loglik"], *(model[n] for n in names)])
        fn = model.compile_fn(outs, inputs=model.value_vars, point_fn=True, on_unused_input="ignore",
                              mode="FAST_COMPILE")  # the Python linker: numba would compile for minutes
        point = model.initial_point()
        rng = np.random.default_rng(1)
        point = {k: v + rng.uniform(-0.5, 0.5, np.shape(v)) for k, v in point.items()}
        pot, *vals = fn(point)
    p = {n: np.asarray(v)[None] for n, v in zip(names, vals, strict=True)}
    want = RL.total(LK.NUMPY, p, rd.arrays, d.rates, ev.structure, LP.Index.of(ev.structure))[0]
    assert float(pot) == pytest.approx(want, rel=1e-9)


def test_the_likelihood_recovers_the_cause_shares(ev, designs):
    """A small recovery check: rows simulated from known rate blocks (theta at its true value), the posterior
    of each cause's share by importance sampling from the rate model's prior: the 90% intervals hold the
    truth about as often as they say, and the base rate's is narrower than the prior's
    (scripts/simulate_registry.py does the full study with NUTS).

    Coverage is judged over ten truths, not per truth: the six shares sum to one, so one truth far in the
    prior's tail misses several at once (until 6 December two truths had to miss at most one of twelve, and
    three more cohort entries, which moved the prior's random stream, drew a truth that missed four). The rate
    block's truths now have a stream of their own. Importance sampling from the prior is the test's tool, not
    what it tests: a truth so far in the prior's tail that fewer than 30 effective draws remain is set aside
    (counted, and at most a third of the truths may be)."""
    from palsy.model import rates as R

    d = designs["independent"]
    ix = LP.Index.of(ev.structure)
    hits, used = 0, 0
    seeds = range(21, 36)
    for seed in seeds:
        # the rate block's truth from a stream of its own: an entry added to priors/ (which moves the tree's
        # draws) does not change which shares are to be recovered
        truth = SIM.one_draw({**prior_params(d, 1, seed), **R.sample_prior(d.rates, 1, np.random.default_rng(seed + 300))}, 0)
        reg = SIM.simulate(truth, d.rates, ev.schema, ev.causes, d.variant.components, d.variant.component_causes,
                           40, ["A"], 0.0, np.random.default_rng(seed + 100))
        rd = RF.from_registry(reg, 0.5).design(ev.structure, ev.causes)
        n = 12000
        p = R.sample_prior(d.rates, n, np.random.default_rng(seed + 200))
        p["theta"] = np.repeat(truth["theta"][None], n, 0)
        p["registry_site_sd"] = np.zeros(n)
        p["registry_site_z"] = np.zeros((n, 1, len(ev.causes)))
        ll = np.concatenate([RL.total(LK.NUMPY, {k: v[i:i + 500] for k, v in p.items()}, rd.arrays, d.rates,
                                      ev.structure, ix) for i in range(0, n, 500)])
        w = np.exp(ll - ll.max())
        w /= w.sum()
        if 1 / np.sum(w ** 2) < 30:  # too few effective draws for a 90% interval: the tool fails, not the model
            continue
        used += 1
        shares = RF.cause_shares(p, d.rates)
        true = RF.cause_shares({k: v[None] for k, v in truth.items()}, d.rates)[0]
        for j in range(len(ev.causes)):
            o = np.argsort(shares[:, j])
            cw = np.cumsum(w[o])
            lo, hi = shares[o, j][np.searchsorted(cw, 0.05)], shares[o, j][np.searchsorted(cw, 0.95)]
            hits += lo <= true[j] <= hi
            if j == 0:
                plo, phi = np.quantile(shares[:, 0], [0.05, 0.95])
                assert hi - lo < 0.8 * (phi - plo)
    print(f"\n{used} of {len(seeds)} truths used; {hits} of {used * len(ev.causes)} intervals hold the truth")
    assert used >= 2 * len(seeds) / 3, used
    # six intervals of 90% per truth: about nine in ten hold it; at least eight in ten (the misses come in groups)
    assert hits >= 0.8 * used * len(ev.causes), (hits, used)


@pytest.mark.parametrize("miscode", [None, ("C", "laterality")])
def test_the_site_check_finds_a_site_that_codes_a_finding_differently(ev, designs, miscode):
    """Five sites; site C records laterality reversed (bilateral as unilateral and the reverse): the site-level
    check names site C and laterality, and nothing else; without the miscoding no check fails. (The fit is
    the truth itself: the check's power, not the sampler's, is tested here.)"""
    from palsy.model.criticism import registry as CRG

    d = designs["subtype"]
    truth = SIM.one_draw(prior_params(d, 1, 7), 0)
    reg = SIM.simulate(truth, d.rates, ev.schema, ev.causes, d.variant.components, d.variant.component_causes, 300,
                       ["A", "B", "C", "D", "E"], 0.3, np.random.default_rng(3), miscode=miscode)
    params = {k: np.repeat(v[None], 40, 0) for k, v in truth.items()}
    res = CRG.site_check(as_draws(params, d, ev), reg, n_draws=40)
    failed = {(c["site"], c["finding"]) for c in res["checks"] if c["fails"]}
    if miscode is None:
        assert failed == set()
    else:
        assert failed == {miscode} and "site C: laterality" in res["failures"][0]
    assert res["n_checks"] > 50 and all(0 <= c["p_value"] <= 1 for c in res["checks"])


def test_the_count_distribution_is_the_poisson_binomial():
    from palsy.model.criticism.registry import count_distribution

    q = np.array([[0.2, 0.5, 0.9]])
    dist = count_distribution(q)[0]
    want = np.zeros(4)
    for bits in itertools.product((0, 1), repeat=3):
        want[sum(bits)] += np.prod([qi if b else 1 - qi for qi, b in zip(q[0], bits, strict=True)])
    np.testing.assert_allclose(dist, want)
