"""PSIS-LOO over the case library, and the comparison of the variants.

The cases enter the fit as a power prior, w_case x l_i. Leaving case i out of the fitted posterior
multiplies it by exp(-w_case l_i), so the PSIS importance log-ratios are minus the *weighted*
per-case log-likelihood (``cases_weighted``); the quantity predicted is the case's *unweighted*
likelihood exp(l_i): elpd_i = log sum_s w~_is exp(l_is), with w~ the Pareto-smoothed, normalised
weights. Under the subtype variant the fitted l_i of a case with a coded form is the likelihood given
that form; the predicted l_i marginalises the form (every form allowed) so that both variants predict
the same data (the findings given the context), which is what makes their elpd comparable. Cases whose
log-likelihood does not vary over draws (nothing known that enters the likelihood) are left out of
both variants' LOO (their elpd is identical, 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import likelihood as LK
from palsy.model.draws import Draws

from .common import case_loglik_marginal, loglik_terms, plain, reshape_chains, sampled


def loo_datatree(draws: Draws, d: D.Design, chains: int | None = None):
    """A DataTree for ``az.loo``: ``posterior`` (the sampled parameters), ``log_likelihood.cases``
    (the unweighted per-case log-likelihood, form marginalised) and ``log_likelihood.cases_weighted``
    (w_case x the fitted per-case log-likelihood, the PSIS source), chain/draw/case dims."""
    import xarray as xr

    chains = chains or int(draws.meta["settings"]["chains"])
    lt = loglik_terms(draws.params, d)
    marg = case_loglik_marginal(draws.params, d)
    post = {k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(v.ndim - 1)]), reshape_chains(v, chains))
            for k, v in sampled(draws.params).items()}
    ll = xr.Dataset({"cases": (("chain", "draw", "case"), reshape_chains(marg, chains)),
                     "cases_weighted": (("chain", "draw", "case"), reshape_chains(lt["cases_weighted"], chains))},
                    coords={"case": list(d.case_ids)})
    return xr.DataTree.from_dict({"posterior": xr.Dataset(post), "log_likelihood": ll})


def loo(draws: Draws, d: D.Design, *, cases: Sequence[str] | None = None):
    """PSIS-LOO over the case library with PSIS weights from the weighted log-likelihood.

    Parameters
    ----------
    cases : sequence of str, optional
        Restrict to these case ids (the comparison uses the cases informative under both variants).

    Returns
    -------
    ELPDData
        ``az.loo``'s result (pointwise), computed on ``log_likelihood.cases`` with
        ``log_weights``/``pareto_k`` from Pareto smoothing of ``cases_weighted``.
    """
    import arviz as az
    from arviz_stats.loo.loo_helper import _get_r_eff

    dt = loo_datatree(draws, d)
    if cases is not None:
        dt = dt.isel(case=[list(d.case_ids).index(c) for c in cases])
    ll_w = dt["log_likelihood"]["cases_weighted"]
    reff = _get_r_eff(dt, ll_w.sizes["chain"] * ll_w.sizes["draw"])
    # psislw takes a log-likelihood and smooths the log-ratios -ll: here -w_case x l_i.
    log_weights, pareto_k = ll_w.azstats.psislw(r_eff=reff, dim=["chain", "draw"])
    return az.loo(dt, var_name="cases", pointwise=True, reff=reff, log_weights=log_weights, pareto_k=pareto_k)


def informative_cases(draws: Draws, d: D.Design) -> list[str]:
    """Cases whose weighted log-likelihood varies over draws (PSIS needs a non-degenerate tail)."""
    w = d.w_case * np.asarray(LK.case_loglik(LK.NUMPY, draws.params, d))
    sd = w.std(axis=0)
    return [c for c, s in zip(d.case_ids, sd, strict=True) if s > 1e-8]


def compare_variants(fits: dict[str, tuple[Draws, D.Design]]) -> dict[str, Any]:
    """LOO of each variant on the cases informative under all of them, and ``az.compare``.

    Returns
    -------
    dict
        ``loo``: per variant elpd, se, p_loo, max Pareto k, cases with k > good_k; ``compare``: the
        ``az.compare`` table as records; ``pointwise``: per case elpd_i and k per variant;
        ``cases``: the case ids used; ``left_out``: cases left out (constant log-likelihood).
    """
    import arviz as az

    common = None
    for dr, d in fits.values():
        inf = informative_cases(dr, d)
        common = inf if common is None else [c for c in common if c in inf]
    all_ids = list(next(iter(fits.values()))[1].case_ids)
    res = {name: loo(dr, d, cases=common) for name, (dr, d) in fits.items()}
    table = az.compare(res, method="stacking", round_to="none") if len(res) > 1 else None
    out: dict[str, Any] = {"cases": common, "left_out": [c for c in all_ids if c not in common], "loo": {},
                           "pointwise": {}, "compare": []}
    for name, r in res.items():
        k = np.asarray(r.pareto_k.values)
        out["loo"][name] = {"elpd": float(r.elpd), "se": float(r.se), "p_loo": float(r.p), "n": int(r.n_data_points),
                            "k_max": float(np.max(k)), "good_k": float(r.good_k), "k_bad": int(np.sum(k > r.good_k))}
        out["pointwise"][name] = {c: {"elpd": float(e), "k": float(kk)}
                                  for c, e, kk in zip(common, np.asarray(r.elpd_i.values), k, strict=True)}
    if table is not None:
        for model_name, row in table.iterrows():
            out["compare"].append({"model": str(model_name), **{str(c): plain(v) for c, v in row.items()}})
    return out
