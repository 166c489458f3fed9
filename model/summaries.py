"""Summaries over posterior draws: means (the headline), medians and equal-tailed intervals, weighted
when a library case is left out (PSIS weights). Pure numpy."""

from __future__ import annotations

import numpy as np


def expit(x: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |x|."""
    return np.exp(-np.logaddexp(0.0, -x))


def weighted_quantile(x: np.ndarray, q: np.ndarray | list[float], w: np.ndarray | None) -> np.ndarray:
    """Quantiles of ``x`` along its last axis (weighted when ``w`` is given)."""
    if w is None:
        return np.quantile(x, q, axis=-1)
    order = np.argsort(x, axis=-1)
    xs = np.take_along_axis(x, order, axis=-1)
    cw = np.cumsum(w[order], axis=-1)
    cw = (cw - 0.5 * w[order]) / cw[..., -1:]
    if x.ndim == 1:
        return np.interp(q, cw, xs)
    return np.stack([np.array([np.interp(qq, c, s) for c, s in zip(cw, xs, strict=True)]) for qq in q])


def summary(x: np.ndarray, ci: float, w: np.ndarray | None = None) -> dict[str, float]:
    """Mean, median and equal-tailed ``ci`` interval over draws."""
    lo, med, hi = weighted_quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2], w)
    mean = float(np.average(x, weights=w))
    return {"mean": mean, "median": float(med), "lower": float(lo), "upper": float(hi)}


def probability_summary(log_odds: np.ndarray, ci: float, w: np.ndarray | None = None) -> dict[str, float]:
    """P = expit(log odds): mean of P per draw (the headline); median and interval from the log
    odds quantiles mapped through expit (exact, since expit is monotone)."""
    s = summary(log_odds, ci, w)
    return {"mean": float(np.average(expit(log_odds), weights=w)), "median": float(expit(s["median"])),
            "lower": float(expit(s["lower"])), "upper": float(expit(s["upper"])), "ci": ci}
