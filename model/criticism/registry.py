"""The registry in ``palsy check`` (docs/registry.md): whether a registry informed the fit and how far it
moved the base rate and each cause's share; a site-level predictive check; the calibration of the tool's
own answers against adjudicated causes.

**Site-level check.** For every site, tree finding and level, the number of the site's rows (in the
population, with a modelled final cause and the finding recorded) that have that level, against its
posterior predictive: per draw, each row's level drawn from P(level | its final cause, its context) under
the fit. Finding frequencies given the cause are shared by every site (only the cause shares differ by
site), so a site that records a finding differently (its own definition of "bilateral", a form that
swaps two levels) stands out. Two-sided p-values; a check fails below 0.05 divided by the number of
checks (Bonferroni), and each failure is named.

**Calibration.** Rows that carry ``tool_probabilities`` (what palsy answered at the time, from the
service's feedback log: ``palsy registry from-feedback``) and a modelled final cause: Brier score, log
score, mean P(true cause), how often the leading cause was the final cause, P(infiltration) by bins
against the observed share, and the same scores by year (the tool's answers over time).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import registry as RG
from palsy.model import registry_likelihood as RL
from palsy.model import structure as ST
from palsy.model.draws import Draws

ALPHA = 0.05
BINS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
DRAWS = 400


def fit_summary(draws: Draws) -> dict[str, Any]:
    """What the fit's metadata says about the registry (``{"used": False}`` without one)."""
    return draws.meta.get("registry") or {"used": False}


