"""Evidence synthesis under criticism (docs/design.md §3, issue 12 items 1-2): numbers only.

*Heterogeneity* (:func:`heterogeneity`). Every quantity that two or more cohort entries estimate is
pooled with a logit-normal study effect, rate_j = expit(logit(centre) + tau z_j), tau ~ HalfNormal
(``Design.tau_sigma``) shared across quantities. For each pooled quantity: the studies (x, n, weight,
x/n and the fitted study rate), the pooled centre and the predictive for a new setting,
expit(logit(centre) + tau z_new), which is what the answers use (``theta_new``). The spread tau: its
prior against its posterior (summaries and draws for the figure).

*Leave one study out.* A model with a study effect fits every study by construction, so each study
of a pooled quantity is checked against the others: the posterior without the study (PSIS with the
study's weighted log-likelihood as the log ratio where its Pareto k < 0.7, otherwise an exact refit
with the entry's weight set to 0, the compiled model reused) gives the predictive of a new setting,
and the held-out x is set against Binomial(n, rate_new): p_upper = P(X >= x), p_lower = P(X <= x),
p = 2 min (capped at 1). Each failure (p < 0.05) is explained in a sentence.

*Selection* (:func:`selection`). Published cases read each striking feature (``Design.sel_mask``)
with its odds multiplied by exp(gamma). For each such feature: gamma's prior and posterior, and the
likelihood ratio of the finding for infiltration against the other modelled causes (weighted by
their prior shares from the rate model) with the selection model (the fitted draws the answers use),
as the case reports show it (the selected probability, what a model without selection would learn
from them), and without selection (the plain configuration's fit, when given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import likelihood as LK
from palsy.model.evidence import Evidence
from palsy.model.psis import psis_weights

from .common import CI, free_of_theta

K_THRESHOLD = 0.7
P_FAIL = 0.05


def _summary(x: np.ndarray, ci: float = CI, w: np.ndarray | None = None) -> dict[str, float]:
    x = np.asarray(x, float)
    if w is None:
        lo, med, hi = np.quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
        return {"mean": float(x.mean()), "median": float(med), "lower": float(lo), "upper": float(hi)}
    order = np.argsort(x)
    cw = np.cumsum(w[order]) / w.sum()
    q = [x[order][min(np.searchsorted(cw, t), len(x) - 1)] for t in ((1 - ci) / 2, 0.5, (1 + ci) / 2)]
    return {"mean": float(np.average(x, weights=w)), "median": float(q[1]), "lower": float(q[0]),
            "upper": float(q[2])}


def halfnormal_summary(sigma: float, ci: float = CI) -> dict[str, float]:
    """Mean, median and central interval of HalfNormal(sigma), exactly."""
    from scipy.stats import halfnorm

    return {"mean": float(sigma * np.sqrt(2 / np.pi)), "median": float(halfnorm.ppf(0.5, scale=sigma)),
            "lower": float(halfnorm.ppf((1 - ci) / 2, scale=sigma)),
            "upper": float(halfnorm.ppf((1 + ci) / 2, scale=sigma))}


def normal_summary(mu: float, sigma: float, ci: float = CI) -> dict[str, float]:
    from scipy.stats import norm

    return {"mean": float(mu), "median": float(mu), "lower": float(norm.ppf((1 - ci) / 2, mu, sigma)),
            "upper": float(norm.ppf((1 + ci) / 2, mu, sigma))}


def pooled_groups(evidence: Evidence, d: D.Design) -> list[tuple[str, list[int]]]:
    """(quantity label, entry indices of d) of every pooled quantity, in ``d.re_groups`` order."""
    by_id = {e.id: e for e in evidence.entries}
    groups: dict[tuple, list[int]] = {}
    for j, eid in enumerate(d.entry_ids):
        e = by_id[eid]  # the key of palsy.model.design.build's pooled quantities
        groups.setdefault((e.quantity, e.item, e.level, e.of, e.cause, e.form, e.method, e.lp_node, e.contaminated),
                          []).append(j)
    keys = [js for js in groups.values() if len(js) >= 2]
    if not len(d.re_groups):
        return []
    if len(keys) != len(d.re_groups):
        raise ValueError("pooled quantities do not match the design's random-effect groups")
    return list(zip(d.re_groups, keys, strict=True))


def centre_rate(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    """The rate each entry's quantity has at the pooled centre (no study effect) (S, entry)."""
    p = {k: v for k, v in params.items() if k != "re_z"}
    return np.asarray(LK.entry_rate(LK.NUMPY, p, d)).reshape(-1, len(d.entry_ids))


