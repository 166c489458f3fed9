"""Sensitivity of patients' answers, P(infiltration | findings) (the mean of :func:`palsy.model.answer.answer`),
to ``w_case``, to the clinician's pretest probability, to each evidence source and to each expert judgment
moved to plausible alternatives (issue 19 item 2: sensitivity that cannot mislead).

Every change is a difference of means with its own Monte Carlo error:

- *w_case*: exact refits (the compiled model reused, the cases' weights its ``pm.Data``), or PSIS;
- *a reference* (its cohort entries and the library cases citing it) removed: PSIS where reliable
  (Pareto k < 0.7), otherwise an exact refit with their weights set to 0;
- *an expert judgment* of ``cohorts.yaml`` (a Beta on one or several free node parameters) moved to the
  alternatives a panel would call plausible, with its concentration a + b kept: its mean x2 and /2 on
  the odds scale, and its mean at its own 5% and at its own 95% point. Each by an exact refit through the
  model's ``prior_a``/``prior_b`` data (PSIS, exact in expectation, where a run asks for PSIS and it is
  reliable). The flat Beta(1, 1) swap (the judgment removed) is kept as one row labelled *extreme*:
  it says how much the judgment carries, not what a plausible other judgment would give, and it never
  enters the tornado;
- *a rate factor* of ``rates.yaml`` (log-normal or Beta, no likelihood) moved the same way (median x2 and
  /2, odds x2 and /2 for a Beta; median at its own 5% and 95% points; spread, concentration and any lower
  bound kept): exact, by mapping each draw of the factor through the alternative's quantile function
  at the same probability (u = F(x), x' = F'^-1(u)), every other draw unchanged, so the change is a
  difference of like with like and nothing is refitted.

Refit changes are taken against a baseline refit at the same reduced settings and the same rate-block
draws; their Monte Carlo error is sqrt(MCSE_alt^2 + MCSE_base^2), each MCSE the sd of P over sqrt(its
ESS). A PSIS change's error is the delta method's over the draws' influence (times the draws'
autocorrelation factor n / ESS); an exact rate change's is the sd of the per-draw differences over
sqrt(their ESS). A run with ``quick`` refits only some rows; an expert-judgment row that PSIS cannot
give reliably is then *dropped* (not shown as a number), and rate factors are screened (the few that
explain most of each patient's variance by themselves); how many rows each rule dropped, and why, is in
the result (``dropped``) and on the command line. The refits run through a
:class:`~palsy.model.criticism.heavy.Runner` (serially, or as Dask tasks).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import findings as F
from palsy.model.draws import Draws
from palsy.model.evidence import Evidence
from palsy.model.prior import beta_lpdf
from palsy.model.psis import psis_weights
from palsy.model.rates import factor_levels
from palsy.model.rests_on import ess

from . import heavy
from .common import draws_from_params, loglik_terms

K_THRESHOLD = 0.7
QUICK_RATE_FACTORS = 6  # rate factors moved in the quick subset (those that explain the most, per patient)
Z95 = 1.6448536269514722  # the standard normal's 95% point
MIN_PSEUDO = 0.5  # an alternative Beta's pseudo-counts are kept at least this (a sampler-safe, sayable prior)
ALTERNATIVES = ("odds x2", "odds /2", "at its 5% point", "at its 95% point")
EXTREME = "extreme: flat Beta(1, 1), the judgment removed"


def load_patients(folder: str | Path) -> list[F.Patient]:
    """The patients of ``folder``/*.yaml (the source patients)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for path in sorted(Path(folder).glob("*.yaml")):
        out.append(F.parse_patient(yaml.load(path.read_text(encoding="utf-8"), Loader=loader), str(path)))
    return out


def load_vignettes(folder: str | Path) -> list[F.Patient]:
    """The hallmark vignettes of ``folder``/*.yaml (each file's ``patient`` key)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for path in sorted(Path(folder).glob("*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        if isinstance(doc, dict) and "patient" in doc:
            out.append(F.parse_patient(doc["patient"], str(path)))
    return out


@dataclasses.dataclass(frozen=True)
class Source:
    """An evidence source: cohort entries and cases of one reference, or one expert judgment (its Beta
    ``prior`` on the free parameters ``targets``)."""

    name: str
    kind: str  # "reference" or "expert_judgment"
    entries: tuple[int, ...] = ()
    cases: tuple[int, ...] = ()
    expert: tuple[tuple[int, float, float], ...] = ()  # (free parameter, a, b): the base prior replacing it
    cause: str | None = None
    prior: tuple[float, float] | None = None  # an expert judgment's own Beta (a, b)


def sources(evidence: Evidence, d: D.Design) -> list[Source]:
    """Every source whose removal can be computed: per reference key, its cohort count entries and
    the cases citing it; each expert-judgment Beta (replaced by the base prior) on its own."""
    out = []
    keys: dict[str, dict[str, list[int]]] = {}
    by_id = {e.id: e for e in evidence.entries}
    for j, eid in enumerate(d.entry_ids):
        for r in by_id[eid].refs:
            keys.setdefault(r, {"e": [], "c": []})["e"].append(j)
    for i, c in enumerate(evidence.cases):
        keys.setdefault(c.ref, {"e": [], "c": []})["c"].append(i)
    for r, v in sorted(keys.items()):
        out.append(Source(r, "reference", tuple(v["e"]), tuple(v["c"])))
    base = evidence.settings["base_prior"]
    v = d.variant
    st = evidence.structure
    free_index = {f: i for i, f in enumerate(st.free_parameters(v.components, v.infiltration_components))}
    won: dict[str, list[int]] = {}  # each judgment's parameters: those whose prior it sets (design.judgments)
    for t, e in D.judgments(evidence, st, v).items():
        won.setdefault(e.id, []).append(free_index[t])
    for e in evidence.entries:
        if e.kind != "expert_judgment" or e.id not in won:
            continue  # not a judgment, or one that sets no parameter of this variant
        targets = sorted(won[e.id])
        out.append(Source(f"expert judgment {e.id}", "expert_judgment", cause=e.cause,
                          expert=tuple((i, float(base["a"]), float(base["b"])) for i in targets),
                          prior=tuple(float(x) for x in e.beta)))
    return out


def source_log_ratio(src: Source, params: dict[str, np.ndarray], d: D.Design,
                     terms: dict[str, np.ndarray] | None = None,
                     beta: tuple[float, float] | None = None) -> np.ndarray:
    """Log importance ratio (per draw) of the posterior without ``src`` (an expert judgment: with its
    Beta replaced by the base prior, or by ``beta``) to the fitted posterior."""
    t = terms or loglik_terms(params, d)
    lr = -(t["entries"][:, list(src.entries)].sum(-1) + t["cases_weighted"][:, list(src.cases)].sum(-1))
    for i, a, b in src.expert:
        a, b = beta if beta is not None else (a, b)
        x = params["theta_free"][:, i]
        lr = lr + beta_lpdf(x, a, b) - beta_lpdf(x, d.prior_a[i], d.prior_b[i])
    return lr


def beta_alternatives(a: float, b: float) -> dict[str, tuple[float, float]]:
    """A Beta judgment's plausible alternatives, its concentration a + b kept: the mean's odds x2 and /2,
    and the mean at the judgment's own 5% and 95% points (pseudo-counts at least :data:`MIN_PSEUDO`)."""
    from scipy.stats import beta as B

    c, m = a + b, a / (a + b)
    means = {"odds x2": 2 * m / (1 + m), "odds /2": m / (2 - m),
             "at its 5% point": float(B.ppf(0.05, a, b)), "at its 95% point": float(B.ppf(0.95, a, b))}
    return {k: (max(mm * c, MIN_PSEUDO), max((1 - mm) * c, MIN_PSEUDO)) for k, mm in means.items()}


def rate_alternatives(draws: np.ndarray, family: str, params: tuple[float, ...]) -> dict[str, np.ndarray]:
    """A rate factor's draws under each alternative, mapped through its quantile function at each draw's
    own probability (exact, common random numbers). ``params``: (mu, sigma, lower) of a log-normal or
    (a, b) of a Beta."""
    from scipy.special import betainc, betaincinv, ndtr, ndtri

    x = np.asarray(draws, float)
    out = {}
    if family == "lognormal":
        mu, sigma, lower = params
        shifts = {"odds x2": math.log(2), "odds /2": -math.log(2), "at its 5% point": -Z95 * sigma,
                  "at its 95% point": Z95 * sigma}
        for k, dmu in shifts.items():
            if lower > 0:  # truncated below: the same probability under the shifted truncated law
                a0 = ndtr((math.log(lower) - mu) / sigma)
                u = (ndtr((np.log(x) - mu) / sigma) - a0) / (1 - a0)
                a1 = ndtr((math.log(lower) - mu - dmu) / sigma)
                z = ndtri(np.clip(a1 + u * (1 - a1), 1e-300, 1 - 1e-16))
                out[k] = np.maximum(np.exp(mu + dmu + sigma * z), lower)
            else:
                out[k] = x * math.exp(dmu)
        return out
    a, b = params
    u = betainc(a, b, np.clip(x, 1e-300, 1 - 1e-16))
    for k, (a2, b2) in beta_alternatives(a, b).items():
        out[k] = np.clip(betaincinv(a2, b2, u), 1e-12, 1 - 1e-12)
    return out


_TABLES: dict[int, Any] = {}


def tables_of(draws: Draws):  # noqa: ANN201 (answer.Tables, imported lazily)
    """The answer's per-draw tables of ``draws``, computed once per draws object."""
    from palsy.model.answer import Tables

    key = id(draws)
    if key not in _TABLES or _TABLES[key][0] is not draws:
        if len(_TABLES) > 8:
            _TABLES.clear()
        _TABLES[key] = (draws, Tables(draws))
    return _TABLES[key][1]


def p_infiltration(patient: F.Patient, draws: Draws, pretest: float | None = None) -> np.ndarray:
    """P(infiltration | findings) per draw, as :func:`palsy.model.answer.answer` gives it (no leave-one-out:
    the caller applies the weights).

    Without ``pretest`` this is the answer's own value function on the full set of findings
    (``Game.value``), without the Shapley values and next tests the full answer also computes (a test
    checks it equals ``answer(...).posterior_log_odds``); with ``pretest``, the full answer.
    """
    from palsy.model import answer as A

    t = tables_of(draws)
    if pretest is not None:
        ans = A.answer(patient, draws, pretest=pretest, leave_out=False, tables=t, shapley=False, rests_on=False)
        return A.expit(ans.posterior_log_odds)
    game = full_game(patient, t)
    return A.expit(game.value(np.ones((1, game.n_players), bool))[0])


def full_game(patient: F.Patient, t):
    """The answer's Game for every finding known, built for that one subset: the context findings are not
    players but the known context (one context term, not one per subset of them); its value on every
    player is the answer's log odds."""
    from palsy.model import answer as A
    from palsy.model import game as G

    plist = G.players(patient, context=False)
    ctx = {name: patient.level(name) for name in t.schema.context}
    return G.Game(t, plist, patient, A.active_causes(t.causes, None), t.log_prior, np.zeros_like(t.level_lp[:, :, 0]),
                  known_context=ctx)


def _own_case_ratio(patient: F.Patient, draws: Draws) -> np.ndarray:
    """The log ratio that leaves the patient's own library case out (zeros if it is not one)."""
    idx = draws.case_index(patient.id)
    return np.zeros(draws.n) if idx is None else -draws.case_loglik[idx]


def _chains(draws: Draws) -> int:
    return int((draws.meta.get("settings") or {}).get("chains", 1))


def _norm(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    """PSIS weights (normalised) and k-hat; equal weights and k 0 when the ratio is constant (exact)."""
    if np.ptp(log_ratio) < 1e-12:
        return np.full(len(log_ratio), 1.0 / len(log_ratio)), 0.0
    w, k = psis_weights(log_ratio)
    return w / w.sum(), (float(k) if np.isfinite(k) else 99.0)


def weighted_mean(p: np.ndarray, log_ratio: np.ndarray) -> tuple[float, float]:
    """Mean of ``p`` under PSIS weights for ``log_ratio`` and k-hat (0 when the ratio is constant: exact)."""
    w, k = _norm(log_ratio)
    return float(w @ p), k


def _tau(p: np.ndarray, chains: int) -> float:
    """The draws' autocorrelation variance factor n / ESS of ``p``."""
    return len(p) / max(ess(p, chains), 1.0) if np.ptp(p) > 0 else 1.0


def mean_mcse(p: np.ndarray, own: np.ndarray, chains: int) -> tuple[float, float]:
    """Mean of ``p`` (with the patient's own case left out by ``own``) and its Monte Carlo standard error:
    the weighted sd over sqrt(ESS), the ESS the draws' (autocorrelation) times the weights' efficiency."""
    w, _ = _norm(own)
    m = float(w @ p)
    return m, math.sqrt(float(np.sum(w ** 2 * (p - m) ** 2)) * _tau(p, chains))


def psis_delta(p: np.ndarray, own: np.ndarray, log_ratio: np.ndarray, chains: int,
               tau: float | None = None, weights: tuple[np.ndarray, float] | None = None) -> dict[str, float]:
    """The change of the (own-case-left-out) mean of ``p`` under PSIS for ``log_ratio``, its k-hat and
    Monte Carlo error (the delta method over each draw's influence on the difference of the two
    self-normalised means, times the autocorrelation factor n / ESS, ``tau`` when already known;
    ``weights``: the PSIS weights and k of ``own + log_ratio`` when already known)."""
    w0, _ = _norm(own)
    w1, k = weights if weights is not None else _norm(own + log_ratio)
    m0, m1 = float(w0 @ p), float(w1 @ p)
    influence = w1 * (p - m1) - w0 * (p - m0)
    tau = _tau(p, chains) if tau is None else tau
    return {"delta": m1 - m0, "mean": m1, "pareto_k": k, "mc_error": math.sqrt(float(np.sum(influence ** 2)) * tau)}


def exact_delta(p0: np.ndarray, p1: np.ndarray, own: np.ndarray, chains: int) -> dict[str, float]:
    """The change of the mean between two sets of answers on the same draws (common random numbers), its
    Monte Carlo error from the per-draw differences."""
    w, _ = _norm(own)
    diff = p1 - p0
    dm = float(w @ diff)
    tau = _tau(diff, chains)
    return {"delta": dm, "mc_error": math.sqrt(float(np.sum(w ** 2 * (diff - dm) ** 2)) * tau)}


def rate_factor_specs(d: D.Design) -> list[tuple[str, str, int, tuple[float, ...]]]:
    """Each free factor of the rate model: (name, family, column in its draws, prior parameters)."""
    r = d.rates
    out = [(n, "lognormal", i, (float(mu), float(s), float(lo)))
           for i, (n, mu, s, lo) in enumerate(zip(r.lognormal_names, r.lognormal_mu, r.lognormal_sigma,
                                                   r.lognormal_lower, strict=True))]
    out += [(n, "beta", i, (float(a), float(b))) for i, (n, a, b) in enumerate(zip(r.beta_names, r.beta_a, r.beta_b,
                                                                                    strict=True))]
    return out


def with_rate_column(draws: Draws, family: str, column: int, values: np.ndarray) -> Draws:
    """``draws`` with one free rate factor's draws replaced by ``values`` (everything else unchanged)."""
    key = "rate_lognormal" if family == "lognormal" else "rate_beta"
    a = draws.params[key].copy()
    a[:, column] = values
    return Draws({**draws.params, key: a}, draws.meta, draws.case_loglik, draws.rates)


def _screen_rate_factors(draws: Draws, d: D.Design, base_p: dict[str, np.ndarray], m: int) -> list[int]:
    """The ``m`` rate factors that explain most of any patient's variance of P by themselves (Cov^2/Var
    of log factor), in ``rate_factor_specs`` order."""
    specs = rate_factor_specs(d)
    x = np.stack([np.log(draws.params["rate_lognormal" if f == "lognormal" else "rate_beta"][:, c])
                  for _, f, c, _ in specs], axis=1)
    xm = x - x.mean(0)
    score = np.zeros(len(specs))
    for p in base_p.values():
        pm = p - p.mean()
        var = float(pm @ pm)
        if var <= 0:
            continue
        cov = pm @ xm
        score = np.maximum(score, cov ** 2 / (xm * xm).sum(0).clip(1e-300) / var)
    keep = set(np.argsort(-score)[:m].tolist())
    return [i for i in range(len(specs)) if i in keep]


def answer_sensitivity(evidence: Evidence, variant: str, draws: Draws, patients: Sequence[F.Patient], *,
                       w_values: Sequence[float] = (0.25, 0.5, 1.0),
                       pretests: Sequence[float] = (0.01, 0.05, 0.2, 0.5),
                       refit: bool = True, refit_settings=None, k_threshold: float = K_THRESHOLD,
                       top: int = 8, quick: tuple[int, int] | None = None, rate_factors: bool = True,
                       runner: heavy.Runner | None = None) -> dict[str, Any]:
    """How each patient's P(infiltration | findings) (mean) moves with ``w_case``, the pretest, each
    reference and each expert judgment moved to its plausible alternatives (see the module docstring).

    Parameters
    ----------
    draws : Draws
        The fitted posterior of ``variant`` on ``evidence`` (the baseline answers).
    refit : bool
        Refit (reusing the compiled model, reduced ``refit_settings``). If False every change is by PSIS
        (judgments' alternatives: exact in expectation) and unreliable rows are dropped and counted.
    top : int
        Rows kept per patient in the tornado (largest |change| first; reliable, not extreme).
    quick : (int, int), optional
        Refit only this many expert judgments (their four alternatives and the extreme row) and
        references, those PSIS says move the answers most; every other row by PSIS, dropped where
        unreliable; rate factors screened to :data:`QUICK_RATE_FACTORS`. Without it every judgment's
        alternatives are refitted and every reference whose PSIS removal is unreliable.
    rate_factors : bool
        Also each free factor of the rate model moved to its alternatives (exact, no refit).
    runner : heavy.Runner, optional
        Where the refits run (default: serially in this process).

    Returns
    -------
    dict
        ``patients``: per patient id its ``baseline`` mean P(infiltration) and its ``mc_error``, ``prior``,
        ``w_case`` rows, ``pretest`` rows, ``sources`` rows (``delta`` = alternative minus baseline,
        ``mc_error``, ``method``, ``pareto_k``, ``reliable``, ``alternative``, ``extreme``) sorted by
        |delta|, ``tornado`` (the ``top`` reliable plausible ones), ``dropped`` ({reason: rows});
        ``settings``, ``refits``, ``runner``.
    """
    from palsy.model import cache as C
    from palsy.model.answer import answer, expit

    # refits compare posteriors within their Monte Carlo error and apply no ESS bar: every transition kept
    rs = refit_settings or C.Settings(draws=500, tune=500, chains=2, thin=1)
    run = runner or heavy.Runner(heavy.SERIAL)
    d = D.build(evidence, evidence.variant(variant))
    if len(d.case_ids) != draws.case_loglik.shape[0]:
        raise ValueError("draws do not match the evidence's case library")
    chains = _chains(draws)
    terms = loglik_terms(draws.params, d)
    srcs = sources(evidence, d)
    own = {p.id: _own_case_ratio(p, draws) for p in patients}
    res: dict[str, Any] = {p.id: {"description": p.description, "w_case": [], "pretest": [], "sources": [],
                                  "dropped": {}} for p in patients}
    base_p = {}
    for p in patients:
        ans = answer(p, draws, tables=tables_of(draws), shapley=False)
        base_p[p.id] = expit(ans.posterior_log_odds)  # per draw; the weights below leave a library case out
        res[p.id]["baseline"], res[p.id]["mc_error"] = mean_mcse(base_p[p.id], own[p.id], chains)
        res[p.id]["answer"] = ans.probability["mean"]  # the answer as palsy posterior gives it
        res[p.id]["prior"] = ans.prior_probability["mean"]
        res[p.id]["leading_cause"] = ans.leading_cause
        for pt in pretests:
            res[p.id]["pretest"].append({"pretest": pt, "mean": weighted_mean(p_infiltration(p, draws, pt), own[p.id])[0]})

    def drop(pid: str, reason: str) -> None:
        res[pid]["dropped"][reason] = res[pid]["dropped"].get(reason, 0) + 1

    # -- PSIS first: every row, so that the quick run can choose what to refit
    taus = {pid: _tau(p, chains) for pid, p in base_p.items()}
    psis: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    jud = [s for s in srcs if s.kind == "expert_judgment"]
    refs = [s for s in srcs if s.kind == "reference"]
    for src in refs:
        lr = source_log_ratio(src, draws.params, d, terms)
        for p in patients:
            idx = draws.case_index(p.id)
            extra = own[p.id] if idx is not None and idx in src.cases else 0.0  # its own case is the source's
            psis.setdefault((src.name, "removed"), {})[p.id] = psis_delta(base_p[p.id], own[p.id], lr + extra, chains,
                                                                          taus[p.id])
    for src in jud:
        alts = {**beta_alternatives(*src.prior), EXTREME: src.expert[0][1:]}
        for alt, ab in alts.items():
            lr = source_log_ratio(src, draws.params, d, terms, beta=ab)
            shared = _norm(lr)  # the weights of every patient who is not a library case
            for p in patients:
                psis.setdefault((src.name, alt), {})[p.id] = psis_delta(
                    base_p[p.id], own[p.id], lr, chains, taus[p.id], None if np.ptp(own[p.id]) > 0 else shared)
    size = {key: max(abs(r["delta"]) for r in rows.values()) for key, rows in psis.items()}

    # -- what to refit
    base_data = d.data()
    plan: dict[str, dict[str, np.ndarray] | None] = {}
    if refit:
        if quick is None:
            chosen_j = {s.name for s in jud}
            chosen_r = {s.name for s in refs if any(r["pareto_k"] >= k_threshold for r in psis[(s.name, "removed")].values())}
        else:
            rank_j = sorted(jud, key=lambda s: -max(size[(s.name, a)] for a in (*ALTERNATIVES, EXTREME)))
            rank_r = sorted(refs, key=lambda s: -size[(s.name, "removed")])
            chosen_j = {s.name for s in rank_j[:quick[0]]}
            chosen_r = {s.name for s in rank_r[:quick[1]]}
        for src in srcs:
            if src.name in chosen_j:
                for alt, ab in {**beta_alternatives(*src.prior), EXTREME: src.expert[0][1:]}.items():
                    data = {k: np.array(v, float, copy=True) for k, v in base_data.items()}
                    for i, _, _ in src.expert:
                        data["prior_a"][i], data["prior_b"][i] = ab
                    plan[f"{src.name} | {alt}"] = data
            elif src.name in chosen_r:
                data = {k: np.array(v, float, copy=True) for k, v in base_data.items()}
                data["entry_w"][list(src.entries)] = 0.0
                data["case_w"][list(src.cases)] = 0.0
                plan[f"{src.name} | removed"] = data
        if quick is None:
            for w in w_values:
                plan[f"w_case={w}"] = {"case_w": np.full(len(d.case_ids), float(w))}
        if plan:
            plan = {"baseline": None, **plan}
    keys = list(plan)
    outs = run.map(heavy.refit, [((evidence, variant, rs, plan[k]), {}) for k in keys]) if keys else []
    refits: dict[str, Draws] = {}
    for k, out in zip(keys, outs, strict=True):
        data = plan[k] or {}
        dd = dataclasses.replace(d, **{n: data[n] for n in ("entry_w", "prior_a", "prior_b") if n in data})
        if "case_w" in data and np.all(data["case_w"] == data["case_w"][0]) and len(data["case_w"]):
            dd = dataclasses.replace(dd, w_case=float(data["case_w"][0]))
        refits[k] = draws_from_params(out["params"], out["diagnostics"], dd, evidence, rs, like=draws)

    refit_stats: dict[tuple[str, str], tuple[float, float]] = {}

    def refit_mean(key: str, p: F.Patient, drop_own: bool = True) -> tuple[float, float]:
        if (key, p.id) not in refit_stats:
            dr = refits[key]
            pp = p_infiltration(p, dr)
            refit_stats[(key, p.id)] = mean_mcse(pp, _own_case_ratio(p, dr) if drop_own else np.zeros(dr.n), _chains(dr))
        return refit_stats[(key, p.id)]

    # -- w_case
    for w in w_values:
        for p in patients:
            if f"w_case={w}" in refits:
                (m1, e1), (m0, e0) = refit_mean(f"w_case={w}", p), refit_mean("baseline", p)
                delta = m1 - m0
                res[p.id]["w_case"].append({"w_case": w, "mean": res[p.id]["baseline"] + delta, "delta": delta,
                                            "mc_error": math.hypot(e0, e1), "method": "refit", "pareto_k": None,
                                            "reliable": True})
            else:
                lr = (w - d.w_case) * terms["cases"].sum(-1) + own[p.id] * (w / d.w_case - 1)
                r = psis_delta(base_p[p.id], own[p.id], lr, chains, taus[p.id])
                res[p.id]["w_case"].append({"w_case": w, "mean": r["mean"], "delta": r["delta"], "mc_error": r["mc_error"],
                                            "method": "PSIS", "pareto_k": r["pareto_k"],
                                            "reliable": bool(r["pareto_k"] < k_threshold)})

    # -- references and judgments
    for (name, alt), rows in psis.items():
        src = next(s for s in srcs if s.name == name)
        key = f"{name} | {alt}"
        for p in patients:
            r = rows[p.id]
            row = {"source": name, "kind": src.kind, "cause": src.cause, "alternative": alt,
                   "extreme": alt == EXTREME, "entries": len(src.entries), "cases": len(src.cases),
                   "psis_delta": r["delta"], "pareto_k": r["pareto_k"]}
            if src.kind == "expert_judgment":
                a, b = src.prior
                row["judgment"] = [a, b]
                row["alternative_beta"] = list(({**beta_alternatives(a, b), EXTREME: src.expert[0][1:]})[alt])
            if key in refits:
                idx = draws.case_index(p.id)
                drop_own = not (idx is not None and idx in src.cases)
                (m1, e1), (m0, e0) = refit_mean(key, p, drop_own), refit_mean("baseline", p)
                row.update({"delta": m1 - m0, "mean": res[p.id]["baseline"] + m1 - m0, "mc_error": math.hypot(e0, e1),
                            "method": "refit", "reliable": True})
            else:
                reliable = bool(r["pareto_k"] < k_threshold)
                if not reliable:
                    if src.kind == "expert_judgment":  # a number that cannot be trusted is not shown
                        drop(p.id, f"expert-judgment alternative not refitted and PSIS unreliable (k >= {k_threshold})")
                        continue
                row.update({"delta": r["delta"], "mean": r["mean"], "mc_error": r["mc_error"], "method": "PSIS",
                            "reliable": reliable})
            res[p.id]["sources"].append(row)

    # -- rate factors: exact
    if rate_factors:
        specs = rate_factor_specs(d)
        chosen = range(len(specs))
        if quick is not None:
            chosen = _screen_rate_factors(draws, d, base_p, QUICK_RATE_FACTORS)
            for p in patients:
                for _ in range((len(specs) - len(chosen)) * len(ALTERNATIVES)):
                    drop(p.id, f"rate factor screened out by --quick (only the {QUICK_RATE_FACTORS} that explain most "
                               "of a patient's variance alone are moved)")
        from palsy.model.rests_on import Evaluator
        from palsy.model.summaries import expit

        key_param = {"lognormal": "rate_lognormal", "beta": "rate_beta"}
        evaluators = {p.id: Evaluator(full_game(p, tables_of(draws))) for p in patients}
        for i in chosen:
            name, family, col, prm = specs[i]
            x = draws.params[key_param[family]][:, col]
            for alt, values in rate_alternatives(x, family, prm).items():
                alt_params = with_rate_column(draws, family, col, values).params
                for p in patients:
                    p_alt = expit(evaluators[p.id].log_odds(alt_params))
                    r = exact_delta(base_p[p.id], p_alt, own[p.id], chains)
                    res[p.id]["sources"].append(
                        {"source": f"rate factor {name}", "kind": "rate_factor", "cause": factor_levels(name)[0],
                         "alternative": alt if family == "beta" or not alt.startswith("odds")
                         else alt.replace("odds", "median"), "extreme": False,
                         "mean": res[p.id]["baseline"] + r["delta"], "delta": r["delta"], "mc_error": r["mc_error"],
                         "method": "exact (the factor's draws mapped)", "pareto_k": None, "reliable": True,
                         "entries": 0, "cases": 0})
    for p in patients:
        rows = sorted(res[p.id]["sources"], key=lambda r: -abs(r["delta"]) if r["reliable"] else 0.0)
        res[p.id]["sources"] = rows
        res[p.id]["tornado"] = [r for r in rows if r["reliable"] and not r["extreme"]][:top]
        res[p.id]["extreme"] = [r for r in rows if r["extreme"]]
        res[p.id]["unreliable"] = sum(not r["reliable"] for r in rows)
        res[p.id]["dropped_total"] = sum(res[p.id]["dropped"].values())
        res[p.id]["power_scaling"] = power_scaling(base_p[p.id], own[p.id], draws.params, d, terms)
    return {"variant": variant, "patients": res, "refit": refit, "quick": list(quick) if quick else None,
            "settings": dataclasses.asdict(rs) if refit else None, "refits": len(refits),
            "runner": run.describe, "k_threshold": k_threshold, "sources": len(srcs),
            "alternatives": list(ALTERNATIVES), "extreme": EXTREME}


def power_scaling(p: np.ndarray, own: np.ndarray, params: dict[str, np.ndarray], d: D.Design,
                  terms: dict[str, np.ndarray], alphas: Sequence[float] = (0.8, 1.25),
                  k_threshold: float = K_THRESHOLD) -> dict[str, Any]:
    """Power-scaling sensitivity of the patient's mean P(infiltration) itself.

    Scaling a component (the sampled parameters' prior, or the whole weighted likelihood) by a power
    alpha reweights the draws by alpha-1 times its log density; d E[P] / d alpha at alpha = 1 is the
    covariance of P with that log density (exact, under the draws' weights). Beside it, E[P] at each
    alpha by PSIS with its Pareto k. (The rate block is drawn from its prior and has no likelihood: it
    is not power-scaled here; its factors are moved to their alternatives instead.)
    """
    from palsy.model.prior import log_density

    lp = log_density({k: v for k, v in params.items() if k in ("theta_free", "omega", "tau", "re_z", "gamma")}, d)
    comps = {"prior": sum(v.reshape(len(p), -1).sum(-1) for v in lp.values()),
             "likelihood": terms["entries"].sum(-1) + terms["cases_weighted"].sum(-1)}
    w0 = np.exp(own - own.max()) if np.ptp(own) > 0 else np.ones(len(p))
    w0 = w0 / w0.sum()
    base = float(np.sum(w0 * p))
    out = {"baseline": base}
    for name, ld in comps.items():
        deriv = float(np.sum(w0 * (p - base) * (ld - np.sum(w0 * ld))))
        rows = []
        for a in alphas:
            mean, k = weighted_mean(p, own + (a - 1.0) * ld)
            rows.append({"alpha": a, "mean": mean, "delta": mean - base, "pareto_k": k,
                         "reliable": bool(k < k_threshold)})
        out[name] = {"derivative": deriv, "scaled": rows}
    return out
