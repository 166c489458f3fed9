"""Scenario computations for educators (DESIGN §6, *Teaching*): pure numpy over posterior draws.

Why a negative lumbar puncture (LP) does not exclude leukemic infiltration, with the model's own
numbers, over the whole differential (infiltration, Bell's palsy, zoster, vincristine neuropathy,
Guillain-Barré syndrome, otomastoiditis): P(infiltration) after 0 to 6 negative LPs against the other
causes, from a pretest probability, for a typical patient; how many negative LPs it takes to fall
below a threshold; where the probability a negative work-up takes from infiltration goes (to every
other cause, not only Bell's palsy); a natural-frequency tree; the subtype model against naively
multiplying the single-LP factor; what other findings do; and the source patients step by step. And
the interactive page's tables (:func:`page_tables`, :func:`page_rules`): what the browser needs to
answer any findings, take the decision and list the actions exactly as ``palsy posterior`` does.

Everything is per draw from :class:`palsy.model.answer.Tables`, with the formulas of
:func:`palsy.model.answer.answer`: per draw, cause c and context (who the patient is) ctx,

    log p(x | c, ctx) = log sum_k P(ctx, k | c) p(x | k) - log P(ctx | c)

over the components k of c, and the prior of the causes is the model's P(c | ctx) or, with a
pretest P, P(infiltration) = P and the other causes their model shares of 1 - P (``--pretest``).
Summaries are the mean (the headline), the median and an equal-tailed credible interval, as in
:func:`palsy.model.answer.probability_summary` (quantiles of the log odds, then expit).

Nothing here imports matplotlib, jinja2 or PyMC: figures and pages are :mod:`palsy.reports.teaching`.
"""

from __future__ import annotations

import base64
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import answer as A
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G
from palsy.model import likelihood as LK
from palsy.model import structure as S
from palsy.model.draws import Draws

INF = A.INFILTRATION
#: Typical pretest probabilities the lesson's tables start from.
TYPICAL_PRETESTS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
#: Thresholds for "how many negative LPs to fall below".
THRESHOLDS: tuple[float, ...] = (0.10, 0.05, 0.01)
#: The pretest grid of the post-test curves (logit-spaced, denser at the ends).
PRETEST_GRID: np.ndarray = 1.0 / (1.0 + np.exp(-np.linspace(math.log(0.005 / 0.995), math.log(0.995 / 0.005), 81)))
#: The lesson's typical patient: source 000's situation (T-ALL in maintenance, a new unilateral
#: facial palsy, no other cranial nerve), every other finding unknown.
TYPICAL = F.Patient(id="typical", description=("T-ALL in remission on treatment; a new unilateral facial palsy; "
                                                "no other cranial nerve deficit; everything else unknown"),
                    values={**{n: None for n in F.FINDINGS if n != "csf"},
                            "lineage": "T-ALL", "remission": "remission_on_treatment",
                            "laterality": "unilateral", "other_cranial_nerves": "none"})


def logit(p: float | np.ndarray) -> float | np.ndarray:
    """Log odds of probability ``p``."""
    return np.log(p) - np.log1p(-np.asarray(p)) if isinstance(p, np.ndarray) else math.log(p / (1 - p))


def lp_level(result: str, method: str) -> int:
    """The flat level index of one LP (``result`` by ``method``) in ``Tables.level_lp``."""
    return S.LEVEL_INDEX[(S.csf_item(method), result)]


def context_of(patient: F.Patient) -> dict[str, str | None]:
    """The context findings of ``patient`` (who the patient is)."""
    return {name: patient.level(name) for name in F.CONTEXT}


def presentation_levels(patient: F.Patient) -> list[int]:
    """Level indices of the patient's tree findings and LPs (the CSF profile is not one: it is
    modelled jointly with the first LP's result, see :func:`profile_term`)."""
    out = []
    for name in S.TREE_FINDINGS:
        v = patient.level(name)
        if v is not None:
            out.append(S.LEVEL_INDEX[(name, v)])
    out += [lp_level(lp.result, lp.method) for lp in patient.csf]
    return out


def profile_term(t: A.Tables, level: str, first: F.LP | None = None) -> np.ndarray:
    """Log P(CSF profile ``level``) per component (S, K): jointly with the first LP's result when
    it is known (the LP's own term is counted with the LPs), else with that result marginalised."""
    lp = t.level_lp
    if first is not None:
        return lp[:, :, S.LEVEL_INDEX[(S.profile_item(first.result), level)]]
    method = t.default_method
    return np.logaddexp(*(lp[:, :, S.LEVEL_INDEX[(S.csf_item(method), r)]]
                          + lp[:, :, S.LEVEL_INDEX[(S.profile_item(r), level)]] for r in F.CSF_RESULTS))