def new_setting_rate(params: dict[str, np.ndarray], d: D.Design, seed: int = 3) -> np.ndarray:
    """The predictive rate of each entry's quantity in a new setting (S, entry): one new study effect
    per draw and quantity (the same z for every entry of a quantity would not matter: each is one
    quantity)."""
    c = centre_rate(params, d)
    if "tau" not in params:
        return c
    z = np.random.default_rng(seed).normal(size=c.shape)
    return LK.expit(LK.NUMPY, LK.logit(LK.NUMPY, np.clip(c, 1e-12, 1 - 1e-12)) + params["tau"][:, None] * z)


def _binom_p(x: float, n: float, rate: np.ndarray, w: np.ndarray) -> dict[str, float]:
    from scipy.stats import binom

    xi, ni = int(round(float(x))), int(round(float(n)))
    p_up = float(np.sum(w * binom.sf(xi - 1, ni, rate)) / w.sum())
    p_lo = float(np.sum(w * binom.cdf(xi, ni, rate)) / w.sum())
    return {"p_upper": p_up, "p_lower": p_lo, "p_value": min(1.0, 2 * min(p_up, p_lo))}


def explain(row: dict[str, Any], quantity: str, tau_median: float) -> str:
    """One sentence on a failed leave-one-study-out check."""
    direction = "higher" if row["p_upper"] < row["p_lower"] else "lower"
    return (f"{row['entry']} reports {row['x']:g}/{row['n']:g} ({100 * row['observed_rate']:.0f}%) for "
            f"{quantity}, {direction} than the other studies predict for a new setting "
            f"({100 * row['predictive']['lower']:.0f}%-{100 * row['predictive']['upper']:.0f}%, p = "
            f"{row['p_value']:.3g}); with the spread tau shared across quantities (median {tau_median:.2f} on the "
            f"log-odds scale) the pooled model expects less disagreement than this study shows, so its "
            f"setting (population, method or definition) differs from the others' and the answers' "
            f"predictive interval for this quantity may still be too narrow.")


