"""What the rate model implies (docs/design.md §3, issue 8 item 2): numbers only.

Per lineage l, over its window W_l (therapy + 5 years, ``window_years`` of ``priors/rates.yaml``):

    mean rate of cause c over l's patient-time   r_c,l = sum_{s in l} P(s | l) lambda_c,s
    cumulative risk                                1 - exp(-W_l r_c,l)

with P(s | l) = pi_s / share(l). The *cumulative CNS/neural relapse* is the infiltration rate with
the factors named in ``targets.cumulative_relapse.exclude_factors`` taken out (P(facial palsy |
relapse)); the *cumulative leukaemic facial palsy* is the infiltration rate itself (its own
``exclude_factors``, normally none). The *share of each cause among new palsies* over all
patient-time is P(c) of :func:`palsy.model.likelihood.cause_strata`. Each is summarised over draws of the
rate block (prior draws: no likelihood informs it, so its posterior is its prior) and set beside its
target range. The check is on the whole prior, not only its mean: each row gives the prior probability
inside the cited range (``p_in_range``) and in each tail (``p_below``, ``p_above``); ``in_range`` says
whether the mean is inside (the calibration target the rate model was built to) and ``mass_ok`` whether
at least :data:`MIN_MASS_IN_RANGE` of the prior lies inside.

Each interaction of a cause (a multiplier of the strata where several context findings each have a level,
:mod:`palsy.model.rates`) has no target: its row gives the cause's mean rate over the interaction's strata
(weighted by their patient-time) and its share of the new palsies there, the numbers its reasoning argues
for, which no cumulative or overall share shows.

The strata are every combination of the schema's context findings (``circulating_blasts`` among them
since version 3, with its share given lineage and remission and its own multiplier of the
infiltration rate): each lineage's mean rate averages over all of them through P(s | l), so the blasts'
share and multiplier move the implied risks like any other context finding's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from palsy.model import likelihood as LK
from palsy.model import rates as R

from .common import CI

CUMULATIVE = ("cumulative_relapse", "cumulative_palsy")
#: A row's prior should put at least this much mass inside its cited range: a convention (the targets
#: are ranges of published estimates, so a prior centred inside them with more than half its mass
#: outside would contradict most of what it cites), labelled as such in the report.
MIN_MASS_IN_RANGE = 0.5


def rate_arrays(spec: R.RateSpec) -> R.RateArrays:
    """The rate model's arrays with one component per cause (the components do not matter here)."""
    return R.arrays(spec, spec.causes, spec.causes, ())


def _factor_names(spec: R.RateSpec, cause: str, names: list[str]) -> tuple[str, ...]:
    """The full names of ``cause``'s factors ``names`` (free or fixed); a name the cause's factors lack is refused."""
    full = tuple(f"{cause}: {n}" for n in names)
    factors = sorted(f.name for f in spec.factors if f.cause == cause and not R.factor_levels(f.name)[2])
    for n in full:
        if n not in factors:
            raise ValueError(f"rates.yaml targets: exclude_factors {n!r} is not a factor of {cause}; allowed: "
                             f"{', '.join(factors)}")
    return full


def cumulative(params: dict[str, np.ndarray], spec: R.RateSpec, r: R.RateArrays, cause: str,
               exclude: list[str] | tuple[str, ...] = ()) -> np.ndarray:
    """Per draw and lineage, 1 - exp(-window x mean rate of ``cause`` over the lineage's patient-time),
    with the named factors of ``cause`` (free or fixed) taken out (draw, lineage)."""
    log_pi = LK.log_shares(LK.NUMPY, params, r)  # (S, stratum)
    c = spec.causes.index(cause)
    log_rate = LK.log_rates(LK.NUMPY, params, r)[:, c]  # (S, stratum)
    names = _factor_names(spec, cause, list(exclude))
    free = tuple(n for n in names if n in r.lognormal_names or n in r.beta_names)
    if free:
        log_rate = log_rate - R.factor_log_rate(params, r, free)[:, c]
    for f in spec.factors:  # a fixed factor the file accepts in exclude_factors is taken out as a free one is
        if f.kind == "value" and f.name in names:
            log_rate = log_rate - math.log(f.params[0]) * f.strata
    lin = spec.structure.level_indicator("lineage")  # (stratum, lineage)
    joint = np.exp(log_pi + log_rate) @ lin  # sum over the lineage's strata of pi_s lambda_s
    mean_rate = joint / params["share_lineage"]
    return -np.expm1(-spec.window_years * mean_rate)