def cause_loglik(t: A.Tables, context: dict[str, str | None], levels: Sequence[int] = (),
                 extra: np.ndarray | None = None) -> np.ndarray:
    """log p(findings | cause, context) per draw and cause (S, C): the mixture over each cause's
    components given the context. ``levels``: flat level indices, repeats allowed (repeated LPs);
    ``extra``: a further per-component log term (S, K), e.g. :func:`profile_term`."""
    ct = t.context_term(context)
    a = ct.copy()
    for j in levels:
        a = a + t.level_lp[:, :, j]
    if extra is not None:
        a = a + extra
    return t.by_cause(a) - t.by_cause(ct)


def log_prior(t: A.Tables, context: dict[str, str | None], pretest: float | np.ndarray | None = None) -> np.ndarray:
    """Log P(cause | context) per draw (S, C), or with ``pretest`` (a probability, or an array of
    them giving a leading axis) P(infiltration) = pretest and the other causes their model shares."""
    inf = t.causes.index(INF)
    lp = t.log_prior + t.by_cause(t.context_term(context))
    lp = lp - LK.NUMPY.logsumexp(lp, axis=-1)[:, None]
    if pretest is None:
        return lp
    others = np.arange(len(t.causes)) != inf
    q = np.where(others, lp, -np.inf)
    q = q - LK.NUMPY.logsumexp(q, axis=-1)[:, None]
    p = np.asarray(pretest, float)[..., None, None]
    out = q + np.log1p(-p)
    out = np.where(others, out, np.log(p) + np.zeros_like(q))
    return out


def log_odds(lj: np.ndarray, causes: tuple[str, ...]) -> np.ndarray:
    """Log odds of infiltration against the other causes from log joints (..., C)."""
    inf = causes.index(INF)
    others = np.where(np.arange(lj.shape[-1]) != inf, lj, -np.inf)
    return lj[..., inf] - LK.NUMPY.logsumexp(others, axis=-1)


def softmax(lj: np.ndarray) -> np.ndarray:
    """Probabilities of the causes over the last axis."""
    return np.exp(lj - LK.NUMPY.logsumexp(lj, axis=-1)[..., None])


def negatives(method: str, k: int) -> list[int]:
    """The level indices of ``k`` negative LPs by ``method``."""
    return [lp_level("negative", method)] * k


def band(log_odds: np.ndarray, ci: float) -> dict[str, np.ndarray]:
    """Probability summary over the last (draw) axis, vectorised over leading axes.

    The mean of expit(log odds) per draw, and the median and interval from the log-odds quantiles
    mapped through expit: the same as :func:`palsy.model.answer.probability_summary` (unweighted).
    """
    lo, med, hi = np.quantile(log_odds, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=-1)
    return {"mean": A.expit(log_odds).mean(axis=-1), "median": A.expit(med),
            "lower": A.expit(lo), "upper": A.expit(hi)}


def _scalar(d: dict[str, np.ndarray], i: Any = ()) -> dict[str, float]:
    return {k: float(v[i]) for k, v in d.items()}


def lr_summary(x: np.ndarray, ci: float) -> dict[str, float]:
    """Log-factor summary (mean, median, interval) and the geometric-mean factor exp(mean)."""
    s = A.summary(x, ci)
    s["factor_geometric_mean"] = math.exp(s["mean"])
    return s


def _means(pc: np.ndarray, causes: tuple[str, ...]) -> dict[str, float]:
    return {c: float(m) for c, m in zip(causes, pc.mean(axis=-2), strict=True)}


# --- 1. post-test against pretest ----------------------------------------------------------------

def posttest_log_odds(t: A.Tables, pretests: np.ndarray, method: str, k: int,
                      context: dict[str, str | None] | None = None) -> np.ndarray:
    """Log odds of infiltration against the other causes after ``k`` negative LPs by ``method``
    from each pretest (pretest, draw), the other causes in their shares for ``context``."""
    ctx = context_of(TYPICAL) if context is None else context
    lj = log_prior(t, ctx, np.asarray(pretests, float)) + cause_loglik(t, ctx, negatives(method, k))[None]
    return log_odds(lj, t.causes)


def posttest_curves(t: A.Tables, *, pretests: np.ndarray = PRETEST_GRID, max_k: int = 3, ci: float = 0.9,
                    methods: Sequence[str] = F.CSF_METHODS,
                    context: dict[str, str | None] | None = None) -> dict[str, Any]:
    """P(infiltration) after 0..``max_k`` negative LPs by each method, for each pretest probability.

    Returns
    -------
    dict
        ``pretest`` (grid,) and ``curves[method][k]``: ``{mean, median, lower, upper}`` arrays (grid,).
    """
    pretests = np.asarray(pretests, float)
    curves = {m: [band(posttest_log_odds(t, pretests, m, k, context), ci) for k in range(max_k + 1)]
              for m in methods}
    return {"pretest": pretests, "curves": curves, "ci": ci}


