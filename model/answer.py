"""A patient's answer over the differential, as pure functions over posterior draws (DESIGN §4).

For each draw s, cause c and observed findings x:

    log P_s(c | x) = log P_s(c) + log p_s(x | c) - logsumexp over the causes

with p(x | infiltration) a mixture over the forms in the subtype variant. The context findings
(lineage, remission, age, recent vincristine, recent HSCT) enter as likelihoods P(s | c) from the
rate model; a missing one is marginalised over its patient-time share.

Each observed finding is a *player* (each LP its own). The value of a set of players is the log
odds of infiltration against the other causes considered, given those findings with the others
marginalised. Sequential contributions are differences of the values of growing prefixes in clinical
order; Shapley values average the marginal contributions over all orders: exactly (with identical LPs
interchangeable) when there are few distinct coalitions, otherwise by antithetic permutation sampling
per draw with its Monte Carlo error reported. Both sum, per draw, to the total shift.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import numpy as np

from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import guidance as G
from palsy.model import likelihood as LK
from palsy.model import structure as S
from palsy.model.draws import Draws
from palsy.model.psis import psis_weights

INFILTRATION = "infiltration"
CHUNK = 32  # subsets evaluated at once (bounds memory: CHUNK x draws x components)
EXACT_LIMIT = 512  # distinct coalitions up to which Shapley values are exact
SHAPLEY_MC_TARGET = 0.01  # largest Monte Carlo standard error allowed on a Shapley value (log odds)
SHAPLEY_MAX_PAIRS = 64  # antithetic permutation pairs per draw at most
ATYPICAL_SIMULATIONS = 4  # simulated patients per draw


@dataclasses.dataclass(frozen=True)
class Player:
    """One observed finding: ``finding`` (csf with ``index`` 1, 2, ...) and its ``value``."""

    finding: str
    index: int | None
    value: str

    @property
    def label(self) -> str:
        return f"LP {self.index} {self.value}" if self.finding == "csf" else f"{self.finding}: {self.value}"


def players(patient: F.Patient, context: bool = True) -> list[Player]:
    """The observed findings of ``patient`` in clinical order (unknown ones are not players).

    ``forehead`` sets the scope and is not a player; ``context=False`` leaves out the context
    findings (a clinician's ``--pretest`` already accounts for them).
    """
    out = []
    for name in F.FINDINGS:
        if name == "forehead" or (not context and name in F.CONTEXT):
            continue
        if name == "csf":
            out += [Player("csf", i, lp.code) for i, lp in enumerate(patient.csf, start=1)]
        elif patient.level(name) is not None:
            out.append(Player(name, None, patient.level(name)))
    return out


def _level_index(p: Player) -> int:
    if p.finding == "csf":
        result, method = p.value.split(":")
        return S.LEVEL_INDEX[(S.csf_item(method), result)]
    return S.LEVEL_INDEX[(p.finding, p.value)]


class Tables:
    """Per-draw probability tables of a posterior (computed once, reused for every query)."""

    def __init__(self, draws: Draws) -> None:
        p = draws.params
        self.draws = draws
        self.n = draws.n
        self.causes = draws.causes
        self.component_cause = np.array([self.causes.index(c) for c in draws.component_causes])
        self.cause_components = [np.flatnonzero(self.component_cause == j) for j in range(len(self.causes))]
        self.log_prior, self.log_sk = LK.component_strata(LK.NUMPY, p, draws.rate_arrays)  # (S, C), (S, K, N)
        self.p_sk = np.exp(self.log_sk)
        # the answers use the predictive for a new setting where studies disagree (random effects)
        self.level_lp = LK.level_logp(LK.NUMPY, p.get("theta_new", p["theta"]))  # (S, K, level)
        self.settings = draws.meta["answer_settings"]
        self.default_method = self.settings["unknown_csf_method"]

    def context_term(self, values: dict[str, str | None]) -> np.ndarray:
        """Log P(context, component | cause of the component) with unknowns marginalised (S, K)."""
        return np.log(self.p_sk @ S.stratum_mask(values))

    def by_cause(self, a: np.ndarray) -> np.ndarray:
        """Per-cause log mixture of per-component log probabilities (..., K) -> (..., C)."""
        # a cause of one component is that component (no log-sum-exp: most causes, every cause under independent)
        return np.stack([a[..., idx[0]] if len(idx) == 1 else LK.NUMPY.logsumexp(a[..., idx], axis=-1)
                         for idx in self.cause_components], axis=-1)


def _softmax(lp: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, zero outside ``active`` causes."""
    lp = np.where(active, lp, -np.inf)
    return np.exp(lp - LK.NUMPY.logsumexp(lp, axis=-1)[..., None])


class Game:
    """The players of one patient and the value of any subset of them, per draw.

    ``base`` (S, C) is the log prior of each cause before the players and ``offset`` (S, K) a
    per-component log term that applies whatever the subset (with ``--pretest``: the context).
    """

    def __init__(self, t: Tables, plist: list[Player], patient: F.Patient, active: np.ndarray,
                 base: np.ndarray, offset: np.ndarray) -> None:
        self.t = t
        self.players = plist
        self.active = active
        self.base = base
        self.offset = offset
        self.inf = t.causes.index(INFILTRATION)
        n = len(plist)
        self.ctx = [i for i, p in enumerate(plist) if p.finding in F.CONTEXT]
        self.tree = [i for i, p in enumerate(plist) if p.finding not in F.CONTEXT and p.finding != "csf_profile"]
        self.tree_lp = (np.stack([t.level_lp[:, :, _level_index(plist[i])] for i in self.tree])
                        if self.tree else np.zeros((0, t.n, len(t.component_cause))))
        # context: the term of every combination of the context players (bit j = ctx player j in)
        self.ctx_terms = np.stack([
            t.context_term({plist[i].finding: plist[i].value for j, i in enumerate(self.ctx) if code >> j & 1})
            for code in range(2 ** len(self.ctx))])
        # the CSF profile, modelled jointly with the first LP's result
        self.profile = next((i for i, p in enumerate(plist) if p.finding == "csf_profile"), None)
        self.lp1 = next((i for i, p in enumerate(plist) if p.finding == "csf" and p.index == 1), None)
        self.first_method = patient.csf[0].method if patient.csf else t.default_method
        if self.profile is not None:
            level = plist[self.profile].value
            self.prof_given = {r: t.level_lp[:, :, S.LEVEL_INDEX[(S.profile_item(r), level)]] for r in F.CSF_RESULTS}
            self.prof_joint = self.prof_given[patient.csf[0].result] if patient.csf else None
            self.prof_marg = self.profile_marginal(self.first_method)
        self.n_players = n

    def profile_marginal(self, method: str) -> np.ndarray:
        """Log P(profile) with the first LP's result (read by ``method``) marginalised (S, K)."""
        t = self.t
        return np.logaddexp(*(t.level_lp[:, :, S.LEVEL_INDEX[(S.csf_item(method), r)]] + self.prof_given[r]
                              for r in F.CSF_RESULTS))

    def log_p_components(self, masks: np.ndarray) -> np.ndarray:
        """Log p(x_S, component | cause) + offset for boolean ``masks`` (m, n) or per draw (m, S, n)."""
        per_draw = masks.ndim == 3
        m = len(masks)
        t = self.t
        if self.tree:
            sub = masks[..., self.tree].astype(float)
            a = np.einsum("msp,psk->msk" if per_draw else "mp,psk->msk", sub, self.tree_lp)
        else:
            a = np.zeros((m, t.n, len(t.component_cause)))
        if self.ctx:
            code = sum(masks[..., i].astype(int) << j for j, i in enumerate(self.ctx))
            if per_draw:
                a += self.ctx_terms[code, np.arange(t.n)[None, :]]
            else:
                a += self.ctx_terms[code]
        else:
            a += self.ctx_terms[0]
        if self.profile is not None:
            has_p = masks[..., self.profile]
            has_1 = masks[..., self.lp1] if self.lp1 is not None else np.zeros_like(has_p)
            joint = self.prof_joint if self.prof_joint is not None else self.prof_marg
            term = np.where((has_p & has_1)[..., None], joint, 0.0) if per_draw else None
            if per_draw:
                a += term + np.where((has_p & ~has_1)[..., None], self.prof_marg, 0.0)
            else:
                a[has_p & has_1] += joint
                a[has_p & ~has_1] += self.prof_marg
        return a + self.offset

    def log_joint(self, masks: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Log P(c) + log p(x_S | c) per cause (m, S, C); ``extra`` (S, K) adds a further result."""
        out = []
        for start in range(0, len(masks), CHUNK):
            a = self.log_p_components(masks[start:start + CHUNK])
            if extra is not None:
                a = a + extra
            out.append(self.base + self.t.by_cause(a))
        return np.concatenate(out) if out else np.zeros((0, self.t.n, len(self.t.causes)))

    def log_odds(self, lj: np.ndarray) -> np.ndarray:
        """Log odds of infiltration against the other active causes (..., C) -> (...)."""
        others = np.where(self.active & (np.arange(len(self.active)) != self.inf), lj, -np.inf)
        return lj[..., self.inf] - LK.NUMPY.logsumexp(others, axis=-1)

    def value(self, masks: np.ndarray) -> np.ndarray:
        """Log odds of infiltration given each subset of findings (m, S)."""
        return self.log_odds(self.log_joint(masks))


# --- contributions ---------------------------------------------------------------------------------

def sequential(game: Game) -> tuple[np.ndarray, np.ndarray]:
    """Per-finding change in the log odds in clinical order (player, draw), and the log joint of
    every prefix (prefix, draw, cause) for the steps of the differential."""
    n = game.n_players
    prefixes = np.tril(np.ones((n + 1, n)), k=-1).astype(bool)
    lj = game.log_joint(prefixes)
    return np.diff(game.log_odds(lj), axis=0), lj


def _types(game: Game) -> list[list[int]]:
    """Groups of interchangeable players: identical LPs (the first LP is its own when the CSF
    profile, modelled jointly with it, is known); every other player alone."""
    groups: dict[Any, list[int]] = {}
    for i, p in enumerate(game.players):
        key = ("lp", p.value) if p.finding == "csf" and not (game.profile is not None and p.index == 1) else i
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def shapley(game: Game, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Shapley value of each finding over the log odds (player, draw) and how it was computed.

    Exact over the distinct coalitions (identical LPs interchangeable) when there are at most
    :data:`EXACT_LIMIT`; otherwise antithetic permutation sampling per draw, adding pairs until the
    Monte Carlo standard error of every mean Shapley value is below :data:`SHAPLEY_MC_TARGET`.
    """
    n, nd = game.n_players, game.t.n
    if n == 0:
        return np.zeros((0, nd)), {"method": "exact", "coalitions": 1, "mc_error": 0.0}
    groups = _types(game)
    sizes = [len(g) for g in groups]
    n_profiles = math.prod(s + 1 for s in sizes)
    if n_profiles <= EXACT_LIMIT:
        return _shapley_exact(game, groups), {"method": "exact", "coalitions": n_profiles, "mc_error": 0.0}
    return _shapley_sampled(game, rng or np.random.default_rng(0))


def _shapley_exact(game: Game, groups: list[list[int]]) -> np.ndarray:
    n, nd = game.n_players, game.t.n
    sizes = [len(g) for g in groups]
    profiles = list(itertools.product(*(range(s + 1) for s in sizes)))
    index = {k: j for j, k in enumerate(profiles)}
    masks = np.zeros((len(profiles), n), bool)
    for j, k in enumerate(profiles):
        for g, kk in zip(groups, k, strict=True):
            masks[j, g[:kk]] = True
    v = game.value(masks)
    phi_group = np.zeros((len(groups), nd))
    fact = [math.factorial(i) for i in range(n + 1)]
    for t_idx, size_t in enumerate(sizes):
        for k in profiles:
            if k[t_idx] >= size_t:
                continue
            s = sum(k)
            count = math.prod(math.comb(sz - (1 if j == t_idx else 0), kk) for j, (sz, kk) in enumerate(zip(sizes, k, strict=True)))
            w = count * fact[s] * fact[n - s - 1] / fact[n]
            up = list(k)
            up[t_idx] += 1
            phi_group[t_idx] += w * (v[index[tuple(up)]] - v[index[k]])
    phi = np.zeros((n, nd))
    for g, row in zip(groups, phi_group, strict=True):
        phi[g] = row
    return phi


def _shapley_sampled(game: Game, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    n, nd = game.n_players, game.t.n
    sums = np.zeros((n, nd))
    sq = np.zeros((n, nd))
    pairs = 0
    mc = np.inf
    while pairs < SHAPLEY_MAX_PAIRS:
        for _ in range(4):
            perm = np.argsort(rng.random((nd, n)), axis=1)  # a permutation per draw
            pair = np.zeros((n, nd))
            for order in (perm, perm[:, ::-1]):  # antithetic: the reversed order
                ranks = np.argsort(order, axis=1)  # position of each player, per draw
                steps = np.arange(n + 1)[:, None, None] > ranks[None, :, :]  # (n+1, S, n): in the prefix
                v = game.value(steps)  # (n+1, S)
                contrib = v[ranks + 1, np.arange(nd)[:, None]] - v[ranks, np.arange(nd)[:, None]]  # (S, n)
                pair += contrib.T / 2
            sums += pair
            sq += pair ** 2
            pairs += 1
        mean = sums / pairs
        var = np.maximum(sq / pairs - mean ** 2, 0.0) / pairs  # variance of each draw's estimate
        mc = float(np.sqrt(var.sum(axis=1)).max() / nd)  # s.e. of the mean Shapley value over draws
        if mc < SHAPLEY_MC_TARGET:
            break
    return sums / pairs, {"method": "sampled", "permutation_pairs": pairs, "mc_error": mc}


# --- summaries -----------------------------------------------------------------------------------

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


@dataclasses.dataclass(frozen=True)
class Answer:
    """A patient's answer; per-draw arrays for figures, and :meth:`to_dict` for DESIGN §7."""

    patient: F.Patient
    ci: float
    pretest: float | None
    causes: tuple[str, ...]  # every modelled cause
    active: np.ndarray  # (cause,) bool: the causes weighed (``--causes``)
    prior_cause: np.ndarray  # (draw, cause) P(c) before any finding
    posterior_cause: np.ndarray  # (draw, cause) P(c | findings)
    prior_log_odds: np.ndarray  # (draw,)
    posterior_log_odds: np.ndarray  # (draw,)
    players: tuple[Player, ...]
    sequential: np.ndarray  # (player, draw)
    shapley: np.ndarray  # (player, draw)
    shapley_method: dict[str, Any]
    step_cause: np.ndarray  # (step, draw, cause): P(c) after each prefix, step 0 the prior
    next_tests: tuple[dict[str, Any], ...]
    atypical: dict[str, Any]
    scope_notes: tuple[str, ...]
    warnings: tuple[str, ...]
    weights: np.ndarray | None
    model: dict[str, Any]
    left_out: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    actions: tuple[dict[str, Any], ...] = ()

    @property
    def in_scope(self) -> bool:
        return self.patient.in_scope

    @property
    def causes_weighed(self) -> tuple[str, ...]:
        return tuple(c for c, a in zip(self.causes, self.active, strict=True) if a)

    @property
    def probability(self) -> dict[str, float]:
        return probability_summary(self.posterior_log_odds, self.ci, self.weights)

    @property
    def prior_probability(self) -> dict[str, float]:
        return probability_summary(self.prior_log_odds, self.ci, self.weights)

    @property
    def probability_draws(self) -> np.ndarray:
        return expit(self.posterior_log_odds)

    def cause_summaries(self) -> list[dict[str, Any]]:
        """Every weighed cause: P(c | findings) and P(c) (mean, median, interval), means summing to one."""
        out = []
        for j, c in enumerate(self.causes):
            if not self.active[j]:
                continue
            post = summary(self.posterior_cause[:, j], self.ci, self.weights)
            pri = summary(self.prior_cause[:, j], self.ci, self.weights)
            out.append({"cause": c, "probability": post, "prior_probability": pri})
        return out

    @property
    def leading_cause(self) -> str:
        means = np.average(self.posterior_cause, axis=0, weights=self.weights)
        return self.causes[int(np.argmax(np.where(self.active, means, -1)))]

    def _contrib(self, arr: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for p, row in zip(self.players, arr, strict=True):
            s = summary(row, self.ci, self.weights)
            out.append({"finding": p.finding, "index": p.index, "value": p.value,
                        "log_lr": s, "factor_geometric_mean": math.exp(s["mean"]),
                        "factor_median": math.exp(s["median"])})
        return out

    @property
    def contributions(self) -> list[dict[str, Any]]:
        return self._contrib(self.sequential)

    @property
    def shapley_values(self) -> list[dict[str, Any]]:
        return self._contrib(self.shapley)

    def steps(self) -> list[dict[str, Any]]:
        """The differential after each step in clinical order (mean probabilities), from the prior."""
        out = []
        labels = [("prior", None, None)] + [(p.finding, p.index, p.value) for p in self.players]
        for (finding, index, value), arr in zip(labels, self.step_cause, strict=True):
            means = np.average(arr, axis=0, weights=self.weights)
            out.append({"finding": finding, "index": index, "value": value,
                        "causes": {c: float(m) for c, m, a in zip(self.causes, means, self.active, strict=True) if a}})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of DESIGN §7 (floats unrounded), plus the patient and provenance."""
        pri = summary(self.prior_log_odds, self.ci, self.weights)
        post = summary(self.posterior_log_odds, self.ci, self.weights)
        return {
            "patient": self.patient.to_dict(),
            "in_scope": self.in_scope,
            "scope_notes": list(self.scope_notes),
            "atypical": self.atypical,
            "warnings": list(self.warnings),
            "probability": self.probability,
            "prior_probability": self.prior_probability,
            "causes": self.cause_summaries(),
            "leading_cause": self.leading_cause,
            "log_odds": {"prior": {"mean": pri["mean"], "median": pri["median"]},
                         "posterior": {"mean": post["mean"], "median": post["median"]}},
            "contributions": self.contributions,
            "shapley": self.shapley_values,
            "shapley_method": self.shapley_method,
            "steps": self.steps(),
            "next_tests": list(self.next_tests),
            "decision": self.decision,
            "actions": list(self.actions),
            "model": self.model,
            "out_of_population": self.patient.at_diagnosis,
            "left_out_case": self.left_out,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# --- what the next test could do ---------------------------------------------------------------

def _test_outcomes(game: Game, patient: F.Patient) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Each pending test and its results, with the extra log probability each result adds (S, K)."""
    t = game.t
    lp = t.level_lp
    options = []
    if len(patient.csf) < F.MAX_LPS:
        for method in F.CSF_METHODS:
            results = []
            for r in F.CSF_RESULTS:
                lp_r = lp[:, :, S.LEVEL_INDEX[(S.csf_item(method), r)]]
                if patient.csf or game.profile is not None:
                    # a further LP (a known CSF profile means a first LP was done, its result unknown)
                    results.append((r, lp_r))
                else:  # the first LP: its result and its CSF profile
                    for prof in F.LEVELS["csf_profile"]:
                        results.append((f"{r}, {prof}", lp_r + lp[:, :, S.LEVEL_INDEX[(S.profile_item(r), prof)]]))
            options.append((f"lp_{method}", results))
    if patient.level("mri") is None:
        options.append(("mri", [(lv, lp[:, :, S.LEVEL_INDEX[("mri", lv)]]) for lv in F.LEVELS["mri"]]))
    return options


def next_tests(game: Game, patient: F.Patient, ci: float, w: np.ndarray | None,
               keep_draws: bool = False) -> list[dict[str, Any]]:
    """Predictive probability of each result of each pending test, P(infiltration) and the leading
    cause after it. Per draw, sum_r P(r | x) P(c | x, r) = P(c | x) for every cause."""
    full = np.ones((1, game.n_players), bool)
    lj = game.log_joint(full)[0]  # (S, C)
    act = game.active
    log_px = LK.NUMPY.logsumexp(np.where(act, lj, -np.inf), axis=-1)
    causes = game.t.causes
    tests = []
    for test, results in _test_outcomes(game, patient):
        outcomes = []
        for result, extra in results:
            ljr = game.log_joint(full, extra=extra)[0]
            pr = np.exp(LK.NUMPY.logsumexp(np.where(act, ljr, -np.inf), axis=-1) - log_px)
            pc = _softmax(ljr, act)
            after = game.log_odds(ljr)
            # after seeing r the draws are reweighted by P(r | draw): the predictive P(c | x, r)
            w_r = pr if w is None else w * pr
            means = np.average(pc, axis=0, weights=w_r)
            ps = summary(pr, ci, w)
            o = {"result": result,
                 "probability": {"mean": ps["mean"], "lower": ps["lower"], "upper": ps["upper"]},
                 "probability_after": {k: v for k, v in probability_summary(after, ci, w_r).items() if k != "ci"},
                 "leading_cause_after": causes[int(np.argmax(np.where(act, means, -1)))],
                 "causes_after": {c: float(m) for c, m, a in zip(causes, means, act, strict=True) if a}}
            if keep_draws:
                o["_draws"] = (pr, pc)
            outcomes.append(o)
        tests.append({"test": test, "outcomes": outcomes})
    return tests


def negative_curves(game: Game, patient: F.Patient, w: np.ndarray | None) -> dict[str, list[float]]:
    """Mean P(infiltration) after 1, 2, ... further negative LPs of each method (up to six LPs in all)."""
    full = np.ones((1, game.n_players), bool)
    out = {}
    for method in F.CSF_METHODS:
        neg = game.t.level_lp[:, :, S.LEVEL_INDEX[(S.csf_item(method), "negative")]]
        curve = []
        for k in range(1, F.MAX_LPS - len(patient.csf) + 1):
            pc = _softmax(game.log_joint(full, extra=k * neg)[0], game.active)
            curve.append(float(np.average(pc[:, game.inf], weights=w)))
        out[method] = curve
    return out


# --- atypicality ---------------------------------------------------------------------------------

def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of ``probs`` (rows proportional to probabilities)."""
    cum = np.cumsum(probs, axis=1) / probs.sum(axis=1, keepdims=True)
    return (rng.random(len(probs))[:, None] > cum).sum(axis=1).clip(0, probs.shape[1] - 1)


def _gather(lp: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``lp[s, :, idx[s]]`` for every draw s: (S, K, level) and (S,) -> (S, K)."""
    return np.take_along_axis(lp, np.broadcast_to(idx[:, None, None], (lp.shape[0], lp.shape[1], 1)), axis=2)[:, :, 0]


def atypicality(game: Game, patient: F.Patient, tail: float, rng: np.random.Generator,
                w: np.ndarray | None = None) -> dict[str, Any]:
    """How typical the palsy's findings are under the model, given the context.

    Per draw, log p(findings | context) of the patient is compared with that of patients simulated
    from the model (same context, same findings known); ``tail_probability`` is the share of
    simulated patients at most as probable. Flagged when below ``tail``.
    """
    t = game.t
    pres = [i for i, p in enumerate(game.players) if p.finding not in F.CONTEXT]
    if not pres:
        return {"flag": False, "tail_probability": 1.0, "threshold": tail}
    n, nd = game.n_players, t.n
    ctx_mask = np.zeros((1, n), bool)
    ctx_mask[0, game.ctx] = True
    comp_lp = game.log_p_components(ctx_mask)[0]  # (S, K): log P(context, k | c) + offset
    lj_k = comp_lp + game.base[:, t.component_cause]
    lj_k = np.where(game.active[t.component_cause], lj_k, -np.inf)
    log_ctx = LK.NUMPY.logsumexp(lj_k, axis=-1)  # (S,)
    full = np.ones((1, n), bool)
    obs = LK.NUMPY.logsumexp(np.where(game.active, game.log_joint(full)[0], -np.inf), axis=-1) - log_ctx
    pk = np.exp(lj_k - log_ctx[:, None])  # P(k | context) (S, K)
    lp = t.level_lp
    below = np.zeros(nd)
    for _ in range(ATYPICAL_SIMULATIONS):
        k = _sample(pk, rng)  # each draw's simulated component
        own = lp[np.arange(nd), k]  # (S, level) log-probabilities under it

        def simulate(item: str, levels: tuple[str, ...], own: np.ndarray = own) -> tuple[np.ndarray, np.ndarray]:
            """A level per draw, and its log-probability under every component (S, K)."""
            idx = np.array([S.LEVEL_INDEX[(item, lv)] for lv in levels])
            pick = _sample(np.exp(own[:, idx]), rng)
            return pick, _gather(lp, idx[pick])

        total = np.zeros((nd, pk.shape[1]))  # log p(x_sim | k') for every component k'
        first = None
        for i in pres:
            p = game.players[i]
            if p.finding == "csf_profile":
                continue
            item = S.csf_item(p.value.split(":")[1]) if p.finding == "csf" else p.finding
            pick, term = simulate(item, S.ITEMS[item])
            total += term
            if p.finding == "csf" and p.index == 1:
                first = pick
        if game.profile is not None:
            levels = F.LEVELS["csf_profile"]
            given_lp1 = first is not None
            if not given_lp1:  # no LP given: the profile's LP result is drawn, then marginalised
                first, _ = simulate(S.csf_item(game.first_method), F.CSF_RESULTS)
            prof = np.zeros(nd, int)
            for r_i, r in enumerate(F.CSF_RESULTS):
                pick, _ = simulate(S.profile_item(r), levels)
                prof = np.where(first == r_i, pick, prof)
            given = [_gather(lp, np.array([S.LEVEL_INDEX[(S.profile_item(r), lv)] for lv in levels])[prof])
                     for r in F.CSF_RESULTS]
            if given_lp1:
                total += np.where((first == 0)[:, None], given[0], given[1])
            else:
                total += np.logaddexp(*(lp[:, :, S.LEVEL_INDEX[(S.csf_item(game.first_method), r)]] + g
                                        for r, g in zip(F.CSF_RESULTS, given, strict=True)))
        sim = LK.NUMPY.logsumexp(np.log(np.maximum(pk, 1e-300)) + total, axis=-1)
        below += (sim <= obs + 1e-9)
    tail_p = float(np.average(below / ATYPICAL_SIMULATIONS, weights=w))
    return {"flag": bool(tail_p < tail), "tail_probability": tail_p, "threshold": tail}


# --- the answer ----------------------------------------------------------------------------------

def _active(causes: tuple[str, ...], selected: tuple[str, ...] | None) -> np.ndarray:
    if selected is None:
        return np.ones(len(causes), bool)
    unknown = [c for c in selected if c not in causes]
    if unknown or INFILTRATION not in selected or len(set(selected)) < 2:
        raise ValueError(f"causes: {','.join(selected)!r} is not allowed; give 'all' or a comma-separated list "
                         f"of at least two of {', '.join(causes)} including {INFILTRATION}")
    return np.array([c in selected for c in causes])


def hallmark_warnings(patient: F.Patient, causes: tuple[str, ...], active: np.ndarray,
                      hallmarks: dict[str, list[dict[str, str]]]) -> list[str]:
    """Warnings for hallmarks of causes that ``--causes`` leaves out."""
    out = []
    for c, a in zip(causes, active, strict=True):
        if a:
            continue
        for mark in hallmarks.get(c) or []:
            if patient.level(mark["finding"]) == mark["value"]:
                out.append(f"{mark['finding']}: {mark['value']} is a hallmark of {c}, which --causes leaves out")
    return out


def answer(patient: F.Patient, draws: Draws, *, ci: float = 0.9, pretest: float | None = None,
           causes: tuple[str, ...] | None = None, tables: Tables | None = None, leave_out: bool = True,
           keep_draws: bool = False, seed: int = 0, decision_settings: D.Settings | None = None,
           thresholds: tuple[float, float] | None = None, guidance: tuple[G.Action, ...] = ()) -> Answer:
    """The answer for ``patient`` from posterior ``draws``.

    Parameters
    ----------
    ci : float
        Mass of the equal-tailed credible intervals.
    pretest : float, optional
        The clinician's own P(infiltration) for this patient given the context findings (who the
        patient is). The context findings then move nothing further; the other causes keep their
        relative shares.
    causes : tuple of str, optional
        Condition on the cause being one of these (must include infiltration); all by default.
    tables : Tables, optional
        Precomputed tables of ``draws`` (reuse across many patients).
    leave_out : bool
        If the patient is a library case (same id or alias), answer with that case left out
        (Pareto-smoothed importance weights; k-hat reported).
    keep_draws : bool
        Keep per-draw arrays of the next tests (for figures and the identity test).
    seed : int
        Seed of the Monte Carlo parts (sampled Shapley values, atypicality): answers are reproducible.
    decision_settings : decision.Settings, optional
        Harms and benefits of ``priors/decision.yaml``: with them the answer carries the decision.
    thresholds : (low, high), optional
        Overrides the decision's pair of thresholds for this query.
    guidance : tuple of guidance.Action
        The actions of ``priors/actions.yaml``: the answer lists those whose triggers hold.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci: {ci!r} is not allowed; give a number between 0 and 1 (e.g. 0.9)")
    if pretest is not None and not 0 < pretest < 1:
        raise ValueError(f"pretest: {pretest!r} is not allowed; give a probability strictly between 0 and 1")
    t = tables or Tables(draws)
    active = _active(t.causes, causes)
    inf = t.causes.index(INFILTRATION)
    rng = np.random.default_rng(seed)
    prior_pc = _softmax(t.log_prior, active)
    if pretest is None:
        plist = players(patient)
        base, offset = t.log_prior, np.zeros_like(t.level_lp[:, :, 0])
    else:
        plist = players(patient, context=False)
        ctx = {name: patient.level(name) for name in F.CONTEXT}
        offset_full = t.context_term(ctx)  # log P(context, k | c)
        log_ctx_c = t.by_cause(offset_full)  # log P(context | c)
        # log P(k | c, context), less log P(k | c) which the game adds for an empty context
        offset = offset_full - log_ctx_c[:, t.component_cause] - t.context_term({})
        q = _softmax(t.log_prior + log_ctx_c, active & (np.arange(len(t.causes)) != inf))
        with np.errstate(divide="ignore"):
            base = np.log(q * (1 - pretest))
        base[:, inf] = math.log(pretest)
        prior_pc = _softmax(base, active)
    game = Game(t, plist, patient, active, base, offset)
    seq, prefix_lj = sequential(game)
    phi, phi_method = shapley(game, rng)
    step_cause = _softmax(prefix_lj, active)
    prior_lo = game.log_odds(prefix_lj[0])
    post_lo = game.log_odds(prefix_lj[-1])
    w, left = None, None
    idx = draws.case_index(patient.id) if leave_out else None
    if idx is not None:
        w, k = psis_weights(-draws.case_loglik[idx])
        left = {"case": draws.meta["case_ids"][idx], "method": "PSIS", "pareto_k": k, "reliable": bool(k < 0.7)}
    tests = next_tests(game, patient, ci, w, keep_draws=True)
    dec = None
    if decision_settings is not None:
        for t_ in tests:
            for o in t_["outcomes"]:
                o["p_inf"] = o["_draws"][1][:, inf]
        dec = D.decide(expit(post_lo), tests, negative_curves(game, patient, w), decision_settings, thresholds, w)
    if not keep_draws:
        tests = [{"test": t_["test"], "outcomes": [{k: v for k, v in o.items() if k not in ("_draws", "p_inf")}
                                                    for o in t_["outcomes"]]} for t_ in tests]
    st = t.settings
    atyp = atypicality(game, patient, float(st["atypicality"]["tail"]), rng, w)
    notes = []
    if patient.central:
        notes.append(" ".join(st["scope"]["central"].split()))
    if patient.at_diagnosis:
        notes.append(" ".join(st["scope"]["at_diagnosis"].split()))
    warns = hallmark_warnings(patient, t.causes, active, st["hallmarks"])
    model = {"variant": draws.variant, "draws": draws.n, "evidence_hash": draws.meta["evidence_hash"],
             "version": draws.meta["version"], "pretest": pretest, "seed": draws.meta["settings"]["seed"],
             "diagnostics_ok": draws.meta["diagnostics"]["ok"], "causes": list(t.causes),
             "causes_weighed": [c for c, a in zip(t.causes, active, strict=True) if a],
             "not_modelled": list(st["not_modelled"])}
    means = dict(zip(t.causes, np.average(step_cause[-1], axis=0, weights=w).tolist(), strict=True))
    todo = G.applicable(guidance, patient, {c: m for (c, m), a in zip(means.items(), active, strict=True) if a},
                        dec["action"] if dec else None)
    acts = tuple({"id": g.id, "text": g.text, "detail": g.detail, "refs": list(g.refs)} for g in todo)
    return Answer(patient, ci, pretest, t.causes, active, prior_pc, step_cause[-1], prior_lo, post_lo,
                  tuple(plist), seq, phi, phi_method, step_cause, tuple(tests), atyp, tuple(notes), tuple(warns),
                  w, model, left, dec, acts)
