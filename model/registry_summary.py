"""What a registry holds (``palsy registry summary``) and whether its rows look selected (``palsy registry
check``): pure computations over a :class:`palsy.model.registry.Registry`, numbers only.

The selection check compares each cause's count with the model's prior predictive for *unselected*
patients with the registry's context findings: per prior draw of the rate model (and of each site's
effect, half-normal spread from ``priors/registry.yaml``), each row's cause is drawn from P(cause | its
context, its site); a count in either tail beyond ``selection.tail`` is warned about, and so is a registry
whose determined rows all have one cause. A warning is a question about how the rows were chosen (only
proven infiltration entered, say), not a verdict: a hospital whose patients differ from the prior also
gets one.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

import numpy as np

from palsy.model import likelihood as LK
from palsy.model import rates as R
from palsy.model import registry as RG
from palsy.model import structure as ST

PRIOR_DRAWS = 2000
#: Determined rows from which a registry of one cause only is warned about.
ONE_CAUSE_MIN = 3


def summary(reg: RG.Registry) -> dict[str, Any]:
    """Counts by cause, site, year, how established; follow-up; completeness and levels per finding by cause."""
    rows = reg.rows
    sc = rows[0].patient.schema
    labels = (*reg.causes, RG.OTHER, RG.UNDETERMINED)
    by_cause = Counter(r.cause for r in rows)
    out: dict[str, Any] = {
        "rows": len(rows),
        "sources": list(reg.sources),
        "in_scope": sum(r.in_scope for r in rows),
        "out_of_scope": sum(not r.in_scope for r in rows),
        "causes": {c: by_cause.get(c, 0) for c in labels},
        "sites": {s: {c: n for c, n in Counter(r.cause for r in rows if r.site == s).items()} for s in reg.sites},
        "years": dict(sorted(Counter(r.period[:4] for r in rows).items())),
        "established_by": dict(Counter(e for r in rows for e in r.established_by).most_common()),
        "other_causes": dict(Counter(r.other_text for r in rows if r.cause == RG.OTHER).most_common()),
    }
    fu = [r.follow_up_months for r in rows if r.follow_up_months is not None]
    out["follow_up_months"] = {"known": len(fu), "unknown": len(rows) - len(fu),
                               "median": median(fu) if fu else None, "min": min(fu, default=None),
                               "max": max(fu, default=None)}
    completeness = {}
    levels: dict[str, dict[str, dict[str, int]]] = {}
    for name in sc.findings:
        if name == sc.lp.name:
            known = [r for r in rows if r.patient.csf]
            completeness[name] = len(known) / len(rows)
            levels[name] = {}
            for r in known:
                for lp in r.patient.csf:
                    key = "positive" if lp.positive else "negative"
                    levels[name].setdefault(key, Counter())[r.cause] += 1
            continue
        known = [r for r in rows if r.patient.values.get(name) is not None]
        completeness[name] = len(known) / len(rows)
        levels[name] = {}
        for r in known:
            levels[name].setdefault(r.patient.values[name], Counter())[r.cause] += 1
    out["completeness"] = completeness
    out["levels"] = {f: {lv: dict(c) for lv, c in lvs.items()} for f, lvs in levels.items()}
    out["lps_per_row"] = dict(sorted(Counter(len(r.patient.csf) for r in rows).items()))
    return out


def selection_warnings(reg: RG.Registry, rates: R.RateArrays, st: ST.Structure, site_sigma: float, tail: float,
                       seed: int = 23) -> list[str]:
    """Warnings when the registry's rows look selected (see the module's docstring)."""
    rows = [r for r in reg.rows if r.in_scope and r.modelled]
    out = []
    observed = Counter(r.cause for r in rows)
    if len(rows) >= ONE_CAUSE_MIN and len(observed) == 1:
        cause = next(iter(observed))
        out.append(f"all {len(rows)} rows with a modelled final cause are {cause}: a registry of consecutive "
                   "adjudicated palsies has several causes; were only some patients entered (e.g. proven cases)?")
    if not rows:
        return out
    pred = predictive_counts(rows, reg.causes, reg.sites, rates, st, site_sigma, seed)  # (draw, cause)
    for j, c in enumerate(reg.causes):
        k = observed.get(c, 0)
        hi, lo = float((pred[:, j] >= k).mean()), float((pred[:, j] <= k).mean())
        if min(hi, lo) < tail:
            q = np.quantile(pred[:, j], [tail, 1 - tail])
            side = "more" if hi < tail else "fewer"
            out.append(f"{c}: {k} of {len(rows)} rows, {side} than unselected patients with these context findings "
                       f"would have (the model's prior predicts {q[0]:.0f} to {q[1]:.0f} in {100 * (1 - 2 * tail):.0f}% "
                       f"of registries): were the rows selected, or is the prior wrong here? (tail "
                       f"{min(hi, lo):.4f} < {tail})")
    return out


def predictive_counts(rows: list[RG.Row], causes: tuple[str, ...], sites: tuple[str, ...], rates: R.RateArrays,
                      st: ST.Structure, site_sigma: float, seed: int, n: int = PRIOR_DRAWS) -> np.ndarray:
    """Prior predictive counts of each cause (draw, cause) among ``rows`` given their contexts and sites."""
    rng = np.random.default_rng(seed)
    p = R.sample_prior(rates, n, rng)
    log_prior, log_sc = LK.cause_strata(LK.NUMPY, p, rates)  # (n, C), (n, C, N)
    masks = np.array([st.stratum_mask({f: r.patient.level(f) for f in st.context}) for r in rows])  # (R, N)
    with np.errstate(divide="ignore"):
        logp = log_prior[:, None, :] + np.log(np.exp(log_sc) @ masks.T).swapaxes(1, 2)  # (n, R, C)
    sigma = np.abs(rng.normal(0.0, site_sigma, n))
    u = sigma[:, None, None] * rng.normal(size=(n, len(sites), len(causes)))
    logp = logp + u[:, [sites.index(r.site) for r in rows], :]
    prob = np.exp(logp - LK.NUMPY.logsumexp(logp, axis=-1)[..., None])
    draws = (prob.cumsum(axis=-1) < rng.random((n, len(rows), 1))).sum(axis=-1)  # (n, R): a cause per row
    draws = np.minimum(draws, len(causes) - 1)
    return np.stack([(draws == j).sum(axis=1) for j in range(len(causes))], axis=1)


def rate_arrays(evidence) -> R.RateArrays:
    """The rate model's arrays at the level of causes (no forms): what the selection check needs."""
    return R.arrays(evidence.rates, evidence.causes, evidence.causes, ())