def heterogeneity(params: dict[str, np.ndarray], d: D.Design, evidence: Evidence, *,
                  refit: Callable[[list[dict[str, np.ndarray]]], list[dict[str, np.ndarray]]] | None = None,
                  max_refits: int | None = None, k_threshold: float = K_THRESHOLD, ci: float = CI,
                  seed: int = 3) -> dict[str, Any]:
    """Heterogeneity per pooled quantity, the spread's prior and posterior, and leave-one-study-out.

    Parameters
    ----------
    params : dict
        Posterior draws of the fit (``theta``, ``tau``, ``re_z``, ...).
    refit : callable, optional
        ``refit([data, ...]) -> [params, ...]``: exact refits with the given ``pm.Data`` (the compiled
        model reused; a batch, so that they can run as tasks side by side), used where PSIS is
        unreliable (k >= ``k_threshold``), at most ``max_refits`` of them (the largest k first).
    """
    groups = pooled_groups(evidence, d)
    out: dict[str, Any] = {"tau_sigma": d.tau_sigma, "quantities": [], "loo": [], "failures": []}
    if not groups or "tau" not in params:
        out.update({"tau_prior": None, "tau_posterior": None, "pooled": False})
        return out
    tau = params["tau"]
    out.update({"pooled": True, "tau_prior": halfnormal_summary(d.tau_sigma, ci),
                "tau_posterior": _summary(tau, ci),
                "tau_sd_ratio": float(tau.std() / (d.tau_sigma * np.sqrt(1 - 2 / np.pi))),
                "_tau_draws": tau})
    fitted = np.asarray(LK.entry_rate(LK.NUMPY, params, d)).reshape(-1, len(d.entry_ids))
    centre = centre_rate(params, d)
    new = new_setting_rate(params, d, seed)
    ll = np.asarray(LK.entry_loglik(LK.NUMPY, params, d)).reshape(-1, len(d.entry_ids))
    tau_med = float(np.median(tau))
    psis = {}
    for _, js in groups:
        for j in js:
            w, k = psis_weights(-ll[:, j])
            psis[j] = (w, float(k) if np.isfinite(k) else 99.0)
    want = sorted((j for j, (_, k) in psis.items() if k >= k_threshold), key=lambda j: -psis[j][1])
    if refit is None:
        want = []
    elif max_refits is not None:
        want = want[:max_refits]
    datas = []
    for j in want:
        data = {key: np.array(v, float, copy=True) for key, v in d.data().items()}
        data["entry_w"][j] = 0.0
        datas.append(data)
    refitted = dict(zip(want, zip(datas, refit(datas) if want else [], strict=True), strict=True))
    for label, js in groups:
        j0 = js[0]
        studies = [{"entry": d.entry_ids[j], "x": float(d.entry_x[j]), "n": float(d.entry_n[j]),
                    "weight": float(d.entry_w[j]), "observed_rate": float(d.entry_x[j] / max(d.entry_n[j], 1e-12)),
                    "fitted": _summary(fitted[:, j], ci)} for j in js]
        xs = np.array([s["x"] for s in studies])
        ns = np.array([s["n"] for s in studies])
        out["quantities"].append({"quantity": label, "studies": studies, "centre": _summary(centre[:, j0], ci),
                                  "new_setting": _summary(new[:, j0], ci),
                                  "crude_pooled_rate": float(xs.sum() / max(ns.sum(), 1e-12))})
        for j in js:
            w, k = psis[j]
            method, pn, ww = "PSIS", new[:, j], w
            if j in refitted:
                data, alt = refitted[j]
                pn = new_setting_rate(alt, dataclasses.replace(d, entry_w=data["entry_w"]), seed)[:, j]
                ww, method = np.ones(len(pn)), "refit"
            row = {"quantity": label, "entry": d.entry_ids[j], "x": float(d.entry_x[j]), "n": float(d.entry_n[j]),
                   "weight": float(d.entry_w[j]), "observed_rate": float(d.entry_x[j] / max(d.entry_n[j], 1e-12)),
                   "method": method, "pareto_k": k, "reliable": bool(method == "refit" or k < k_threshold),
                   "predictive": _summary(pn, ci, ww), **_binom_p(d.entry_x[j], d.entry_n[j], pn, ww)}
            row["fails"] = bool(row["reliable"] and row["p_value"] < P_FAIL)
            row["explanation"] = explain(row, label, tau_med) if row["fails"] else None
            out["loo"].append(row)
            if row["fails"]:
                out["failures"].append(row["explanation"])
    # the free node parameters whose answers use the new-setting predictive: their centre and predictive
    nodes = []
    if "theta_new" in params:
        free_new = free_of_theta(params["theta_new"], d)
        for i in np.flatnonzero(d.re_free_mask):
            who, _, node = d.free_names[i].partition(" | ")
            nodes.append({"component": who, "node": node, "parameter": d.free_names[i],
                          "centre": _summary(params["theta_free"][:, i], ci),
                          "new_setting": _summary(free_new[:, i], ci)})
    out["nodes"] = nodes
    return out


# --- selection -----------------------------------------------------------------------------------

def _level_p(theta: np.ndarray, item: str, levels: tuple[str, ...], st) -> np.ndarray:
    """P(level group | component) per draw (S, K) of a tree item."""
    mask = st.group_mask(item, levels)[None, :]
    return np.exp(np.asarray(LK.group_logp(LK.NUMPY, theta, mask, st)))[..., 0]


