"""The sampled parameters (the free node parameters ``theta_free``, omega, tau, re_z, gamma): MCMC
diagnostics and prior against posterior per scalar, and power-scaling sensitivity (``az.psense``).
``theta`` (component, node) is assembled from ``theta_free`` (shared nodes repeat one value, structural
zeros stay 0), so it is not a parameter of its own here.

The rate block (patient-time shares and rate factors) is not here: it has no likelihood and is drawn
exactly from its prior (:func:`palsy.model.rates.sample_prior`), so its posterior *is* its prior; its
implied quantities are in :mod:`palsy.model.criticism.implied`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model.draws import Draws
from palsy.model.prior import log_density as log_prior

from .common import CI, PRIOR_ONLY, element_labels, loglik_terms, reshape_chains, sampled, total_loglik, with_theta


def scalar_table(draws: Draws, d: D.Design, prior: dict[str, np.ndarray] | None = None,
                 chains: int | None = None, ci: float = CI) -> list[dict[str, Any]]:
    """Per scalar of the sampled parameters: posterior mean and interval, R-hat, bulk/tail ESS, and
    (if ``prior`` draws are given) the prior mean and interval and the posterior/prior sd ratio."""
    import arviz as az
    import xarray as xr

    chains = chains or int(draws.meta["settings"]["chains"])
    params = sampled(draws.params)
    ds = xr.Dataset({name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(arr.ndim - 1)]),
                            reshape_chains(arr, chains)) for name, arr in params.items()})
    rhat, ess_b, ess_t = az.rhat(ds, method="rank"), az.ess(ds, method="bulk"), az.ess(ds, method="tail")
    rows = []
    for name, arr in params.items():
        for idx, label in element_labels(name, arr.shape[1:], d):
            x = arr[(slice(None), *idx)]
            row = {"parameter": label, "name": name, "index": list(idx), "mean": float(x.mean()),
                   "lower": float(np.quantile(x, (1 - ci) / 2)), "upper": float(np.quantile(x, (1 + ci) / 2)),
                   "r_hat": float(np.asarray(rhat[name].values)[idx]),
                   "ess_bulk": float(np.asarray(ess_b[name].values)[idx]),
                   "ess_tail": float(np.asarray(ess_t[name].values)[idx])}
            if prior is not None:
                xp = prior[name][(slice(None), *idx)]
                row.update({"prior_mean": float(xp.mean()), "prior_lower": float(np.quantile(xp, (1 - ci) / 2)),
                            "prior_upper": float(np.quantile(xp, (1 + ci) / 2)),
                            "sd_ratio": float(x.std() / xp.std()) if xp.std() > 0 else float("nan")})
            rows.append(row)
    return rows


def element(params: dict[str, np.ndarray], name: str, index: Sequence[int]) -> np.ndarray:
    """Draws of one scalar element of a parameter."""
    return params[name][(slice(None), *index)]


def data_informed(params: dict[str, np.ndarray], d: D.Design) -> dict[str, bool]:
    """Whether the weighted likelihood depends on each sampled scalar (numerically, by perturbing it
    at a few draws): a parameter it does not depend on is prior-only by design."""
    sub = {k: v[:5].astype(float).copy() for k, v in params.items()}
    if "theta_free" in sub:
        sub = with_theta(sub, d)
    base = total_loglik(sub, d)
    out = {}
    for name, arr in sampled(sub).items():
        for idx, label in element_labels(name, arr.shape[1:], d):
            p2 = dict(sub)
            p2[name] = arr.copy()
            sl = (slice(None), *idx)
            x = p2[name][sl]
            p2[name][sl] = np.where(x < 0.5, x * 1.3, x * 0.9)
            if name == "theta_free":
                p2 = with_theta(p2, d)
            delta = np.abs(total_loglik(p2, d) - base)
            out[label] = bool(np.nanmax(delta) > 1e-9)
    return out


def psense(draws: Draws, d: D.Design, *, chains: int | None = None) -> list[dict[str, Any]]:
    """Power-scaling prior and likelihood sensitivity (``az.psense``) of every sampled scalar.

    The DataTree has ``log_prior`` (:func:`palsy.model.prior.log_density`: theta_free's Betas, omega's
    Dirichlets, ...) and ``log_likelihood`` (every likelihood term of the fit as weighted in it: cohort
    entries and w_case x the cases). Each row has ``prior``, ``likelihood``, a ``diagnosis`` and our
    ``label``: parameters the likelihood does not depend on are labelled "prior-only by design"
    instead of a prior-data conflict.
    """
    import arviz as az
    import xarray as xr

    chains = chains or int(draws.meta["settings"]["chains"])
    p = sampled(draws.params)
    post = {name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(arr.ndim - 1)]), reshape_chains(arr, chains))
            for name, arr in p.items()}
    lp = log_prior(p, d)
    lp_ds = {k: (("chain", "draw", *[f"lp_{k}_{i}" for i in range(v.ndim - 1)]), reshape_chains(v, chains))
             for k, v in lp.items()}
    lt = loglik_terms(draws.params, d)
    ll_ds = {"entries": (("chain", "draw", "entry"), reshape_chains(lt["entries"], chains)),
             "cases": (("chain", "draw", "case"), reshape_chains(lt["cases_weighted"], chains))}
    dt = xr.DataTree.from_dict({"posterior": xr.Dataset(post), "log_prior": xr.Dataset(lp_ds),
                                "log_likelihood": xr.Dataset(ll_ds)})
    pri = az.psense(dt, group="prior")
    lik = az.psense(dt, group="likelihood")
    informed = data_informed(draws.params, d)
    rows = []
    for name, arr in p.items():
        for idx, label in element_labels(name, arr.shape[1:], d):
            ps = float(np.asarray(pri[name].values)[idx])
            ls = float(np.asarray(lik[name].values)[idx])
            if ps >= 0.05 and ls >= 0.05:
                diagnosis = "potential prior-data conflict"
            elif ps > 0.05 > ls:
                diagnosis = "potential strong prior / weak likelihood"
            else:
                diagnosis = "ok"
            prior_only = not informed.get(label, True)
            rows.append({"parameter": label, "prior": ps, "likelihood": ls, "diagnosis": diagnosis,
                         "label": PRIOR_ONLY if prior_only else diagnosis})
    return rows
