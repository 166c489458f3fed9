"""A patient's answer as pure functions over posterior draws (DESIGN §4): numpy only.

For each draw s and observed findings x:

    log posterior odds_s = logit P_s(L) + log p_s(x | L) - log p_s(x | B)

Each observed finding is a *player* (each LP its own). The value of a set of players is the log
likelihood ratio of those findings with the others marginalised (left out). Sequential
contributions are differences of the values of growing prefixes in clinical order; Shapley values
average the marginal contributions over all orders (exact over all subsets). Both sum, per draw,
to the total shift, because both telescope from the empty set to the full set.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from model import findings as F
from model import likelihood as LK
from model import structure as S
from model.draws import Draws
from model.psis import psis_weights

CHUNK = 256  # subsets evaluated at once (bounds memory: CHUNK x draws x components)


@dataclasses.dataclass(frozen=True)
class Player:
    """One observed finding: ``finding`` (csf with ``index`` 1, 2, ...) and its ``value``."""

    finding: str
    index: int | None
    value: str

    @property
    def label(self) -> str:
        return f"LP {self.index} {self.value}" if self.finding == "csf" else f"{self.finding} {self.value}"


def players(patient: F.Patient) -> list[Player]:
    """The observed findings of ``patient`` in clinical order (unknown ones are not players)."""
    out = []
    for name in F.FINDINGS:
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
        self.log_sl, self.log_sb, self.logit_prior = LK.strata(LK.NUMPY, p)
        self.level_lp = LK.level_logp(LK.NUMPY, p["theta"])  # (S, K, level)
        K = self.level_lp.shape[1]
        self.is_l = np.array([c != "B" for c in draws.components])
        # log P(stratum, component | hypothesis) (S, K, 12): the forms' weights live here (they
        # depend on the lineage), so the mixture weights below are zero.
        log_lk = LK.form_strata(LK.NUMPY, p) if "omega" in p else self.log_sl[:, None]
        self.log_sk = np.concatenate([log_lk, self.log_sb[:, None]], axis=1).reshape(self.n, K, -1)
        self.p_sk = np.exp(self.log_sk)
        self.logw = np.zeros((self.n, K))

    def stratum_term(self, lineage: str | None, remission: str | None) -> np.ndarray:
        """Log P(lineage, remission, component | hypothesis) with unknowns marginalised (S, K).

        With both unknown this is the log weight of each form within L (0 for B and for the
        single L of the independent variant)."""
        m = S.stratum_mask(lineage, remission).ravel()
        return np.log(self.p_sk @ m)


class Game:
    """The players of one patient and the value of any subset of them, per draw."""

    def __init__(self, tables: Tables, plist: list[Player]) -> None:
        self.t = tables
        self.players = plist
        self.tree = [i for i, p in enumerate(plist) if p.finding not in ("lineage", "remission")]
        self.tree_lp = np.stack([tables.level_lp[:, :, _level_index(plist[i])] for i in self.tree]) \
            if self.tree else np.zeros((0, tables.n, len(tables.is_l)))
        self.lin = next((i for i, p in enumerate(plist) if p.finding == "lineage"), None)
        self.rem = next((i for i, p in enumerate(plist) if p.finding == "remission"), None)
        lv = plist[self.lin].value if self.lin is not None else None
        rv = plist[self.rem].value if self.rem is not None else None
        self.strat = {(a, b): tables.stratum_term(lv if a else None, rv if b else None)
                      for a in (False, True) for b in (False, True)}

    def log_p(self, subsets: np.ndarray, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """log p(x_S | L) and log p(x_S | B), each (subset, draw), for 0/1 ``subsets`` (subset, player).

        ``extra`` (draw, component) adds the log probability of a hypothetical further result.
        """
        subsets = np.atleast_2d(subsets).astype(bool)
        out_l, out_b = [], []
        for start in range(0, len(subsets), CHUNK):
            sub = subsets[start:start + CHUNK]
            a = np.einsum("mp,psk->msk", sub[:, self.tree].astype(float), self.tree_lp)
            lin = sub[:, self.lin] if self.lin is not None else np.zeros(len(sub), bool)
            rem = sub[:, self.rem] if self.rem is not None else np.zeros(len(sub), bool)
            for key, term in self.strat.items():
                sel = (lin == key[0]) & (rem == key[1])
                if sel.any():
                    a[sel] += term
            a += self.t.logw
            if extra is not None:
                a += extra
            out_l.append(LK.NUMPY.logsumexp(np.where(self.t.is_l, a, -np.inf), axis=-1))
            out_b.append(a[..., ~self.t.is_l][..., 0])
        return np.concatenate(out_l), np.concatenate(out_b)

    def value(self, subsets: np.ndarray) -> np.ndarray:
        """Log likelihood ratio of each subset of findings (subset, draw)."""
        lp_l, lp_b = self.log_p(subsets)
        return lp_l - lp_b


def sequential(game: Game) -> np.ndarray:
    """Conditional log LR of each finding given those before it in clinical order (player, draw)."""
    n = len(game.players)
    prefixes = np.tril(np.ones((n + 1, n)), k=-1).astype(bool)
    v = game.value(prefixes)
    return np.diff(v, axis=0)


def shapley(game: Game) -> np.ndarray:
    """Exact Shapley value of each finding over the log odds (player, draw)."""
    n = len(game.players)
    if n == 0:
        return np.zeros((0, game.t.n))
    codes = np.arange(2 ** n)
    subsets = ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
    v = game.value(subsets)
    size = subsets.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) if s < n else 0.0
                       for s in range(n + 1)])
    phi = np.empty((n, game.t.n))
    for i in range(n):
        without = codes[(codes >> i) & 1 == 0]
        phi[i] = weight[size[without]] @ (v[without | (1 << i)] - v[without])
    return phi


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
    """A patient's answer; per-draw arrays for figures, and :meth:`to_json` for DESIGN §7."""

    patient: F.Patient
    ci: float
    pretest: float | None
    prior_log_odds: np.ndarray  # (draw,)
    posterior_log_odds: np.ndarray  # (draw,)
    players: tuple[Player, ...]
    sequential: np.ndarray  # (player, draw)
    shapley: np.ndarray  # (player, draw)
    next_tests: tuple[dict[str, Any], ...]
    weights: np.ndarray | None
    model: dict[str, Any]
    left_out: dict[str, Any] | None = None

    @property
    def probability(self) -> dict[str, float]:
        return probability_summary(self.posterior_log_odds, self.ci, self.weights)

    @property
    def prior_probability(self) -> dict[str, float]:
        return probability_summary(self.prior_log_odds, self.ci, self.weights)

    @property
    def probability_draws(self) -> np.ndarray:
        return expit(self.posterior_log_odds)

    def _contrib(self, arr: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for p, row in zip(self.players, arr, strict=True):
            s = summary(row, self.ci, self.weights)
            out.append({"finding": p.finding, "index": p.index, "value": p.value,
                        "log_lr": s, "factor_median": math.exp(s["median"])})
        return out

    @property
    def contributions(self) -> list[dict[str, Any]]:
        return self._contrib(self.sequential)

    @property
    def shapley_values(self) -> list[dict[str, Any]]:
        return self._contrib(self.shapley)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of DESIGN §7 (floats unrounded), plus the patient and provenance."""
        pri = summary(self.prior_log_odds, self.ci, self.weights)
        post = summary(self.posterior_log_odds, self.ci, self.weights)
        return {
            "patient": self.patient.to_dict(),
            "probability": self.probability,
            "prior_probability": self.prior_probability,
            "log_odds": {"prior": {"mean": pri["mean"], "median": pri["median"]},
                         "posterior": {"mean": post["mean"], "median": post["median"]}},
            "contributions": self.contributions,
            "shapley": self.shapley_values,
            "next_tests": list(self.next_tests),
            "model": self.model,
            "out_of_population": self.patient.at_diagnosis,
            "left_out_case": self.left_out,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _next_tests(game: Game, prior_lo: np.ndarray, patient: F.Patient, ci: float,
                w: np.ndarray | None) -> list[dict[str, Any]]:
    """Predictive probability of each result of each pending test and P(L) after it.

    Per draw, sum_r P(r | x) P(L | x, r) = P(L | x): the results' probabilities are
    P(r | x) = sum_H P(H | x) p(x, r | H) / p(x | H).
    """
    t = game.t
    full = np.ones((1, len(game.players)), bool)
    lp_l, lp_b = (a[0] for a in game.log_p(full))
    post_lo = prior_lo + lp_l - lp_b
    pl = expit(post_lo)
    tests = []
    options = []
    if len(patient.csf) < F.MAX_LPS:
        for method in F.CSF_METHODS:
            options.append((f"lp_{method}", [(r, S.LEVEL_INDEX[(S.csf_item(method), r)]) for r in F.CSF_RESULTS]))
    if patient.mri is None:
        options.append(("mri", [(lv, S.LEVEL_INDEX[("mri", lv)]) for lv in F.LEVELS["mri"]]))
    for test, results in options:
        outcomes = []
        for result, idx in results:
            xl, xb = (a[0] for a in game.log_p(full, extra=t.level_lp[:, :, idx]))
            # p(r | x, H) = p(x, r | H) / p(x | H)
            pr = pl * np.exp(xl - lp_l) + (1 - pl) * np.exp(xb - lp_b)
            after = post_lo + (xl - lp_l) - (xb - lp_b)
            ps = summary(pr, ci, w)
            outcomes.append({"result": result,
                             "probability": {"mean": ps["mean"], "lower": ps["lower"], "upper": ps["upper"]},
                             "probability_after": {k: v for k, v in probability_summary(after, ci, w).items() if k != "ci"},
                             "_draws": (pr, after)})
        tests.append({"test": test, "outcomes": outcomes})
    return tests


def _strip(tests: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple({"test": t["test"], "outcomes": [{k: v for k, v in o.items() if k != "_draws"}
                                                   for o in t["outcomes"]]} for t in tests)


def answer(patient: F.Patient, draws: Draws, *, ci: float = 0.9, pretest: float | None = None,
           tables: Tables | None = None, leave_out: bool = True, keep_draws: bool = False) -> Answer:
    """The answer for ``patient`` from posterior ``draws``.

    Parameters
    ----------
    ci : float
        Mass of the equal-tailed credible intervals.
    pretest : float, optional
        Replaces the base rate P(L) with this probability (scenarios, teaching).
    tables : Tables, optional
        Precomputed tables of ``draws`` (reuse across many patients).
    leave_out : bool
        If the patient is a library case (same id or alias), answer with that case left out
        (Pareto-smoothed importance weights; k-hat reported).
    keep_draws : bool
        Keep per-draw arrays of the next tests (for figures and the identity test).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci: {ci!r} is not allowed; give a number between 0 and 1 (e.g. 0.9)")
    if pretest is not None and not 0 < pretest < 1:
        raise ValueError(f"pretest: {pretest!r} is not allowed; give a probability strictly between 0 and 1")
    t = tables or Tables(draws)
    plist = players(patient)
    game = Game(t, plist)
    prior_lo = t.logit_prior if pretest is None else np.full(t.n, math.log(pretest / (1 - pretest)))
    seq = sequential(game)
    phi = shapley(game)
    post_lo = prior_lo + (seq.sum(axis=0) if len(plist) else 0.0)
    w, left = None, None
    idx = draws.case_index(patient.id) if leave_out else None
    if idx is not None:
        w, k = psis_weights(-draws.case_loglik[idx])
        left = {"case": draws.meta["case_ids"][idx], "method": "PSIS", "pareto_k": k, "reliable": bool(k < 0.7)}
    tests = _next_tests(game, prior_lo, patient, ci, w)
    model = {"variant": draws.variant, "draws": draws.n, "evidence_hash": draws.meta["evidence_hash"],
             "version": draws.meta["version"], "pretest": pretest, "seed": draws.meta["settings"]["seed"],
             "diagnostics_ok": draws.meta["diagnostics"]["ok"]}
    return Answer(patient, ci, pretest, prior_lo, post_lo, tuple(plist), seq, phi,
                  tuple(tests) if keep_draws else _strip(tests), w, model, left)