def finding_lr(params: dict[str, np.ndarray], d: D.Design, item: str, levels: tuple[str, ...], *,
               theta: np.ndarray | None = None, theta_inf: np.ndarray | None = None,
               prior_c: np.ndarray | None = None) -> dict[str, Any]:
    """Per draw, LR of the finding (``item`` in ``levels``) for infiltration against the other causes.

    P(finding | infiltration) mixes infiltration's components with their weights in the fit; the
    other causes are weighted by their prior shares P(c) from the rate block. ``theta`` defaults to
    the draws the answers use (``theta_new``); ``theta_inf`` replaces it for infiltration only (e.g.
    the probabilities as published cases show them).
    """
    th = theta if theta is not None else params.get("theta_new", params["theta"])
    st = d.structure
    pk = _level_p(th, item, levels, st)  # (S, K)
    pk_inf = _level_p(theta_inf, item, levels, st) if theta_inf is not None else pk
    v = d.variant
    inf = list(v.infiltration_components)
    cw = np.broadcast_to(LK.component_weights(LK.NUMPY, params, d), pk.shape)[:, inf]
    p_inf = (pk_inf[:, inf] * cw).sum(-1) / cw.sum(-1)
    if prior_c is None:  # P(c) of the rate block (S, cause); a caller with several features passes it once
        prior_c = np.exp(LK.cause_strata(LK.NUMPY, params, d.rates)[0])
    causes = list(v.causes)
    others, per = [], {}
    for c in causes:
        if c == "infiltration":
            continue
        k = v.component_causes.index(c)
        others.append(prior_c[:, causes.index(c)][:, None] * pk[:, [k]])
        per[c] = p_inf / pk[:, k]
    den = np.concatenate(others, axis=1).sum(-1)
    share = sum(prior_c[:, causes.index(c)] for c in per)
    lr = p_inf / (den / share)
    return {"lr": lr, "p_infiltration": p_inf, "per_cause": per}


def _lr_row(res: dict[str, Any], ci: float) -> dict[str, Any]:
    lr = res["lr"]
    return {"lr": {**_summary(lr, ci), "geometric_mean": float(np.exp(np.mean(np.log(lr))))},
            "p_infiltration": _summary(res["p_infiltration"], ci),
            "against": {c: float(np.exp(np.mean(np.log(x)))) for c, x in res["per_cause"].items()}}


def selection(params: dict[str, np.ndarray], d: D.Design, *, plain: dict[str, np.ndarray] | None = None,
              plain_design: D.Design | None = None, ci: float = CI) -> dict[str, Any]:
    """gamma's prior and posterior and the LR of each selected feature with and without selection."""
    out: dict[str, Any] = {"modelled": "gamma" in params, "features": []}
    if "gamma" not in params:
        return out
    g = params["gamma"]
    out.update({"gamma_prior": normal_summary(d.gamma_mu, d.gamma_sigma, ci),
                "gamma_prior_params": {"mu": d.gamma_mu, "sigma": d.gamma_sigma},
                "gamma_posterior": {**_summary(g, ci), "p_positive": float(np.mean(g > 0))},
                "odds_multiplier": {**_summary(np.exp(g), ci)}, "_gamma_draws": g})
    sel_theta = np.asarray(LK.case_theta(LK.NUMPY, params, d))
    st = d.structure
    prior_c = np.exp(LK.cause_strata(LK.NUMPY, params, d.rates)[0])
    prior_plain = np.exp(LK.cause_strata(LK.NUMPY, plain, (plain_design or d).rates)[0]) if plain is not None else None
    for node in np.flatnonzero(d.sel_mask):
        nd = st.nodes[node]
        row = {"feature": st.node_names[node], "item": nd.item, "levels": list(nd.success),
               "with_selection": _lr_row(finding_lr(params, d, nd.item, tuple(nd.success), prior_c=prior_c), ci),
               "as_case_reports_show": _lr_row(finding_lr(params, d, nd.item, tuple(nd.success),
                                                          theta_inf=sel_theta, prior_c=prior_c), ci)}
        if plain is not None:
            row["without_selection"] = _lr_row(finding_lr(plain, plain_design or d, nd.item, tuple(nd.success),
                                                          prior_c=prior_plain), ci)
        out["features"].append(row)
        if row["feature"] == "laterality: bilateral":  # the factor the issue asks about, both ways
            wo = row.get("without_selection")
            out["bilateral"] = {
                "with": row["with_selection"]["lr"]["geometric_mean"],
                "as_case_reports_show": row["as_case_reports_show"]["lr"]["geometric_mean"],
                "without": wo["lr"]["geometric_mean"] if wo else None,
                "with_vs_bell": row["with_selection"]["against"].get("bell"),
                "without_vs_bell": wo["against"].get("bell") if wo else None}
    return out