# --- 2. how many negative LPs to fall below a threshold ------------------------------------------

def lps_to_fall_below(t: A.Tables, *, pretests: Sequence[float] = TYPICAL_PRETESTS,
                      thresholds: Sequence[float] = THRESHOLDS, max_lps: int = F.MAX_LPS, ci: float = 0.9,
                      methods: Sequence[str] = F.CSF_METHODS,
                      context: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """The number of negative LPs (same method) after which P(infiltration) falls below each threshold.

    Two readings: ``by_mean`` (the headline probability falls below) and ``by_upper`` (even the
    upper credible limit falls below). ``None`` means it never does within ``max_lps`` LPs.
    Each row also has ``after``: the probability summary after 0..``max_lps`` negative LPs.
    """
    rows = []
    pre = np.asarray(pretests, float)
    for m in methods:
        lo = np.stack([posttest_log_odds(t, pre, m, k, context) for k in range(max_lps + 1)], axis=1)  # (p, k, S)
        for i, p in enumerate(pretests):
            b = band(lo[i], ci)
            after = [_scalar(b, k) for k in range(max_lps + 1)]
            for thr in thresholds:
                by_mean = next((k for k in range(max_lps + 1) if b["mean"][k] < thr), None)
                by_upper = next((k for k in range(max_lps + 1) if b["upper"][k] < thr), None)
                rows.append({"method": m, "pretest": float(p), "threshold": float(thr),
                             "by_mean": by_mean, "by_upper": by_upper, "after": after})
    return rows


# --- 3. where the probability goes -----------------------------------------------------------------

def where_it_goes(t: A.Tables, patient: F.Patient = TYPICAL, *, method: str = "cytology", max_k: int = 3,
                  ci: float = 0.9) -> dict[str, Any]:
    """Every cause's probability after 0..``max_k`` further negative LPs by ``method`` for
    ``patient`` (the model's prior for its context), and which causes take what infiltration loses.

    ``steps[k]``: ``causes`` {cause: {mean, lower, upper}} and ``infiltration`` (probability summary
    of the log odds); ``gain[k]``: {cause: share of the mean probability infiltration lost by k,
    taken by that cause} (sums to one over the other causes).
    """
    ctx = context_of(patient)
    base = presentation_levels(patient)
    first = patient.csf[0] if patient.csf else F.LP("negative", method)
    prof = patient.level("csf_profile")
    steps, means = [], []
    for k in range(max_k + 1):
        extra = profile_term(t, prof, first if (patient.csf or k) else None) if prof else None
        lj = log_prior(t, ctx) + cause_loglik(t, ctx, base + negatives(method, k), extra)
        pc = softmax(lj)
        means.append(pc.mean(axis=0))
        summ = {c: {"mean": float(pc[:, j].mean()), "lower": float(np.quantile(pc[:, j], (1 - ci) / 2)),
                    "upper": float(np.quantile(pc[:, j], (1 + ci) / 2))} for j, c in enumerate(t.causes)}
        steps.append({"k": k, "causes": summ,
                      "infiltration": _scalar(band(log_odds(lj, t.causes)[None], ci), 0)})
    inf = t.causes.index(INF)
    gain = []
    for k in range(1, max_k + 1):
        lost = means[0][inf] - means[k][inf]
        gain.append({c: float((means[k][j] - means[0][j]) / lost) if lost > 0 else 0.0
                     for j, c in enumerate(t.causes) if j != inf})
    return {"patient": patient.id, "description": patient.description, "method": method, "ci": ci,
            "causes": list(t.causes), "steps": steps, "gain": gain}


# --- 4. natural frequencies ----------------------------------------------------------------------

def frequency_tree(t: A.Tables, *, pretest: float, method: str = "cytology", n: int = 1000,
                   ci: float = 0.9, context: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Expected counts of ``n`` patients through two LPs by ``method`` (the second after a negative first).

    Per draw: infiltration ``n p``, every other cause ``n (1 - p) q_c`` (its share given the
    context); of each, negative on LP 1 ``n P(c) P(neg | c)``; negative on both ``n P(c) P(neg, neg | c)``
    (the joint, so the subtype's dependence between LPs is kept). ``L`` is infiltration and ``O``
    every other cause together; ``by_cause`` gives each cause's counts. Counts are means over draws
    with their credible intervals. ``share_l`` is the share of infiltration in each negative branch:
    the ratio of mean counts (what the tree shows) and the per-draw probability summary.
    """
    ctx = context_of(TYPICAL) if context is None else context
    inf = t.causes.index(INF)
    pc = softmax(log_prior(t, ctx, pretest))  # (S, C)
    l1 = cause_loglik(t, ctx, negatives(method, 1))
    l2 = cause_loglik(t, ctx, negatives(method, 2))
    all_c, neg1, neg2 = n * pc, n * pc * np.exp(l1), n * pc * np.exp(l2)
    others = np.arange(len(t.causes)) != inf
    per_draw = {
        "L": all_c[:, inf], "O": all_c[:, others].sum(1),
        "L_neg1": neg1[:, inf], "L_pos1": all_c[:, inf] - neg1[:, inf],
        "O_neg1": neg1[:, others].sum(1), "O_pos1": (all_c - neg1)[:, others].sum(1),
        "L_neg2": neg2[:, inf], "L_neg1_pos2": neg1[:, inf] - neg2[:, inf],
        "O_neg2": neg2[:, others].sum(1), "O_neg1_pos2": (neg1 - neg2)[:, others].sum(1),
    }
    counts = {k: A.summary(v, ci) for k, v in per_draw.items()}
    by_cause = {c: {"all": A.summary(all_c[:, j], ci), "neg1": A.summary(neg1[:, j], ci),
                    "neg2": A.summary(neg2[:, j], ci)} for j, c in enumerate(t.causes)}
    share = {}
    for step, lk in (("neg1", l1), ("neg2", l2)):
        lo = log_odds(np.log(pc) + lk, t.causes)
        lkey, okey = f"L_{step}", f"O_{step}"
        ratio = counts[lkey]["mean"] / (counts[lkey]["mean"] + counts[okey]["mean"])
        share[step] = {"tree": ratio, **_scalar(band(lo[None], ci), 0)}
    return {"n": n, "pretest": pretest, "method": method, "ci": ci, "counts": counts, "by_cause": by_cause,
            "share_l": share, "causes": list(t.causes)}


# --- 5. the subtype model against multiplying the single-LP factor -------------------------------

def repeat_lps(t: A.Tables, *, method: str = "cytology", max_k: int = F.MAX_LPS, ci: float = 0.9,
               pretests: Sequence[float] = TYPICAL_PRETESTS,
               context: dict[str, str | None] | None = None) -> dict[str, Any]:
    """What k negative LPs do, against the naive k x (what one does), k = 1..``max_k``.

    ``within``: log P(k negative | infiltration) against k log P(1 negative | infiltration): equal
    per draw in the independent variant; in the subtype a negative LP shifts infiltration towards
    the forms with a negative CSF, so each further negative LP is less surprising under
    infiltration. ``joint``/``naive``/``conditional``: the same for the shift in the log odds of
    infiltration against the other causes (from the model's prior for the context), where the other
    causes' mix also moves a little. ``posttest``: for each pretest, probability summaries after k
    (model and naive). ``draws_*``: (k, draw) arrays for figures and tests.
    """
    ctx = context_of(TYPICAL) if context is None else context
    inf = t.causes.index(INF)
    ll = np.stack([cause_loglik(t, ctx, negatives(method, k)) for k in range(max_k + 1)])  # (k, S, C)
    within = ll[:, :, inf]
    within_naive = np.arange(max_k + 1)[:, None] * within[1][None, :]
    lp0 = log_prior(t, ctx)
    lo = log_odds(lp0[None] + ll, t.causes)  # (k, S)
    joint = lo - lo[0]
    naive = np.arange(max_k + 1)[:, None] * joint[1][None, :]
    cond = np.diff(joint, axis=0)
    post = []
    for p in pretests:
        lop = log_odds(log_prior(t, ctx, p)[None] + ll, t.causes)
        bm, bn = band(lop, ci), band(lop[0][None] + np.arange(max_k + 1)[:, None] * (lop[1] - lop[0])[None], ci)
        post.append({"pretest": float(p), "model": [_scalar(bm, k) for k in range(max_k + 1)],
                     "naive": [_scalar(bn, k) for k in range(max_k + 1)]})
    ks = range(1, max_k + 1)
    return {"method": method, "ci": ci, "k": list(ks),
            "joint": [lr_summary(joint[k], ci) for k in ks],
            "naive": [lr_summary(naive[k], ci) for k in ks],
            "conditional": [lr_summary(cond[k - 1], ci) for k in ks],
            "within": [lr_summary(within[k], ci) for k in ks],
            "within_naive": [lr_summary(within_naive[k], ci) for k in ks],
            "posttest": post, "draws_joint": joint, "draws_naive": naive,
            "draws_within": within, "draws_within_naive": within_naive}


def form_shift(t: A.Tables, draws: Draws, *, method: str = "cytology", max_k: int = 3,
               ci: float = 0.9, context: dict[str, str | None] | None = None) -> list[dict[str, Any]] | None:
    """P(form | infiltration, context, k negative LPs) for each form (subtype variant; ``None`` otherwise)."""
    inf = t.causes.index(INF)
    idx = t.cause_components[inf]
    if len(idx) < 2:
        return None
    ctx = context_of(TYPICAL) if context is None else context
    comps = [draws.components[i] for i in idx]
    neg = lp_level("negative", method)
    ct = t.context_term(ctx)[:, idx]
    out = []
    for k in range(max_k + 1):
        a = ct + k * t.level_lp[:, idx, neg]
        w = np.exp(a - LK.NUMPY.logsumexp(a, axis=-1)[:, None])
        out.append({"k": k, "forms": {c: A.summary(w[:, i], ci) for i, c in enumerate(comps)}})
    return out


# --- 6. what other findings do -------------------------------------------------------------------

def _finding_label(item: str, level: str) -> tuple[str, str]:
    if item.startswith("csf_profile_"):
        return "csf_profile", level
    if item.startswith("csf_"):
        return "csf", f"{level}:{item[4:]}"
    return item, level


def _shift(t: A.Tables, ctx: dict[str, str | None], levels: Sequence[int], extra: np.ndarray | None,
           before: Sequence[int] = (), ci: float = 0.9) -> dict[str, Any]:
    lp0 = log_prior(t, ctx)
    lj0 = lp0 + cause_loglik(t, ctx, before)
    lj = lp0 + cause_loglik(t, ctx, [*before, *levels], extra)
    shift = log_odds(lj, t.causes) - log_odds(lj0, t.causes)
    pc = softmax(lj)
    means = pc.mean(axis=0)
    return {"log_lr": lr_summary(shift, ci), "after": _scalar(band(log_odds(lj, t.causes)[None], ci), 0),
            "leading": t.causes[int(np.argmax(means))], "causes_after": _means(pc, t.causes)}


def single_findings(t: A.Tables, *, ci: float = 0.9,
                    context: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Each presentation finding level alone, for a patient with ``context`` (the typical patient's
    by default): its geometric-mean factor on the odds of infiltration against the other causes,
    P(infiltration) after it and the leading cause after it."""
    ctx = context_of(TYPICAL) if context is None else context
    rows = []
    for (item, level), j in S.LEVEL_INDEX.items():
        if item.startswith("csf_profile_"):
            continue
        finding, value = _finding_label(item, level)
        rows.append({"finding": finding, "value": value, **_shift(t, ctx, [j], None, ci=ci)})
    for level in F.LEVELS["csf_profile"]:
        rows.append({"finding": "csf_profile", "value": level, **_shift(t, ctx, [], profile_term(t, level), ci=ci)})
    return rows


def mri_after_negative_lp(t: A.Tables, *, method: str = "cytology", ci: float = 0.9,
                          context: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Each MRI pattern's factor alone and given one negative LP before it (the subtype's shift)."""
    ctx = context_of(TYPICAL) if context is None else context
    neg = lp_level("negative", method)
    rows = []
    for level in F.LEVELS["mri"]:
        j = S.LEVEL_INDEX[("mri", level)]
        alone = _shift(t, ctx, [j], None, ci=ci)
        after = _shift(t, ctx, [j], None, before=[neg], ci=ci)
        rows.append({"value": level, "alone": alone["log_lr"], "after_negative_lp": after["log_lr"],
                     "leading_alone": alone["leading"], "leading_after": after["leading"]})
    return rows


# --- 7. the source patients step by step --------------------------------------------------------

def walkthrough(patient: F.Patient, draws: Draws, t: A.Tables, *, ci: float = 0.9,
                pretest: float | None = None) -> dict[str, Any]:
    """The sequential contributions of ``patient`` with P(infiltration) and every cause after each step.

    Uses :func:`palsy.model.answer.answer` (so a library case is answered with itself left out, as the
    CLI does); per draw, the running log odds are the prior plus the cumulative contributions.
    """
    ans = A.answer(patient, draws, ci=ci, pretest=pretest, tables=t)
    w = ans.weights
    running = ans.prior_log_odds[None, :] + np.cumsum(ans.sequential, axis=0) if len(ans.players) else \
        np.zeros((0, t.n))
    cause_steps = ans.steps()
    steps = []
    for p, c, lo, cs in zip(ans.players, ans.contributions, running, cause_steps[1:], strict=True):
        means = cs["causes"]
        steps.append({"finding": p.finding, "index": p.index, "value": p.value, "label": p.label,
                      "log_lr": {**c["log_lr"], "factor_geometric_mean": c["factor_geometric_mean"]},
                      "probability_after": A.probability_summary(lo, ci, w),
                      "causes_after": means, "leading_after": max(means, key=means.get)})
    return {"id": patient.id, "description": patient.description, "prior": ans.prior_probability,
            "prior_causes": cause_steps[0]["causes"], "steps": steps, "probability": ans.probability,
            "causes": ans.cause_summaries(), "leading": ans.leading_cause, "left_out": ans.left_out,
            "out_of_population": not patient.in_scope, "scope_notes": list(ans.scope_notes)}


# --- the interactive page's data -----------------------------------------------------------------

#: How each share of patient-time enters log P(stratum): (parameter, the context findings that index
#: it, the yes/no-like context finding whose second level it is the probability of, or None). The
#: page rebuilds :func:`palsy.model.likelihood.log_shares` from these; :func:`page_tables` checks that it
#: does, so a change of the rate model cannot silently change the page's numbers.
SHARES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("share_lineage", ("lineage",), None),
    ("share_remission", ("lineage", "remission"), None),
    ("share_adult", ("lineage",), "age_group"),
    ("share_vincristine", ("lineage", "remission"), "recent_vincristine"),
    ("share_hsct", ("lineage", "remission"), "recent_hsct"),
)


def _b64(x: np.ndarray) -> str:
    """Little-endian float32 bytes, base64 (infinities kept as +-1e30, which float32 holds)."""
    x = np.clip(np.nan_to_num(np.asarray(x, float), nan=0.0, posinf=1e30, neginf=-1e30), -1e30, 1e30).astype("<f4")
    return base64.b64encode(np.ascontiguousarray(x).tobytes()).decode("ascii")


def _strata_levels() -> np.ndarray:
    """(stratum, context finding): the level index of each context finding in each stratum."""
    return np.array([[S.CONTEXT_LEVELS[name].index(lv) for name, lv in zip(S.CONTEXT, st, strict=True)]
                     for st in S.STRATA])


def context_features(draws: Draws) -> tuple[np.ndarray, list[list[int]], np.ndarray]:
    """The rate model as per-draw log parameters times constant 0/1 incidences.

    Returns ``(features, incidence, fixed)`` with, per draw, log P(stratum) + log rate(cause,
    stratum) = ``fixed[c, s] + sum_j features[j] [cs in incidence[j]]`` over the flat index
    ``cs = c * N_STRATA + s``: the log of every share (and of its complement for the yes/no
    findings) and of every rate factor. The exact structure of :func:`palsy.model.likelihood.log_shares`
    and :func:`palsy.model.likelihood.log_rates`, written so the browser needs no formula per share.
    """
    p, r = draws.params, draws.rate_arrays
    n_c, n_s = r.n_causes, S.N_STRATA
    lv = _strata_levels()
    axis = {name: S.CONTEXT.index(name) for name in S.CONTEXT}
    cols: list[np.ndarray] = []
    incidence: list[list[int]] = []

    def add(values: np.ndarray, strata: np.ndarray) -> None:
        cols.append(values)
        idx = np.flatnonzero(strata)
        incidence.append([int(c * n_s + s) for c in range(n_c) for s in idx])

    for name, by, binary in SHARES:
        share = p[name]
        for key in itertools.product(*(range(len(S.CONTEXT_LEVELS[b])) for b in by)):
            match = np.all([lv[:, axis[b]] == k for b, k in zip(by, key, strict=True)], axis=0)
            x = share[(slice(None), *key)]
            if binary is None:
                add(np.log(x), match)
            else:
                add(np.log1p(-x), match & (lv[:, axis[binary]] == 0))
                add(np.log(x), match & (lv[:, axis[binary]] == 1))
    for name, inc in (("rate_lognormal", r.lognormal_incidence), ("rate_beta", r.beta_incidence)):
        for j in range(inc.shape[0]):
            cols.append(np.log(p[name][:, j]))
            incidence.append([int(i) for i in np.flatnonzero(inc[j])])
    if not all(set(np.unique(inc)) <= {0.0, 1.0} for inc in (r.lognormal_incidence, r.beta_incidence)):
        raise ValueError("page tables: rate incidences must be 0/1")
    return np.stack(cols, axis=-1), incidence, np.asarray(r.fixed_log, float)


def form_features(draws: Draws) -> tuple[np.ndarray, list[list[int]]]:
    """The forms' weights (subtype variant) as per-draw log omega[lineage, form] and the flat indices
    ``k * N_STRATA + s`` (component k of that form, stratum s of that lineage) each adds to."""
    r = draws.rate_arrays
    if "omega" not in draws.params:
        return np.zeros((draws.n, 0)), []
    log_w = np.log(draws.params["omega"])  # (S, lineage, form)
    cols, incidence = [], []
    for a in range(log_w.shape[1]):
        strata = np.flatnonzero(r.lineage_of_stratum[:, a])
        for f in range(log_w.shape[2]):
            cols.append(log_w[:, a, f])
            comps = np.flatnonzero(r.component_form[:, f])
            incidence.append([int(k * S.N_STRATA + s) for k in comps for s in strata])
    return np.stack(cols, axis=-1), incidence


def _dense(incidence: list[list[int]], size: int) -> np.ndarray:
    m = np.zeros((len(incidence), size))
    for j, idx in enumerate(incidence):
        m[j, idx] = 1.0
    return m


def rebuild(features: np.ndarray, incidence: list[list[int]], fixed: np.ndarray, forms: np.ndarray,
            form_incidence: list[list[int]], component_cause: Sequence[int],
            logit_theta: np.ndarray) -> dict[str, np.ndarray]:
    """What the page computes from its tables (the numpy twin of ``teach.js``'s ``prepare``).

    Returns ``log_prior`` (draw, cause), ``log_sk`` (draw, component, stratum): log P(stratum,
    component | cause of the component), and ``level_lp`` (draw, component, level), as
    :class:`palsy.model.answer.Tables` has them.
    """
    n_c = len(fixed) // S.N_STRATA
    kc = np.asarray(component_cause)
    joint = (fixed + features @ _dense(incidence, len(fixed))).reshape(-1, n_c, S.N_STRATA)
    total = LK.NUMPY.logsumexp(joint, axis=-1)
    log_prior = total - LK.NUMPY.logsumexp(total, axis=-1)[:, None]
    log_sc = joint - total[..., None]
    log_sk = log_sc[:, kc] + (forms @ _dense(form_incidence, len(kc) * S.N_STRATA)).reshape(-1, len(kc), S.N_STRATA)
    log_t = -np.logaddexp(0.0, -logit_theta)
    log_1mt = -np.logaddexp(0.0, logit_theta)
    level_lp = log_t @ S.A_SUCCESS.T + log_1mt @ S.A_FAILURE.T
    return {"log_prior": log_prior, "log_sk": log_sk, "level_lp": level_lp}


def page_tables(draws: Draws, t: A.Tables | None = None) -> dict[str, Any]:
    """Per-draw tables for the browser (every draw, float32, base64), enough to recompute
    :func:`palsy.model.answer.answer` for any findings, context findings included, with the decision.

    ``logit_theta`` (draw, component, node): the node probabilities the answers use, on the logit
    scale (which float32 keeps precise near 0 and 1); ``level_paths`` each level's nodes as
    [node, 1 for success or 0], so log P(level | component) is the sum along its path.
    ``ctx_features`` (draw, feature) with ``ctx_incidence`` and ``ctx_fixed``
    (:func:`context_features`) and ``form_features`` with ``form_incidence`` (:func:`form_features`)
    give log P(cause) and log P(stratum, component | cause) over the 96 strata of the context
    findings (``strata``: each stratum's level indices, row-major over ``context``).

    Raises
    ------
    ValueError
        If the tables do not rebuild the answer's (the rate model changed shape).
    """
    t = t or A.Tables(draws)
    p = draws.params
    theta = p.get("theta_new", p["theta"])
    with np.errstate(divide="ignore"):
        logit_theta = np.log(theta) - np.log1p(-theta)
    feats, inc, fixed = context_features(draws)
    forms, form_inc = form_features(draws)
    kc = [int(c) for c in t.component_cause]
    got = rebuild(feats, inc, fixed, forms, form_inc, kc, logit_theta)
    for name, want in (("log_prior", t.log_prior), ("log_sk", t.log_sk), ("level_lp", t.level_lp)):
        if not np.allclose(got[name], want, rtol=1e-9, atol=1e-9):
            raise ValueError(f"page tables: {name} does not rebuild the answer's; update model/teach.py")
    paths = [[[int(k), 1] for k in np.flatnonzero(S.A_SUCCESS[j])] + [[int(k), 0] for k in np.flatnonzero(S.A_FAILURE[j])]
             for j in range(S.N_LEVELS)]
    return {
        "variant": draws.variant, "n": t.n, "causes": list(t.causes), "components": list(draws.components),
        "component_cause": kc, "levels": [list(key) for key in S.LEVEL_KEYS], "nodes": len(S.NODES),
        "level_paths": paths, "context": list(S.CONTEXT),
        "context_levels": [list(S.CONTEXT_LEVELS[c]) for c in S.CONTEXT],
        "strata": _strata_levels().tolist(), "default_method": t.default_method,
        "logit_theta": _b64(logit_theta), "ctx_features": _b64(feats), "ctx_incidence": inc,
        "ctx_fixed": [float(x) for x in fixed], "form_features": _b64(forms), "form_incidence": form_inc,
        "settings": {k: t.settings[k] for k in ("scope", "hallmarks", "not_modelled")},
        "evidence_hash": draws.meta.get("evidence_hash"), "version": draws.meta.get("version"),
    }


def decode(table: dict[str, Any], name: str) -> np.ndarray:
    """A page table's float32 array back as numpy (for tests), shaped from the variant's sizes."""
    raw = np.frombuffer(base64.b64decode(table[name]), dtype="<f4")
    n, k = table["n"], len(table["components"])
    shape = {"logit_theta": (n, k, table["nodes"]), "ctx_features": (n, len(table["ctx_incidence"])),
             "form_features": (n, len(table["form_incidence"]))}[name]
    return raw.reshape(shape)


def rebuild_page(table: dict[str, Any]) -> dict[str, np.ndarray]:
    """:func:`rebuild` from a page table as the browser reads it (float32 arrays decoded)."""
    return rebuild(decode(table, "ctx_features").astype(float), table["ctx_incidence"], np.array(table["ctx_fixed"]),
                   decode(table, "form_features").astype(float), table["form_incidence"], table["component_cause"],
                   decode(table, "logit_theta").astype(float))


def page_rules(settings: D.Settings, actions: Sequence[G.Action]) -> dict[str, Any]:
    """What the page needs to take the decision and list the actions as ``palsy posterior`` does:
    the harms and benefits of ``priors/decision.yaml`` and every action of ``priors/actions.yaml``
    with its validated trigger (evaluated in the browser with :func:`palsy.model.guidance.holds`'s grammar)."""
    return {
        "decision": {"benefit": settings.benefit, "harm": settings.harm, "test_harm": dict(settings.test_harm),
                     "action_text": dict(settings.action_text), "source": Path(settings.source).name,
                     "actions": list(D.ACTIONS)},
        "actions": [{"id": a.id, "text": a.text, "detail": a.detail, "when": a.when, "priority": a.priority,
                     "refs": list(a.refs)} for a in sorted(actions, key=lambda a: a.priority)],
        "page_one": G.PAGE_ONE, "tests": list(F.NEXT_TESTS), "max_lps": F.MAX_LPS,
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
    inf = t.causes.index(INF)
    others = np.arange(len(t.causes)) != inf
    base = A.probability_summary(t.log_prior[:, inf] - LK.NUMPY.logsumexp(np.where(others, t.log_prior, -np.inf),
                                                                          axis=-1), ci)
    ctx = context_of(TYPICAL)
    typ = log_prior(t, ctx) + cause_loglik(t, ctx, presentation_levels(TYPICAL))  # who the patient is and the palsy
    typical_prior = A.probability_summary(log_odds(typ, t.causes), ci)
    return {
        "variant": draws.variant, "draws": t.n, "ci": ci, "causes": list(t.causes),
        "evidence_hash": draws.meta.get("evidence_hash"), "version": draws.meta.get("version"),
        "base_rate": base, "base_causes": _means(softmax(t.log_prior), t.causes),
        "typical": {"id": TYPICAL.id, "description": TYPICAL.description, "context": ctx,
                    "prior": typical_prior, "prior_causes": _means(softmax(typ), t.causes)},
        "curves": posttest_curves(t, ci=ci),
        "fall_below": lps_to_fall_below(t, ci=ci),
        "where": {m: where_it_goes(t, method=m, ci=ci) for m in F.CSF_METHODS},
        "trees": {m: frequency_tree(t, pretest=tree_pretest, method=m, ci=ci) for m in F.CSF_METHODS},
        "repeat": ({m: repeat_lps(ts, method=m, ci=ci) for m in F.CSF_METHODS} if ts is not None else None),
        "repeat_variant": sub.variant if sub is not None else None,
        "form_shift": form_shift(ts, sub, ci=ci) if ts is not None else None,
        "findings": single_findings(t, ci=ci),
        "mri_after_lp": mri_after_negative_lp(ts if ts is not None else t, ci=ci),
        "walkthroughs": [walkthrough(p, draws, t, ci=ci) for p in patients],
        "not_modelled": list(t.settings["not_modelled"]),
    }
