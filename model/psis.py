"""Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25:72),
in numpy, for leaving one case out of the posterior without a refit on the answer path."""

from __future__ import annotations

import numpy as np


def _gpd_fit(x: np.ndarray) -> tuple[float, float]:
    """Generalized Pareto shape k and scale sigma for sorted exceedances ``x`` (Zhang & Stephens
    2009, with the weakly informative prior on k used by PSIS)."""
    n = len(x)
    m = 30 + int(np.sqrt(n))
    b = 1 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b /= 3 * x[int(n / 4 + 0.5) - 1]
    b += 1 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    ll = n * (np.log(-(b / k)) - k - 1)
    w = 1 / np.exp(ll - ll[:, None]).sum(axis=1)
    b_post = np.sum(b * w) / np.sum(w)
    k_post = np.log1p(-b_post * x).mean()
    sigma = -k_post / b_post
    k_post = (n * k_post + 10 * 0.5) / (n + 10)
    return float(k_post), float(sigma)


def psis_weights(log_ratios: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised PSIS weights and the Pareto k-hat of the importance ratios.

    k-hat < 0.7 means the weights are reliable; above it the leave-one-out answer is flagged.
    """
    lr = np.asarray(log_ratios, float) - np.max(log_ratios)
    s = lr.size
    m = int(min(0.2 * s, 3 * np.sqrt(s)))
    order = np.argsort(lr)
    tail = order[-m:]
    cutoff = lr[order[-m - 1]]
    exceed = np.exp(lr[tail]) - np.exp(cutoff)
    k = np.inf
    if m >= 5 and np.all(np.isfinite(exceed)) and exceed[-1] > exceed[0]:
        k, sigma = _gpd_fit(exceed)
        if np.isfinite(k):
            p = (np.arange(m) + 0.5) / m
            q = sigma * np.expm1(-k * np.log1p(-p)) / k if abs(k) > 1e-12 else -sigma * np.log1p(-p)
            lr = lr.copy()
            lr[tail] = np.log(np.minimum(np.exp(cutoff) + q, 1.0))
    w = np.exp(lr)
    return w / w.sum(), float(k)