def cause_shares(params: dict[str, np.ndarray], r: R.RateArrays) -> np.ndarray:
    """Share of each cause among new facial palsies over all patient-time (draw, cause)."""
    log_prior, _ = LK.cause_strata(LK.NUMPY, params, r)
    return np.exp(log_prior)


def all_cause_rate(params: dict[str, np.ndarray], r: R.RateArrays) -> np.ndarray:
    """All-cause rate of a new facial palsy per patient-year over all patient-time (draw,)."""
    log_pi = LK.log_shares(LK.NUMPY, params, r)
    return np.exp(LK.NUMPY.logsumexp(log_pi[:, None, :] + LK.log_rates(LK.NUMPY, params, r), axis=-1)).sum(-1)


def interactions(params: dict[str, np.ndarray], spec: R.RateSpec, r: R.RateArrays, ci: float = CI) -> list[dict[str, Any]]:
    """Per interaction of the rate model, over its strata (their patient-time weighting each): its cause's mean rate
    per patient-year and the cause's share of new facial palsies there, each summarised over the draws.

    Returns
    -------
    list of dict
        ``factor`` (its name in the draws), ``cause``, ``levels`` (finding -> level), ``rate_per_py`` and
        ``share`` (mean, median, lower, upper).
    """
    log_pi = LK.log_shares(LK.NUMPY, params, r)  # (S, stratum)
    log_rate = LK.log_rates(LK.NUMPY, params, r)  # (S, cause, stratum)
    rows = []
    for f in spec.factors:
        cause, _, levels = R.factor_levels(f.name)
        if len(levels) < 2:
            continue
        inside = f.strata > 0
        lp = log_pi[:, inside]
        joint = lp[:, None, :] + log_rate[:, :, inside]  # (S, cause, strata of the interaction)
        log_c = LK.NUMPY.logsumexp(joint[:, spec.causes.index(cause)], axis=-1)
        log_all = LK.NUMPY.logsumexp(joint.reshape(len(joint), -1), axis=-1)
        rows.append({"factor": f.name, "cause": cause, "levels": levels,
                     "rate_per_py": _summary(np.exp(log_c - LK.NUMPY.logsumexp(lp, axis=-1)), ci),
                     "share": _summary(np.exp(log_c - log_all), ci)})
    return rows


