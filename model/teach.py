"""Scenario computations for educators (DESIGN §6, *Teaching*): pure numpy over posterior draws.

Why a negative lumbar puncture (LP) does not exclude leukemic infiltration, with the model's own
numbers: post-test against pretest probability after 0 to 3 negative LPs, how many negative LPs it
takes to fall below a threshold, a natural-frequency tree, the subtype model against naively
multiplying the single-LP likelihood ratio, what other findings do, and the source patients walked
through step by step. Everything works per draw from :class:`model.answer.Tables`; summaries are
the mean (the headline), the median and an equal-tailed credible interval, computed as in
:func:`model.answer.probability_summary` (quantiles of the log odds, then expit).

Nothing here imports matplotlib, jinja2 or PyMC: figures and pages are :mod:`reports.teaching`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from model import answer as A
from model import findings as F
from model import likelihood as LK
from model import structure as S
from model.draws import Draws

#: Typical pretest probabilities the lesson's tables start from.
TYPICAL_PRETESTS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
#: Thresholds for "how many negative LPs to fall below".
THRESHOLDS: tuple[float, ...] = (0.10, 0.05, 0.01)
#: The pretest grid of the post-test curves (logit-spaced, denser at the ends).
PRETEST_GRID: np.ndarray = 1.0 / (1.0 + np.exp(-np.linspace(math.log(0.005 / 0.995), math.log(0.995 / 0.005), 81)))


def logit(p: float | np.ndarray) -> float | np.ndarray:
    """Log odds of probability ``p``."""
    return np.log(p) - np.log1p(-np.asarray(p)) if isinstance(p, np.ndarray) else math.log(p / (1 - p))


def lp_level(result: str, method: str) -> int:
    """The flat level index of one LP (``result`` by ``method``) in ``Tables.level_lp``."""
    return S.LEVEL_INDEX[(S.csf_item(method), result)]


def log_p(t: A.Tables, levels: Sequence[int] = (), lineage: str | None = None,
          remission: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """log p(x | L) and log p(x | B) per draw for findings given as level indices (and a stratum).

    Parameters
    ----------
    t : Tables
        Per-draw tables of a posterior.
    levels : sequence of int
        Flat level indices (:data:`model.structure.LEVEL_INDEX`), repeats allowed (repeated LPs).
    lineage, remission : str, optional
        The stratum findings; ``None`` is unknown (marginalised).

    Returns
    -------
    (ndarray, ndarray)
        Each of shape (draw,).
    """
    a = t.logw + t.stratum_term(lineage, remission)
    for j in levels:
        a = a + t.level_lp[:, :, j]
    lp_l = LK.NUMPY.logsumexp(np.where(t.is_l, a, -np.inf), axis=-1)
    lp_b = a[:, ~t.is_l][:, 0]
    return lp_l, lp_b


def log_lr(t: A.Tables, levels: Sequence[int] = (), lineage: str | None = None,
           remission: str | None = None) -> np.ndarray:
    """Log likelihood ratio L vs B per draw of the findings (see :func:`log_p`)."""
    lp_l, lp_b = log_p(t, levels, lineage, remission)
    return lp_l - lp_b


def negatives_log_lr(t: A.Tables, method: str, k: int) -> np.ndarray:
    """Log LR per draw of ``k`` negative LPs, all read by ``method`` (k = 0 gives zeros)."""
    return log_lr(t, [lp_level("negative", method)] * k)


def band(log_odds: np.ndarray, ci: float) -> dict[str, np.ndarray]:
    """Probability summary over the last (draw) axis, vectorised over leading axes.

    The mean of expit(log odds) per draw, and the median and interval from the log-odds quantiles
    mapped through expit: the same as :func:`model.answer.probability_summary` (unweighted).
    """
    lo, med, hi = np.quantile(log_odds, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=-1)
    return {"mean": A.expit(log_odds).mean(axis=-1), "median": A.expit(med),
            "lower": A.expit(lo), "upper": A.expit(hi)}


def _scalar(d: dict[str, np.ndarray], i: Any = ()) -> dict[str, float]:
    return {k: float(v[i]) for k, v in d.items()}


def lr_summary(x: np.ndarray, ci: float) -> dict[str, float]:
    """Log-LR summary (mean, median, interval) and the median factor on the odds."""
    s = A.summary(x, ci)
    s["factor_median"] = math.exp(s["median"])
    return s


# --- 1. post-test against pretest ----------------------------------------------------------------

def posttest_curves(t: A.Tables, *, pretests: np.ndarray = PRETEST_GRID, max_k: int = 3, ci: float = 0.9,
                    methods: Sequence[str] = F.CSF_METHODS) -> dict[str, Any]:
    """P(L) after 0..``max_k`` negative LPs by each method, for each pretest probability.

    Returns
    -------
    dict
        ``pretest`` (grid,) and ``curves[method][k]``: ``{mean, median, lower, upper}`` arrays (grid,).
    """
    pretests = np.asarray(pretests, float)
    base = logit(pretests)[:, None]
    curves: dict[str, list[dict[str, np.ndarray]]] = {}
    for m in methods:
        curves[m] = [band(base + negatives_log_lr(t, m, k)[None, :], ci) for k in range(max_k + 1)]
    return {"pretest": pretests, "curves": curves, "ci": ci}


# --- 2. how many negative LPs to fall below a threshold ------------------------------------------

def lps_to_fall_below(t: A.Tables, *, pretests: Sequence[float] = TYPICAL_PRETESTS,
                      thresholds: Sequence[float] = THRESHOLDS, max_lps: int = F.MAX_LPS, ci: float = 0.9,
                      methods: Sequence[str] = F.CSF_METHODS) -> list[dict[str, Any]]:
    """The number of negative LPs (same method) after which P(L) falls below each threshold.

    Two readings: ``by_mean`` (the headline probability falls below) and ``by_upper`` (even the
    upper credible limit falls below). ``None`` means it never does within ``max_lps`` LPs.
    Each row also has ``after``: the probability summary after 0..``max_lps`` negative LPs.
    """
    rows = []
    for m in methods:
        llr = np.stack([negatives_log_lr(t, m, k) for k in range(max_lps + 1)])  # (k, draw)
        for p in pretests:
            b = band(logit(p) + llr, ci)
            after = [_scalar(b, k) for k in range(max_lps + 1)]
            for thr in thresholds:
                by_mean = next((k for k in range(max_lps + 1) if b["mean"][k] < thr), None)
                by_upper = next((k for k in range(max_lps + 1) if b["upper"][k] < thr), None)
                rows.append({"method": m, "pretest": float(p), "threshold": float(thr),
                             "by_mean": by_mean, "by_upper": by_upper, "after": after})
    return rows


# --- 3. natural frequencies ----------------------------------------------------------------------

def frequency_tree(t: A.Tables, *, pretest: float, method: str = "cytology", n: int = 1000,
                   ci: float = 0.9) -> dict[str, Any]:
    """Expected counts of ``n`` patients through two LPs by ``method`` (the second after a negative first).

    Per draw: L patients ``n p``; of these, negative on LP 1 ``n p P(neg | L)``; negative on both
    ``n p P(neg, neg | L)`` (the joint, so the subtype's dependence between LPs is kept); likewise
    for B. Counts are means over draws with their credible intervals. ``share_l`` gives the share
    of infiltration among the patients in each negative branch: the ratio of mean counts (what the
    tree shows) and the per-draw probability summary (the headline mean, median and interval).
    """
    neg = lp_level("negative", method)
    l1, b1 = log_p(t, [neg])
    l2, b2 = log_p(t, [neg, neg])
    nl, nb = n * pretest, n * (1 - pretest)
    per_draw = {
        "L": np.full(t.n, nl), "B": np.full(t.n, nb),
        "L_neg1": nl * np.exp(l1), "L_pos1": nl * (1 - np.exp(l1)),
        "B_neg1": nb * np.exp(b1), "B_pos1": nb * (1 - np.exp(b1)),
        "L_neg2": nl * np.exp(l2), "L_neg1_pos2": nl * (np.exp(l1) - np.exp(l2)),
        "B_neg2": nb * np.exp(b2), "B_neg1_pos2": nb * (np.exp(b1) - np.exp(b2)),
    }
    counts = {k: A.summary(v, ci) for k, v in per_draw.items()}
    share = {}
    for step, (lk, bk, lr) in {"neg1": ("L_neg1", "B_neg1", l1 - b1), "neg2": ("L_neg2", "B_neg2", l2 - b2)}.items():
        ratio = counts[lk]["mean"] / (counts[lk]["mean"] + counts[bk]["mean"])
        share[step] = {"tree": ratio, **_scalar(band(logit(pretest) + lr[None, :], ci), 0)}
    return {"n": n, "pretest": pretest, "method": method, "ci": ci, "counts": counts, "share_l": share}


# --- 4. the subtype model against squaring the likelihood ratio ---------------------------------

def repeat_lps(t: A.Tables, *, method: str = "cytology", max_k: int = F.MAX_LPS, ci: float = 0.9,
               pretests: Sequence[float] = TYPICAL_PRETESTS) -> dict[str, Any]:
    """The model's log LR of k negative LPs against the naive k x (log LR of one), k = 1..``max_k``.

    Under the independent variant the two agree per draw. Under the subtype variant a negative LP
    shifts L towards the forms with a negative CSF, so each further negative LP is worth less:
    ``conditional[k]`` is the log LR of the k-th negative LP given the k - 1 before it.

    Returns
    -------
    dict
        ``joint``, ``naive``, ``conditional``: lists (k = 1..max_k) of log-LR summaries;
        ``posttest``: for each pretest, lists of probability summaries (model and naive);
        ``draws_joint`` and ``draws_naive``: (k, draw) arrays for figures and tests.
    """
    joint = np.stack([negatives_log_lr(t, method, k) for k in range(max_k + 1)])
    naive = np.arange(max_k + 1)[:, None] * joint[1][None, :]
    cond = np.diff(joint, axis=0)
    post = []
    for p in pretests:
        bm, bn = band(logit(p) + joint, ci), band(logit(p) + naive, ci)
        post.append({"pretest": float(p), "model": [_scalar(bm, k) for k in range(max_k + 1)],
                     "naive": [_scalar(bn, k) for k in range(max_k + 1)]})
    return {"method": method, "ci": ci, "k": list(range(1, max_k + 1)),
            "joint": [lr_summary(joint[k], ci) for k in range(1, max_k + 1)],
            "naive": [lr_summary(naive[k], ci) for k in range(1, max_k + 1)],
            "conditional": [lr_summary(cond[k - 1], ci) for k in range(1, max_k + 1)],
            "posttest": post, "draws_joint": joint, "draws_naive": naive}


def form_shift(t: A.Tables, draws: Draws, *, method: str = "cytology", max_k: int = 3,
               ci: float = 0.9) -> list[dict[str, Any]] | None:
    """P(form | L, k negative LPs) for each form of L (subtype variant; ``None`` otherwise)."""
    comps = [c for c, is_l in zip(draws.components, t.is_l, strict=True) if is_l]
    if len(comps) < 2:
        return None
    neg = lp_level("negative", method)
    out = []
    for k in range(max_k + 1):
        a = t.stratum_term(None, None)[:, t.is_l] + k * t.level_lp[:, t.is_l, neg]
        w = np.exp(a - LK.NUMPY.logsumexp(a, axis=-1)[:, None])
        out.append({"k": k, "forms": {c: A.summary(w[:, i], ci) for i, c in enumerate(comps)}})
    return out


# --- 5. what other findings do -------------------------------------------------------------------

def _finding_label(item: str, level: str) -> tuple[str, str]:
    if item.startswith("csf_"):
        return "csf", f"{level}:{item[4:]}"
    return item, level


def single_findings(t: A.Tables, *, ci: float = 0.9,
                    pretests: Sequence[float] = (0.1, 0.3, 0.5)) -> list[dict[str, Any]]:
    """Each finding level alone: its log LR (factor on the odds) and P(L) after it from ``pretests``."""
    rows = []
    for (item, level), j in S.LEVEL_INDEX.items():
        llr = log_lr(t, [j])
        finding, value = _finding_label(item, level)
        rows.append({"finding": finding, "value": value, "log_lr": lr_summary(llr, ci),
                     "after": [{"pretest": float(p), **_scalar(band(logit(p) + llr[None, :], ci), 0)}
                               for p in pretests]})
    return rows


def mri_after_negative_lp(t: A.Tables, *, method: str = "cytology", ci: float = 0.9) -> list[dict[str, Any]]:
    """Each MRI pattern's log LR alone and given one negative LP before it (the subtype's shift)."""
    neg = lp_level("negative", method)
    base = log_lr(t, [neg])
    rows = []
    for level in F.LEVELS["mri"]:
        j = S.LEVEL_INDEX[("mri", level)]
        rows.append({"value": level, "alone": lr_summary(log_lr(t, [j]), ci),
                     "after_negative_lp": lr_summary(log_lr(t, [neg, j]) - base, ci)})
    return rows


# --- 6. the source patients step by step --------------------------------------------------------

def walkthrough(patient: F.Patient, draws: Draws, t: A.Tables, *, ci: float = 0.9,
                pretest: float | None = None) -> dict[str, Any]:
    """The sequential contributions of ``patient`` with the probability after each step.

    Uses :func:`model.answer.answer` (so a library case is answered with itself left out, as the
    CLI does); per draw, the running log odds are the prior plus the cumulative contributions.
    """
    ans = A.answer(patient, draws, ci=ci, pretest=pretest, tables=t)
    w = ans.weights
    running = ans.prior_log_odds[None, :] + np.cumsum(ans.sequential, axis=0) if len(ans.players) else \
        np.zeros((0, t.n))
    steps = []
    for p, contrib, lo in zip(ans.players, ans.sequential, running, strict=True):
        s = A.summary(contrib, ci, w)
        s["factor_median"] = math.exp(s["median"])
        steps.append({"finding": p.finding, "index": p.index, "value": p.value, "label": p.label,
                      "log_lr": s, "probability_after": A.probability_summary(lo, ci, w)})
    return {"id": patient.id, "description": patient.description, "prior": ans.prior_probability,
            "steps": steps, "probability": ans.probability, "left_out": ans.left_out,
            "out_of_population": patient.at_diagnosis}


# --- the interactive page's data -----------------------------------------------------------------

def page_tables(draws: Draws, t: A.Tables | None = None, *, decimals: int = 4) -> dict[str, Any]:
    """Compact per-draw tables for the browser: every draw, rounded to ``decimals`` places.

    ``logit_prior`` (draw,), ``log_sk`` (draw, component, 12 strata; lineage-major) = log
    P(stratum, component | hypothesis), ``level_lp`` (draw, component, 14 levels) as nested lists, with
    ``is_l``, ``components``, ``levels`` (item, level), ``lineages`` and ``remissions``.
    """
    t = t or A.Tables(draws)

    def r(x: np.ndarray) -> list:
        x = np.where(np.isfinite(x), x, -1e9)
        return np.round(x.astype(np.float64), decimals).tolist()

    return {
        "variant": draws.variant, "n": t.n, "components": list(draws.components),
        "is_l": [bool(x) for x in t.is_l], "levels": [list(k) for k in S.LEVEL_KEYS],
        "lineages": list(S.LINEAGES), "remissions": list(S.REMISSIONS),
        "partial": {"lineage": {k: list(v) for k, v in F.PARTIAL_LEVELS["lineage"].items()}},
        "logit_prior": r(t.logit_prior), "log_sk": r(t.log_sk), "level_lp": r(t.level_lp),
        "evidence_hash": draws.meta.get("evidence_hash"), "version": draws.meta.get("version"),
    }


def lesson(draws: Draws, *, patients: Sequence[F.Patient] = (), ci: float = 0.9,
           subtype: Draws | None = None, tree_pretest: float = 0.3) -> dict[str, Any]:
    """Every number of the lesson from one variant's draws (and the subtype's, for the repeat-LP part).

    Parameters
    ----------
    draws : Draws
        The variant the lesson uses throughout.
    patients : sequence of Patient
        The source patients to walk through.
    subtype : Draws, optional
        The subtype variant for the repeat-LP comparison (``draws`` itself if it is the subtype).
    tree_pretest : float
        The pretest probability of the natural-frequency trees.
    """
    t = A.Tables(draws)
    sub = subtype if subtype is not None else (draws if draws.variant == "subtype" else None)
    ts = (t if sub is draws else A.Tables(sub)) if sub is not None else None
    base = A.probability_summary(t.logit_prior, ci)
    return {
        "variant": draws.variant, "draws": t.n, "ci": ci,
        "evidence_hash": draws.meta.get("evidence_hash"), "version": draws.meta.get("version"),
        "base_rate": base,
        "curves": posttest_curves(t, ci=ci),
        "fall_below": lps_to_fall_below(t, ci=ci),
        "trees": {m: frequency_tree(t, pretest=tree_pretest, method=m, ci=ci) for m in F.CSF_METHODS},
        "repeat": ({m: repeat_lps(ts, method=m, ci=ci) for m in F.CSF_METHODS} if ts is not None else None),
        "repeat_variant": sub.variant if sub is not None else None,
        "form_shift": form_shift(ts, sub, ci=ci) if ts is not None else None,
        "findings": single_findings(t, ci=ci),
        "mri_after_lp": mri_after_negative_lp(ts if ts is not None else t, ci=ci),
        "walkthroughs": [walkthrough(p, draws, t, ci=ci) for p in patients],
    }