def _params(draws: Draws, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    idx = np.sort(rng.choice(draws.n, size=min(n, draws.n), replace=False))
    p = {k: v[idx] for k, v in draws.params.items()}
    m = len(idx)
    p.setdefault("registry_site_sd", np.zeros(m))
    p["registry_site_z"] = np.zeros((m, 1, len(draws.causes)))  # P(level | cause, context): site effects cancel
    return p


def level_probabilities(draws: Draws, rows: list[RG.Row], finding: str, p: dict[str, np.ndarray]) -> np.ndarray:
    """P(level of ``finding`` | the row's final cause, its context) per draw (draw, row, level)."""
    sc = draws.schema
    st = ST.of(sc)
    levels = sc.levels[finding]
    cells, where = [], {}
    for r in rows:
        ctx = {f: r.patient.values.get(f) for f in sc.context}
        for lv in levels:
            key = (tuple(ctx.items()), r.cause, lv)
            if key not in where:
                where[key] = len(cells)
                patient = F.Patient(values={**ctx, finding: lv}, schema=sc)
                cells.append(RL.Cell("s", patient, (r.cause,), (r.cause,), 1))
    rd = RL.build(cells, [], st, draws.causes, 1.0, "", ("s",))
    ll = RL.cell_loglik(LK.NUMPY, p, rd.arrays, draws.rate_arrays, st, LP.Index.of(st))  # (draw, padded cells)
    idx = np.array([[where[(tuple({f: r.patient.values.get(f) for f in sc.context}.items()), r.cause, lv)]
                     for lv in levels] for r in rows])  # (row, level)
    out = np.exp(ll[:, idx])
    return out / out.sum(axis=-1, keepdims=True)


def site_check(draws: Draws, registry: RG.Registry, *, seed: int = 1, n_draws: int = DRAWS) -> dict[str, Any]:
    """The site-level posterior predictive check (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    rows = [r for r in registry.rows if r.in_scope and r.modelled]
    sc = draws.schema
    checks = []
    if len(registry.sites) < 1 or not rows:
        return {"checks": [], "failures": [], "n_checks": 0, "alpha": ALPHA, "threshold": ALPHA, "sites": list(registry.sites),
                "worst_by_site": {}}
    p = _params(draws, n_draws, rng)
    for finding in sc.tree_findings:
        known = [r for r in rows if r.patient.level(finding) is not None]
        if not known:
            continue
        levels = sc.levels[finding]
        prob = level_probabilities(draws, known, finding, p)  # (S, R, L)
        obs = np.array([levels.index(r.patient.level(finding)) for r in known])
        site_of = np.array([registry.sites.index(r.site) for r in known])
        for s_i, site in enumerate(registry.sites):
            mine = site_of == s_i
            if not mine.any():
                continue
            for lv in (levels if len(levels) > 2 else levels[1:]):
                jj = levels.index(lv)
                o = int((obs[mine] == jj).sum())
                dist = count_distribution(prob[:, mine, jj])  # (S, rows + 1)
                below, at = dist[:, :o].sum(axis=1), dist[:, o]
                lower = float((below + 0.5 * at).mean())  # mid-p: P(count < o) + P(count = o) / 2
                pv = float(min(1.0, 2 * min(lower, 1.0 - lower)))
                mean = dist @ np.arange(dist.shape[1])
                cdf = dist.mean(axis=0).cumsum()
                lo, hi = int(np.searchsorted(cdf, 0.05)), int(np.searchsorted(cdf, 0.95))
                checks.append({"site": site, "finding": finding, "level": lv, "rows": int(mine.sum()),
                               "observed": o, "predicted": {"mean": float(mean.mean()), "lower": float(lo),
                                                             "upper": float(hi)}, "p_value": pv})
    m = len(checks)
    cut = ALPHA / max(m, 1)
    failures = []
    for c in checks:
        c["fails"] = bool(c["p_value"] < cut)
        if c["fails"]:
            failures.append(f"site {c['site']}: {c['finding']} = {c['level']} in {c['observed']} of {c['rows']} rows, "
                            f"where the fit predicts {c['predicted']['lower']:.0f} to {c['predicted']['upper']:.0f} "
                            f"(90%) from their final causes and contexts (p = {c['p_value']:.2g} < {cut:.2g}): does "
                            "this site record the finding differently?")
    per_site = {}
    for c in checks:
        best = per_site.get(c["site"])
        if best is None or c["p_value"] < best["p_value"]:
            per_site[c["site"]] = {"finding": c["finding"], "level": c["level"], "p_value": c["p_value"]}
    return {"checks": checks, "failures": failures, "n_checks": m, "alpha": ALPHA, "threshold": cut,
            "sites": list(registry.sites), "worst_by_site": per_site, "draws": int(len(p["theta"]))}


def count_distribution(q: np.ndarray) -> np.ndarray:
    """The distribution of a sum of independent Bernoulli variables with probabilities ``q`` (draw, row):
    (draw, rows + 1), exact (the Poisson-binomial, one row at a time)."""
    S, n = q.shape
    dist = np.zeros((S, n + 1))
    dist[:, 0] = 1.0
    for r in range(n):
        dist[:, 1:r + 2] = dist[:, 1:r + 2] * (1 - q[:, r:r + 1]) + dist[:, :r + 1] * q[:, r:r + 1]
        dist[:, 0] *= 1 - q[:, r]
    return dist


def calibration(registry: RG.Registry) -> dict[str, Any] | None:
    """Calibration of the tool's own answers (rows with ``tool_probabilities`` and a modelled final cause);
    None when no row has them."""
    rows = [r for r in registry.rows if r.in_scope and r.modelled and r.tool_probabilities is not None]
    if not rows:
        return None
    causes = registry.causes
    probs = np.array([[r.tool_probabilities[c] for c in causes] for r in rows])
    y = np.array([causes.index(r.cause) for r in rows])
    out = _scores(probs, y)
    out["rows"] = len(rows)
    inf = causes.index("infiltration")
    p_inf, is_inf = probs[:, inf], (y == inf).astype(float)
    bins = []
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        sel = (p_inf >= lo) & ((p_inf < hi) if hi < 1 else (p_inf <= hi))
        if sel.any():
            bins.append({"bin": [lo, hi], "rows": int(sel.sum()), "predicted": float(p_inf[sel].mean()),
                         "observed": float(is_inf[sel].mean())})
    out["infiltration_bins"] = bins
    out["by_cause"] = {c: {"predicted": float(probs[:, j].mean()), "observed": float((y == j).mean())}
                       for j, c in enumerate(causes)}
    by_year: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_year[r.period[:4]].append(i)
    out["by_year"] = {yr: {"rows": len(ix), **_scores(probs[ix], y[ix])} for yr, ix in sorted(by_year.items())}
    return out


def _scores(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    onehot = np.eye(probs.shape[1])[y]
    p_true = probs[np.arange(len(y)), y]
    return {"brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
            "log_score": float(-np.log(np.clip(p_true, 1e-12, 1)).mean()),
            "mean_p_true": float(p_true.mean()), "top1_accuracy": float((probs.argmax(axis=1) == y).mean())}


def report(draws: Draws, registry: RG.Registry | None, *, seed: int = 1) -> dict[str, Any]:
    """The registry section of ``palsy check``: the fit's summary, and with rows the site-level check and
    the calibration of the tool's own answers."""
    out: dict[str, Any] = {"fit": fit_summary(draws), "site_check": None, "calibration": None}
    if registry is not None:
        out["rows"] = len(registry.rows)
        out["site_check"] = site_check(draws, registry, seed=seed)
        out["calibration"] = calibration(registry)
    return out