def _summary(x: np.ndarray, ci: float) -> dict[str, float]:
    lo, med, hi = np.quantile(x, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return {"mean": float(x.mean()), "median": float(med), "lower": float(lo), "upper": float(hi)}


def _row(x: np.ndarray, target: Any, ci: float, **keys: Any) -> dict[str, Any]:
    row = {**keys, **_summary(x, ci)}
    rng = target.get("range") if isinstance(target, dict) else None
    if rng is None:
        row.update({"target": None, "in_range": None, "p_in_range": None, "p_below": None, "p_above": None,
                    "mass_ok": None, "reasoning": None, "ref": None})
    else:
        lo, hi = float(rng[0]), float(rng[1])
        p_below, p_above = float(np.mean(x < lo)), float(np.mean(x > hi))
        row.update({"target": [lo, hi],
                    "in_range": bool(lo <= row["mean"] <= hi),
                    "p_in_range": 1.0 - p_below - p_above, "p_below": p_below, "p_above": p_above,
                    "mass_ok": bool(1.0 - p_below - p_above >= MIN_MASS_IN_RANGE),
                    "reasoning": " ".join(str(target.get("reasoning") or "").split()) or None,
                    "ref": [target["ref"]] if isinstance(target.get("ref"), str) else (target.get("ref") or [])})
    return row


def implied(spec: R.RateSpec, params: dict[str, np.ndarray] | None = None, *, n: int = 20_000,
            seed: int = 20261126, ci: float = CI) -> dict[str, Any]:
    """The rate model's implied quantities beside their targets.

    Parameters
    ----------
    spec : RateSpec
        The validated ``rates.yaml`` (``evidence.rates``): windows and targets.
    params : dict, optional
        Draws of the rate block (e.g. a fitted posterior's, which are prior draws). By default ``n``
        fresh prior draws (seeded: deterministic).

    Returns
    -------
    dict
        ``cumulative``: rows (quantity, lineage, cause, window_years, excluded factors, mean, median,
        interval, target, in_range, p_in_range, p_below, p_above, mass_ok); ``shares``: rows (cause,
        ...); ``interactions``: rows of :func:`interactions` (no target); ``all_cause_per_1000py``;
        ``draws``: how many; ``all_in_range``: every row with a target has its mean inside it;
        ``all_mass_ok``: every such row has at least ``MIN_MASS_IN_RANGE`` of its prior inside;
        ``out_of_range`` and ``low_mass``: the rows that fail either.
    """
    r = rate_arrays(spec)
    if params is None:
        params = R.sample_prior(r, n, np.random.default_rng(seed))
    targets = spec.targets
    rows = []
    for quantity in CUMULATIVE:
        block = targets.get(quantity) or {}
        cause = block.get("cause", "infiltration")
        exclude = list(block.get("exclude_factors") or [])
        cum = cumulative(params, spec, r, cause, exclude)
        for j, lin in enumerate(spec.structure.levels_of("lineage")):
            rows.append(_row(cum[:, j], block.get(lin), ci, quantity=quantity, lineage=lin, cause=cause,
                             window_years=float(spec.window_years[j]), excluded=exclude))
    shares = cause_shares(params, r)
    share_rows = [_row(shares[:, j], (targets.get("cause_share") or {}).get(c), ci, cause=c)
                  for j, c in enumerate(spec.causes)]
    checked = [x for x in rows + share_rows if x["in_range"] is not None]
    return {
        "cumulative": rows, "shares": share_rows, "interactions": interactions(params, spec, r, ci),
        "all_cause_per_1000py": _summary(1000 * all_cause_rate(params, r), ci),
        "draws": int(params["share_lineage"].shape[0]),
        "all_in_range": bool(all(x["in_range"] for x in checked)),
        "out_of_range": [x.get("lineage", x["cause"]) + f" {x.get('quantity', 'cause_share')}"
                         for x in checked if not x["in_range"]],
        "min_mass_in_range": MIN_MASS_IN_RANGE,
        "all_mass_ok": bool(all(x["mass_ok"] for x in checked)),
        "low_mass": [x.get("lineage", x["cause"]) + f" {x.get('quantity', 'cause_share')}"
                     for x in checked if not x["mass_ok"]],
    }


def format_table(res: dict[str, Any]) -> str:
    """The implied quantities as plain text (the test prints it)."""
    def pct(x: float) -> str:
        return f"{100 * x:.3g}%"

    lines = [f"Implied by the rate model ({res['draws']} draws; mean, median, 90% interval; target range):"]
    for row in res["cumulative"]:
        tgt = (f"[{pct(row['target'][0])}, {pct(row['target'][1])}] {'OK' if row['in_range'] else 'OUT'}; "
               f"prior inside {pct(row['p_in_range'])} (below {pct(row['p_below'])}, above {pct(row['p_above'])})") \
            if row["target"] else "no target"
        what = "CNS/neural relapse" if row["quantity"] == "cumulative_relapse" else "leukaemic facial palsy"
        lines.append(f"  {row['lineage']:6} {what:24} over {row['window_years']:g} y: mean {pct(row['mean'])}, "
                     f"median {pct(row['median'])}, 90% {pct(row['lower'])}-{pct(row['upper'])}  target {tgt}")
    lines.append("  Share of each cause among new facial palsies (all patient-time):")
    for row in res["shares"]:
        tgt = (f"[{pct(row['target'][0])}, {pct(row['target'][1])}] {'OK' if row['in_range'] else 'OUT'}; "
               f"prior inside {pct(row['p_in_range'])}") if row["target"] else "no target"
        lines.append(f"    {row['cause']:15} mean {pct(row['mean'])}, 90% {pct(row['lower'])}-{pct(row['upper'])}"
                     f"  target {tgt}")
    if res.get("interactions"):
        lines.append("  Each interaction's cause over the interaction's strata (rate per patient-year; share of new palsies):")
        for row in res["interactions"]:
            rate, share = row["rate_per_py"], row["share"]
            lines.append(f"    {row['factor']}: rate mean {rate['mean']:.3g}, median {rate['median']:.3g}, "
                         f"90% {rate['lower']:.3g}-{rate['upper']:.3g} per patient-year; share mean {pct(share['mean'])}, "
                         f"90% {pct(share['lower'])}-{pct(share['upper'])}")
    a = res["all_cause_per_1000py"]
    lines.append(f"  All-cause new facial palsy per 1,000 patient-years: mean {a['mean']:.3g}, "
                 f"90% {a['lower']:.3g}-{a['upper']:.3g}")
    return "\n".join(lines)
